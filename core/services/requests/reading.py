"""Reading requests for the pages: a patient's own requests, a request by reference, its timeline, the
question waiting for an answer, and the staff and patients a request can be linked to."""

from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.requests import RecordingRequest, RequestEvent, Status


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
    if req.status != Status.CLARIFICATION_REQUESTED:
        return None
    return db.session.execute(
        select(RequestEvent)
        .where(RequestEvent.request_id == req.id, RequestEvent.to_status == Status.CLARIFICATION_REQUESTED)
        .order_by(RequestEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()


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
