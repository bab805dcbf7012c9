"""Every registered export table: declared columns, rows that match the database, a Parquet schema that does
not depend on the data."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, insert

from camwatch.exports import arrow_schema, table_bytes
from db.exports import EXPORTS, ExportOptions, export_table
from db.models import DriftResult
from db.models_alerts import Alert
from db.reviews import record_verdict
from db.session import write_transaction
from tests.support.databases import migrated_engine
from tests.support.qa import T0, add_reference, seed_images

# ids 1..6: flagged 1, 2, 3 (values 0.6, 0.7, 0.8), 4..6 not; reviews on 1 (twice) and 2
EXPECTED_ROWS = {"images": 6, "reviews": 3, "flags": 3, "drift": 2, "alerts": 2, "curated": 1}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        seeded = seed_images(engine, 6, flag_values=[0.6, 0.7, 0.8, None, None, None])
        ref = add_reference(engine, seeded.model_version_id, [4, 5])
        record_verdict(engine, actor="tester", client=None, image_id=1, verdict="false_alarm", reviewer="ana")
        record_verdict(engine, actor="tester", client=None, image_id=1, verdict="wrong_attention_confirmed", reviewer="ben", note="poster")
        record_verdict(engine, actor="tester", client=None, image_id=2, verdict="wrong_label", reviewer="ana", label="bird", label_index=2)
        with write_transaction(engine) as conn:
            conn.execute(insert(DriftResult), [
                {"reference_id": ref, "window_kind": "day", "window_start": T0 + dt.timedelta(days=d),
                 "window_end": T0 + dt.timedelta(days=d + 1), "statistic": "brightness", "class_index": -1,
                 "test": "ks", "score": None if d == 0 else 0.001, "threshold": 0.05, "drifted": d == 1,
                 "n_reference": 2, "n_current": 6, "computed_at": T0, "slice": "",
                 "decision": "drifted" if d == 1 else "not_enough_data", "decision_rule": "threshold",
                 "raw_drifted": True if d == 1 else None} for d in (0, 1)])
            conn.execute(insert(Alert), [
                {"rule": "drift", "subject_key": "drift|brightness|-1|camera=cam-2", "statistic": "brightness",
                 "class_index": -1, "slice": "camera=cam-2", "state": "resolved", "first_seen": T0,
                 "last_seen": T0 + dt.timedelta(hours=2), "resolved_at": T0 + dt.timedelta(hours=2), "value": 0.4,
                 "threshold": 0.1, "summary": "=cmd|' /C calc'!A0", "links": {"drift": "http://127.0.0.1:8501/drift"}},
                {"rule": "error_rate", "subject_key": "error_rate|", "statistic": None, "class_index": None,
                 "slice": "", "state": "firing", "resolved_at": None,
                 "first_seen": T0 + dt.timedelta(days=1), "last_seen": T0 + dt.timedelta(days=1), "value": 0.5,
                 "threshold": 0.05, "summary": "errors", "links": None}])
        yield engine


def test_every_export_is_covered_here() -> None:
    assert set(EXPORTS) == set(EXPECTED_ROWS)


@pytest.mark.parametrize("key", list(EXPECTED_ROWS))
def test_each_export_writes_its_declared_columns(engine: Engine, key: str) -> None:
    table = export_table(key)
    columns = table.columns_for(ExportOptions())
    rows = list(table.rows(engine, ExportOptions()))
    assert len(rows) == EXPECTED_ROWS[key]
    assert all(set(row) <= {c.name for c in columns} for row in rows)
    parquet = pq.read_table(io.BytesIO(table_bytes("parquet", columns, rows)))
    assert parquet.schema.equals(arrow_schema(columns)) and parquet.num_rows == len(rows)


def test_flag_and_review_rows_hold_the_stored_values(engine: Engine) -> None:
    flags = {r["image_id"]: r for r in export_table("flags").rows(engine, ExportOptions())}
    assert {i: (r["value"], r["threshold"], r["latest_verdict"]) for i, r in flags.items()} == {
        1: (0.6, 0.5, "wrong_attention_confirmed"), 2: (0.7, 0.5, "wrong_label"), 3: (0.8, 0.5, None)}
    assert flags[3]["severity"] == pytest.approx(0.6) and flags[1]["tags"] == {"camera": "cam-1"}
    reviews = list(export_table("reviews").rows(engine, ExportOptions()))
    assert [(r["image_id"], r["verdict"], r["is_latest"]) for r in reviews] == [
        (1, "false_alarm", False), (1, "wrong_attention_confirmed", True), (2, "wrong_label", True)]
    assert reviews[2]["label"] == "bird" and reviews[1]["verdict_label"] == "Correct flag"
    images = {r["image_id"]: r for r in export_table("images").rows(engine, ExportOptions())}
    assert images[2]["reviewed_label"] == "bird" and images[2]["correct"] is False and images[3]["correct"] is True
    assert images[1]["brightness"] == 100.0 and images[1]["camera_model"] == "Axis M3106"


def test_alert_rows_hold_the_stored_episodes_and_csv_neutralises_formulas(engine: Engine) -> None:
    rows = list(export_table("alerts").rows(engine, ExportOptions()))
    assert [(r["rule"], r["state"], r["slice"], r["value"]) for r in rows] == [
        ("drift", "resolved", "camera=cam-2", 0.4), ("error_rate", "firing", "", 0.5)]
    assert rows[0]["links"] == {"drift": "http://127.0.0.1:8501/drift"} and rows[1]["links"] == {}
    later = list(export_table("alerts").rows(engine, ExportOptions(start=T0 + dt.timedelta(hours=1))))
    assert [r["rule"] for r in later] == ["error_rate"]
    text = table_bytes("csv", export_table("alerts").columns_for(ExportOptions()), rows).decode()
    assert "'=cmd" in text and ",=cmd" not in text


def test_time_ranges_limit_the_rows(engine: Engine) -> None:
    later = ExportOptions(start=T0 + dt.timedelta(minutes=15))  # image 1 is captured at T0, image 2 at T0 + 10 min
    assert [r["image_id"] for r in export_table("flags").rows(engine, later)] == [3]
    drift = list(export_table("drift").rows(engine, ExportOptions(start=T0 + dt.timedelta(hours=1))))
    assert [(r["score"], r["drifted"]) for r in drift] == [(0.001, True)]
    assert drift[0]["decision"] == "drifted" and drift[0]["decision_rule"] == "threshold" and drift[0]["raw_drifted"]
