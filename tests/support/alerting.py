"""Planting what each alert rule reads, straight into a migrated database, at times a test controls."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, insert, update

from db.models import DriftResult, Flag, Image, ImageTag, Reference
from db.models_ops import WorkerHeartbeat
from db.session import session_scope, write_transaction
from db.writes import get_or_create_model_version

T0 = dt.datetime(2026, 11, 7, 8, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


@dataclass
class Clock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def model_version(engine: Engine) -> int:
    with session_scope(engine, write=True) as session:
        return get_or_create_model_version(session, spec="tiny", weights_sha256=None, num_classes=3,
                                           class_names=["cat", "dog", "bird"], input_size=[8, 8], preprocessing={},
                                           target_layer="features", method="gradcam")


def add_images(engine: Engine, n: int, captured: dt.datetime, *, flagged: int = 0, errors: int = 0,
               camera: str = "cam-1", source: str = "cams", first_seen: dt.datetime | None = None) -> None:
    """``n`` done images captured at ``captured``: the first ``errors`` failed, the next ``flagged`` flagged."""
    mv = model_version(engine)
    with write_transaction(engine) as conn:
        for k in range(n):
            image_id = next(_ids) + 10_000
            status = "error" if k < errors else "ok"
            conn.execute(insert(Image).values(
                id=image_id, sha256=f"{image_id:064x}", uri=f"/data/{camera}/{image_id}.jpg", source=source,
                size_bytes=1, captured_at=captured, first_seen_at=first_seen or captured, processed_at=captured,
                status=status, attempts=1, model_version_id=mv, tags={"camera": camera}))
            conn.execute(insert(ImageTag).values(image_id=image_id, key="camera", value=camera))
            if status == "ok" and k < errors + flagged:
                conn.execute(insert(Flag).values(image_id=image_id, model_version_id=mv, rule="energy_outside",
                                                  value=0.8, threshold=0.5))


def reference(engine: Engine) -> int:
    mv = model_version(engine)
    with write_transaction(engine) as conn:
        return int(conn.execute(insert(Reference).values(
            name=f"ref-{next(_ids)}", kind="first_n", params={}, model_version_id=mv, method="gradcam",
            built_at=T0, n_images=60).returning(Reference.id)).scalar_one())


def add_drift_window(engine: Engine, ref: int, start: dt.datetime, drifted: bool, *, statistic: str = "energy_outside",
                     slice_name: str = "", score: float | None = None, too_few: bool = False) -> None:
    """A drift result; ``too_few``: the window holds too few images (``not_enough_data``, no score)."""
    with write_transaction(engine) as conn:
        conn.execute(insert(DriftResult).values(
            reference_id=ref, window_kind="day", window_start=start, window_end=start + dt.timedelta(days=1),
            statistic=statistic, class_index=-1, test="ks", slice=slice_name,
            score=None if too_few else score if score is not None else (0.6 if drifted else 0.1), threshold=0.3,
            drifted=drifted and not too_few, n_reference=60, n_current=10 if too_few else 60,
            decision="not_enough_data" if too_few else "drifted" if drifted else "no_drift"))


def beat(engine: Engine, worker_id: str, at: dt.datetime, state: str = "running") -> None:
    with write_transaction(engine) as conn:
        done = conn.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id)
                            .values(last_seen_at=at, state=state)).rowcount
        if not done:
            conn.execute(insert(WorkerHeartbeat).values(worker_id=worker_id, hostname="host-1", pid=1, state=state,
                                                        started_at=at, last_seen_at=at, processed=0, errors=0))


@dataclass
class Scenario:
    """How to make a rule's condition true (``bad``) and false (``good``) at the clock's time, and the
    subject key its alert has."""

    bad: Callable[[Engine, Clock], None]
    good: Callable[[Engine, Clock], None]
    subject: str


_references: dict[str, int] = {}


def _drift(bad: bool) -> Callable[[Engine, Clock], None]:
    def make(engine: Engine, clock: Clock) -> None:
        url = engine.url.render_as_string()
        if url not in _references:
            _references[url] = reference(engine)
        add_drift_window(engine, _references[url], clock.now, bad, slice_name="camera=cam-2")  # the newest window
    return make


def _shares(kind: str, bad: bool) -> Callable[[Engine, Clock], None]:
    def make(engine: Engine, clock: Clock) -> None:
        n = 40
        add_images(engine, n, clock.now, camera="cam-2", flagged=n // 2 if bad and kind == "flagged" else 0,
                   errors=n // 2 if bad and kind == "error" else 0)
    return make


def _silent(bad: bool) -> Callable[[Engine, Clock], None]:
    def make(engine: Engine, clock: Clock) -> None:
        if bad:
            add_images(engine, 1, clock.now - dt.timedelta(hours=3), source="gate")
            return
        add_images(engine, 1, clock.now, source="gate")
    return make


def _heartbeat(bad: bool) -> Callable[[Engine, Clock], None]:
    def make(engine: Engine, clock: Clock) -> None:
        beat(engine, "w-far", clock.now - dt.timedelta(minutes=10) if bad else clock.now)
    return make


SCENARIOS: dict[str, Scenario] = {
    "drift": Scenario(_drift(True), _drift(False), "statistic=energy_outside;slice=camera=cam-2"),
    "flagged_share": Scenario(_shares("flagged", True), _shares("flagged", False), "slice=camera=cam-2"),
    "error_rate": Scenario(_shares("error", True), _shares("error", False), "all"),
    "source_silent": Scenario(_silent(True), _silent(False), "target=source gate"),
    "heartbeat_missing": Scenario(_heartbeat(True), _heartbeat(False), "target=worker w-far"),
}
