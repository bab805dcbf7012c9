"""Object-region geometry for the heatmap statistics: coverage of grid cells, pointing, IoU.

Boxes are ``(x0, y0, x1, y1)`` in original pixels, half-open, ``x`` along columns (see
:mod:`camwatch.regions`); pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``. The object is the union of
the region's boxes and mask. Everything here is exact area arithmetic, no rasterisation at sample points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import sparse

from camwatch.regions import Box, ObjectRegion


def iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """Intersection over union of two half-open boxes ``(x0, y0, x1, y1)``; 0.0 if the union is empty.

    For inclusive integer pixel boxes (``x1`` is the last column, as in ``wsolevaluation``) pass
    ``(x0, y0, x1 + 1, y1 + 1)``.
    """
    ax0, ay0, ax1, ay1 = (float(v) for v in box_a)
    bx0, by0, bx1, by1 = (float(v) for v in box_b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    area_a = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0)
    area_b = max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
    union = area_a + area_b - inter
    return inter / union if union > 0.0 else 0.0


def check_region(region: ObjectRegion, width: int, height: int) -> None:
    """Raise ``ValueError`` if the region's mask does not have the image's shape ``(height, width)``."""
    if region.mask is not None and region.mask.shape != (height, width):
        raise ValueError(f"object mask has shape {region.mask.shape}, but the image is {width}x{height} "
                         f"(expected mask shape (height, width) = ({height}, {width}))")


def _cell_edges(n_cells: int, length: float) -> np.ndarray:
    """Edges ``k * length / n_cells``, ``k = 0..n_cells`` (the last one is exactly ``length``)."""
    return np.arange(n_cells + 1, dtype=np.float64) * length / n_cells


def _overlap_fractions(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(cells, intervals)``: length of ``[lo_k, hi_k)`` inside cell ``[edges_j, edges_j+1)`` / cell length."""
    inter = np.minimum(hi[None, :], edges[1:, None]) - np.maximum(lo[None, :], edges[:-1, None])
    return np.maximum(inter, 0.0) / np.diff(edges)[:, None]


def _elementary_union(boxes: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """Fraction of each cell of the grid ``y_edges x x_edges`` covered by the union of ``boxes`` (an
    ``(n, 4)`` array), for few boxes.

    The box edges cut the plane into elementary rectangles, each wholly inside the union or wholly
    outside (tested at its midpoint); the inside ones are disjoint, so the coverage is exactly
    ``F_y @ inside @ F_x.T`` with ``F`` the per-axis overlap fractions of the elementary intervals with the
    cells. Memory and time grow as ``n**2``: :func:`_box_union_fraction` calls it only on the few boxes
    that cross one cell.
    """
    xs, ys = np.unique(boxes[:, [0, 2]]), np.unique(boxes[:, [1, 3]])
    xm, ym = 0.5 * (xs[:-1] + xs[1:]), 0.5 * (ys[:-1] + ys[1:])
    in_x = ((xm >= boxes[:, 0, None]) & (xm < boxes[:, 2, None])).astype(np.float64)  # (boxes, x intervals)
    in_y = ((ym >= boxes[:, 1, None]) & (ym < boxes[:, 3, None])).astype(np.float64)  # (boxes, y intervals)
    inside = ((in_y.T @ in_x) > 0.0).astype(np.float64)
    f_y = _overlap_fractions(ys[:-1], ys[1:], y_edges)
    f_x = _overlap_fractions(xs[:-1], xs[1:], x_edges)
    return (f_y @ inside) @ f_x.T


def _spans(lo: float, hi: float, edges: np.ndarray) -> tuple[int, int, int, int]:
    """Cells ``[a, b]`` that ``[lo, hi)`` overlaps and cells ``[f0, f1]`` it covers whole (empty if f0 > f1)."""
    last = edges.size - 2
    a = max(0, int(np.searchsorted(edges, lo, side="right")) - 1)
    b = min(last, int(np.searchsorted(edges, hi, side="left")) - 1)
    f0 = int(np.searchsorted(edges, lo, side="left"))
    f1 = min(last, int(np.searchsorted(edges, hi, side="right")) - 2)
    return a, b, f0, f1


def _box_union_fraction(boxes: Sequence[Box], x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """Fraction of each cell of the grid ``y_edges x x_edges`` covered by the union of ``boxes``, exactly,
    in time and memory linear in the number of boxes (for a given grid).

    A cell some box covers whole has coverage 1: those cells are counted with a 2-D difference array (four
    updates per box, one cumulative sum). Every other cell a box overlaps lies on that box's outer ring of
    cells (only its first and last row and column of cells can be partial), so each box names at most
    ``2 (rows + cols)`` such cells. A ring cell not covered whole is measured exactly from the boxes that
    name it, clipped to the cell: one box is its clipped area, several go through :func:`_elementary_union`
    (quadratic only in the boxes crossing that one cell).
    """
    rows, cols = y_edges.size - 1, x_edges.size - 1
    if not boxes:
        return np.zeros((rows, cols))
    b = np.asarray(boxes, dtype=np.float64)
    full = np.zeros((rows + 1, cols + 1), dtype=np.int32)
    cells: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for k, (x0, y0, x1, y1) in enumerate(b):
        ja, jb, jf0, jf1 = _spans(x0, x1, x_edges)
        ia, ib, if0, if1 = _spans(y0, y1, y_edges)
        if ja > jb or ia > ib:
            continue  # outside the grid
        if jf0 <= jf1 and if0 <= if1:
            full[if0, jf0] += 1
            full[if0, jf1 + 1] -= 1
            full[if1 + 1, jf0] -= 1
            full[if1 + 1, jf1 + 1] += 1
        part_cols = [j for j in {ja, jb} if not jf0 <= j <= jf1]
        part_rows = [i for i in {ia, ib} if not if0 <= i <= if1]
        all_cols, all_rows = np.arange(ja, jb + 1), np.arange(ia, ib + 1)
        ring = [(i * cols + all_cols) for i in part_rows] + [(all_rows * cols + j) for j in part_cols]
        if ring:
            ids = np.unique(np.concatenate(ring))
            cells.append(ids)
            owners.append(np.full(ids.size, k))
    covered = (np.cumsum(np.cumsum(full, axis=0), axis=1)[:rows, :cols] > 0).astype(np.float64)
    if not cells:
        return covered
    cell_ids, box_ids = np.concatenate(cells), np.concatenate(owners)
    flat = covered.reshape(-1)
    open_cells = flat[cell_ids] == 0.0
    cell_ids, box_ids = cell_ids[open_cells], box_ids[open_cells]
    if not cell_ids.size:
        return covered
    order = np.argsort(cell_ids, kind="stable")
    cell_ids, box_ids = cell_ids[order], box_ids[order]
    starts = np.flatnonzero(np.r_[True, cell_ids[1:] != cell_ids[:-1]])
    ends = np.r_[starts[1:], cell_ids.size]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        cell = int(cell_ids[start])
        i, j = divmod(cell, cols)
        cx, cy = x_edges[j:j + 2], y_edges[i:i + 2]
        clipped = b[box_ids[start:end]].copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], cx[0], cx[1])
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], cy[0], cy[1])
        if end - start == 1:
            x0, y0, x1, y1 = clipped[0]
            flat[cell] = (x1 - x0) * (y1 - y0) / ((cx[1] - cx[0]) * (cy[1] - cy[0]))
        else:
            flat[cell] = _elementary_union(clipped, cx, cy)[0, 0]
    return covered


@lru_cache(maxsize=32)
def _pixel_to_cell(n_cells: int, n_pixels: int) -> sparse.csr_array:
    """Sparse ``(n_cells, n_pixels)``: overlap of pixel ``q`` (``[q, q + 1)``) with cell ``k`` / cell length."""
    pixel_lo = np.arange(n_pixels, dtype=np.float64)
    return sparse.csr_array(_overlap_fractions(pixel_lo, pixel_lo + 1.0, _cell_edges(n_cells, n_pixels)))


def _cell_average(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Exact area average of a per-pixel ``(height, width)`` array over each working cell."""
    height, width = pixels.shape
    per_row = _pixel_to_cell(rows, height) @ pixels  # (rows, width)
    return np.asarray((_pixel_to_cell(cols, width) @ per_row.T).T, dtype=np.float64)


def region_coverage(region: ObjectRegion, width: int, height: int, rows: int, cols: int) -> np.ndarray:
    """Fraction ``c`` in ``[0, 1]`` of each working cell covered by the object (float64 ``(rows, cols)``).

    Boxes: exact area of each cell's rectangle inside the union of the (clipped) boxes, so that
    ``mean(c)`` is the union's share of the image area. Mask: area average of the mask over each cell
    (cells need not align with pixels). Boxes and mask: ``c = c_boxes + average(mask * (1 - b))`` with
    ``b`` the exact per-pixel box coverage, i.e. the coverage of the union.
    """
    check_region(region, width, height)
    boxes = region.clipped_boxes(width, height)
    coverage = _box_union_fraction(boxes, _cell_edges(cols, width), _cell_edges(rows, height))
    if region.mask is not None:
        rest = np.asarray(region.mask, dtype=bool).astype(np.float32)
        if boxes:
            # Per-pixel box coverage, only inside the boxes' bounding window (zero elsewhere).
            b = np.asarray(boxes)
            c0, r0 = math.floor(b[:, 0].min()), math.floor(b[:, 1].min())
            c1, r1 = math.ceil(b[:, 2].max()), math.ceil(b[:, 3].max())
            inside = _box_union_fraction(boxes, np.arange(c0, c1 + 1, dtype=np.float64),
                                         np.arange(r0, r1 + 1, dtype=np.float64))
            rest[r0:r1, c0:c1] *= (1.0 - inside).astype(np.float32)
        coverage += _cell_average(rest, rows, cols)
    return np.clip(coverage, 0.0, 1.0)


def object_boxes(region: ObjectRegion, width: int, height: int) -> list[Box]:
    """The object's boxes for IoU: its clipped boxes plus the mask's bounding box (if any pixel is set)."""
    boxes = list(region.clipped_boxes(width, height))
    if region.mask is not None:
        mask = np.asarray(region.mask, dtype=bool)
        row_hit, col_hit = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if row_hit.size:
            boxes.append((float(col_hit[0]), float(row_hit[0]), float(col_hit[-1] + 1), float(row_hit[-1] + 1)))
    return boxes


def near_object(region: ObjectRegion, x: float, y: float, tolerance: float, width: int, height: int) -> bool:
    """Whether the point ``(x, y)`` (pixels) is within ``tolerance`` pixels of the object.

    Distance to a box is the Euclidean distance to its rectangle (0 inside); to the mask, the distance to
    the nearest set pixel's square. Only the ``(2 tolerance + 2)``-pixel window around the point is read.
    """
    for x0, y0, x1, y1 in region.clipped_boxes(width, height):
        if math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1)) <= tolerance:
            return True
    if region.mask is None:
        return False
    r0, r1 = max(0, math.floor(y - tolerance) - 1), min(height, math.ceil(y + tolerance) + 1)
    c0, c1 = max(0, math.floor(x - tolerance) - 1), min(width, math.ceil(x + tolerance) + 1)
    if r0 >= r1 or c0 >= c1:
        return False
    i = np.arange(r0, r1, dtype=np.float64)
    j = np.arange(c0, c1, dtype=np.float64)
    dy = np.maximum(np.maximum(i - y, y - (i + 1.0)), 0.0)
    dx = np.maximum(np.maximum(j - x, x - (j + 1.0)), 0.0)
    close = dy[:, None] ** 2 + dx[None, :] ** 2 <= tolerance**2
    return bool(np.any(np.asarray(region.mask[r0:r1, c0:c1], dtype=bool) & close))
