"""db/synthetic.py: the generated database is consistent and holds the shortcut the dashboard should reveal."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.sql import ColumnElement

from dashboard.analysis import flagged_csv, slice_analysis
from db.models import (
    DriftResult,
    Flag,
    Heatmap,
    Prediction,
    ReferenceMember,
    ReferenceStat,
    Review,
)
from db.models_ops import WorkerHeartbeat
from db.queries import ImageFilter, status_counts
from db.queries_images import GalleryFilter, flagged_page
from db.queries_slices import slice_summary
from db.session import make_engine
from demo.synthetic.fill import SyntheticSummary, fill_database, main

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, SyntheticSummary]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('synthetic') / 'db.sqlite'}"
    summary = fill_database(url, 3000, seed=1, start=START, days=6, cameras=4, reference_size=500)
    engine = make_engine(url)
    yield engine, summary
    engine.dispose()


def _count(engine: Engine, table: type, *where: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_rows_are_consistent(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, summary = filled
    counts = status_counts(engine)
    assert counts["ok"] == summary.n_ok and counts["error"] == summary.n_error
    assert counts["pending"] + counts["processing"] == summary.n_pending == 3
    assert _count(engine, Prediction) == _count(engine, Heatmap) == summary.n_ok
    with engine.connect() as conn:
        flagged = conn.execute(select(func.count(func.distinct(Flag.image_id)))).scalar_one()
    assert flagged == summary.n_flagged and 0.05 * 3000 < flagged < 0.3 * 3000
    assert _count(engine, Review) == summary.n_reviews > 0
    assert _count(engine, ReferenceMember) == 500
    assert _count(engine, WorkerHeartbeat) == 2
    assert summary.shortcut_camera == "cam-03" and summary.end == START + dt.timedelta(days=6)


def test_reference_statistics_cover_the_drift_statistics(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, _ = filled
    with engine.connect() as conn:
        names = set(conn.execute(select(ReferenceStat.statistic).where(ReferenceStat.class_index == -1)).scalars())
    assert {"border_energy", "attention_correlation", "confidence", "raw_max", "cam_box_iou"} <= names


def test_border_energy_drifts_only_once_the_shortcut_starts(filled: tuple[Engine, SyntheticSummary]) -> None:
    """The watermark camera starts at 60% of the period (day 3.6 of 6): the last two days drift."""
    engine, _ = filled
    with engine.connect() as conn:
        drifted = conn.execute(select(DriftResult.drifted).where(
            DriftResult.statistic == "border_energy", DriftResult.class_index == -1, DriftResult.slice == "")
            .order_by(DriftResult.window_start)).scalars().all()
    assert drifted[:3] == [False, False, False] and drifted[-2:] == [True, True]


def test_camera_slices_have_their_own_drift_results(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, _ = filled
    with engine.connect() as conn:
        rows = conn.execute(select(DriftResult.slice, DriftResult.drifted).where(
            DriftResult.statistic == "border_energy", DriftResult.window_start == START + dt.timedelta(days=5))
            .order_by(DriftResult.slice)).all()
    drifted = {s: d for s, d in rows if s}
    assert drifted == {"camera=cam-00": False, "camera=cam-01": False, "camera=cam-02": False, "camera=cam-03": True}


def test_shortcut_camera_stands_out_in_slices(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, _ = filled
    summary = slice_summary(engine, "camera", ImageFilter(start=START + dt.timedelta(days=4)))  # as the page
    share = dict(zip(summary["value"], summary["flagged"] / summary["images"], strict=True))
    assert max(share, key=share.__getitem__) == "cam-03" and share["cam-03"] > 0.8
    recent = ImageFilter(start=START + dt.timedelta(days=4))
    analysis = slice_analysis(engine, "camera", "border_energy", recent, summary, reference_id=1)
    table = analysis.table.set_index("value")
    assert table["ref_drifted"].to_dict() == {"cam-00": False, "cam-01": False, "cam-02": False, "cam-03": True}
    assert table["test"].eq("ks").all() and bool(table["drifted"]["cam-03"])  # rest <= 1000 values: KS
    assert table["heatmap_r"]["cam-03"] < 0.5 < table["heatmap_r"].drop("cam-03").min()


def test_refuses_a_database_with_images(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, _ = filled
    with pytest.raises(ValueError, match="already holds images"):
        fill_database(engine.url.render_as_string(hide_password=False), 10)


def test_command_line_fills_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", f"sqlite:///{tmp_path / 'cli.db'}", "--images", "400", "--cameras", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("400 images (") and "shortcut camera cam-01" in out


def test_flagged_csv_lists_the_filtered_rows_with_their_flags(filled: tuple[Engine, SyntheticSummary]) -> None:
    engine, _ = filled
    g = GalleryFilter(rule="border_energy")
    table = pd.read_csv(io.BytesIO(flagged_csv(engine, g, ["c0", "c1"], max_rows=5)))
    assert list(table["image_id"]) == list(flagged_page(engine, g, 5)["image_id"])
    assert list(table.columns[-2:]) == ["class_name", "flags"]
    assert table["flags"].str.contains(r"border_energy=0\.\d+ \(threshold 0\.6\)").all()
    assert table["severity"].is_monotonic_decreasing
