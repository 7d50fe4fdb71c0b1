"""Every docstring example in src/cpmosaic runs (doctest), module by module.

A module whose import needs an optional dependency that is not installed (lsst-daf-butler)
is skipped, naming it; any other import error fails.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import cpmosaic

#: Top-level packages of the optional extras: a module needing a missing one is skipped.
OPTIONAL = ("lsst",)
MODULES = sorted(m.name for m in pkgutil.walk_packages(cpmosaic.__path__, "cpmosaic.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", ["cpmosaic", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs {exc.name}")
        raise
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    if not tests:
        return  # nothing to run; importing it cleanly is the check
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    for t in tests:
        runner.run(t, out=out.write)
    assert runner.failures == 0, out.getvalue()
