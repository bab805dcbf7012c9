"""Real photographs shipped with scikit-image (no downloads)."""

from __future__ import annotations

from PIL import Image


def load_photos() -> dict[str, Image.Image]:
    from skimage import data

    return {
        "chelsea": Image.fromarray(data.chelsea()),
        "coffee": Image.fromarray(data.coffee()),
        "astronaut": Image.fromarray(data.astronaut()),
        "rocket": Image.fromarray(data.rocket()),
    }
