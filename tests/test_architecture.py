"""The import rules of docs/architecture.md, read from the source with ``ast`` (every
import: module level, inside functions, under ``if TYPE_CHECKING:``).

* the core imports no web framework and no ORM, and no adapter module (nor a tool's:
  ``demo_stream``, ``cli_jobs``, ...);
* the subsystems (registry, exporters, controller, models, advisor, caches, outbound,
  response cache) do not import the engine:
  they see the gate as :class:`pulsegate.plugins.Host`;
* no import circle anywhere in ``src/pulsegate``;
* no module reads or writes the gate's or ``ModelOps``' private state (``gate._x``,
  ``ops._x``) from outside.

The graph and the reach are computed by ``tools/house.py`` (``python3 dev.py house``
prints the same figures); each test also runs the check on a small tree that breaks
the rule, so a check that cannot fail would show here.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent


house = load_script("tools/house.py")

#: Third-party packages only the adapters may import (web frameworks, servers, ORMs).
FRAMEWORKS = frozenset({"starlette", "fastapi", "django", "flask", "werkzeug", "sqlalchemy",
                        "flask_sqlalchemy", "asgiref", "uvicorn", "gunicorn", "jinja2",
                        "greenlet", "celery", "kombu", "rq"})
#: The adapter layer: the only modules that may import a framework (and the demo app).
ADAPTERS = ("pulsegate.asgi", "pulsegate.wsgi", "pulsegate.flask", "pulsegate.django",
            "pulsegate.sqlalchemy", "pulsegate.sqlalchemy_eager", "pulsegate.sqlalchemy_forms",
            "pulsegate.demo",
            "pulsegate.demo_app", "pulsegate.demo_jobs", "pulsegate.cli",
            # the tools' own modules: nothing in the core may import them
            "pulsegate.demo_cache", "pulsegate.demo_healing", "pulsegate.demo_io",
            "pulsegate.demo_report", "pulsegate.demo_stream", "pulsegate.cli_io",
            "pulsegate.cli_jobs",
            "pulsegate.pytest_plugin", "pulsegate.caches.django", "pulsegate.advisor.orm",
            "pulsegate.jobs")
#: Subsystems that plug into the gate and must not import the engine (nor the package
#: ``__init__``, which imports it).
SUBSYSTEMS = ("pulsegate.registry", "pulsegate.export", "pulsegate.control",
              "pulsegate.learn", "pulsegate.queries", "pulsegate.advisor",
              "pulsegate.caches", "pulsegate.outbound", "pulsegate.respcache")


def _is_adapter(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ADAPTERS)


def _external_imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (any nesting level)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def framework_imports(src: Path) -> dict[str, set[str]]:
    """Core module -> the frameworks it imports (anywhere in the module)."""
    found: dict[str, set[str]] = {}
    for name, path in house.modules(src).items():
        if _is_adapter(name):
            continue
        hit = _external_imports(path) & FRAMEWORKS
        if hit:
            found[name] = hit
    return found


def adapter_imports(src: Path) -> dict[str, set[str]]:
    """Core module -> the adapter modules it imports."""
    found: dict[str, set[str]] = {}
    for name, targets in house.graph(src).items():
        if _is_adapter(name) or name == "pulsegate":
            continue
        hit = {t for t in targets if _is_adapter(t)}
        if hit:
            found[name] = hit
    return found


def engine_imports(src: Path) -> dict[str, set[str]]:
    """Subsystem module -> its imports of the engine or of the package ``__init__``."""
    found: dict[str, set[str]] = {}
    for name, targets in house.graph(src).items():
        if not any(name == s or name.startswith(s + ".") for s in SUBSYSTEMS):
            continue
        hit = targets & {"pulsegate.engine", "pulsegate", "pulsegate.reporting"}
        if hit:
            found[name] = hit
    return found


#: Core modules that still reach an adapter, and why (the lead decides; see
#: docs/dev-notes/issue-19.md): the two ORM instrumenters. ``capture()`` instruments the
#: ORMs already imported, so a test's block sees statements without any set-up, and
#: ``instrument_orms`` applies ``instrument_sqlalchemy`` for the middleware; both import
#: the hooks lazily, only when SQLAlchemy / Django is in ``sys.modules`` (or installed).
KNOWN_ADAPTER_IMPORTS = {
    "pulsegate.queries.capture": {"pulsegate.sqlalchemy", "pulsegate.django.instrument"},
    "pulsegate.autoinstrument": {"pulsegate.sqlalchemy"},
    # instrument(gate) applies cache_monitoring to Django's caches when Django is loaded
    "pulsegate.caches": {"pulsegate.caches.django"},
    # advisor_database may name a Django alias or hold a SQLAlchemy engine: the gate's
    # advisor turns it into a connection factory through the adapter, only when set
    "pulsegate.advisor": {"pulsegate.advisor.orm"},
}
KNOWN_FRAMEWORK_IMPORTS = {"pulsegate.queries.capture": {"django"}}


def test_the_core_imports_no_framework() -> None:
    assert framework_imports(ROOT / "src") == KNOWN_FRAMEWORK_IMPORTS


def test_the_core_imports_no_adapter() -> None:
    assert adapter_imports(ROOT / "src") == KNOWN_ADAPTER_IMPORTS


def test_subsystems_do_not_import_the_engine() -> None:
    assert engine_imports(ROOT / "src") == {}


def test_no_import_circle() -> None:
    assert house.cycles(house.graph(ROOT / "src")) == []


def test_nothing_reaches_into_the_gate_or_model_ops() -> None:
    assert house.private_reach(ROOT / "src") == []


# --- each check fails on a tree that breaks its rule ------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "src" / "pulsegate" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path / "src"


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "__init__.py": "",
        "engine.py": "from pulsegate.export import install\n",
        "records.py": "",
        "asgi.py": "import starlette\n",
        "export/__init__.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pulsegate.engine import PulseGate
            def install(gate):
                from pulsegate.asgi import Middleware
                print(gate._enabled, gate.config)
            """,
        "learn/__init__.py": """
            def f():
                import django.db
            """,
    })
    assert framework_imports(src) == {"pulsegate.learn": {"django"}}
    assert adapter_imports(src) == {"pulsegate.export": {"pulsegate.asgi"}}
    assert engine_imports(src) == {"pulsegate.export": {"pulsegate.engine"}}
    assert house.cycles(house.graph(src)) == [["pulsegate.engine", "pulsegate.export"]]
    assert [(p.split("/")[-1], text) for p, _, text in house.private_reach(src)] == [
        ("__init__.py", "gate._enabled")]
