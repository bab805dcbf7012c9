"""``camwatch submit IMAGE... --to redis://...|mqtt://...``: publish one ``camwatch.image.v1`` event per image.

Prints ``<image>\t<event id>`` per image on stdout. Images are sent as ``file://`` references (the worker
must allow their folder with ``--allow-root``) unless ``--inline``; ``http(s)://`` and ``file://`` arguments
are sent as they are. Uses :mod:`camwatch.client` (no model is loaded).
"""

from __future__ import annotations

import argparse
import json
import sys

from camwatch.regions import parse_box
from camwatch.settings import load_settings


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"tag {text!r}: expected key=value")
    return key, value


def _prediction(text: str) -> dict[str, object]:
    """``CLASS`` or ``CLASS:SCORE``; CLASS is an index or a class name."""
    name, sep, score = text.rpartition(":") if ":" in text else (text, "", "")
    out: dict[str, object] = {"class_index": int(name)} if name.isdigit() else {"label": name}
    if sep:
        try:
            out["score"] = float(score)
        except ValueError:
            raise argparse.ArgumentTypeError(f"prediction {text!r}: expected CLASS or CLASS:SCORE") from None
    return out


def cmd_submit(args: argparse.Namespace) -> int:
    from camwatch.client import Publisher

    settings = load_settings(args.config)
    extra = json.loads(args.extra) if args.extra else None
    if extra is not None and not isinstance(extra, dict):
        raise ValueError("--extra must be a JSON object")
    if args.id and len(args.images) > 1:
        raise ValueError("--id names one event: give one image")
    boxes = [parse_box(b) for b in args.box or []]
    failed = 0
    with Publisher(args.to, maxlen=settings.queue.maxlen, max_inline_bytes=settings.queue.max_inline_bytes) as pub:
        for image in args.images:
            try:
                event_id = pub.submit(image, tags=dict(args.tags or []), label=args.label, boxes=boxes or None,
                                      prediction=args.prediction, model_version=args.model_version, time=args.time,
                                      event_id=args.id, source=args.event_source, inline=args.inline or None,
                                      extra=extra, topic=args.topic)
            except (ValueError, FileNotFoundError) as exc:
                failed += 1
                message = str(exc) if str(image) in str(exc) else f"{image}: {exc}"
                print(f"error: {message}", file=sys.stderr)  # noqa: T201
                continue
            print(f"{image}\t{event_id}")  # noqa: T201
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="publish images as camwatch.image.v1 events to Redis or MQTT")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file, file:// or http(s):// URI")
    p.add_argument("--to", required=True, help="redis://host:6379/0?stream=NAME or mqtt://host:1883/topic")
    p.add_argument("--tags", type=_tag, nargs="+", action="extend", metavar="KEY=VALUE", help="tags (repeatable)")
    p.add_argument("--label", help="the known class of the images")
    p.add_argument("--box", action="append", metavar="X0,Y0,X1,Y1", help="object box in pixels (repeatable)")
    p.add_argument("--inline", action="store_true", help="send the image bytes in the event (base64, capped)")
    p.add_argument("--time", help="capture time, ISO 8601 (default: none; the worker uses EXIF or arrival)")
    p.add_argument("--prediction", type=_prediction, metavar="CLASS[:SCORE]", help="the deployed model's output")
    p.add_argument("--model-version", dest="model_version", help="the deployed model's version")
    p.add_argument("--event-source", dest="event_source", help="producer name stored with the event")
    p.add_argument("--id", help="event id (idempotency key; default: a random UUID); one image only")
    p.add_argument("--topic", help="MQTT topic for these images (default: the URL's)")
    p.add_argument("--extra", help="more fields as a JSON object (kept with the image)")
    p.add_argument("--config", help="camwatch.toml (queue.maxlen, queue.max_inline_bytes)")
    p.set_defaults(func=cmd_submit)
