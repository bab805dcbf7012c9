"""Fault isolation at every pipeline stage: an exception injected while one image is read, decoded,
annotated, run through the model, measured or written costs only that image (an error row naming the stage),
and a SIGKILL at that stage costs no innocent image an attempt: the crashed batch is retried in halving
groups, only the victim is given up, every image is recorded exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from camwatch.settings import load_settings
from db import make_engine
from db.models import Heatmap, Prediction
from db.models import Image as ImageRow
from tests.support import REPO
from tests.support.faulty_worker import STAGES, VICTIM_SIZE, injected, install
from tests.support.models import TINY_SPEC
from worker.service.worker import Worker

VICTIM = "victim.png"


def _folder(src: Path, n: int = 8, victim_at: int = 2) -> None:
    rng = np.random.default_rng(5)
    src.mkdir(parents=True)
    for i in range(n):
        name, size = (VICTIM, VICTIM_SIZE) if i == victim_at else (f"img{i:02d}.png", (48, 40))
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(src / name)
        os.utime(src / name, ns=(10**18 + i, 10**18 + i))  # registration (and claim) order = name order


def _outcome(url: str) -> tuple[dict[str, tuple[str, str | None, int]], int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ImageRow.uri, ImageRow.status, ImageRow.error, ImageRow.solo_attempts)).all()
            heatmaps = conn.execute(select(func.count()).select_from(Heatmap)).scalar_one()
            predictions = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
    finally:
        engine.dispose()
    return {Path(r.uri).name: (r.status, r.error, r.solo_attempts) for r in rows}, heatmaps, predictions


@pytest.mark.parametrize("stage", STAGES)
def test_an_exception_at_any_stage_costs_only_that_image(stage: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _folder(src)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    install(stage, VICTIM, injected(stage), monkeypatch.setattr)
    settings = load_settings(db=url, source=[src], model=TINY_SPEC, stable_seconds=0, poll_seconds=0.05,
                             use_events=False, batch_size=4)
    assert Worker(settings).work(burst=True) is True
    rows, heatmaps, predictions = _outcome(url)
    assert len(rows) == 8 and heatmaps == predictions == 7  # every image once; the victim has no results
    status, error, _ = rows.pop(VICTIM)
    assert status == "error" and f"{stage} failed (RuntimeError: injected {stage} fault)" in (error or "")
    assert all(s == "ok" for s, _, _ in rows.values())


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_any_stage_gives_up_only_the_victim(stage: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _folder(src)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    command = ["run", "--once", "--source", str(src), "--db", url, "--model", TINY_SPEC, "--batch-size", "4",
               "--stable-seconds", "0", "--poll-seconds", "0.05", "--max-attempts", "1", "--heartbeat-seconds",
               "0.2", "--dead-after-seconds", "0.8", "--worker-id", "crashy"]
    done = subprocess.run([sys.executable, "-m", "tests.support.faulty_worker", stage, VICTIM, "--", *command],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CAMWATCH_CONFIG": str(tmp_path / "none.toml"),
                               "CAMWATCH_USE_EVENTS": "false"})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])["runs"]
    # killed in the batch of 4, then in its half (2), then alone; given up; the last run finishes the rest
    assert runs == [-9, -9, -9, 0], (runs, done.stderr[-3000:])
    rows, heatmaps, predictions = _outcome(url)
    assert len(rows) == 8 and heatmaps == predictions == 7
    status, error, solo = rows.pop(VICTIM)
    assert status == "error" and (error or "").startswith("gave up: the worker process died 1 times") and solo == 1
    assert all(s == "ok" for s, _, _ in rows.values()), rows  # no innocent image given up
