"""``camwatch export --format csv`` neutralises spreadsheet formulas in text cells and keeps numbers."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from db import claim_batch, complete_batch, make_engine, register_file, session_scope, upgrade
from db.records import ImageResult
from db.types import utcnow
from worker.cli import main


def test_csv_export_cells_cannot_start_a_formula(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine, write=True) as session:
        register_file(session, uri="/s/=cmd|' /c calc'!A1.jpg", sha256="a" * 64, size_bytes=1, mtime_ns=1,
                      source="s", captured_at=utcnow())
    (claim,) = claim_batch(engine, "w", 1, lease_seconds=60)
    complete_batch(engine, "w", [ImageResult(image_id=claim.id, status="error", error="@SUM(1+1)*cmd",
                                             label='=HYPERLINK("https://evil.example","x")', width=-3,
                                             captured_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))])
    engine.dispose()
    out = tmp_path / "out.csv"
    assert main(["export", "--db", url, "--format", "csv", "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["uri"] == "/s/=cmd|' /c calc'!A1.jpg"  # starts with '/': harmless, unchanged
    assert row["error"] == "'@SUM(1+1)*cmd" and row["label"] == "'=HYPERLINK(\"https://evil.example\",\"x\")"
    assert row["width"] == "-3"  # a number keeps its sign
