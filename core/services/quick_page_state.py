"""The cached-page fast path's one question, asked straight through the database driver.

A cached public page costs one version check and its headers (portal.public.CachedPagesFirst), so the check is
most of the request's work. Through SQLAlchemy it took 52 µs of CPU on SQLite and 135 µs on PostgreSQL (its
execution context, the pool's check-out and return, the result's types); asked here, 9 µs and 15 µs (with
22 µs in PostgreSQL's own process), as scripts/bench_notice.py measures. The statement is page_state's own
(core.services.content.PAGE_STATE_QUERY), compiled once.

Each thread keeps one connection of its own, taken from the page_state engine (autocommit) and detached from
its pool. On PostgreSQL the statement is prepared once per connection and run through libpq directly
(psycopg's `pgconn`, which lets other threads run while it waits); on SQLite through the DB-API cursor. The
row comes back as the driver gives it, with no column types applied (text or bytes), and is only ever
compared with the row a cached page was made from. An error closes that thread's connection (the next
question opens another) and is raised as the driver's `error`.
"""

from __future__ import annotations

import contextlib
import threading

from psycopg import errors, pq
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql

from core.services.content import PAGE_SLUGS, PAGE_STATE_QUERY, in_memory_sqlite

STATEMENT_NAME = b"portal_page_state"


class QuickPageState:
    """page_state's question for one engine: `row(slug)` is the current row, or None if nothing is published."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.error = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._libpq = engine.dialect.driver == "psycopg"
        # An in-memory SQLite database lives on the engine's one connection: it is asked through the engine.
        self._shared = in_memory_sqlite(engine)
        # libpq takes $1-style placeholders and every value as text.
        compiled = PAGE_STATE_QUERY.compile(
            dialect=postgresql.dialect(paramstyle="numeric_dollar") if self._libpq else engine.dialect
        )
        self._sql = str(compiled)
        self._parameters = {}
        for slug in PAGE_SLUGS:
            values = compiled.construct_params({"slug": slug})
            ordered = [values[name] for name in compiled.positiontup]
            self._parameters[slug] = [str(value).encode() for value in ordered] if self._libpq else tuple(ordered)

    def row(self, slug: str) -> tuple | None:
        if self._shared:
            with self.engine.connect() as connection:
                return connection.exec_driver_sql(self._sql, self._parameters[slug]).first()
        local = self._local
        if getattr(local, "connection", None) is None:
            self._open()
        try:
            return self.ask(local, self._parameters[slug])
        except Exception:
            self.close()
            raise

    def ask(self, local: threading.local, parameters) -> tuple | None:
        """Send the statement once on this thread's connection and read its row (the one round trip)."""
        if self._libpq:
            result = local.pgconn.exec_prepared(STATEMENT_NAME, parameters)
            _check(result)
            return tuple(result.get_value(0, column) for column in range(result.nfields)) if result.ntuples else None
        local.cursor.execute(self._sql, parameters)
        rows = local.cursor.fetchall()  # to the end, so SQLite releases its read lock at once
        return rows[0] if rows else None

    def _open(self) -> None:
        # Detached from the engine's pool: the thread keeps it, and the pool's size still bounds everyone else.
        pooled = self.engine.raw_connection()
        connection = pooled.dbapi_connection
        pooled.detach()
        self._local.connection = connection
        try:
            if self._libpq:
                pgconn = connection.pgconn
                _check(pgconn.prepare(STATEMENT_NAME, self._sql.encode()))
                self._local.pgconn = pgconn
            else:
                self._local.cursor = connection.cursor()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close this thread's connection, if it has one."""
        local = self._local
        connection = getattr(local, "connection", None)
        local.connection = local.cursor = local.pgconn = None
        if connection is not None:
            with contextlib.suppress(Exception):  # a connection that failed may fail to close: dropped either way
                connection.close()


def _check(result) -> None:
    """Raise the driver's error for a libpq result that failed (a lost connection, a changed table)."""
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise errors.error_from_result(result)
