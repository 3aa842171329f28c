#!/usr/bin/env python3
"""The shape of the house: file sizes, the import graph of ``src/pulsegate`` and its cycles.

    python3 tools/house.py            # files over 400 lines, import cycles, private reach
    python3 tools/house.py --graph    # also every module's imports inside pulsegate
    python3 tools/house.py --root DIR # another checkout (a worktree of main, say)

Standard library only (runs before ``.venv`` exists). Imports are read from the source
with ``ast``, *all* of them: module level, inside functions and under
``if TYPE_CHECKING:`` -- a circle closed through a lazy import is still a design loop.
An import names the most specific module it reaches (``from pulsegate.registry import
snapshot`` is an edge to ``registry/snapshot``; importing a submodule does not count as
importing its package's ``__init__``). Cycles are the strongly connected components
(Tarjan) with more than one module.

"Private reach" counts attribute reads and writes of the form ``gate._x`` / ``ops._x``
(also ``self.gate._x``) outside the module that defines the object; ``tests/
test_architecture.py`` keeps it at zero and the cycles empty.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "pulsegate"
MAX_LINES = 400

#: ``gate._x`` / ``ops._x`` (any receiver whose last name is one of these): reaching into
#: the gate's or ModelOps' private state from another module.
PRIVATE_REACH = re.compile(r"\b(?:gate|ops)\._[a-z]\w*")
#: The modules that own those objects (``self._x`` inside them is their own business).
PRIVATE_OWNERS = {"pulsegate.engine": "gate", "pulsegate.registry.ops": "ops"}


def modules(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``src/pulsegate``."""
    out: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The most specific known module ``name`` (or a prefix of it) names."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every pulsegate module ``module`` imports, wherever the import statement is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, known)
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}", known)
                if target:
                    out.add(target)
    out.discard(module)
    return out


def graph(src: Path = SRC) -> dict[str, set[str]]:
    known = modules(src)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found, key=lambda c: (-len(c), c))


def private_reach(src: Path = SRC) -> list[tuple[str, int, str]]:
    """``(file, line, text)`` of every ``gate._x`` / ``ops._x`` outside its owner module."""
    out: list[tuple[str, int, str]] = []
    for name, path in modules(src).items():
        owner = PRIVATE_OWNERS.get(name)
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in PRIVATE_REACH.finditer(code):
                if owner is not None and m.group(0).startswith(owner + "."):
                    continue
                out.append((str(path.relative_to(src.parent)), lineno, m.group(0)))
    return out


def sizes(src: Path = SRC) -> list[tuple[int, str]]:
    """``(lines, file)`` of every source file, longest first."""
    rows = [(len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(src.parent)))
            for p in modules(src).values()]
    return sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graph", action="store_true", help="print every module's imports")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout to measure")
    args = ap.parse_args(argv)
    src = args.root.resolve() / "src"
    rows = sizes(src)
    edges = graph(src)
    total = sum(n for n, _ in rows)
    print(f"{len(rows)} source files, {total} lines; over {MAX_LINES} lines:")
    for n, path in rows:
        if n > MAX_LINES:
            print(f"  {n:5d}  {path}")
    if not any(n > MAX_LINES for n, _ in rows):
        print("  none")
    found = cycles(edges)
    print(f"import cycles (all imports: module level, in functions, TYPE_CHECKING): {len(found)}")
    for component in found:
        print(f"  {len(component)} modules: " + ", ".join(m.removeprefix("pulsegate.") for m in component))
    reach = private_reach(src)
    print(f"private reach (gate._x / ops._x outside their module): {len(reach)}")
    for path, lineno, text in reach:
        print(f"  {path}:{lineno}  {text}")
    if args.graph:
        print("import graph (module -> pulsegate modules it imports):")
        for name in sorted(edges):
            targets = ", ".join(sorted(t.removeprefix("pulsegate.") for t in edges[name]))
            print(f"  {name.removeprefix('pulsegate.') or 'pulsegate'} -> {targets or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
