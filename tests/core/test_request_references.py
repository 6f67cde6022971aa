"""Request references and double submissions: `CR-<year>-<number>`, numbered per year with no gaps or
duplicates even when patients submit at the same moment, and one request per submission key however often
the form is sent (a double click, a resend after a slow answer).

The concurrency tests run each thread in an application context of its own, so each has its own database
session and connection, as parallel web requests do. On SQLite they queue up behind the database lock; on
PostgreSQL (TEST_DATABASE_URL, as CI runs them) they really race.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import Patient
from core.models.audit import AuditEvent
from core.models.email import OutboundEmail
from core.models.requests import RecordingRequest, ReferenceCounter
from core.services import requests as service
from tests.accounts_support import make_patient, make_staff
from tests.core.test_request_lifecycle import call_details, london, offline, submit

REFERENCE = re.compile(r"CR-[0-9]{4}-[0-9]{5}")
THREADS = 8


def count(model, *conditions) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one()


def test_references_count_up_within_a_year_and_start_again_at_1_in_the_next():
    with time_machine.travel(london(2026, 12, 30, 10), tick=False) as traveller:
        staff = make_staff().account
        patient = make_patient(verified=True).account
        first = submit(patient)
        second = submit(patient)
        logged = service.log_offline_request(staff, offline(received_on=date(2026, 12, 29)))
        traveller.move_to(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))  # still 2026 in London (GMT)
        last_of_year = submit(patient)
        traveller.move_to(london(2027, 1, 4, 9))
        new_year = submit(patient)
        new_year_second = submit(patient)

    assert [r.reference for r in (first, second, logged, last_of_year)] == [
        "CR-2026-00001",
        "CR-2026-00002",
        "CR-2026-00003",
        "CR-2026-00004",
    ]
    assert [new_year.reference, new_year_second.reference] == ["CR-2027-00001", "CR-2027-00002"]
    assert all(REFERENCE.fullmatch(r.reference) for r in (first, new_year))
    counters = db.session.execute(select(ReferenceCounter.year, ReferenceCounter.last_number)).all()
    assert sorted(counters) == [(2026, 4), (2027, 2)]


def test_a_reference_reveals_nothing_about_the_patient():
    patient = make_patient(verified=True, nhs_number="9434765919").account
    req = submit(patient)
    assert "9434765919" not in req.reference
    assert "Lovelace" not in req.reference


def test_submitting_twice_with_the_same_key_makes_one_request():
    patient = make_patient(verified=True).account
    key = secrets.token_hex(16)

    first = service.submit_request(patient, call_details(), submission_key=key)
    again = service.submit_request(patient, call_details(description="Changed my mind"), submission_key=key)

    assert again.id == first.id
    assert again.reference == first.reference == f"CR-{service.practice_today().year}-00001"
    assert count(RecordingRequest) == 1
    assert count(AuditEvent, AuditEvent.action == "request_submitted") == 1
    assert count(OutboundEmail, OutboundEmail.to_address == patient.email) == 1
    assert db.session.execute(select(ReferenceCounter.last_number)).scalar_one() == 1


def test_another_patients_key_does_not_return_their_request_g1():
    """The lookup by key is bound to the patient: a guessed or leaked key never hands over someone else's."""
    owner = make_patient(verified=True).account
    other = make_patient(email="other@example.org", nhs_number="9434765870", verified=True).account
    key = secrets.token_hex(16)
    mine = service.submit_request(owner, call_details(), submission_key=key)

    assert service.request_by_submission_key(other, key) is None
    assert service.request_by_submission_key(owner, key).id == mine.id


def _run_in_threads(app, patient_id: int, keys: list[str]) -> tuple[list[tuple[int, str]], list[BaseException]]:
    """Submit once per key, each in its own thread and application context, all released at once."""
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(keys))

    def worker(key: str) -> None:
        try:
            with app.app_context():
                patient = db.session.get(Patient, patient_id)
                details = call_details()
                start.wait(timeout=30)
                req = service.submit_request(patient, details, submission_key=key)
                results.append((req.id, req.reference))
        except BaseException as exc:  # hand failures in the threads to the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a submission never finished"
    return results, errors


def test_eight_simultaneous_submissions_get_eight_consecutive_references(app):
    patient = make_patient(verified=True).account
    year = service.practice_today().year

    results, errors = _run_in_threads(app, patient.id, [secrets.token_hex(16) for _ in range(THREADS)])

    assert errors == []
    references = sorted(reference for _, reference in results)
    assert references == [f"CR-{year}-{number:05d}" for number in range(1, THREADS + 1)]
    db.session.expire_all()
    assert count(RecordingRequest) == THREADS
    assert db.session.execute(select(ReferenceCounter.last_number)).scalar_one() == THREADS
    assert count(AuditEvent, AuditEvent.action == "request_submitted") == THREADS


def test_the_same_submission_sent_twice_at_the_same_moment_makes_one_request(app):
    """A double click that reaches two server workers at once: both answers name the one request."""
    patient = make_patient(verified=True).account
    year = service.practice_today().year
    keys = [secrets.token_hex(16) for _ in range(4)]

    for key in keys:  # a few rounds, to give the race more than one chance
        results, errors = _run_in_threads(app, patient.id, [key, key])
        assert errors == []
        assert len(results) == 2
        assert results[0] == results[1]

    db.session.expire_all()
    references = sorted(db.session.execute(select(RecordingRequest.reference)).scalars())
    # The losing submission took a number before its insert failed; the counter's update is rolled back
    # with it, so no number is skipped.
    assert references == [f"CR-{year}-{number:05d}" for number in range(1, len(keys) + 1)]
    assert count(AuditEvent, AuditEvent.action == "request_submitted") == len(keys)
    assert count(OutboundEmail, OutboundEmail.to_address == patient.email) == len(keys)
    assert db.session.execute(select(ReferenceCounter.last_number)).scalar_one() == len(keys)
