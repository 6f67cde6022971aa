"""Reading the audit trail for admins: the audit viewer's filtered pages, its CSV export, the access report
for the practice's quarterly access review, and the chain's verification status.

Paging is by keyset on `seq`, newest first: a page is "the 50 matching events numbered below N" (or above N,
going back towards the newest), so a page deep in a million events costs the same short index walk as the
first one, and events written while someone pages never shift or repeat a row. Nothing here counts the whole
table.

A date range is also turned into a range of sequence numbers. Events are numbered in the order they are
written, and each is stamped with the time after its number is taken (see `record_event`), so the events of a
period are one unbroken run of numbers, found with two look-ups on the `occurred_at` index; every other filter
then walks one of the (column, seq) indexes within that run instead of sorting the period's events. The exact
time condition is kept as well, so an event stamped outside the period is never shown even if a server's clock
once went backwards (such an event could then only be missed at the edge of a period, never shown wrongly).

The viewer never shows health or identity details: members of staff are named, patients are shown by their
public id only, and an object filter that looks like an NHS number is refused (audit rows never hold one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select, text

from core.csv_cells import csv_rows
from core.extensions import db
from core.models.accounts import StaffUser
from core.models.audit import AuditCheck, AuditEvent
from core.models.requests import Recording, RecordingRequest, Release
from core.services.audit import SYSTEM_CHECKER, record_chain_check, record_event, verify_chain
from core.services.db import transactional
from core.services.requests import LONDON

PAGE_SIZE = 50
CSV_BATCH = 1000
MAX_SEQ = 2**63 - 1  # the largest BIGINT: a bigger number in a page link is refused, not sent to the database
MAX_ACTOR_LENGTH = 320  # an email address
MAX_OBJECT_LENGTH = 128  # AuditEvent.object_id
ACTOR_TYPE_LABELS = {"staff": "Staff", "patient": "Patient", "system": "System", "anonymous": "Anonymous"}
ACTION_NAME = re.compile(r"[a-z0-9_.]{1,64}")
PUBLIC_ID = re.compile(r"[0-9a-f]{32}")
REQUEST_REFERENCE = re.compile(r"CR-\d{4}-\d{5,}")
# Ten digits, perhaps spaced 3 3 4: what an NHS number looks like as typed.
NHS_NUMBER_SHAPE = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")

# What the access report counts: staff reading or releasing recordings, and patients receiving them.
STAFF_ACCESS_ACTIONS = {
    "recording_attached": "Uploaded a recording",
    "recording_listened": "Listened (parts sent to the player)",
    "recording_removed": "Removed a recording",
    "release_prepared": "Prepared a release",
    "release_approved": "Approved a release",
    "release_declined": "Sent a release back",
    "release_revoked": "Revoked a download link",
    "release_reissued": "Re-issued a download link",
    "authz_fail": "Refused: the recording is not on the request",
}
PATIENT_ACCESS_ACTIONS = {
    "download_page_viewed": "Opened the download page",
    "recording_played": "Played (parts sent to the player)",
    "recording_downloaded": "Downloaded",
}
ACCESS_ORDER = {action: n for n, action in enumerate([*STAFF_ACCESS_ACTIONS, *PATIENT_ACCESS_ACTIONS])}
# Within a request: the request itself, then each recording, then each release (download link).
OBJECT_ORDER = {"request": 0, "recording": 1, "release": 2}


class AuditFilterError(ValueError):
    """One or more filters cannot be used; `problems` maps each form field to a message."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems


# ---------------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What to show. Every part is optional; the events shown match all the parts given.

    `actor_ids` and `object_ids` are resolved already (a staff email becomes a public id; a request reference
    also names its recordings and releases); `start_day` and `end_day` are the practice's (London) dates,
    both included."""

    actor_ids: tuple[str, ...] = ()
    actor_type: str | None = None
    action: str | None = None
    object_text: str | None = None
    object_ids: tuple[str, ...] = ()
    start_day: date | None = None
    end_day: date | None = None

    def describe(self) -> dict:
        """The filters as audit details (ids only: no names or email addresses)."""
        described = {
            "actor": list(self.actor_ids) or None,
            "actor_type": self.actor_type,
            "action": self.action,
            "object": self.object_text,
            "from": self.start_day.isoformat() if self.start_day else None,
            "to": self.end_day.isoformat() if self.end_day else None,
        }
        return {key: value for key, value in described.items() if value}


def looks_like_nhs_number(value: str) -> bool:
    return NHS_NUMBER_SHAPE.fullmatch(value.strip()) is not None


def _resolve_actor(value: str) -> tuple[str, ...]:
    """A public id as it is; a staff email to that member of staff's id; otherwise every member of staff whose
    name contains the words typed (the staff list is short)."""
    if PUBLIC_ID.fullmatch(value.lower()):
        return (value.lower(),)
    if "@" in value:
        found = db.session.execute(
            select(StaffUser.public_id).where(func.lower(StaffUser.email) == value.lower())
        ).scalars()
        ids = tuple(found)
        if not ids:
            raise AuditFilterError({"actor": "No member of staff has this email address. Check it, or enter a name"})
        return ids
    pattern = "%" + value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ids = tuple(
        db.session.execute(
            select(StaffUser.public_id).where(func.lower(StaffUser.name).like(pattern, escape="\\"))
        ).scalars()
    )
    if not ids:
        raise AuditFilterError(
            {"actor": "No member of staff has a name like this. Enter a staff email or name, or a public id"}
        )
    return ids


def related_object_ids(value: str) -> tuple[str, ...]:
    """The object ids a filter value stands for. A request reference (any case) stands for the request and its
    recordings and releases, whose events name them by their own ids; anything else stands for itself."""
    reference = value.upper()
    if not REQUEST_REFERENCE.fullmatch(reference):
        return (value,)
    request_id = db.session.execute(
        select(RecordingRequest.id).where(RecordingRequest.reference == reference)
    ).scalar_one_or_none()
    if request_id is None:
        return (reference,)
    recordings = db.session.execute(select(Recording.public_id).where(Recording.request_id == request_id)).scalars()
    releases = db.session.execute(select(Release.public_id).where(Release.request_id == request_id)).scalars()
    return (reference, *recordings, *releases)


def build_filter(
    *,
    actor: str = "",
    actor_type: str = "",
    action: str = "",
    object_text: str = "",
    start_day: date | None = None,
    end_day: date | None = None,
) -> AuditFilter:
    """Check the viewer's filters and resolve them to ids. Raises AuditFilterError naming every field that
    cannot be used, each with a message saying what to do."""
    problems: dict[str, str] = {}
    actor, object_text = actor.strip(), object_text.strip()
    actor_ids: tuple[str, ...] = ()
    if len(actor) > MAX_ACTOR_LENGTH:
        problems["actor"] = f"Enter no more than {MAX_ACTOR_LENGTH} characters"
    elif looks_like_nhs_number(actor):
        problems["actor"] = "Audit events never hold NHS numbers. Enter a staff email or name, or a public id"
    elif actor:
        try:
            actor_ids = _resolve_actor(actor)
        except AuditFilterError as error:
            problems.update(error.problems)
    if actor_type and actor_type not in ACTOR_TYPE_LABELS:
        problems["actor-type"] = "Select who did it from the list"
    if action and not ACTION_NAME.fullmatch(action):
        problems["action"] = "Select an action from the list"
    object_ids: tuple[str, ...] = ()
    if len(object_text) > MAX_OBJECT_LENGTH:
        problems["object"] = f"Enter no more than {MAX_OBJECT_LENGTH} characters"
    elif looks_like_nhs_number(object_text):
        problems["object"] = (
            "Audit events never hold NHS numbers. Enter a request reference, like CR-2026-00001, or an object id"
        )
    elif object_text:
        object_ids = related_object_ids(object_text)
    if start_day and end_day and end_day < start_day:
        problems["to-day"] = "The end date must be the same as or after the start date"
    if problems:
        raise AuditFilterError(problems)
    return AuditFilter(
        actor_ids=actor_ids,
        actor_type=actor_type or None,
        action=action or None,
        object_text=object_text or None,
        object_ids=object_ids,
        start_day=start_day,
        end_day=end_day,
    )


def london_midnight(day: date) -> datetime:
    """The moment (UTC) a practice day begins, summer time included."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def period_conditions(start_day: date | None, end_day: date | None) -> list | None:
    """The conditions for events written on the London days `start_day` to `end_day`, both included (either may
    be None: no limit on that side), or None when no event can match. The first and last sequence numbers of
    the period bound the walk; the times themselves decide."""
    conditions: list = []
    if start_day is not None:
        start = london_midnight(start_day)
        first = db.session.execute(
            select(AuditEvent.seq)
            .where(AuditEvent.occurred_at >= start)
            .order_by(AuditEvent.occurred_at, AuditEvent.seq)
            .limit(1)
        ).scalar()
        if first is None:
            return None
        conditions += [AuditEvent.seq >= first, AuditEvent.occurred_at >= start]
    if end_day is not None:
        end = london_midnight(end_day + timedelta(days=1))
        last = db.session.execute(
            select(AuditEvent.seq)
            .where(AuditEvent.occurred_at < end)
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.seq.desc())
            .limit(1)
        ).scalar()
        if last is None:
            return None
        conditions += [AuditEvent.seq <= last, AuditEvent.occurred_at < end]
    return conditions


def _in(column, values: tuple[str, ...]):
    return column == values[0] if len(values) == 1 else column.in_(values)


def _conditions(filters: AuditFilter) -> list | None:
    """The WHERE clause for the filters, or None when nothing can match."""
    conditions = []
    if filters.actor_ids:
        conditions.append(_in(AuditEvent.actor_id, filters.actor_ids))
    if filters.actor_type:
        conditions.append(AuditEvent.actor_type == filters.actor_type)
    if filters.action:
        conditions.append(AuditEvent.action == filters.action)
    if filters.object_ids:
        conditions.append(_in(AuditEvent.object_id, filters.object_ids))
    period = period_conditions(filters.start_day, filters.end_day)
    return None if period is None else conditions + period


# ---------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------

COLUMNS = (
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_type,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.object_type,
    AuditEvent.object_id,
    AuditEvent.outcome,
    AuditEvent.ip_address,
    AuditEvent.user_agent,
    AuditEvent.request_id,
    AuditEvent.details,
)


@dataclass(frozen=True)
class AuditRow:
    seq: int
    occurred_at: datetime  # UTC
    actor_type: str
    actor_id: str | None
    actor_name: str | None  # members of staff only
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    details: str

    @property
    def details_text(self) -> str:
        """The details as readable JSON text (a space after each separator, so a long line can wrap)."""
        try:
            return json.dumps(json.loads(self.details), ensure_ascii=False, sort_keys=True)
        except ValueError:
            return self.details


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    older_before: int | None  # the `before` of the next page of older events, if there are any
    newer_after: int | None  # the `after` of the next page of newer events, if there are any


def staff_names(public_ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({public_id for public_id in public_ids if public_id})
    if not wanted:
        return {}
    rows = db.session.execute(select(StaffUser.public_id, StaffUser.name).where(StaffUser.public_id.in_(wanted)))
    return {public_id: name for public_id, name in rows}


def _rows(found, names: dict[str, str]) -> list[AuditRow]:
    return [
        AuditRow(
            seq=row.seq,
            occurred_at=row.occurred_at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            actor_name=names.get(row.actor_id) if row.actor_type == "staff" else None,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            outcome=row.outcome,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            request_id=row.request_id,
            details=row.details,
        )
        for row in found
    ]


def _any_newer(conditions: list, seq: int) -> bool:
    # Ordered, so the database walks the index from `seq` instead of scanning the table for any match.
    query = select(AuditEvent.seq).where(*conditions, AuditEvent.seq > seq).order_by(AuditEvent.seq).limit(1)
    return db.session.execute(query).first() is not None


def _any_older(conditions: list, seq: int) -> bool:
    query = select(AuditEvent.seq).where(*conditions, AuditEvent.seq < seq).order_by(AuditEvent.seq.desc()).limit(1)
    return db.session.execute(query).first() is not None


def events_page(
    filters: AuditFilter, *, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One page of matching events, newest first: the newest ones, or those numbered below `before`, or the
    `size` numbered just above `after` (the page before, going back towards the newest)."""
    conditions = _conditions(filters)
    if conditions is None:
        return AuditPage([], None, None)
    query = select(*COLUMNS).where(*conditions)
    if after is not None:
        found = db.session.execute(query.where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(size + 1)).all()
        has_newer = len(found) > size
        found = list(reversed(found[:size]))
        has_older = bool(found) and _any_older(conditions, found[-1].seq)
    else:
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        found = db.session.execute(query.order_by(AuditEvent.seq.desc()).limit(size + 1)).all()
        has_older = len(found) > size
        found = found[:size]
        has_newer = before is not None and bool(found) and _any_newer(conditions, found[0].seq)
    # An empty page reached through a link has no neighbours of its own: the page offers the newest events.
    rows = _rows(found, staff_names(row.actor_id for row in found if row.actor_type == "staff"))
    return AuditPage(
        rows=rows,
        older_before=rows[-1].seq if has_older else None,
        newer_after=rows[0].seq if has_newer else None,
    )


def actions_in_use() -> list[str]:
    """Every action the trail holds, in order: one index look-up per action (a loose index scan), not a read of
    the whole table."""
    found = db.session.execute(
        text(
            "WITH RECURSIVE found(action) AS ("
            " SELECT MIN(action) FROM audit_event"
            " UNION ALL"
            " SELECT (SELECT MIN(action) FROM audit_event WHERE action > found.action) FROM found"
            " WHERE found.action IS NOT NULL"
            ") SELECT action FROM found WHERE action IS NOT NULL"
        )
    ).scalars()
    return list(found)


# ---------------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------------

CSV_HEADER = [
    "seq",
    "occurred_at_utc",
    "london_time",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "ip_address",
    "user_agent",
    "request_id",
    "details",
]


def utc_text(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def london_text(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S %Z")


def _csv_chunk(rows: Iterable[list]) -> str:
    return csv_rows(rows)


def event_batches(filters: AuditFilter, *, batch: int | None = None) -> Iterator[list[AuditRow]]:
    """Every matching event, newest first, in batches of `batch` read by keyset: never all in memory, and no
    batch repeats or skips an event, whatever is written meanwhile (new events are above the first batch)."""
    batch = batch or CSV_BATCH
    conditions = _conditions(filters)
    if conditions is None:
        return
    names = {public_id: name for public_id, name in db.session.execute(select(StaffUser.public_id, StaffUser.name))}
    before = None
    while True:
        query = select(*COLUMNS).where(*conditions)
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        found = db.session.execute(query.order_by(AuditEvent.seq.desc()).limit(batch)).all()
        # End the read between batches: a slow download must not keep a transaction open.
        db.session.rollback()
        if found:
            yield _rows(found, names)
        if len(found) < batch:
            return
        before = found[-1].seq


def export_csv(filters: AuditFilter, *, batch: int | None = None) -> Iterator[str]:
    """The filtered trail as CSV text, one chunk per batch, starting with a byte order mark (so spreadsheets
    read the names as UTF-8) and a header row."""
    yield "\ufeff" + _csv_chunk([CSV_HEADER])
    for rows in event_batches(filters, batch=batch):
        yield _csv_chunk(
            [
                row.seq,
                utc_text(row.occurred_at),
                london_text(row.occurred_at),
                row.actor_type,
                row.actor_id,
                row.actor_name,
                row.action,
                row.object_type,
                row.object_id,
                row.outcome,
                row.ip_address,
                row.user_agent,
                row.request_id,
                row.details,
            ]
            for row in rows
        )


@transactional
def record_export(admin: StaffUser, *, report: str, filters: dict) -> None:
    """Audit a download of the trail or of the access report, with the filters it was made with."""
    record_event(
        action="audit_exported",
        actor_type="staff",
        actor_id=admin.public_id,
        object_type="audit_log",
        details={"report": report, **filters},
    )


# ---------------------------------------------------------------------------------------------------------
# The chain's verification status
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStatus:
    check: AuditCheck
    checked_by_name: str | None  # None for the scheduled check

    @property
    def checked_at(self) -> datetime:
        return self.check.checked_at


def latest_chain_check() -> ChainStatus | None:
    """The newest stored result of a chain check, with the name of the member of staff who asked for it."""
    check = db.session.execute(select(AuditCheck).order_by(AuditCheck.id.desc()).limit(1)).scalar_one_or_none()
    if check is None:
        return None
    name = None if check.checked_by == SYSTEM_CHECKER else staff_names([check.checked_by]).get(check.checked_by)
    return ChainStatus(check, name)


def check_chain_now(admin: StaffUser) -> AuditCheck:
    """Walk the whole trail now (`verify_chain`), store the result and audit the check."""
    return record_chain_check(verify_chain(), checked_by=admin)


# ---------------------------------------------------------------------------------------------------------
# The access report
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLine:
    request_reference: str | None
    object_type: str | None
    object_id: str | None
    action: str
    label: str
    outcome: str
    count: int
    first_at: datetime
    last_at: datetime


@dataclass
class AccessGroup:
    actor_type: str
    actor_id: str | None
    name: str | None  # members of staff only
    lines: list[AccessLine] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.count for line in self.lines)


@dataclass(frozen=True)
class AccessReport:
    start_day: date
    end_day: date
    staff: list[AccessGroup]
    patients: list[AccessGroup]


def previous_quarter(today: date) -> tuple[date, date]:
    """The last full calendar quarter before `today`: the period of a quarterly access review."""
    this_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = this_quarter - timedelta(days=1)
    return date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _references(object_ids: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(object type, id) -> the reference of the request the recording or release belongs to."""
    found: dict[tuple[str, str], str] = {}
    for object_type, model in (("recording", Recording), ("release", Release)):
        for chunk in _chunks(sorted(object_ids.get(object_type, ()))):
            rows = db.session.execute(
                select(model.public_id, RecordingRequest.reference)
                .join(RecordingRequest, model.request_id == RecordingRequest.id)
                .where(model.public_id.in_(chunk))
            )
            found.update({(object_type, public_id): reference for public_id, reference in rows.tuples()})
    return found


def access_report(start_day: date, end_day: date) -> AccessReport:
    """Who read, released or received which recordings on the London days `start_day` to `end_day`: for each
    member of staff (then each patient, by public id), the requests and recordings or releases they acted on,
    with how many times, first and last. One grouped query over the period's run of sequence numbers."""
    period = period_conditions(start_day, end_day)
    groups = _access_groups(_access_rows(period)) if period is not None else {}
    for group in groups.values():
        group.lines.sort(
            key=lambda line: (
                line.request_reference or "~",
                OBJECT_ORDER.get(line.object_type or "", len(OBJECT_ORDER)),
                line.object_id or "",
                ACCESS_ORDER[line.action],
                line.outcome,
            )
        )
    staff = sorted(
        (group for group in groups.values() if group.actor_type == "staff"),
        key=lambda group: ((group.name or "~").lower(), group.actor_id or ""),
    )
    patients = sorted(
        (group for group in groups.values() if group.actor_type == "patient"), key=lambda group: group.actor_id or ""
    )
    return AccessReport(start_day, end_day, staff, patients)


def _access_rows(period: list) -> list:
    """The period's access events, grouped by who, what they did, to which object and with what outcome."""
    staff_actions = [action for action in STAFF_ACCESS_ACTIONS if action != "authz_fail"]
    which = or_(
        and_(AuditEvent.actor_type == "staff", AuditEvent.action.in_(staff_actions)),
        and_(
            AuditEvent.actor_type == "staff",
            AuditEvent.action == "authz_fail",
            AuditEvent.object_type == "recording",
        ),
        and_(AuditEvent.actor_type == "patient", AuditEvent.action.in_(list(PATIENT_ACCESS_ACTIONS))),
    )
    key = (
        AuditEvent.actor_type,
        AuditEvent.actor_id,
        AuditEvent.action,
        AuditEvent.object_type,
        AuditEvent.object_id,
        AuditEvent.outcome,
    )
    return db.session.execute(
        select(
            *key,
            func.count().label("times"),
            func.min(AuditEvent.occurred_at).label("first_at"),
            func.max(AuditEvent.occurred_at).label("last_at"),
        )
        .where(*period, which)
        .group_by(*key)
    ).all()


def _access_groups(found: list) -> dict[tuple[str, str | None], AccessGroup]:
    """The rows as one group of lines per person, each line naming the request its object belongs to."""
    objects: dict[str, set[str]] = {}
    for row in found:
        if row.object_id:
            objects.setdefault(row.object_type, set()).add(row.object_id)
    references = _references(objects)
    names = staff_names(row.actor_id for row in found if row.actor_type == "staff")
    groups: dict[tuple[str, str | None], AccessGroup] = {}
    for row in found:
        group = groups.setdefault(
            (row.actor_type, row.actor_id),
            AccessGroup(row.actor_type, row.actor_id, names.get(row.actor_id) if row.actor_type == "staff" else None),
        )
        labels = STAFF_ACCESS_ACTIONS if row.actor_type == "staff" else PATIENT_ACCESS_ACTIONS
        label = labels[row.action]
        if row.outcome == "failure" and row.action != "authz_fail":
            label += " (refused)"
        reference = row.object_id if row.object_type == "request" else references.get((row.object_type, row.object_id))
        group.lines.append(
            AccessLine(
                request_reference=reference,
                object_type=row.object_type,
                object_id=row.object_id,
                action=row.action,
                label=label,
                outcome=row.outcome,
                count=row.times,
                first_at=row.first_at,
                last_at=row.last_at,
            )
        )
    return groups


ACCESS_CSV_HEADER = [
    "who",
    "actor_id",
    "staff_name",
    "request",
    "object_type",
    "object_id",
    "action",
    "what",
    "outcome",
    "times",
    "first_london",
    "last_london",
]


def export_access_csv(report: AccessReport) -> Iterator[str]:
    """The access report as CSV text: the header, then one line per person, object and action."""
    yield "\ufeff" + _csv_chunk([ACCESS_CSV_HEADER])
    for group in [*report.staff, *report.patients]:
        yield _csv_chunk(
            [
                group.actor_type,
                group.actor_id,
                group.name,
                line.request_reference,
                line.object_type,
                line.object_id,
                line.action,
                line.label,
                line.outcome,
                line.count,
                london_text(line.first_at),
                london_text(line.last_at),
            ]
            for line in group.lines
        )
