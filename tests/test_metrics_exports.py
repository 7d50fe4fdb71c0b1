"""The public names of cpmosaic.metrics.outliers and .ptc are re-exported (and hinted)."""

from __future__ import annotations

import inspect

import pytest


@pytest.mark.parametrize("module", ["outliers", "ptc"])
def test_public_names_are_reexported_and_hinted(module):
    import importlib

    import cpmosaic.metrics as metrics

    mod = importlib.import_module(f"cpmosaic.metrics.{module}")
    assert mod.__all__
    for name in mod.__all__:
        assert name in metrics.__all__, name
        assert getattr(metrics, name) is getattr(mod, name), name
        obj = getattr(mod, name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            unhinted = [p for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
            assert not unhinted and sig.return_annotation is not inspect.Signature.empty, (name, unhinted)


def test_top_level_lazy_names():
    import cpmosaic
    from cpmosaic.metrics.outliers import outlier_rows
    from cpmosaic.metrics.ptc import find_ptc

    assert cpmosaic.outlier_rows is outlier_rows and cpmosaic.find_ptc is find_ptc
    assert {"outlier_rows", "find_ptc"} <= set(cpmosaic.__all__)
