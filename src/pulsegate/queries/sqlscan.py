r"""The SQL scanner behind fingerprints: one forward pass, linear by construction, fail-closed.

``scan(sql, dialect)`` returns the statement's tokens with every literal replaced by
``?``: keywords and identifiers (lower-cased; quoted identifiers verbatim), operators and
bind placeholders (``?``, ``%s``, ``%(x)s``, ``:x``, ``$1``, ``@x`` -> ``?``) are kept,
comments are dropped, and everything else -- string, number and boolean literals, and
any character the scanner cannot classify -- becomes ``?``.

**Dialect.** Quoting differs between databases, and a scanner that misjudges where a
literal ends prints the rest of it as identifiers. ``dialect`` is what the ORM reports
(SQLAlchemy's ``dialect.name``, Django's ``connection.vendor``); the rules are in
:mod:`pulsegate.queries.sqldialects` (:data:`DIALECTS`):

* PostgreSQL: dollar quotes ``$$…$$`` / ``$tag$…$tag$``, ``E'…'`` with backslash escapes,
  nested ``/* /* */ */`` comments, ``"…"`` identifiers, ``[`` an operator (``ARRAY['…']``);
* MySQL/MariaDB: ``#`` comments, ``--`` a comment only before white space, ``"…"`` a
  string, backslash escapes;
* SQLite: ``[…]`` identifiers, ``"…"`` an identifier where one is expected and a string
  elsewhere (SQLite's fallback), ``$name`` parameters;
* SQL Server: ``[…]`` identifiers, nested comments, ``#temp`` tables;
* Oracle: ``q'[…]'`` quotes; any other name: *generic* (the union of the above).

**Fail-closed.** Where the real boundary depends on a server setting the scanner cannot
see (PostgreSQL's ``standard_conforming_strings``, MySQL's ``NO_BACKSLASH_ESCAPES``) or on
a dialect it was not told, and the readings disagree -- a quote after an odd run of
backslashes, a ``/*`` inside a comment of a dialect that does not nest them, a dollar
quote or ``[`` of unknown meaning, a line comment with a bare carriage return -- the
whole rest of the statement folds into one ``?``. Unterminated literals run to the end.

**Linear, bounded.** Each character is looked at a bounded number of times: the token
regex's alternatives are single character classes with greedy runs that cannot fail
after a long scan, literals and comments are consumed by ``str.find``/class searches
that only move forward, look-ahead stops at the first character that decides, and
anything unterminated ends the scan. Only the first :data:`MAX_SCAN` characters are
scanned; a longer tail folds into one ``...`` marker.
"""

from __future__ import annotations

import re

from pulsegate.queries.sqldialects import DIALECTS, GENERIC, POSTGRESQL, DialectRules, rules_for

__all__ = ["DIALECTS", "MAX_SCAN", "DialectRules", "rules_for", "scan"]

#: Characters scanned per statement; the rest folds into the ``...`` marker.
MAX_SCAN = 8192


# Every alternative starts with its own character class and ends in a greedy run that
# cannot fail after it started (``%(x)s`` is bounded; the quoted forms are unrolled
# loops ``q[^q]*(?:qq[^q]*)*q`` with one way to match), so a match never backtracks far.
# Quoted tokens the regex takes are complete in the standard reading; whatever needs the
# dialect's finer rules (prefixes, comments, ``[``, ``$``, ``#``, unterminated quotes,
# backslashes) is a ``special``, consumed by hand before the regex resumes.
_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<pfx>(?:[nN][qQ]|[uU]&|[eEnNbBxXqQ])')
    | (?P<word>[^\W\d][\w$]*)
    | (?P<str>'[^']*(?:''[^']*)*')
    | (?P<dq>"[^"]*(?:""[^"]*)*")
    | (?P<bq>`[^`]*(?:``[^`]*)*`)
    | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<cast>::)
    | (?P<ph>\?\d*|%(?:\(\w{0,64}\))?s|:[^\W\d]\w*|:\d+|\$\d+|@@?[^\W\d][\w$]*)
    | (?P<special>--|/\*|['"`\[$\#])
    | (?P<op>[-+*/%=<>!|&^~,;().:@?{}\]])
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERAL_WORDS = frozenset({"true", "false"})
_NO_SPACE_BEFORE = frozenset({",", ")", ".", "::", ";", "]"})
_NO_SPACE_AFTER = frozenset({"(", ".", "::", "["})
# Keywords keep their space before "(" (``in (?)``, ``values (?)``); function names
# and table names do not (``count(*)``, ``insert into t(a)`` is rare and harmless).
_SPACED_KEYWORDS = frozenset({
    "in", "values", "as", "on", "from", "where", "and", "or", "not", "exists", "join",
    "using", "select", "into", "over", "filter", "within", "when", "then", "else", "by",
    "set", "union", "all", "any", "some", "with", "recursive", "between", "like", "is",
    "case", "returning", "having", "limit", "offset", "lateral", "table"})
# Where SQLite (and the generic rules) take a double-quoted token for an identifier.
_NAME_AFTER = frozenset({"from", "join", "into", "update", "table", "as", "."})
_BRACKET_NAME = re.compile(r"[\w $#@.\-]{1,128}")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$?")
_FOLD = -1
_BACKSLASH_OR_QUOTE = re.compile(r"['\\]")  # E'…' strings: the only backslash-escaped quote
_Q_CLOSE = {"[": "]", "(": ")", "{": "}", "<": ">"}


def _quoted_end(s: str, i: int, q: str, backslash: bool | None) -> int:
    """End of the quoted token opened by ``s[i] == q`` (doubled ``qq`` escapes it), or
    :data:`_FOLD` when it is unterminated or the backslash readings disagree."""
    n = len(s)
    j = i + 1
    if backslash:
        while True:
            m = _BACKSLASH_OR_QUOTE.search(s, j)
            if m is None:
                return _FOLD
            k = m.start()
            if s[k] == "\\" or (k + 1 < n and s[k + 1] == q):
                j = k + 2  # an escape, or a doubled quote
            else:
                return k + 1
    while True:
        k = s.find(q, j)
        if k < 0:
            return _FOLD
        if backslash is None and k > j and s[k - 1] == "\\":
            run = 1  # the run lies inside [j, k): s[j - 1] is a quote
            while k - run > j and s[k - run - 1] == "\\":
                run += 1
            if run & 1:
                return _FOLD  # escaped under backslash rules, a boundary under standard ones
        if k + 1 < n and s[k + 1] == q:
            j = k + 2
        else:
            return k + 1


def _block_comment_end(s: str, i: int, nested: bool) -> int:
    """End of the ``/*`` comment at ``i`` (``len(s)`` when unterminated); :data:`_FOLD`
    when a dialect that does not nest comments finds ``/*`` inside one."""
    n = len(s)
    close = s.find("*/", i + 2)
    if not nested:
        inner = s.find("/*", i + 2, n if close < 0 else close)
        if inner >= 0:
            return _FOLD
        return n if close < 0 else close + 2
    depth, j = 1, i + 2
    opening = s.find("/*", j)
    while True:
        if close < 0:
            return n
        if 0 <= opening < close:
            depth += 1
            j = opening + 2
            opening = s.find("/*", j)
            if close < j:
                close = s.find("*/", j)
            continue
        depth -= 1
        j = close + 2
        if depth == 0:
            return j
        close = s.find("*/", j)
        if 0 <= opening < j:
            opening = s.find("/*", j)


def _line_comment_end(s: str, i: int) -> int:
    """End of a line comment at ``i``; :data:`_FOLD` when it holds a bare ``\\r`` (some
    databases end the comment there, others at ``\\n``)."""
    nl = s.find("\n", i)
    end = len(s) if nl < 0 else nl
    cr = s.find("\r", i, end)
    if cr >= 0 and cr != end - 1:
        return _FOLD
    return end


def _next_char(s: str, k: int) -> str:
    n = len(s)
    while k < n and s[k] in " \t\r\n\f\v":
        k += 1
    return s[k] if k < n else ""


def scan(sql: str, rules: DialectRules = GENERIC, limit: int | None = MAX_SCAN) -> list[str]:
    """The redacted tokens of ``sql``, separators included (``"".join`` gives the text);
    only its first ``limit`` characters are read (``None``: all of them).

    >>> "".join(scan("SELECT a FROM t WHERE b = 'x' -- note"))
    'select a from t where b = ?'
    >>> "".join(scan("select $$it's$$, e'\\\\'' || b", rules_for("postgresql")))
    'select ?, ? | | b'
    """
    truncated = limit is not None and len(sql) > limit
    s = sql[:limit] if truncated else sql
    if truncated:
        # Cut at the last separator near the cap, not inside a name or placeholder
        # (cutting inside a literal just leaves it unterminated: it still folds).
        cut = max(s.rfind(" ", -256), s.rfind(",", -256), s.rfind("\n", -256))
        if cut > 0:
            s = s[:cut]
    n = len(s)
    out: list[str] = []
    append = out.append
    prev = ""
    prev2 = ""
    prev_word = False
    columns = False  # inside ``INSERT INTO t (...)``'s column list
    pos = 0
    folded = False
    finditer = _TOKEN.finditer
    dq = rules.dq
    may_escape = rules.backslash is not False  # backslashes may escape quotes
    while pos < n and not folded:
        resume = n
        special = False
        for m in finditer(s, pos):
            kind = m.lastgroup
            if kind == "ws":
                continue
            is_word = False
            hand = False  # consumed by hand (_special), then the regex resumes
            if kind == "word":
                tok = m.group().lower()
                if tok in _LITERAL_WORDS:
                    tok = "?"
                else:
                    is_word = True
            elif kind == "op" or kind == "cast":
                tok = m.group()
            elif kind == "num" or kind == "ph" or kind == "other":
                tok = "?"
            elif kind == "str":
                tok = "?"
                hand = may_escape and "\\" in m.group()
            elif kind == "dq":
                tok = m.group()
                if dq == "identifier":
                    pass
                elif may_escape and "\\" in tok:
                    hand = True
                elif dq == "string" or not _names_here(s, m.end(), prev, columns):
                    tok = "?"
            elif kind == "bq":
                tok = m.group() if rules.backtick else "?"
            else:
                lead = m.group()
                if lead == "[" and rules.brackets == "operator":
                    tok = "["
                elif lead == "#" and rules.hash == "operator":
                    tok = "#"
                elif (lead == "$" and rules.dollar == "param") or (lead == "#" and rules.hash == "other"):
                    tok = "?"
                else:
                    hand = True
            if hand:
                lead = m.group() if kind == "special" or kind == "pfx" else m.group()[0]
                end, tok, is_word = _special(s, m.start(), lead, kind == "pfx", rules, prev,
                                             columns)
                if end == _FOLD:
                    tok, folded = "?", True  # the rest may be literal: it all folds
                resume = n if end == _FOLD else end
                special = True
                if tok == "":
                    break  # a comment: nothing to emit
            if out and tok not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER and not (
                    (tok == "(" or tok == "[") and prev_word and prev not in _SPACED_KEYWORDS):
                append(" ")
            append(tok)
            if tok == "(":
                columns = prev2 == "into"
            elif tok == ")":
                columns = False
            prev2 = prev
            prev = tok
            prev_word = is_word
            if special:
                break
        pos = resume
    if truncated and not folded:
        append(" ...")
    return out


def _names_here(s: str, end: int, prev: str, columns: bool) -> bool:
    """Whether a double-quoted token ending at ``end`` stands where SQLite expects a
    name: after ``FROM``/``JOIN``/``INTO``/``UPDATE``/``TABLE``/``AS`` or a dot, before
    a dot, in an ``INSERT`` column list, or as the target of a ``SET`` assignment.
    Anywhere else SQLite would read an unknown name as a string: it is redacted."""
    if prev in _NAME_AFTER:
        return True
    after = _next_char(s, end)
    return (after == "." or (columns and (prev == "(" or prev == ","))
            or ((prev == "set" or prev == ",") and after == "=" and not s.startswith("==", end)))


def _special(s: str, i: int, lead: str, prefixed: bool, rules: DialectRules, prev: str,
             columns: bool) -> tuple[int, str, bool]:
    """``(end, token, is_word)`` for the construct at ``i``: ``token`` ``""`` emits
    nothing (comments), ``end`` :data:`_FOLD` folds the rest of the statement. Quoted
    names are not words for spacing (``insert into "t" (a)`` keeps its space)."""
    if prefixed:
        q = i + len(lead) - 1  # the quote
        letter = lead[0].lower()
        if lead[-2] in "qQ":
            if rules.qquote is None:
                return _FOLD, "?", False
            if rules.qquote and q + 1 < len(s):
                closing = _Q_CLOSE.get(s[q + 1], s[q + 1]) + "'"
                k = s.find(closing, q + 2)
                return (len(s) if k < 0 else k + 2), "?", False
        # Elsewhere ``q'`` is a name before an ordinary string; both fold into one "?".
        backslash = True if letter == "e" and rules is POSTGRESQL else rules.backslash
        return _quoted_end(s, q, "'", backslash), "?", False
    if lead == "'":
        return _quoted_end(s, i, "'", rules.backslash), "?", False
    if lead == '"':
        if rules.dq == "identifier":
            end = _quoted_end(s, i, '"', False)
            return end, ("?" if end == _FOLD else s[i:end]), False
        end = _quoted_end(s, i, '"', rules.backslash if rules.dq == "string" else
                          (False if rules.backslash is False else None))
        if end == _FOLD or rules.dq == "string":
            return end, "?", False
        return end, (s[i:end] if _names_here(s, end, prev, columns) else "?"), False
    if lead == "`":
        end = _quoted_end(s, i, "`", False)
        return end, (s[i:end] if rules.backtick and end != _FOLD else "?"), False
    if lead == "--":
        if rules.dash_space is not False and not (i + 2 >= len(s) or s[i + 2] <= " "):
            if rules.dash_space is None:
                return _FOLD, "?", False
            return i + 1, "-", False  # MySQL: "--x" is two minus signs
        end = _line_comment_end(s, i)
        return end, ("?" if end == _FOLD else ""), False
    if lead == "/*":
        end = _block_comment_end(s, i, rules.nested)
        return end, ("?" if end == _FOLD else ""), False
    if lead == "#":
        if rules.hash == "comment":
            end = _line_comment_end(s, i)
            return end, ("?" if end == _FOLD else ""), False
        if rules.hash == "operator":
            return i + 1, "#", False
        return (_FOLD if rules.hash == "either" else i + 1), "?", False
    if lead == "[":
        if rules.brackets == "operator":
            return i + 1, "[", False
        close = s.find("]", i + 1)
        name = _BRACKET_NAME.match(s, i + 1)
        if name is not None and name.end() == close:
            return close + 1, s[i:close + 1], False
        if rules.brackets == "either":
            return _FOLD, "?", False
        end = _quoted_end(s, i, "]", False)  # ``]]`` escapes ``]``
        return end, "?", False
    # "$": a dollar quote (PostgreSQL), a $name parameter (SQLite) or a lone "$".
    m = _DOLLAR_TAG.match(s, i)
    tag = m.group() if m is not None else "$"
    if len(tag) > 1 and tag.endswith("$"):
        if rules.dollar == "either":
            return _FOLD, "?", False
        if rules.dollar == "quote":
            k = s.find(tag, i + len(tag))
            return (len(s) if k < 0 else k + len(tag)), "?", False
    return i + len(tag) - (1 if len(tag) > 1 and tag.endswith("$") else 0), "?", False
