"""Read queries of calibrated drift results: the decision and why, per window and slice (dashboard drift
pages, benchmarks; alert rules read the same columns, docs/metrics.md "Drift decisions")."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from db.models import DriftResult

#: why a result decided what it did (read with every drift result the dashboard shows)
WHY_COLUMNS = (DriftResult.decision, DriftResult.decision_rule, DriftResult.p_value, DriftResult.q_value,
               DriftResult.fdr, DriftResult.effect_size, DriftResult.effect_threshold)
#: the columns of a calibrated result, in the order the dashboard shows them
DECISION_COLUMNS = (DriftResult.window_start, DriftResult.window_end, DriftResult.slice, DriftResult.statistic,
                    DriftResult.class_index, DriftResult.test, DriftResult.score, DriftResult.threshold,
                    DriftResult.raw_drifted, DriftResult.p_value, DriftResult.q_value, DriftResult.fdr,
                    DriftResult.effect_size, DriftResult.effect_threshold, DriftResult.decision_rule,
                    DriftResult.decision, DriftResult.drifted, DriftResult.n_reference, DriftResult.n_current)


def drift_decisions(engine: Engine, reference_id: int, window_kind: str, *, start: dt.datetime | None = None,
                    end: dt.datetime | None = None) -> pd.DataFrame:
    """Every result of a reference and window kind (optionally with window start in ``[start, end)``) with
    its decision and why: the columns of :data:`DECISION_COLUMNS`, by window, slice, statistic, class."""
    stmt = select(*DECISION_COLUMNS).where(DriftResult.reference_id == reference_id,
                                           DriftResult.window_kind == window_kind)
    if start is not None:
        stmt = stmt.where(DriftResult.window_start >= start)
    if end is not None:
        stmt = stmt.where(DriftResult.window_start < end)
    stmt = stmt.order_by(DriftResult.window_start, DriftResult.slice, DriftResult.statistic, DriftResult.class_index)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame(rows, columns=[c.key for c in DECISION_COLUMNS])
