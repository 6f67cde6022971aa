"""The request state machine (DESIGN §4) and the four steps every change to a request is made of.

A service that changes a request, in this package or in core.services.recordings and releases, does it
inside its `@transactional` unit of work with these public functions:

- `lock(req)`: hold the request's row until commit, so two staff actions on one request happen in turn;
- `move(req, to_status, actor, summary=...)`: change the status, or refuse with `RequestError` when
  `TRANSITIONS` does not allow the move; writes the timeline entry and the audit event itself;
- `add_timeline_entry(req, ...)`: any other entry on the request's timeline (a note, a message, a refusal);
- `audit(req, action, actor, ...)` and `audit_object(actor, action, obj, ...)`: the audit event, for the
  request itself or for a recording, release or complaint that belongs to it.

`actor` is the patient or member of staff who acted, or None for the portal itself (a scheduled job).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from core import formatters
from core.extensions import db
from core.models.requests import CLOSED_STATUSES, RecordingRequest, RequestEvent, Status
from core.services.audit import record_event
from core.services.errors import ServiceError

LONDON = formatters.LONDON

# From each status, the statuses a request may move to. Every status change goes through `move`, which
# refuses any other (tests/core/test_request_lifecycle.py walks this table both ways).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.AWAITING_IDENTITY: frozenset({Status.SUBMITTED, Status.REFUSED, Status.WITHDRAWN}),
    Status.SUBMITTED: frozenset(
        {
            Status.IN_PROGRESS,
            Status.CLARIFICATION_REQUESTED,
            Status.NO_RECORDINGS_FOUND,
            Status.REFUSED,
            Status.WITHDRAWN,
        }
    ),
    Status.CLARIFICATION_REQUESTED: frozenset(
        {Status.IN_PROGRESS, Status.NO_RECORDINGS_FOUND, Status.REFUSED, Status.WITHDRAWN}
    ),
    # in_progress -> completed: the recordings were given another way (listened to at the practice, a transcript).
    Status.IN_PROGRESS: frozenset(
        {
            Status.CLARIFICATION_REQUESTED,
            Status.READY_FOR_APPROVAL,
            Status.COMPLETED,
            Status.NO_RECORDINGS_FOUND,
            Status.REFUSED,
            Status.WITHDRAWN,
        }
    ),
    Status.READY_FOR_APPROVAL: frozenset({Status.IN_PROGRESS, Status.RELEASED, Status.WITHDRAWN}),
    Status.RELEASED: frozenset({Status.COMPLETED, Status.IN_PROGRESS}),
    Status.COMPLETED: frozenset(),
    Status.NO_RECORDINGS_FOUND: frozenset(),
    Status.REFUSED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
OPEN_STATUSES = tuple(status for status in Status if status not in CLOSED_STATUSES)


class RequestError(ServiceError):
    """An action that cannot be carried out, with a message for the person who tried it."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def practice_today() -> date:
    """Today's date at the practice (London), which is the date the law counts in."""
    return datetime.now(LONDON).date()


def actor_name(account) -> str:
    """How the timeline names who acted: a member of staff's name, the patient's full name, or the portal."""
    if account is None:
        return "The portal"
    return account.name if account.kind == "staff" else account.full_name


def _who(actor) -> dict:
    if actor is None:
        return {"actor_type": "system"}
    return {"actor_type": actor.kind, "actor_id": actor.public_id}


def add_timeline_entry(
    req: RecordingRequest,
    *,
    kind: str,
    actor,
    summary: str,
    body: str | None = None,
    visible: bool = True,
    from_status: str | None = None,
    to_status: str | None = None,
) -> RequestEvent:
    """Add an entry to the request's timeline. `visible=False` keeps it from the patient's page (an internal
    note); `summary` is cut to its column's 300 characters."""
    event = RequestEvent(
        request_id=req.id,
        occurred_at=now_utc(),
        kind=kind,
        actor_type=actor.kind if actor is not None else "system",
        actor_name=actor_name(actor),
        from_status=from_status,
        to_status=to_status,
        summary=summary[:300],
        body=body,
        visible_to_patient=visible,
    )
    db.session.add(event)
    return event


def audit(req: RecordingRequest, action: str, actor, *, outcome: str = "success", **details) -> None:
    """Audit `action` on the request, named by its reference, with `details` (no free text of the patient's)."""
    record_event(
        action=action, **_who(actor), object_type="request", object_id=req.reference, outcome=outcome, details=details
    )


def audit_object(actor, action: str, obj, *, details: dict, outcome: str = "success") -> None:
    """Audit `action` on a recording, release or complaint, named by its table and random public id."""
    record_event(
        action=action,
        **_who(actor),
        object_type=obj.__tablename__,
        object_id=obj.public_id,
        outcome=outcome,
        details=details,
    )


def move(req: RecordingRequest, to_status: Status, actor, *, summary: str, body: str | None = None) -> None:
    """Change the request's status, with its timeline entry (`summary`, `body` for the patient) and a
    `request_status_changed` audit event; a closing status sets `closed_at`. Raises RequestError, changing
    nothing, if TRANSITIONS does not allow the move from the current status."""
    if to_status not in TRANSITIONS[req.status]:
        raise RequestError(f"This request is {req.status_label.lower()}, so that cannot be done now.")
    from_status = req.status
    req.status = to_status
    req.updated_at = now_utc()
    if to_status in CLOSED_STATUSES:
        req.closed_at = now_utc()
    add_timeline_entry(
        req, kind="status", actor=actor, summary=summary, body=body, from_status=from_status, to_status=to_status
    )
    audit(req, "request_status_changed", actor, from_status=from_status, to_status=to_status)


def lock(req: RecordingRequest) -> RecordingRequest:
    """Re-read the request holding its row (PostgreSQL) until commit, so two staff actions on one request
    happen one after the other and each sees the other's result. Use the returned request."""
    db.session.execute(select(RecordingRequest.id).where(RecordingRequest.id == req.id).with_for_update()).scalar_one()
    db.session.refresh(req)
    return req
