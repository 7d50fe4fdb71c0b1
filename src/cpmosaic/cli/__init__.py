"""The ``cpmosaic`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``;
modules import heavy libraries (holoviews, bokeh, datashader, dask) inside
their ``run`` function so that ``cpmosaic --help`` and light commands start fast.
"""

from .main import main

__all__ = ["main"]
