"""The shape of src/cpmosaic: no package cycle, no oversized module, a typed public API.

The import graph is read from the source with :mod:`ast` (every ``import`` and ``from ...
import``, at module level or inside functions: a lazy import is still a dependency), plus
the lazy-attribute table of ``cpmosaic/__init__.py``.  Nodes are the subpackages
(``cpmosaic.viz``) and the top-level modules (``cpmosaic.robust``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cpmosaic"
#: Modules over MAX_LINES that issue 10 splits (their helpers remove them from here).
#: One idea each, however long: the explorer is one Panel app class (its data, state, viewport
#: and hit-testing live in their own modules).
LARGE_ALLOWED = {"cpmosaic.viz.explorer"}
MAX_LINES = 550
#: Public functions and classes whose hints are still incomplete, by defining module: their
#: modules are being reworked by other parts of issue 10 (or owned elsewhere).  A name listed
#: here that becomes fully hinted fails the test until it is removed from the list.
HINTS_PENDING: set[str] = set()
#: Package pairs that must never import each other in this direction (layering).
FORBIDDEN = [("cpmosaic.mosaic", "cpmosaic.viz"), ("cpmosaic.mosaic", "cpmosaic.serve"),
             ("cpmosaic.viz", "cpmosaic.serve"), ("cpmosaic.viz", "cpmosaic.report"),
             ("cpmosaic.kernels", "cpmosaic.mosaic"), ("cpmosaic.io", "cpmosaic.mosaic")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (SRC.parent / rel).with_suffix(".py").is_file() or (SRC.parent / rel / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """cpmosaic modules imported by the file at *path* (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cpmosaic"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cpmosaic":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")]
            found |= set(subs) if subs else {target}
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            # cpmosaic/__init__.py: {"name": "cpmosaic.module"} resolved on first attribute access
            found |= {v.value for v in getattr(node.value, "values", []) if isinstance(v, ast.Constant)}
    return found


def unit(module: str) -> str:
    """The graph node of a module: its subpackage, or itself at the top level."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    return ".".join(parts[:2])


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        src = unit(module_name(path))
        for target in imports_of(path):
            if unit(target) != src:
                g[src].add(unit(target))
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's node list, found by depth-first search (small graph)."""
    found, nodes = [], sorted(set(g) | {b for bs in g.values() for b in bs})
    for start in nodes:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(g.get(node, ())):
                if nxt == start:
                    found.append(path)
                elif nxt not in path and nxt > start:  # each cycle once, from its smallest node
                    stack.append((nxt, path + [nxt]))
    return found


def test_the_graph_is_read():
    # the reader itself: a known relative import, a known lazy import, the lazy table
    assert "cpmosaic.mosaic.store" in imports_of(SRC / "viz" / "render.py")
    assert "cpmosaic.viz.display" in imports_of(SRC / "serve" / "tiles.py")
    assert "cpmosaic.metrics.history" in imports_of(SRC / "viz" / "timeseries.py")  # inside a function
    assert "cpmosaic.mosaic" in imports_of(SRC / "__init__.py")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_package_cycle(graph):
    assert cycles(graph) == [], "package import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles(graph))


@pytest.mark.parametrize("low, high", FORBIDDEN)
def test_layering(graph, low, high):
    assert high not in graph.get(low, set()), f"{low} imports {high}"


def test_module_sizes():
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in SRC.rglob("*.py")}
    large = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert set(large) <= LARGE_ALLOWED, f"modules over {MAX_LINES} lines: {large}"


def public_api() -> list[tuple[str, str]]:
    """``(module, name)`` of every name in the __all__ of cpmosaic and its subpackages."""
    out = []
    for init in [SRC / "__init__.py", *sorted(SRC.glob("*/__init__.py"))]:
        mod = importlib.import_module(module_name(init))
        out += [(mod.__name__, n) for n in getattr(mod, "__all__", ())]
    return out


@pytest.mark.parametrize("module, name", public_api())
def test_public_functions_have_type_hints(module, name):
    try:
        obj = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:  # an optional extra (lsst-daf-butler) that is not installed
        pytest.skip(f"{module}.{name} needs {exc.name}")
    funcs = [obj] if inspect.isfunction(obj) else []
    if inspect.isclass(obj):
        funcs = [f for k, f in vars(obj).items() if inspect.isfunction(f) and (not k.startswith("_") or k == "__init__")
                 and f.__qualname__.startswith(obj.__qualname__)]
    missing = []
    for f in funcs:
        sig = inspect.signature(f)
        params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
        bare = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        if bare or (sig.return_annotation is inspect.Signature.empty and f.__name__ != "__init__"):
            missing.append(f"{f.__qualname__}({', '.join(bare)}{'' if bare else ') -> ?'}")
    key = f"{getattr(obj, '__module__', module)}.{getattr(obj, '__qualname__', name)}"
    if key in HINTS_PENDING:
        assert missing, f"{key} is fully hinted now: remove it from HINTS_PENDING"
        pytest.xfail(f"hints pending: {missing}")
    assert not missing, f"{module}.{name}: unannotated: {missing}"
