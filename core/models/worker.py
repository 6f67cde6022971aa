"""What the worker (`flask worker`) leaves behind: one row per run of a scheduled job, and one row per worker
process saying when it was last alive. Staff home and `/healthz` read both.

A run is claimed by inserting its row: `(job, due_at)` is unique, so when several workers on several hosts
see the same job fall due, exactly one insert succeeds and that worker runs it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.content import utc_now
from core.models.types import UTCDateTime


class JobRun(db.Model):
    """One run of a scheduled job for one due time. `status` is running, ok or failed."""

    __tablename__ = "job_run"
    # The unique constraint is also the index that finds a job's latest run.
    __table_args__ = (UniqueConstraint("job", "due_at", name="uq_job_run_job_due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(32), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    worker: Mapped[str] = mapped_column(String(120), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A one-line outcome for staff ("Sent 3; 0 to retry", "OK: 1,204 events"), or the error's type on failure.
    summary: Mapped[str | None] = mapped_column(String(300), nullable=True)


class WorkerHeartbeat(db.Model):
    """A worker process: where it runs and when it last went round its loop."""

    __tablename__ = "worker_heartbeat"

    worker: Mapped[str] = mapped_column(String(120), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
