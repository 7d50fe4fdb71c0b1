"""Views of metrics and mosaics: every plot a function returning a HoloViews object.

Save any of them with :func:`save_html` (standalone, inline BokehJS, works offline) or
:func:`save_png` (rasterised with PIL, no browser).  Attributes are imported on first use,
so ``import cpmosaic.viz`` stays cheap and HoloViews/bokeh load only when a view is made.

>>> import cpmosaic.viz as viz
>>> sorted(viz.__all__)[:3]
['ab_scatter', 'amp_geometry', 'amp_values']
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "focal_plane_heatmap": "heatmap",
    "amp_values": "heatmap",
    "amp_geometry": "heatmap",
    "metric_histogram": "distributions",
    "metric_scatter": "distributions",
    "metric_trend": "timeseries",
    "daily_stats": "timeseries",
    "difference_heatmap": "comparison",
    "difference_histogram": "comparison",
    "ab_scatter": "comparison",
    "comparison_layout": "comparison",
    "mosaic_view": "mosaic_view",
    "mosaic_explorer": "mosaic_view",
    "failures_table_html": "tables",
    "outliers_table_html": "tables",
    "table_html": "tables",
    "save_html": "save",
    "save_png": "save",
    "render_png": "save",
    "html_document": "save",
    "robust_range": "style",
    "symmetric_range": "style",
    "colormap_lut": "display",
    "store_normalize": "render",
    "render_rgba": "render",
    "explore": "explorer",
}

__all__ = sorted(_EXPORTS)

# The submodule ``mosaic_view`` shares its name with its main function.  Importing it now (it
# loads nothing heavy at import) binds the function here for good; otherwise the first import
# of the submodule would shadow the function with the module.
from . import mosaic_view as _mosaic_view_module  # noqa: E402

mosaic_view = _mosaic_view_module.mosaic_view
mosaic_explorer = _mosaic_view_module.mosaic_explorer


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'cpmosaic.viz' has no attribute {name!r}") from None
    mod = importlib.import_module(f".{module}", __name__)
    for other, where in _EXPORTS.items():  # bind the module's other exports too
        if where == module:
            globals()[other] = getattr(mod, other)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
