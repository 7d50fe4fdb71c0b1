"""The io and synth packages import without circles, and ``import cpmosaic.io`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_imports(package: str) -> dict[str, set[str]]:
    """Module -> modules of *package* it imports anywhere (top level or inside functions).

    ``from . import name`` counts as importing the submodule ``name`` when there is one
    (the package itself is already loaded); ``if TYPE_CHECKING:`` blocks are left out.
    """
    root = SRC.joinpath(*package.split("."))
    names = {}
    for p in root.rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges: dict[str, set[str]] = {m: set() for m in names}
    for mod, path in names.items():
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}  # fmt: skip
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in names]
                found = subs or ([target] if target in names else [])
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names if a.name in names]
            else:
                continue
            edges[mod].update(t for t in found if t != mod)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["cpmosaic.io", "cpmosaic.synth"])
def test_no_import_circle(package):
    edges = module_imports(package)
    assert len(edges) > 3
    assert cycles(edges) == []


def test_readers_are_found_through_the_dispatch():
    # the format readers depend on the reader base, never on the dispatch that picks them
    edges = module_imports("cpmosaic.io")
    for reader in ("cpmosaic.io.fits_raw", "cpmosaic.io.fits_processed", "cpmosaic.io.exposure"):
        assert "cpmosaic.io.formats" not in edges[reader], reader
    assert {"cpmosaic.io.fits_raw", "cpmosaic.io.fits_processed"} <= edges["cpmosaic.io.formats"]


def test_import_cpmosaic_io_does_not_import_astropy():
    code = "import sys, cpmosaic.io; print(sorted(m for m in sys.modules if m.startswith(('astropy', 'numba'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": ""}).stdout  # fmt: skip
    assert out.strip() == "[]"
