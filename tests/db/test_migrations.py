"""Migrations: upgrade to head matches the models, downgrade works, concurrent starts are safe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

from db.migrate import current_revision, downgrade, head_revision, upgrade
from db.models import Base
from db.session import make_engine
from tests.support import REPO
from tests.support.databases import migrated_engine, postgres_schema

REPO = REPO
TABLES = {"drift_state", "model_versions", "images", "image_tags", "sightings", "predictions", "heatmaps", "flags", "reviews",
          "review_claims", "audit_events", "threshold_overrides", "maintenance_runs",
          "references", "reference_members", "reference_stats", "reference_heatmaps", "drift_results",
          "worker_heartbeats", "queue_status", "alerts"}


def _diffs(engine: Engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert _diffs(engine, Base.metadata) == []


def test_schema_comparison_detects_a_difference(engine: Engine) -> None:
    """Negative control: the comparison above would notice a column the migration lacks."""
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "flags":
            copy.append_column(Column("extra", Integer))
    diffs = _diffs(engine, changed)
    assert [(d[0], d[3].name) for d in diffs] == [("add_column", "extra")]


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)  # idempotent at head
    assert _diffs(engine, Base.metadata) == []


def _upgrade_from_two_processes(url: str) -> None:
    code = "import sys; from db.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        assert _diffs(engine, Base.metadata) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_upgrading_one_fresh_database_both_succeed(kind: str, tmp_path: Path) -> None:
    """Without the migration lock, one of two SQLite upgraders failed with 'database is locked' (measured)."""
    if kind == "sqlite":
        _upgrade_from_two_processes("sqlite:///" + str(tmp_path / "fresh.db"))
    else:
        with postgres_schema() as url:
            _upgrade_from_two_processes(url)
