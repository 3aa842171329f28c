"""pytest plugin (entry point ``pytest11``): catch N+1 queries and query budgets in tests.

* ``--pulsegate-nplusone=fail|warn|off`` (default ``warn``, or the
  ``pulsegate_nplusone`` ini value): every test runs inside a
  :func:`pulsegate.capture`; on detections the test fails, or gets a
  :class:`PulseGateQueryWarning`, or nothing happens.
* ``@pytest.mark.pulsegate(max_queries=N, nplusone="fail")``: per-test budget and policy
  (the marker wins over the option).
* ``@pytest.mark.pulsegate(allow=["Author.books", "*.get()", "app/views.py:12"])`` and
  the ``pulsegate_allow`` ini lines: an allow-list, as django-zeal's ``ZEAL_ALLOWLIST``.
  Each entry is an ``fnmatch`` pattern matched against a detection's relationship
  (``Model.field``), its call site (``path:line``, with or without `` in function``)
  and its kind (``repeated_query``); a detection any entry matches is not reported.
* Requests served inside the test count too: a test that only calls an endpoint through
  Flask's or Django's test client or Starlette's ``TestClient`` fails (or warns) when
  that request has an N+1 or a repeated query, and the message names the request
  (``in request GET /authors (path /authors)``). The app must run pulsegate's
  middleware; its requests' detections reach the test's capture through
  :mod:`pulsegate.queries.served` (also from other threads, while the test runs).
  ``max_queries`` counts the test's own statements only.
* fixture ``pulsegate_capture``: the test's own :class:`~pulsegate.queries.Capture`
  (``.queries``, ``.query_count``, ``.detections``, ``.report()``).
* Which rule: django-zeal's by default (a relationship lazily loaded for two or more
  instances of one multi-row result from one line). ``pulsegate_rule = nplusone`` in the
  ini file, or ``@pytest.mark.pulsegate(rule="nplusone")``, switches the test's own
  statements to nplusone's (one lazy load of an instance fetched by a list form --
  ``.all()``, iteration -- is already an N+1; ``get``/``first``/``one`` are single
  loads): ``capture(single_lazy_loads=True)``. Requests served inside the test are
  judged by their gate's detector: its option ``single_lazy_loads`` (false by default).

A failure message lists each detection with its call site, the redacted SQL, the count
and the fix. With the policy ``off`` and no ``max_queries`` the test is not wrapped.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from pulsegate.queries import forms
from pulsegate.queries.capture import Capture
from pulsegate.queries.nplusone import Detection

_KEY = pytest.StashKey[Capture]()
_POLICIES = ("fail", "warn", "off")
_RULES = ("zeal", "nplusone")


class PulseGateQueryWarning(UserWarning):
    """Query problems found in a test run with ``--pulsegate-nplusone=warn``."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pulsegate")
    group.addoption("--pulsegate-nplusone", action="store", default=None,
                    choices=_POLICIES,
                    help="What to do when a test runs N+1 queries, repeated identical "
                         "queries or write loops: fail | warn | off (default warn, or the "
                         "pulsegate_nplusone ini value).")
    parser.addini("pulsegate_nplusone", "Default for --pulsegate-nplusone.", default="warn")
    parser.addini("pulsegate_allow", "Relationships, call sites or kinds (fnmatch patterns) "
                                     "never reported in any test.", type="linelist", default=[])
    parser.addini("pulsegate_rule", "N+1 rule: zeal (two lazy loads of one multi-row result "
                                    "from one line; default) or nplusone (one lazy load of an "
                                    "instance fetched by a list form).", default="zeal")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pulsegate(max_queries=None, nplusone=None, allow=(), rule=None): per-test "
                   "SQL budget, N+1 policy (fail | warn | off), allow-list (relationships, "
                   "call sites or kinds, fnmatch patterns) and N+1 rule (zeal | nplusone).")


def _policy(item: pytest.Item) -> tuple[str, int | None, list[str]]:
    policy = item.config.getoption("--pulsegate-nplusone") or \
        str(item.config.getini("pulsegate_nplusone") or "warn")
    max_queries: int | None = None
    allow = [str(p) for p in item.config.getini("pulsegate_allow") or ()]
    marker = item.get_closest_marker("pulsegate")
    if marker is not None:
        kwargs: dict[str, Any] = dict(marker.kwargs)
        if kwargs.get("nplusone") is not None:
            policy = str(kwargs["nplusone"])
        if kwargs.get("max_queries") is not None:
            max_queries = int(kwargs["max_queries"])
        extra = kwargs.get("allow") or ()
        if isinstance(extra, str):
            extra = [extra]
        allow += [str(p) for p in extra]
    if policy not in _POLICIES:
        raise pytest.UsageError(f"pulsegate: nplusone must be one of {_POLICIES}, got {policy!r}")
    return policy, max_queries, allow


def _rule(item: pytest.Item) -> str:
    rule = str(item.config.getini("pulsegate_rule") or "zeal")
    marker = item.get_closest_marker("pulsegate")
    if marker is not None and marker.kwargs.get("rule") is not None:
        rule = str(marker.kwargs["rule"])
    return rule


def _capture(item: pytest.Item) -> Capture:
    """The test's capture, judging by the rule its marker or the ini file names."""
    return Capture(watch_requests=True, single_lazy_loads=_rule(item) == "nplusone")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """nplusone's rule judges by each query's form, which SQLAlchemy's hooks mark only
    once some detector asked: ask before any fixture loads its objects."""
    rules = {_rule(item) for item in items}
    wrong = rules.difference(_RULES)
    if wrong:
        raise pytest.UsageError(f"pulsegate: rule must be one of {_RULES}, got {min(wrong)!r}")
    if "nplusone" in rules:
        forms.want()


def allowed(detection: Detection, patterns: list[str]) -> bool:
    """True when an allow-list pattern matches the detection's relationship, call site
    (``path:line`` or ``path:line in function``) or kind.

    >>> d = Detection("n_plus_one", "f", "sql", 2, 1.0, 1.0, "app.py:7 in view",
    ...               "Author.books", "fix", 1.0)
    >>> allowed(d, ["Author.*"]), allowed(d, ["app.py:7"]), allowed(d, ["Book.*"])
    (True, True, False)
    """
    site = detection.call_site or ""
    names = [n for n in (detection.relationship, site, site.split(" in ", 1)[0],
                         detection.kind) if n]
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    policy, max_queries, allow = _policy(item)
    cap = item.stash.get(_KEY, None)
    if cap is None and policy == "off" and max_queries is None:
        return (yield)
    own = cap is None
    if cap is None:
        cap = _capture(item)
        cap.__enter__()
    try:
        result = yield
    finally:
        if own:
            cap.__exit__(None, None, None)
    problems = []
    if max_queries is not None and cap.query_count > max_queries:
        problems.append(f"{cap.query_count} SQL statements ran; the test allows at most "
                        f"{max_queries} (@pytest.mark.pulsegate(max_queries={max_queries}))")
    detections = [d for d in cap.detections if not allowed(d, allow)]
    served = [(r, d) for r, d in cap.served if not allowed(d, allow)]
    if policy != "off" and (detections or served):
        problems.append(cap.report(detections, served))
    if problems:
        message = "pulsegate: " + "\n".join(problems)
        if policy == "fail" or (max_queries is not None and cap.query_count > max_queries):
            pytest.fail(message, pytrace=False)
        _warn_at_test(item, message)
    return result


def _warn_at_test(item: pytest.Item, message: str) -> None:
    """Warn with the test's own file and line (where ``def test_...`` is), so pytest's
    warnings summary points at the test rather than at this plugin."""
    path, lineno, _ = item.reportinfo()
    module = getattr(getattr(item, "module", None), "__name__", None) or "pulsegate"
    warnings.warn_explicit(PulseGateQueryWarning(message), PulseGateQueryWarning,
                           str(path), (lineno or 0) + 1, module=module)


@pytest.fixture()
def pulsegate_capture(request: pytest.FixtureRequest) -> Generator[Capture, None, None]:
    """The test's capture of SQL statements (the one the plugin checks at the end)."""
    with _capture(request.node) as cap:
        request.node.stash[_KEY] = cap
        yield cap
    del request.node.stash[_KEY]
