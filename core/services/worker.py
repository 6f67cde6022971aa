"""The worker (`flask worker`): delivers the outbox continuously, runs the scheduled jobs, and makes the
redacted copies and waveforms staff wait for (core.services.redaction.run_pending: one of each per round).

Each job has a schedule in the practice's time (Europe/London). On every round the worker asks each job for
its latest due time and tries to claim that run by inserting a `job_run` row; `(job, due_at)` is unique, so
with several workers on several hosts exactly one runs it. A run missed while no worker was running is simply
the latest due time without a row, so it happens when a worker returns (once, however many were missed). A
worker that dies mid-run leaves its row "running"; after the job's lease another worker takes the run over.

Staff home and `/healthz` read `job_status()`: when each job last ran, how it went, and whether one is late.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.extensions import db
from core.legal_clock import is_working_day
from core.log import logger
from core.models.worker import JobRun, WorkerHeartbeat
from core.services.audit import record_anchor, record_chain_check, record_event, verify_chain
from core.services.db import transactional
from core.services.email import deliver_pending
from core.services.redaction import run_pending
from core.services.releases import purge_release_copies, remove_orphan_copies
from core.services.reminders import send_reminders
from core.sessions import purge_expired_sessions

LONDON = ZoneInfo("Europe/London")
# A worker not seen for this long is reported as not running (it beats on every round, every few seconds).
WORKER_SILENT_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class Daily:
    """Every day (or every working day in England) at a London time."""

    at: time
    working_days_only: bool = False

    def latest_due(self, now: datetime) -> datetime:
        return self._first_due(now, step=-1, accept=lambda due: due <= now)

    def next_due(self, now: datetime) -> datetime:
        return self._first_due(now, step=1, accept=lambda due: due > now)

    def _first_due(self, now: datetime, *, step: int, accept: Callable[[datetime], bool]) -> datetime:
        """From today (London) one day at a time in the direction of `step`, the first due time `accept`s."""
        day = now.astimezone(LONDON).date()
        while True:
            due = datetime.combine(day, self.at, tzinfo=LONDON)
            if accept(due) and (not self.working_days_only or is_working_day(day)):
                return due.astimezone(UTC)
            day += timedelta(days=step)

    def describe(self) -> str:
        days = "Every working day" if self.working_days_only else "Every day"
        return f"{days} at {self.at:%H:%M} (UK time)"


@dataclass(frozen=True)
class Hourly:
    """Every hour at a minute past the hour."""

    minute: int

    def latest_due(self, now: datetime) -> datetime:
        due = now.astimezone(UTC).replace(minute=self.minute, second=0, microsecond=0)
        return due if due <= now else due - timedelta(hours=1)

    def next_due(self, now: datetime) -> datetime:
        return self.latest_due(now) + timedelta(hours=1)

    def describe(self) -> str:
        return f"Every hour at {self.minute:02d} minutes past"


@dataclass(frozen=True)
class Job:
    name: str
    title: str
    schedule: Daily | Hourly
    run: Callable[[], str]
    # How long after its due time a run may be missing before the job is reported late.
    grace: timedelta = timedelta(minutes=15)
    # How long a run may stay "running" before another worker decides its worker died and takes it over.
    lease: timedelta = timedelta(minutes=30)


def _reminders() -> str:
    digest, sent = send_reminders()
    return (
        f"{len(digest.overdue)} overdue, {len(digest.due_soon)} due soon, "
        f"{len(digest.complaints)} complaints: {sent} emails queued"
    )


def _purge() -> str:
    report = purge_release_copies()
    orphans, orphan_bytes = remove_orphan_copies()
    swept = f"; removed {orphans} stored copies no recording named ({orphan_bytes:,} bytes)" if orphans else ""
    return f"Deleted {report.purged} recording files ({report.bytes_freed:,} bytes){swept}"


def _audit_check() -> str:
    result = verify_chain()
    record_chain_check(result)
    if not result.ok:
        logger.error(
            "audit chain BROKEN at event %s: %s", result.broken_seq, result.reason, extra={"audit_chain": "broken"}
        )
        raise ChainBrokenError(f"Broken at event {result.broken_seq}: {result.reason}")
    record_anchor(result)
    return f"OK: {result.checked:,} events; anchored at event {result.checked}"


def _session_cleanup() -> str:
    return f"Removed {purge_sessions(current_app.config)} expired sessions"


@transactional
def purge_sessions(config) -> int:
    """Delete sessions that have timed out (a timed-out session is refused anyway; this keeps the table small)."""
    idle = max(config["SESSION_IDLE_MINUTES_PATIENT"], config["SESSION_IDLE_MINUTES_STAFF"])
    return purge_expired_sessions(
        now=datetime.now(UTC), idle=timedelta(minutes=idle), absolute=timedelta(hours=config["SESSION_ABSOLUTE_HOURS"])
    )


class ChainBrokenError(RuntimeError):
    """The daily audit check found the chain broken: the run is recorded as failed, and staff home says so."""


JOBS: tuple[Job, ...] = (
    Job("reminders", "Deadline reminders to staff", Daily(time(7, 0), working_days_only=True), _reminders),
    Job("purge", "Delete expired release copies", Daily(time(2, 30)), _purge),
    Job("audit-check", "Check the audit trail's chain", Daily(time(3, 0)), _audit_check),
    Job("session-cleanup", "Remove expired sessions", Hourly(15), _session_cleanup),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def _claim(job: Job, due: datetime, worker: str, now: datetime) -> int | None:
    """Take the run of `job` for `due`, or return None when another worker has it (or it is done)."""
    existing = db.session.execute(
        select(JobRun).where(JobRun.job == job.name, JobRun.due_at == due)
    ).scalar_one_or_none()
    if existing is None:
        run = JobRun(job=job.name, due_at=due, status="running", worker=worker, started_at=now)
        db.session.add(run)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return None  # another worker inserted it first
        return run.id
    if existing.status != "running" or existing.started_at > now - job.lease:
        db.session.rollback()
        return None
    # The worker that claimed it stopped answering long ago: take it over, once (the condition on started_at
    # lets only one of several workers doing this at the same moment win).
    taken = db.session.execute(
        update(JobRun)
        .where(JobRun.id == existing.id, JobRun.status == "running", JobRun.started_at == existing.started_at)
        .values(worker=worker, started_at=now)
    ).rowcount
    db.session.commit()
    if taken:
        logger.warning("job %s: taking over a run abandoned by %s", job.name, existing.worker)
    return existing.id if taken else None


@transactional
def _finish(run_id: int, job: Job, status: str, summary: str) -> None:
    run = db.session.get(JobRun, run_id)
    run.status = status
    run.finished_at = datetime.now(UTC)
    run.summary = summary[:300]
    record_event(
        action="scheduled_job_run",
        object_type="job",
        object_id=job.name,
        outcome="success" if status == "ok" else "failure",
        details={"due_at": run.due_at.isoformat(), "worker": run.worker, "summary": run.summary},
    )


def run_due_jobs(*, worker: str, now: datetime | None = None, only: str | None = None) -> list[tuple[str, str]]:
    """Run every job whose latest due time has no run yet. Returns (job, status) for each run started here."""
    now = now or datetime.now(UTC)
    done: list[tuple[str, str]] = []
    for job in JOBS:
        if only is not None and job.name != only:
            continue
        due = job.schedule.latest_due(now)
        run_id = _claim(job, due, worker, now)
        if run_id is None:
            continue
        logger.info("job %s: running (due %s)", job.name, due.isoformat(), extra={"job": job.name})
        try:
            summary = job.run()
            status = "ok"
        except Exception as exc:  # a job's failure is recorded and shown; the worker carries on
            db.session.rollback()
            logger.exception("job %s failed", job.name, extra={"job": job.name})
            summary = str(exc) if isinstance(exc, ChainBrokenError) else f"Failed: {type(exc).__name__}"
            status = "failed"
        _finish(run_id, job, status, summary)
        logger.info("job %s: %s: %s", job.name, status, summary, extra={"job": job.name})
        done.append((job.name, status))
    return done


@transactional
def beat(worker: str, *, stopped: bool = False) -> None:
    now = datetime.now(UTC)
    row = db.session.get(WorkerHeartbeat, worker)
    if row is None:
        row = WorkerHeartbeat(worker=worker, started_at=now, last_seen_at=now)
        db.session.add(row)
    row.last_seen_at = now
    row.stopped_at = now if stopped else None


def run_worker(*, should_stop: Callable[[], bool], wait: Callable[[float], None], once: bool = False) -> None:
    """The worker's loop: beat, send what is due, run due jobs, wait; until `should_stop()` says so.

    A database that cannot be reached (a restart, a restore) is logged and tried again on the next round.
    """
    worker = worker_name()
    poll = float(current_app.config["WORKER_POLL_SECONDS"])
    logger.info("worker %s started: outbox every %ss, %s jobs", worker, poll, len(JOBS))
    while not should_stop():
        try:
            beat(worker)
            report = deliver_pending(should_stop=should_stop)
            if report.sent or report.retrying or report.given_up:
                logger.info("outbox: sent %s, %s to retry, %s given up", report.sent, report.retrying, report.given_up)
            if not should_stop():
                run_due_jobs(worker=worker)
            if not should_stop():
                run_pending(worker)
        except SQLAlchemyError as exc:
            db.session.rollback()
            logger.warning("worker: database unavailable (%s); trying again", type(exc).__name__)
        finally:
            db.session.remove()
        if once:
            break
        wait(poll)
    try:
        beat(worker, stopped=True)
    except SQLAlchemyError:
        db.session.rollback()
    logger.info("worker %s stopped", worker)


@dataclass(frozen=True)
class JobStatus:
    name: str
    title: str
    schedule: str
    last_run_at: datetime | None
    last_status: str | None
    last_summary: str | None
    next_due: datetime
    late: bool
    failed: bool


@dataclass(frozen=True)
class WorkerStatus:
    jobs: list[JobStatus]
    worker_last_seen: datetime | None

    @property
    def worker_running(self) -> bool:
        return self.worker_last_seen is not None

    @property
    def problems(self) -> list[str]:
        found = [] if self.worker_running else ["no worker has been seen in the last two minutes"]
        found += [f"{job.title}: late" for job in self.jobs if job.late]
        found += [f"{job.title}: last run failed" for job in self.jobs if job.failed]
        return found


def job_status(now: datetime | None = None) -> WorkerStatus:
    """When each job last ran and whether it is late: a due time more than its grace ago with no finished run."""
    now = now or datetime.now(UTC)
    jobs = []
    for job in JOBS:
        last = db.session.execute(
            select(JobRun).where(JobRun.job == job.name).order_by(JobRun.due_at.desc(), JobRun.id.desc()).limit(1)
        ).scalar_one_or_none()
        due = job.schedule.latest_due(now)
        caught_up = last is not None and last.due_at >= due and last.status != "running"
        jobs.append(
            JobStatus(
                name=job.name,
                title=job.title,
                schedule=job.schedule.describe(),
                last_run_at=(last.finished_at or last.started_at) if last else None,
                last_status=last.status if last else None,
                last_summary=last.summary if last else None,
                next_due=job.schedule.next_due(now),
                late=not caught_up and now - due > job.grace,
                failed=last is not None and last.status == "failed",
            )
        )
    seen = db.session.execute(
        select(WorkerHeartbeat.last_seen_at)
        .where(WorkerHeartbeat.stopped_at.is_(None))
        .order_by(WorkerHeartbeat.last_seen_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    return WorkerStatus(jobs=jobs, worker_last_seen=seen if seen and now - seen <= WORKER_SILENT_AFTER else None)
