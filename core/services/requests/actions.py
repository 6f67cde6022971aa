"""What staff do while working on a request (and the patient's answer to a question): assign it, add an
internal note, start work, ask the patient for more information, record the answer, extend the time limit."""

from __future__ import annotations

from core import legal_clock
from core.models.accounts import StaffUser
from core.models.requests import RecordingRequest, Status
from core.services.db import transactional
from core.services.requests.clock import long_date, original_due_on, recompute_due
from core.services.requests.lifecycle import (
    RequestError,
    add_timeline_entry,
    audit,
    lock,
    move,
    now_utc,
    practice_today,
)
from core.services.requests.messages import email_patient, require_text


@transactional
def assign(actor: StaffUser, req: RecordingRequest, assignee: StaffUser | None) -> None:
    req = lock(req)
    if req.is_closed:
        raise RequestError("This request is closed.")
    if assignee is not None and not assignee.is_active:
        raise RequestError("That staff member's account is not active.")
    req.assigned_to_id = assignee.id if assignee else None
    req.updated_at = now_utc()
    summary = f"Assigned to {assignee.name}" if assignee else "Unassigned"
    add_timeline_entry(req, kind="assignment", actor=actor, summary=summary, visible=False)
    audit(req, "request_assigned", actor, assignee=assignee.public_id if assignee else None)
    if req.status == Status.SUBMITTED and assignee is not None:
        move(req, Status.IN_PROGRESS, actor, summary="The practice started work on the request")


@transactional
def add_note(actor: StaffUser, req: RecordingRequest, note: str) -> None:
    note = require_text(note, "Enter the note.")
    add_timeline_entry(req, kind="note", actor=actor, summary="Internal note", body=note[:5000], visible=False)
    audit(req, "request_note_added", actor)


@transactional
def start_work(actor: StaffUser, req: RecordingRequest) -> None:
    req = lock(req)
    if req.status != Status.SUBMITTED:
        # A released request goes back to being processed only by revoking its link (releases.revoke_release).
        raise RequestError(f"This request is {req.status_label.lower()}, so that cannot be done now.")
    move(req, Status.IN_PROGRESS, actor, summary="The practice started work on the request")


@transactional
def ask_for_clarification(actor: StaffUser, req: RecordingRequest, question: str) -> None:
    """Ask the patient something the practice genuinely needs to find the recordings: the clock pauses until
    the patient answers (ICO guidance), and the due date moves by the length of the pause."""
    question = require_text(question, "Enter the question for the patient.")
    req = lock(req)
    move(
        req,
        Status.CLARIFICATION_REQUESTED,
        actor,
        summary="The practice asked for more information",
        body=question[:5000],
    )
    req.paused_since = practice_today()
    audit(req, "request_clarification_requested", actor)
    email_patient(req, "more-information-needed")


@transactional
def answer_clarification(actor, req: RecordingRequest, answer: str) -> None:
    """The patient's reply (or staff recording one received by phone or letter): the clock restarts."""
    answer = require_text(answer, "Enter your answer.")
    req = lock(req)
    if req.status != Status.CLARIFICATION_REQUESTED:
        raise RequestError("The practice is not waiting for an answer on this request.")
    paused = (practice_today() - req.paused_since).days if req.paused_since else 0
    req.paused_days += max(paused, 0)
    req.paused_since = None
    recompute_due(req)
    by = "Reply from the patient" if actor is not None and actor.kind == "patient" else "Reply recorded by the practice"
    move(req, Status.IN_PROGRESS, actor, summary=by, body=answer[:5000])
    audit(req, "request_clarification_answered", actor, paused_days=paused, due_on=req.due_on)


@transactional
def extend(actor: StaffUser, req: RecordingRequest, reason: str) -> None:
    """Extend by two further months (three from the relevant day), once, before the original due date,
    with a reason the patient is sent."""
    reason = require_text(reason, "Enter the reason for the extension. The patient will see it.")
    req = lock(req)
    if req.is_closed or req.status == Status.RELEASED:
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
    recompute_due(req)
    req.updated_at = now_utc()
    add_timeline_entry(
        req, kind="extension", actor=actor, summary=f"Time limit extended to {long_date(req.due_on)}", body=reason
    )
    audit(req, "request_extended", actor, due_before=before, due_after=req.due_on)
    email_patient(req, "time-limit-extended")
