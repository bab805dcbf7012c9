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


def more_photos() -> dict[str, Image.Image]:
    """Real photographs shipped with matplotlib and scikit-learn (no downloads)."""
    import matplotlib.cbook
    from sklearn.datasets import load_sample_image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = Image.open(fh).convert("RGB")
    return {"grace_hopper": hopper, "china": Image.fromarray(load_sample_image("china.jpg")),
            "flower": Image.fromarray(load_sample_image("flower.jpg"))}
