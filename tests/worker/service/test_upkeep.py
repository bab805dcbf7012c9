"""The worker's upkeep: image properties and camera models stored by the pipeline, thresholds accepted from
reviews applied to new images, and the daily retention run in a background thread."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from camwatch.settings import load_settings
from db import make_engine
from db.models import Flag, Heatmap
from db.models import Image as ImageRow
from db.prune import last_run
from db.reviews import accept_threshold
from tests.support.databases import migrated_engine
from tests.support.models import TINY_SPEC
from tests.support.qa import T0, seed_images
from worker.service.upkeep import Upkeep
from worker.service.worker import Worker


def test_the_worker_stores_image_properties_and_the_camera_model(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "AXIS", "M3106-L Mk II"
    grey = np.full((48, 64, 3), 100, dtype=np.uint8)
    Image.fromarray(grey).save(src / "grey.png")  # constant: no contrast, no sharpness, no colour
    Image.fromarray(np.full((48, 64, 3), (200, 40, 40), dtype=np.uint8)).save(src / "red.jpg", exif=exif, quality=95)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    Worker(load_settings(db=url, source=[src], model=TINY_SPEC, stable_seconds=0.05, poll_seconds=0.05)).work(burst=True)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {Path(r.uri).name: r for r in conn.execute(select(
            ImageRow.uri, ImageRow.brightness, ImageRow.contrast, ImageRow.sharpness, ImageRow.colourfulness,
            ImageRow.camera_model))}
    engine.dispose()
    grey_row, red_row = rows["grey.png"], rows["red.jpg"]
    assert grey_row.brightness == pytest.approx(100.0, rel=1e-6)
    assert (grey_row.contrast, grey_row.sharpness, grey_row.colourfulness) == pytest.approx((0.0, 0.0, 0.0), abs=1e-4)
    assert grey_row.camera_model is None and red_row.camera_model == "AXIS M3106-L Mk II"
    assert abs(red_row.brightness - (0.299 * 200 + 0.587 * 40 + 0.114 * 40)) < 3  # JPEG rounding
    assert red_row.colourfulness > 50


def test_accepted_thresholds_reach_the_pipeline(tmp_path: Path) -> None:
    with migrated_engine("sqlite", tmp_path) as engine:
        upkeep = Upkeep(load_settings(db="sqlite://"), engine, "w1")
        ctx = SimpleNamespace(flags=None, shadows=[])
        upkeep.tick(ctx, force=True)  # type: ignore[arg-type]
        assert ctx.flags.energy_outside_max == 0.5  # the settings' default
        accept_threshold(engine, rule="energy_outside", value=0.7, previous=0.5, actor="admin", evidence={})
        upkeep.tick(ctx)  # type: ignore[arg-type]
        assert ctx.flags.energy_outside_max == 0.5  # checked at most once a minute
        upkeep.tick(ctx, force=True)  # type: ignore[arg-type]
        assert ctx.flags.energy_outside_max == 0.7 and upkeep.applied == {"energy_outside_max": 0.7}


def test_daily_retention_runs_in_the_background_and_keeps_flagged_images(tmp_path: Path) -> None:
    with migrated_engine("sqlite", tmp_path) as engine:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=200)
        seed_images(engine, 30, start=old, flag_values=[0.9] * 5 + [None] * 25, step=dt.timedelta(minutes=1))
        seed_images(engine, 5, start=T0 + dt.timedelta(days=3650), first_id=31)  # far in the future: kept
        settings = load_settings(db="sqlite://", retention={"older_than_days": 90, "pause_seconds": 0,
                                                            "batch_size": 7})
        upkeep = Upkeep(settings, engine, "w1")
        ctx = SimpleNamespace(flags=None, shadows=[])
        upkeep.tick(ctx, force=True)  # type: ignore[arg-type]
        assert upkeep._thread is not None
        upkeep._thread.join(60)
        with engine.connect() as conn:
            held = set(conn.execute(select(Heatmap.image_id)).scalars())
            flagged = set(conn.execute(select(Flag.image_id)).scalars())
        assert held == set(range(1, 6)) | set(range(31, 36)) and flagged == set(range(1, 6))  # keep_flagged
        run = last_run(engine)
        assert run is not None and run[2]["images"] == 25
        upkeep.tick(ctx, force=True)  # type: ignore[arg-type]
        assert not upkeep.pruning  # the next run is due in a day
        upkeep.stop()
