"""Registration of the files a source found: hashed confined to the source root (size-capped), then
registered by content hash in one transaction per chunk (:func:`db.registry.register_files`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from camwatch.capture_time import registration_time
from camwatch.files import UnsafeFile, hash_confined
from db import FileFound, RegisterOutcome, register_files, session_scope
from db.faults import guarded
from db.types import utcnow
from worker.sources.folder import FileCandidate

log = logging.getLogger(__name__)


def hash_candidates(candidates: Sequence[FileCandidate], root: Path, source: str,
                    max_bytes: int) -> list[FileFound]:
    """The candidates that could be hashed (a file outside the root, not regular, too large or gone is
    logged and left out), with their registration capture time (the mtime when plausible)."""
    found: list[FileFound] = []
    now = utcnow()
    for cand in candidates:
        try:
            digest, size = hash_confined(cand.path, root, max_bytes=max_bytes)
        except UnsafeFile as exc:
            log.warning("not registered: %s", exc, extra={"uri": cand.uri})
            continue
        found.append(FileFound(uri=cand.uri, sha256=digest, size_bytes=size, mtime_ns=cand.mtime_ns,
                               source=source, captured_at=registration_time(cand.mtime_ns, now)))
    return found


def register(engine: Engine, found: Sequence[FileFound], *, retry_seconds: float) -> list[RegisterOutcome]:
    """Register ``found`` in one transaction (transient database errors retried); one outcome per file."""
    if not found:
        return []

    def run() -> list[RegisterOutcome]:
        with session_scope(engine, write=True) as session:
            return register_files(session, list(found))

    outcomes = guarded(run, what="registering files", budget_seconds=retry_seconds)
    for f, outcome in zip(found, outcomes, strict=True):
        if outcome is RegisterOutcome.DUPLICATE:
            log.info("duplicate bytes, recorded as a sighting: %s", f.uri, extra={"uri": f.uri})
    return outcomes
