"""Revision 0009_model_versions on a database with results: existing rows get their image's model version,
results become keyed by (image, model version), and downgrade keeps each image's own version's results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from db.migrate import downgrade, upgrade
from tests.support.databases import migrated_engine

BEFORE = "0008_alerts"  # the revision before 0009


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        downgrade(engine, BEFORE)
        yield engine


def _seed(engine: Engine) -> None:
    """Two model versions; images 1 and 2 processed by version 1, image 3 by version 2."""
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:
        for mv in (1, 2):
            conn.execute(t["model_versions"].insert().values(
                id=mv, fingerprint=f"{mv}" * 64, spec=f"m{mv}", num_classes=2, class_names=["a", "b"],
                input_size=[8, 8], preprocessing={}, target_layer="l", method="gradcam", created_at=sa.func.now()))
        for image_id, mv in ((1, 1), (2, 1), (3, 2)):
            conn.execute(t["images"].insert().values(
                id=image_id, sha256=f"{image_id}" * 64, uri=f"/x/{image_id}.png", source="s", size_bytes=1,
                captured_at=sa.func.now(), first_seen_at=sa.func.now(), status="ok", attempts=1,
                model_version_id=mv))
            conn.execute(t["predictions"].insert().values(
                image_id=image_id, model_version_id=mv, class_index=0, confidence=0.9, topk_indices=[0],
                topk_probs=[0.9], topk_logits=[1.0]))
            conn.execute(t["heatmaps"].insert().values(
                image_id=image_id, method="gradcam", target_class=0, target_layer="l", is_primary=True, state="ok",
                grid_h=1, grid_w=1, extent=[0, 0, 1, 1], data=b"\x00<"))
            conn.execute(t["flags"].insert().values(image_id=image_id, rule="energy_outside", value=0.9,
                                                    threshold=0.5, created_at=sa.func.now()))


def test_upgrade_keys_existing_results_by_their_model_version(engine: Engine) -> None:
    _seed(engine)
    upgrade(engine)
    with engine.connect() as conn:
        for table in ("heatmaps", "flags"):
            rows = conn.execute(sa.text(f"SELECT image_id, model_version_id FROM {table} ORDER BY image_id")).all()
            assert [tuple(r) for r in rows] == [(1, 1), (2, 1), (3, 2)]
    with engine.begin() as conn:  # a second version's results of image 1 now fit beside the first's
        conn.execute(sa.text("INSERT INTO predictions (image_id, model_version_id, class_index, confidence, "
                             "topk_indices, topk_probs, topk_logits) VALUES (1, 2, 1, 0.6, '[1]', '[0.6]', '[0.5]')"))
        conn.execute(sa.text("INSERT INTO flags (image_id, model_version_id, rule, value, threshold, created_at) "
                             "VALUES (1, 2, 'energy_outside', 0.8, 0.5, CURRENT_TIMESTAMP)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # but not twice for one version
        conn.execute(sa.text("INSERT INTO flags (image_id, model_version_id, rule, value, threshold, created_at) "
                             "VALUES (1, 2, 'energy_outside', 0.7, 0.5, CURRENT_TIMESTAMP)"))
    downgrade(engine, BEFORE)  # keeps each image's own version's results only
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT image_id, model_version_id FROM predictions ORDER BY image_id")).all() \
            == [(1, 1), (2, 1), (3, 2)]
        assert conn.execute(sa.text("SELECT count(*) FROM flags")).scalar_one() == 3
    upgrade(engine)
