"""The staff queue: requests filtered (status, overdue, due soon, assigned to me, a search) and paged in the
database, soonest due first, and the counts by status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, func, or_, select, true

from core import legal_clock
from core.extensions import db
from core.models.accounts import Patient
from core.models.requests import RecordingRequest, Status
from core.services.register import parse_nhs_number
from core.services.requests.lifecycle import OPEN_STATUSES, practice_today


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
    work_statuses = [status for status in OPEN_STATUSES if status != Status.RELEASED]
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
