"""Small writes shared by the worker and the dashboard: model versions, heartbeats (and the recovery of
workers that fell silent), reviews, drift results."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from camwatch.conventions import REVIEW_VERDICTS, WORKER_STATES, WRONG_LABEL, parse_window_kind
from db.limits import column_length, fit
from db.models import DriftResult, ModelVersion, Review
from db.models_ops import WorkerHeartbeat
from db.records import DriftResultRecord
from db.session import dialect_insert, write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)



def model_fingerprint(*, spec: str, weights_sha256: str | None, num_classes: int, class_names: Sequence[str],
                      input_size: Sequence[int], preprocessing: dict[str, Any], target_layer: str,
                      method: str, head: str = "softmax", head_threshold: float | None = None,
                      target_mode: str = "top1") -> str:
    """sha256 (hex) of the canonical JSON (sorted keys, no spaces) of every field that defines a model version.

    Besides spec, weights, preprocessing, target layer and CAM method, the class names and input size
    are included: changing any of them changes what the stored statistics mean. So are the head, its
    threshold and the target mode, but only when they differ from softmax / top-1: model versions
    registered before these fields existed keep their fingerprint.
    """
    fields: dict[str, Any] = {
        "spec": spec, "weights_sha256": weights_sha256, "num_classes": num_classes,
        "class_names": list(class_names), "input_size": list(input_size), "preprocessing": preprocessing,
        "target_layer": target_layer, "method": method}
    if head != "softmax":
        fields["head"] = head
    if head_threshold is not None:
        fields["head_threshold"] = float(head_threshold)
    if target_mode != "top1":
        fields["target_mode"] = target_mode
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def get_or_create_model_version(session: Session, *, spec: str, weights_sha256: str | None, num_classes: int,
                                class_names: Sequence[str], input_size: Sequence[int],
                                preprocessing: dict[str, Any], target_layer: str, method: str,
                                head: str = "softmax", head_threshold: float | None = None,
                                target_mode: str = "top1") -> int:
    """The id of the model version with these fields, created if new (race-safe: insert-or-ignore, then read).
    ``head_threshold`` is kept for sigmoid heads only (it means nothing for the others)."""
    if len(class_names) != num_classes:
        raise ValueError(f"model {spec}: {len(class_names)} class names for num_classes={num_classes}")
    fields: dict[str, Any] = {
        "spec": spec, "weights_sha256": weights_sha256, "num_classes": num_classes,
        "class_names": list(class_names), "input_size": [int(v) for v in input_size],
        "preprocessing": preprocessing, "target_layer": target_layer, "method": method, "head": head,
        "head_threshold": float(head_threshold) if head == "sigmoid" and head_threshold is not None else None,
        "target_mode": target_mode}
    fingerprint = model_fingerprint(**fields)
    dialect = session.get_bind().dialect.name
    created = session.execute(
        dialect_insert(dialect, ModelVersion)
        .values(fingerprint=fingerprint, created_at=utcnow(), **fields)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(ModelVersion.id)
    ).scalar_one_or_none()
    if created is not None:
        log.info("registered model version %d: %s (%s at %s), fingerprint %s", created, spec, method,
                 target_layer, fingerprint[:12])
        return int(created)
    return int(session.execute(select(ModelVersion.id).where(ModelVersion.fingerprint == fingerprint)).scalar_one())


def write_heartbeat(engine: Engine, *, worker_id: str, hostname: str, pid: int, state: str,
                    source: str | None = None, model_version_id: int | None = None, processed: int = 0,
                    errors: int = 0, images_per_s: float | None = None, instance_id: str | None = None) -> None:
    """Insert or refresh ``worker_id``'s heartbeat (``last_seen_at`` = now; ``started_at`` kept from the first).

    ``instance_id`` identifies the process (random per start); its claims carry it in ``images.claimed_by``.
    """
    if state not in WORKER_STATES:
        raise ValueError(f"worker {worker_id}: state must be one of {WORKER_STATES}, got {state!r}")
    now = utcnow()
    with write_transaction(engine) as conn:
        stmt = dialect_insert(conn.dialect.name, WorkerHeartbeat).values(
            worker_id=worker_id, instance_id=instance_id, hostname=hostname, pid=pid, source=source,
            model_version_id=model_version_id, started_at=now, last_seen_at=now, state=state, processed=processed,
            errors=errors, images_per_s=images_per_s)
        refreshed = ("instance_id", "hostname", "pid", "source", "model_version_id", "last_seen_at", "state",
                     "processed", "errors", "images_per_s")
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["worker_id"], set_={name: stmt.excluded[name] for name in refreshed}))


def add_review(session: Session, image_id: int, verdict: str, note: str | None, reviewer: str | None, *,
               label: str | None = None, label_index: int | None = None) -> int:
    """Record a reviewer's verdict on an image; returns the review id. A 'wrong label' verdict needs the
    right ``label`` (and ``label_index`` when it names a model class); other verdicts carry none."""
    if verdict not in REVIEW_VERDICTS:
        raise ValueError(f"image {image_id}: verdict must be one of {REVIEW_VERDICTS}, got {verdict!r}")
    if verdict == WRONG_LABEL and not (label or "").strip():
        raise ValueError(f"image {image_id}: a '{WRONG_LABEL}' verdict needs the right label")
    if verdict != WRONG_LABEL and (label is not None or label_index is not None):
        raise ValueError(f"image {image_id}: only a '{WRONG_LABEL}' verdict carries a label")
    review = Review(image_id=image_id, verdict=verdict, note=note,
                    reviewer=None if reviewer is None else fit(reviewer, column_length(Review.__table__.c.reviewer)),
                    created_at=utcnow(), label=fit(label.strip(), column_length(Review.__table__.c.label))
                    if label else None, label_index=label_index)
    session.add(review)
    session.flush()
    return review.id


def upsert_drift_results(session: Session, rows: Sequence[DriftResultRecord]) -> int:
    """Insert drift results, replacing any earlier result with the same key; returns the number of rows."""
    if not rows:
        return 0
    for row in rows:
        try:
            parse_window_kind(row.window_kind)
        except ValueError as exc:
            raise ValueError(f"drift result for {row.statistic!r}: bad window_kind ({exc})") from None
    now = utcnow()
    values = [{**asdict(row), "computed_at": now, **_decision(row)} for row in rows]
    stmt = dialect_insert(session.get_bind().dialect.name, DriftResult)
    key = ("reference_id", "window_kind", "window_start", "statistic", "class_index", "test", "slice")
    replaced = ("window_end", "score", "threshold", "drifted", "n_reference", "n_current", "computed_at", "decision",
                "decision_rule", "raw_drifted", "p_value", "q_value", "fdr", "effect_size", "effect_threshold")
    session.execute(
        stmt.on_conflict_do_update(index_elements=list(key), set_={c: stmt.excluded[c] for c in replaced}),
        values,
    )
    return len(rows)


def _decision(row: DriftResultRecord) -> dict[str, object]:
    """The decision columns of a result: as given (checked against ``drifted``), or for a result decided by
    its test's threshold alone (``decision`` None) spelled out as rule 'threshold'."""
    if row.decision is None:
        decision = "not_enough_data" if row.score is None else "drifted" if row.drifted else "no_drift"
        return {"decision": decision, "decision_rule": row.decision_rule or "threshold",
                "raw_drifted": row.drifted if row.raw_drifted is None and row.score is not None else row.raw_drifted}
    if row.drifted != (row.decision == "drifted"):
        raise ValueError(f"drift result for {row.statistic!r}: drifted={row.drifted} but decision {row.decision!r}")
    return {"decision_rule": row.decision_rule or "fdr_effect"}


@dataclass(frozen=True)
class HeartbeatState:
    """What recovery needs of a heartbeat row."""

    worker_id: str
    instance_id: str | None
    state: str
    last_seen_at: dt.datetime


def heartbeat_state(engine: Engine, worker_id: str) -> HeartbeatState | None:
    """The heartbeat row of ``worker_id``, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.instance_id, WorkerHeartbeat.state,
                                  WorkerHeartbeat.last_seen_at).where(WorkerHeartbeat.worker_id == worker_id)).first()
    return None if row is None else HeartbeatState(row.worker_id, row.instance_id, row.state, row.last_seen_at)


def silent_workers(engine: Engine, silent_since: dt.datetime) -> list[HeartbeatState]:
    """Workers that did not say they stopped and whose last heartbeat is older than ``silent_since``
    (on any host: instance ids, not pids, name them)."""
    with engine.connect() as conn:
        rows = conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.instance_id, WorkerHeartbeat.state,
                                   WorkerHeartbeat.last_seen_at).where(
            WorkerHeartbeat.state != "stopped", WorkerHeartbeat.last_seen_at < silent_since)).all()
    return [HeartbeatState(r.worker_id, r.instance_id, r.state, r.last_seen_at) for r in rows]


def retire_worker(engine: Engine, worker_id: str, instance_id: str | None, silent_since: dt.datetime) -> bool:
    """Mark the heartbeat of a silent process 'stopped', if it is still that process and still silent;
    True when this call did it (so one recoverer, not every worker, reports it)."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(WorkerHeartbeat)
            .where(WorkerHeartbeat.worker_id == worker_id, WorkerHeartbeat.state != "stopped",
                   WorkerHeartbeat.last_seen_at < silent_since,
                   WorkerHeartbeat.instance_id.is_(None) if instance_id is None
                   else WorkerHeartbeat.instance_id == instance_id)
            .values(state="stopped")
            .returning(WorkerHeartbeat.worker_id)).first()
    return done is not None
