"""How a request arrives: a patient's online submission, or a request received by letter, phone, email or at
the desk and logged by staff. Each gets the next reference of the year, `CR-<year>-<number>`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.requests import FORMATS, RECEIVED_VIA, RecordingRequest, ReferenceCounter, Status
from core.services.content import current_version
from core.services.db import transactional
from core.services.requests.clock import identity_date, start_clock
from core.services.requests.lifecycle import RequestError, add_timeline_entry, audit, practice_today
from core.services.requests.messages import email_patient


@dataclass(frozen=True)
class CallDetails:
    calls_from: date
    calls_to: date
    approximate_time: str = ""
    phone_number: str = ""
    spoke_to: str = ""
    description: str = ""
    preferred_format: str = "download"
    share_with_nhs_england: bool = False


@dataclass(frozen=True)
class OfflineRequest:
    received_via: str
    received_on: date
    details: CallDetails
    patient: Patient | None = None
    requester_name: str = ""
    requester_nhs_number: str | None = None
    requester_date_of_birth: date | None = None
    requester_contact: str = ""
    identity_confirmed_on: date | None = None


def _check_details(details: CallDetails, today: date) -> None:
    if details.calls_from > details.calls_to:
        raise RequestError("The first date of the calls must be on or before the last date.", field="calls_to")
    if details.calls_to > today:
        raise RequestError("The dates of the calls must be today or in the past.", field="calls_to")
    if details.preferred_format not in FORMATS:
        raise RequestError("Select how you would like to receive the recordings.", field="preferred_format")


def _next_reference(year: int) -> str:
    """`CR-<year>-<number>`, numbered per year. The counter row is created if missing (safely under
    concurrency) and then incremented by one UPDATE, which holds the row until commit: two submissions at
    the same moment get different numbers."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(insert(ReferenceCounter).values(year=year, last_number=0).on_conflict_do_nothing())
    db.session.execute(
        update(ReferenceCounter)
        .where(ReferenceCounter.year == year)
        .values(last_number=ReferenceCounter.last_number + 1)
    )
    number = db.session.execute(select(ReferenceCounter.last_number).where(ReferenceCounter.year == year)).scalar_one()
    return f"CR-{year}-{number:05d}"


def _published_notice_id() -> int | None:
    current = current_version("call-recording-notice")
    return current.id if current is not None else None


def request_by_submission_key(patient: Patient, key: str) -> RecordingRequest | None:
    return db.session.execute(
        select(RecordingRequest).where(
            RecordingRequest.submission_key == key, RecordingRequest.patient_id == patient.id
        )
    ).scalar_one_or_none()


def submit_request(patient: Patient, details: CallDetails, *, submission_key: str) -> RecordingRequest:
    """A patient's online request. Submitting the same form twice (a double click, a resend after a slow
    answer) returns the request the first submission made, so one request exists."""
    existing = request_by_submission_key(patient, submission_key)
    if existing is not None:
        return existing
    try:
        return _submit(patient, details, submission_key)
    except IntegrityError:
        # The same key committed by a parallel submission a moment ago: that is our request.
        existing = request_by_submission_key(patient, submission_key)
        if existing is None:
            raise
        return existing


@transactional
def _submit(patient: Patient, details: CallDetails, submission_key: str) -> RecordingRequest:
    today = practice_today()
    _check_details(details, today)
    req = RecordingRequest(
        reference=_next_reference(today.year),
        patient_id=patient.id,
        received_via="online",
        received_on=today,
        status=Status.SUBMITTED if patient.is_verified else Status.AWAITING_IDENTITY,
        notice_version_id=_published_notice_id(),
        submission_key=submission_key,
        **details.__dict__,
    )
    db.session.add(req)
    db.session.flush()
    if patient.is_verified:
        start_clock(req, identity_date(patient) or today)
    add_timeline_entry(req, kind="status", actor=patient, summary="Request received", to_status=req.status)
    audit(req, "request_submitted", patient, status=req.status, via="online")
    waiting = req.status == Status.AWAITING_IDENTITY
    email_patient(req, "request-received", waiting_for_identity=waiting, due_on=req.due_on)
    return req


def _check_offline(offline: OfflineRequest, today: date) -> None:
    """Refuse an offline request naming the field of `OfflineRequest` (or of its `CallDetails`) at fault."""
    if offline.received_via not in RECEIVED_VIA or offline.received_via == "online":
        raise RequestError("Select how the request was received.", field="received_via")
    if offline.received_on > today:
        raise RequestError("The date received must be today or in the past.", field="received_on")
    if offline.identity_confirmed_on is not None and offline.identity_confirmed_on > today:
        raise RequestError(
            "The date identity was confirmed must be today or in the past.", field="identity_confirmed_on"
        )
    if offline.patient is None and not offline.requester_name:
        raise RequestError("Enter the name of the person making the request.", field="requester_name")
    _check_details(offline.details, today)


def _requester_fields(offline: OfflineRequest) -> dict:
    """Who asked: the patient's account, or (for someone without one) the name and contact staff took."""
    if offline.patient is not None:
        return {"patient_id": offline.patient.id}
    return {
        "requester_name": offline.requester_name,
        "requester_nhs_number": offline.requester_nhs_number,
        "requester_date_of_birth": offline.requester_date_of_birth,
        "requester_contact": offline.requester_contact or None,
    }


@transactional
def log_offline_request(actor: StaffUser, offline: OfflineRequest) -> RecordingRequest:
    """A request received by letter, phone, email or at the desk, with its true received date. The clock
    starts on the later of that date and the date identity was confirmed (the patient's verification, or a
    check staff record here); until then the request waits in `awaiting_identity`. A refusal names the field of
    `OfflineRequest` (or of its `CallDetails`) at fault."""
    today = practice_today()
    _check_offline(offline, today)
    identity_on = offline.identity_confirmed_on
    if identity_on is None and offline.patient is not None and offline.patient.is_verified:
        identity_on = identity_date(offline.patient) or offline.received_on
    req = RecordingRequest(
        reference=_next_reference(today.year),
        **_requester_fields(offline),
        received_via=offline.received_via,
        received_on=offline.received_on,
        logged_by_id=actor.id,
        status=Status.AWAITING_IDENTITY if identity_on is None else Status.SUBMITTED,
        **offline.details.__dict__,
    )
    db.session.add(req)
    db.session.flush()
    if identity_on is not None:
        start_clock(req, identity_on)
    via = RECEIVED_VIA[offline.received_via].lower()
    summary = f"Request received ({via}) and logged by the practice"
    add_timeline_entry(req, kind="status", actor=actor, summary=summary, to_status=req.status)
    audit(req, "request_logged_offline", actor, status=req.status, via=offline.received_via)
    if req.patient is not None:
        email_patient(req, "request-logged")
    return req
