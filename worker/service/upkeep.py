"""The worker's periodic upkeep, besides drift: thresholds accepted from reviews, and daily retention.

- **Thresholds.** An admin accepts a flag threshold suggested by reviews on the dashboard
  (``threshold_overrides``); :meth:`Upkeep.tick` applies the accepted values over the settings' ``[flags]``
  (:func:`camwatch.monitoring.review.apply_overrides`) at most every :data:`CHECK_SECONDS`, so new images are
  flagged with them within a minute. Already flagged images keep their flags.
- **Retention.** With ``[retention] older_than_days`` set, :meth:`Upkeep.tick` starts :func:`db.prune.prune`
  in a background thread once the last run finished ``every_hours`` ago (``maintenance_runs``: one worker
  of several takes it). The thread deletes in small transactions with pauses, so the loop keeps claiming
  and committing batches meanwhile; :meth:`Upkeep.stop` ends it between two transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from sqlalchemy.engine import Engine

from camwatch.monitoring.flags import FlagConfig
from camwatch.monitoring.review import apply_overrides
from camwatch.settings import Settings
from db.prune import PruneOptions, prune, try_begin
from db.reviews import threshold_overrides
from worker.service.pipeline import PipelineContext

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0


class Upkeep:
    """Constructed without I/O; :meth:`tick` from the worker's loop; :meth:`stop` at teardown."""

    def __init__(self, settings: Settings, engine: Engine, worker_id: str) -> None:
        self.settings = settings
        self.engine = engine
        self.worker_id = worker_id
        self.applied: dict[str, float] = {}
        self._last_check = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flag_config(self) -> FlagConfig:
        """The settings' flag configuration with the accepted thresholds applied (reads the database)."""
        overrides = {o.setting: o.value for o in threshold_overrides(self.engine).values()}
        if overrides != self.applied:
            log.info("flag thresholds accepted from reviews: %s", overrides or "none (settings apply)")
            self.applied = overrides
        return apply_overrides(self.settings.flags, overrides)

    def tick(self, ctx: PipelineContext, *, force: bool = False) -> None:
        """Refresh the thresholds and start a due retention run (at most every :data:`CHECK_SECONDS`)."""
        now = time.monotonic()
        if not force and now - self._last_check < CHECK_SECONDS:
            return
        self._last_check = now
        ctx.flags = self.flag_config()
        for shadow in ctx.shadows:  # shadow mode: the same thresholds for every model
            shadow.flags = ctx.flags
        self._maybe_prune()

    def _maybe_prune(self) -> None:
        retention = self.settings.retention
        if retention.older_than_days is None or (self._thread is not None and self._thread.is_alive()):
            return
        if not try_begin(self.engine, self.worker_id, dt.timedelta(hours=retention.every_hours)):
            return
        options = PruneOptions(older_than=dt.timedelta(days=retention.older_than_days),
                               keep_flagged=retention.keep_flagged, keep_reviewed=retention.keep_reviewed,
                               batch_size=retention.batch_size, pause_seconds=retention.pause_seconds)
        self._thread = threading.Thread(target=self._prune, args=(options,), name="camwatch-prune", daemon=True)
        self._thread.start()

    def _prune(self, options: PruneOptions) -> None:
        try:
            prune(self.engine, options, runner=self.worker_id, stop=self._stop.is_set)
        except Exception:  # logged with its traceback; the loop goes on and the next run retries
            log.exception("retention run failed; it is retried after %.0f h", self.settings.retention.every_hours)

    @property
    def pruning(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask a running retention thread to stop after its current transaction, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("retention thread still running after %.0f s; it stops at its next transaction",
                            timeout)
