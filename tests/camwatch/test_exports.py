"""Export writers with declared schemas: all-null first rows keep their Parquet type; COCO documents."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from camwatch.exports import CAM_BOX_CATEGORY, PARQUET_CHUNK, Column, coco_document, table_bytes, write_table

COLUMNS = [Column("image_id", "int"), Column("energy_outside", "float"), Column("rule", "str"),
           Column("drifted", "bool"), Column("at", "datetime"), Column("boxes", "json")]
T0 = dt.datetime(2026, 11, 3, 8, 15, tzinfo=dt.UTC)


def _rows(n: int, nulls_first: int) -> list[dict]:
    return [{"image_id": i, "energy_outside": None if i < nulls_first else i / n, "rule": None if i < nulls_first
             else "energy_outside", "drifted": None if i < nulls_first else i % 2 == 0,
             "at": None if i < nulls_first else T0 + dt.timedelta(minutes=i),
             "boxes": None if i < nulls_first else [[1, 2, 3, 4]]} for i in range(n)]


def test_parquet_keeps_the_declared_types_when_the_first_chunks_are_all_null(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    n = 2 * PARQUET_CHUNK + 10
    assert write_table("parquet", COLUMNS, _rows(n, nulls_first=PARQUET_CHUNK + 5), out) == n
    table = pq.read_table(out)
    assert table.schema.field("energy_outside").type == pa.float64()
    assert table.schema.field("rule").type == pa.string() and table.schema.field("drifted").type == pa.bool_()
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    values = table.column("energy_outside").to_pylist()
    assert values[0] is None and values[-1] == pytest.approx((n - 1) / n)
    assert json.loads(table.column("boxes").to_pylist()[-1]) == [[1, 2, 3, 4]]
    assert table.column("at").to_pylist()[-1] == T0 + dt.timedelta(minutes=n - 1)


def test_an_empty_parquet_export_still_has_the_schema() -> None:
    table = pq.read_table(io.BytesIO(table_bytes("parquet", COLUMNS, [])))
    assert table.num_rows == 0 and table.schema.names == [c.name for c in COLUMNS]


def test_csv_and_jsonl_write_every_declared_column_in_order(tmp_path: Path) -> None:
    rows = _rows(3, nulls_first=1)
    write_table("csv", COLUMNS, rows, tmp_path / "t.csv")
    lines = list(csv.reader((tmp_path / "t.csv").open(encoding="utf-8")))
    assert lines[0] == [c.name for c in COLUMNS] and lines[1] == ["0", "", "", "", "", ""]
    assert lines[2][4] == (T0 + dt.timedelta(minutes=1)).isoformat() and json.loads(lines[2][5]) == [[1, 2, 3, 4]]
    text = table_bytes("jsonl", COLUMNS, rows).decode()
    first, second = (json.loads(line) for line in text.splitlines()[:2])
    assert list(first) == [c.name for c in COLUMNS] and first["energy_outside"] is None
    assert second["boxes"] == [[1, 2, 3, 4]] and second["at"] == (T0 + dt.timedelta(minutes=1)).isoformat()


def test_undeclared_columns_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not declare"):
        table_bytes("csv", COLUMNS, [{"image_id": 1, "surprise": 2}])
    with pytest.raises(ValueError, match="unknown export format"):
        write_table("xlsx", COLUMNS, [], tmp_path / "t.xlsx")
    with pytest.raises(ValueError, match="unknown type"):
        Column("x", "decimal")  # type: ignore[arg-type]


def test_coco_document_holds_object_and_cam_boxes() -> None:
    doc = coco_document([
        {"image_id": 7, "file_name": "a.jpg", "width": 640, "height": 480, "label_index": 1,
         "object_boxes": [[10, 20, 110, 220]], "cam_box": [400, 0, 640, 200], "rules": "energy_outside"},
        {"image_id": 9, "file_name": "b.jpg", "width": 640, "height": 480, "label_index": None,
         "object_boxes": [[0, 0, 5, 5]], "cam_box": None},
    ], ["cat", "dog"], "test")
    assert [c["name"] for c in doc["categories"]] == ["cat", "dog", CAM_BOX_CATEGORY]
    assert doc["categories"][1]["id"] == 2 and doc["images"][0]["camwatch"] == {"rules": "energy_outside"}
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in doc["annotations"]] == [
        (7, 2, [10.0, 20.0, 100.0, 200.0]), (7, 3, [400.0, 0.0, 240.0, 200.0])]
    assert doc["annotations"][0]["area"] == 20_000.0 and len({a["id"] for a in doc["annotations"]}) == 2
