"""Tests of the demo stream generator (demo/): determinism, ground truth, planted events, live mode."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camwatch.events import decode_inline, parse_event
from demo.compose import render
from demo.generate import generate_stream, main, stream_live
from demo.manifest import Manifest, sidecar
from demo.run import commands
from demo.sources import BACKGROUNDS, OBJECTS, image
from demo.timeline import LIGHTING, OVERLAYS, StreamConfig, plan_stream
from tests.support.brokers import redis_stream

SMALL = StreamConfig.small()
TINY = replace(SMALL, images=40)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("small") / "stream"
    manifest = generate_stream(root, SMALL)
    return root, manifest


def test_same_seed_gives_identical_files_also_across_processes(tmp_path: Path) -> None:
    generate_stream(tmp_path / "a", TINY)
    generate_stream(tmp_path / "b", TINY, workers=2)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first.keys() == second.keys()
    assert len([name for name in first if name.endswith(".jpg")]) == TINY.images
    assert first == second


def test_different_seed_gives_different_stream(tmp_path: Path) -> None:
    a = generate_stream(tmp_path / "a", TINY)
    b = generate_stream(tmp_path / "b", replace(TINY, seed=1))
    assert [e["captured_at"] for e in a.images] != [e["captured_at"] for e in b.images]
    assert [e["box"] for e in a.images] != [e["box"] for e in b.images]
    first_a = (tmp_path / "a" / a.images[0]["path"]).read_bytes()
    first_b = (tmp_path / "b" / b.images[0]["path"]).read_bytes()
    assert first_a != first_b


def test_manifest_file_matches_returned_manifest_and_config(small_stream: tuple[Path, Manifest]) -> None:
    root, manifest = small_stream
    loaded = Manifest.load(root / "manifest.json")
    assert loaded == manifest
    assert manifest.config["seed"] == 0 and manifest.config["days"] == 3 and manifest.config["images"] == 240
    assert {f"{c['site']}/{c['camera']}" for c in manifest.config["cameras"]} == {
        "site-north/cam-1", "site-north/cam-2", "site-south/cam-3", "site-south/cam-4"}
    times = [_time(e["captured_at"]) for e in manifest.images]
    assert times == sorted(times)
    assert times[0] >= SMALL.day_start(0) and times[-1] < SMALL.day_start(SMALL.days)


def test_sidecars_boxes_layout_and_mtimes(small_stream: tuple[Path, Manifest]) -> None:
    root, manifest = small_stream
    assert len(list(root.rglob("*.jpg"))) == len(manifest.images) == 240
    assert not list(root.rglob("*.part"))
    for entry in manifest.images:
        path = root / entry["path"]
        site, camera, day, name = entry["path"].split("/")
        assert (site, camera) == (entry["site"], entry["camera"])
        assert day == entry["captured_at"][:10] and name.startswith("frame_") and name.endswith(".jpg")
        side = json.loads(path.with_name(name + ".json").read_text())
        assert side == {"boxes": [entry["box"]], "label": entry["label"],
                        "tags": {"site": entry["site"], "camera": entry["camera"]},
                        "captured_at": entry["captured_at"]}
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (entry["width"], entry["height"])
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= entry["width"] and 0 <= y0 < y1 <= entry["height"]
        assert path.stat().st_mtime == pytest.approx(_time(entry["captured_at"]).timestamp())


def test_planted_only_on_affected_camera_after_its_start(small_stream: tuple[Path, Manifest]) -> None:
    _, manifest = small_stream
    event = next(e for e in manifest.events if e["scope"] == "camera")
    assert (event["kind"], f"{event['site']}/{event['camera']}") == (SMALL.planted_kind, SMALL.planted_camera)
    start = _time(event["start"])
    assert start == SMALL.planted_start
    affected = [e for e in manifest.images if (e["site"], e["camera"]) == (event["site"], event["camera"])]
    for entry in manifest.images:
        expected = entry in affected and _time(entry["captured_at"]) >= start
        assert entry["planted"] is expected
        assert entry["planted_kind"] == (event["kind"] if expected else None)
        assert entry["planted_box"] == (event["box"] if expected else None)
    assert any(e["planted"] for e in affected) and not all(e["planted"] for e in affected)
    # the camera's objects keep clear of the poster corner over its whole timeline (before and after)
    px0, py0, px1, py1 = event["box"]
    for entry in affected:
        x0, y0, x1, y1 = entry["box"]
        assert x1 <= px0 or x0 >= px1 or y1 <= py0 or y0 >= py1


def test_global_change_only_after_its_start(small_stream: tuple[Path, Manifest]) -> None:
    _, manifest = small_stream
    event = next(e for e in manifest.events if e["scope"] == "global")
    assert event["kind"] == "lighting" and _time(event["start"]) == SMALL.global_change_start
    flags = [(e["global_change"], _time(e["captured_at"]) >= SMALL.global_change_start) for e in manifest.images]
    assert all(flag == after for flag, after in flags)
    assert {flag for flag, _ in flags} == {True, False}
    cameras_changed = {(e["site"], e["camera"]) for e in manifest.images if e["global_change"]}
    assert len(cameras_changed) == len(SMALL.cameras)


def test_planted_region_shows_the_same_poster_unlike_normal_frames(small_stream: tuple[Path, Manifest]) -> None:
    """In the planted box, planted frames correlate with each other (the poster); normal frames do not."""
    root, manifest = small_stream
    event = next(e for e in manifest.events if e["scope"] == "camera")
    x0, y0, x1, y1 = event["box"]
    camera = [e for e in manifest.images if (e["site"], e["camera"]) == (event["site"], event["camera"])]

    def region(entry: dict) -> np.ndarray:
        with Image.open(root / entry["path"]) as im:
            grey = np.asarray(im.convert("L"), dtype=np.float64)[y0:y1, x0:x1].ravel()
        return (grey - grey.mean()) / grey.std()

    planted = np.stack([region(e) for e in camera if e["planted"]])
    normal = np.stack([region(e) for e in camera if not e["planted"]])
    template = planted.mean(axis=0)
    template /= template.std()
    corr_planted = planted @ template / template.size
    corr_normal = normal @ template / template.size
    assert len(planted) >= 10 and len(normal) >= 10
    assert corr_planted.min() > 0.9
    assert np.median(np.abs(corr_normal)) < 0.3


def test_lighting_change_scales_each_channel() -> None:
    plan = next(p for p in plan_stream(SMALL) if not p.global_change)
    before = np.asarray(render(plan.recipe), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    after = np.asarray(render(replace(plan.recipe, lighting=LIGHTING)), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(after / before, LIGHTING, rtol=0.03)


def test_more_images_by_day_than_by_night(small_stream: tuple[Path, Manifest]) -> None:
    _, manifest = small_stream
    hours = [_time(e["captured_at"]).hour for e in manifest.images]
    day = sum(8 <= h < 19 for h in hours)
    night = sum(h < 6 or h >= 21 for h in hours)
    assert day > 2 * night > 0


def test_live_mode_is_atomic_and_sidecars_come_first(tmp_path: Path) -> None:
    root = tmp_path / "live"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stream_live(root, SMALL, seconds=1.0)
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    seen: set[Path] = set()
    counts_while_streaming: list[int] = []
    streaming_since = None
    while thread.is_alive():
        if (root / "manifest.json").exists() and streaming_since is None:
            streaming_since = time.monotonic()
        for path in sorted(root.rglob("*.jpg")) if root.exists() else []:
            if path in seen:
                continue
            assert path.with_name(path.name + ".json").is_file(), f"{path} is visible before its sidecar"
            with Image.open(path) as im:
                im.load()  # raises on a truncated (half-written) file
            seen.add(path)
        if streaming_since is not None:
            counts_while_streaming.append(len(seen))
        time.sleep(0.02)
    thread.join()
    streaming_for = time.monotonic() - streaming_since if streaming_since is not None else 0.0
    if errors:
        raise errors[0]
    manifest = Manifest.load(root / "manifest.json")
    assert {root / e["path"] for e in manifest.images} == set(root.rglob("*.jpg"))
    assert not list(root.rglob("*.part"))
    last_day = [e for e in manifest.images if _time(e["captured_at"]) >= SMALL.day_start(SMALL.days - 1)]
    assert len(last_day) > 20
    # the last day arrived over time, not all at once
    assert len(set(counts_while_streaming)) >= 3
    last_due = (_time(last_day[-1]["captured_at"]) - SMALL.day_start(SMALL.days - 1)).total_seconds() / 86400
    assert streaming_for >= 0.9 * last_due


def test_cli_small_with_overrides_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--small", "--images", "24", "--seed", "5", "--start", "2027-01-02", "--workers", "1"]
    assert main(args) == 0
    assert "wrote 24 images" in capsys.readouterr().out
    manifest = Manifest.load(out / "manifest.json")
    assert manifest.config["images"] == 24 and manifest.config["seed"] == 5 and manifest.config["days"] == 3
    assert manifest.images[0]["captured_at"].startswith("2027-01-0")
    with pytest.raises(FileExistsError, match="not empty"):
        main(args)
    assert main([*args, "--force"]) == 0
    assert len(list(out.rglob("*.jpg"))) == 24


def test_refuses_to_delete_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="no manifest.json"):
        generate_stream(tmp_path, TINY, overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("changes", [{"planted_day": 3}, {"global_change_day": -1}, {"images": 0},
                                     {"planted_camera": "site-east/cam-9"}, {"planted_kind": "smoke"},
                                     {"overlay_corner": "centre"}, {"overlay_fraction": 0.95}])
def test_invalid_config_is_rejected(changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(SMALL, **changes)


def test_source_crops_lie_inside_their_photos_and_labels_are_imagenet_classes() -> None:
    from torchvision.models import ResNet18_Weights

    categories = set(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    crops = [(s.photo, s.box) for s in OBJECTS] + [(s.photo, s.box) for s in BACKGROUNDS]
    for photo, (x0, y0, x1, y1) in crops + [(s.photo, s.box) for s in OVERLAYS.values()]:
        width, height = image(photo).size
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (photo, (x0, y0, x1, y1))
    for obj in OBJECTS:
        assert obj.label in obj.accepted and obj.accepted <= categories, obj


def test_mtime_is_capture_time_for_live_frames_too(tmp_path: Path) -> None:
    manifest = stream_live(tmp_path / "s", TINY, seconds=0.0)
    for entry in manifest.images:
        stat = os.stat(tmp_path / "s" / entry["path"])
        assert stat.st_mtime == pytest.approx(_time(entry["captured_at"]).timestamp())


def test_publish_mode_sends_each_frame_as_an_event_with_its_sidecar(tmp_path: Path) -> None:
    with redis_stream() as s:
        manifest = generate_stream(tmp_path / "out", TINY, publish=s.url)
        events = [parse_event(fields[b"event"]) for _, fields in s.client.xrange(s.stream)]
    assert sorted((tmp_path / "out").iterdir()) == [tmp_path / "out" / "manifest.json"]  # no image files
    plans = {plan.relpath: plan for plan in plan_stream(TINY)}
    assert [e.id for e in events] == [f"demo:{entry['path']}" for entry in manifest.images]
    for event in events:
        plan = plans[event.id.removeprefix("demo:")]
        note = sidecar(plan)
        assert (event.tags, event.label, [list(b) for b in event.boxes]) == (note["tags"], note["label"],
                                                                            [[float(v) for v in note["boxes"][0]]])
        assert event.time == _time(note["captured_at"]) and event.content_type == "image/jpeg"
        assert decode_inline(event.data or "", 1 << 20)[:3] == b"\xff\xd8\xff"
    cmds = commands(tmp_path, "redis", "redis://127.0.0.1:6379/0", 0, 5.0, 8501)
    location = "redis://127.0.0.1:6379/0?stream=camwatch.demo&group=camwatch-demo"
    assert cmds["generator"][-2:] == ["--publish", location]
    assert cmds["worker"][cmds["worker"].index("--source") + 1] == location
    assert cmds["dashboard"][-2:] == ["--source-root", str(tmp_path / "spool")]
