"""``camwatch explain IMAGE...``: overlay PNG and JSON report per image.

Per image ``NAME.ext`` it writes ``OUT/NAME.ext.cam.png`` (heatmap over the image, object box in green, CAM
box in white) and ``OUT/NAME.ext.cam.json`` (head, predicted class and confidence, top-5 predictions and, for
a multi-label head, the positive labels; method, target layer, its layout and the target class; the native
heatmap as nested row-major lists spanning ``heatmap_extent`` of the original image — (0,0,1,1), the
whole image, with the default preprocessing — and every statistic). A bad file gets one error line on
stderr and the others are still done; the exit code is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from camwatch.imaging.decode import DecodedImage, ImageDecodeError, load_image
from camwatch.imaging.render import overlay
from camwatch.regions import Box, ObjectRegion
from camwatch.statistics.heatmap import compute_statistics
from worker.commands.common import MODEL_KEYS, add_model_args, settings_from

if TYPE_CHECKING:  # torch is imported only when images are explained
    from worker.cam.engine import CamEngine, CamResult

log = logging.getLogger(__name__)


@dataclass
class Explained:
    path: Path
    decoded: DecodedImage
    result: CamResult


def report(item: Explained, engine: CamEngine, boxes: Sequence[Box]) -> dict:
    """The JSON document for one explained image."""
    r, d = item.result, item.decoded
    region = ObjectRegion(boxes=tuple(boxes), source="cli") if boxes else None
    stats = compute_statistics(r.heatmap, d.width, d.height, extent=r.extent, region=region)
    names = engine.loaded.class_name
    return {
        "image": str(item.path),
        "width": d.width,
        "height": d.height,
        "model": engine.loaded.spec,
        "weights_sha256": engine.loaded.weights_sha256,
        "preprocessing": engine.loaded.preprocessing.to_json(),
        "head": engine.head.key,
        "method": r.method,
        "target_layer": r.target_layer,
        "target_layout": engine.layout.describe(),
        "target_class": r.target_class,
        "target_class_name": names(r.target_class),
        "target_logit": r.target_logit,
        "raw_max": r.raw_max,
        "raw_sum": r.raw_sum,
        "predicted_class": r.predicted_class,
        "confidence": r.confidence,
        "top5": [{"index": i, "name": names(i), "probability": p, "logit": lg}
                 for i, p, lg in zip(r.topk_indices, r.topk_probs, r.topk_logits, strict=True)],
        "labels": None if r.labels is None else [{"index": i, "name": names(i)} for i in r.labels],
        "heatmap_grid": list(r.heatmap.shape),
        "heatmap_extent": list(r.extent),
        "heatmap": r.heatmap.astype(float).round(6).tolist(),
        "heatmap_state": stats.state,
        "object_boxes": [list(b) for b in boxes],
        "cam_box_px": list(stats.cam_box_px) if stats.cam_box_px else None,
        "statistics": stats.values,
    }


def explain_files(paths: Sequence[Path], engine: CamEngine, out_dir: Path, *, target: int | None = None,
                  boxes: Sequence[Box] = (), batch_size: int = 16) -> int:
    """Explain ``paths`` in batches; returns the number of files that failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    draft = max(engine.loaded.preprocessing.size)
    for start in range(0, len(paths), batch_size):
        decoded: list[tuple[Path, DecodedImage]] = []
        for path in paths[start:start + batch_size]:
            try:
                decoded.append((path, load_image(path, draft_size=draft)))
            except ImageDecodeError as exc:
                failures += 1
                print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's one-line error
        if not decoded:
            continue
        results = engine.explain([d.image for _, d in decoded], targets=[target] * len(decoded),
                                 original_sizes=[(d.width, d.height) for _, d in decoded])
        for (path, d), result in zip(decoded, results, strict=True):
            doc = report(Explained(path, d, result), engine, boxes)
            json_path, png_path = out_dir / f"{path.name}.cam.json", out_dir / f"{path.name}.cam.png"
            json_path.write_text(json.dumps(doc, indent=1))
            picture = overlay(d.image, result.heatmap, result.extent, object_boxes=boxes,
                              cam_box=doc["cam_box_px"], original_size=(d.width, d.height))
            picture.save(png_path)
            top = doc["top5"][0]
            print(f"{path}: {top['name']} ({top['probability']:.3f}), "  # noqa: T201 - CLI output
                  f"focus ({doc['statistics']['centroid_x'] or 0:.2f}, {doc['statistics']['centroid_y'] or 0:.2f})"
                  f" -> {png_path}")
    return failures


def cmd_explain(args: argparse.Namespace) -> int:
    from camwatch.regions import parse_box
    from worker.runtime import configure_runtime

    settings = settings_from(args, MODEL_KEYS)
    configure_runtime(settings.runtime)  # before torch is imported (the next import) and allocates
    from worker.cam.factory import build_engine

    boxes = [parse_box(b) for b in args.box or []]
    engine = build_engine(settings)
    failures = explain_files([Path(p) for p in args.images], engine, args.out, target=args.target, boxes=boxes,
                             batch_size=settings.batch_size)
    if failures:
        print(f"{failures} of {len(args.images)} images failed", file=sys.stderr)  # noqa: T201
    return 1 if failures else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="explain images: overlay PNG + JSON with predictions and statistics")
    p.add_argument("images", nargs="+")
    p.add_argument("--target", type=int, help="class index to explain (default: the top-1 class)")
    p.add_argument("--box", action="append", help="object box x0,y0,x1,y1 in original pixels (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out"))
    add_model_args(p)
    p.set_defaults(func=cmd_explain)
