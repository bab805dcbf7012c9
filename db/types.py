"""Column types and clocks shared by the camwatch schema.

Convention: every time stored by camwatch is a timezone-aware UTC ``datetime``. Naive datetimes are
rejected at bind time instead of being guessed, because a guessed zone silently shifts every
dashboard time chart.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    """The current time as a timezone-aware UTC datetime (use as a column ``default=`` callable)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that always binds and returns aware UTC datetimes.

    PostgreSQL stores ``timestamptz`` natively. SQLite has no time zones: SQLAlchemy stores the
    fields as fixed-width text ``YYYY-MM-DD HH:MM:SS.ffffff``; because every value is converted to
    UTC before binding, text order equals time order, so range filters and indexes stay correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: camwatch stores timezone-aware "
                             "UTC times (use datetime.now(datetime.UTC) or attach a tzinfo)")
        utc = value.astimezone(dt.UTC)
        # SQLite's DATETIME storage ignores tzinfo; after conversion the fields are UTC.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
