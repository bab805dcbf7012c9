"""Texts fitted to their columns on every database: a label over 200 characters or a tag key over 100 no
longer makes PostgreSQL refuse the whole batch; NUL characters and lone surrogates are stored escaped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from db import claim_batch, complete_batch, register_file, session_scope
from db.limits import MAX_TAGS, bounded, fit, fit_int64, storable
from db.models import Image, ImageTag
from db.records import ImageResult
from db.types import utcnow
from tests.support.databases import migrated_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def test_fit_and_storable() -> None:
    assert fit("abc", 3) == "abc" and fit("abcd", 3) == "ab…" and len(fit("x" * 500, 200)) == 200
    assert storable("a\x00b") == "a\\x00b" and storable("bad\udcff") == "bad\\udcff" and storable("é") == "é"
    assert fit_int64(2**70) == 2**63 - 1 and fit_int64(-(2**70)) == -(2**63) and fit_int64(5) == 5


def test_bounded_result_says_what_it_changed() -> None:
    tags = {"k" * 150: "v", "a=b": "x", "": "y", **{f"t{i}": "z" * 300 for i in range(100)}}
    out = bounded(ImageResult(image_id=1, status="ok", label="L" * 250 + "\x00", tags=tags, warnings=["w"]))
    assert out.label is not None and len(out.label) == 200 and out.label.endswith("…")
    assert len(out.tags) == MAX_TAGS and all(len(k) <= 100 and "=" not in k and k for k in out.tags)
    assert all(len(v) <= 200 for v in out.tags.values())
    assert out.warnings[0] == "w" and "label cut to 200 characters" in out.warnings
    assert any("escaped" in w for w in out.warnings) and any("renamed" in w for w in out.warnings)


def test_oversized_texts_are_stored_on_every_database(engine: Engine) -> None:
    with session_scope(engine, write=True) as session:
        register_file(session, uri="/s/a.jpg", sha256="a" * 64, size_bytes=1, mtime_ns=1, source="s",
                      captured_at=utcnow())
        register_file(session, uri="/s/b.jpg", sha256="b" * 64, size_bytes=1, mtime_ns=1, source="s",
                      captured_at=utcnow())
    claims = claim_batch(engine, "w", 2, lease_seconds=60)
    results = [ImageResult(image_id=claims[0].id, status="ok", label="L" * 5000 + "\x00",
                           tags={"k" * 500: "v" * 1000, "bad\udcff": "nul\x00"}, warnings=["x" * 2000],
                           captured_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
               ImageResult(image_id=claims[1].id, status="error", error="e\x00" * 3000)]
    assert complete_batch(engine, "w", results) == 2  # one transaction, nothing refused
    with engine.connect() as conn:
        label, warnings = conn.execute(select(Image.label, Image.warnings).where(Image.id == claims[0].id)).one()
        tags = dict(conn.execute(select(ImageTag.key, ImageTag.value)).all())
        error = conn.execute(select(Image.error).where(Image.id == claims[1].id)).scalar_one()
    assert len(label) == 200 and len(warnings[0]) == 500 and "label cut to 200 characters" in warnings
    assert tags == {"k" * 99 + "…": "v" * 199 + "…", "bad\\udcff": "nul\\x00"}
    assert len(error) == 2000 and "\x00" not in error
