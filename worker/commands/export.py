"""``camwatch export``: one row per image (columns: :mod:`db.export`) to csv, parquet or jsonl; jsonl rows
also carry the native heatmap. In CSV, text that a spreadsheet would run as a formula is written with a
leading apostrophe (:mod:`camwatch.csv_safety`); parquet and jsonl keep every value as it is."""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from camwatch.csv_safety import neutralise
from db import make_engine, upgrade
from db.export import CHUNK, iter_rows
from worker.commands.common import settings_from

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet", "jsonl")


def export(engine: Engine, fmt: str, out: Path) -> int:
    """Write every processed image to ``out``; returns the number of rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = iter_rows(engine, with_heatmap=fmt == "jsonl")
    n = 0
    if fmt == "jsonl":
        with out.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
                n += 1
    elif fmt == "csv":
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer: csv.DictWriter | None = None
            for row in rows:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow({k: neutralise(v) for k, v in row.items()})
                n += 1
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq_writer = None
        chunk: list[dict[str, Any]] = []
        schema = None
        try:
            for row in rows:
                chunk.append(row)
                n += 1
                if len(chunk) == CHUNK:
                    table = pa.Table.from_pylist(chunk, schema=schema)
                    schema = table.schema
                    pq_writer = pq_writer or pq.ParquetWriter(out, schema)
                    pq_writer.write_table(table)
                    chunk = []
            if chunk or pq_writer is None:
                table = pa.Table.from_pylist(chunk, schema=schema)
                pq_writer = pq_writer or pq.ParquetWriter(out, table.schema)
                pq_writer.write_table(table)
        finally:
            if pq_writer is not None:
                pq_writer.close()
    else:
        raise ValueError(f"unknown export format {fmt!r}: use csv, parquet or jsonl")
    log.info("exported %d rows to %s", n, out)
    return n


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args, ("db",))
    engine = make_engine(settings.db)
    upgrade(engine)
    n = export(engine, args.format, args.out)
    print(f"{n} rows -> {args.out}")  # noqa: T201 - CLI output
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export one row per image")
    p.add_argument("--db")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_export)
