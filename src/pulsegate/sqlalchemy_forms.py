"""nplusone's rule on SQLAlchemy (option ``single_lazy_loads``): which instances were
fetched by a single-object form (:mod:`pulsegate.queries.forms`).

The single forms are ``Result`` methods (``first``, ``one``, ``one_or_none``,
``scalar*``) shared with Core, so they are wrapped only once a detector asked for the
rule; each then marks the instances it returns (per call, nothing per row). A lazy
load's parent so marked is a single load (``pulsegate.sqlalchemy._origin``); any
other ORM result is a list form.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.engine import Row

from pulsegate.queries import forms
from pulsegate.queries.events import ResultToken, hook_faults

__all__ = ["SINGLE"]

#: The attribute a singly fetched instance's ``InstanceState`` keeps its own source in
#: (``ResultToken(rows=1, single=True)``): nplusone's rule judges by the query's form.
SINGLE = "_pulsegate_single"
#: The single-object forms: ``Query.first/one/one_or_none/get``, ``session.get``,
#: ``Session.scalar`` and the ORM's own get-by-primary-key all end in these methods.
_SINGLE_FORMS = (("Result", ("first", "one", "one_or_none", "scalar", "scalar_one",
                             "scalar_one_or_none")),
                 ("ScalarResult", ("first", "one", "one_or_none")))
_installed = False


def _install_forms() -> None:
    """Wrap the single-object ``Result`` methods (once; only when a detector asked for
    nplusone's rule, :mod:`pulsegate.queries.forms`): each marks the instances it
    returns as singly fetched. Per call, not per row; in every context, so a fixture's
    ``session.get`` is known as single inside the test."""
    global _installed
    if _installed:
        return
    _installed = True
    from sqlalchemy.engine import result as result_module

    for cls_name, names in _SINGLE_FORMS:
        cls = getattr(result_module, cls_name)
        for name in names:
            method = cls.__dict__.get(name)
            if method is not None:
                setattr(cls, name, _single_form(method))


def _single_form(method: Any) -> Any:
    @functools.wraps(method)
    def single_form(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = method(self, *args, **kwargs)
        if found is not None:
            _fetched_singly(self, found)
        return found

    return single_form


def _fetched_singly(result: Any, found: Any) -> None:
    """Mark what a single-object form returned -- unless the result refreshed an
    instance (expired attributes, ``session.refresh``): it keeps the form of the query
    that built it, as it keeps that query's origin
    (``pulsegate.sqlalchemy._remember_origin``)."""
    try:
        real = getattr(result, "_real_result", None) or result  # ScalarResult's source
        context = getattr(getattr(real, "raw", None), "context", None)
        if context is not None:
            load_opts = context.execution_options.get("_sa_orm_load_options")
            if getattr(load_opts, "_refresh_state", None) is not None:
                return
        for obj in found if isinstance(found, Row) else (found,):
            state = getattr(obj, "_sa_instance_state", None)
            if state is not None and SINGLE not in state.__dict__:
                state.__dict__[SINGLE] = (ResultToken(1, True), "")
    except Exception as exc:  # fail open
        hook_faults.record("sqlalchemy hook", exc)


forms.when_wanted(_install_forms)
