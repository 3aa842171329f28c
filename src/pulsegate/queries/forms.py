"""Query forms for nplusone's rule (option ``single_lazy_loads``, off by default).

nplusone judges a lazy load by the *form* of the query its parent instance came from:
a list form (``.all()``, iteration, ``.scalars()``; Django: iterating a queryset,
``list(qs)``) is the ground of an N+1 even when it returned one row; a single-object
form (``get``, ``first``, ``one``, ``one_or_none``, ``session.get``; Django ``get()``,
``first()``, ``qs[0]`` -- a one-row slice) is not. The hooks record the form on the
result's :class:`~pulsegate.queries.events.ResultToken` (``single``).

Django's hooks read the form where they already tag a result (a queryset's limits, one
attribute compare per query). SQLAlchemy's single forms are ``Result`` methods run for
Core and ORM results alike, so they are wrapped only once some detector asked for the
rule (:func:`want`): with the default rule, nothing of this runs, per statement or per
row. An adapter registers its installer with :func:`when_wanted`.

The forms are nplusone's (https://github.com/jmcarp/nplusone, MIT License, Copyright
2016 Joshua Carp; facts ported, no code): its Django patch reports a multi-row ``load``
from ``QuerySet._fetch_all`` unless the high mark minus the low mark is 1, and an
``ignore_load`` from ``QuerySet.get``; its SQLAlchemy extension a ``load`` from
``Query.__iter__`` unless the limit minus the offset is 1, and an ``ignore_load`` from
``Query.one``/``one_or_none`` (where ``get`` and ``first`` end). A lazy load is an N+1
when its instance was loaded and never ignored. pulsegate keeps these per instance
object rather than per (model, primary key), and an instance refreshed by a
single-object form keeps the form of the query that built it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pulsegate.queries.events import hook_faults

__all__ = ["want", "wanted", "when_wanted"]

#: True once a detector with ``single_lazy_loads=True`` was built in this process.
wanted = False
_installers: list[Callable[[], None]] = []
_lock = threading.Lock()


def want() -> None:
    """A detector judges by form: install every registered adapter's marks (once)."""
    global wanted
    with _lock:
        if wanted:
            return
        wanted = True
        todo = list(_installers)
    for install in todo:
        _run(install)


def when_wanted(install: Callable[[], None]) -> None:
    """Run ``install`` (idempotent) now if the rule is wanted, else when it first is."""
    with _lock:
        if install not in _installers:
            _installers.append(install)
        now = wanted
    if now:
        _run(install)


def _run(install: Callable[[], None]) -> None:
    try:
        install()
    except Exception as exc:  # fail open: the option then sees every result as a list
        hook_faults.record("query forms", exc)
