"""Complaints about how a request was handled (UK DPA 2018 s.164A): the patient complains on the request's
page; the practice acknowledges within 30 days."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.requests import Complaint, RecordingRequest
from core.services.db import transactional
from core.services.requests.lifecycle import RequestError, add_timeline_entry, audit_object, now_utc, practice_today
from core.services.requests.messages import email_patient, require_text

COMPLAINT_ACKNOWLEDGE_DAYS = 30


@transactional
def complain(patient: Patient, req: RecordingRequest, body: str) -> Complaint:
    body = require_text(body, "Enter your complaint.")
    now = now_utc()
    complaint = Complaint(
        request_id=req.id,
        received_at=now,
        acknowledge_by=practice_today() + timedelta(days=COMPLAINT_ACKNOWLEDGE_DAYS),
        body=body[:10000],
    )
    db.session.add(complaint)
    db.session.flush()
    add_timeline_entry(
        req,
        kind="complaint",
        actor=patient,
        summary="The patient complained about how the request was handled",
        body=body[:10000],
    )
    audit_object(
        patient,
        "complaint_received",
        complaint,
        details={"request": req.reference},
    )
    email_patient(req, "complaint-received", acknowledge_by=complaint.acknowledge_by)
    return complaint


@transactional
def acknowledge_complaint(actor: StaffUser, complaint: Complaint, message: str) -> None:
    message = require_text(message, "Enter the acknowledgement the patient will see.")
    if complaint.acknowledged_at is not None:
        raise RequestError("This complaint has already been acknowledged.")
    complaint.acknowledged_at = now_utc()
    complaint.acknowledged_by_id = actor.id
    req = complaint.request
    add_timeline_entry(
        req, kind="complaint", actor=actor, summary="The practice acknowledged the complaint", body=message[:5000]
    )
    audit_object(
        actor,
        "complaint_acknowledged",
        complaint,
        details={"request": req.reference, "late": practice_today() > complaint.acknowledge_by},
    )
    email_patient(req, "complaint-acknowledged")


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
