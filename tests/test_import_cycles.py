"""No import circles among the project's own modules (bench, regularizers, attacks, leaderboard).

The graph is read from the source with `ast`, not from a running interpreter, so it sees every import a module
can make: top-level ones, those inside functions (the lazy imports that keep `--help` instant), relative ones,
and `importlib.import_module("pkg.mod")` / `__import__("pkg.mod")` calls whose argument is a literal name of a
project module (import-linter cannot see those). An `importlib` call whose argument is not a literal project
name (plugin loading by entry point, a module named in a config) is no edge, and a literal project name in an
`importlib` call is an error of its own: such a module is imported with an `import` statement.

Edges, made precise (a package is its `__init__`):
- `import a.b.c` imports `a.b.c` and the packages above it, `a` and `a.b`;
- `from a.b import x` imports `a.b.x` when that is a module (and the packages above it), else the package
  `a.b` itself (`x` is a name its `__init__` defines);
- the packages above the importing module are left out of the implicit edges: they are initialised before the
  module runs, whatever it imports. A name taken from one of them (`from . import register` in a package's
  submodule, `from bench.cli import UserError` in `bench.cli.sweep`) is an edge to that package.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "regularizers", "attacks", "leaderboard")
IMPORTLIB_CALLS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # path:line of the statement


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted name: file} of every module of the packages (a package's name maps to its __init__.py)."""
    mods = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _own_package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(base: str | None, level: int, own_pkg: str) -> str:
    """The absolute module of `from <level dots><base> import ...` inside package `own_pkg`."""
    if level == 0:
        return base or ""
    parts = own_pkg.split(".")
    head = parts[:len(parts) - (level - 1)]
    return ".".join(head + ([base] if base else []))


def _literal_names(node: ast.AST) -> list[str]:
    """The string literals an importlib argument can evaluate to (`"a" if x else "b"` gives both)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_importlib_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return name in IMPORTLIB_CALLS


def imported_modules(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(target module, line, via importlib) for every import in the module's source, with the rules above."""
    own_pkg, own_up = _own_package(name, path), set(_ancestors(name))
    out: list[tuple[str, int, bool]] = []

    def add(target: str, line: int, explicit: bool, via: bool = False) -> None:
        for up in _ancestors(target):  # the packages above the target are initialised first
            if up in mods and up not in own_up and up != name:
                out.append((up, line, via))
        if target in mods and target != name and (explicit or target not in own_up):
            out.append((target, line, via))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node.lineno, explicit=False)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, own_pkg)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in mods:
                    add(sub, node.lineno, explicit=False)
                else:  # a name defined by the module `base` (its __init__ when a package)
                    add(base, node.lineno, explicit=True)
        elif _is_importlib_call(node):
            pkg_kw = [k.value for k in node.keywords if k.arg == "package"]
            for lit in _literal_names(node.args[0]):
                if lit.startswith("."):  # import_module(".x", package=...) / (".x", "pkg")
                    pkg = node.args[1] if len(node.args) > 1 else (pkg_kw[0] if pkg_kw else None)
                    if not (isinstance(pkg, ast.Constant) and isinstance(pkg.value, str)):
                        continue
                    level = len(lit) - len(lit.lstrip("."))
                    lit = _resolve(lit[level:] or None, level, pkg.value)
                if lit in mods or any(up in mods for up in _ancestors(lit)):
                    add(lit, node.lineno, explicit=True, via=True)
    return out


def import_graph(root: Path = ROOT, packages=PACKAGES) -> list[Edge]:
    mods = project_modules(root, packages)
    edges = []
    for name, path in mods.items():
        rel = path.relative_to(root)
        for dst, line, _ in imported_modules(name, path, mods):
            edges.append(Edge(name, dst, f"{rel}:{line}"))
    return edges


def importlib_of_project_modules(root: Path = ROOT, packages=PACKAGES) -> list[str]:
    """`path:line -> module` for each importlib call naming a project module literally."""
    mods = project_modules(root, packages)
    found = []
    for name, path in mods.items():
        for dst, line, via in imported_modules(name, path, mods):
            if via:
                found.append(f"{path.relative_to(root)}:{line} -> {dst}")
    return sorted(set(found))


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest circle per strongly connected component with more than one module (Tarjan, then BFS)."""
    adj: dict[str, dict[str, Edge]] = {}
    for e in edges:
        adj.setdefault(e.src, {}).setdefault(e.dst, e)
        adj.setdefault(e.dst, {})
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v: str) -> None:  # iterative Tarjan: deep chains must not hit the recursion limit
        work = [(v, iter(sorted(adj[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        while work:
            u, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[u])
                if low[u] == index[u]:
                    comp = set()
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.add(x)
                        if x == u:
                            break
                    comps.append(comp)
            elif w not in index:
                index[w] = low[w] = len(index)
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(adj[w]))))
            elif w in on:
                low[u] = min(low[u], index[w])

    for v in sorted(adj):
        if v not in index:
            strong(v)
    return [_shortest_circle(sorted(c)[0], c, adj) for c in comps if len(c) > 1]


def _shortest_circle(start: str, comp: set, adj) -> list[Edge]:
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for u in frontier:
            for w in sorted(adj[u]):
                if w not in comp:
                    continue
                if w == start:
                    path, x = [adj[u][w]], u
                    while prev[x] is not None:
                        path.append(adj[prev[x]][x])
                        x = prev[x]
                    return path[::-1]
                if w not in prev:
                    prev[w] = u
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # pragma: no cover (a component has one)


def describe(circle: list[Edge]) -> str:
    names = " -> ".join([circle[0].src] + [e.dst for e in circle])
    return names + " (" + "; ".join(f"{e.src} -> {e.dst} at {e.where}" for e in circle) + ")"


# --------------------------------------------------------------------------- the project
def test_no_import_circles_in_the_project():
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(describe(c) for c in found)


def test_importlib_names_no_project_module():
    """Only plugin loading (a name from an entry point or a config) goes through importlib; a project module is
    imported with an import statement, which import-linter and the circle test see."""
    assert importlib_of_project_modules() == []


def test_the_graph_sees_the_lazy_imports_of_the_cli():
    edges = {(e.src, e.dst) for e in import_graph()}
    assert ("bench.cli.sweep", "bench.cli.common") in edges  # inside functions and at the top
    assert ("bench.cli.commands", "bench.cli.sweep") in edges  # inside add_estimate_parser / cmd_estimate
    assert ("leaderboard.render", "leaderboard.keyview") in edges  # `from . import keyview` inside render()


# --------------------------------------------------------------------------- the rules, on small packages
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


def _circles(root: Path) -> list[str]:
    return [describe(c) for c in cycles(import_graph(root, ("pkg",)))]


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import f\n",
                      "pkg/b.py": "def f():\n    from .a import g\n    return g\n"})
    found = _circles(tmp_path)
    assert len(found) == 1 and found[0].startswith("pkg.a -> pkg.b -> pkg.a"), found
    assert "pkg/b.py:2" in found[0]


def test_a_circle_through_importlib_is_found_and_a_plugin_name_is_not(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n",
                      "pkg/b.py": "import importlib\n\ndef f(name):\n    importlib.import_module(name)\n"
                                  "    importlib.import_module('numpy')\n"
                                  "    return importlib.import_module('pkg.a')\n"})
    assert [c.split(" (")[0] for c in _circles(tmp_path)] == ["pkg.a -> pkg.b -> pkg.a"]
    assert importlib_of_project_modules(tmp_path, ("pkg",)) == ["pkg/b.py:6 -> pkg.a"]
    plugin_only = "import importlib\n\ndef f(name):\n    return importlib.import_module(name)\n"
    (tmp_path / "pkg" / "b.py").write_text(plugin_only)
    assert _circles(tmp_path) == [] and importlib_of_project_modules(tmp_path, ("pkg",)) == []


def test_a_package_init_and_a_submodule_taking_a_name_from_it(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "from .impl import thing\n\ndef register(x):\n    return x\n",
                      "pkg/impl.py": "from . import register\n\nthing = register(1)\n"})
    assert [c.split(" (")[0] for c in _circles(tmp_path)] == ["pkg -> pkg.impl -> pkg"]


@pytest.mark.parametrize("line", ["from . import other", "from pkg import other", "import pkg.other",
                                  "from .other import y"])
def test_a_submodule_of_its_own_package_is_no_edge_to_the_package(tmp_path, line):
    """`from . import other` (a module) in pkg.impl needs pkg initialised, which it is before pkg.impl runs."""
    _write(tmp_path, {"pkg/__init__.py": "from .impl import thing\n", "pkg/other.py": "y = 1\n",
                      "pkg/impl.py": f"{line}\n\nthing = 1\n"})
    assert _circles(tmp_path) == []
    edges = {(e.src, e.dst) for e in import_graph(tmp_path, ("pkg",))}
    assert edges == {("pkg", "pkg.impl"), ("pkg.impl", "pkg.other")}


def test_from_outside_a_package_a_submodule_import_runs_the_package_too(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "from pkg.sub.api import run\n", "pkg/sub/__init__.py": "",
                      "pkg/sub/api.py": "def run():\n    from pkg.tools import helper\n    return helper\n",
                      "pkg/tools/__init__.py": "from pkg.sub import api\n", "pkg/tools/helper.py": ""})
    # pkg.sub.api -> pkg.tools (the package __init__ runs before pkg.tools.helper) -> pkg.sub.api
    found = [c.split(" (")[0] for c in _circles(tmp_path)]
    assert found == ["pkg.sub.api -> pkg.tools -> pkg.sub.api"], found
