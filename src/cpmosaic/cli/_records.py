"""JSON-ready records of a DataFrame, shared by the commands that print tables as JSON."""

from __future__ import annotations

import math


def json_value(v):
    """NA/NaN/inf -> None, numpy scalars -> Python (pandas is not imported here)."""
    if v is None or type(v).__name__ == "NAType":  # pandas.NA
        return None
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def records(df) -> list[dict]:
    """One dict per row of *df*, with JSON-ready values."""
    cols = [str(c) for c in df.columns]
    return [{c: json_value(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]
