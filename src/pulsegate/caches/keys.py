r"""Cache keys folded into patterns: what is reported instead of the key itself.

A raw key never leaves the process (it may hold a user id, an e-mail, a session id, a
user name); it is reported as its *pattern*, and the pattern is **fail-closed**: a word
survives only when the program itself spells it. A key is split on its delimiters
(``: / . - _ | , = @`` and space) and each part is folded:

* a part that is an id -- all digits, a UUID, eight or more hexadecimal characters with
  a digit, or twenty or more characters of a token alphabet (letters, digits, ``+``,
  ``/``, ``=``, ``_``, ``-``) -- becomes ``{id}``;
* an e-mail address (``local@domain``) becomes ``{id}`` before the key is split;
* a part whose digits sit between letters (``ABC123xyz``, ``u5r9``) is an id too: ``{id}``;
* any other run of digits inside a part becomes ``{n}`` (``page3`` -> ``page{n}``);
* what is left of a part must be a word of the program's vocabulary
  (:mod:`pulsegate.caches.vocabulary`: the words of the application's string
  constants, names and settings, plus ``cache_key_words``), or form with a neighbouring
  part and the delimiters between them a pair a library spells (``rq:job``), else the
  part becomes ``{*}`` (``session:alice`` -> ``session:{*}``: ``session`` is in the
  code that built the key, ``alice`` is not);
* after folding, a pattern whose *last* part still takes more than ``max_tails``
  distinct values under the same head (``search:shoes``, ``search:boots``, ... where
  every search term is also a word of the code) has that part folded to ``{*}`` from
  then on (``search:{*}``): free text in a key cannot grow the pattern map.

Linear in the key's length, which is capped at :data:`MAX_KEY_CHARS` (a longer key is
cut there and ends in ``...``).

>>> folder = KeyPatterns(words={"user", "profile", "views", "cache", "page", "GET", "en",
...                             "us", "feed", "sess", "rl", "login", "stripe", "cus"})
>>> folder.pattern("user:1234:profile")
'user:{id}:profile'
>>> folder.pattern("views.cache_page.GET.3f2a9c0d41b7e8aa9c0d41b7e8aa3f2a.en-us")
'views.cache_page.GET.{id}.en-us'
>>> folder.pattern("feed:page3:550e8400-e29b-41d4-a716-446655440000")
'feed:page{n}:{id}'
>>> folder.pattern(b"sess:alice")
'sess:{*}'
>>> folder.pattern("rl:jo.smith@example.com:login")
'rl:{id}:login'
>>> folder.pattern("stripe:cus_NffrFeUfNV2Hib")
'stripe:cus_{id}'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Container

from pulsegate.bounded import BoundedLRU
from pulsegate.caches.vocabulary import Vocabulary

__all__ = ["MAX_KEY_CHARS", "KeyPatterns"]

#: Longest key prefix folded; the rest is cut (``...``).
MAX_KEY_CHARS = 200
_PARTS = re.compile(r"([:/.\-_|,=@ ]+)")
_DIGITS = re.compile(r"\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{8,}")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{20,}")
_HAS_DIGIT = re.compile(r"\d")
#: ``local@domain``: its parts are what ``_PARTS`` splits on, less ``.``, ``-`` and ``_``
_EMAIL = re.compile(r"[^:/|,=@ ]+@[^:/|,=@ ]+")
_INNER_DIGITS = re.compile(r"[A-Za-z]\d+[A-Za-z]")


def _fold_part(part: str, words: Container[str]) -> str:
    if not part:  # a key that starts or ends with a delimiter (Django's ":1:key")
        return part
    if part.isdigit():
        return "{id}"
    if (_HEX.fullmatch(part) and _HAS_DIGIT.search(part)) or _TOKEN.fullmatch(part):
        return "{id}"
    if _HAS_DIGIT.search(part):
        if _INNER_DIGITS.search(part):
            return "{id}"
        return _DIGITS.sub("{n}", part) if _DIGITS.sub("", part) in words else "{*}"
    return part if part in words else "{*}"


def _beside(pieces: list[str], i: int, words: Container[str]) -> bool:
    """Whether part ``i`` and a neighbour, with the delimiters between them, are a pair
    of ``words`` (``rq:job``: a library spells them together)."""
    return (i > 0 and pieces[i - 2] + pieces[i - 1] + pieces[i] in words) or \
        (i + 2 < len(pieces) and pieces[i] + pieces[i + 1] + pieces[i + 2] in words)


def fold(key: str, words: Container[str]) -> str:
    """The key with its ids and digit runs folded and the parts that are not ``words``
    made ``{*}`` (no cardinality guard): see the module doc. UUIDs are found before the
    key is split, since their dashes are delimiters.

    >>> fold("order-42-items-alice", {"order", "items"})
    'order-{id}-items-{*}'
    """
    cut = len(key) > MAX_KEY_CHARS
    if cut:
        key = key[:MAX_KEY_CHARS]
    key = _UUID.sub("{id}", key) if "-" in key or len(key) >= 32 else key
    key = _EMAIL.sub("{id}", key) if "@" in key else key
    pieces = _PARTS.split(key)
    out = [p if i % 2 or p == "{id}" else _fold_part(p, words) for i, p in enumerate(pieces)]
    for i in range(0, len(out), 2):  # a library's word: kept beside its neighbour
        if out[i] == "{*}" and _beside(pieces, i, words):
            out[i] = pieces[i]
    return "".join(out) + ("..." if cut else "")


class KeyPatterns:
    """Folds keys into patterns, remembering the recent raw keys it folded (a bounded
    map: a hit costs one dictionary read) and how many distinct last parts each head
    has shown (the cardinality guard). ``words``: the words kept in patterns (default:
    the loaded program's :class:`~pulsegate.caches.vocabulary.Vocabulary`). Thread-safe;
    one per monitor."""

    __slots__ = ("_lock", "heads", "max_tails", "memo", "wide", "words")

    def __init__(self, memo_size: int = 4096, max_heads: int = 2048, max_tails: int = 64,
                 words: Container[str] | None = None) -> None:
        self.words: Container[str] = Vocabulary() if words is None else words
        self.memo: BoundedLRU[str, str] = BoundedLRU(memo_size)
        #: head -> the distinct last parts seen under it (at most ``max_tails`` kept)
        self.heads: BoundedLRU[str, set[str]] = BoundedLRU(max_heads)
        #: heads whose last part is folded to ``{*}``
        self.wide: BoundedLRU[str, bool] = BoundedLRU(max_heads)
        self.max_tails = max_tails
        self._lock = threading.Lock()

    def pattern(self, key: str | bytes) -> str:
        """The pattern of ``key`` (``bytes`` are read as UTF-8, errors replaced)."""
        if not isinstance(key, str):
            key = key.decode("utf-8", "replace") if isinstance(key, (bytes, bytearray)) \
                else str(key)
        found = self.memo.get(key)
        if found is not None:
            return found
        settled = getattr(self.words, "settled", True)  # before: a read may start in fold
        folded = fold(key, self.words)
        cut = folded.rfind(":") + 1 or max(folded.rfind("/"), folded.rfind(".")) + 1
        head, tail = folded[:cut], folded[cut:]
        with self._lock:
            if tail and not tail.startswith("{"):
                if head in self.wide:
                    folded = head + "{*}"
                else:
                    tails = self.heads.get(head)
                    if tails is None:
                        tails = set()
                        self.heads.put(head, tails)
                    tails.add(tail)
                    if len(tails) > self.max_tails:
                        self.wide.put(head, True)
                        self.heads.pop(head, None)
                        self.memo.clear()  # earlier keys of this head now fold too
                        folded = head + "{*}"
            # a long key is folded again rather than kept; so is one folded before the
            # vocabulary had read every loaded module (its {*} may be a word after all)
            if len(key) <= MAX_KEY_CHARS and settled:
                self.memo.put(key, folded)
        return folded

    def forget(self) -> None:
        """Forget the keys folded so far (``words`` grew: a ``{*}`` remembered may now
        be a word); the cardinality guard's counts stay."""
        with self._lock:
            self.memo.clear()
