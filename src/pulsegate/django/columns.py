"""Which concrete fields of a wide Django model the code reads, per statement that loaded
the instances: the Django tracker of :class:`pulsegate.advisor.columns.ColumnReads`
(``wide_select`` → ``.only("title", "author_id")``). Sampled: only in the advisor's
windows (2 s a minute), only for models of tables a ``wide_select`` finding names.

**The hook, and why this one.** A loaded field's value sits in the instance
``__dict__``; the class attribute is a ``DeferredAttribute``, a *non-data* descriptor,
which Python consults only when the instance has no such key -- so reading a loaded
field runs no code that could see it. For the window, each field's descriptor object
gets a subclass of its own class as its class, adding ``__set__``/``__delete__`` that
store into / drop from ``__dict__`` exactly as plain assignment did: a *data*
descriptor, which Python consults first, so every read of the field runs ``__get__``
(record, then Django's own). Foreign keys' ``ForeignKeyDeferredAttribute`` is already a
data descriptor: only ``__get__`` is added. The model class attribute is then re-set to
the same object, which makes CPython drop its attribute caches and specialised
instructions for that class. At the window's end each descriptor gets its own class back
(and the class attribute is re-set again): outside windows the descriptors are Django's
and a read costs what it costs without pulsegate. The alternatives: a model
``__getattribute__`` would cost every attribute read of the model (methods, ``_state``,
managers, not only fields) and changes a type slot; a swapped ``DeferredAttribute``
subclass at class creation would cost every read for the process's life.

**Which statement loaded an instance.** The model's ``from_db`` (what ``ModelIterable``,
``select_related``'s populators and ``raw()`` call per row) is wrapped for the window
(the model's own ``from_db``, if it defines one, is called as before). It tags the new
instance's ``_state`` with ``(window, slot)`` (two ints: a pickled instance stays
picklable; the window's number is random, so a tag unpickled elsewhere is ignored): the
slot of the newest statement the current request or ``capture()`` recorded whose text
names the model's quoted table (each statement scanned once per model: an iterator's
chunk read after the loop's own statements still finds its statement; a model's first
row looks back at most ``LOOK_BACK``). No sink, a truncated statement list or no such
statement: not attributed (counted). A read of a tagged instance adds the field's
attname to its slot; a relation (``book.author``) reads ``author_id`` through its
descriptor on a cache miss, so traversal is seen as a read of ``author_id``; a
``select_related`` join is handled by the rule (:func:`pulsegate.advisor.columns.refine`
keeps a foreign key to a joined table).

**Bounds and faults.** A window holds at most ``MAX_SLOTS`` (statement text, model)
slots, each a row count and a set of attnames, and ``MAX_MEMO`` remembered scan positions
(cleared when full); instances carry their tag and drop it with themselves; all of it
goes at the window's close. Statement texts are the application's (parameters are never here). Any
fault while recording is counted (``hook_faults``) and the read goes on; opening and
closing undo each step independently, so a fault leaves nothing swapped behind.
Descriptors that are not ``DeferredAttribute`` subclasses cannot be seen: their fields
count as read (never advised away). Not seen: ``obj.__dict__`` reads, instances loaded
before the window, parents of multi-table inheritance through a child's row.
"""

from __future__ import annotations

import random
import sys
import threading
from typing import TYPE_CHECKING, Any

from pulsegate.context import query_sink
from pulsegate.queries.events import hook_faults
from pulsegate.queries.fingerprint import FingerprintCache

if TYPE_CHECKING:
    from pulsegate.advisor.columns import ColumnReads

__all__ = ["DjangoColumns"]

#: (statement text, model) slots one window attributes rows to; beyond: counted
MAX_SLOTS = 256
#: statements looked back for the last one naming the model's table
LOOK_BACK = 4
_TAG = "_pulsegate_columns"
#: (statement list, model) pairs whose scanned length a window remembers
MAX_MEMO = 1024

#: the window being sampled (one at a time per process), None outside windows
_window: _Window | None = None
#: descriptor class -> its recording subclass
_subclasses: dict[type, type] = {}


class _Window:
    """What one window saw: per slot, the rows loaded and the attnames read."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.slots: dict[tuple[str, type], int] = {}
        self.keys: list[tuple[str, str | None, type]] = []
        self.rows: list[int] = []
        self.reads: list[set[str]] = []
        #: (id of a statement list, model) -> (that list, statements scanned, slot)
        self.memo: dict[tuple[int, type], tuple[list[Any], int, int | None]] = {}
        self.lock = threading.Lock()
        self.unattributed = 0
        self.dropped = 0

    def loaded(self, obj: Any, model: type, needles: tuple[str, str]) -> None:
        """``from_db`` built ``obj``: tag it with the slot of the statement that loaded it
        -- the newest of the sink's statements naming the model's table. Per (statement
        list, model) the statements already looked at are remembered, so each is scanned
        once however many rows follow (an ``iterator()``'s later chunks, read after the
        loop's own statements, still find theirs)."""
        sink = query_sink.get()
        queries = getattr(sink, "queries", None)
        if not queries or getattr(sink, "query_count", -1) != len(queries):
            self.unattributed += 1
            return
        n = len(queries)
        key = (id(queries), model)
        memo = self.memo.get(key)
        if memo is None or memo[0] is not queries or memo[1] > n:
            start, slot = max(0, n - LOOK_BACK), None  # this model's first row here
        else:
            start, slot = memo[1], memo[2]
        for i in range(n - 1, start - 1, -1):  # newest first, each statement once
            ev = queries[i]
            if needles[0] in ev.sql or needles[1] in ev.sql:
                slot = self._slot(ev.sql, ev.db, model)
                break
        if len(self.memo) >= MAX_MEMO:
            self.memo.clear()
        self.memo[key] = (queries, n, slot)
        if slot is None:
            self.unattributed += 1
        elif slot >= 0:
            self.rows[slot] += 1
            setattr(obj._state, _TAG, (self.generation, slot))

    def _slot(self, sql: str, db: str | None, model: type) -> int:
        with self.lock:
            slot = self.slots.get((sql, model))
            if slot is not None:
                return slot
            if len(self.keys) >= MAX_SLOTS:
                self.dropped += 1
                return -1
            slot = self.slots[(sql, model)] = len(self.keys)
            self.keys.append((sql, db, model))
            self.rows.append(0)
            self.reads.append(set())
            return slot

    def read(self, obj: Any, name: str) -> None:
        tag = getattr(obj._state, _TAG, None)
        if tag is not None and tag[0] == self.generation and 0 <= tag[1] < len(self.reads):
            self.reads[tag[1]].add(name)


def _recording(base: type) -> type:
    """``base``'s subclass whose ``__get__`` records the read first (and which is a data
    descriptor: ``__set__``/``__delete__`` on the instance ``__dict__`` where ``base``
    has none)."""
    sub = _subclasses.get(base)
    if sub is not None:
        return sub

    def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
        if instance is not None:
            w = _window
            if w is not None:
                try:
                    w.read(instance, self.field.attname)
                except Exception as exc:  # fail open: the read goes on
                    hook_faults.record("django column read", exc)
        return base.__get__(self, instance, cls)  # type: ignore[attr-defined]

    ns: dict[str, Any] = {"__get__": __get__, "__module__": __name__}
    if not hasattr(base, "__set__"):
        def __set__(self: Any, instance: Any, value: Any) -> None:
            instance.__dict__[self.field.attname] = value

        ns["__set__"] = __set__
    if not hasattr(base, "__delete__"):
        def __delete__(self: Any, instance: Any) -> None:
            try:
                del instance.__dict__[self.field.attname]
            except KeyError:
                raise AttributeError(self.field.attname) from None

        ns["__delete__"] = __delete__
    sub = _subclasses[base] = type(f"Recording{base.__name__}", (base,), ns)
    return sub


def _loader(model: type, own: Any, needles: tuple[str, str]) -> classmethod[Any, Any, Any]:
    """``model.from_db`` for the window: the model's own (or inherited) one, then the tag."""
    def from_db(cls: Any, *args: Any, **kwargs: Any) -> Any:
        if own is not None:
            new = own.__get__(None, cls)(*args, **kwargs)
        else:
            new = super(model, cls).from_db(*args, **kwargs)  # type: ignore[arg-type, misc]
        w = _window
        if w is not None:
            try:
                w.loaded(new, model, needles)
            except Exception as exc:  # fail open: the row is returned
                hook_faults.record("django column load", exc)
        return new

    return classmethod(from_db)


def _owner(model: type, name: str) -> tuple[type, Any]:
    for klass in model.__mro__:
        if name in vars(klass):
            return klass, vars(klass)[name]
    return model, None


class DjangoColumns:
    """Opens and closes the window on the models of a table (see the module's text)."""

    def __init__(self) -> None:
        #: (class holding it, attname, descriptor, its own class) per swapped descriptor
        self.swapped: list[tuple[type, str, Any, type]] = []
        #: (model, its own from_db or None) per wrapped loader
        self.loaders: list[tuple[type, Any]] = []
        #: model -> (table, columns, pk attname, fk attname -> related table, unseen)
        self.models: dict[type, tuple[str, list[str], str, dict[str, str], set[str]]] = {}
        self.fingerprints = FingerprintCache(512)
        #: whether the open window is this tracker's
        self.owner = False
        self.counts = {"windows": 0, "unattributed": 0, "dropped": 0, "busy": 0}

    def ready(self) -> bool:
        mod = sys.modules.get("django.apps")
        return mod is not None and bool(mod.apps.ready)

    def open(self, table: str, reads: ColumnReads) -> None:
        global _window
        from django.apps import apps
        from django.db.models.query_utils import DeferredAttribute

        if _window is not None and not self.owner:
            self.counts["busy"] += 1  # another tracker's window: one at a time
            return
        if _window is None:
            # a tag outlives the window in a pickled instance (a cache): the window's
            # number is random, so another window or process never takes it for its own
            _window = _Window(random.getrandbits(62))
            self.owner = True
            self.counts["windows"] += 1
        for model in apps.get_models():
            opts = model._meta
            if opts.db_table != table or opts.proxy or model in self.models:
                continue
            own = vars(model).get("from_db")
            if own is not None and not isinstance(own, classmethod):
                continue  # an unusual from_db: left alone, the model is not sampled
            fields = list(opts.local_concrete_fields)
            links = {f.attname: f.related_model._meta.db_table for f in fields
                     if f.is_relation and f.related_model is not None}
            unseen: set[str] = set()
            self.models[model] = (table, [f.attname for f in fields], opts.pk.attname,
                                  links, unseen)
            for f in fields:
                owner, descr = _owner(model, f.attname)
                if not isinstance(descr, DeferredAttribute) or type(descr) in _subclasses.values():
                    unseen.add(f.attname)  # cannot be seen: counts as read
                    continue
                base = type(descr)
                descr.__class__ = _recording(base)
                self.swapped.append((owner, f.attname, descr, base))
                setattr(owner, f.attname, descr)  # the class's caches see the new type
            self.loaders.append((model, own))
            loader = _loader(model, own, (f'"{table}"', f"`{table}`"))
            setattr(model, "from_db", loader)  # noqa: B010 (a class attribute, typed)

    def close(self, reads: ColumnReads) -> None:
        """Undo every swap (each on its own: a fault is counted, the rest goes on), then
        add what the window saw to ``reads``."""
        global _window
        w = None
        if self.owner:
            w, _window = _window, None
            self.owner = False
        for owner, name, descr, base in reversed(self.swapped):
            try:
                descr.__class__ = base
                setattr(owner, name, descr)
            except Exception as exc:
                reads.fault("django column restore", exc)
        self.swapped.clear()
        for model, own in reversed(self.loaders):
            try:
                if own is None:
                    delattr(model, "from_db")
                else:
                    setattr(model, "from_db", own)  # noqa: B010
            except Exception as exc:
                reads.fault("django loader restore", exc)
        self.loaders.clear()
        models, self.models = self.models, {}
        if w is not None:
            self._fold(w, models, reads)

    def _fold(self, w: _Window, models: dict[type, Any], reads: ColumnReads) -> None:
        """Each slot's rows and reads into the evidence of its statement's fingerprint."""
        self.counts["unattributed"] += w.unattributed
        self.counts["dropped"] += w.dropped
        counted: set[int] = set()
        for slot, (sql, db, model) in enumerate(list(w.keys)):
            known = models.get(model)
            if known is None:
                continue
            table, columns, pk, links, unseen = known
            fp = self.fingerprints.get(sql, db).id
            seen = reads.fingerprint_seen(table, fp, model.__name__, columns)
            if seen is None:
                continue
            seen.pk, seen.links = pk, links
            seen.read |= (w.reads[slot] | unseen) & set(columns)
            seen.rows += w.rows[slot]
            if id(seen) not in counted:
                counted.add(id(seen))
                seen.windows += 1
