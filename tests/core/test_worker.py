"""The worker's schedule: each job runs once per due time whatever the number of workers, a run missed while
no worker ran happens when one returns, an abandoned run is taken over, and staff and monitoring are told
when a job is late or failed. Daily audit anchors make a trail cut back from its end detectable.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from flask import Flask
from sqlalchemy import delete, func, select, text, update

from core.extensions import db
from core.models import AuditAnchor, AuditChainHead, AuditEvent, JobRun, OutboundEmail, WorkerHeartbeat
from core.services import worker as worker_service
from core.services.audit import record_event, verify_chain
from core.services.db import transactional
from core.services.email import deliver_pending, queue_email
from core.services.worker import JOBS, Daily, Hourly, beat, job_status, run_due_jobs
from tests.smtp_support import start_server


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def runs(job: str | None = None) -> list[JobRun]:
    db.session.expire_all()
    statement = select(JobRun).order_by(JobRun.job, JobRun.due_at)
    if job:
        statement = statement.where(JobRun.job == job)
    return list(db.session.execute(statement).scalars())


def job_events() -> int:
    return db.session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "scheduled_job_run")
    ).scalar_one()


def test_a_daily_job_is_due_at_its_london_time_in_summer_and_in_winter():
    schedule = Daily(time(3, 0))
    # 03:00 in London is 02:00 UTC in July (BST) and 03:00 UTC in January (GMT).
    assert schedule.latest_due(at("2026-07-10T02:30")) == at("2026-07-10T02:00")
    assert schedule.latest_due(at("2026-07-10T01:59")) == at("2026-07-09T02:00")
    assert schedule.latest_due(at("2026-01-10T02:30")) == at("2026-01-09T03:00")
    assert schedule.next_due(at("2026-01-10T02:30")) == at("2026-01-10T03:00")
    # The night the clocks go back (25 October 2026) still has one 03:00.
    assert schedule.latest_due(at("2026-10-25T03:30")) == at("2026-10-25T03:00")


def test_reminders_are_due_on_working_days_only():
    reminders = Daily(time(7, 0), working_days_only=True)
    # Saturday 26 December 2026: the last working day was Thursday 24th (Christmas Day is a Friday).
    assert reminders.latest_due(at("2026-12-26T12:00")) == at("2026-12-24T07:00")
    # Monday 28 December is the Boxing Day bank holiday in lieu: the next is Tuesday 29th.
    assert reminders.next_due(at("2026-12-26T12:00")) == at("2026-12-29T07:00")


def test_an_hourly_job_is_due_each_hour():
    assert Hourly(15).latest_due(at("2026-12-04T10:14")) == at("2026-12-04T09:15")
    assert Hourly(15).latest_due(at("2026-12-04T10:15")) == at("2026-12-04T10:15")


def test_every_job_runs_once_per_due_time_and_is_recorded(app: Flask):
    now = at("2026-12-07T08:00")  # a Monday
    done = run_due_jobs(worker="host-a:1", now=now)
    assert sorted(done) == sorted((job.name, "ok") for job in JOBS)
    assert run_due_jobs(worker="host-b:2", now=now + timedelta(minutes=5)) == []
    recorded = runs()
    assert {(run.job, run.status, run.worker) for run in recorded} == {(job.name, "ok", "host-a:1") for job in JOBS}
    assert all(run.summary for run in recorded)
    assert job_events() == len(JOBS)  # each run is in the audit trail


def test_two_workers_at_the_same_moment_run_each_job_once(app: Flask):
    """Several workers on several hosts: the unique (job, due time) lets exactly one insert win."""
    now = at("2026-12-07T08:00")
    results: dict[str, list] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        with app.app_context():
            barrier.wait()
            results[name] = run_due_jobs(worker=name, now=now)
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(f"host-{n}:1",)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ran = sorted(name for done in results.values() for name, _ in done)
    assert ran == sorted(job.name for job in JOBS)
    assert len(runs()) == len(JOBS)
    assert job_events() == len(JOBS)


def test_a_run_missed_while_no_worker_ran_happens_once_when_a_worker_returns(app: Flask):
    run_due_jobs(worker="host-a:1", now=at("2026-12-07T08:00"))  # Monday
    # No worker from Monday 08:00 until Thursday 10:00: Tuesday's and Wednesday's reminders were missed.
    done = dict(run_due_jobs(worker="host-a:2", now=at("2026-12-10T10:00")))
    assert done["reminders"] == "ok"
    assert [run.due_at.replace(tzinfo=UTC) for run in runs("reminders")] == [
        at("2026-12-07T07:00"),
        at("2026-12-10T07:00"),
    ]


def test_a_run_abandoned_by_a_dead_worker_is_taken_over_after_its_lease(app: Flask):
    job = worker_service.JOBS_BY_NAME["purge"]
    now = at("2026-12-07T08:00")
    due = job.schedule.latest_due(now)
    db.session.add(JobRun(job="purge", due_at=due, status="running", worker="dead-host:9", started_at=now))
    db.session.commit()
    assert "purge" not in dict(run_due_jobs(worker="host-a:1", now=now + timedelta(minutes=5), only="purge"))
    later = now + job.lease + timedelta(minutes=1)
    assert dict(run_due_jobs(worker="host-a:1", now=later, only="purge")) == {"purge": "ok"}
    (run,) = runs("purge")
    assert (run.status, run.worker) == ("ok", "host-a:1")


def test_staff_and_monitoring_are_told_when_a_job_is_late_or_failed(app: Flask, monkeypatch):
    now = at("2026-12-07T08:00")
    beat("host-a:1")
    status = job_status(now=now)
    assert {job.name for job in status.jobs if job.late} == {job.name for job in JOBS}
    run_due_jobs(worker="host-a:1", now=now)
    status = job_status(now=now + timedelta(minutes=1))
    assert [job.name for job in status.jobs if job.late or job.failed] == []

    def broken() -> str:
        raise OSError("disk full")

    monkeypatch.setattr(worker_service, "JOBS", (replace(worker_service.JOBS_BY_NAME["purge"], run=broken),))
    run_due_jobs(worker="host-a:1", now=at("2026-12-08T03:00"))
    monkeypatch.undo()
    status = job_status(now=at("2026-12-08T03:05"))
    purge = next(job for job in status.jobs if job.name == "purge")
    assert purge.failed and purge.last_summary == "Failed: OSError"
    assert "Delete expired release copies: last run failed" in status.problems


def test_healthz_keeps_200_for_the_load_balancer_and_tells_monitoring(client):
    db.session.execute(delete(JobRun))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["worker"] == "attention"  # only that, for anyone: the details are for monitoring
    details = client.get("/healthz/worker")
    assert details.status_code == 503
    assert "no worker has been seen in the last two minutes" in details.json["problems"]

    beat("host-a:1")
    run_due_jobs(worker="host-a:1")
    response = client.get("/healthz/worker")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "ok"
    assert set(response.json["jobs"]) == {job.name for job in JOBS}
    assert all(job["outcome"] == "ok" and not job["late"] for job in response.json["jobs"].values())


def test_a_stopped_worker_is_not_counted_as_running(app: Flask):
    beat("host-a:1")
    assert job_status().worker_running
    beat("host-a:1", stopped=True)
    assert not job_status().worker_running
    assert db.session.get(WorkerHeartbeat, "host-a:1").stopped_at is not None


def test_the_daily_check_anchors_the_chain_and_a_cut_tail_is_then_detected(app: Flask):
    """SECURITY J (audit integrity): cutting events from the end and moving the head row back leaves a chain
    that links perfectly; the anchor written by the daily check still catches it."""
    for number in range(3):
        _audit(f"event {number}")
    assert dict(run_due_jobs(worker="host-a:1", only="audit-check")) == {"audit-check": "ok"}
    anchor = db.session.execute(select(AuditAnchor)).scalar_one()
    assert verify_chain().ok

    # What someone able to bypass the database's protections would do: cut the tail, move the head back.
    _cut_tail_to(anchor.seq - 1)
    result = verify_chain()
    assert not result.ok
    assert f"events up to {anchor.seq}" in result.reason


def _cut_tail_to(last_seq: int) -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
    db.session.execute(delete(AuditEvent).where(AuditEvent.seq > last_seq))
    new_head = db.session.execute(select(AuditEvent.row_hmac).where(AuditEvent.seq == last_seq)).scalar_one()
    db.session.execute(update(AuditChainHead).values(last_seq=last_seq, last_hmac=new_head))
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    db.session.commit()


@transactional
def _audit(what: str) -> None:
    record_event(action="test_event", details={"what": what})


@transactional
def _queue(subject: str) -> None:
    queue_email(to="patient@example.org", subject=subject, body="There is an update. Sign in to see it.")


def test_a_message_claimed_by_one_worker_is_left_alone_by_another(app: Flask, smtp_port):
    _queue("Claimed elsewhere")
    now = datetime.now(UTC)
    db.session.execute(update(OutboundEmail).values(claimed_until=now + timedelta(minutes=5)))
    db.session.commit()
    controller, inbox = start_server(smtp_port)
    try:
        assert deliver_pending(now=now).sent == 0
        # The worker holding it died: once the claim runs out, the message is sent (once more at most).
        assert deliver_pending(now=now + timedelta(minutes=6)).sent == 1
    finally:
        controller.stop()
    assert [message["Subject"] for message in inbox.messages] == ["Claimed elsewhere"]
    row = db.session.execute(select(OutboundEmail)).scalar_one()
    assert (row.status, row.claimed_until) == ("sent", None)
