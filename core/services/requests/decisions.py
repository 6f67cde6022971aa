"""How a request ends: no recordings found, refused (in whole or in part), completed, or withdrawn by the
patient. A refusal is sent with the patient's rights (RIGHTS_TEXT)."""

from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.requests import RecordingRequest, Release, Status
from core.services.db import transactional
from core.services.requests.lifecycle import RequestError, add_timeline_entry, audit, lock, move, now_utc
from core.services.requests.messages import RIGHTS_TEXT, email_patient, require_text


@transactional
def mark_no_recordings(actor: StaffUser, req: RecordingRequest, explanation: str) -> None:
    explanation = require_text(explanation, "Enter the explanation. The patient will see it.")
    req = lock(req)
    move(req, Status.NO_RECORDINGS_FOUND, actor, summary="No recordings were found", body=explanation[:5000])
    email_patient(req, "search-finished")


@transactional
def refuse(actor: StaffUser, req: RecordingRequest, reason: str, *, partly: bool) -> None:
    """Refuse the request, or part of it. The patient is sent the reason with their right to complain to the
    ICO and to go to court. A partial refusal leaves the rest of the request open."""
    reason = require_text(reason, "Enter the reason for the refusal. The patient will see it.")
    req = lock(req)
    body = f"{reason[:5000]}\n\n{RIGHTS_TEXT}"
    if partly:
        if req.is_closed:
            raise RequestError("This request is closed.")
        req.partly_refused = True
        req.refusal_reason = reason[:5000]
        add_timeline_entry(req, kind="refusal", actor=actor, summary="Part of the request was refused", body=body)
        audit(req, "request_partly_refused", actor)
    else:
        req.refusal_reason = reason[:5000]
        move(req, Status.REFUSED, actor, summary="Request refused", body=body)
    email_patient(req, "decision-made")


@transactional
def close(actor: StaffUser, req: RecordingRequest, note: str = "") -> None:
    """Complete the request: after a release, or once the recordings were given another way (listened to at
    the practice, a transcript), which `note` then says for the patient."""
    req = lock(req)
    if req.status == Status.IN_PROGRESS and not (note or "").strip():
        raise RequestError("Say how the patient received their recordings (for example, listened at the practice).")
    move(req, Status.COMPLETED, actor, summary="Request completed", body=(note or "").strip()[:5000] or None)


@transactional
def withdraw(patient: Patient, req: RecordingRequest) -> None:
    req = lock(req)
    move(req, Status.WITHDRAWN, patient, summary="Request withdrawn by the patient")
    # A release waiting for approval is not approved now.
    pending = db.session.execute(
        select(Release).where(
            Release.request_id == req.id, Release.approved_at.is_(None), Release.declined_at.is_(None)
        )
    ).scalars()
    for release in pending:
        release.declined_at = now_utc()
        audit(req, "release_declined", patient, release=release.public_id, reason="request_withdrawn")
    email_patient(req, "request-withdrawn")
