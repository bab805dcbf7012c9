"""The working grid and the resampling of a native CAM map onto it.

Conventions (see ``docs/metrics.md``):

- The *working grid* covers the whole original image with ``rows x cols`` equal cells, keeping the
  image's aspect ratio, its longest side ``longest`` cells (:func:`working_grid_shape`).
- Cell ``(i, j)`` (row ``i``, column ``j``) has its centre at ``x = (j + 0.5) / cols``,
  ``y = (i + 0.5) / rows`` in coordinates normalised to the original image (``x`` along columns).
- A native map of shape ``(h, w)`` spans the *extent* ``(ex0, ey0, ex1, ey1)`` (normalised image
  coordinates); its cell ``(i, j)`` has its centre at ``(j + 0.5) / w``, ``(i + 0.5) / h`` of the extent
  (``align_corners=False``).

Bilinear resampling is separable, so it is two small matrix products ``A_y @ native @ A_x.T`` with
interpolation matrices cached per shape and extent.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

Extent = tuple[float, float, float, float]

# Sample positions closer than this (in native cells) to a native cell centre snap onto it, so that
# resampling onto an identical grid is an exact copy rather than a 1e-16 blend of neighbours.
_SNAP = 1e-9


def check_image_size(width: object, height: object) -> None:
    """Raise ``ValueError`` unless ``width`` and ``height`` are positive integers (pixels)."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"image {name} must be a positive integer number of pixels, got {value!r}")


def check_extent(extent: object) -> Extent:
    """Return ``extent`` as four floats, or raise ``ValueError`` if it is malformed or empty."""
    try:
        ex0, ey0, ex1, ey1 = (float(v) for v in extent)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"extent must be four numbers (ex0, ey0, ex1, ey1), got {extent!r}") from None
    if not all(math.isfinite(v) for v in (ex0, ey0, ex1, ey1)):
        raise ValueError(f"extent {extent!r} contains a non-finite value")
    if not (ex1 > ex0 and ey1 > ey0):
        raise ValueError(f"extent {extent!r} is empty or swapped: expected ex1 > ex0 and ey1 > ey0 "
                         "(x is the column axis)")
    return (ex0, ey0, ex1, ey1)


def working_grid_shape(width: int, height: int, longest: int = 224) -> tuple[int, int]:
    """``(rows, cols)`` of the working grid: the image's aspect ratio, longest side ``longest`` cells.

    The short side is ``floor(longest * short / long + 0.5)``, at least 1 (e.g. 640x480 -> (168, 224)).
    """
    check_image_size(width, height)
    if isinstance(longest, bool) or not isinstance(longest, int | np.integer) or longest < 1:
        raise ValueError(f"longest must be a positive integer number of cells, got {longest!r}")
    longest = int(longest)
    if width >= height:
        return max(1, math.floor(longest * height / width + 0.5)), longest
    return longest, max(1, math.floor(longest * width / height + 0.5))


@lru_cache(maxsize=64)
def cell_centres(n: int) -> np.ndarray:
    """Normalised centres ``(k + 0.5) / n`` of ``n`` equal cells on ``[0, 1]`` (read-only)."""
    centres = (np.arange(n, dtype=np.float64) + 0.5) / n
    centres.setflags(write=False)
    return centres


@lru_cache(maxsize=128)
def interpolation_matrix(n_out: int, n_in: int, lo: float, hi: float) -> np.ndarray:
    """``(n_out, n_in)`` linear-interpolation weights along one axis (read-only).

    Output cell ``k`` (centre ``t = (k + 0.5) / n_out`` of the image) sits at ``u = (t - lo) / (hi - lo)``
    of the native axis spanning ``[lo, hi]``; its continuous native index is ``s = u * n_in - 0.5``,
    clamped to ``[0, n_in - 1]`` (edge clamp inside the extent), and it takes ``1 - frac(s)`` of native
    cell ``floor(s)`` and ``frac(s)`` of the next. Rows with ``u`` outside ``[0, 1]`` (outside the extent)
    are zero.
    """
    u = (cell_centres(n_out) - lo) / (hi - lo)
    s = u * n_in - 0.5
    nearest = np.rint(s)
    s = np.clip(np.where(np.abs(s - nearest) < _SNAP, nearest, s), 0.0, n_in - 1)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = s - i0
    out = np.arange(n_out)
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(matrix, (out, i0), 1.0 - frac)
    np.add.at(matrix, (out, i1), frac)
    matrix[(u < 0.0) | (u > 1.0)] = 0.0
    matrix.setflags(write=False)
    return matrix


def resample(native: np.ndarray, extent: Extent, rows: int, cols: int) -> np.ndarray:
    """Bilinear resampling of a validated 2-D float64 ``native`` onto a ``rows x cols`` grid (float64)."""
    ex0, ey0, ex1, ey1 = extent
    h, w = native.shape
    a_y = interpolation_matrix(rows, h, ey0, ey1)
    a_x = interpolation_matrix(cols, w, ex0, ex1)
    # Contract the smaller side first: (rows x h)(h x w) then (rows x w)(w x cols).
    return (a_y @ native) @ a_x.T


def resample_to_image(native: np.ndarray, extent: Extent, width: int, height: int,
                      longest: int = 224) -> np.ndarray:
    """Resample ``native`` (2-D) spanning ``extent`` onto the working grid of a ``width x height`` image.

    Returns a float32 ``(rows, cols)`` array (see :func:`working_grid_shape`): bilinear with
    ``align_corners=False`` cell centres, edge-clamped inside the extent, 0 outside it (center-crop
    sides); the part of the extent outside the image (letterbox padding) is cropped away.
    """
    arr = np.asarray(native)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"native heatmap must be a non-empty 2-D array (rows, cols), got shape {arr.shape}")
    rows, cols = working_grid_shape(width, height, longest)
    return resample(arr.astype(np.float64, copy=False), check_extent(extent), rows, cols).astype(np.float32)
