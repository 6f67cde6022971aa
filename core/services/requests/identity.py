"""Identity confirmed: a request waiting for it (`awaiting_identity`) is received, and its legal clock starts."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.requests import RecordingRequest, Status
from core.services.db import transactional
from core.services.requests.clock import identity_date, start_clock
from core.services.requests.lifecycle import RequestError, audit, lock, move, practice_today
from core.services.requests.messages import email_patient


def start_clocks_for_verified_patient(patient: Patient, actor) -> None:
    """Called when a patient's identity is confirmed (inside that transaction): their requests waiting for it
    start their legal clock today."""
    today = identity_date(patient) or practice_today()
    waiting = db.session.execute(
        select(RecordingRequest).where(
            RecordingRequest.patient_id == patient.id, RecordingRequest.status == Status.AWAITING_IDENTITY
        )
    ).scalars()
    for req in waiting:
        start_clock(req, today)
        move(req, Status.SUBMITTED, actor, summary="Identity confirmed: the time limit has started")
        email_patient(req, "request-started", due_on=req.due_on)


@transactional
def confirm_requester_identity(actor: StaffUser, req: RecordingRequest, confirmed_on: date) -> None:
    """Staff confirmed who made a request logged for someone without an account: the clock starts on the
    later of the day it was received and `confirmed_on`. (A patient with an account is verified on their
    patient page instead, which starts the clock of each of their requests.)"""
    req = lock(req)
    if req.patient is not None:
        raise RequestError("Confirm this patient's identity on their patient page.")
    if req.status != Status.AWAITING_IDENTITY:
        raise RequestError("This request is not waiting for an identity check.")
    if confirmed_on > practice_today():
        raise RequestError("The date identity was confirmed must be today or in the past.")
    start_clock(req, confirmed_on)
    move(req, Status.SUBMITTED, actor, summary="Identity confirmed: the time limit has started")
    audit(req, "request_identity_confirmed", actor, confirmed_on=confirmed_on, due_on=req.due_on)
