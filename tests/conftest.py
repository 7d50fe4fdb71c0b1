"""Shared fixtures: the reference files beside the project, seeded randomness."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

#: ../shared/reference beside the checkout (CI lays it there); tests that need
#: it skip cleanly when it is absent.  CPMOSAIC_REFERENCE overrides the path;
#: CPMOSAIC_REQUIRE_REFERENCE=1 (set by .ci/run) turns the skip into a failure, so
#: CI can never pass without the geometry and reader checks.
REFERENCE = Path(os.environ.get("CPMOSAIC_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        if os.environ.get("CPMOSAIC_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"reference files not found at {REFERENCE} (CPMOSAIC_REQUIRE_REFERENCE=1)")
        pytest.skip(f"reference files not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


# The explorer's shared fixtures (its demo data, the headless chromium): one place for the
# explore, explore-browser and notebook tests.
from explore_fixtures import browser, explore_demo, explore_metrics  # noqa: E402, F401
# moto's S3 server on loopback: the object-store tests (mosaic integrity, --storage-options).
from s3_fixtures import moto_server  # noqa: E402, F401
