"""Real photographs that ship inside installed packages, cut into objects, backgrounds and overlays.

Nothing is downloaded: every picture comes from ``skimage.data`` (files bundled with scikit-image) or
scikit-learn's ``load_sample_images()``. Crop boxes follow camwatch's convention ``(x0, y0, x1, y1)`` in the
photo's pixels, x = column, half-open.

Each object's ``label`` is the ImageNet class that EfficientNet-Lite0 assigns to the *uncomposited* crop
(the label the demo's ground truth uses); ``accepted`` lists the classes :mod:`demo.validate` counts as a
correct recognition after compositing (e.g. any domestic-cat class for the cat). Only objects recognised
reliably after compositing are kept (measured with ``python -m demo.validate``; see the README): Grace
Hopper ("military uniform"), the daisy of ``flower.jpg`` and the astronaut picture's space shuttle were
tried and dropped because the model recognised them in well under half of the composited frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import skimage.data
from PIL import Image

CropBox = tuple[int, int, int, int]


def _sklearn_sample(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_images  # imported here: scikit-learn is slow to import

    bunch = load_sample_images()
    for filename, image in zip(bunch.filenames, bunch.images, strict=True):
        if filename.endswith(name):
            return np.asarray(image)
    raise FileNotFoundError(f"scikit-learn sample image {name!r} not found among {bunch.filenames}")


PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "camera": skimage.data.camera,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
    "grass": skimage.data.grass,
    "gravel": skimage.data.gravel,
    "brick": skimage.data.brick,
    "logo": skimage.data.logo,
    "china": lambda: _sklearn_sample("china.jpg"),
}


@cache
def image(name: str) -> Image.Image:
    """The named photograph as a Pillow image, RGB (RGBA for ``logo``), loaded once per process.

    Callers must not modify it (Pillow operations such as ``resize`` and ``point`` return new images).
    """
    try:
        loader = PHOTOS[name]
    except KeyError:
        raise KeyError(f"unknown demo photo {name!r}; known: {sorted(PHOTOS)}") from None
    array = np.asarray(loader())
    if array.dtype != np.uint8:
        raise ValueError(f"demo photo {name!r}: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(array if name == "logo" else array[:, :, :3]))


@dataclass(frozen=True)
class ObjectSource:
    """A recognisable object: a rectangular crop of a photo, composited with soft edges."""

    name: str
    photo: str
    box: CropBox
    label: str
    accepted: frozenset[str]


@dataclass(frozen=True)
class BackgroundSource:
    """A scene or texture to crop backgrounds from; grey textures get a random colour tint."""

    name: str
    photo: str
    box: CropBox
    tinted: bool


_CATS = frozenset({"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"})

OBJECTS: tuple[ObjectSource, ...] = (
    ObjectSource("cat", "chelsea", (0, 0, 451, 300), "Egyptian cat", _CATS),
    ObjectSource("espresso", "coffee", (60, 0, 540, 400), "espresso", frozenset({"espresso", "cup", "coffee mug"})),
    ObjectSource("tripod", "camera", (200, 0, 512, 512), "tripod", frozenset({"tripod"})),
    ObjectSource("moped", "motorcycle", (30, 150, 720, 500), "moped", frozenset({"moped", "motor scooter"})),
)

BACKGROUNDS: tuple[BackgroundSource, ...] = (
    BackgroundSource("grass", "grass", (0, 0, 512, 512), tinted=True),
    BackgroundSource("gravel", "gravel", (0, 0, 512, 512), tinted=True),
    BackgroundSource("brick", "brick", (0, 0, 512, 512), tinted=True),
    BackgroundSource("lake", "china", (430, 150, 640, 427), tinted=False),
)


def object_source(name: str) -> ObjectSource:
    """Look up an object source by name."""
    for source in OBJECTS:
        if source.name == name:
            return source
    raise KeyError(f"unknown object source {name!r}; known: {[s.name for s in OBJECTS]}")
