"""The monitoring worker: scan sources, register files, claim batches, process, commit, keep drift current.

rq-style loop: :meth:`Worker.work` with ``burst=True`` drains everything present (waiting for files to
become complete) and returns whether it did any work. The first SIGTERM/SIGINT finishes the current
batch and stops cleanly; a second one exits at once (claims then expire and another run takes them).
Teardown (claims released, heartbeat 'stopped', file watchers closed) happens in ``finally``.

Exactly once: the scanner registers files by content hash (a unique key), each batch is claimed in one
transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``FOR UPDATE SKIP LOCKED``) with a lease, and its
results are committed in one transaction that only writes rows still claimed by this worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sys
import time
import uuid
from types import FrameType

from tqdm import tqdm

from camwatch.conventions import REFERENCE_SOURCE
from camwatch.settings import Settings
from db import (
    FileFound,
    RegisterOutcome,
    claim_batch,
    complete_batch,
    expire_claims,
    get_or_create_model_version,
    has_claimable_work,
    known_uris,
    make_engine,
    register_files,
    release_claims,
    running_workers,
    session_scope,
    upgrade,
    write_heartbeat,
)
from db.monitoring import ReferenceHandle, ensure_reference
from db.types import utcnow
from worker.cam.engine import CamEngine
from worker.runtime import limit_blas_threads
from worker.service.monitor import recompute_drift
from worker.service.pipeline import PipelineContext, process_batch
from worker.sources import Source, open_source
from worker.sources.folder import FileCandidate, sha256_file
from worker.sources.sidecars import AnnotationConfig

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
SCAN_CHUNK = 200  # files hashed and registered per transaction


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    """The monitoring loop. The constructor does no I/O; :meth:`bootstrap` connects, migrates, loads the
    model and registers it; :meth:`work` bootstraps when needed, loops, and tears down in ``finally``."""

    def __init__(self, settings: Settings, *, engine: CamEngine | None = None) -> None:
        self.settings = settings
        self.cam: CamEngine | None = engine
        self.worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.sources: list[Source] = []
        self.reference: ReferenceHandle | None = None
        self.processed = self.errors = self.registered = 0
        self._known: dict[str, tuple[int, int]] = {}
        self._bootstrapped = False
        self._stop_requests = 0
        self._batches_since_drift = 0
        self._last_drift: dt.datetime | None = None
        self._last_beat = 0.0
        self._started = time.monotonic()

    def bootstrap(self) -> None:
        """Connect and migrate the database, load the model, register the model version, open the
        sources and release the claims of dead local workers. Idempotent."""
        if self._bootstrapped:
            return
        from worker.cam.factory import build_engine

        settings = self.settings
        limit_blas_threads()  # also when numpy was imported before the worker package
        locations: list[tuple[str, str | None]] = [(str(p), None) for p in settings.source]
        if settings.reference.kind == "folder" and settings.reference.folder is not None:
            locations.append((str(settings.reference.folder), REFERENCE_SOURCE))
        for location, name in locations:
            self.sources.append(open_source(location, name=name, settings=settings))
        self.db = make_engine(settings.db)
        upgrade(self.db)
        cam = self.cam = self.cam or build_engine(settings)
        loaded = cam.loaded
        with session_scope(self.db, write=True) as session:
            self.model_version_id = get_or_create_model_version(
                session, spec=loaded.spec, weights_sha256=loaded.weights_sha256, num_classes=loaded.num_classes,
                class_names=loaded.class_names, input_size=list(loaded.preprocessing.size),
                preprocessing=loaded.preprocessing.to_json(), target_layer=cam.target_layer,
                method=cam.method.key, head=loaded.head, head_threshold=loaded.head_threshold,
                target_mode=settings.target)
        with session_scope(self.db) as session:
            for src in self.sources:
                self._known.update(known_uris(session, src.name))
        self.ctx = PipelineContext(
            engine=cam, model_version_id=self.model_version_id,
            source_roots={s.name: s.root for s in self.sources},
            annotations=AnnotationConfig(path_tags=list(settings.path_tags),
                                         roi={k: tuple(v) for k, v in settings.roi.items()}),  # type: ignore[misc]
            flags=settings.flags, thumbnails=settings.thumbnails, target=settings.target)
        self._recover_dead_local_workers()
        self._bootstrapped = True

    def _recover_dead_local_workers(self) -> None:
        """Release claims of workers on this host whose process is gone (killed), without waiting for leases."""
        host = socket.gethostname()
        for worker_id, pid in running_workers(self.db, host):
            if pid == os.getpid() or _alive(pid):
                continue
            released = expire_claims(self.db, worker_id)
            write_heartbeat(self.db, worker_id=worker_id, hostname=host, pid=pid, state="stopped")
            log.warning("worker %s (pid %d) is gone; %d of its claims expired for retry", worker_id, pid, released)

    # -- signals ----------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requests += 1
        if self._stop_requests == 1:
            log.info("signal %s: finishing the current batch, then stopping (again to exit now)", signum)
            return
        log.warning("second signal %s: exiting now; claimed images will be retried after their lease", signum)
        raise SystemExit(1)

    def request_stop(self) -> None:
        self._stop_requests += 1

    @property
    def stopping(self) -> bool:
        return self._stop_requests > 0

    # -- steps ------------------------------------------------------------------------------------
    def scan(self) -> int:
        """Register newly complete files; returns the number of new images."""
        new = 0
        for src in self.sources:
            candidates = [c for c in src.poll() if self._known.get(c.uri) != (c.size_bytes, c.mtime_ns)]
            for start in range(0, len(candidates), SCAN_CHUNK):
                new += self._register(src, candidates[start:start + SCAN_CHUNK])
        self.registered += new
        return new

    def _register(self, src: Source, candidates: list[FileCandidate]) -> int:
        """Hash a chunk of candidates and register them in one transaction; returns the number of new images."""
        found: list[tuple[FileCandidate, FileFound]] = []
        for cand in candidates:
            try:
                digest = sha256_file(cand.path)
            except OSError as exc:
                log.warning("cannot hash %s (%s); it will be retried at the next scan", cand.uri, exc)
                continue
            found.append((cand, FileFound(uri=cand.uri, sha256=digest, size_bytes=cand.size_bytes,
                                          mtime_ns=cand.mtime_ns, source=src.name,
                                          captured_at=dt.datetime.fromtimestamp(cand.mtime_ns / 1e9, dt.UTC))))
        if not found:
            return 0
        with session_scope(self.db, write=True) as session:
            outcomes = register_files(session, [f for _, f in found])
        new = 0
        for (cand, _), outcome in zip(found, outcomes, strict=True):
            self._known[cand.uri] = (cand.size_bytes, cand.mtime_ns)
            if outcome is RegisterOutcome.DUPLICATE:
                log.info("duplicate bytes, recorded as a sighting: %s", cand.uri, extra={"uri": cand.uri})
            new += outcome is RegisterOutcome.NEW
        return new

    def process_once(self) -> int:
        """Claim, process and commit one batch; returns the number of images written."""
        claims = claim_batch(self.db, self.worker_id, self.settings.batch_size, self.settings.lease_seconds,
                             self.settings.max_attempts)
        if not claims:
            return 0
        results = process_batch(claims, self.ctx)
        written = complete_batch(self.db, self.worker_id, results)
        self.processed += sum(1 for r in results if r.status == "ok")
        self.errors += sum(1 for r in results if r.status == "error")
        self._batches_since_drift += 1
        return written

    def update_monitoring(self, *, force: bool = False) -> None:
        """Build/refresh the reference and recompute drift for the windows touched since the last time."""
        if not force and self._batches_since_drift < self.settings.drift.every_batches:
            return
        started = utcnow()
        assert self.cam is not None
        handle = ensure_reference(self.db, self.settings.reference, self.model_version_id, self.cam.method.key)
        if handle is not None:
            self.reference = handle
            self.ctx.reference = handle.summary
            written = recompute_drift(self.db, self.settings, handle, self.model_version_id, since=self._last_drift)
            log.info("drift updated: %d results", written)
            self._last_drift = started
        self._batches_since_drift = 0

    def heartbeat(self, state: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_SECONDS:
            return
        self._last_beat = now
        rate = self.processed / max(now - self._started, 1e-6)
        write_heartbeat(self.db, worker_id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
                        state=state, source=",".join(str(s.root) for s in self.sources),
                        model_version_id=self.model_version_id, processed=self.processed, errors=self.errors,
                        images_per_s=rate)

    # -- loop -------------------------------------------------------------------------------------
    def work(self, burst: bool = False) -> bool:
        """Run until stopped (or, with ``burst``, until nothing is left); returns whether any image was done."""
        did_work = False
        bar = tqdm(unit="img", desc="camwatch", disable=not sys.stderr.isatty(), dynamic_ncols=True)
        try:
            self.bootstrap()
            self.heartbeat("starting", force=True)
            while not self.stopping:
                self.scan()
                written = self.process_once()
                if written:
                    did_work = True
                    bar.update(written)
                    self.update_monitoring()
                    self.heartbeat("running")
                    continue
                if did_work and self._batches_since_drift:
                    self.update_monitoring(force=True)
                self.heartbeat("running")
                if burst and not any(s.waiting for s in self.sources) and not has_claimable_work(self.db):
                    break
                time.sleep(self.settings.poll_seconds)
            if did_work and self._batches_since_drift:
                self.update_monitoring(force=True)
        finally:
            bar.close()
            self.close()
        log.info("worker %s stopped: %d images ok, %d errors, %d registered", self.worker_id, self.processed,
                 self.errors, self.registered)
        return did_work

    def close(self) -> None:
        """Teardown: claims released, heartbeat 'stopped' (when bootstrapped), file watchers closed."""
        try:
            if self._bootstrapped:
                released = release_claims(self.db, self.worker_id)
                if released:
                    log.info("released %d claimed images", released)
                self.heartbeat("stopped", force=True)
        finally:
            for src in self.sources:
                src.close()
