"""Engine configuration, transactions, UTC times and the heatmap codec."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select, update

from db.codec import decode_heatmap, encode_heatmap
from db.models import Image
from db.registry import register_file
from db.session import make_engine, session_scope, write_transaction
from tests.support.databases import migrated_engine

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    with migrated_engine("sqlite", tmp_path) as engine:
        yield engine


def _register(engine: Engine, uri: str, sha: str, captured_at: dt.datetime = T0) -> None:
    with session_scope(engine, write=True) as s:
        register_file(s, uri=uri, sha256=sha, size_bytes=10, mtime_ns=1, source="cam", captured_at=captured_at)


def test_sqlite_pragmas_are_set_on_every_connection(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_write_transaction_holds_the_sqlite_write_lock_from_its_first_statement(sqlite_engine: Engine) -> None:
    path = sqlite_engine.url.database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with write_transaction(sqlite_engine) as conn:
            conn.execute(select(Image.id)).all()  # only a read so far: BEGIN IMMEDIATE already locked
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
        with session_scope(sqlite_engine) as s:  # a read session takes no write lock
            s.execute(select(Image.id)).all()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_session_scope_rolls_back_on_error(sqlite_engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(sqlite_engine, write=True) as s:
        register_file(s, uri="/a.jpg", sha256="a" * 64, size_bytes=1, mtime_ns=1, source="cam", captured_at=T0)
        raise RuntimeError("boom")
    with session_scope(sqlite_engine) as s:
        assert s.execute(select(Image.id)).all() == []


def test_foreign_keys_are_enforced(sqlite_engine: Engine) -> None:
    _register(sqlite_engine, "/a.jpg", "a" * 64)
    with pytest.raises(Exception, match="FOREIGN KEY"), write_transaction(sqlite_engine) as conn:
        conn.execute(update(Image).values(model_version_id=12345))


def test_times_round_trip_as_aware_utc_and_naive_times_are_refused(sqlite_engine: Engine) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    _register(sqlite_engine, "/a.jpg", "a" * 64, captured_at=T0.astimezone(plus_two))
    with session_scope(sqlite_engine) as s:
        stored = s.execute(select(Image.captured_at)).scalar_one()
    assert stored == T0 and stored.tzinfo == dt.UTC
    with pytest.raises(Exception, match="naive datetime"):
        _register(sqlite_engine, "/b.jpg", "b" * 64, captured_at=dt.datetime(2025, 1, 2))


def test_sqlite_time_order_survives_time_zones(sqlite_engine: Engine) -> None:
    """Stored as UTC text, so a filter compares instants, not wall-clock fields."""
    tokyo = dt.timezone(dt.timedelta(hours=9))
    _register(sqlite_engine, "/early.jpg", "a" * 64, captured_at=dt.datetime(2025, 1, 1, 8, 0, tzinfo=tokyo))
    _register(sqlite_engine, "/late.jpg", "b" * 64, captured_at=dt.datetime(2025, 1, 1, 1, 0, tzinfo=dt.UTC))
    with session_scope(sqlite_engine) as s:
        after = s.execute(select(Image.uri).where(Image.captured_at > dt.datetime(2024, 12, 31, 23, 30,
                                                                                  tzinfo=dt.UTC))).scalars()
        assert list(after) == ["/late.jpg"]


def test_make_engine_rejects_unsupported_backends_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported backend 'mysql'"):
        make_engine("mysql://u@localhost/x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_engine("sqlite:///" + str(tmp_path / "missing" / "camwatch.db"))


def test_bare_postgresql_url_uses_psycopg3() -> None:
    engine = make_engine("postgresql://root@127.0.0.1:5432/test")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_heatmap_round_trip_error_is_within_float16_precision() -> None:
    rng = np.random.default_rng(0)
    heatmap = (rng.random((7, 9)) * 10.0 ** rng.uniform(-6, 4, (7, 9))).astype(np.float32)
    heatmap[0, 0] = 0.0
    data = encode_heatmap(heatmap)
    assert len(data) == 2 * 7 * 9
    decoded = decode_heatmap(data, 7, 9)
    assert decoded.dtype == np.float32 and decoded.shape == (7, 9) and decoded.flags.writeable
    bound = np.maximum(np.abs(heatmap) * 2.0**-11, 2.0**-25)
    assert np.all(np.abs(decoded - heatmap) <= bound)
    assert decoded[0, 0] == 0.0


def test_heatmap_layout_is_little_endian_row_major() -> None:
    data = encode_heatmap(np.array([[1.0, 2.0], [3.0, -0.5]]))
    assert data == np.array([1.0, 2.0, 3.0, -0.5], dtype="<f2").tobytes()
    assert data[:2] == b"\x00\x3c"  # 1.0 in float16, low byte first


def test_heatmap_codec_keeps_non_finite_values_and_refuses_overflow() -> None:
    decoded = decode_heatmap(encode_heatmap(np.array([[np.nan, np.inf]], dtype=np.float32)), 1, 2)
    assert np.isnan(decoded[0, 0]) and np.isposinf(decoded[0, 1])
    with pytest.raises(ValueError, match="exceeds float16's range"):
        encode_heatmap(np.array([[1e6]], dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        encode_heatmap(np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="holds 96 bytes, expected 98"):
        decode_heatmap(b"\x00" * 96, 7, 7)
