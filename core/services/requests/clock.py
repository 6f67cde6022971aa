"""The legal clock of a request (core.legal_clock does the counting): when it starts, its due date, and
whether the request is overdue. Dates that matter in law are the practice's dates: the day in London."""

from __future__ import annotations

from datetime import date

from core import legal_clock
from core.formatters import format_date
from core.models.accounts import Patient
from core.models.requests import RecordingRequest, Status
from core.services.requests.lifecycle import LONDON, practice_today


def start_clock(req: RecordingRequest, identity_confirmed_on: date) -> None:
    """Start the clock on the later of the day the request was received and the day identity was confirmed."""
    req.identity_confirmed_on = identity_confirmed_on
    req.relevant_day = legal_clock.relevant_day(req.received_on, identity_confirmed_on)
    recompute_due(req)


def recompute_due(req: RecordingRequest) -> None:
    """The due date from the relevant day, the days paused waiting for the patient, and any extension."""
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
        and req.status != Status.RELEASED
        and req.due_on is not None
        and req.due_on < (today or practice_today())
    )


def identity_date(patient: Patient) -> date | None:
    """The day (in London) the patient's identity was decided, or None if it has not been."""
    decided = patient.identity_decided_at
    if decided is None:
        return None
    return decided.astimezone(LONDON).date()


def long_date(day: date | None) -> str:
    """A due date as letters and emails say it: "Tuesday 3 March 2026" (core.formatters)."""
    return format_date(day, weekday=True) if day else "not yet set"
