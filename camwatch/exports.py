"""Writing tables of rows to CSV, JSON lines or Parquet with a declared schema, and the COCO format of the
curated export.

Every exported table declares its columns (:class:`Column`: a name and one of :data:`COLUMN_TYPES`) up
front, so a writer never infers a type from the data: a column whose first thousands of values are all
null (``energy_outside`` on images without an object region) keeps its type in Parquet, and CSV and JSON
lines have a fixed column order. Values are Python values: ``datetime`` columns hold aware datetimes (ISO
8601 in CSV and JSON lines, ``timestamp[us, UTC]`` in Parquet), ``json`` columns hold any JSON-serialisable
value (a JSON string in CSV and Parquet, nested in JSON lines).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal

from camwatch.csv_safety import neutralise

ColumnType = Literal["int", "float", "str", "bool", "datetime", "json"]
COLUMN_TYPES: tuple[str, ...] = ("int", "float", "str", "bool", "datetime", "json")
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
#: Rows per Parquet row group (and per chunk held in memory).
PARQUET_CHUNK = 5000


@dataclass(frozen=True)
class Column:
    """One exported column."""

    name: str
    type: ColumnType

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; expected one of {COLUMN_TYPES}")


def _text(value: Any, kind: str) -> Any:
    """A value for CSV (``None`` becomes an empty cell)."""
    if value is None:
        return ""
    if kind == "datetime":
        return value.isoformat()
    if kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return value


def _plain(value: Any, kind: str) -> Any:
    """A value for JSON lines."""
    if value is not None and kind == "datetime":
        return value.isoformat()
    return value


def _check(row: Mapping[str, Any], names: Sequence[str]) -> None:
    extra = set(row) - set(names)
    if extra:
        raise ValueError(f"row has columns the schema does not declare: {sorted(extra)}")


def write_csv(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
    """CSV with a header of the column names; returns the number of rows. Text that a spreadsheet would
    run as a formula gets a leading apostrophe (:mod:`camwatch.csv_safety`)."""
    names = [c.name for c in columns]
    writer = csv.writer(out)
    writer.writerow(names)
    n = 0
    for row in rows:
        _check(row, names)
        writer.writerow([neutralise(_text(row.get(c.name), c.type)) for c in columns])
        n += 1
    return n


def write_jsonl(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
    """One JSON object per line, keys in column order; returns the number of rows."""
    names = [c.name for c in columns]
    n = 0
    for row in rows:
        _check(row, names)
        out.write(json.dumps({c.name: _plain(row.get(c.name), c.type) for c in columns}, ensure_ascii=False))
        out.write("\n")
        n += 1
    return n


def arrow_schema(columns: Sequence[Column]) -> Any:
    """The ``pyarrow.Schema`` of the columns (every column nullable)."""
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(),
             "datetime": pa.timestamp("us", tz="UTC"), "json": pa.string()}
    return pa.schema([pa.field(c.name, types[c.type], nullable=True) for c in columns])


def _arrow_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, ensure_ascii=False)
    if kind == "float":
        return float(value)
    if kind == "datetime" and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: exported times must be aware (UTC)")
    return value


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def write_parquet(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], out: Path | IO[bytes]) -> int:
    """Parquet with the schema of :func:`arrow_schema`, one row group per :data:`PARQUET_CHUNK` rows
    (an empty table when there are no rows); returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    names = [c.name for c in columns]
    n = 0
    with pq.ParquetWriter(out, schema) as writer:
        for chunk in _chunks(rows, PARQUET_CHUNK):
            for row in chunk:
                _check(row, names)
            arrays = [pa.array([_arrow_value(row.get(c.name), c.type) for row in chunk], type=schema.field(c.name).type)
                      for c in columns]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            n += len(chunk)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def write_table(fmt: str, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], out: Path) -> int:
    """Write ``rows`` to the file ``out`` in ``fmt`` (csv, parquet or jsonl); returns the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        return write_parquet(columns, rows, out)
    with out.open("w", newline="" if fmt == "csv" else None, encoding="utf-8") as fh:
        return write_csv(columns, rows, fh) if fmt == "csv" else write_jsonl(columns, rows, fh)


def table_bytes(fmt: str, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The same as :func:`write_table`, in memory (dashboard downloads)."""
    if fmt == "parquet":
        buffer = io.BytesIO()
        write_parquet(columns, rows, buffer)
        return buffer.getvalue()
    text = io.StringIO(newline="")
    if fmt == "csv":
        write_csv(columns, rows, text)
    elif fmt == "jsonl":
        write_jsonl(columns, rows, text)
    else:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return text.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------------- COCO

#: COCO category of the CAM boxes in the curated export (where the model looked), after the classes.
CAM_BOX_CATEGORY = "cam_box (where the model looked)"


def coco_document(images: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                  description: str) -> dict[str, Any]:
    """A COCO detection document of curated images.

    Each image mapping has ``image_id``, ``file_name``, ``width``, ``height``, ``label_index`` (the class of
    its object boxes: the reviewed label, else the stored label; None when unknown), ``object_boxes``
    (``[[x0, y0, x1, y1], ...]`` in pixels, half-open) and ``cam_box`` (the same, or None), and may carry
    extra fields kept under ``camwatch`` (rules, values, verdict, note...). Categories are the model's
    classes (id = class index + 1, COCO ids start at 1), then :data:`CAM_BOX_CATEGORY`; boxes become COCO
    ``[x, y, width, height]``. Object boxes of an image whose label is unknown are left out (a box without
    a class is no detection annotation); the CAM box is always kept.
    """
    cam_category = len(class_names) + 1
    categories = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(class_names)]
    categories.append({"id": cam_category, "name": CAM_BOX_CATEGORY, "supercategory": "camwatch"})
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image in images:
        extra = {k: v for k, v in image.items() if k not in ("image_id", "file_name", "width", "height",
                                                              "label_index", "object_boxes", "cam_box")}
        coco_images.append({"id": int(image["image_id"]), "file_name": image["file_name"],
                            "width": image["width"], "height": image["height"], "camwatch": extra})
        label = image.get("label_index")
        boxes = [(b, int(label) + 1) for b in image.get("object_boxes") or [] if label is not None]
        if image.get("cam_box") is not None:
            boxes.append((image["cam_box"], cam_category))
        for box, category in boxes:
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": int(image["image_id"]),
                                "category_id": category, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    return {"info": {"description": description, "date_created": dt.datetime.now(dt.UTC).isoformat()},
            "images": coco_images, "annotations": annotations, "categories": categories}
