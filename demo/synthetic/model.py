"""The generative model behind :mod:`demo.synthetic.fill`: per-image scenes, heatmaps, statistics and flags.

Everything is vectorised over a chunk of images (numpy, no per-image Python loop except for the row
dicts built by :mod:`demo.synthetic.fill`).

Scene model (image ``k``):

- an object of the predicted class at ``(ox, oy)`` (fractions of the width/height), box of ``bw x bh``;
- the heatmap is a Gaussian blob on a 7x7 native grid covering the whole image (extent ``(0, 0, W, H)``):
  ``h(i, j) = gain * exp(-((x_j - cx)^2 + (y_i - cy)^2) / (2 s^2)) + noise``, ``x_j = (j + 0.5) / 7``;
- normal images look at the object (``(cx, cy)`` = object centre + N(0, 0.04)); "bad" images (a share
  ``flagged_share``) look at a random place with a wider blob; images of the *shortcut camera* after
  ``shortcut_from`` look at a watermark in the bottom-right corner ``(0.93, 0.92)`` -- the kind of
  shortcut the Slices page is meant to reveal.

Statistics are computed from the 7x7 map with the definitions of :data:`camwatch.statistics.registry.STATISTICS`,
evaluated on the native grid rather than the 224-px working grid (close, not identical), and with two
simplifications: object coverage ``c`` is 1 for cells whose centre lies in the box, else 0; the CAM box is
the bounding box of *all* cells ``>= 0.2 max h`` (not only the largest component). Flags use the default
thresholds of :mod:`camwatch.monitoring.flags` (``atypical_attention``: centroid or spread beyond 3 sigma of the class's
reference).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from camwatch.monitoring.flags import ATYPICAL_STATISTICS, FlagConfig

GRID = 7
CLASS_NAMES: tuple[str, ...] = ("person", "forklift", "pallet", "hard hat", "truck", "bicycle", "traffic cone",
                                "ladder", "safety vest", "dog")
ERROR_REASONS: tuple[str, ...] = (
    "image file is truncated (OSError while decoding)",
    "cannot identify image file: format not in the allowed list",
    "decompression bomb: 190000000 pixels exceed twice the limit of 89478485",
    "zero-byte file",
)
WATERMARK_CENTRE = (0.93, 0.92)
CAMERA_MODELS: tuple[str, ...] = ("AXIS M3106-L Mk II", "Hikvision DS-2CD2143G2-I", "Bosch FLEXIDOME IP 4000i")
#: Brightness factor of the shortcut camera's images once it attends the watermark (its light changed too).
SHORTCUT_DIMMING = 0.75
_CENTRES = (np.arange(GRID) + 0.5) / GRID
_BORDER = (_CENTRES < 0.1) | (_CENTRES > 0.9)  # cells whose centre is within 10% of an edge
_BORDER_MASK = _BORDER[:, None] | _BORDER[None, :]
_TOP_CELLS = math.ceil(0.05 * GRID * GRID)


def camera_name(index: int) -> str:
    return f"cam-{index:02d}"


def site_name(index: int) -> str:
    return f"site-{index}"


def camera_model(index: int) -> str:
    return CAMERA_MODELS[index % len(CAMERA_MODELS)]


def image_properties(rng: np.random.Generator, camera: np.ndarray, shortcut: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel properties of a chunk (:data:`camwatch.statistics.registry.IMAGE_PROPERTY_COLUMNS`): a scene
    brightness per camera with a 6 % spread; the shortcut camera's images are darker and flatter
    (:data:`SHORTCUT_DIMMING`) once it attends the watermark, so the root cause shows beside the attention."""
    k = camera.size
    dim = np.where(shortcut, SHORTCUT_DIMMING, 1.0)
    return {"brightness": (95.0 + 12.0 * (camera % 5)) * rng.normal(1.0, 0.06, k) * dim,
            "contrast": rng.normal(45.0, 5.0, k) * dim,
            "sharpness": np.exp(rng.normal(math.log(600.0), 0.25, k)),
            "colourfulness": np.abs(rng.normal(22.0 + 2.0 * (camera % 3), 4.0, k))}


@dataclass(frozen=True)
class SceneParams:
    """Per-image scene parameters of a chunk (arrays of length k)."""

    cls: np.ndarray  # predicted class
    confidence: np.ndarray
    ox: np.ndarray  # object centre, fractions
    oy: np.ndarray
    bw: np.ndarray  # object box size, fractions
    bh: np.ndarray
    has_region: np.ndarray  # bool: an object box is known
    cx: np.ndarray  # heatmap centre
    cy: np.ndarray
    sigma: np.ndarray
    gain: np.ndarray
    bad: np.ndarray  # bool: attention deliberately off the object
    shortcut: np.ndarray  # bool: attention on the watermark


def draw_scenes(rng: np.random.Generator, n_classes: int, bad_share: float, shortcut: np.ndarray) -> SceneParams:
    """Scene parameters for ``len(shortcut)`` images; ``shortcut[k]`` marks watermark-attending images."""
    k = shortcut.size
    weights = 1.0 / np.arange(1, n_classes + 1)  # Zipf-like class mix
    cls = rng.choice(n_classes, size=k, p=weights / weights.sum())
    ox = np.clip(rng.normal(0.5 + 0.03 * (cls % 3 - 1), 0.1, k), 0.2, 0.8)
    oy = np.clip(rng.normal(0.55, 0.08, k), 0.25, 0.8)
    bw, bh = rng.uniform(0.3, 0.55, k), rng.uniform(0.4, 0.7, k)
    bad = (rng.random(k) < bad_share) & ~shortcut
    cx = np.where(bad, rng.uniform(0.05, 0.95, k), ox + rng.normal(0, 0.04, k))
    cy = np.where(bad, rng.uniform(0.05, 0.95, k), oy + rng.normal(0, 0.04, k))
    sigma = np.exp(rng.normal(math.log(0.09), 0.2, k)) * np.where(bad, 1.8, 1.0)
    cx = np.where(shortcut, WATERMARK_CENTRE[0] + rng.normal(0, 0.01, k), cx)
    cy = np.where(shortcut, WATERMARK_CENTRE[1] + rng.normal(0, 0.01, k), cy)
    sigma = np.where(shortcut, 0.07, sigma)
    confidence = np.where(bad, rng.beta(3.0, 3.0, k), rng.beta(9.0, 1.6, k))
    return SceneParams(cls=cls, confidence=np.clip(confidence, 0.11, 0.999), ox=ox, oy=oy, bw=bw, bh=bh,
                       has_region=rng.random(k) < 0.6, cx=np.clip(cx, 0.0, 1.0), cy=np.clip(cy, 0.0, 1.0),
                       sigma=sigma, gain=np.exp(rng.normal(math.log(8.0), 0.3, k)), bad=bad, shortcut=shortcut)


def heatmaps(rng: np.random.Generator, p: SceneParams) -> np.ndarray:
    """Native maps, float32 of shape (k, 7, 7), non-negative."""
    dx = _CENTRES[None, None, :] - p.cx[:, None, None]
    dy = _CENTRES[None, :, None] - p.cy[:, None, None]
    blob = np.exp(-(dx**2 + dy**2) / (2 * p.sigma[:, None, None] ** 2))
    noise = rng.exponential(0.004, blob.shape)
    return (p.gain[:, None, None] * (blob + noise)).astype(np.float32)


def statistics(maps: np.ndarray, p: SceneParams, width: np.ndarray, height: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics named as ``camwatch.statistics.registry.HEATMAP_KEYS`` (NaN where undefined), see the module docstring."""
    k = maps.shape[0]
    h = maps.astype(np.float64)
    total = h.sum(axis=(1, 2))
    q = h / total[:, None, None]
    px, py = q.sum(axis=1), q.sum(axis=2)  # marginals over columns (x) and rows (y)
    mx, my = px @ _CENTRES, py @ _CENTRES
    w, hh = width.astype(np.float64), height.astype(np.float64)
    vxx = (px * (_CENTRES[None, :] - mx[:, None]) ** 2).sum(axis=1) * w**2
    vyy = (py * (_CENTRES[None, :] - my[:, None]) ** 2).sum(axis=1) * hh**2
    vxy = np.einsum("kij,ki,kj->k", q, _CENTRES[None, :] - my[:, None], _CENTRES[None, :] - mx[:, None]) * w * hh
    cxx, cyy = vxx + (w / GRID) ** 2 / 12, vyy + (hh / GRID) ** 2 / 12
    half_gap = np.sqrt(((cxx - cyy) / 2) ** 2 + vxy**2)
    flat = q.reshape(k, -1)
    ordered = np.sort(flat, axis=1)
    n = flat.shape[1]
    ranks = 2 * np.arange(1, n + 1) - n - 1
    peak = flat.argmax(axis=1)
    hot = h >= 0.2 * h.max(axis=(1, 2))[:, None, None]
    cols, rows = hot.any(axis=1), hot.any(axis=2)
    box = np.stack([cols.argmax(1), rows.argmax(1), GRID - cols[:, ::-1].argmax(1),
                    GRID - rows[:, ::-1].argmax(1)], axis=1) / GRID
    obj = np.stack([p.ox - p.bw / 2, p.oy - p.bh / 2, p.ox + p.bw / 2, p.oy + p.bh / 2], axis=1)
    inside = ((_CENTRES[None, None, :] >= obj[:, 0, None, None]) & (_CENTRES[None, None, :] < obj[:, 2, None, None])
              & (_CENTRES[None, :, None] >= obj[:, 1, None, None]) & (_CENTRES[None, :, None] < obj[:, 3, None, None]))
    peak_x, peak_y = _CENTRES[peak % GRID], _CENTRES[peak // GRID]
    tol_x, tol_y = 15.0 / w, 15.0 / hh
    hit = ((peak_x >= obj[:, 0] - tol_x) & (peak_x <= obj[:, 2] + tol_x)
           & (peak_y >= obj[:, 1] - tol_y) & (peak_y <= obj[:, 3] + tol_y))
    region = np.where(p.has_region, 1.0, np.nan)
    out = {
        "centroid_x": mx, "centroid_y": my, "peak_x": peak_x, "peak_y": peak_y, "peak_value": h.max(axis=(1, 2)),
        "spread": np.sqrt(vxx + vyy) / np.sqrt(w**2 + hh**2),
        "elongation": np.sqrt(((cxx + cyy) / 2 + half_gap) / ((cxx + cyy) / 2 - half_gap)),
        "entropy": -(flat * np.log(flat)).sum(axis=1) / math.log(n),
        "gini": (ordered * ranks).sum(axis=1) / n,
        "border_energy": (q * _BORDER_MASK).sum(axis=(1, 2)),
        "top5_share": ordered[:, -_TOP_CELLS:].sum(axis=1),
        "energy_outside": (1.0 - (q * inside).sum(axis=(1, 2))) * region,
        "object_area_fraction": (p.bw * p.bh) * region,
        "pointing_hit": hit.astype(np.float64) * region,
        "cam_box_x0": box[:, 0], "cam_box_y0": box[:, 1], "cam_box_x1": box[:, 2], "cam_box_y1": box[:, 3],
        "cam_box_iou": _iou(box, obj) * region,
    }
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / union


@dataclass(frozen=True)
class ClassReference:
    """Mean and population std of centroid_x, centroid_y and spread for one class (``atypical_attention``)."""

    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)




def flags(stats: dict[str, np.ndarray], confidence: np.ndarray, cls: np.ndarray,
          reference: dict[int, ClassReference]) -> list[tuple[int, str, float, float]]:
    """``(row, rule, value, threshold)`` of every rule that fires, with camwatch.monitoring.flags' default thresholds."""
    found: list[tuple[int, str, float, float]] = []

    def add(mask: np.ndarray, rule: str, values: np.ndarray, threshold: float) -> None:
        found.extend((int(i), rule, float(values[i]), threshold) for i in np.flatnonzero(mask))

    cfg = FlagConfig()
    eo, hit, be = stats["energy_outside"], stats["pointing_hit"], stats["border_energy"]
    add(np.nan_to_num(eo, nan=0.0) > cfg.energy_outside_max, "energy_outside", eo, cfg.energy_outside_max)
    add(np.nan_to_num(hit, nan=1.0) < 0.5, "pointing_miss", hit, 0.5)
    add(be > cfg.border_energy_max, "border_energy", be, cfg.border_energy_max)
    add(confidence < cfg.low_confidence_min, "low_confidence", confidence, cfg.low_confidence_min)
    z_max = np.zeros(cls.size)
    for c, ref in reference.items():
        rows = cls == c
        values = np.stack([stats[name][rows] for name in ATYPICAL_STATISTICS], axis=1)
        z_max[rows] = np.abs((values - ref.mean) / ref.std).max(axis=1)
    add(z_max > cfg.atypical_k, "atypical_attention", z_max, cfg.atypical_k)
    return found


def thumbnails(n_cameras: int, seed: int) -> list[bytes]:
    """One small JPEG scene per camera (160x90): floor, shelves, a box for the object; the shortcut camera's
    images get their watermark from :func:`watermarked`."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n_cameras):
        base = tuple(int(v) for v in rng.integers(60, 160, 3))
        img = Image.new("RGB", (160, 90), base)
        draw = ImageDraw.Draw(img)
        for shelf in range(3):
            y = 15 + 25 * shelf
            draw.rectangle([0, y, 159, y + 4], fill=tuple(int(v) for v in rng.integers(20, 90, 3)))
        x0, y0 = int(rng.integers(45, 85)), int(rng.integers(30, 45))
        draw.rectangle([x0, y0, x0 + 30, y0 + 35], fill=tuple(int(v) for v in rng.integers(150, 250, 3)))
        scenes.append(img)
    return [_jpeg(img) for img in scenes]


def watermarked(thumbnail: bytes) -> bytes:
    """The same scene with a bright watermark in the bottom-right corner."""
    img = Image.open(io.BytesIO(thumbnail)).convert("RGB")
    ImageDraw.Draw(img).rectangle([138, 77, 158, 88], fill=(250, 250, 250))
    return _jpeg(img)


def _jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()
