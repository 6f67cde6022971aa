"""The compliance dashboard's figures (the staff home page and its CSV download): what needs attention now,
and how the practice did over the last 12 months.

Nothing here names a patient or says what a request is about: only counts, dates and statuses.

**Months** are calendar months in London, the current one included (so far), oldest first. A date column
(`received_on`) is compared with the month's first days; a time (`closed_at`, `extended_at`, a release's
approval) with the UTC instants at which those London days begin, so a request closed at 00:30 on 1 April
(BST, 23:30 UTC on 31 March) counts in April.

For each month:

- **Received**: requests whose `received_on` falls in the month, whatever happened to them since (withdrawn
  and still waiting for an identity check included).
- **Completed**: requests the practice *answered* in the month, counted only once their legal clock had
  started (they have a due date). A request is answered when
  - its recordings were released (status `released`, or `completed` after a release): on the London date
    the first release was approved (the day the patient was sent the link; closing it afterwards changes
    nothing);
  - otherwise when it reached `completed` (the recordings given another way), `no_recordings_found` or
    `refused`: on the London date of `closed_at`.

  Withdrawn requests are never completed (the practice gave no answer), and neither is a request whose
  release was revoked and which is open again. A request refused before its clock started has no due date,
  so it counts among the refusals but not here.
- **Completed on time**: completed requests answered on or before their due date (`due_on`, which includes
  any extension and any pause for a clarification). **% on time** is on time / completed, rounded half up
  to a whole number; none when nothing was completed.
- **Median days to complete**: the median, over the completed requests, of the calendar days from
  `received_on` to the answer (half a day when the count is even and the middle two differ); none when
  nothing was completed.
- **Extensions**: requests whose time limit was extended in the month (`extended_at`).
- **Refusals**: requests refused in the month, each once: a full refusal in the month it was made
  (`closed_at`), otherwise a refusal of part of a request in the month of its first such decision (its
  first "refusal" timeline entry).

Cost: four grouped COUNTs (received, extensions, full and partial refusals), each with the month worked
out in SQL by a CASE on the month boundaries (portable: no date functions of either database); and one read
of five narrow columns of the requests answered in the window, joined to each request's first release
approval, because the London date of a time and the median are worked out in Python, the same way on
SQLite and PostgreSQL. No ORM objects are loaded. scripts/bench_dashboard.py times it at 100,000 requests.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import case, func, or_, select

from core.extensions import db
from core.legal_clock import add_months
from core.models.accounts import Patient
from core.models.requests import (
    REQUEST_STATUSES,
    STATUS_LABELS,
    Complaint,
    RecordingRequest,
    Release,
    RequestEvent,
    Status,
)
from core.services import requests as requests_service
from core.services.requests import LONDON, QueueFilter

MONTHS = 12
# Statuses in which a request may have been answered (see the module docstring).
ANSWERED_STATUSES = (Status.RELEASED, Status.COMPLETED, Status.NO_RECORDINGS_FOUND, Status.REFUSED)
RELEASE_ANSWERS = (Status.RELEASED, Status.COMPLETED)


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class Attention:
    """What needs attention today."""

    by_status: list[StatusCount]  # every status, in the order a request moves through them
    overdue: int
    due_soon: int  # due within 7 working days
    awaiting_identity: int
    complaints_waiting: int
    complaints_late: int  # of those, past their acknowledge-by date
    patients_awaiting_verification: int


@dataclass(frozen=True)
class MonthFigures:
    """One London calendar month's figures (definitions in the module docstring)."""

    month: date  # the first day of the month
    received: int = 0
    completed: int = 0
    on_time: int = 0
    median_days: float | int | None = None
    extensions: int = 0
    refusals: int = 0

    @property
    def percent_on_time(self) -> int | None:
        """On time as a whole percentage of completed, rounded half up; None when nothing was completed."""
        if not self.completed:
            return None
        return (200 * self.on_time + self.completed) // (2 * self.completed)

    @property
    def label(self) -> str:
        return f"{self.month:%B %Y}"


@dataclass(frozen=True)
class Dashboard:
    today: date
    attention: Attention
    months: list[MonthFigures]


def dashboard(today: date | None = None) -> Dashboard:
    """Everything the staff home page shows, as of `today` (the practice's date by default)."""
    today = today or requests_service.practice_today()
    return Dashboard(today=today, attention=attention(today), months=monthly_figures(today))


def attention(today: date) -> Attention:
    """Counts by status and what needs attention. The overdue, due-soon and identity counts use the queue's
    own filters (`requests.queue_count`), so each count is what its link to the queue lists."""
    counts = requests_service.status_counts()
    return Attention(
        by_status=[StatusCount(status, STATUS_LABELS[status], counts.get(status, 0)) for status in REQUEST_STATUSES],
        overdue=requests_service.queue_count(QueueFilter(overdue=True), today=today),
        due_soon=requests_service.queue_count(QueueFilter(due_soon=True), today=today),
        awaiting_identity=requests_service.queue_count(QueueFilter(status=Status.AWAITING_IDENTITY), today=today),
        complaints_waiting=requests_service.count_complaints_awaiting_acknowledgement(),
        complaints_late=_count(
            select(func.count(Complaint.id)).where(
                Complaint.acknowledged_at.is_(None), Complaint.acknowledge_by < today
            )
        ),
        # The same patients as accounts.patients_awaiting_verification lists, counted rather than loaded.
        patients_awaiting_verification=_count(
            select(func.count(Patient.id)).where(
                Patient.identity_status == "unverified", Patient.email_verified_at.is_not(None)
            )
        ),
    )


def _count(statement) -> int:
    return db.session.execute(statement).scalar_one()


def month_starts(today: date, months: int = MONTHS) -> list[date]:
    """The first days of the last `months` London months up to `today`'s, oldest first, then the first day
    of the next month (the end of the window): `months + 1` dates."""
    current = today.replace(day=1)
    return [add_months(current, offset) for offset in range(1 - months, 2)]


def london_midnight_utc(day: date) -> datetime:
    """The UTC instant at which `day` begins in London."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def london_date(moment: datetime) -> date:
    """A stored time's date in London."""
    return moment.astimezone(LONDON).date()


def monthly_figures(today: date | None = None) -> list[MonthFigures]:
    """The figures for each of the last 12 London months up to `today`'s (the practice's date by default),
    oldest first."""
    today = today or requests_service.practice_today()
    starts = month_starts(today)
    instants = [london_midnight_utc(day) for day in starts]
    request = RecordingRequest

    received = _count_by_month(select(request.received_on.label("at")), starts)
    extensions = _count_by_month(
        select(request.extended_at.label("at")).where(request.extended_at.is_not(None)), instants
    )
    full_refusals = _count_by_month(
        select(request.closed_at.label("at")).where(request.status == Status.REFUSED, request.closed_at.is_not(None)),
        instants,
    )
    first_partial_refusals = (
        select(func.min(RequestEvent.occurred_at).label("at"))
        .join(request, request.id == RequestEvent.request_id)
        .where(request.partly_refused.is_(True), request.status != Status.REFUSED, RequestEvent.kind == "refusal")
        .group_by(RequestEvent.request_id)
    )
    partial_refusals = _count_by_month(first_partial_refusals, instants)

    answers: list[list[tuple[date, date, date]]] = [[] for _ in range(MONTHS)]
    for received_on, due_on, answered_at in _answered_since(instants[0]):
        answered_on = london_date(answered_at)
        index = _month_index(answered_on, starts)
        if index is not None:
            answers[index].append((received_on, due_on, answered_on))

    figures = []
    for index, first_day in enumerate(starts[:-1]):
        month_answers = answers[index]
        days = [(answered_on - received_on).days for received_on, _due, answered_on in month_answers]
        figures.append(
            MonthFigures(
                month=first_day,
                received=received[index],
                completed=len(month_answers),
                on_time=sum(1 for _received, due_on, answered_on in month_answers if answered_on <= due_on),
                median_days=_median(days),
                extensions=extensions[index],
                refusals=full_refusals[index] + partial_refusals[index],
            )
        )
    return figures


def _median(days: list[int]) -> float | int | None:
    """The median number of days: a whole number when it is one (12, not 12.0), else a half (12.5)."""
    if not days:
        return None
    middle = statistics.median(days)
    return int(middle) if middle == int(middle) else middle


def _month_index(day: date, starts: list[date]) -> int | None:
    if not starts[0] <= day < starts[-1]:
        return None
    return (day.year - starts[0].year) * 12 + day.month - starts[0].month


def _count_by_month(moments, bounds: list) -> list[int]:
    """How many of the values `moments` selects (one column labelled "at") fall in each month, counted in
    the database: a CASE gives each value its month's number, and the counts are grouped by it. `bounds` are
    the months' starts (dates, or UTC instants for times) and the end of the window."""
    at = moments.subquery().c.at
    month = case(*[(at < bound, index) for index, bound in enumerate(bounds[1:])])
    bucketed = select(month.label("month")).where(at >= bounds[0], at < bounds[-1]).subquery()
    counts = [0] * (len(bounds) - 1)
    for index, count in db.session.execute(select(bucketed.c.month, func.count()).group_by(bucketed.c.month)):
        counts[index] = count
    return counts


def _answered_since(start: datetime) -> list[tuple[date, date, datetime]]:
    """(received_on, due_on, answered at) of each request with a due date answered since `start`, and of a
    few answered just before it (the caller keeps those in the window). The first approval of each request's
    releases comes from one grouped pass over the releases, joined on, rather than a lookup per request."""
    request = RecordingRequest
    first_releases = (
        select(Release.request_id, func.min(Release.approved_at).label("first_at"))
        .where(Release.approved_at.is_not(None))
        .group_by(Release.request_id)
        .subquery()
    )
    rows = db.session.execute(
        select(request.received_on, request.due_on, request.status, request.closed_at, first_releases.c.first_at)
        .outerjoin(first_releases, first_releases.c.request_id == request.id)
        .where(
            request.due_on.is_not(None),
            request.status.in_(ANSWERED_STATUSES),
            # A release comes before the request closes, so nothing answered since `start` closed before it.
            or_(request.closed_at >= start, first_releases.c.first_at >= start),
        )
    )
    answered = []
    for received_on, due_on, status, closed_at, first_at in rows:
        answered_at = first_at if status in RELEASE_ANSWERS and first_at is not None else closed_at
        if answered_at is not None:  # always set through the services; never worth a 500 on the home page
            answered.append((received_on, due_on, answered_at))
    return answered
