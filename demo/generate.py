"""Generate the demo's production-image stream: ``python -m demo.generate --out DIR [options]``.

Layout: ``OUT/<site>/<camera>/<YYYY-MM-DD>/frame_<n>.jpg`` plus a sidecar ``frame_<n>.jpg.json`` next to
each image (see :mod:`demo.manifest`) and ``OUT/manifest.json``, the ground truth. Every file is written
atomically (to ``NAME.part``, then ``os.replace``), the sidecar before its image, and gets the capture time
as its modification time.

Timeline (defaults): 2000 images over 14 days from 2026-11-01 on four cameras; from day 6 the camera
``site-north/cam-2`` shows a cat poster in its top-right corner, which pulls EfficientNet-Lite0's
attention (and prediction) off the object; from day 10 every camera sees darker, warmer lighting.
``--small`` gives 3 days and 240 images (poster from day 1, lighting from day 2).

``--live SECONDS`` writes everything before the last simulated day at once, then the manifest, then
streams the last day's images into the folder over SECONDS of wall-clock time, each at the moment
proportional to its capture time within that day.

``--publish redis://...|mqtt://...`` publishes each frame as a ``camwatch.image.v1`` event instead of writing
it (the JPEG inline, the sidecar's boxes, label, tags and capture time in the event, id ``demo:<path>``);
``OUT`` then receives only ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path

from camwatch.client import Publisher
from camwatch.locations import redact
from demo.compose import FrameRecipe, encode_jpeg, render
from demo.manifest import Manifest, sidecar
from demo.timeline import FramePlan, StreamConfig, plan_stream

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
PART_SUFFIX = ".part"


def frame_bytes(recipe: FrameRecipe) -> bytes:
    """Render one frame and encode it as JPEG."""
    return encode_jpeg(render(recipe), recipe.quality, recipe.camera)


def _encoded(plans: Sequence[FramePlan], workers: int) -> Iterator[bytes]:
    """JPEG bytes of ``plans`` in order, rendered in ``workers`` processes when ``workers > 1``."""
    recipes = [plan.recipe for plan in plans]
    if workers <= 1 or len(recipes) < 2:
        yield from map(frame_bytes, recipes)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(frame_bytes, recipes, chunksize=8)


def write_atomic(path: Path, data: bytes, mtime: float) -> None:
    """Write ``data`` to ``path.part``, set its modification time, then rename it to ``path``."""
    part = path.with_name(path.name + PART_SUFFIX)
    try:
        part.write_bytes(data)
        os.utime(part, (mtime, mtime))
        os.replace(part, path)
    except OSError as exc:
        raise OSError(f"{path}: cannot write ({exc})") from exc


def write_frame(root: Path, plan: FramePlan, jpeg: bytes) -> Path:
    """Write a frame's sidecar, then the frame itself; returns the image path."""
    path = root / plan.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    mtime = plan.captured_at.timestamp()
    write_atomic(path.with_name(path.name + ".json"), json.dumps(sidecar(plan)).encode(), mtime)
    write_atomic(path, jpeg, mtime)
    return path


#: Where a rendered frame goes: written into the folder, or published as an event.
FrameSink = Callable[[FramePlan, bytes], object]


def publish_frame(publisher: Publisher, plan: FramePlan, jpeg: bytes) -> str:
    """Publish one frame as an event carrying what its sidecar would say; returns the event id."""
    note = sidecar(plan)
    return publisher.submit(jpeg, event_id=f"demo:{plan.relpath}", time=note["captured_at"], tags=note["tags"],
                            label=note["label"], boxes=note["boxes"], source=f"{plan.spec.site}/{plan.spec.camera}",
                            content_type="image/jpeg")


@contextmanager
def _sink(root: Path, publish: str | None) -> Iterator[FrameSink]:
    if publish is None:
        yield lambda plan, jpeg: write_frame(root, plan, jpeg)
        return
    with Publisher(publish, maxlen=1_000_000) as publisher:
        yield lambda plan, jpeg: publish_frame(publisher, plan, jpeg)


def _write_manifest(root: Path, manifest: Manifest) -> None:
    write_atomic(root / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=1).encode(), time.time())


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Create ``out``; it must be absent or empty, or (with ``overwrite``) hold an earlier demo stream."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: folder is not empty (use overwrite=True / --force to replace an "
                                  "earlier demo stream)")
        if not (out / MANIFEST_NAME).is_file():
            raise FileExistsError(f"{out}: not empty and holds no {MANIFEST_NAME}: refusing to delete a folder "
                                  "that was not written by demo.generate")
        logger.info("removing the earlier demo stream in %s", out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_all(sink: FrameSink, plans: Sequence[FramePlan], jpegs: Iterable[bytes]) -> None:
    for count, (plan, jpeg) in enumerate(zip(plans, jpegs, strict=True), start=1):
        sink(plan, jpeg)
        if count % 500 == 0:
            logger.info("wrote %d/%d frames", count, len(plans))


def generate_stream(out: Path, config: StreamConfig, *, workers: int = 1, overwrite: bool = False,
                    publish: str | None = None) -> Manifest:
    """Write (or ``publish``) the whole stream and ``manifest.json`` (written last) into ``out``; returns the
    manifest."""
    _prepare_output(out, overwrite)
    plans = plan_stream(config)
    manifest = Manifest.build(config, plans)
    with _sink(out, publish) as sink:
        _write_all(sink, plans, _encoded(plans, workers))
    _write_manifest(out, manifest)
    return manifest


def stream_live(out: Path, config: StreamConfig, seconds: float, *, workers: int = 1,
                overwrite: bool = False, publish: str | None = None) -> Manifest:
    """Write all days but the last, then ``manifest.json`` (for the whole stream), then the last day's
    frames one by one over ``seconds`` of wall-clock time: frame ``i`` is due at
    ``t0 + seconds * (captured_at_i - last_day_start) / 1 day`` (written at once when already late).
    """
    if seconds < 0:
        raise ValueError(f"live duration must be >= 0 seconds, got {seconds}")
    _prepare_output(out, overwrite)
    plans = plan_stream(config)
    manifest = Manifest.build(config, plans)
    last_day = config.day_start(config.days - 1)
    split = next((i for i, plan in enumerate(plans) if plan.captured_at >= last_day), len(plans))
    with _sink(out, publish) as sink:
        _write_all(sink, plans[:split], _encoded(plans[:split], workers))
        _write_manifest(out, manifest)
        live = plans[split:]
        logger.info("rendering the %d frames of %s ahead of streaming them", len(live), last_day.date())
        jpegs = list(_encoded(live, workers))  # rendered ahead so that the pacing is not limited by rendering
        logger.info("streaming %d frames of %s over %.1f s", len(live), last_day.date(), seconds)
        t0 = time.monotonic()
        for plan, jpeg in zip(live, jpegs, strict=True):
            due = t0 + seconds * (plan.captured_at - last_day).total_seconds() / 86400.0
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sink(plan, jpeg)
    return manifest


def config_from_args(args: argparse.Namespace) -> StreamConfig:
    """``StreamConfig`` (or ``StreamConfig.small()`` with ``--small``) with the options given overriding."""
    base = StreamConfig.small() if args.small else StreamConfig()
    overrides = {name: getattr(args, name) for name in
                 ("seed", "days", "images", "start", "planted_day", "global_change_day")
                 if getattr(args, name) is not None}
    return replace(base, **overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo.generate",
                                     description="Write camwatch's demo stream of production images.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (absent or empty)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--days", type=int, help="simulated days (default 14; 3 with --small)")
    parser.add_argument("--images", type=int, help="number of images (default 2000; 240 with --small)")
    parser.add_argument("--start", type=date.fromisoformat, help="first day, YYYY-MM-DD (default 2026-11-01)")
    parser.add_argument("--planted-day", type=int, help="day the poster appears (default 6; 1 with --small)")
    parser.add_argument("--global-change-day", type=int,
                        help="day the lighting changes on all cameras (default 10; 2 with --small)")
    parser.add_argument("--small", action="store_true", help="fast stream for tests: 3 days, 240 images")
    parser.add_argument("--live", type=float, metavar="SECONDS",
                        help="stream the last day's images over SECONDS of wall-clock time")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="rendering processes (default: min(2, CPU count))")
    parser.add_argument("--force", action="store_true", help="replace an earlier demo stream in --out")
    parser.add_argument("--publish", metavar="URL",
                        help="publish the frames as events to redis://...?stream=S or mqtt://.../topic instead of "
                             "writing them (--out receives the manifest)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"demo.generate: {exc}") from exc
    started = time.perf_counter()
    if args.live is None:
        manifest = generate_stream(args.out, config, workers=args.workers, overwrite=args.force,
                                   publish=args.publish)
    else:
        manifest = stream_live(args.out, config, args.live, workers=args.workers, overwrite=args.force,
                               publish=args.publish)
    planted = sum(entry["planted"] for entry in manifest.images)
    changed = sum(entry["global_change"] for entry in manifest.images)
    print(f"wrote {len(manifest.images)} images from {len(config.cameras)} cameras over {config.days} days "  # noqa: T201
          f"to {redact(args.publish) if args.publish else args.out} in {time.perf_counter() - started:.1f} s: {planted} with the {config.planted_kind} "
          f"on {config.planted_camera} from {config.planted_start:%Y-%m-%d}, {changed} after the lighting "
          f"change on {config.global_change_start:%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
