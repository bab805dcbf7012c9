"""The state of queue sources, written by the worker and shown on the Health page.

Each consumer of a queue source (a worker process reading it) refreshes its row every few seconds
(:func:`write_queue_status`); :func:`queue_backlog` is the Health page's table: one row per source and
consumer, newest first, with the age of the report so that a row nobody refreshes any more stands out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from sqlalchemy import Engine, func, select

from camwatch.conventions import QUEUE_STATES
from db.models_ops import QueueStatus
from db.session import dialect_insert, write_transaction
from db.types import utcnow


@dataclass(frozen=True)
class QueueReport:
    """One consumer's view of a queue source (the columns of ``queue_status``, see :class:`db.models_ops.QueueStatus`)."""

    source: str
    consumer: str
    worker_id: str
    kind: str
    location: str
    state: str
    lag: int | None
    pending: int | None
    in_flight: int
    max_in_flight: int
    dead_letters: int | None
    received: int
    acknowledged: int
    dead_lettered: int
    duplicates: int
    last_error: str | None = None


def write_queue_status(engine: Engine, report: QueueReport) -> None:
    """Insert or replace the row of ``(report.source, report.consumer)``; ``updated_at`` = now."""
    if report.state not in QUEUE_STATES:
        raise ValueError(f"queue {report.source}: state must be one of {QUEUE_STATES}, got {report.state!r}")
    values = {**asdict(report), "updated_at": utcnow()}
    with write_transaction(engine) as conn:
        stmt = dialect_insert(conn.dialect.name, QueueStatus).values(**values)
        replaced = {k: stmt.excluded[k] for k in values if k not in ("source", "consumer")}
        conn.execute(stmt.on_conflict_do_update(index_elements=["source", "consumer"], set_=replaced))


def queue_backlog(engine: Engine) -> pd.DataFrame:
    """Every queue source's consumers: source, consumer, kind, state, lag, pending, in_flight, max_in_flight,
    dead_letters, received, acknowledged, dead_lettered, duplicates, last_error, worker_id, location,
    updated_at; by source, then newest report first."""
    stmt = (select(QueueStatus.source, QueueStatus.consumer, QueueStatus.kind, QueueStatus.state, QueueStatus.lag,
                   QueueStatus.pending, QueueStatus.in_flight, QueueStatus.max_in_flight, QueueStatus.dead_letters,
                   QueueStatus.received, QueueStatus.acknowledged, QueueStatus.dead_lettered,
                   QueueStatus.duplicates, QueueStatus.last_error, QueueStatus.worker_id, QueueStatus.location,
                   QueueStatus.updated_at)
            .order_by(QueueStatus.source, QueueStatus.updated_at.desc(), QueueStatus.consumer))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def queue_count(engine: Engine) -> int:
    """Number of queue source consumers that ever reported (0: the Health page hides its queue section)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(QueueStatus)).scalar_one())


def backlog_summary(engine: Engine) -> pd.DataFrame:
    """One row per queue source: source, kind, consumers (reporting), backlog (= lag + pending; NULL when the
    lag is unknown), lag, pending, in_flight, dead_letters, updated_at (docs/metrics.md, "Queue backlog").

    Redis reports lag and pending for the whole consumer group: the newest report of the source counts.
    MQTT brokers report no lag; pending is the sum of the consumers' unacknowledged messages.
    """
    frame = queue_backlog(engine)
    rows = []
    for source, group in frame.groupby("source", sort=True):
        newest = group.iloc[0]  # queue_backlog orders each source's reports newest first
        live = group[group["state"] != "stopped"]
        if newest["kind"] == "redis":
            lag, pending = newest["lag"], newest["pending"]
        else:
            lag, pending = None, int(live["pending"].fillna(0).sum())
        known = lag is not None and not pd.isna(lag) and pending is not None and not pd.isna(pending)
        rows.append({"source": source, "kind": newest["kind"], "consumers": len(live),
                     "backlog": int(lag) + int(pending) if known else None,
                     "lag": None if lag is None or pd.isna(lag) else int(lag),
                     "pending": None if pending is None or pd.isna(pending) else int(pending),
                     "in_flight": int(live["in_flight"].sum()),
                     "dead_letters": None if pd.isna(newest["dead_letters"]) else int(newest["dead_letters"]),
                     "updated_at": newest["updated_at"]})
    columns = ["source", "kind", "consumers", "backlog", "lag", "pending", "in_flight", "dead_letters", "updated_at"]
    return pd.DataFrame(rows, columns=columns)
