"""``camwatch export``: a table of :data:`db.exports.EXPORTS` (images by default; reviews, flags, drift
results, the curated set) to CSV, Parquet (with the table's declared schema) or JSON lines; the curated set
also as a COCO detection file (``--format coco``). Images in JSON lines also carry the native heatmap. In CSV, text that a spreadsheet would
run as a formula is written with a leading apostrophe (:mod:`camwatch.csv_safety`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path

from sqlalchemy.engine import Engine

from camwatch.exports import FORMATS, coco_document, write_table
from db import make_engine, upgrade
from db.curated import curated_images
from db.exports import EXPORTS, ExportOptions, export_table
from db.queries import ImageFilter, class_names
from worker.commands.common import settings_from

log = logging.getLogger(__name__)

COCO = "coco"


def export(engine: Engine, fmt: str, out: Path, what: str = "images", *, start: dt.datetime | None = None,
           end: dt.datetime | None = None) -> int:
    """Write table ``what`` to ``out`` in ``fmt``; returns the number of rows (COCO: images)."""
    if fmt == COCO:
        if what != "curated":
            raise ValueError(f"--format coco is for the curated set (--what curated), not {what!r}")
        images = list(curated_images(engine, ImageFilter(start=start, end=end)))
        doc = coco_document(images, class_names(engine), "camwatch curated set: images whose attention a "
                                                         "reviewer confirmed as wrong")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        n = len(images)
    else:
        table = export_table(what)
        options = ExportOptions(with_heatmap=fmt == "jsonl" and what == "images", start=start, end=end)
        n = write_table(fmt, table.columns_for(options), table.rows(engine, options), out)
    log.info("exported %d %s rows to %s", n, what, out)
    return n


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args, ("db",))
    engine = make_engine(settings.db)
    upgrade(engine)
    n = export(engine, args.format, args.out, args.what, start=args.since, end=args.until)
    print(f"{n} {args.what} rows -> {args.out}")  # noqa: T201 - CLI output
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export images, reviews, flags, drift results or the curated set",
                       description="; ".join(f"{k}: {t.description}" for k, t in EXPORTS.items()))
    p.add_argument("--db")
    p.add_argument("--what", choices=list(EXPORTS), default="images", help="which table (default: images)")
    p.add_argument("--format", choices=[*FORMATS, COCO], required=True,
                   help="csv, parquet (declared schema), jsonl; coco for --what curated")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--since", type=_moment, help="capture time (drift: window start) from, ISO 8601, UTC if naive")
    p.add_argument("--until", type=_moment, help="... up to (excluded)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_export)
