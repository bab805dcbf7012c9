"""Property tests (hypothesis) of every sidecar format: whatever a file holds, reading the annotations never
raises, the region is a valid one within the box cap, and no text of the file shows up in a warning."""

from __future__ import annotations

import io
import itertools
import json
import os
import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from worker.sources.sidecars import SIDECAR_FORMATS, AnnotationConfig, read_annotations

W, H = 40, 30
MARK = "zz secret zz"  # a space: never shown even as a key name
CONFIG = AnnotationConfig(max_boxes=50, max_sidecar_bytes=1 << 16, max_coco_bytes=1 << 16)
_clock = itertools.count(1)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**30), st.floats(allow_nan=True),
                         st.text(max_size=12), st.just(MARK))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=20)
numbers = st.one_of(st.integers(-50, 100), st.floats(-50, 100), st.text(max_size=5), st.none(), st.just(MARK))
boxes = st.lists(st.lists(numbers, min_size=3, max_size=5), max_size=70)
raw = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), st.just(MARK.encode()))


def _json_docs() -> st.SearchStrategy[bytes]:
    structured = st.fixed_dictionaries({}, optional={"boxes": st.one_of(boxes, json_values), "label": json_values,
                                                     "tags": st.one_of(st.dictionaries(st.text(max_size=5), json_scalars,
                                                                                       max_size=5), json_values),
                                                     "captured_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()),
                                                                              json_values, st.just("0001-01-01T00:00:00+05:00")),
                                                     MARK: json_values})
    return st.one_of(structured.map(lambda d: json.dumps(d, allow_nan=True).encode()), raw,
                     st.integers(1, 3000).map(lambda n: ("[" * n + "]" * n).encode()))


def _coco_docs() -> st.SearchStrategy[bytes]:
    image = st.fixed_dictionaries({"id": json_scalars, "file_name": st.one_of(st.just("x.jpg"), json_scalars)})
    annotation = st.fixed_dictionaries({"image_id": json_scalars, "bbox": st.one_of(st.lists(numbers, max_size=5),
                                                                                  json_values),
                                        "category_id": json_scalars})
    doc = st.fixed_dictionaries({"images": st.one_of(st.lists(image, max_size=4), json_values)},
                                optional={"annotations": st.one_of(st.lists(annotation, max_size=60), json_values),
                                          "categories": st.one_of(st.lists(st.fixed_dictionaries(
                                              {"id": json_scalars, "name": json_scalars}), max_size=3), json_values)})
    return st.one_of(doc.map(lambda d: json.dumps(d, allow_nan=True).encode()), raw)


def _voc_docs() -> st.SearchStrategy[bytes]:
    field = st.one_of(numbers.map(str), st.just(MARK))
    obj = st.tuples(st.text(string.ascii_letters + MARK, max_size=8), field, field, field, field).map(
        lambda o: f"<object><name>{o[0]}</name><bndbox><xmin>{o[1]}</xmin><ymin>{o[2]}</ymin>"
                  f"<xmax>{o[3]}</xmax><ymax>{o[4]}</ymax></bndbox></object>")
    doc = st.lists(obj, max_size=60).map(lambda objs: ("<annotation>" + "".join(objs) + "</annotation>").encode())
    hostile = st.sampled_from([b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation>&x;</annotation>',
                               b"<annotation><object>", b"<other/>", b"<annotation>" * 2000])
    return st.one_of(doc, hostile, raw)


def _yolo_docs() -> st.SearchStrategy[bytes]:
    token = st.one_of(st.sampled_from(["0", "1", "2", "²", "٣", "-1", "1e999", "nan", "0.5", MARK]),
                      numbers.map(str))
    line = st.lists(token, max_size=7).map(" ".join)
    return st.one_of(st.lists(line, max_size=60).map(lambda ls: "\n".join(ls).encode()), raw)


def _mask_docs() -> st.SearchStrategy[bytes]:
    def png(shape: tuple[int, int], mode: str, fill: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full(shape, fill, dtype=np.uint8)).convert(mode).save(buffer, format="PNG")
        return buffer.getvalue()
    pngs = st.builds(png, st.sampled_from([(H, W), (5, 5), (W, H)]), st.sampled_from(["L", "1", "RGB", "P"]),
                     st.sampled_from([0, 1, 255]))
    return st.one_of(pngs, raw)


#: sidecar format key -> (file name next to x.jpg, contents)
STRATEGIES: dict[str, tuple[str, Callable[[], st.SearchStrategy[bytes]]]] = {
    "json": ("x.jpg.json", _json_docs), "mask": ("x.mask.png", _mask_docs), "voc": ("x.xml", _voc_docs),
    "yolo": ("x.txt", _yolo_docs), "coco": ("annotations.json", _coco_docs),
}


def test_every_registered_format_has_a_property_test() -> None:
    assert set(STRATEGIES) == set(SIDECAR_FORMATS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props")
    Image.new("RGB", (W, H)).save(root / "x.jpg")
    return root


def _write(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    tick = next(_clock) * 1_000_000_000
    os.utime(path, ns=(tick, tick))  # a fresh (mtime, size) key: the parse cache never serves an old file


def _check(folder: Path, name: str, content: bytes, classes: bytes | None = None) -> None:
    for stale in folder.iterdir():
        if stale.name != "x.jpg":
            stale.unlink()
    _write(folder / name, content)
    if classes is not None:
        _write(folder / "classes.txt", classes)
    result = read_annotations(folder / "x.jpg", source_root=folder, config=CONFIG, width=W, height=H)
    assert all(MARK not in w for w in result.warnings)
    if result.region is not None:
        assert len(result.region.boxes) <= CONFIG.max_boxes
        assert all(x1 > x0 and y1 > y0 for x0, y0, x1, y1 in result.region.boxes)
        assert result.region.mask is None or result.region.mask.shape == (H, W)
    assert result.label is None or isinstance(result.label, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.tags.items())
    assert result.captured_at is None or result.captured_at.utcoffset() is not None


@pytest.mark.parametrize("key", sorted(STRATEGIES))
def test_any_content_reads_without_raising(key: str, folder: Path) -> None:
    name, strategy = STRATEGIES[key]

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(strategy())
    def run(content: bytes) -> None:
        _check(folder, name, content)

    run()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_yolo_docs(), raw)
def test_yolo_with_any_class_list_reads_without_raising(folder: Path, labels: bytes, classes: bytes) -> None:
    _check(folder, "x.txt", labels, classes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, W - 1), st.integers(0, H - 1), st.integers(1, W), st.integers(1, H)),
                min_size=1, max_size=40))
def test_valid_json_boxes_are_read_exactly(folder: Path, corners: list[tuple[int, int, int, int]]) -> None:
    boxes = [[x, y, x + w, y + h] for x, y, w, h in corners]
    _check(folder, "x.jpg.json", json.dumps({"boxes": boxes}).encode())
    result = read_annotations(folder / "x.jpg", source_root=folder, config=CONFIG, width=W, height=H)
    assert result.region is not None and [list(b) for b in result.region.boxes] == boxes and not result.warnings
