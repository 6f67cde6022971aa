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
from core.models.accounts import StaffUser
from core.models.requests import STATUS_LABELS, RecordingRequest
from core.services.audit import record_event
from core.services.db import transactional
from core.services.email import queue_email
from core.services.requests import (
    complaints_awaiting_acknowledgement,
    long_date,
    practice_today,
)
from core.services.settings import practice_settings
from core.services.tokens import absolute_url_for

DUE_SOON_WORKING_DAYS = 7
# Requests still needing work from the practice (a released request is waiting for the patient).
WORK_STATUSES = ("submitted", "clarification_requested", "in_progress", "ready_for_approval")


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


def _line(req: RecordingRequest, today: date) -> str:
    days = legal_clock.working_days_between(today, req.due_on)
    when = f"{-days} working days overdue" if days < 0 else ("due today" if days == 0 else f"{days} working days left")
    who = f"assigned to {req.assigned_to.name}" if req.assigned_to else "not assigned"
    link = absolute_url_for("admin.request_detail", reference=req.reference)
    return (
        f"- {req.reference}: due {long_date(req.due_on)} ({when}); {STATUS_LABELS[req.status].lower()}; {who}\n  {link}"
    )


def digest_text(digest: Digest) -> str:
    sections = []
    if digest.overdue:
        sections.append("OVERDUE\n" + "\n".join(_line(req, digest.today) for req in digest.overdue))
    if digest.due_soon:
        sections.append(
            f"DUE WITHIN {DUE_SOON_WORKING_DAYS} WORKING DAYS\n"
            + "\n".join(_line(req, digest.today) for req in digest.due_soon)
        )
    if digest.complaints:
        lines = []
        for complaint in digest.complaints:
            late = " (late)" if complaint.acknowledge_by < digest.today else ""
            link = absolute_url_for("admin.complaint_list")
            lines.append(
                f"- Complaint about {complaint.request.reference}: acknowledge by "
                f"{long_date(complaint.acknowledge_by)}{late}\n  {link}"
            )
        sections.append("COMPLAINTS WAITING FOR AN ACKNOWLEDGEMENT\n" + "\n".join(lines))
    return "\n\n".join(sections)


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
    subject = (
        f"Call recording requests: {len(digest.overdue)} overdue, {len(digest.due_soon)} due soon, "
        f"{len(digest.complaints)} complaints to acknowledge"
    )
    sent = 0
    for member in staff:
        body = (
            f"Dear {member.name},\n\n{digest_text(digest)}\n\n"
            f"Sign in to the staff area to act on these.\n\n{practice}\n"
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
