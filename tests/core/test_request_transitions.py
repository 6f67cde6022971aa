"""The state machine's table (core.services.requests.lifecycle.TRANSITIONS) walked the other way: every move
the table does not allow is refused and changes nothing, both by `lifecycle.move` itself (which every
service goes through) and by the service function staff or the patient would use for that move.
tests/core/test_request_lifecycle.py walks every allowed move."""

from __future__ import annotations

import pytest

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.email import OutboundEmail
from core.models.requests import CLOSED_STATUSES, REQUEST_STATUSES, RecordingRequest, RequestEvent, Status
from core.services import requests as service
from core.services.errors import ServiceError
from core.services.requests import lifecycle
from tests.core.test_request_lifecycle import (
    BY_PAIR,
    BY_TARGET,
    EXPLANATION,
    REFUSAL,
    count,
    fresh,
    make_people,
    request_in,
    submit,
    use_recordings_dir,
)

REFUSED = sorted(
    (source, target) for source in Status for target in Status if target not in lifecycle.TRANSITIONS[source]
)


def test_the_status_enum_is_the_stored_strings():
    assert [str(status) for status in Status] == [
        "awaiting_identity",
        "submitted",
        "clarification_requested",
        "in_progress",
        "ready_for_approval",
        "released",
        "completed",
        "no_recordings_found",
        "refused",
        "withdrawn",
    ]
    assert Status.IN_PROGRESS == "in_progress" and "in_progress" in lifecycle.TRANSITIONS[Status.SUBMITTED]
    assert set(lifecycle.TRANSITIONS) == set(REQUEST_STATUSES)
    assert set(lifecycle.OPEN_STATUSES) == set(Status) - CLOSED_STATUSES
    assert len(REFUSED) == 100 - sum(len(targets) for targets in lifecycle.TRANSITIONS.values())


def snapshot(req: RecordingRequest) -> tuple:
    """What a refused move must leave as it was: the request, its timeline, the audit and the outbox."""
    req = fresh(req)
    return (
        req.status,
        req.due_on,
        req.closed_at,
        req.updated_at,
        count(RequestEvent, RequestEvent.request_id == req.id),
        count(AuditEvent),
        count(OutboundEmail),
    )


def request_at(status: str, people) -> RecordingRequest:
    """A request brought to `status` by the usual route, closed ones included."""
    if status in ("no_recordings_found", "refused", "withdrawn"):
        req = submit(people.patient)
        {
            "no_recordings_found": lambda: service.mark_no_recordings(people.staff, req, EXPLANATION),
            "refused": lambda: service.refuse(people.staff, req, REFUSAL, partly=False),
            "withdrawn": lambda: service.withdraw(req.patient, req),
        }[status]()
        return req
    return request_in(status, people)


@pytest.mark.parametrize("source", list(Status), ids=[str(s) for s in Status])
def test_move_refuses_every_move_not_in_the_table_and_changes_nothing(app, tmp_path, monkeypatch, source):
    use_recordings_dir(app, tmp_path, monkeypatch)
    people = make_people()
    req = request_at(source, people)
    before = snapshot(req)
    targets = [target for s, target in REFUSED if s == source]
    assert targets
    for target in targets:
        req = fresh(req)
        with pytest.raises(service.RequestError, match="so that cannot be done now"):
            lifecycle.move(req, target, people.staff, summary="Not allowed")
        db.session.rollback()
        assert snapshot(req) == before, f"{source} -> {target}"


SERVICE_REFUSED = [(s, t) for s, t in REFUSED if t != Status.AWAITING_IDENTITY]  # no service moves back there


def routes_to(target: str) -> list:
    """Every service function that moves a request to `target` (from one state or another)."""
    return [action for (_, to), action in BY_PAIR.items() if to == target] + (
        [BY_TARGET[target]] if target in BY_TARGET else []
    )


@pytest.mark.parametrize(("source", "target"), SERVICE_REFUSED, ids=[f"{s}->{t}" for s, t in SERVICE_REFUSED])
def test_the_service_refuses_every_move_not_in_the_table(app, tmp_path, monkeypatch, source, target):
    use_recordings_dir(app, tmp_path, monkeypatch)
    people = make_people()
    req = request_at(source, people)
    before = snapshot(req)
    actions = routes_to(target)
    assert actions

    for action in actions:
        with pytest.raises(ServiceError):
            action(people, fresh(req))
        assert snapshot(req) == before
