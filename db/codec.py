"""Binary encoding of heatmaps stored in ``heatmaps.data`` and ``reference_heatmaps.data``.

Format: the map's values in row-major order (row ``i`` then column ``j``, shape ``(rows, cols)``)
as little-endian IEEE float16, ``2 * rows * cols`` bytes; the shape lives in the ``grid_h`` /
``grid_w`` columns. A 7x7 map takes 98 bytes.

Precision: float16 keeps 11 significant bits, so for ``|x| >= 2**-14`` (float16's smallest normal
number) the round-trip error is at most ``|x| * 2**-11``, and below that at most ``2**-25``
(half the subnormal spacing). NaN and infinities are kept as such (``state = 'nonfinite'`` maps).
Finite values beyond float16's range (``|x| > 65504``) are refused rather than turned into
infinities.
"""

from __future__ import annotations

import numpy as np

FLOAT16_MAX = float(np.finfo(np.float16).max)
_DTYPE = np.dtype("<f2")


def encode_heatmap(heatmap: np.ndarray) -> bytes:
    """Encode a 2-D map (rows, cols) as little-endian float16 bytes, row-major."""
    values = np.asarray(heatmap)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (rows, cols), got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"heatmap of shape {values.shape} is empty")
    if not np.issubdtype(values.dtype, np.floating) and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"heatmap must hold real numbers, got dtype {values.dtype}")
    finite = values[np.isfinite(values)]
    if finite.size and float(np.max(np.abs(finite))) > FLOAT16_MAX:
        raise ValueError(f"heatmap value {float(np.max(np.abs(finite))):.6g} exceeds float16's range "
                         f"(|x| <= {FLOAT16_MAX:g}); store a rescaled map and keep the scale separately")
    return np.ascontiguousarray(values, dtype=_DTYPE).tobytes()


def decode_heatmap(data: bytes, height: int, width: int) -> np.ndarray:
    """Decode bytes from :func:`encode_heatmap` into a writable float32 array of shape (height, width)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"heatmap grid {height}x{width} is not positive")
    expected = 2 * height * width
    if len(data) != expected:
        raise ValueError(f"heatmap data holds {len(data)} bytes, expected {expected} for a "
                         f"{height}x{width} float16 grid")
    return np.frombuffer(data, dtype=_DTYPE).astype(np.float32).reshape(height, width)
