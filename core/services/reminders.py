"""The staff reminder digest (`flask reminders send`, run each working morning): requests due within seven
working days, overdue requests, and complaints waiting for their acknowledgement.

One email per active member of staff, through the outbox. It names references, dates and states only: no
patient's name or health details leave the portal in an email (DESIGN §6); each line links to the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from core import legal_clock
from core.extensions import db
from core.jinja import render_email
from core.models.accounts import StaffUser
from core.models.requests import STATUS_LABELS, RecordingRequest, Status
from core.services.audit import record_event
from core.services.db import transactional
from core.services.email import queue_email
from core.services.requests import (
    complaints_awaiting_acknowledgement,
    practice_today,
)
from core.services.settings import practice_settings
from core.services.tokens import absolute_url_for

DUE_SOON_WORKING_DAYS = 7
# Requests still needing work from the practice (a released request is waiting for the patient).
WORK_STATUSES = (Status.SUBMITTED, Status.CLARIFICATION_REQUESTED, Status.IN_PROGRESS, Status.READY_FOR_APPROVAL)


@dataclass(frozen=True)
class Digest:
    overdue: list[RecordingRequest]
    due_soon: list[RecordingRequest]
    complaints: list
    today: date

    @property
    def is_empty(self) -> bool:
        return not (self.overdue or self.due_soon or self.complaints)


def build_digest(today: date | None = None) -> Digest:
    today = today or practice_today()
    horizon = legal_clock.add_working_days(today, DUE_SOON_WORKING_DAYS)
    open_with_clock = (
        select(RecordingRequest)
        .where(RecordingRequest.status.in_(WORK_STATUSES), RecordingRequest.due_on.is_not(None))
        .order_by(RecordingRequest.due_on, RecordingRequest.id)
    )
    overdue = list(db.session.execute(open_with_clock.where(RecordingRequest.due_on < today)).scalars())
    due_soon = list(
        db.session.execute(
            open_with_clock.where(RecordingRequest.due_on >= today, RecordingRequest.due_on <= horizon)
        ).scalars()
    )
    return Digest(overdue, due_soon, complaints_awaiting_acknowledgement(), today)


def _item(req: RecordingRequest, today: date) -> dict:
    return {
        "reference": req.reference,
        "due_on": req.due_on,
        "days": legal_clock.working_days_between(today, req.due_on),
        "status": STATUS_LABELS[req.status],
        "assigned_to": req.assigned_to.name if req.assigned_to else None,
        "link": absolute_url_for("admin.request_detail", reference=req.reference),
    }


def digest_context(digest: Digest) -> dict:
    """What `templates/emails/staff/reminders.txt` shows: references, dates, statuses and assignees only."""
    complaints_link = absolute_url_for("admin.complaint_list")
    return {
        "overdue": [_item(req, digest.today) for req in digest.overdue],
        "due_soon": [_item(req, digest.today) for req in digest.due_soon],
        "due_soon_working_days": DUE_SOON_WORKING_DAYS,
        "complaints": [
            {
                "reference": complaint.request.reference,
                "acknowledge_by": complaint.acknowledge_by,
                "late": complaint.acknowledge_by < digest.today,
                "link": complaints_link,
            }
            for complaint in digest.complaints
        ],
    }


@transactional
def send_reminders(today: date | None = None) -> tuple[Digest, int]:
    """Queue the digest to every active member of staff with a password set. Returns the digest and the
    number of emails queued (none when there is nothing to report)."""
    digest = build_digest(today)
    if digest.is_empty:
        record_event(action="reminders_sent", details={"emails": 0, "overdue": 0, "due_soon": 0, "complaints": 0})
        return digest, 0
    staff = db.session.execute(
        select(StaffUser).where(StaffUser.is_active.is_(True), StaffUser.password_hash.is_not(None))
    ).scalars()
    practice = practice_settings().practice_name
    context = digest_context(digest)
    sent = 0
    for member in staff:
        subject, body = render_email(
            "staff/reminders.txt", greeting=f"Dear {member.name},", practice_name=practice, **context
        )
        queue_email(to=member.email, subject=subject, body=body)
        sent += 1
    record_event(
        action="reminders_sent",
        details={
            "emails": sent,
            "overdue": len(digest.overdue),
            "due_soon": len(digest.due_soon),
            "complaints": len(digest.complaints),
        },
    )
    return digest, sent
