"""Registry of every per-image statistic camwatch stores: label, unit, formula, range, provenance.

The dashboard reads :data:`STATISTICS` for hover definitions; ``docs/metrics.md`` documents the same
definitions in full. ``source`` is ``"heatmap"`` for the values computed by :mod:`camwatch.statistics.heatmap` from the
heatmap (:data:`HEATMAP_KEYS`, the exact keys of ``HeatmapStats.values``) and ``"engine"`` for the raw
values the CAM engine records itself (:data:`ENGINE_KEYS`).

Notation: ``h`` = heatmap on the working grid (``N`` cells), ``p = h / sum(h)``, ``(x, y)`` = cell centre
in ``[0, 1]`` of the original image, ``W x H`` = original size in pixels, ``c`` = object coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["heatmap", "engine"]


@dataclass(frozen=True)
class StatisticDef:
    """Definition of one stored statistic."""

    key: str
    label: str
    unit: str
    formula: str
    value_range: str
    description: str
    needs_region: bool = False
    source: Source = "heatmap"


_CAM_BOX_FORMULA = "bounding box (cell edges) of the largest 8-connected component of h >= 0.2 max h"

_DEFINITIONS: tuple[StatisticDef, ...] = (
    StatisticDef("centroid_x", "Centroid x", "fraction of width", "mu_x = sum p x", "[0, 1]",
                 "Energy-weighted mean horizontal position (0 = left edge, 1 = right edge)."),
    StatisticDef("centroid_y", "Centroid y", "fraction of height", "mu_y = sum p y", "[0, 1]",
                 "Energy-weighted mean vertical position (0 = top edge, 1 = bottom edge)."),
    StatisticDef("peak_x", "Peak x", "fraction of width", "x of argmax h (first in row-major order)",
                 "(0, 1)", "Horizontal position of the hottest working cell's centre."),
    StatisticDef("peak_y", "Peak y", "fraction of height", "y of argmax h (first in row-major order)",
                 "(0, 1)", "Vertical position of the hottest working cell's centre."),
    StatisticDef("peak_value", "Peak value", "raw CAM units", "max h", ">= 0",
                 "Heatmap value at the peak, not normalised: comparable over time only for one model, "
                 "layer and CAM method."),
    StatisticDef("spread", "Spread", "fraction of image diagonal",
                 "sqrt(sum p ((x - mu_x)^2 W^2 + (y - mu_y)^2 H^2)) / sqrt(W^2 + H^2)", "[0, 0.5)",
                 "Radius of gyration of the heatmap in original pixels over the image diagonal: "
                 "small = focused, large = diffuse."),
    StatisticDef("elongation", "Elongation", "ratio",
                 "sqrt(l_max / l_min), l = eigenvalues of the pixel covariance + cell variance "
                 "diag((W/cols)^2, (H/rows)^2) / 12", ">= 1",
                 "Anisotropy of the attended area: 1 = round, large = a streak. The cell term keeps it "
                 "finite (at most about the grid's longest side) for line-like maps."),
    StatisticDef("entropy", "Entropy", "fraction of maximum", "-sum p log p / log N", "[0, 1]",
                 "Shannon entropy on the working grid: 1 = uniform, 0 = a single cell."),
    StatisticDef("gini", "Gini", "index", "sum_k (2k - N - 1) a_k / (N sum a), a sorted ascending",
                 "[0, 1 - 1/N]", "Sparseness of the heatmap: 0 = uniform, close to 1 = one hot cell."),
    StatisticDef("border_energy", "Border energy", "fraction of energy",
                 "sum p over cells whose centre is closer than 10% of width/height to an edge", "[0, 1]",
                 "Share of the heatmap in the image's outer band: attention on the frame, watermarks, "
                 "padding artefacts. A uniform map scores the band's area share (about 0.36)."),
    StatisticDef("top5_share", "Top-5% share", "fraction of energy",
                 "sum of the ceil(0.05 N) largest p", "[ceil(0.05 N) / N, 1]",
                 "Share of the heatmap held by its hottest 5% of cells: 0.05 = uniform, 1 = concentrated."),
    StatisticDef("energy_outside", "Energy outside object", "fraction of energy", "1 - sum h c / sum h",
                 "[0, 1]",
                 "Share of the heatmap outside the object (1 - energy-based pointing game, Wang et al. "
                 "2020), with exact fractional cell coverage c.", needs_region=True),
    StatisticDef("object_area_fraction", "Object area", "fraction of image", "mean c", "[0, 1]",
                 "Share of the image covered by the object: the chance level of 1 - energy_outside "
                 "(what a uniform heatmap scores).", needs_region=True),
    StatisticDef("pointing_hit", "Pointing hit", "0/1", "1 if dist(peak, object) <= 15 px else 0",
                 "{0, 1}",
                 "Pointing game (Zhang et al. 2016): the peak lies within 15 original pixels of the object.",
                 needs_region=True),
    StatisticDef("cam_box_x0", "CAM box x0", "fraction of width", _CAM_BOX_FORMULA, "[0, 1]",
                 "Left edge of the CAM box (Zhou et al. 2016, single threshold, largest component)."),
    StatisticDef("cam_box_y0", "CAM box y0", "fraction of height", _CAM_BOX_FORMULA, "[0, 1]",
                 "Top edge of the CAM box."),
    StatisticDef("cam_box_x1", "CAM box x1", "fraction of width", _CAM_BOX_FORMULA, "[0, 1]",
                 "Right edge of the CAM box (exclusive)."),
    StatisticDef("cam_box_y1", "CAM box y1", "fraction of height", _CAM_BOX_FORMULA, "[0, 1]",
                 "Bottom edge of the CAM box (exclusive)."),
    StatisticDef("cam_box_iou", "CAM box IoU", "ratio", "max over object boxes b of IoU(cam box, b)", "[0, 1]",
                 "Localisation quality: overlap of the CAM box with the object's boxes (or the mask's "
                 "bounding box), in original pixels.", needs_region=True),
    StatisticDef("raw_max", "Raw max", "raw CAM units", "max of the native map", ">= 0",
                 "Maximum of the engine's native heatmap before resampling (not normalised).",
                 source="engine"),
    StatisticDef("raw_sum", "Raw sum", "raw CAM units", "sum of the native map", ">= 0",
                 "Sum of the engine's native heatmap before resampling (not normalised).", source="engine"),
    StatisticDef("target_logit", "Target logit", "logit", "z_c of the explained class c", "any real",
                 "Logit of the class the heatmap explains (the predicted class).", source="engine"),
    StatisticDef("confidence", "Confidence", "probability", "softmax(z)_c of the predicted class c", "(0, 1]",
                 "Softmax probability of the predicted class.", source="engine"),
)

STATISTICS: dict[str, StatisticDef] = {d.key: d for d in _DEFINITIONS}
HEATMAP_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.source == "heatmap")
ENGINE_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.source == "engine")
REGION_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.needs_region)
#: The CAM box's corners (x0, y0, x1, y1), normalised to the image.
CAM_BOX_KEYS: tuple[str, ...] = ("cam_box_x0", "cam_box_y0", "cam_box_x1", "cam_box_y1")
