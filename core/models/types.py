"""Column types shared by the models.

`UTCDateTime` is the type of every date-and-time column. It stores the instant in UTC and always hands back an
aware datetime in UTC, on SQLite (which keeps no zone and returns naive values) and PostgreSQL alike, so no
code outside this module needs to repair a value read from the database.

A naive datetime is refused on the way in (`ValueError`, raised as SQLAlchemy's `StatementError`): the
service could not tell which zone it meant, and guessing UTC would silently store a London wall-clock time an
hour out in summer. Code makes its datetimes with `datetime.now(UTC)` or an explicit `tzinfo`.

The stored column is `timestamp with time zone` on PostgreSQL, the type the migrations create, so the type
needs no schema change; the migrations render it as `sa.DateTime(timezone=True)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: aware datetimes in, aware UTC datetimes out. Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"A date and time column takes a datetime, not {type(value).__name__}.")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"A naive datetime ({value.isoformat()}) cannot be stored: give it a timezone.")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no zone; what it holds was written here, in UTC.
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        # Compared with a datetime, a value goes through this type (and is checked); anything else, such as
        # a timedelta added to a column, takes the type the plain DateTime would give it.
        if isinstance(value, datetime):
            return self
        return self.impl_instance.coerce_compared_value(op, value)
