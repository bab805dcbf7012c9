"""The pipeline's per-batch decoded-pixel budget, and the hashed bytes being the decoded bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from db.records import ClaimedImage
from db.types import utcnow
from tests.support.models import TinyNet, tiny_loaded
from worker.cam.engine import CamEngine
from worker.service.pipeline import PipelineContext, process_batch


def _claims(folder: Path, sizes: list[tuple[int, int]]) -> list[ClaimedImage]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    claims = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        claims.append(ClaimedImage(id=i + 1, uri=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                   captured_at=utcnow(), source="src"))
    return claims


def _context(root: Path, budget: int) -> PipelineContext:
    return PipelineContext(engine=CamEngine(tiny_loaded(TinyNet()), "gradcam", device="cpu"), model_version_id=1,
                           source_roots={"src": (root,)}, max_batch_pixels=budget, thumbnails="none")


def test_decoded_pixels_held_at_once_stay_within_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [(100, 100), (300, 200), (50, 40), (400, 300), (10, 10), (100, 100)]
    claims = _claims(tmp_path, sizes)
    chunks: list[list[int]] = []
    real_prepare = CamEngine.prepare

    def prepare(self, images, *args, **kwargs):  # type: ignore[no-untyped-def]
        chunks.append([i.width * i.height for i in images])
        return real_prepare(self, images, *args, **kwargs)

    monkeypatch.setattr(CamEngine, "prepare", prepare)
    outcome = process_batch(claims, _context(tmp_path, budget=100_000))
    assert [r.status for r in outcome.results] == ["ok"] * 6 and [r.image_id for r in outcome.results] == [1, 2, 3, 4, 5, 6]
    # in claim order, a chunk closes before the image that would cross 100,000 pixels; 120,000 goes alone
    assert chunks == [[10_000, 60_000, 2_000], [120_000], [100, 10_000]]


def test_a_file_changed_since_registration_is_not_decoded_but_registered_again(tmp_path: Path) -> None:
    (claim,) = _claims(tmp_path, [(20, 20)])
    Image.new("RGB", (20, 20), (1, 2, 3)).save(claim.uri)  # rewritten after it was hashed
    outcome = process_batch([claim], _context(tmp_path, budget=10**8))
    (result,) = outcome.results
    assert result.status == "error" and "content changed after it was registered" in (result.error or "")
    (found,) = outcome.changed
    assert found.uri == claim.uri and found.sha256 == hashlib.sha256(Path(claim.uri).read_bytes()).hexdigest()
