"""What the worker tells the outside world besides its results: alerts (:mod:`.alerting`) and the
Prometheus metrics (:mod:`.metrics`, only with ``metrics_port``), bundled so the loop calls one object."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from camwatch.settings import Settings
from db.faults import DatabaseUnavailable
from db.records import ImageResult
from worker.service.alerting import AlertService
from worker.service.metrics import WorkerMetrics
from worker.service.pipeline import PipelineContext

log = logging.getLogger(__name__)


class Observability:
    def __init__(self, settings: Settings, engine: Engine, runner: str, ctx: PipelineContext,
                 folders: Sequence[str], queues: Sequence[str]) -> None:
        self.engine = engine
        self.folders, self.queues = list(folders), list(queues)
        self.metrics: WorkerMetrics | None = None
        self.metrics_port: int | None = None
        if settings.metrics_port is not None:
            self.metrics = WorkerMetrics(settings)
            loaded = ctx.engine.loaded
            self.metrics.model(model=loaded.spec, method=ctx.engine.method.key,
                               target_layer=str(ctx.engine.target_layer), head=str(loaded.head),
                               model_version_id=str(ctx.model_version_id))
            ctx.observer = self.metrics
            self.metrics_port = self.metrics.serve(settings.metrics_host, settings.metrics_port)
        m = self.metrics
        self.model_version_id = ctx.model_version_id  # the primary model's drift is what alerts and gauges read
        self.alerts = AlertService(settings, engine, runner, model_version_id=ctx.model_version_id,
                                   on_result=m.notified if m else lambda _k, _o: None,
                                   on_firing=m.set_firing if m else lambda _c: None)

    def tick(self, *, force: bool = False) -> None:
        """Alerts when due (or ``force``: after a drift pass) and the metrics' database gauges."""
        self.alerts.tick(force=force)
        if self.metrics is not None:
            try:
                self.metrics.refresh(self.engine, self.folders, self.queues, force=force,
                                     model_version_id=self.model_version_id)
            except DatabaseUnavailable:
                raise
            except Exception:  # a gauge left stale must not stop the monitoring
                log.exception("refreshing the metrics' gauges failed; retried at the next tick")

    def batch(self, results: Sequence[ImageResult], write_seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.batch(results, write_seconds)

    def close(self) -> None:
        self.alerts.close()
        if self.metrics is not None:
            self.metrics.close()
