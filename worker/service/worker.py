"""The monitoring worker: scan sources, register files, claim batches, process, commit, keep drift current.

rq-style loop: :meth:`Worker.work` with ``burst=True`` drains everything present (waiting for files to
become complete) and returns whether it did any work. The first SIGTERM/SIGINT finishes the current
batch and stops cleanly; a second one exits at once (claims then expire and another run takes them).
Teardown (claims released, heartbeat 'stopped', file watchers closed) happens in ``finally``.

Exactly once: the scanner registers files by content hash (a unique key), each batch is claimed in one
transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``FOR UPDATE SKIP LOCKED``) with a lease, and its
results are committed in one transaction that only writes rows still claimed by this process.

Faults: one image's failure is that image's error (:mod:`worker.service.pipeline`, :mod:`.writer`); a crash
of the process costs no innocent image an attempt (:mod:`db.claims` retries in smaller groups); leases are
renewed and heartbeats written while a batch runs (:mod:`.lease`); silent workers are recovered by
instance id and heartbeat age (:mod:`.recovery`); transient database errors are retried and a persistent
one stops the worker with :class:`~db.faults.DatabaseUnavailable`, its claims released when the database
still answers (:mod:`db.faults`). An unexpected error outside any image ends the leases of the batch in
hand (the attempt counts) instead of handing it back, so a batch that kills the loop is split, not
retried whole forever.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from sqlalchemy import Engine
from tqdm import tqdm

from camwatch.conventions import REFERENCE_SOURCE
from camwatch.settings import Settings
from db import (
    FileFound,
    RegisterOutcome,
    claim_batch,
    expire_claims,
    get_or_create_model_version,
    has_claimable_work,
    known_uris,
    make_engine,
    session_scope,
    upgrade,
    write_heartbeat,
)
from db.faults import DatabaseUnavailable, SqliteFileWatch, guarded
from db.monitoring import ReferenceHandle, ensure_reference
from worker.cam.engine import CamEngine
from worker.runtime import freeze_startup_objects, limit_blas_threads
from worker.service.lease import LeaseKeeper
from worker.service.monitor import recompute_drift
from worker.service.observability import Observability
from worker.service.pipeline import PipelineContext, process_batch
from worker.service.recovery import hand_back_claims, recover_silent_workers, wait_for_predecessor
from worker.service.registration import hash_candidates, register
from worker.service.upkeep import Upkeep
from worker.service.writer import write_results
from worker.sources import QueueSource, Source, open_source, readable_roots
from worker.sources.folder import FileCandidate
from worker.sources.queue.notes import event_annotations
from worker.sources.sidecars import AnnotationConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


def register_engine(db: Engine, cam: CamEngine, target: str) -> int:
    """The model version of ``cam`` (created on first use)."""
    loaded = cam.loaded
    with session_scope(db, write=True) as session:
        return get_or_create_model_version(
            session, spec=loaded.spec, weights_sha256=loaded.weights_sha256, num_classes=loaded.num_classes,
            class_names=loaded.class_names, input_size=list(loaded.preprocessing.size),
            preprocessing=loaded.preprocessing.to_json(), target_layer=cam.target_layer, method=cam.method.key,
            head=loaded.head, head_threshold=loaded.head_threshold, target_mode=target)
SCAN_CHUNK = 200  # files hashed and registered per transaction


class Worker:
    """The monitoring loop. The constructor does no I/O; :meth:`bootstrap` connects, migrates, loads the
    model and registers it; :meth:`work` bootstraps when needed, loops, and tears down in ``finally``."""

    def __init__(self, settings: Settings, *, engine: CamEngine | None = None,
                 shadow_engines: list[CamEngine] | None = None, freeze_gc: bool = False) -> None:
        self.settings = settings
        self._freeze_gc = freeze_gc  # the command's process: startup objects out of GC (worker.runtime)
        self.cam: CamEngine | None = engine
        self._shadow_engines = shadow_engines  # tests: engines of the shadow models (else built from settings)
        self.instance_id = uuid.uuid4().hex  # this process: its claims carry it (recovery, not pids)
        self.worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}-{self.instance_id[:6]}"
        self.sources: list[Source] = []
        self.reference: ReferenceHandle | None = None
        self.processed = self.errors = self.registered = 0
        self._known: dict[str, tuple[int, int]] = {}
        self._bootstrapped = False
        self._stop_requests = 0
        self._batches_since_drift = 0
        self._last_beat = self._last_recovery = 0.0
        self._started = time.monotonic()
        self._claimed = 0  # size of the batch in hand (its claims are released or expired at teardown)
        self._keeper: LeaseKeeper | None = None
        self.upkeep: Upkeep | None = None
        self.observe: Observability | None = None  # alerts and Prometheus metrics

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
        self.db = make_engine(settings.db, busy_timeout_seconds=settings.db_busy_timeout_seconds)
        self._db_watch = SqliteFileWatch(self.db)
        self._with_db(lambda: upgrade(self.db), "upgrading the schema")
        per_model = settings.model_settings()  # shadow mode: the primary first, then the shadow models
        cam = self.cam = self.cam or build_engine(per_model[0])
        loaded = cam.loaded
        shadows = self._shadow_engines if self._shadow_engines is not None else [
            build_engine(s) for s in per_model[1:]]
        self.model_version_id = self._with_db(lambda: register_engine(self.db, cam, settings.target),
                                              "registering the model version")
        shadow_versions = [self._with_db(lambda e=e: register_engine(self.db, e, settings.target),  # type: ignore[misc]
                                         "registering a shadow model version") for e in shadows]
        if len(set([self.model_version_id, *shadow_versions])) != 1 + len(shadow_versions):
            raise ValueError("shadow mode: two of the configured models are the same model version (same spec, "
                             "weights, method and layer); each model must differ")

        def known() -> dict[str, tuple[int, int]]:
            with session_scope(self.db) as session:
                return {k: v for src in self.sources if not isinstance(src, QueueSource)
                        for k, v in known_uris(session, src.name).items()}

        self._known.update(self._with_db(known, "reading the files already registered"))
        for src in self.sources:
            if isinstance(src, QueueSource):  # queue events: registered by the source, acked after commit
                src.attach(self.db, self.worker_id, loaded.class_names)
        self.ctx = PipelineContext(
            engine=cam, model_version_id=self.model_version_id,
            source_roots={s.name: readable_roots(s) for s in self.sources},
            annotations=AnnotationConfig(path_tags=list(settings.path_tags),
                                         roi={k: tuple(v) for k, v in settings.roi.items()},  # type: ignore[misc]
                                         max_sidecar_bytes=settings.max_sidecar_bytes,
                                         max_coco_bytes=settings.max_coco_bytes, max_boxes=settings.max_boxes),
            flags=settings.flags, thumbnails=settings.thumbnails, max_image_bytes=settings.max_image_bytes,
            max_batch_pixels=settings.max_batch_pixels, target=settings.target)
        self.ctx.shadows = [dataclasses.replace(self.ctx, engine=e, model_version_id=v, reference=None)
                            for e, v in zip(shadows, shadow_versions, strict=True)]
        if shadows:
            log.info("shadow mode: primary model version %d, shadow versions %s", self.model_version_id,
                     shadow_versions)
        self._with_db(lambda: wait_for_predecessor(
            self.db, self.worker_id, me=self.instance_id, heartbeat_seconds=settings.heartbeat_seconds,
            dead_after_seconds=settings.dead_after_seconds), "checking the worker id")
        self.upkeep = Upkeep(settings, self.db, self.worker_id)  # accepted thresholds, daily retention
        self.upkeep.tick(self.ctx, force=True)
        self.observe = Observability(settings, self.db, self.worker_id, self.ctx,
                                     [s.name for s in self.sources if not isinstance(s, QueueSource)],
                                     [s.name for s in self.sources if isinstance(s, QueueSource)])
        self._bootstrapped = True
        if self._freeze_gc:
            freeze_startup_objects()
        self._recover(force=True)
        self._keeper = LeaseKeeper(self.db, self.instance_id, lease_seconds=settings.lease_seconds,
                                   interval=min(settings.heartbeat_seconds, settings.lease_seconds / 3),
                                   beat=lambda: self._write_heartbeat("running"))
        self._keeper.start()

    # -- database access --------------------------------------------------------------------------
    def _with_db(self, fn: Callable[[], T], what: str) -> T:
        return guarded(fn, what=what, budget_seconds=self.settings.db_retry_seconds)

    def _recover(self, *, force: bool = False) -> None:
        """End the claims of silent workers (every heartbeat interval)."""
        now = time.monotonic()
        if not force and now - self._last_recovery < self.settings.heartbeat_seconds:
            return
        self._last_recovery = now
        self._db_watch.check()
        self._with_db(lambda: recover_silent_workers(self.db, me=self.instance_id,
                                                     dead_after_seconds=self.settings.dead_after_seconds),
                      "recovering silent workers")

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
            if isinstance(src, QueueSource):
                new += src.pump()  # acknowledge settled events, then receive and register new ones
                continue
            candidates = [c for c in src.poll() if self._known.get(c.uri) != (c.size_bytes, c.mtime_ns)]
            for start in range(0, len(candidates), SCAN_CHUNK):
                new += self._register(src, candidates[start:start + SCAN_CHUNK])
        self.registered += new
        return new

    def _register(self, src: Source, candidates: list[FileCandidate]) -> int:
        """Hash a chunk of candidates and register them in one transaction; returns the number of new images."""
        return self._register_found(hash_candidates(candidates, src.root, src.name, self.settings.max_image_bytes))

    def _register_found(self, found: list[FileFound]) -> int:
        self._db_watch.check()
        outcomes = register(self.db, found, retry_seconds=self.settings.db_retry_seconds)
        for f in found:
            self._known[f.uri] = (f.size_bytes, f.mtime_ns)
        return sum(outcome is RegisterOutcome.NEW for outcome in outcomes)

    def process_once(self) -> int:
        """Claim, process and commit one batch; returns the number of images written."""
        settings = self.settings
        self._db_watch.check()
        claims = self._with_db(lambda: claim_batch(
            self.db, self.instance_id, settings.batch_size, settings.lease_seconds, settings.max_attempts,
            sources=[s.name for s in self.sources]), "claiming a batch")
        if not claims:
            return 0
        assert self._keeper is not None
        self._claimed = len(claims)
        self._keeper.hold([c.id for c in claims])
        try:
            self.ctx.event_annotations = event_annotations(self.db, [c.id for c in claims])
            outcome = process_batch(claims, self.ctx)
            self._db_watch.check()
            began = time.perf_counter()
            written = write_results(self.db, self.instance_id, outcome.results, claims,
                                    retry_seconds=settings.db_retry_seconds)
            if self.observe is not None:
                self.observe.batch(outcome.results, time.perf_counter() - began)
        except (DatabaseUnavailable, SystemExit, KeyboardInterrupt):
            raise
        except Exception:  # outside any one image: split the batch (attempt counted) rather than loop on it
            log.exception("batch of %d failed outside any single image; its leases end so that it is retried "
                          "in smaller groups", len(claims))
            self._with_db(lambda: expire_claims(self.db, self.instance_id), "ending the batch's leases")
            self._claimed = 0
            return 0
        finally:
            self._keeper.release()
        self._claimed = 0
        self._register_found(outcome.changed)
        self.processed += sum(1 for r in outcome.results if r.status == "ok")
        self.errors += sum(1 for r in outcome.results if r.status == "error")
        self._batches_since_drift += 1
        return written

    def update_monitoring(self, *, force: bool = False) -> None:
        """Build/refresh the reference and recompute drift for the windows touched since the last time."""
        if not force and self._batches_since_drift < self.settings.drift.every_batches:
            return
        assert self.cam is not None
        self._batches_since_drift = 0
        try:
            written = 0
            for ctx in (self.ctx, *self.ctx.shadows):  # a reference and drift per model version
                handle = self._with_db(lambda c=ctx: ensure_reference(  # type: ignore[misc]
                    self.db, self.settings.reference, c.model_version_id, c.engine.method.key),
                    "building the reference")
                if handle is None:  # warm-up: this version's reference is not complete yet, so no drift
                    continue
                if ctx is self.ctx:
                    self.reference = handle
                ctx.reference = handle.summary
                written += self._with_db(lambda c=ctx, h=handle: recompute_drift(  # type: ignore[misc]
                    self.db, self.settings, h, c.model_version_id, by_results=c is not self.ctx),
                    "recomputing drift")
            log.info("drift updated: %d results", written)
            if self.observe is not None:
                self.observe.tick(force=True)  # alerts right after the drift they read
        except DatabaseUnavailable:
            raise
        except Exception:  # monitoring is kept current at the next pass; the images go on
            log.exception("drift update failed; the worker goes on and tries again after %d batches",
                          self.settings.drift.every_batches)

    def _write_heartbeat(self, state: str) -> None:
        rate = self.processed / max(time.monotonic() - self._started, 1e-6)
        write_heartbeat(self.db, worker_id=self.worker_id, instance_id=self.instance_id,
                        hostname=socket.gethostname(), pid=os.getpid(), state=state,
                        source=",".join(s.name if isinstance(s, QueueSource) else str(s.root)
                                        for s in self.sources)[:200],
                        model_version_id=self.model_version_id, processed=self.processed, errors=self.errors,
                        images_per_s=rate)

    def heartbeat(self, state: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < self.settings.heartbeat_seconds:
            return
        self._last_beat = now
        self._with_db(lambda: self._write_heartbeat(state), "writing the heartbeat")

    # -- loop -------------------------------------------------------------------------------------
    def work(self, burst: bool = False) -> bool:
        """Run until stopped (or, with ``burst``, until nothing is left); returns whether any image was done."""
        did_work = False
        clean = True
        bar = tqdm(unit="img", desc="camwatch", disable=not sys.stderr.isatty(), dynamic_ncols=True)
        try:
            self.bootstrap()
            names = [s.name for s in self.sources]
            self.heartbeat("starting", force=True)
            while not self.stopping:
                self._recover()
                self.scan()
                if self.upkeep is not None:
                    self.upkeep.tick(self.ctx)
                if self.observe is not None:
                    self.observe.tick()
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
                if burst and not any(s.waiting for s in self.sources) and not self._with_db(
                        lambda: has_claimable_work(self.db, names), "looking for work"):
                    break
                time.sleep(self.settings.poll_seconds)
            if did_work and self._batches_since_drift:
                self.update_monitoring(force=True)
        except DatabaseUnavailable as exc:
            log.error("stopping: %s", exc)
            raise
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            clean = False
            raise
        finally:
            bar.close()
            self.close(clean=clean)
        log.info("worker %s stopped: %d images ok, %d errors, %d registered", self.worker_id, self.processed,
                 self.errors, self.registered)
        return did_work

    def close(self, *, clean: bool = True) -> None:
        """Teardown: the retention thread and the lease keeper stopped, claims released (``clean``) or their leases ended so that they
        are retried in smaller groups (after an unexpected error), heartbeat 'stopped', watchers closed.
        When the database does not answer, the claims are left to lease expiry and recovery (logged)."""
        try:
            if self.upkeep is not None:
                self.upkeep.stop()
            if self.observe is not None:
                self.observe.close()
                self.observe = None
            if self._keeper is not None:
                self._keeper.stop()
                self._keeper = None
            if self._bootstrapped:
                settings = self.settings
                hand_back_claims(self.db, self.instance_id, clean=clean, solo=self._claimed == 1,
                                 watch=self._db_watch, last_beat=lambda: self._write_heartbeat("stopped"),
                                 lease_seconds=settings.lease_seconds, dead_after_seconds=settings.dead_after_seconds)
        finally:
            for src in self.sources:
                src.close()
