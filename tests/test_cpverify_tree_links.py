"""A cp_verify tree whose run directories are symlinks reads like the real tree."""

from __future__ import annotations

import os

import pandas as pd

from cpmosaic.metrics import load_metrics
from test_metrics_ingest import RUN, make_bias_tree


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["run", "exposure", "detector", "amp", "metric", "tier"]
    return df.sort_values(keys).reset_index(drop=True)


def test_symlinked_run_directories_are_followed(tmp_path):
    real = tmp_path / "real"
    make_bias_tree(real)
    linked = tmp_path / "linked"
    (linked / RUN).parent.mkdir(parents=True)
    os.symlink(real / RUN, linked / RUN, target_is_directory=True)  # the run folder itself is a link
    a, b = load_metrics(real), load_metrics(linked)
    assert len(a) > 0
    pd.testing.assert_frame_equal(_sorted(a[sorted(a.columns)]), _sorted(b[sorted(b.columns)]))


def test_a_link_back_up_the_tree_does_not_loop(tmp_path):
    root = tmp_path / "tree"
    make_bias_tree(root)
    os.symlink(root, root / RUN / "loop", target_is_directory=True)
    a = load_metrics(root)
    assert len(a) == len(load_metrics(root / RUN))
