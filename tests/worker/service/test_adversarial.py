"""The adversarial corpus (tests/support/adversarial.py: over 40 files that real camera folders hold by
accident or by malice) through the worker: nothing escapes, every valid image is ok, every bad one is an
error naming the reason, and nothing from outside the source root reaches the database or the logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, select, text

from camwatch.capture_time import EARLIEST
from camwatch.files import paths_for_uri
from camwatch.settings import load_settings
from db import make_engine
from db.models import Image as ImageRow
from db.models import ImageTag
from tests.support import REPO
from tests.support.adversarial import ENV_SECRET, HOSTILE_TAG, SECRET, Corpus, build_corpus, tamper_after_scan
from tests.support.databases import postgres_schema
from tests.support.models import TINY_SPEC
from worker.service.worker import Worker


@pytest.fixture(scope="module")
def corpus_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def _relative(uri: str, corpus: Corpus) -> str:
    real = paths_for_uri(uri)[-1]  # the name with escaped bytes restored
    return os.path.relpath(real, corpus.root)


def _dump(engine: Engine) -> str:
    """Every value of every table, as text (to look for secrets)."""
    metadata = MetaData()
    metadata.reflect(engine)
    parts: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(parts)


def _rows(engine: Engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(ImageRow.uri, ImageRow.status, ImageRow.error, ImageRow.warnings,
                                        ImageRow.label, ImageRow.captured_at, ImageRow.id)))


def _check(engine: Engine, corpus: Corpus, *, tampered: bool) -> None:
    rows = _rows(engine)
    by_name: dict[str, list] = {}
    for row in rows:
        by_name.setdefault(_relative(row.uri, corpus), []).append(row)
    expected = dict(corpus.expected)
    if not tampered:  # without tampering the files of later/ are plain valid images
        expected.update({name: ("ok", None) for name in expected if name.startswith("later/")})
    assert set(by_name) == set(expected), set(by_name) ^ set(expected)
    for name, (status, reason) in expected.items():
        found = by_name[name]
        if name == "later/rewritten.jpg" and tampered:  # the old content is an error, the new one is processed
            assert sorted(r.status for r in found) == ["error", "ok"], found
            found = [r for r in found if r.status == "error"]
        assert len(found) == 1 and found[0].status == status, (name, found)
        if reason is not None:
            assert reason in found[0].error, (name, found[0].error)
            assert found[0].uri in found[0].error  # the reason names the file
    for name, warning in corpus.warned.items():
        warnings = by_name[name][0].warnings or []
        assert any(warning in w for w in warnings), (name, warnings)
    now = dt.datetime.now(dt.UTC)
    assert all(EARLIEST <= r.captured_at <= now + dt.timedelta(days=1) for r in rows)  # no clock got through
    hostile = by_name["side/hostile.jpg"][0]
    assert hostile.label.endswith("\\x00") and "[re-login](https://evil.example/login)" in hostile.label
    with engine.connect() as conn:
        tags = dict(conn.execute(select(ImageTag.key, ImageTag.value).where(ImageTag.image_id == hostile.id)).all())
        long_tags = conn.execute(select(ImageTag.key).where(
            ImageTag.image_id == by_name["side/long.jpg"][0].id)).scalars().all()
        left = conn.execute(text("SELECT count(*) FROM images WHERE status IN ('pending', 'processing')")).scalar()
    assert tags["camera"] == HOSTILE_TAG  # stored as it is; the dashboard shows it literally
    assert len(long_tags) == 64 and all(len(k) <= 100 and "=" not in k and k for k in long_tags)
    assert left == 0
    dump = _dump(engine)
    assert SECRET not in dump and ENV_SECRET not in dump


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_worker_survives_the_adversarial_corpus(kind: str, corpus_base: Path, caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = corpus_base / kind
    corpus = build_corpus(base)
    assert corpus.files >= 40

    def run(url: str) -> None:
        settings = load_settings(db=url, source=[corpus.root], model=TINY_SPEC, stable_seconds=0, poll_seconds=0.05,
                                 use_events=False, thumbnails="all", batch_size=8)
        worker = Worker(settings)
        caplog.set_level(logging.DEBUG)
        worker.bootstrap()
        while worker.scan() or any(s.waiting for s in worker.sources):
            pass
        tamper_after_scan(corpus)
        assert worker.work(burst=True) is True  # no exception escapes; it returns after the backlog
        engine = make_engine(url)
        try:
            _check(engine, corpus, tampered=True)
        finally:
            engine.dispose()
        assert SECRET not in caplog.text

    if kind == "sqlite":
        run(f"sqlite:///{base / 'cw.db'}")
    else:
        with postgres_schema() as url:
            run(url)


def test_camwatch_run_once_on_the_corpus_leaks_nothing(corpus_base: Path) -> None:
    """As a user runs it: a separate process whose environment holds a secret (/proc/self/environ)."""
    corpus = build_corpus(corpus_base / "cli")
    url = f"sqlite:///{corpus_base / 'cli' / 'cw.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAMWATCH_TEST_SECRET": ENV_SECRET,
           "CAMWATCH_CONFIG": str(corpus_base / "absent.toml")}
    done = subprocess.run([sys.executable, "-m", "worker", "run", "--once", "--source", str(corpus.root), "--db", url,
                           "--model", TINY_SPEC, "--stable-seconds", "0", "--poll-seconds", "0.05", "--thumbnails",
                           "all"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stderr and ENV_SECRET not in done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("uri", "").endswith("env.jpg") for e in events)  # per-image warnings carry the uri
    engine = make_engine(url)
    try:
        _check(engine, corpus, tampered=False)
    finally:
        engine.dispose()
