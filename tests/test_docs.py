"""The documentation is executed (issue 20): every Python snippet of README.md and docs/
runs here, so a renamed function or option breaks the build rather than a reader's
first hour; every ``pulsegate.x.y`` the prose names exists; the README's header claims
hold.

Each ```python block is preceded by a marker the rendered page does not show::

    <!-- doc: GROUP ACTION [PATH] [setup=NAME] -->

* ``run`` -- the block runs as a script: the setup's lines (``tests/docs_setups.py``),
  the block, then the setup's check. Consecutive ``run`` blocks of a group run as one
  script, like lines typed into one Python session.
* ``file PATH`` -- the block is written to PATH in the group's directory.
* ``patch PATH`` -- each top-level ``def`` of the block replaces the one of that name in
  PATH; its imports are added at the top (an edit the reader is asked to make).
* ``pytest-fails PATH`` / ``pytest-passes PATH`` -- the block is written to PATH and
  pytest runs it (with the pulsegate plugin, as installed); it must fail naming an N+1,
  or pass.

Blocks of one GROUP run in document order in one temporary directory, each script in
its own process (a fresh interpreter, like the reader's). A block without a marker
fails the suite.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from docs_setups import SETUPS

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```",
                   re.S | re.M)
MARKER = re.compile(r"<!--\s*doc:\s*(?P<spec>[^>]*?)\s*-->\s*$")
ACTIONS = ("run", "file", "patch", "pytest-fails", "pytest-passes")
# Paths and services in snippets that the suite replaces by its own.
SUBSTITUTIONS = {"/var/lib/myapp/pulsegate": "state/pulsegate"}
REDIS_URLS = ("redis://redis:6379/0", "redis://127.0.0.1:6379/0")


@dataclass
class Step:
    action: str
    path: str | None
    setup: str
    code: str
    where: str


@dataclass
class Group:
    doc: str
    name: str
    steps: list[Step] = field(default_factory=list)


def _parse(doc: Path) -> tuple[dict[str, Group], list[str]]:
    text = doc.read_text()
    groups: dict[str, Group] = {}
    problems: list[str] = []
    for m in FENCE.finditer(text):
        if m.group("lang") != "python":
            continue
        line = text.count("\n", 0, m.start()) + 1
        where = f"{doc.relative_to(ROOT)}:{line}"
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        if marker is None:
            problems.append(f"{where}: a python block without a <!-- doc: ... --> marker")
            continue
        words = marker.group("spec").split()
        setup = next((w.split("=", 1)[1] for w in words if w.startswith("setup=")), "none")
        words = [w for w in words if not w.startswith("setup=")]
        if len(words) < 2 or words[1] not in ACTIONS or setup not in SETUPS \
                or (words[1] != "run") != (len(words) == 3):
            problems.append(f"{where}: bad marker {marker.group('spec')!r}")
            continue
        group = groups.setdefault(words[0], Group(doc.name, words[0]))
        group.steps.append(Step(words[1], words[2] if len(words) == 3 else None, setup,
                                textwrap.dedent(m.group("body")), where))
    return groups, problems


PARSED = {doc: _parse(doc) for doc in DOCS}
GROUPS = [g for groups, _ in PARSED.values() for g in groups.values()]


def test_every_python_block_has_a_marker() -> None:
    problems = [p for _, found in PARSED.values() for p in found]
    assert problems == []
    assert len(GROUPS) >= 20


def _patch(source: str, edit: str) -> str:
    """``source`` with each top-level def of ``edit`` replacing its namesake; the
    edit's imports go to the top."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    new_defs = {n.name: ast.get_source_segment(edit, n) for n in ast.parse(edit).body
                if isinstance(n, ast.FunctionDef)}
    imports = [ast.get_source_segment(edit, n) for n in ast.parse(edit).body
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in reversed(tree.body):
        if isinstance(node, ast.FunctionDef) and node.name in new_defs:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            lines[start:node.end_lineno] = [f"{new_defs.pop(node.name)}\n"]
    assert not new_defs, f"nothing to replace for {sorted(new_defs)}"
    return "".join(f"{i}\n" for i in imports) + "".join(lines)


def _run(cmd: list[str], cwd: Path, where: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PULSEGATE_", "DJANGO_", "PYTEST_"))}
    env["PYTHONPATH"] = str(cwd)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _script(steps: list[Step]) -> str:
    parts = [SETUPS[steps[0].setup][0]]
    for step in steps:
        parts.append(f"# --- {step.where}\n{step.code}")
    parts.extend(dict.fromkeys(SETUPS[s.setup][1] for s in steps if SETUPS[s.setup][1]))
    return "\n".join(parts)


def _substitute(code: str, redis_url: str | None) -> str:
    for old, new in SUBSTITUTIONS.items():
        code = code.replace(old, new)
    if redis_url is not None:
        for url in REDIS_URLS:
            code = code.replace(url, redis_url)
    return code


@pytest.mark.parametrize("group", GROUPS, ids=[f"{g.doc}:{g.name}" for g in GROUPS])
def test_snippets_run(group: Group, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    needs_redis = any(url in s.code for s in group.steps for url in REDIS_URLS)
    redis_url = request.getfixturevalue("redis_service").url if needs_redis else None
    pending: list[Step] = []

    def flush() -> None:
        if not pending:
            return
        script = tmp_path / f"_doc_step_{len(list(tmp_path.glob('_doc_step_*')))}.py"
        script.write_text(_substitute(_script(pending), redis_url))
        proc = _run([sys.executable, str(script)], tmp_path, pending[0].where)
        assert proc.returncode == 0, (f"{pending[0].where}: the snippet failed\n"
                                      f"{proc.stdout[-3000:]}{proc.stderr[-5000:]}")
        pending.clear()

    for step in group.steps:
        if step.action == "run":
            if pending and step.setup != "none" and step.setup != pending[0].setup:
                flush()
            pending.append(step)
            continue
        flush()
        assert step.path is not None
        target = tmp_path / step.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if step.action == "patch":
            target.write_text(_patch(target.read_text(), step.code))
            continue
        target.write_text(_substitute(step.code, redis_url))
        if step.action.startswith("pytest-"):
            proc = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         step.path], tmp_path, step.where)
            out = proc.stdout + proc.stderr
            if step.action == "pytest-fails":
                assert proc.returncode == 1 and "N+1 query" in out, f"{step.where}\n{out}"
            else:
                assert proc.returncode == 0, f"{step.where}\n{out}"
    flush()


# --- names the prose mentions --------------------------------------------------------

# `pulsegate.x.y(...)` (a call), or `pulsegate.sub.name` where pulsegate.sub is a module;
# other dotted names in the prose are span attributes, metrics or check ids.
DOTTED = re.compile(r"`(pulsegate(?:\.[A-Za-z_]\w*)+)(\([^`]*\))?`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_every_pulsegate_name_in_the_docs_exists() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for m in DOTTED.finditer(text):
            name = m.group(1)
            if m.group(2) is None and not _is_module(".".join(name.split(".")[:2])):
                continue
            if name.split(".")[-1] in ("md", "py", "sqlite3", "anomalies", "alerts"):
                continue  # file names and logger names, not attributes
            if not _resolves(name):
                missing.append(f"{doc.name}:{text.count(chr(10), 0, m.start()) + 1}: "
                               f"{m.group(1)}")
    assert missing == []


# --- the README's header claims -----------------------------------------------------

QUERY_HEADERS = {"x-ml-query-count", "x-ml-query-ms", "x-ml-nplusone"}
ALL_HEADERS = {"x-ml-prediction-confidence", "x-ml-predicted-latency-ms", "x-ml-anomaly-score",
               "x-ml-optimization-applied", "x-ml-model-version"} | QUERY_HEADERS
#: What a request that ran no SQL carries (decision 1: query headers only with SQL).
NO_SQL_HEADERS = ALL_HEADERS - QUERY_HEADERS


def _asgi_client(**options: object) -> object:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from pulsegate.asgi import PulseGateMiddleware

    def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def boom(request: object) -> PlainTextResponse:
        raise RuntimeError("unhandled")

    def sql(request: object) -> PlainTextResponse:
        from pulsegate.context import query_sink
        from pulsegate.queries import QueryEvent

        sink = query_sink.get()
        assert sink is not None
        for _ in range(2):
            sink.add_query(QueryEvent(sql="SELECT 1", duration_ms=0.5, params_count=0))
        return PlainTextResponse("ran SQL")

    app = Starlette(routes=[Route("/ok", ok), Route("/boom", boom), Route("/health", ok),
                            Route("/sql", sql)])
    app.add_middleware(PulseGateMiddleware, **options)
    return TestClient(app, raise_server_exceptions=False)


def _ml(response: object) -> dict[str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    return {k: v for k, v in headers.items() if k.startswith("x-ml-")}


def test_readme_header_claims_for_asgi() -> None:
    client: object = _asgi_client()
    first, second = _ml(client.get("/ok")), _ml(client.get("/ok"))  # type: ignore[attr-defined]
    assert set(first) == NO_SQL_HEADERS - {"x-ml-predicted-latency-ms"}
    assert first["x-ml-prediction-confidence"] == "0"
    assert set(second) == NO_SQL_HEADERS
    client.get("/sql")  # type: ignore[attr-defined]
    with_sql = _ml(client.get("/sql"))  # type: ignore[attr-defined]
    assert set(with_sql) == ALL_HEADERS
    assert (with_sql["x-ml-query-count"], with_sql["x-ml-nplusone"]) == ("2", "0")
    boom = client.get("/boom")  # type: ignore[attr-defined]
    assert boom.status_code == 500 and _ml(boom) == {}
    assert _ml(client.get("/health")) == {}  # type: ignore[attr-defined]
    safe = _asgi_client(headers="safe").get("/ok")  # type: ignore[attr-defined]
    assert set(_ml(safe)) == {"x-ml-optimization-applied", "x-ml-model-version"}
    assert _ml(_asgi_client(headers="none").get("/ok")) == {}  # type: ignore[attr-defined]
    assert _ml(_asgi_client(enabled=False).get("/ok")) == {}  # type: ignore[attr-defined]


def test_readme_header_claims_for_a_flask_500() -> None:
    from flask import Flask

    from pulsegate.flask import PulseGate

    app = Flask(__name__)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("unhandled")

    PulseGate(app)
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert set(_ml(response)) == NO_SQL_HEADERS - {"x-ml-predicted-latency-ms"}
