"""Dashboard helpers without a browser: mean heatmaps, safe image paths, pictures, figures, login."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from camwatch.monitoring.heatmaps import (
    MapSums,
    correlation_on_grid,
    mean_normalised_heatmap,
    resample_heatmap,
)
from camwatch.settings import load_settings
from dashboard import figures
from dashboard.auth import configured_password, password_matches
from dashboard.images import confined_path, heatmap_only, render_overlay
from dashboard.state import load_config
from dashboard.widgets import format_age
from db.queries_images import ImageView


def test_map_sums_match_worker_reference_mean() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.random((7, 7)).astype(np.float32) for _ in range(5)] + [np.zeros((7, 7), np.float32)]
    other_grid = rng.random((14, 14)).astype(np.float32)
    sums = MapSums((7, 7))
    sums.add(np.array([0, 0, 1, 1, 1, 1]), np.stack(maps))
    sums.add(np.array([1]), other_grid[None])
    expected = mean_normalised_heatmap([*maps[2:], other_grid], (7, 7))
    assert expected is not None
    mean = sums.mean([1])
    assert mean is not None and mean.n == 4  # the all-zero map has no distribution
    assert np.allclose(mean.data, expected.data)
    both = sums.mean([0, 1])
    assert both is not None and both.n == 6 and np.isclose(both.data.sum(), 1.0)
    assert sums.mean([7]) is None


def test_correlation_resamples_the_second_map() -> None:
    a = np.outer(np.hanning(7), np.hanning(7))
    b = resample_heatmap(a / a.sum(), (14, 14))
    assert correlation_on_grid(a, b) == pytest.approx(1.0, abs=0.02)


def test_confined_path_blocks_siblings_symlinks_and_relative_paths(tmp_path: Path) -> None:
    root, sibling = tmp_path / "data", tmp_path / "data-other"
    (root / "cam").mkdir(parents=True)
    sibling.mkdir()
    inside = root / "cam" / "a.jpg"
    inside.write_bytes(b"x")
    (sibling / "b.jpg").write_bytes(b"x")
    os.symlink(sibling / "b.jpg", root / "escape.jpg")
    os.symlink(inside, root / "alias.jpg")
    assert confined_path(str(inside), [root]) == inside.resolve()
    assert confined_path(str(root / "alias.jpg"), [root]) == inside.resolve()  # a link that stays inside
    assert confined_path(str(sibling / "b.jpg"), [root]) is None  # shares the prefix "data"
    assert confined_path(str(root / "escape.jpg"), [root]) is None  # a link out of the root
    assert confined_path(str(root / "cam" / ".." / ".." / "data-other" / "b.jpg"), [root]) is None
    assert confined_path("cam/a.jpg", [root]) is None  # relative: never resolved against the cwd
    assert confined_path(str(root / "missing.jpg"), [root]) is None
    assert confined_path(str(root / "cam"), [root]) is None  # a directory
    assert confined_path(str(inside), []) is None


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _view(uri: str, thumbnail: bytes | None) -> ImageView:
    native = np.zeros((7, 7), np.float32)
    native[6, 6] = 5.0  # all the heat in the bottom-right cell
    return ImageView(image_id=1, uri=uri, width=200, height=100, thumbnail=thumbnail, object_boxes=[[0, 0, 50, 50]],
                     native=native, extent=[0, 0, 1, 1], cam_box=[170, 85, 200, 100], state="ok")


def test_overlay_prefers_the_requested_source_and_falls_back(tmp_path: Path) -> None:
    original = tmp_path / "a.jpg"
    original.write_bytes(_jpeg((0, 0, 255), (200, 100)))
    view = _view(str(original), _jpeg((255, 255, 0), (100, 50)))
    from_original = render_overlay(view, [tmp_path], side=200, prefer_original=True)
    from_thumbnail = render_overlay(view, [tmp_path], side=200, prefer_original=False)
    without_root = render_overlay(view, [], side=200, prefer_original=True)
    alone = render_overlay(_view(str(original), None), [], side=200, prefer_original=True)
    assert (from_original.source, from_thumbnail.source, without_root.source, alone.source) == \
        ("original", "thumbnail", "thumbnail", "heatmap only")
    picture = np.asarray(Image.open(io.BytesIO(from_original.data)).convert("RGB")).astype(int)
    assert picture.shape == (100, 200, 3)
    assert picture[50, 100, 2] > 200 and picture[50, 100, 0] < 60  # cold area: the blue photo shows
    assert abs(picture[95, 185] - [0, 0, 255]).sum() > 150  # hot corner: coloured by the heatmap
    assert (alone.width, alone.height) == (200, 100)  # aspect ratio kept


def test_heatmap_only_needs_a_heatmap() -> None:
    view = _view("/nowhere.jpg", None)
    with pytest.raises(ValueError, match="no heatmap"):
        heatmap_only(ImageView(**{**view.__dict__, "native": None}))


def test_figures_draw_bands_drift_and_classes() -> None:
    assert figures.reference_of(0.5, 0.1) == (0.5, 0.1) and figures.reference_of(None, 0.1) is None
    low, high = figures.mean_band((0.5, 0.1), [4, 100])  # type: ignore[misc]
    assert low == pytest.approx([0.5 - 1.959964 * 0.05, 0.5 - 1.959964 * 0.01], rel=1e-6)
    assert high == pytest.approx([0.5 + 1.959964 * 0.05, 0.5 + 1.959964 * 0.01], rel=1e-6)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    series = pd.DataFrame({"bucket": [t0, t0 + dt.timedelta(hours=1)], "images": [3, 4], "a": [0.1, 0.2],
                           "b": [1.0, 2.0], "c": [0.0, 0.0]})
    grid = figures.statistic_grid(series, ["a", "b", "c"], {"a": "A"}, {"a": (0.0, 1.0), "b": None},
                                  {"b": True}, None)
    assert len(grid.data) == 2 + 3  # the band of "a" (two traces), then a line per statistic
    assert grid.layout.annotations[1].text == "b — drifted" and grid.layout.annotations[1].font.color == figures.DRIFT_COLOUR
    history = pd.DataFrame({"window_start": [t0, t0], "score": [0.5, 0.01], "threshold": [0.05, 0.05],
                            "drifted": [False, True], "test": ["ks", "ks"], "n_current": [10, 12]})
    scores = figures.drift_scores(history, "A", None)
    assert list(scores.data[0].marker.color) == [figures.OK_COLOUR, figures.DRIFT_COLOUR]
    mix = pd.DataFrame({"bucket": [t0] * 3, "class_index": [0, 1, 2], "images": [5, 3, 1]})
    stacked = figures.class_mix(mix, ["cat", "dog", "fox"], top=2)
    assert [trace.name for trace in stacked.data] == ["0 · cat", "1 · dog", "other"]
    assert figures.class_label(["cat"], 4) == "4"


def test_password_comparison_and_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert password_matches("s3cret", "s3cret") and not password_matches("s3cre", "s3cret")
    monkeypatch.chdir(tmp_path)  # no camwatch.toml, no .streamlit/secrets.toml
    monkeypatch.setenv("CAMWATCH_DASHBOARD__PASSWORD", "from-env")
    assert configured_password(load_settings()) == "from-env"
    monkeypatch.delenv("CAMWATCH_DASHBOARD__PASSWORD")
    assert configured_password(load_settings()) is None


def test_config_reads_cli_env_and_source_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMWATCH_DB", "sqlite:///from-env.db")
    cfg = load_config(["--db", "sqlite:///cli.db", "--source-root", "photos", "-q", "tests/x.py"])
    assert cfg.settings.db == "sqlite:///cli.db"
    assert cfg.source_roots == ((tmp_path / "photos").resolve(),)
    monkeypatch.setenv("CAMWATCH_SOURCE", '["watched"]')
    cfg = load_config([])
    assert cfg.settings.db == "sqlite:///from-env.db" and cfg.source_roots == ((tmp_path / "watched").resolve(),)


def test_format_age() -> None:
    now = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
    assert format_age(now - dt.timedelta(seconds=30), now) == "30 s ago"
    assert format_age(now - dt.timedelta(hours=3), now) == "3 h ago"
    assert format_age(None, now) == "never"
    assert format_age(now + dt.timedelta(minutes=5), now).startswith("in the future")


def test_unbound_server_address_counts_as_exposed() -> None:
    from dashboard.main import _exposed

    assert _exposed(None) and _exposed("0.0.0.0") and _exposed("")
    assert not _exposed("127.0.0.1") and not _exposed("localhost")
