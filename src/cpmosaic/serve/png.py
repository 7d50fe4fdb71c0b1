"""A fast PNG encoder for tiles: no filtering, deflate level 1, one ``IDAT``, the smallest pixel format.

Tiles are encoded on request (and by the thousand in ``export-tiles``); Pillow's encoder
spends most of its time choosing row filters.  Unfiltered rows compress a little less but
encode several times faster.  Deflate is ISA-L's (``isal``, several times faster than zlib at
level 1) when installed, else zlib; both release the GIL, so threads encode in parallel.

:func:`encode_indexed` writes a tile from its colour indices (:func:`cpmosaic.kernels.colour.colour_index`)
in one byte per pixel where it can:

* every pixel drawn and a grey table (``r == g == b``, opaque): 8-bit greyscale;
* otherwise an 8-bit palette (``PLTE`` = the table, ``tRNS`` its alpha), the transparent
  pixels on an index no drawn pixel uses (its entry set to ``(0, 0, 0, 0)``);
* only when all 256 indices are drawn and some pixels are transparent: greyscale+alpha
  (grey tables) or RGBA.

Every form decodes to the same RGBA as ``table[index]`` with ``(0, 0, 0, 0)`` where transparent,
the display layer's :func:`cpmosaic.viz.display.to_rgba`.  The output is a standard PNG any
decoder reads.
"""

from __future__ import annotations

import functools
import struct
import types
import zlib

import numpy as np

_deflate: types.ModuleType
try:  # ISA-L: same deflate streams any inflater reads, 3-10x faster to write at level 1
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps the encoder working without it
    _deflate = zlib

__all__ = ["encode", "encode_indexed"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 4: 6}  # channels -> PNG colour type (grey, LA, RGBA)
_PALETTE = 3


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(rows: np.ndarray, width: int, colour_type: int, level: int, extra: bytes = b"") -> bytes:
    """A PNG of filtered ``rows`` (``(h, 1 + width * channels)``, filter byte first)."""
    header = struct.pack(">IIBBBBB", width, rows.shape[0], 8, colour_type, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + extra
            + _chunk(b"IDAT", _deflate.compress(rows.data if rows.flags.c_contiguous else rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def _rows(pixels: np.ndarray) -> np.ndarray:
    """``(h, w, c)`` or ``(h, w)`` uint8 -> ``(h, 1 + w c)`` with filter byte 0 (None) on each row."""
    h = pixels.shape[0]
    flat = pixels.reshape(h, -1)
    rows = np.empty((h, 1 + flat.shape[1]), np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = flat
    return rows


def encode(pixels: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a ``(h, w)`` grey, ``(h, w, 2)`` (grey, alpha) or ``(h, w, 4)`` (RGBA) uint8 array.

    >>> from PIL import Image; import io
    >>> a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    >>> np.array_equal(np.asarray(Image.open(io.BytesIO(encode(a)))), a)
    True
    """
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    return _png(_rows(pixels), pixels.shape[1], _COLOUR_TYPE[c], level)


@functools.lru_cache(maxsize=64)
def _table(lut_bytes: bytes) -> tuple[bool, bool, np.ndarray, np.ndarray, np.ndarray]:
    """``(grey, identity, grey levels, PLTE rgb, tRNS alpha)`` of a ``(256, 4)`` table, once per table."""
    lut = np.frombuffer(lut_bytes, np.uint8).reshape(256, 4)
    grey = bool((lut[:, 0] == lut[:, 1]).all() and (lut[:, 0] == lut[:, 2]).all() and (lut[:, 3] == 255).all())
    identity = grey and bool((lut[:, 0] == np.arange(256)).all())
    return grey, identity, lut[:, 0].copy(), lut[:, :3].copy(), lut[:, 3].copy()


def encode_indexed(index: np.ndarray, alpha: np.ndarray, counts: np.ndarray, lut: np.ndarray,
                   level: int = 1) -> bytes:
    """PNG bytes of colour indices through a ``(256, 4)`` RGBA table, transparent where ``alpha`` is 0.

    ``counts`` is :func:`~cpmosaic.kernels.colour.colour_index`'s (drawn pixels per index, then the
    transparent ones).  ``index`` may be overwritten (transparent pixels moved to a free index).

    >>> from PIL import Image; import io
    >>> lut = np.zeros((256, 4), np.uint8); lut[:, 0] = np.arange(256); lut[:, 3] = 255
    >>> idx = np.array([[0, 7], [255, 0]], np.uint8); a = np.array([[255, 255], [255, 0]], np.uint8)
    >>> counts = np.bincount(idx[a > 0], minlength=256).tolist() + [1]
    >>> np.asarray(Image.open(io.BytesIO(encode_indexed(idx, a, np.array(counts), lut))).convert("RGBA"))[..., 0].tolist()
    [[0, 7], [255, 0]]
    """
    h, w = index.shape
    transparent = int(counts[256]) > 0
    grey, identity, levels, plte, trns = _table(np.ascontiguousarray(lut, dtype=np.uint8).tobytes())
    if grey and not transparent:
        return _png(_rows(index if identity else levels[index]), w, 0, level)
    free = np.flatnonzero(counts[:256] == 0)
    if free.size == 0 and transparent:  # every colour drawn: no palette entry left for "transparent"
        if grey:
            return _png(_rows(np.stack([index if identity else levels[index], alpha], axis=-1)), w, 4, level)
        rgba = lut[index]
        rgba[alpha == 0] = 0
        return _png(_rows(rgba), w, 6, level)
    if transparent:
        plte, trns = plte.copy(), trns.copy()
        u = int(free[0])
        np.copyto(index, np.uint8(u), where=alpha == 0)
        plte[u], trns[u] = 0, 0
    extra = _chunk(b"PLTE", plte.tobytes())
    opaque = np.flatnonzero(trns != 255)
    if opaque.size:
        extra += _chunk(b"tRNS", trns[: int(opaque[-1]) + 1].tobytes())
    return _png(_rows(index), w, _PALETTE, level, extra)
