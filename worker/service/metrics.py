"""The worker's Prometheus metrics (``worker run --metrics-port``), on their own
:class:`~prometheus_client.CollectorRegistry` (not the process-global default). docs/metrics.md defines each.

Counters and histograms are updated as images go through (:class:`WorkerMetrics` is the pipeline's
:class:`~worker.service.pipeline.StageObserver`); gauges read from the database (backlog, last image, drift,
alerts firing) are refreshed by :meth:`WorkerMetrics.refresh` from the worker's loop, never from the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import Engine

from camwatch import __version__
from camwatch.settings import Settings
from db.alert_facts import claimable_count, drift_gauges, last_image_time
from db.alerts import firing_counts
from db.queue_status import backlog_summary
from db.records import ImageResult

log = logging.getLogger(__name__)

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REFRESH_SECONDS = 5.0


class WorkerMetrics:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        r = self.registry = CollectorRegistry()
        self.processed = Counter("camwatch_images_processed", "Images processed, by result status (ok, error)",
                                 ["status"], registry=r)
        self.flagged = Counter("camwatch_images_flagged", "Images processed ok with at least one flag", registry=r)
        self.errors = Counter("camwatch_errors", "Images that failed, by the stage that failed (reason class)",
                              ["reason"], registry=r)
        self.stage = Histogram("camwatch_stage_duration_seconds", "Seconds spent per pipeline stage (read, decode, "
                               "sidecar, statistics: per image; model: per pass over a chunk; write: per batch)",
                               ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.backlog = Gauge("camwatch_backlog_images", "Images waiting: claimable images of a folder source, "
                             "lag + pending of a queue source", ["source"], registry=r)
        self.last_image = Gauge("camwatch_last_image_timestamp_seconds",
                                "Unix time the newest image was processed (any worker)", registry=r)
        self.drift_score = Gauge("camwatch_drift_score", "Newest window's drift strength of a statistic: its "
                                 "tests' largest score over threshold, up is worse (1 = the threshold)", ["statistic", "slice"],
                                 registry=r)
        self.drift_state = Gauge("camwatch_drift_state", "Newest window's stored drift decision (1 drifted, 0 not)",
                                 ["statistic", "slice"], registry=r)
        self.alerts_firing = Gauge("camwatch_alerts_firing", "Alerts firing, by rule", ["rule"], registry=r)
        self.notifications = Counter("camwatch_notifications", "Notification attempts, by receiver and result",
                                     ["notifier", "result"], registry=r)
        self.build_info = Gauge("camwatch_build_info", "camwatch version (value 1)", ["version"], registry=r)
        self.model_info = Gauge("camwatch_model_info", "The model this worker runs (value 1)",
                                ["model", "method", "target_layer", "head", "model_version_id"], registry=r)
        self.build_info.labels(version=__version__).set(1)
        for status in ("ok", "error"):
            self.processed.labels(status=status)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._last_refresh = -float("inf")

    # -- pipeline observer ------------------------------------------------------------------------
    def stage_seconds(self, stage: str, seconds: float) -> None:
        self.stage.labels(stage=stage).observe(seconds)

    def stage_error(self, stage: str) -> None:
        self.errors.labels(reason=stage).inc()

    def batch(self, results: Sequence[ImageResult], write_seconds: float) -> None:
        for status in ("ok", "error"):
            n = sum(1 for r in results if r.status == status)
            if n:
                self.processed.labels(status=status).inc(n)
        self.flagged.inc(sum(1 for r in results if r.status == "ok" and r.flags))
        self.stage.labels(stage="write").observe(write_seconds)

    def notified(self, notifier: str, ok: bool) -> None:
        self.notifications.labels(notifier=notifier, result="sent" if ok else "failed").inc()

    def model(self, **labels: str) -> None:
        self.model_info.labels(**labels).set(1)

    # -- database gauges --------------------------------------------------------------------------
    def refresh(self, engine: Engine, folders: Sequence[str], queues: Sequence[str], *, force: bool = False,
                model_version_id: int | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_refresh < REFRESH_SECONDS:
            return
        self._last_refresh = now
        for name in folders:
            self.backlog.labels(source=name).set(claimable_count(engine, [name]))
        if queues:
            summary = backlog_summary(engine)
            for row in summary.itertuples():
                if row.source in queues and row.backlog is not None and row.backlog == row.backlog:
                    self.backlog.labels(source=row.source).set(float(row.backlog))
        last = last_image_time(engine)
        if last is not None:
            self.last_image.set(last.timestamp())
        gauges = drift_gauges(engine, self.settings.drift.window_label, slices=self.settings.metrics_slices,
                              model_version_id=model_version_id)
        self.drift_score.clear()
        self.drift_state.clear()
        for g in gauges:
            name = g.slice or "all"
            self.drift_score.labels(statistic=g.statistic, slice=name).set(g.strength)
            self.drift_state.labels(statistic=g.statistic, slice=name).set(1 if g.drifted else 0)
        self.set_firing(firing_counts(engine))

    def set_firing(self, counts: dict[str, int]) -> None:
        from camwatch.alerts.rules import RULES

        for rule in RULES:
            self.alerts_firing.labels(rule=rule).set(counts.get(rule, 0))

    # -- server -----------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns the port (0 picks a free one)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
