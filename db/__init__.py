"""camwatch storage: SQLAlchemy models, migrations and the queries the worker and dashboard share.

Modules: ``session`` (engines, sessions), ``models``, ``models_ops``, ``models_qa`` and ``models_drift`` (schema), ``migrate`` (Alembic
upgrade), ``registry`` (scanner registration), ``claims`` (exactly-once work hand-out), ``results``
(batch results), ``writes`` (model versions, heartbeats, reviews, drift), ``codec`` (heatmap bytes),
``records`` (plain dataclasses exchanged with callers).
"""

from db.claims import (
    DEFAULT_MAX_ATTEMPTS,
    claim_batch,
    expire_claims,
    has_claimable_work,
    release_claims,
    renew_lease,
)
from db.codec import decode_heatmap, encode_heatmap
from db.migrate import upgrade
from db.models_alerts import Alert
from db.models_drift import DriftState
from db.models_ops import AuditEvent, QueueStatus, WorkerHeartbeat
from db.models_qa import MaintenanceRun, ReviewClaim, ThresholdOverride
from db.records import (
    ClaimedImage,
    DriftResultRecord,
    FileFound,
    FlagRecord,
    HeatmapRecord,
    ImageResult,
    PredictionRecord,
    RegisterOutcome,
)
from db.registry import known_uris, register_file, register_files
from db.results import complete_batch
from db.session import make_engine, session_scope, write_transaction
from db.types import utcnow
from db.writes import (
    add_review,
    get_or_create_model_version,
    heartbeat_state,
    model_fingerprint,
    retire_worker,
    silent_workers,
    upsert_drift_results,
    write_heartbeat,
)

__all__ = [
    "DEFAULT_MAX_ATTEMPTS", "Alert", "AuditEvent", "DriftState", "QueueStatus", "WorkerHeartbeat", "MaintenanceRun", "ReviewClaim", "ThresholdOverride", "ClaimedImage", "DriftResultRecord", "FileFound", "FlagRecord", "HeatmapRecord",
    "ImageResult", "PredictionRecord", "RegisterOutcome", "add_review", "claim_batch", "complete_batch",
    "decode_heatmap", "encode_heatmap", "expire_claims", "get_or_create_model_version", "has_claimable_work", "known_uris", "make_engine",
    "model_fingerprint", "register_file", "register_files", "release_claims", "renew_lease", "heartbeat_state", "retire_worker", "silent_workers", "session_scope",
    "upgrade",
    "upsert_drift_results", "utcnow", "write_heartbeat", "write_transaction",
]
