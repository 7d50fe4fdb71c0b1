"""Numba kernels: arrays in, arrays out (no files, dask or zarr inside).

Every public kernel releases the GIL, validates its input at the door (raising
``ValueError`` that names the bad value) and has a plain-numpy twin in
:mod:`cpmosaic.kernels.reference` that the tests compare against.  Big-endian
inputs (FITS memmaps) are decoded inside the kernels, never copied whole.

Kernels
-------
assemble_amp
    Overscan-subtract, gain-correct, flip and place a raw amplifier segment.
block_reduce, pyramid_reduce
    NaN/mask-aware binning (mean/sum/max/min) and the 2x2 pyramid step.
rotate_quarter, bin_rotate_into
    Quarter turns (counter-clockwise, y-up arrays) and the fused
    bin + rotate + paste path of the mosaic builder.
amp_statistics, amp_difference_statistics
    Per-box moments, quartiles and afw-style sigma-clipped statistics.
colour_index
    Data values to colour indices and alpha in one pass (the display layer's stretch and
    quantisation), for the tile PNG encoder.
"""

from .assemble import OVERSCAN_MODES, assemble_amp
from .binning import HOW, block_reduce, pyramid_reduce
from .colour import colour_index
from .rotate import bin_rotate_into, rotate_quarter
from .stats import DIFF_KEYS, IQ_TO_STDEV, STAT_KEYS, amp_difference_statistics, amp_statistics

__all__ = [
    "DIFF_KEYS",
    "HOW",
    "IQ_TO_STDEV",
    "OVERSCAN_MODES",
    "STAT_KEYS",
    "amp_difference_statistics",
    "amp_statistics",
    "assemble_amp",
    "bin_rotate_into",
    "block_reduce",
    "colour_index",
    "pyramid_reduce",
    "rotate_quarter",
]
