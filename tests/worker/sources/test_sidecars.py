"""Tests for worker.sources.sidecars on generated annotation files of every supported kind."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worker.sources import sidecars
from worker.sources.sidecars import AnnotationConfig, is_sidecar_file, read_annotations
from worker.sources.sidecars import coco as coco_format

W, H = 200, 100


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "siteA" / "cam3").mkdir(parents=True)
    return tmp_path


def _image(root: Path, relative: str = "siteA/cam3/x.jpg") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H)).save(path)
    return path


def _read(image: Path, root: Path, config: AnnotationConfig | None = None, **kwargs: object) -> sidecars.Annotations:
    return read_annotations(image, source_root=root, config=config or AnnotationConfig(), width=W, height=H,
                            **kwargs)  # type: ignore[arg-type]


def _coco(path: Path, images: list[tuple[int, str]], annotations: list[tuple[int, list[float], int]]) -> None:
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": name, "width": W, "height": H} for i, name in images],
        "annotations": [{"id": n, "image_id": i, "bbox": bbox, "category_id": c}
                        for n, (i, bbox, c) in enumerate(annotations)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }))


def test_json_sidecar_full_name(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({
        "boxes": [[10, 20, 50, 60], [0, 0, 5, 5]], "label": "tabby", "tags": {"camera": "override", "lens": 35},
        "captured_at": "2024-03-04T05:06:07"}))
    result = _read(image, root, AnnotationConfig(path_tags=["site", "camera"]))
    assert result.region is not None and result.region.source == "sidecar-json"
    assert result.region.boxes == ((10.0, 20.0, 50.0, 60.0), (0.0, 0.0, 5.0, 5.0))
    assert result.label == "tabby"
    assert result.tags == {"site": "siteA", "camera": "override", "lens": "35"}
    assert result.captured_at == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert result.warnings == []


def test_json_stem_form_and_full_name_precedence(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.json").write_text(json.dumps({"boxes": [[1, 1, 2, 2]], "captured_at": "2024-03-04T05:06:07+02:00"}))
    stem = _read(image, root)
    assert stem.region is not None and stem.region.boxes == ((1.0, 1.0, 2.0, 2.0),)
    assert stem.captured_at == datetime(2024, 3, 4, 3, 6, 7, tzinfo=UTC)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({"boxes": [[3, 3, 4, 4]]}))
    full = _read(image, root)
    assert full.region is not None and full.region.boxes == ((3.0, 3.0, 4.0, 4.0),)


def test_json_unknown_key_is_a_warning_not_a_failure(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({"boxes": [[1, 1, 2, 2]], "box": [0, 0, 1, 1]}))
    result = _read(image, root)
    assert result.region is not None
    assert len(result.warnings) == 1 and "x.jpg.json" in result.warnings[0] and "'box'" in result.warnings[0]


def test_voc_is_one_based_inclusive(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.xml").write_text(
        "<annotation><filename>x.jpg</filename>"
        "<object><name>cat</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5.0</ymax></bndbox></object>"
        "</annotation>")
    result = _read(image, root)
    assert result.region is not None and result.region.source == "voc"
    assert result.region.boxes == ((10.0, 20.0, 50.0, 60.0), (0.0, 0.0, 5.0, 5.0))
    assert result.label == "cat"  # the largest box


def test_yolo_normalised_with_class_names(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.txt").write_text("1 0.5 0.5 0.25 0.5\n\n0 0.1 0.1 0.1 0.1\n")
    no_names = _read(image, root)
    assert no_names.region is not None and no_names.region.source == "yolo"
    assert no_names.region.boxes[0] == pytest.approx((75.0, 25.0, 125.0, 75.0))
    assert no_names.region.boxes[1] == pytest.approx((10.0, 5.0, 30.0, 15.0))
    assert no_names.label == "1"
    (root / "classes.txt").write_text("person\nforklift\n")
    assert _read(image, root).label == "forklift"
    (root / "siteA/cam3/obj.names").write_text("a\nlocal-name\n")
    assert _read(image, root).label == "local-name"  # the image's folder before the source root


def test_yolo_needs_image_size(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    result = read_annotations(image, source_root=root, config=AnnotationConfig())
    assert result.region is None and "image size is needed" in result.warnings[0]


def test_mask_sidecar(root: Path) -> None:
    image = _image(root)
    values = np.zeros((H, W), dtype=np.uint8)
    values[10:20, 30:60] = 255
    Image.fromarray(values).save(root / "siteA/cam3/x.mask.png")
    result = _read(image, root)
    assert result.region is not None and result.region.source == "mask"
    assert result.region.mask is not None and np.array_equal(result.region.mask, values > 0)
    wrong_size = read_annotations(image, source_root=root, config=AnnotationConfig(), width=W + 1, height=H)
    assert wrong_size.region is None and "x.mask.png" in wrong_size.warnings[0]


def test_coco_in_folder_and_root(root: Path) -> None:
    image = _image(root)
    other = _image(root, "siteA/cam3/y.jpg")
    _coco(root / "siteA/cam3/_annotations.coco.json", [(7, "x.jpg")],
          [(7, [10, 20, 30, 40], 2), (7, [0, 0, 5, 5], 1)])
    result = _read(image, root)
    assert result.region is not None and result.region.source == "coco"
    assert result.region.boxes == ((10.0, 20.0, 40.0, 60.0), (0.0, 0.0, 5.0, 5.0))
    assert result.label == "dog"
    assert _read(other, root).region is None  # not listed in the folder's file, no root file
    _coco(root / "instances_val.json", [(1, "siteA/cam3/y.jpg")], [(1, [1, 2, 3, 4], 1)])
    from_root = _read(other, root)
    assert from_root.region is not None and from_root.region.boxes == ((1.0, 2.0, 4.0, 6.0),)
    assert from_root.label == "cat" and from_root.warnings == []


def test_coco_parsed_once_and_reparsed_after_change(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [_image(root, f"siteA/cam3/{i}.jpg") for i in range(5)]
    coco = root / "annotations.json"
    _coco(coco, [(i, f"{i}.jpg") for i in range(5)], [(i, [0, 0, 10 + i, 10], 1) for i in range(5)])
    calls: list[Path] = []
    real = coco_format.parse_coco

    def counting(path: Path, limit: int, source_root: Path) -> coco_format.CocoIndex:
        calls.append(path)
        return real(path, limit, source_root)

    monkeypatch.setattr(coco_format, "parse_coco", counting)
    for i, image in enumerate(images):
        region = _read(image, root).region
        assert region is not None and region.boxes == ((0.0, 0.0, 10.0 + i, 10.0),)  # matched by base name
    assert calls == [coco]
    _coco(coco, [(0, "0.jpg")], [(0, [0, 0, 99, 10], 2)])
    os.utime(coco, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    region = _read(images[0], root).region
    assert region is not None and region.boxes == ((0.0, 0.0, 99.0, 10.0),)
    assert len(calls) == 2


def test_coco_ambiguous_base_name_is_reported(root: Path) -> None:
    image = _image(root)
    _coco(root / "annotations.json", [(1, "a/x.jpg"), (2, "b/x.jpg")], [(1, [0, 0, 1, 1], 1)])
    result = _read(image, root)
    assert result.region is None and "2 images have this image's file name" in result.warnings[0]


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("x.jpg.json", "{not json", "invalid JSON"),
    ("x.jpg.json", '{"boxes": [[5, 5, 1, 1]]}', "corners are swapped"),
    ("x.jpg.json", '{"boxes": [[0, 0, 1, 1]], "captured_at": "yesterday"}', "not an ISO-8601 time"),
    ("x.xml", "<annotation><object><name>a</name></object>", "invalid XML"),
    ("x.xml", "<annotation><object><name>a</name></object></annotation>", "no <bndbox>"),
    ("x.txt", "0 0.5 0.5\n", "line 1: expected 'class cx cy w h'"),
    ("x.mask.png", "not a png", "not an allowed image format"),
    ("annotations.json", '{"images": [{"id": 1}]}', "not a COCO detection file"),
])
def test_malformed_sidecar_is_a_warning(root: Path, name: str, content: str, reason: str) -> None:
    image = _image(root)
    (root / "siteA/cam3" / name).write_text(content)
    config = AnnotationConfig(roi={"siteA/*": (0, 0, 10, 10)}, path_tags=["site"])
    result = _read(image, root, config)
    assert result.region is None  # no silent fallback to the ROI
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"{root / 'siteA/cam3' / name}: ") and reason in result.warnings[0]
    assert result.tags == {"site": "siteA"}


def test_valid_label_survives_a_broken_region_source(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({"label": "tabby"}))
    (root / "siteA/cam3/x.xml").write_text("<annotation><object>")
    result = _read(image, root)
    assert result.label == "tabby" and result.region is None and len(result.warnings) == 1


def test_priority_json_over_voc_and_label_merge(root: Path) -> None:
    image = _image(root)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({"boxes": [[1, 1, 2, 2]]}))
    (root / "siteA/cam3/x.xml").write_text(
        "<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        "<ymax>9</ymax></bndbox></object></annotation>")
    result = _read(image, root)
    assert result.region is not None and result.region.source == "sidecar-json"
    assert result.label == "cat"


def test_roi_fallback_by_source_name_and_glob(root: Path) -> None:
    image = _image(root)
    by_name = AnnotationConfig(roi={"dock": [5, 5, 100, 90]})  # type: ignore[dict-item]
    region = _read(image, root, by_name, source_name="dock").region
    assert region is not None and region.source == "roi" and region.boxes == ((5.0, 5.0, 100.0, 90.0),)
    assert _read(image, root, by_name, source_name="yard").region is None
    by_glob = AnnotationConfig(roi={"siteB/*": (0, 0, 1, 1), "siteA/cam3/*": (1, 2, 3, 4)})
    glob_region = _read(image, root, by_glob).region
    assert glob_region is not None and glob_region.boxes == ((1.0, 2.0, 3.0, 4.0),)
    (root / "siteA/cam3/x.jpg.json").write_text(json.dumps({"boxes": [[7, 7, 8, 8]]}))
    sidecar_region = _read(image, root, by_glob).region
    assert sidecar_region is not None and sidecar_region.source == "sidecar-json"


def test_path_tags(root: Path) -> None:
    image = _image(root, "siteA/cam3/2024/x.jpg")
    assert _read(image, root, AnnotationConfig(path_tags=["site", "camera"])).tags == {"site": "siteA", "camera": "cam3"}
    shallow = _image(root, "top.jpg")
    assert _read(shallow, root, AnnotationConfig(path_tags=["site"])).tags == {}


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"roi\['cam'\]"):
        AnnotationConfig(roi={"cam": (10, 10, 5, 5)})
    with pytest.raises(ValueError, match="not inside the source root"):
        read_annotations(Path("/elsewhere/x.jpg"), source_root=Path("/data"), config=AnnotationConfig())


@pytest.mark.parametrize(("name", "expected"), [
    ("a.mask.png", True), ("A.MASK.PNG", True), ("a.jpg.json", True), ("a.xml", True), ("classes.txt", True),
    ("obj.names", True), ("a.png", False), ("a.jpg", False), ("mask.png", False),
])
def test_is_sidecar_file(name: str, expected: bool) -> None:
    assert is_sidecar_file(Path("/data") / name) is expected
