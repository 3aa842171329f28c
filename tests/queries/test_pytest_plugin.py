"""The pytest plugin, run in a child pytest through ``pytester``."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
# The child runs in-process and its captures forward to ours: do not judge them twice.
pytestmark = pytest.mark.pulsegate(nplusone="off")

NPLUSONE = '''
import pytest
from pulsegate.queries import QueryEvent
from pulsegate.context import query_sink

def run_loop(n):
    sink = query_sink.get()
    if sink is None:  # policy off, no budget: the plugin does not wrap the test
        return
    sink.add_query(QueryEvent(sql="SELECT * FROM author", duration_ms=1.0, params_count=0,
                              call_site="app.py:1 in view"))
    for i in range(n):
        sink.add_query(QueryEvent(sql="SELECT * FROM book WHERE author_id = ?", duration_ms=1.0,
                                  params_hash=i, params_count=1, call_site="app.py:7 in view",
                                  relationship="Author.books", load="collection", orm="django"))
'''


def test_fail_mode_shows_call_site_sql_count_and_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NPLUSONE + '''
def test_loop():
    run_loop(6)

def test_one_load():  # two or more loads from one line are an N+1; one is not
    run_loop(1)
''')
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*N+1 query loading Author.books: 6 statements*", "*at app.py:7 in view*",
                                 "*sql: select * from book where author_id = ?*",
                                 '*fix: prefetch_related("books")*'])


def test_warn_is_the_default_and_off_is_silent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NPLUSONE + '''
def test_loop():
    run_loop(6)
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PulseGateQueryWarning*"])
    # the warning points at the test (its `def` line), not at the plugin's own line
    result.stdout.fnmatch_lines(["*/test_warn_is_the_default_and_off_is_silent.py:*: "
                                 "PulseGateQueryWarning*", "*fix: prefetch_related*",
                                 "    def test_loop():"])
    assert "pytest_plugin.py" not in result.stdout.str()
    result = pytester.runpytest("--pulsegate-nplusone=off", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "PulseGateQueryWarning" not in result.stdout.str()


def test_marker_and_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NPLUSONE + '''
@pytest.mark.pulsegate(nplusone="fail")
def test_marked_fails():
    run_loop(5)

@pytest.mark.pulsegate(max_queries=3, nplusone="off")
def test_budget():
    run_loop(3)

@pytest.mark.pulsegate(max_queries=10)
def test_budget_ok(pulsegate_capture):
    run_loop(1)
    assert pulsegate_capture.query_count == 2
    assert pulsegate_capture.detections == []
''')
    result = pytester.runpytest("--pulsegate-nplusone=off", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*4 SQL statements ran; the test allows at most 3*"])


def test_allow_list_by_relationship_call_site_or_ini(pytester: pytest.Pytester) -> None:
    """A two-object fixture fails the test (the structural rule); an allow-list entry
    -- relationship, call site or ini line -- silences exactly what it names."""
    pytester.makepyfile(NPLUSONE.replace(
        'orm="django"))', 'orm="django", source=(token, "")))').replace(
        "def run_loop(n):", "from pulsegate.queries.events import ResultToken\n"
        "def run_loop(n):\n    token = ResultToken()\n    token.rows = n") + '''
def test_two_objects():
    run_loop(2)

@pytest.mark.pulsegate(allow=["Author.books"])
def test_allowed_relationship():
    run_loop(2)

@pytest.mark.pulsegate(allow=["app.py:7"])
def test_allowed_call_site():
    run_loop(2)

@pytest.mark.pulsegate(allow=["Book.*"])
def test_other_relationship_allowed():
    run_loop(2)
''')
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*test_two_objects*", "*N+1 query loading Author.books: 2 statements*",
                                 "*at app.py:7 in view*", '*fix: prefetch_related("books")*'])
    pytester.makeini("[pytest]\npulsegate_allow =\n    Author.books\n")
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_the_rule_is_zeals_unless_the_ini_or_a_marker_names_nplusones(
        pytester: pytest.Pytester) -> None:
    """One lazy load of an instance of a one-row list: not an N+1 by django-zeal's rule
    (the default); an N+1 by nplusone's, chosen by ``pulsegate_rule`` or the marker."""
    pytester.makepyfile(NPLUSONE.replace(
        'orm="django"))', 'orm="django", source=(ResultToken(1), "")))').replace(
        "def run_loop(n):", "from pulsegate.queries.events import ResultToken\n"
        "def run_loop(n):") + '''
def test_default():
    run_loop(1)

@pytest.mark.pulsegate(rule="nplusone")
def test_marked():
    run_loop(1)

@pytest.mark.pulsegate(rule="zeal")
def test_marked_zeal():
    run_loop(1)
''')
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_marked*", "*N+1 query loading Author.books: 1 statements*"])
    pytester.makeini("[pytest]\npulsegate_rule = nplusone\n")
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    pytester.makeini("[pytest]\npulsegate_rule = sentry\n")
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*rule must be one of ('zeal', 'nplusone'), got 'sentry'*"])
