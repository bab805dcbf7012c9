"""Registry of every per-image statistic camwatch stores: label, unit, formula, range, provenance.

The dashboard reads :data:`STATISTICS` for hover definitions; ``docs/metrics.md`` documents the same
definitions in full. ``source`` is ``"heatmap"`` for the values computed by :mod:`camwatch.statistics.heatmap` from the
heatmap (:data:`HEATMAP_KEYS`, the exact keys of ``HeatmapStats.values``), ``"engine"`` for the raw
values the CAM engine records itself (:data:`ENGINE_KEYS`) and ``"image"`` for the properties of the
picture itself (:data:`IMAGE_KEYS`: :mod:`camwatch.imaging.properties`, and the stored size), which are
columns of ``images``. :data:`CATEGORIES` are the categorical image properties (the EXIF camera model):
stored as text, drift-tested as a mix of labels like the predicted classes.

Notation: ``h`` = heatmap on the working grid (``N`` cells), ``p = h / sum(h)``, ``(x, y)`` = cell centre
in ``[0, 1]`` of the original image, ``W x H`` = original size in pixels, ``c`` = object coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["heatmap", "engine", "image"]


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
    StatisticDef("brightness", "Brightness", "grey level", "mean of Y = 0.299 R + 0.587 G + 0.114 B",
                 "[0, 255]", "Mean luma of the image (analysis image: longest side reduced to 256 px by area "
                 "averaging). A darker scene or a changed exposure moves it.", source="image"),
    StatisticDef("contrast", "Contrast", "grey level", "population std of Y (RMS contrast)", "[0, 127.5]",
                 "Spread of the luma around its mean: fog, glare or a flat exposure lower it.", source="image"),
    StatisticDef("sharpness", "Sharpness", "grey level^2",
                 "variance of the 4-neighbour Laplacian of Y over interior pixels", ">= 0",
                 "Blur (focus, dirt on the lens, motion) lowers it; sensor noise raises it. Measured at the "
                 "256 px analysis scale, so cameras of different resolutions compare.", source="image"),
    StatisticDef("colourfulness", "Colourfulness", "grey level",
                 "sqrt(var rg + var yb) + 0.3 sqrt(mean rg^2 + mean yb^2), rg = R - G, yb = (R + G)/2 - B",
                 ">= 0", "Hasler & Suesstrunk (2003): 0 for a grey image; a colour cast or a switch to "
                 "infrared (night mode) moves it.", source="image"),
    StatisticDef("width", "Width", "pixels", "width after EXIF orientation", ">= 1",
                 "Image width in pixels (with the height: the resolution a camera delivers).", source="image"),
    StatisticDef("height", "Height", "pixels", "height after EXIF orientation", ">= 1",
                 "Image height in pixels.", source="image"),
)

STATISTICS: dict[str, StatisticDef] = {d.key: d for d in _DEFINITIONS}
HEATMAP_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.source == "heatmap")
ENGINE_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.source == "engine")
IMAGE_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.source == "image")
#: Image properties stored in float columns of ``images`` named after them (width and height are the
#: table's own integer columns, written since the first revision).
IMAGE_PROPERTY_COLUMNS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if k not in ("width", "height"))
REGION_KEYS: tuple[str, ...] = tuple(d.key for d in _DEFINITIONS if d.needs_region)
#: The CAM box's corners (x0, y0, x1, y1), normalised to the image.
CAM_BOX_KEYS: tuple[str, ...] = ("cam_box_x0", "cam_box_y0", "cam_box_x1", "cam_box_y1")


@dataclass(frozen=True)
class CategoryDef:
    """A categorical image property: stored as text in ``images.<key>`` (NULL when unknown), drift-tested
    as the mix of its values (a missing value is its own category, :data:`UNKNOWN_CATEGORY`) with ``test``
    and ``threshold``."""

    key: str
    label: str
    definition: str
    description: str
    max_length: int
    test: str = "jensen_shannon"
    threshold: float = 0.2


#: Label of images whose categorical property is unknown (no EXIF, or the tags are empty).
UNKNOWN_CATEGORY = "(none)"

CATEGORIES: dict[str, CategoryDef] = {d.key: d for d in (
    CategoryDef("camera_model", "Camera model",
                "EXIF Make and Model (0th IFD, tags 0x010F and 0x0110) joined, printable characters only",
                "The camera that took the image: a replaced camera or a firmware that stops writing EXIF shows "
                "as a change of this mix.", 100,
                # Jensen-Shannon distance > 0.2: a model that replaces another on 5 % of the images or more
                # crosses it (1 camera in 4 replaced: 0.5); chance shifts of the mix between cameras stay under
                # it from about 100 images a window (the demo stream's day windows: at most 0.104).
                "jensen_shannon", 0.2),
)}
