"""Model versions side by side: a shadow-mode worker keeps both versions' results (each the same as the model
run alone), ``camwatch reprocess`` adds a third version idempotently, and each version's drift waits for
its own reference (no drift rows, no alarms, from the switch itself)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from db.codec import decode_heatmap
from db.models import DriftResult, Flag, Heatmap, Image, Prediction, Reference, ReferenceMember
from db.session import make_engine
from tests.support.models import TINY_SPEC, TINY_V2_SPEC
from tests.support.versions import counts_per_version, make_images, run_worker, two_versions, worker_settings
from worker.cli import main


def _by_sha(url: str, version: int) -> dict[str, tuple[int, np.ndarray]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Image.sha256, Prediction.class_index, Heatmap.grid_h, Heatmap.grid_w,
                                       Heatmap.data)
                                .join(Prediction, Prediction.image_id == Image.id)
                                .join(Heatmap, (Heatmap.image_id == Image.id) & Heatmap.is_primary
                                      & (Heatmap.model_version_id == Prediction.model_version_id))
                                .where(Prediction.model_version_id == version)).all()
    finally:
        engine.dispose()
    return {r.sha256: (int(r.class_index), decode_heatmap(r.data, r.grid_h, r.grid_w)) for r in rows}


def _scalar(url: str, stmt: object) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())  # type: ignore[call-overload]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def shadow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("shadow")
    url = f"sqlite:///{folder / 'camwatch.db'}"
    two_versions(folder, url, 200)
    return folder, url


def test_shadow_mode_keeps_both_versions_each_as_the_model_alone(shadow: tuple[Path, str], tmp_path: Path) -> None:
    folder, url = shadow
    assert counts_per_version(url) == {1: 200, 2: 200}
    assert counts_per_version(url, Heatmap) == {1: 200, 2: 200}
    assert _scalar(url, select(func.count()).select_from(Image).where(Image.model_version_id == 1,
                                                                     Image.status == "ok")) == 200
    windows = {v: _scalar(url, select(func.count(func.distinct(DriftResult.window_start))).join(
        Reference, Reference.id == DriftResult.reference_id).where(Reference.model_version_id == v)) for v in (1, 2)}
    assert windows[2] == windows[1] > 0  # the shadow version's drift covers the same windows as the primary's
    alone = f"sqlite:///{tmp_path / 'alone.db'}"  # the shadow model run by itself on the same files
    run_worker(worker_settings(alone, folder / "images", TINY_V2_SPEC))
    shadowed, single = _by_sha(url, 2), _by_sha(alone, 1)
    assert set(shadowed) == set(single) and len(single) == 200
    for sha, (cls, native) in single.items():
        assert shadowed[sha][0] == cls
        np.testing.assert_array_equal(shadowed[sha][1], native)


def test_reprocess_adds_a_version_and_a_rerun_counts_nothing_twice(shadow: tuple[Path, str], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder, shared = shadow
    db = tmp_path / "copy.db"
    with sqlite3.connect(folder / "camwatch.db") as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # the write-ahead log's pages included
    url = f"sqlite:///{db}"
    args = ["reprocess", "--db", url, "--model", TINY_SPEC, "--method", "layercam", "--since", "2000-01-01",
            "--folder", str(folder / "images")]
    assert main(args) == 0
    assert "model version 3: 200 images reprocessed, 0 could not be read" in capsys.readouterr().out
    assert counts_per_version(url) == {1: 200, 2: 200, 3: 200}
    assert counts_per_version(url, Heatmap) == {1: 200, 2: 200, 3: 200}
    flags = counts_per_version(url, Flag)
    assert main(args) == 0  # rerun: every image already has version 3's result
    assert "model version 3: 0 images reprocessed" in capsys.readouterr().out
    assert main([*args, "--redo"]) == 0  # recomputed, replaced: still one result per image and version
    assert "model version 3: 200 images reprocessed" in capsys.readouterr().out
    assert counts_per_version(url) == {1: 200, 2: 200, 3: 200}
    assert counts_per_version(url, Heatmap) == {1: 200, 2: 200, 3: 200}
    assert counts_per_version(url, Flag) == flags
    assert _scalar(url, select(func.count()).select_from(Image).where(Image.model_version_id == 1)) == 200

    gone = sorted((folder / "images").rglob("*.png"))[0]
    moved = tmp_path / "moved.png"
    shutil.move(str(gone), moved)
    try:
        assert main([*args[:4], TINY_V2_SPEC, "--method", "xgradcam", *args[7:]]) == 0
    finally:
        shutil.move(str(moved), gone)
    out = capsys.readouterr().out
    assert "model version 4: 199 images reprocessed, 1 could not be read" in out
    assert "thumbnails are not enough" in out and "file not found" in out
    assert counts_per_version(url)[4] == 199 and counts_per_version(shared) == {1: 200, 2: 200}


def test_each_version_waits_for_its_own_reference(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'camwatch.db'}"
    images = tmp_path / "images"
    reference = {"kind": "first_n", "first_n": 50}
    make_images(images, 60)
    run_worker(worker_settings(url, images, TINY_SPEC, reference=reference))

    def drift_rows(version: int) -> int:
        return _scalar(url, select(func.count()).select_from(DriftResult).join(
            Reference, Reference.id == DriftResult.reference_id).where(Reference.model_version_id == version))

    before = drift_rows(1)
    assert before > 0
    engine = make_engine(url)
    with engine.connect() as conn:
        first = [tuple(r) for r in conn.execute(select(DriftResult.statistic, DriftResult.class_index,
                                                       DriftResult.test, DriftResult.slice, DriftResult.score)
                                                .order_by(DriftResult.id))]
    make_images(images, 30, seed=1, start=60)  # the model is switched: version 2 from now on
    run_worker(worker_settings(url, images, TINY_V2_SPEC, reference=reference))
    assert counts_per_version(url) == {1: 60, 2: 30}
    assert drift_rows(2) == 0  # warm-up: 30 of the 50 reference images, no drift yet
    assert _scalar(url, select(func.count()).select_from(Reference).where(Reference.model_version_id == 2)) == 0
    with engine.connect() as conn:  # version 1's drift did not see the switch
        assert [tuple(r) for r in conn.execute(select(DriftResult.statistic, DriftResult.class_index,
                                                      DriftResult.test, DriftResult.slice, DriftResult.score)
                                               .order_by(DriftResult.id))] == first
    make_images(images, 40, seed=2, start=90)
    run_worker(worker_settings(url, images, TINY_V2_SPEC, reference=reference))
    assert drift_rows(2) > 0
    with engine.connect() as conn:
        members = conn.execute(select(ReferenceMember.image_id).join(
            Reference, Reference.id == ReferenceMember.reference_id).where(Reference.model_version_id == 2)).scalars()
        assert _versions_of(conn, list(members)) == {2}
    engine.dispose()


def _versions_of(conn: object, ids: list[int]) -> set[int]:
    rows = conn.execute(select(Image.model_version_id).where(Image.id.in_(ids)))  # type: ignore[attr-defined]
    return {int(v) for v in rows.scalars()}
