"""register_file(s) / known_uris: new, duplicate, known, rewritten files, batches and concurrent scanners."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from db.models import Image, Sighting
from db.records import FileFound, RegisterOutcome
from db.registry import known_uris, register_file, register_files
from db.session import make_engine, session_scope
from tests.support.databases import migrated_engine

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _register(engine: Engine, uri: str, sha: str, *, size: int = 100, mtime_ns: int = 1,
              source: str = "cam") -> RegisterOutcome:
    with session_scope(engine, write=True) as s:
        return register_file(s, uri=uri, sha256=sha, size_bytes=size, mtime_ns=mtime_ns, source=source,
                             captured_at=T0)


def _sightings(engine: Engine) -> list[tuple[str, int, bool]]:
    with session_scope(engine) as s:
        rows = s.execute(select(Sighting.uri, Sighting.image_id, Sighting.is_duplicate).order_by(Sighting.uri))
        return [(uri, image_id, is_duplicate) for uri, image_id, is_duplicate in rows]


def _image_count(engine: Engine) -> int:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(Image)).scalar_one()


def test_new_duplicate_and_known(engine: Engine) -> None:
    assert _register(engine, "/cam/a.jpg", "a" * 64) == RegisterOutcome.NEW
    assert _register(engine, "/cam/copy-of-a.jpg", "a" * 64) == RegisterOutcome.DUPLICATE
    assert _register(engine, "/cam/a.jpg", "a" * 64) == "known"
    assert _register(engine, "/cam/copy-of-a.jpg", "a" * 64) == RegisterOutcome.KNOWN
    with session_scope(engine) as s:
        image = s.execute(select(Image)).scalar_one()
    assert (image.uri, image.status, image.attempts, image.source) == ("/cam/a.jpg", "pending", 0, "cam")
    assert image.captured_at == T0 and image.first_seen_at.tzinfo == dt.UTC
    assert _sightings(engine) == [("/cam/a.jpg", image.id, False), ("/cam/copy-of-a.jpg", image.id, True)]


def test_known_uris_reports_size_and_mtime_per_source_and_follows_touches(engine: Engine) -> None:
    _register(engine, "/cam/a.jpg", "a" * 64, size=10, mtime_ns=111)
    _register(engine, "/other/a.jpg", "a" * 64, size=10, mtime_ns=222, source="other")
    _register(engine, "/cam/b.jpg", "b" * 64, size=20, mtime_ns=333)
    assert _register(engine, "/cam/b.jpg", "b" * 64, size=20, mtime_ns=444) == RegisterOutcome.KNOWN  # touched
    with session_scope(engine) as s:
        assert known_uris(s, "cam") == {"/cam/a.jpg": (10, 111), "/cam/b.jpg": (20, 444)}
        assert known_uris(s, "other") == {"/other/a.jpg": (10, 222)}
        assert known_uris(s, "nowhere") == {}


def test_a_file_rewritten_with_new_bytes_is_re_pointed(engine: Engine) -> None:
    _register(engine, "/cam/a.jpg", "a" * 64)
    _register(engine, "/cam/b.jpg", "b" * 64)
    assert _register(engine, "/cam/a.jpg", "c" * 64, mtime_ns=2) == RegisterOutcome.NEW
    assert _register(engine, "/cam/a.jpg", "b" * 64, mtime_ns=3) == RegisterOutcome.DUPLICATE
    with session_scope(engine) as s:
        ids = {sha: id_ for sha, id_ in s.execute(select(Image.sha256, Image.id))}
    assert _image_count(engine) == 3
    assert _sightings(engine) == [("/cam/a.jpg", ids["b" * 64], True), ("/cam/b.jpg", ids["b" * 64], False)]


def _found(uri: str, sha: str, *, size: int = 100, mtime_ns: int = 1) -> FileFound:
    return FileFound(uri=uri, sha256=sha, size_bytes=size, mtime_ns=mtime_ns, source="cam", captured_at=T0)


def test_a_batch_gives_the_outcomes_of_one_by_one_registration(engine: Engine) -> None:
    """New, duplicate of an earlier file of the same batch, known, touched and rewritten in one call."""
    _register(engine, "/cam/old.jpg", "a" * 64, size=10, mtime_ns=1)
    _register(engine, "/cam/touched.jpg", "b" * 64, size=10, mtime_ns=1)
    _register(engine, "/cam/rewritten.jpg", "c" * 64)
    batch = [
        _found("/cam/new.jpg", "d" * 64),
        _found("/cam/copy-of-new.jpg", "d" * 64),  # same bytes as the file before it
        _found("/cam/copy-of-old.jpg", "a" * 64),  # bytes registered earlier
        _found("/cam/old.jpg", "a" * 64, size=10, mtime_ns=1),  # unchanged
        _found("/cam/touched.jpg", "b" * 64, size=10, mtime_ns=9),  # same bytes, new mtime
        _found("/cam/rewritten.jpg", "e" * 64, mtime_ns=5),  # new bytes under a known uri
    ]
    with session_scope(engine, write=True) as s:
        outcomes = register_files(s, batch)
    assert outcomes == [RegisterOutcome.NEW, RegisterOutcome.DUPLICATE, RegisterOutcome.DUPLICATE,
                        RegisterOutcome.KNOWN, RegisterOutcome.KNOWN, RegisterOutcome.NEW]
    with session_scope(engine) as s:
        ids = {sha: id_ for sha, id_ in s.execute(select(Image.sha256, Image.id))}
        assert known_uris(s, "cam")["/cam/touched.jpg"] == (10, 9)
        new_image = s.execute(select(Image).where(Image.sha256 == "d" * 64)).scalar_one()
    assert new_image.uri == "/cam/new.jpg" and new_image.status == "pending"
    assert sorted(ids) == [c * 64 for c in "abcde"]
    assert dict((uri, (image_id, dup)) for uri, image_id, dup in _sightings(engine)) == {
        "/cam/old.jpg": (ids["a" * 64], False), "/cam/copy-of-old.jpg": (ids["a" * 64], True),
        "/cam/touched.jpg": (ids["b" * 64], False), "/cam/rewritten.jpg": (ids["e" * 64], False),
        "/cam/new.jpg": (ids["d" * 64], False), "/cam/copy-of-new.jpg": (ids["d" * 64], True)}
    with session_scope(engine, write=True) as s:  # the same batch again: nothing changes
        assert register_files(s, batch[:4]) == [RegisterOutcome.KNOWN] * 4
    assert _image_count(engine) == 5


def test_sqlite_registration_requires_a_write_session(tmp_path: Path) -> None:
    with (migrated_engine("sqlite", tmp_path) as engine, session_scope(engine) as s,
          pytest.raises(RuntimeError, match=r"session_scope\(engine, write=True\)")):
        register_file(s, uri="/a.jpg", sha256="a" * 64, size_bytes=1, mtime_ns=1, source="cam", captured_at=T0)


def test_concurrent_scanners_register_each_file_once(engine: Engine) -> None:
    """Two scanners (separate engines) race over the same 40 files, some with shared bytes."""
    files = [(f"/cam/{i:03d}.jpg", f"{i % 30:064x}") for i in range(40)]  # 10 duplicates by content
    url = engine.url.render_as_string(hide_password=False)
    barrier = threading.Barrier(2)
    outcomes: list[list[RegisterOutcome]] = [[], []]
    errors: list[BaseException] = []

    def scan(slot: int) -> None:
        own = make_engine(url)
        try:
            barrier.wait()
            for uri, sha in files[:20]:  # one by one, then in batches of 5
                outcomes[slot].append(_register(own, uri, sha))
            for start in range(20, 40, 5):
                with session_scope(own, write=True) as s:
                    outcomes[slot] += register_files(s, [_found(u, h) for u, h in files[start:start + 5]])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=scan, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    both = outcomes[0] + outcomes[1]
    assert both.count(RegisterOutcome.NEW) == 30
    assert both.count(RegisterOutcome.DUPLICATE) == 10
    assert both.count(RegisterOutcome.KNOWN) == 40
    for first, second in zip(outcomes[0], outcomes[1], strict=True):
        assert RegisterOutcome.KNOWN in (first, second)  # exactly one scanner registered each file
    assert _image_count(engine) == 30
    assert len(_sightings(engine)) == 40
