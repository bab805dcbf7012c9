"""``camwatch prune`` and ``camwatch export`` as users run them (the CLI entry point)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from db.models import Heatmap, Image
from db.reviews import record_verdict
from db.session import make_engine, write_transaction
from tests.support.databases import migrated_engine
from tests.support.qa import seed_images
from worker.cli import COMMANDS, main


def test_prune_and_export_are_commands() -> None:
    assert {c.__name__.rsplit(".", 1)[-1] for c in COMMANDS} >= {"prune", "export"}


def test_prune_reports_rows_and_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'camwatch.db'}"
    with migrated_engine("sqlite", tmp_path) as engine:
        now = dt.datetime.now(dt.UTC)
        seed_images(engine, 20, start=now - dt.timedelta(days=120), flag_values=[0.7] * 2 + [None] * 18)
        seed_images(engine, 5, start=now - dt.timedelta(days=1), first_id=21)
    assert main(["prune", "--db", url, "--older-than", "90d", "--keep-flagged", "--dry-run"]) == 0
    assert "18 images captured more than 90d ago would be pruned" in capsys.readouterr().out
    assert main(["prune", "--db", url, "--older-than", "90d", "--keep-flagged"]) == 0
    out = capsys.readouterr().out
    assert "pruned 18 images" in out and "MiB ->" in out
    assert "heatmaps                  25 ->            7" in out  # 2 flagged old + 5 new keep theirs
    assert main(["prune", "--db", url, "--older-than", "soon"]) == 2  # a readable error, not a traceback
    assert "expected a positive number and a unit" in capsys.readouterr().err


def test_images_parquet_keeps_types_when_the_first_chunks_are_all_null(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'camwatch.db'}"
    with migrated_engine("sqlite", tmp_path) as engine:
        seed_images(engine, 2300, step=dt.timedelta(seconds=1), thumbnails=False)
        with write_transaction(engine) as conn:  # no object region on the first 2100 images
            conn.execute(update(Heatmap).where(Heatmap.image_id <= 2100).values(energy_outside=None))
            conn.execute(update(Image).where(Image.id <= 2100).values(camera_model=None))
    out = tmp_path / "images.parquet"
    assert main(["export", "--db", url, "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 2300 and table.schema.field("energy_outside").type == pa.float64()
    assert table.schema.field("camera_model").type == pa.string()
    values = table.column("energy_outside").to_pylist()
    assert values[0] is None and values[-1] == 0.5


def test_curated_export_as_coco_and_csv(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'camwatch.db'}"
    with migrated_engine("sqlite", tmp_path) as engine:
        seed_images(engine, 4, flag_values=[0.7, 0.8, 0.9, None])
    engine = make_engine(url)
    record_verdict(engine, actor="tester", client=None, image_id=1, verdict="wrong_attention_confirmed", reviewer="ana")
    record_verdict(engine, actor="tester", client=None, image_id=2, verdict="false_alarm", reviewer="ana")
    record_verdict(engine, actor="tester", client=None, image_id=3, verdict="wrong_attention_confirmed", reviewer="ben")
    engine.dispose()
    coco = tmp_path / "curated.json"
    assert main(["export", "--db", url, "--what", "curated", "--format", "coco", "--out", str(coco)]) == 0
    doc = json.loads(coco.read_text())
    assert [i["id"] for i in doc["images"]] == [1, 3]
    boxes = {(a["image_id"], a["category_id"]): a["bbox"] for a in doc["annotations"]}
    # image 1 is class 0 (cat, category 1); image 3 class 2 (bird, category 3); CAM boxes category 4
    assert boxes == {(1, 1): [100.0, 50.0, 200.0, 200.0], (1, 4): [320.0, 0.0, 320.0, 240.0],
                     (3, 3): [100.0, 50.0, 200.0, 200.0], (3, 4): [320.0, 0.0, 320.0, 240.0]}
    csv_out = tmp_path / "curated.csv"
    assert main(["export", "--db", url, "--what", "curated", "--format", "csv", "--out", str(csv_out)]) == 0
    assert csv_out.read_text().splitlines()[0].startswith("image_id,uri,file_name")
    assert main(["export", "--db", url, "--what", "flags", "--format", "coco", "--out", str(coco)]) == 2
