"""Requests for copies of call recordings: submission, the state machine, the legal clock, messages to the
patient, the staff queue and complaints.

Every status change goes through `_move`, which refuses a transition the state machine does not allow (the
service decides, not only the page), writes the request's timeline entry and an audit event, in the
transaction of the change. Emails to the patient say only that there is an update and ask them to sign in:
never what the calls were about (DESIGN §6).

Dates that matter in law (received, relevant day, due date) are the practice's dates: the day in London.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from core import formatters, legal_clock
from core.extensions import db
from core.formatters import format_date
from core.jinja import render_email
from core.models.accounts import Patient, StaffUser
from core.models.requests import (
    FORMATS,
    RECEIVED_VIA,
    Complaint,
    RecordingRequest,
    ReferenceCounter,
    Release,
    RequestEvent,
)
from core.services.audit import record_event
from core.services.content import current_version
from core.services.db import transactional
from core.services.email import queue_email
from core.services.errors import ServiceError
from core.services.register import parse_nhs_number
from core.services.settings import practice_settings
from core.services.tokens import absolute_url_for

LONDON = formatters.LONDON
OPEN_STATUSES = (
    "awaiting_identity",
    "submitted",
    "clarification_requested",
    "in_progress",
    "ready_for_approval",
    "released",
)
# The state machine (DESIGN §4): from each status, the statuses a request may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "awaiting_identity": frozenset({"submitted", "refused", "withdrawn"}),
    "submitted": frozenset({"in_progress", "clarification_requested", "no_recordings_found", "refused", "withdrawn"}),
    "clarification_requested": frozenset({"in_progress", "no_recordings_found", "refused", "withdrawn"}),
    # in_progress -> completed: the recordings were given another way (listened to at the practice, a transcript).
    "in_progress": frozenset(
        {"clarification_requested", "ready_for_approval", "completed", "no_recordings_found", "refused", "withdrawn"}
    ),
    "ready_for_approval": frozenset({"in_progress", "released", "withdrawn"}),
    "released": frozenset({"completed", "in_progress"}),
    "completed": frozenset(),
    "no_recordings_found": frozenset(),
    "refused": frozenset(),
    "withdrawn": frozenset(),
}
RIGHTS_TEXT = (
    "If you are unhappy with how we have handled your request, you can complain to us using the complaint form "
    "on your request's page. You also have the right to complain to the Information Commissioner's Office "
    "(ICO): https://ico.org.uk/make-a-complaint/ or 0303 123 1113. You also have the right to ask a court to "
    "order us to comply with your request (UK GDPR Article 79)."
)
COMPLAINT_ACKNOWLEDGE_DAYS = 30
SEARCH_LIMIT = 50


class RequestError(ServiceError):
    """An action that cannot be carried out, with a message for the person who tried it."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def practice_today() -> date:
    """Today's date at the practice (London), which is the date the law counts in."""
    return datetime.now(LONDON).date()


def _actor(account) -> dict:
    return {"actor_type": account.kind, "actor_id": account.public_id}


def _actor_name(account) -> str:
    if account is None:
        return "The portal"
    return account.name if account.kind == "staff" else account.full_name


def _timeline(
    req: RecordingRequest,
    *,
    kind: str,
    actor,
    summary: str,
    body: str | None = None,
    visible: bool = True,
    from_status: str | None = None,
    to_status: str | None = None,
) -> RequestEvent:
    event = RequestEvent(
        request_id=req.id,
        occurred_at=now_utc(),
        kind=kind,
        actor_type=actor.kind if actor is not None else "system",
        actor_name=_actor_name(actor),
        from_status=from_status,
        to_status=to_status,
        summary=summary[:300],
        body=body,
        visible_to_patient=visible,
    )
    db.session.add(event)
    return event


def _who(actor) -> dict:
    return _actor(actor) if actor is not None else {"actor_type": "system"}


def _audit(req: RecordingRequest, action: str, actor, *, outcome: str = "success", **details) -> None:
    record_event(
        action=action, **_who(actor), object_type="request", object_id=req.reference, outcome=outcome, details=details
    )


def _audit_object(actor, action: str, obj, *, details: dict, outcome: str = "success") -> None:
    """Audit `action` on a recording, release or complaint, named by its table and random public id. `actor`
    is the patient or member of staff who acted, or None for the portal itself (a scheduled job)."""
    record_event(
        action=action,
        **_who(actor),
        object_type=obj.__tablename__,
        object_id=obj.public_id,
        outcome=outcome,
        details=details,
    )


def _move(req: RecordingRequest, to_status: str, actor, *, summary: str, body: str | None = None) -> None:
    """Change the status, or refuse with RequestError if the state machine does not allow it."""
    if to_status not in TRANSITIONS[req.status]:
        raise RequestError(f"This request is {req.status_label.lower()}, so that cannot be done now.")
    from_status = req.status
    req.status = to_status
    req.updated_at = now_utc()
    if to_status in ("completed", "no_recordings_found", "refused", "withdrawn"):
        req.closed_at = now_utc()
    _timeline(req, kind="status", actor=actor, summary=summary, body=body, from_status=from_status, to_status=to_status)
    _audit(req, "request_status_changed", actor, from_status=from_status, to_status=to_status)


def _lock(req: RecordingRequest) -> RecordingRequest:
    """Re-read the request holding its row (PostgreSQL) until commit, so two staff actions on one request
    happen one after the other and each sees the other's result."""
    db.session.execute(select(RecordingRequest.id).where(RecordingRequest.id == req.id).with_for_update()).scalar_one()
    db.session.refresh(req)
    return req


def _email_patient(req: RecordingRequest, template: str, **context) -> None:
    """Tell the patient there is an update (`templates/emails/requests/<template>.txt`); what it is waits
    behind sign-in. The template gets the reference, the link and dates, never the request's text."""
    if req.patient is None:
        return  # Logged for someone without an account: staff reply by the route the request came in.
    subject, body = render_email(
        f"requests/{template}.txt",
        greeting=f"Dear {req.patient.given_name},",
        practice_name=practice_settings().practice_name,
        reference=req.reference,
        link=absolute_url_for("portal.request_detail", reference=req.reference),
        **context,
    )
    queue_email(to=req.patient.email, subject=subject, body=body)


# ---------------------------------------------------------------------------------------------------------
# The legal clock
# ---------------------------------------------------------------------------------------------------------


def _start_clock(req: RecordingRequest, identity_confirmed_on: date) -> None:
    req.identity_confirmed_on = identity_confirmed_on
    req.relevant_day = legal_clock.relevant_day(req.received_on, identity_confirmed_on)
    _recompute_due(req)


def _recompute_due(req: RecordingRequest) -> None:
    if req.relevant_day is None:
        req.due_on = None
        return
    req.due_on = legal_clock.due_date(
        req.relevant_day, paused_days=req.paused_days, extended=req.extended_at is not None
    )


def original_due_on(req: RecordingRequest) -> date | None:
    """The due date without any extension (pauses still count): the last day an extension may be made."""
    if req.relevant_day is None:
        return None
    return legal_clock.due_date(req.relevant_day, paused_days=req.paused_days)


def is_overdue(req: RecordingRequest, today: date | None = None) -> bool:
    return (
        not req.is_closed
        and req.status != "released"
        and req.due_on is not None
        and req.due_on < (today or practice_today())
    )


# ---------------------------------------------------------------------------------------------------------
# Submission
# ---------------------------------------------------------------------------------------------------------


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
        status="submitted" if patient.is_verified else "awaiting_identity",
        notice_version_id=_published_notice_id(),
        submission_key=submission_key,
        **details.__dict__,
    )
    db.session.add(req)
    db.session.flush()
    if patient.is_verified:
        _start_clock(req, _identity_date(patient) or today)
    _timeline(req, kind="status", actor=patient, summary="Request received", to_status=req.status)
    _audit(req, "request_submitted", patient, status=req.status, via="online")
    _email_patient(req, "request-received", waiting_for_identity=req.status == "awaiting_identity", due_on=req.due_on)
    return req


def _identity_date(patient: Patient) -> date | None:
    decided = patient.identity_decided_at
    if decided is None:
        return None
    return decided.astimezone(LONDON).date()


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


@transactional
def log_offline_request(actor: StaffUser, offline: OfflineRequest) -> RecordingRequest:
    """A request received by letter, phone, email or at the desk, with its true received date. The clock
    starts on the later of that date and the date identity was confirmed (the patient's verification, or a
    check staff record here); until then the request waits in `awaiting_identity`. A refusal names the field of
    `OfflineRequest` (or of its `CallDetails`) at fault."""
    today = practice_today()
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
    identity_on = offline.identity_confirmed_on
    if identity_on is None and offline.patient is not None and offline.patient.is_verified:
        identity_on = _identity_date(offline.patient) or offline.received_on
    req = RecordingRequest(
        reference=_next_reference(today.year),
        patient_id=offline.patient.id if offline.patient else None,
        requester_name=None if offline.patient else offline.requester_name,
        requester_nhs_number=None if offline.patient else offline.requester_nhs_number,
        requester_date_of_birth=None if offline.patient else offline.requester_date_of_birth,
        requester_contact=None if offline.patient else (offline.requester_contact or None),
        received_via=offline.received_via,
        received_on=offline.received_on,
        logged_by_id=actor.id,
        status="awaiting_identity" if identity_on is None else "submitted",
        **offline.details.__dict__,
    )
    db.session.add(req)
    db.session.flush()
    if identity_on is not None:
        _start_clock(req, identity_on)
    _timeline(
        req,
        kind="status",
        actor=actor,
        summary=f"Request received ({RECEIVED_VIA[offline.received_via].lower()}) and logged by the practice",
        to_status=req.status,
    )
    _audit(req, "request_logged_offline", actor, status=req.status, via=offline.received_via)
    if req.patient is not None:
        _email_patient(req, "request-logged")
    return req


def start_clocks_for_verified_patient(patient: Patient, actor) -> None:
    """Called when a patient's identity is confirmed (inside that transaction): their requests waiting for it
    start their legal clock today."""
    today = _identity_date(patient) or practice_today()
    waiting = db.session.execute(
        select(RecordingRequest).where(
            RecordingRequest.patient_id == patient.id, RecordingRequest.status == "awaiting_identity"
        )
    ).scalars()
    for req in waiting:
        _start_clock(req, today)
        _move(req, "submitted", actor, summary="Identity confirmed: the time limit has started")
        _email_patient(req, "request-started", due_on=req.due_on)


# ---------------------------------------------------------------------------------------------------------
# Staff actions
# ---------------------------------------------------------------------------------------------------------


def _require_text(value: str, message: str) -> str:
    value = (value or "").strip()
    if not value:
        raise RequestError(message)
    return value


@transactional
def assign(actor: StaffUser, req: RecordingRequest, assignee: StaffUser | None) -> None:
    req = _lock(req)
    if req.is_closed:
        raise RequestError("This request is closed.")
    if assignee is not None and not assignee.is_active:
        raise RequestError("That staff member's account is not active.")
    req.assigned_to_id = assignee.id if assignee else None
    req.updated_at = now_utc()
    summary = f"Assigned to {assignee.name}" if assignee else "Unassigned"
    _timeline(req, kind="assignment", actor=actor, summary=summary, visible=False)
    _audit(req, "request_assigned", actor, assignee=assignee.public_id if assignee else None)
    if req.status == "submitted" and assignee is not None:
        _move(req, "in_progress", actor, summary="The practice started work on the request")


@transactional
def add_note(actor: StaffUser, req: RecordingRequest, note: str) -> None:
    note = _require_text(note, "Enter the note.")
    _timeline(req, kind="note", actor=actor, summary="Internal note", body=note[:5000], visible=False)
    _audit(req, "request_note_added", actor)


@transactional
def start_work(actor: StaffUser, req: RecordingRequest) -> None:
    req = _lock(req)
    if req.status != "submitted":
        # A released request goes back to being processed only by revoking its link (releases.revoke_release).
        raise RequestError(f"This request is {req.status_label.lower()}, so that cannot be done now.")
    _move(req, "in_progress", actor, summary="The practice started work on the request")


@transactional
def ask_for_clarification(actor: StaffUser, req: RecordingRequest, question: str) -> None:
    """Ask the patient something the practice genuinely needs to find the recordings: the clock pauses until
    the patient answers (ICO guidance), and the due date moves by the length of the pause."""
    question = _require_text(question, "Enter the question for the patient.")
    req = _lock(req)
    _move(
        req,
        "clarification_requested",
        actor,
        summary="The practice asked for more information",
        body=question[:5000],
    )
    req.paused_since = practice_today()
    _audit(req, "request_clarification_requested", actor)
    _email_patient(req, "more-information-needed")


@transactional
def answer_clarification(actor, req: RecordingRequest, answer: str) -> None:
    """The patient's reply (or staff recording one received by phone or letter): the clock restarts."""
    answer = _require_text(answer, "Enter your answer.")
    req = _lock(req)
    if req.status != "clarification_requested":
        raise RequestError("The practice is not waiting for an answer on this request.")
    paused = (practice_today() - req.paused_since).days if req.paused_since else 0
    req.paused_days += max(paused, 0)
    req.paused_since = None
    _recompute_due(req)
    by = "Reply from the patient" if actor is not None and actor.kind == "patient" else "Reply recorded by the practice"
    _move(req, "in_progress", actor, summary=by, body=answer[:5000])
    _audit(req, "request_clarification_answered", actor, paused_days=paused, due_on=req.due_on)


@transactional
def extend(actor: StaffUser, req: RecordingRequest, reason: str) -> None:
    """Extend by two further months (three from the relevant day), once, before the original due date,
    with a reason the patient is sent."""
    reason = _require_text(reason, "Enter the reason for the extension. The patient will see it.")
    req = _lock(req)
    if req.is_closed or req.status == "released":
        raise RequestError("Only an open request can be extended.")
    if req.extended_at is not None:
        raise RequestError("This request has already been extended. It can be extended only once.")
    if req.relevant_day is None:
        raise RequestError("The time limit has not started yet (identity is not confirmed).")
    if not legal_clock.can_extend(original_due_on(req), practice_today()):
        raise RequestError("The original due date has passed, so the request can no longer be extended.")
    before = req.due_on
    req.extended_at = now_utc()
    req.extension_reason = reason[:5000]
    _recompute_due(req)
    req.updated_at = now_utc()
    _timeline(
        req, kind="extension", actor=actor, summary=f"Time limit extended to {long_date(req.due_on)}", body=reason
    )
    _audit(req, "request_extended", actor, due_before=before, due_after=req.due_on)
    _email_patient(req, "time-limit-extended")


@transactional
def mark_no_recordings(actor: StaffUser, req: RecordingRequest, explanation: str) -> None:
    explanation = _require_text(explanation, "Enter the explanation. The patient will see it.")
    req = _lock(req)
    _move(req, "no_recordings_found", actor, summary="No recordings were found", body=explanation[:5000])
    _email_patient(req, "search-finished")


@transactional
def refuse(actor: StaffUser, req: RecordingRequest, reason: str, *, partly: bool) -> None:
    """Refuse the request, or part of it. The patient is sent the reason with their right to complain to the
    ICO and to go to court. A partial refusal leaves the rest of the request open."""
    reason = _require_text(reason, "Enter the reason for the refusal. The patient will see it.")
    req = _lock(req)
    body = f"{reason[:5000]}\n\n{RIGHTS_TEXT}"
    if partly:
        if req.is_closed:
            raise RequestError("This request is closed.")
        req.partly_refused = True
        req.refusal_reason = reason[:5000]
        _timeline(req, kind="refusal", actor=actor, summary="Part of the request was refused", body=body)
        _audit(req, "request_partly_refused", actor)
    else:
        req.refusal_reason = reason[:5000]
        _move(req, "refused", actor, summary="Request refused", body=body)
    _email_patient(req, "decision-made")


@transactional
def close(actor: StaffUser, req: RecordingRequest, note: str = "") -> None:
    """Complete the request: after a release, or once the recordings were given another way (listened to at
    the practice, a transcript), which `note` then says for the patient."""
    req = _lock(req)
    if req.status == "in_progress" and not (note or "").strip():
        raise RequestError("Say how the patient received their recordings (for example, listened at the practice).")
    _move(req, "completed", actor, summary="Request completed", body=(note or "").strip()[:5000] or None)


@transactional
def withdraw(patient: Patient, req: RecordingRequest) -> None:
    req = _lock(req)
    _move(req, "withdrawn", patient, summary="Request withdrawn by the patient")
    # A release waiting for approval is not approved now.
    pending = db.session.execute(
        select(Release).where(
            Release.request_id == req.id, Release.approved_at.is_(None), Release.declined_at.is_(None)
        )
    ).scalars()
    for release in pending:
        release.declined_at = now_utc()
        _audit(req, "release_declined", patient, release=release.public_id, reason="request_withdrawn")
    _email_patient(req, "request-withdrawn")


# ---------------------------------------------------------------------------------------------------------
# Complaints (UK DPA 2018 s.164A)
# ---------------------------------------------------------------------------------------------------------


@transactional
def complain(patient: Patient, req: RecordingRequest, body: str) -> Complaint:
    body = _require_text(body, "Enter your complaint.")
    now = now_utc()
    complaint = Complaint(
        request_id=req.id,
        received_at=now,
        acknowledge_by=practice_today() + timedelta(days=COMPLAINT_ACKNOWLEDGE_DAYS),
        body=body[:10000],
    )
    db.session.add(complaint)
    db.session.flush()
    _timeline(
        req,
        kind="complaint",
        actor=patient,
        summary="The patient complained about how the request was handled",
        body=body[:10000],
    )
    _audit_object(
        patient,
        "complaint_received",
        complaint,
        details={"request": req.reference},
    )
    _email_patient(req, "complaint-received", acknowledge_by=complaint.acknowledge_by)
    return complaint


@transactional
def acknowledge_complaint(actor: StaffUser, complaint: Complaint, message: str) -> None:
    message = _require_text(message, "Enter the acknowledgement the patient will see.")
    if complaint.acknowledged_at is not None:
        raise RequestError("This complaint has already been acknowledged.")
    complaint.acknowledged_at = now_utc()
    complaint.acknowledged_by_id = actor.id
    req = complaint.request
    _timeline(
        req, kind="complaint", actor=actor, summary="The practice acknowledged the complaint", body=message[:5000]
    )
    _audit_object(
        actor,
        "complaint_acknowledged",
        complaint,
        details={"request": req.reference, "late": practice_today() > complaint.acknowledge_by},
    )
    _email_patient(req, "complaint-acknowledged")


def complaints_for(req: RecordingRequest) -> list[Complaint]:
    return list(
        db.session.execute(select(Complaint).where(Complaint.request_id == req.id).order_by(Complaint.id)).scalars()
    )


def complaints_awaiting_acknowledgement(limit: int = 200) -> list[Complaint]:
    return list(
        db.session.execute(
            select(Complaint)
            .where(Complaint.acknowledged_at.is_(None))
            .order_by(Complaint.acknowledge_by, Complaint.id)
            .limit(limit)
        ).scalars()
    )


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def long_date(day: date | None) -> str:
    """A due date as letters and emails say it: "Tuesday 3 March 2026" (core.formatters)."""
    return format_date(day, weekday=True) if day else "not yet set"


def patient_request(patient: Patient, reference: str) -> RecordingRequest | None:
    """The patient's own request with this reference, or None: another patient's is indistinguishable from
    one that does not exist (SECURITY G1)."""
    return db.session.execute(
        select(RecordingRequest).where(
            RecordingRequest.reference == reference, RecordingRequest.patient_id == patient.id
        )
    ).scalar_one_or_none()


def request_by_reference(reference: str) -> RecordingRequest | None:
    return db.session.execute(
        select(RecordingRequest).where(RecordingRequest.reference == reference)
    ).scalar_one_or_none()


def patient_requests(patient: Patient) -> list[RecordingRequest]:
    return list(
        db.session.execute(
            select(RecordingRequest)
            .where(RecordingRequest.patient_id == patient.id)
            .order_by(RecordingRequest.created_at.desc(), RecordingRequest.id.desc())
        ).scalars()
    )


def timeline(req: RecordingRequest, *, for_patient: bool) -> list[RequestEvent]:
    statement = select(RequestEvent).where(RequestEvent.request_id == req.id)
    if for_patient:
        statement = statement.where(RequestEvent.visible_to_patient.is_(True))
    return list(db.session.execute(statement.order_by(RequestEvent.id)).scalars())


def latest_question(req: RecordingRequest) -> RequestEvent | None:
    if req.status != "clarification_requested":
        return None
    return db.session.execute(
        select(RequestEvent)
        .where(RequestEvent.request_id == req.id, RequestEvent.to_status == "clarification_requested")
        .order_by(RequestEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class QueueFilter:
    status: str = ""  # a status, "open" (default) or "all"
    overdue: bool = False
    due_soon: bool = False  # within 7 working days
    mine_id: int | None = None
    search: str = ""


@dataclass(frozen=True)
class QueuePage:
    requests: list[RecordingRequest]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def queue(filters: QueueFilter, *, page: int = 1, per_page: int = 25, today: date | None = None) -> QueuePage:
    """The staff queue, soonest due first (requests whose clock has not started come last). Filtering and
    counting happen in the database on indexed columns; only one page of rows is loaded.

    Requests with a due date and those without are read separately: ordered by (due_on, id) alone, the
    first come straight from the index on those columns, whereas ordering by `due_on IS NULL` first made
    the database sort every matching row for each page (66 ms against 1 ms for the first page of 100,000
    on SQLite; scripts/bench_request_queue.py)."""
    where = _queue_where(filters, today or practice_today())
    dated = and_(where, RecordingRequest.due_on.is_not(None))
    undated = and_(where, RecordingRequest.due_on.is_(None))
    dated_total = db.session.execute(select(func.count(RecordingRequest.id)).where(dated)).scalar_one()
    total = dated_total + db.session.execute(select(func.count(RecordingRequest.id)).where(undated)).scalar_one()
    page = max(1, min(page, max(1, -(-total // per_page))))
    start = (page - 1) * per_page
    rows: list[RecordingRequest] = []
    if start < dated_total:
        rows += db.session.execute(
            select(RecordingRequest)
            .where(dated)
            .order_by(RecordingRequest.due_on, RecordingRequest.id)
            .offset(start)
            .limit(per_page)
        ).scalars()
    if len(rows) < per_page and start + len(rows) < total:
        rows += db.session.execute(
            select(RecordingRequest)
            .where(undated)
            .order_by(RecordingRequest.id)
            .offset(max(0, start - dated_total))
            .limit(per_page - len(rows))
        ).scalars()
    return QueuePage(requests=rows, page=page, per_page=per_page, total=total)


def queue_count(filters: QueueFilter, *, today: date | None = None) -> int:
    """How many requests `queue` would list with these filters (one COUNT, for the staff home page)."""
    where = _queue_where(filters, today or practice_today())
    return db.session.execute(select(func.count(RecordingRequest.id)).where(where)).scalar_one()


def _queue_where(filters: QueueFilter, today: date):
    conditions = []
    if filters.status in ("", "open"):
        conditions.append(RecordingRequest.status.in_(OPEN_STATUSES))
    elif filters.status != "all":
        conditions.append(RecordingRequest.status == filters.status)
    work_statuses = [status for status in OPEN_STATUSES if status != "released"]
    if filters.overdue:
        conditions += [RecordingRequest.due_on < today, RecordingRequest.status.in_(work_statuses)]
    if filters.due_soon:
        conditions += [
            RecordingRequest.due_on >= today,
            RecordingRequest.due_on <= legal_clock.add_working_days(today, 7),
            RecordingRequest.status.in_(work_statuses),
        ]
    if filters.mine_id is not None:
        conditions.append(RecordingRequest.assigned_to_id == filters.mine_id)
    if filters.search:
        conditions.append(_search_condition(filters.search))
    return and_(*conditions) if conditions else true()


def _search_condition(term: str):
    term = term.strip()
    if term.upper().startswith("CR-"):
        return RecordingRequest.reference == term.upper()
    nhs_number = parse_nhs_number(term)
    if nhs_number:
        patient_ids = select(Patient.id).where(Patient.nhs_number == nhs_number)
        return or_(RecordingRequest.patient_id.in_(patient_ids), RecordingRequest.requester_nhs_number == nhs_number)
    lowered = term.lower()
    patient_ids = select(Patient.id).where(
        or_(
            func.lower(Patient.family_name) == lowered,
            func.lower(Patient.given_name + " " + Patient.family_name) == lowered,
        )
    )
    return or_(RecordingRequest.patient_id.in_(patient_ids), func.lower(RecordingRequest.requester_name) == lowered)


def status_counts() -> dict[str, int]:
    rows = db.session.execute(select(RecordingRequest.status, func.count()).group_by(RecordingRequest.status))
    return {status: count for status, count in rows}


# ---------------------------------------------------------------------------------------------------------
# For the staff pages
# ---------------------------------------------------------------------------------------------------------


@transactional
def confirm_requester_identity(actor: StaffUser, req: RecordingRequest, confirmed_on: date) -> None:
    """Staff confirmed who made a request logged for someone without an account: the clock starts on the
    later of the day it was received and `confirmed_on`. (A patient with an account is verified on their
    patient page instead, which starts the clock of each of their requests.)"""
    req = _lock(req)
    if req.patient is not None:
        raise RequestError("Confirm this patient's identity on their patient page.")
    if req.status != "awaiting_identity":
        raise RequestError("This request is not waiting for an identity check.")
    if confirmed_on > practice_today():
        raise RequestError("The date identity was confirmed must be today or in the past.")
    _start_clock(req, confirmed_on)
    _move(req, "submitted", actor, summary="Identity confirmed: the time limit has started")
    _audit(req, "request_identity_confirmed", actor, confirmed_on=confirmed_on, due_on=req.due_on)


def complaint_by_public_id(public_id: str) -> Complaint | None:
    return db.session.execute(select(Complaint).where(Complaint.public_id == public_id)).scalar_one_or_none()


def count_complaints_awaiting_acknowledgement() -> int:
    return db.session.execute(select(func.count(Complaint.id)).where(Complaint.acknowledged_at.is_(None))).scalar_one()


def recently_acknowledged_complaints(limit: int = 50) -> list[Complaint]:
    return list(
        db.session.execute(
            select(Complaint)
            .where(Complaint.acknowledged_at.is_not(None))
            .order_by(Complaint.acknowledged_at.desc(), Complaint.id.desc())
            .limit(limit)
        ).scalars()
    )


def active_staff(*, clinicians_only: bool = False) -> list[StaffUser]:
    """Active members of staff by name: who a request can be assigned to or, with `clinicians_only`, who can
    record a clinical review of a release."""
    statement = select(StaffUser).where(StaffUser.is_active.is_(True))
    if clinicians_only:
        statement = statement.where(StaffUser.is_clinician.is_(True))
    return list(db.session.execute(statement.order_by(StaffUser.name, StaffUser.id)).scalars())


def patients_with_nhs_number(nhs_number: str, *, limit: int = 2) -> list[Patient]:
    """Patient accounts with this NHS number (at most `limit`): a request logged offline is linked to an
    account only when exactly one has it."""
    return list(
        db.session.execute(
            select(Patient).where(Patient.nhs_number == nhs_number).order_by(Patient.id).limit(limit)
        ).scalars()
    )
