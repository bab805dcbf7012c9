"""The audit trail of dashboard changes: who reviewed an image or changed the reference, from where, when.

A change and its audit event are written in one transaction, so there is never one without the other.
``actor`` is who the dashboard's login says the user is (not the reviewer name typed in the form, which
anyone can type): an OIDC identity, :data:`~camwatch.conventions.PASSWORD_ACTOR` for the shared
password, or :data:`~camwatch.conventions.LOCAL_ACTOR` without a login; ``client`` is the address the
request came from, when the dashboard knows it. Texts are fitted to their columns (:mod:`db.limits`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from camwatch.conventions import AUDIT_ACTIONS
from db.limits import column_length, fit
from db.models import Reference, ReferenceMember, Review
from db.models_ops import AuditEvent
from db.session import dialect_insert, write_transaction
from db.types import utcnow

_ACTOR_CHARS = column_length(AuditEvent.__table__.c.actor)
_CLIENT_CHARS = column_length(AuditEvent.__table__.c.client)
_REVIEWER_CHARS = column_length(Review.__table__.c.reviewer)


def record_event(conn: Connection, *, actor: str, client: str | None, action: str, image_id: int | None = None,
                 reference_id: int | None = None, details: dict[str, Any] | None = None) -> None:
    """Insert one audit event (inside the caller's transaction)."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {sorted(AUDIT_ACTIONS)}")
    conn.execute(insert(AuditEvent).values(
        at=utcnow(), actor=fit(actor or "unknown", _ACTOR_CHARS),
        client=None if client is None else fit(client, _CLIENT_CHARS), action=action, image_id=image_id,
        reference_id=reference_id, details=details))


def add_to_reference(engine: Engine, reference_id: int, image_id: int, *, actor: str, client: str | None) -> bool:
    """Add an image to a reference's members, with its audit event; False when it was a member already
    (nothing recorded). The reference's statistics are rebuilt by the worker, not here."""
    with write_transaction(engine) as conn:
        name = conn.execute(select(Reference.name).where(Reference.id == reference_id)).scalar_one_or_none()
        if name is None:
            raise ValueError(f"reference {reference_id} does not exist")
        inserted = conn.execute(dialect_insert(conn.dialect.name, ReferenceMember)
                                .values(reference_id=reference_id, image_id=image_id)
                                .on_conflict_do_nothing().returning(ReferenceMember.image_id)).scalar_one_or_none()
        if inserted is not None:
            record_event(conn, actor=actor, client=client, action="reference_add", image_id=image_id,
                         reference_id=reference_id, details={"reference": name})
    return inserted is not None


def audit_trail(engine: Engine, image_id: int) -> pd.DataFrame:
    """The audit events of an image, newest first: at, actor, client, action, details (JSON)."""
    with engine.connect() as conn:
        result = conn.execute(select(AuditEvent.at, AuditEvent.actor, AuditEvent.client, AuditEvent.action,
                                     AuditEvent.details)
                              .where(AuditEvent.image_id == image_id).order_by(AuditEvent.id.desc()))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def audit_events(engine: Engine, limit: int = 200, action_prefix: str | None = None) -> pd.DataFrame:
    """The newest events first (optionally only actions starting with ``action_prefix``): id, at, actor,
    client, action, subject (``details["subject"]``, e.g. ``flags.energy_outside_max``), detail."""
    stmt = select(AuditEvent.id, AuditEvent.at, AuditEvent.actor, AuditEvent.client, AuditEvent.action,
                  AuditEvent.details).order_by(AuditEvent.id.desc()).limit(limit)
    if action_prefix is not None:
        stmt = stmt.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame([{"id": r.id, "at": r.at, "actor": r.actor, "client": r.client, "action": r.action,
                          "subject": (r.details or {}).get("subject"),
                          "detail": {k: v for k, v in (r.details or {}).items() if k != "subject"}} for r in rows],
                        columns=["id", "at", "actor", "client", "action", "subject", "detail"])
