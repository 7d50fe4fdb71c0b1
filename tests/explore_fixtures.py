"""Shared data of the explorer tests (not a test module): one small synthetic night, made once.

``explore_demo`` runs :func:`cpmosaic.demo.run_demo` on a few detectors (3 nights, cp_verify
outputs, one bias mosaic store, a history store), the same data the notebooks use.
"""

from __future__ import annotations

import pytest

DETECTORS = ("R22_S10", "R22_S11", "R22_S12", "R00_SW0")


@pytest.fixture(scope="session")
def explore_demo(tmp_path_factory):
    from cpmosaic.demo import run_demo

    out = tmp_path_factory.mktemp("explore-demo")
    return run_demo(out, detectors=list(DETECTORS), days=3, compare=False, report=False, progress=False)


@pytest.fixture(scope="session")
def explore_metrics(explore_demo):
    from cpmosaic.metrics import load_metrics

    return load_metrics(explore_demo.manifest.verify_root, progress=False)
