"""The explorer's selection and its URL query: what a link to one amp's metric on one night holds.

The selection is calib type, run, night, metric and amp.  In the URL each has a short,
readable key::

    ?calib=bias&day=2025-11-24&metric=NOISE&det=R22_S11&amp=C07

(``run`` too when one is chosen).  Empty fields are left out of the query; unknown keys
are ignored, so links from a newer version still open.  The explorer keeps these fields
as parameters of the same names and syncs them with ``pn.state.location`` using
:data:`QUERY_KEYS`; these plain functions do the same mapping for tests and for building
links without a server.

>>> s = ExploreState(calib_type="bias", day="2025-11-24", metric="NOISE", detector="R22_S11", amp="C07")
>>> to_query(s)
'calib=bias&day=2025-11-24&metric=NOISE&det=R22_S11&amp=C07'
>>> from_query("?" + to_query(s)) == s
True
>>> describe(s)
'R22_S11 C07 NOISE on 2025-11-24 (bias)'
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from urllib.parse import parse_qsl, urlencode

__all__ = ["ExploreState", "QUERY_KEYS", "to_query", "from_query", "describe", "day_text", "day_obs_of"]

#: Explorer field -> URL query key.
QUERY_KEYS = {"calib_type": "calib", "run": "run", "day": "day", "metric": "metric", "detector": "det",
              "amp": "amp"}
_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


@dataclass(frozen=True)
class ExploreState:
    """One selection of the explorer (empty strings: not chosen)."""

    calib_type: str = ""
    run: str = ""
    day: str = ""
    metric: str = ""
    detector: str = ""
    amp: str = ""

    def with_amp(self, detector: str, amp: str) -> "ExploreState":
        return replace(self, detector=str(detector), amp=str(amp))


def day_text(day_obs) -> str:
    """``20251124`` or ``"20251124"`` -> ``"2025-11-24"``; empty for none.

    >>> day_text(20251124), day_text(None)
    ('2025-11-24', '')
    """
    if day_obs is None or day_obs == "":
        return ""
    m = _DAY.match(str(day_obs).strip())
    if not m:
        raise ValueError(f"not a day (YYYY-MM-DD or YYYYMMDD): {day_obs!r}")
    return "-".join(m.groups())


def day_obs_of(day: str) -> int | None:
    """``"2025-11-24"`` -> ``20251124``; None for empty.

    >>> day_obs_of("2025-11-24")
    20251124
    """
    return int(day_text(day).replace("-", "")) if day else None


def to_query(state: ExploreState) -> str:
    """The URL query (without ``?``) of a selection; empty fields left out."""
    values = asdict(state)
    return urlencode([(QUERY_KEYS[f.name], values[f.name]) for f in fields(state) if values[f.name]])


def from_query(query: str | dict) -> ExploreState:
    """A selection from a URL query string (``?`` optional) or a ``{key: value}`` mapping.

    Raises ``ValueError`` for a malformed ``day``.
    """
    if isinstance(query, str):
        pairs = dict(parse_qsl(query.lstrip("?"), keep_blank_values=False))
    else:
        pairs = {str(k): (v[0] if isinstance(v, (list, tuple)) else v) for k, v in query.items()}
    by_key = {key: name for name, key in QUERY_KEYS.items()}
    kw = {by_key[k]: str(v) for k, v in pairs.items() if k in by_key and v is not None}
    if "day" in kw:
        kw["day"] = day_text(kw["day"])
    return ExploreState(**kw)


def describe(state: ExploreState) -> str:
    """A one-line title of the selection, as a scientist would say it."""
    parts = [p for p in (state.detector, state.amp, state.metric) if p]
    text = " ".join(parts) or "no amp"
    if state.day:
        text += f" on {state.day}"
    elif state.run:
        text += f" in {state.run}"
    if state.calib_type:
        text += f" ({state.calib_type})"
    return text
