"""wide_select made precise for Django: which concrete fields of the instances a statement
loaded the code reads, sampled in windows -- real Django querysets and attribute reads on
a real SQLite file and a real PostgreSQL (started on loopback; fails, never skips,
without it), a 23-column table with text columns."""

from __future__ import annotations

import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:  # process-global: another directory may have configured
    settings.configure(      # them first, with the same app installed
        DEBUG=False, SECRET_KEY="pulsegate-tests", ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, LOGGING_CONFIG=None)
    django.setup()

from django.db import connections, models
from django.db.models.query_utils import DeferredAttribute
from django.forms.models import model_to_dict

from column_windows import churn
from pulsegate import capture
from pulsegate.advisor.columns import ColumnReads
from pulsegate.advisor.orm import from_django
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.django.columns import DjangoColumns
from pulsegate.django.instrument import install
from services import fresh_database

#: the view's N+1 is not what these tests look at
pytestmark = pytest.mark.pulsegate(nplusone="off")

NOTES = [f"note{i}" for i in range(18)]


class Novelist(models.Model):
    name = models.CharField(max_length=40)

    class Meta:
        app_label = "pulsegate"
        db_table = "wsel_novelist"


class Novel(models.Model):
    title = models.CharField(max_length=80)
    novelist = models.ForeignKey(Novelist, on_delete=models.CASCADE, related_name="+")
    year = models.IntegerField()
    body = models.TextField()
    locals().update({n: models.TextField() for n in NOTES})

    class Meta:
        app_label = "pulsegate"
        db_table = "wsel_novel"


FIELDS = ["id", "title", "novelist_id", "year", "body", *NOTES]  # 23 columns


def add_alias(alias: str, conf: dict[str, Any]) -> str:
    connections.settings[alias] = connections.configure_settings({"default": conf})["default"]
    with connections[alias].schema_editor() as editor:
        editor.create_model(Novelist)
        editor.create_model(Novel)
    writers = Novelist.objects.using(alias).bulk_create(
        Novelist(id=i, name=f"w{i}") for i in range(1, 11))
    Novel.objects.using(alias).bulk_create(
        Novel(id=i, title=f"t{i}", novelist=writers[i % 10], year=i, body="b" * 500,
              **{n: "n" * 80 for n in NOTES}) for i in range(1, 401))
    return alias


def drop_alias(alias: str) -> None:
    connections[alias].close()
    del connections[alias]  # the wrapper this thread cached, with the old settings
    del connections.settings[alias]


@pytest.fixture()
def sqlite_alias(tmp_path: Path) -> Iterator[str]:
    install()
    yield add_alias("wsel_sqlite", {"ENGINE": "django.db.backends.sqlite3",
                                    "NAME": str(tmp_path / "novels.db")})
    drop_alias("wsel_sqlite")


@pytest.fixture()
def pg_alias(postgres_url: str) -> Iterator[str]:
    install()
    url = fresh_database(postgres_url, "advisor_wsel", "SELECT 1")
    host, port = url.split("@", 1)[1].split("/", 1)[0].split(":")
    yield add_alias("wsel_pg", {"ENGINE": "django.db.backends.postgresql",
                                "NAME": "advisor_wsel", "USER": "postgres",
                                "HOST": host, "PORT": port})
    drop_alias("wsel_pg")


@pytest.fixture(params=["sqlite", "postgresql"])
def alias(request: pytest.FixtureRequest) -> str:
    name: str = request.getfixturevalue("sqlite_alias" if request.param == "sqlite"
                                        else "pg_alias")
    return name


def novels(alias: str, joined: bool = False) -> Any:
    qs = Novel.objects.using(alias).filter(year__gt=10).order_by("id")
    return (qs.select_related("novelist") if joined else qs)[:50]


def titles(alias: str, joined: bool = False) -> list[tuple[str, str]]:
    """The view: each novel's title and its novelist's name (lazily, unless joined)."""
    return [(n.title, n.novelist.name) for n in novels(alias, joined)]


def everything(alias: str) -> list[dict[str, Any]]:
    return [model_to_dict(n) for n in novels(alias)]


def served(adv: QueryAdvisor, view: Any, *args: Any) -> Any:
    """Run ``view`` as a request would: its statements recorded, then handed over."""
    with capture() as cap:
        out = view(*args)
    adv.offer("GET /novels", cap.queries)
    return out


def wide(adv: QueryAdvisor, now: float) -> list[Any]:
    return [f for f in adv.run(now) if f.kind == "wide_select"]


def setup(alias: str, **kw: Any) -> tuple[ColumnReads, QueryAdvisor]:
    reads = ColumnReads(DjangoColumns(), window=2.0, every=60.0, min_rows=20, **kw)
    where = from_django(alias)
    return reads, QueryAdvisor(where["connect"], where["dialect"], columns=reads)


#: Django's own descriptor classes, before any window
ORIGINAL = {**{(Novel, f): type(vars(Novel)[f]) for f in FIELDS},
            (Novelist, "name"): type(vars(Novelist)["name"])}


def plain() -> bool:
    """Every descriptor and loader is Django's own again."""
    return (all(type(vars(m)[f]) is t for (m, f), t in ORIGINAL.items())
            and ORIGINAL[(Novel, "title")] is DeferredAttribute
            and "from_db" not in vars(Novel) and "from_db" not in vars(Novelist))


def only_of(fix: str) -> list[str]:
    found = re.search(r"\.only\(([^)]*)\)", fix)
    assert found, fix
    return re.findall(r'"([^"]+)"', found.group(1))


def test_the_fields_read_in_a_window_make_the_advice_precise(alias: str) -> None:
    reads, adv = setup(alias)
    expected = served(adv, titles, alias)
    (generic,) = wide(adv, 0.0)
    assert generic.confidence == 0.4 and generic.table == "wsel_novel"
    reads.tick(1.0)  # a window opens
    assert served(adv, titles, alias) == expected  # the related model loads as before
    kept = pickle.loads(pickle.dumps(novels(alias)[0]))  # e.g. a cache, in the window
    assert (kept.title, kept.body) == (expected[0][0], "b" * 500)
    reads.tick(3.5)  # ... and closes
    assert plain()
    (precise,) = wide(adv, 4.0)
    assert precise.fingerprint == generic.fingerprint
    assert precise.fix.startswith('Django: Novel queryset .only("title", "novelist_id")')
    assert precise.columns == ["id", "title", "novelist_id"] and precise.confidence == 0.6
    assert precise.saving_ms_per_min > 0 and precise.roi > generic.roi
    assert "over 50 rows read in 1 windows" in precise.evidence
    assert "3 of its 23 columns" in precise.evidence
    # the advice applied: the same page
    qs = novels(alias).only(*only_of(precise.fix))
    assert [(n.title, n.novelist.name) for n in qs] == expected


def test_no_advice_when_the_view_reads_every_field(alias: str) -> None:
    reads, adv = setup(alias)
    served(adv, everything, alias)
    assert len(wide(adv, 0.0)) == 1
    reads.tick(1.0)
    rows = served(adv, everything, alias)
    reads.tick(3.5)
    assert rows[0]["body"] == "b" * 500 and len(rows) == 50
    assert wide(adv, 4.0) == []
    assert plain()


def test_select_related_keeps_the_foreign_key_and_the_related_model_loads(
        alias: str) -> None:
    reads, adv = setup(alias)
    expected = served(adv, titles, alias, True)
    assert len(wide(adv, 0.0)) == 1
    reads.want("wsel_novelist")  # the related model sampled in the same window too
    reads.tick(1.0)
    assert served(adv, titles, alias, True) == expected
    reads.tick(3.5)
    assert plain()
    (precise,) = wide(adv, 4.0)
    names = only_of(precise.fix)
    assert names == ["title", "novelist_id"]  # Django refuses to defer a traversed key
    qs = novels(alias, True).only(*names)
    assert [(n.title, n.novelist.name) for n in qs] == expected


def test_two_views_of_one_model_are_advised_apart(sqlite_alias: str) -> None:
    """Per statement: a view reading every field does not hide another that reads two."""
    reads, adv = setup(sqlite_alias)

    def years(alias: str) -> list[int]:
        return [n.year for n in Novel.objects.using(alias).filter(year__lt=300)]

    served(adv, everything, sqlite_alias)
    served(adv, years, sqlite_alias)
    assert len(wide(adv, 0.0)) == 2
    reads.tick(1.0)
    served(adv, everything, sqlite_alias)
    served(adv, years, sqlite_alias)
    reads.tick(3.5)
    (one,) = wide(adv, 4.0)
    assert only_of(one.fix) == ["year"] and "year\" < " in one.sql


def test_an_iterators_later_chunks_are_still_attributed(alias: str) -> None:
    """``iterator(chunk_size=10)`` with a lazy relation per row: each later chunk's rows
    are built after the loop's own statements, and still counted for the novels' one."""
    reads, adv = setup(alias)

    def chunked(alias: str) -> list[tuple[str, str]]:
        qs = Novel.objects.using(alias).filter(year__gt=10).order_by("id")[:50]
        return [(n.title, n.novelist.name) for n in qs.iterator(chunk_size=10)]

    served(adv, chunked, alias)
    wide(adv, 0.0)
    reads.tick(1.0)
    served(adv, chunked, alias)
    reads.tick(3.5)
    (precise,) = wide(adv, 4.0)
    assert "over 50 rows read" in precise.evidence
    assert only_of(precise.fix) == ["title", "novelist_id"]


def test_outside_a_window_nothing_is_seen_and_too_few_rows_keep_the_generic(
        sqlite_alias: str) -> None:
    reads, adv = setup(sqlite_alias)
    served(adv, titles, sqlite_alias)
    wide(adv, 0.0)
    served(adv, everything, sqlite_alias)  # outside a window: not seen
    assert plain()
    reads.tick(1.0)
    with capture() as cap:  # 5 rows < min_rows
        [n.title for n in Novel.objects.using(sqlite_alias).filter(year__lt=6)]
    reads.tick(3.5)
    (generic,) = wide(adv, 4.0)
    assert generic.confidence == 0.4 and generic.columns == [] and cap.query_count == 1


def test_a_faulty_tracker_still_lets_the_window_close(sqlite_alias: str) -> None:
    class Broken:
        def ready(self) -> bool:
            return True

        def open(self, table: str, reads: Any) -> None:
            raise RuntimeError("open")

        def close(self, reads: Any) -> None:
            raise RuntimeError("close")

    reads = ColumnReads([Broken(), DjangoColumns()], window=2.0, every=60.0, min_rows=20)
    where = from_django(sqlite_alias)
    adv = QueryAdvisor(where["connect"], where["dialect"], columns=reads)
    served(adv, titles, sqlite_alias)
    wide(adv, 0.0)
    reads.tick(1.0)
    assert not plain()
    served(adv, titles, sqlite_alias)
    reads.tick(3.5)
    assert plain() and reads.faults == 2
    assert only_of(wide(adv, 4.0)[0].fix) == ["title", "novelist_id"]


def test_windows_open_and_close_while_other_threads_read(sqlite_alias: str) -> None:
    reads = ColumnReads(DjangoColumns(), window=0.01, every=0.02, min_rows=20)
    reads.want("wsel_novel")
    expected = titles(sqlite_alias)

    def one() -> None:
        with capture():
            assert titles(sqlite_alias) == expected

    def windows() -> int:
        return sum(s.windows for s in list(reads.by_fingerprint.values()))

    errors = churn(reads, one, done=lambda: connections[sqlite_alias].close(),
                   until=lambda: windows() >= 20)
    assert errors == [] and plain()
    assert all(s.read <= {"id", "title", "novelist_id"} for s in reads.by_fingerprint.values())
    assert windows() >= 20


def test_report_and_dashboard_carry_the_precise_advice(
        sqlite_alias: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: requests through a gate with the advisor on the alias; the scheduler's
    column job opens and closes a window; ``pulsegate report`` and the dashboard's
    findings table (``/api/findings``) show the Django fix with its confidence and
    expected saving."""
    import json

    from pulsegate import PulseGate, cli
    from pulsegate.advisor import Advisor
    from pulsegate.export.dashboard import api
    from pulsegate.records import RequestInfo

    clock = [100.0]
    gate = PulseGate(state_dir=str(tmp_path / "state"), clock=lambda: clock[0],
                     wall=lambda: 1_800_000_000.0 + clock[0])
    advisor = Advisor(gate, **from_django(sqlite_alias))

    def request() -> None:
        ctx = gate.begin(RequestInfo("GET", "/novels", route="/novels"))
        assert ctx is not None
        titles(sqlite_alias)
        gate.response_headers(ctx, 200)
        gate.finish(ctx, 200)
        clock[0] += 1.0

    try:
        request()
        advisor.run()  # the generic finding names the table: sampled from now on
        assert advisor.queries is not None and advisor.queries.columns is not None
        columns = advisor.queries.columns
        columns.tick()  # the scheduler's job: a window opens ...
        request()
        columns.tick()  # (1 s later: still open)
        clock[0] += 1.0
        columns.tick()  # ... and closes
        assert plain()
        advisor.run()
        gate.ops.snapshot()
        assert cli.main(["report", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
        (row,) = [i for i in json.loads(capsys.readouterr().out)["query_insights"]
                  if i["kind"] == "wide_select"]
        assert row["suggestion"].startswith('Django: Novel queryset .only("title", "novelist_id")')
        assert row["confidence"] == 0.6 and row["roi"] > 0
        (shown,) = [f for f in api.findings(gate) if f["kind"] == "wide_select"]
        assert shown["fix"] == row["suggestion"] and shown["confidence"] == 0.6
        assert shown["saving_ms_per_min"] > 0 and shown["roi"] == row["roi"]
    finally:
        gate.close()


def test_after_a_window_loading_and_reading_call_what_they_called_before(
        sqlite_alias: str) -> None:
    """Outside windows nothing is added: loading rows and reading their fields call the
    same pulsegate functions (the query hooks') before any window and after one (a
    profiler hook sees every Python call)."""
    def pulsegate_calls() -> list[str]:
        called: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and "pulsegate" in frame.f_code.co_filename:
                called.append(frame.f_code.co_name)

        sys.setprofile(profile)
        try:
            rows = list(novels(sqlite_alias))
            values = [(n.title, n.year, n.body, n.novelist_id) for n in rows]
        finally:
            sys.setprofile(None)
        assert len(values) == 50
        return called

    before = pulsegate_calls()
    reads, adv = setup(sqlite_alias)
    reads.want("wsel_novel")
    reads.tick(1.0)
    assert len(pulsegate_calls()) > len(before) + 50 * 4  # in the window: each read seen
    reads.tick(3.5)
    assert pulsegate_calls() == before


#: One process's part of the cross-process probe: ``pickle`` pickles a novel loaded in
#: its first window to a file; ``read`` reads that novel's body and year in its own
#: first window, after its view read only the titles, and prints the advice.
PROCESS = r"""
import pickle, sys
sys.path[:0] = [{tests!r}, {here!r}]
import test_advisor_columns_django as t
mode, db, out = sys.argv[1:4]
t.install()
alias = t.add_alias("wsel_" + mode, {{"ENGINE": "django.db.backends.sqlite3", "NAME": db}})
reads, adv = t.setup(alias)
t.served(adv, t.titles, alias)
t.wide(adv, 0.0)
reads.tick(1.0)
t.served(adv, t.titles, alias)
if mode == "pickle":  # loaded as the view loads them: the window's slot 0
    open(out, "wb").write(pickle.dumps(t.served(adv, lambda a: list(t.novels(a)), alias)[0]))
else:
    kept = pickle.loads(open(out, "rb").read())
    assert (kept.body, kept.year) == ("b" * 500, 11)
reads.tick(3.5)
(precise,) = t.wide(adv, 4.0)
print(precise.fix.splitlines()[0])
"""


def test_a_novel_pickled_in_another_processs_window_is_not_read_as_ours(
        tmp_path: Path) -> None:
    """Attack probe (a shared cache): a novel tagged in one process's first window,
    unpickled and read in another process's first window, adds nothing to what that
    window saw -- its view read the titles only, and the advice says so."""
    import subprocess
    here = str(Path(__file__).parent)
    code = PROCESS.format(tests=str(Path(here).parent), here=here)
    shared = str(tmp_path / "novel.pickle")
    outs = [subprocess.run([sys.executable, "-c", code, mode, str(tmp_path / f"{mode}.db"),
                            shared], capture_output=True, text=True, timeout=120)
            for mode in ("pickle", "read")]
    for done in outs:
        assert done.returncode == 0, done.stderr[-2000:]
    assert outs[1].stdout.startswith('Django: Novel queryset .only("title", "novelist_id")'), \
        outs[1].stdout
