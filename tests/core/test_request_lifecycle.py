"""A request's life through the service functions: the state machine, the legal clock and offline logging
(DESIGN §4 and §6; SECURITY L1, L3; UK GDPR Art. 12(3)).

Every allowed transition is driven by the service function staff or the patient would use, and must leave
exactly one timeline entry and one `request_status_changed` audit event. Transitions the state machine does
not allow must raise `RequestError` and change nothing. Emails to the patient must never carry what the
calls were about, the practice's question, or any other free text (DESIGN §6).

The small helpers here (`call_details`, `submit`, `attach_sample`, `Staffing`...) are shared with the other
request-domain test modules.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from core import legal_clock
from core.extensions import db
from core.models.accounts import Patient, StaffUser
from core.models.audit import AuditEvent
from core.models.email import OutboundEmail
from core.models.requests import RecordingRequest, ReferenceCounter, RequestEvent
from core.services import accounts
from core.services import requests as service
from core.services.recordings import RecordingDetails, attach_recording
from core.services.releases import ClinicalReview, approve_release, decline_release, prepare_release, revoke_release
from core.services.requests import TRANSITIONS, CallDetails, OfflineRequest, RequestError
from core.services.tokens import absolute_url_for
from tests.accounts_support import emails_to, make_patient, make_staff

LONDON = ZoneInfo("Europe/London")
AUDIO = Path(__file__).resolve().parent.parent / "fixtures" / "audio"

# Free text that must stay behind sign-in: none of it may appear in any email (DESIGN §6, SECURITY L3).
DESCRIPTION = "I rang about my repeat inhaler and mentioned my letter from the sexual health clinic"
QUESTION = "Which of your two mobile numbers, the one ending 4471 or 9902, did you ring from?"
ANSWER = "The one ending 4471, on the Tuesday morning about my blood test results"
REFUSAL = "The recording also holds a third party's health details that we cannot separate"
EXPLANATION = "Our telephone system keeps recordings for 90 days and these calls were older"
FREE_TEXTS = (DESCRIPTION, QUESTION, ANSWER, REFUSAL, EXPLANATION)


# ---------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Staffing:
    """The people a request passes between."""

    patient: Patient  # verified, with an account
    unverified: Patient  # registered, identity not yet checked
    staff: StaffUser  # role staff, not a clinician
    admin: StaffUser  # role admin, a clinician
    second_admin: StaffUser  # role admin, not a clinician

    def review(self) -> ClinicalReview:
        return ClinicalReview(self.admin, "Reviewed: no third-party information in the recordings.")


def make_people() -> Staffing:
    return Staffing(
        patient=make_patient(verified=True, email="ada@example.org").account,
        unverified=make_patient(
            email="grace@example.org", given_name="Grace", family_name="Hopper", nhs_number="9434765870"
        ).account,
        staff=make_staff(email="sam@practice.example", name="Sam Clerk").account,
        admin=_clinician(make_staff(email="ava@practice.example", name="Ava Admin", role="admin").account),
        second_admin=make_staff(email="ben@practice.example", name="Ben Admin", role="admin").account,
    )


def _clinician(staff: StaffUser) -> StaffUser:
    staff.is_clinician = True
    db.session.commit()
    return staff


def use_recordings_dir(app, tmp_path: Path, monkeypatch) -> Path:
    directory = tmp_path / "recordings"
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(directory))
    return directory


def call_details(**changes) -> CallDetails:
    today = service.practice_today()
    values = {
        "calls_from": today - timedelta(days=14),
        "calls_to": today - timedelta(days=1),
        "approximate_time": "About 10am",
        "phone_number": "07700 900123",
        "spoke_to": "Reception",
        "description": DESCRIPTION,
    }
    values.update(changes)
    return CallDetails(**values)


def submit(patient: Patient, **changes) -> RecordingRequest:
    return service.submit_request(patient, call_details(**changes), submission_key=secrets.token_hex(16))


def attach_sample(staff: StaffUser, req: RecordingRequest, extension: str = "wav", *, name: str | None = None):
    with (AUDIO / f"call-sample.{extension}").open("rb") as stream:
        details = RecordingDetails(original_name=f"call-sample.{extension}" if name is None else name)
        return attach_recording(staff, req, stream, details)


def exactly(message: str) -> str:
    """A `pytest.raises(match=...)` pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def fresh(req: RecordingRequest) -> RecordingRequest:
    """The request as the database has it now."""
    db.session.expire_all()
    return db.session.get(RecordingRequest, req.id)


def audit_events(action: str, object_id: str | None = None) -> list[AuditEvent]:
    statement = select(AuditEvent).where(AuditEvent.action == action)
    if object_id is not None:
        statement = statement.where(AuditEvent.object_id == object_id)
    return list(db.session.execute(statement.order_by(AuditEvent.seq)).scalars())


def count(model, *conditions) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one()


def status_entries(req: RecordingRequest) -> list[RequestEvent]:
    return list(
        db.session.execute(
            select(RequestEvent)
            .where(RequestEvent.request_id == req.id, RequestEvent.kind == "status")
            .order_by(RequestEvent.id)
        ).scalars()
    )


def all_email_text() -> str:
    rows = db.session.execute(select(OutboundEmail)).scalars()
    return "\n".join(f"{row.subject}\n{row.body_text}" for row in rows)


def request_in(status: str, people: Staffing) -> RecordingRequest:
    """A request brought to `status` by the usual route."""
    if status == "awaiting_identity":
        return submit(people.unverified)
    req = submit(people.patient)
    if status == "submitted":
        return req
    if status == "clarification_requested":
        service.ask_for_clarification(people.staff, req, QUESTION)
        return req
    attach_sample(people.staff, req)  # a first recording starts the work: in_progress
    if status == "in_progress":
        return req
    prepare_release(people.staff, req)
    if status == "ready_for_approval":
        return req
    approve_release(people.admin, req, people.review())
    if status == "released":
        return req
    if status == "completed":
        service.close(people.staff, req)
        return req
    raise AssertionError(f"no route to {status}")


# ---------------------------------------------------------------------------------------------------------
# Every allowed transition
# ---------------------------------------------------------------------------------------------------------

Action = Callable[[Staffing, RecordingRequest], object]

BY_TARGET: dict[str, Action] = {
    "submitted": lambda p, req: accounts.verify_identity(p.admin, req.patient, method="photo_id", note=""),
    "clarification_requested": lambda p, req: service.ask_for_clarification(p.staff, req, QUESTION),
    "no_recordings_found": lambda p, req: service.mark_no_recordings(p.staff, req, EXPLANATION),
    "refused": lambda p, req: service.refuse(p.staff, req, REFUSAL, partly=False),
    "withdrawn": lambda p, req: service.withdraw(req.patient, req),
    "ready_for_approval": lambda p, req: prepare_release(p.staff, req),
    "released": lambda p, req: approve_release(p.admin, req, p.review()),
    "completed": lambda p, req: service.close(p.staff, req),
}
BY_PAIR: dict[tuple[str, str], Action] = {
    ("submitted", "in_progress"): lambda p, req: service.start_work(p.staff, req),
    ("clarification_requested", "in_progress"): lambda p, req: service.answer_clarification(req.patient, req, ANSWER),
    ("in_progress", "completed"): lambda p, req: service.close(p.staff, req, "Listened at the practice on 1 May"),
    ("ready_for_approval", "in_progress"): lambda p, req: decline_release(p.admin, req, "The second call is missing"),
    ("released", "in_progress"): lambda p, req: revoke_release(p.admin, req, "Wrong file attached", reissue=False),
}
ALLOWED = sorted((source, target) for source, targets in TRANSITIONS.items() for target in targets)


def test_the_transition_table_matches_design_section_4():
    """The allowed moves, written out: a change to the state machine must be a deliberate change here too."""
    expected = sorted(
        [
            ("awaiting_identity", "refused"),
            ("awaiting_identity", "submitted"),
            ("awaiting_identity", "withdrawn"),
            ("clarification_requested", "in_progress"),
            ("clarification_requested", "no_recordings_found"),
            ("clarification_requested", "refused"),
            ("clarification_requested", "withdrawn"),
            ("in_progress", "clarification_requested"),
            ("in_progress", "completed"),
            ("in_progress", "no_recordings_found"),
            ("in_progress", "ready_for_approval"),
            ("in_progress", "refused"),
            ("in_progress", "withdrawn"),
            ("ready_for_approval", "in_progress"),
            ("ready_for_approval", "released"),
            ("ready_for_approval", "withdrawn"),
            ("released", "completed"),
            ("released", "in_progress"),
            ("submitted", "clarification_requested"),
            ("submitted", "in_progress"),
            ("submitted", "no_recordings_found"),
            ("submitted", "refused"),
            ("submitted", "withdrawn"),
        ]
    )
    assert expected == ALLOWED
    for closed in ("completed", "no_recordings_found", "refused", "withdrawn"):
        assert TRANSITIONS[closed] == frozenset()


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=[f"{s}->{t}" for s, t in ALLOWED])
def test_each_allowed_transition_is_one_timeline_entry_and_one_audit_event_l1(
    app, tmp_path, monkeypatch, source, target
):
    use_recordings_dir(app, tmp_path, monkeypatch)
    people = make_people()
    req = request_in(source, people)
    assert fresh(req).status == source
    entries_before = status_entries(req)
    audits_before = audit_events("request_status_changed", req.reference)

    action = BY_PAIR.get((source, target)) or BY_TARGET[target]
    action(people, req)

    req = fresh(req)
    assert req.status == target
    new_entries = status_entries(req)[len(entries_before) :]
    assert [(e.from_status, e.to_status) for e in new_entries] == [(source, target)]
    new_audits = audit_events("request_status_changed", req.reference)[len(audits_before) :]
    assert len(new_audits) == 1
    assert json.loads(new_audits[0].details) == {"from_status": source, "to_status": target}
    assert new_audits[0].object_type == "request"
    assert new_audits[0].outcome == "success"
    assert (req.closed_at is not None) == (target in ("completed", "no_recordings_found", "refused", "withdrawn"))
    text = all_email_text()
    for free_text in FREE_TEXTS:
        assert free_text not in text


# ---------------------------------------------------------------------------------------------------------
# Transitions the state machine does not allow
# ---------------------------------------------------------------------------------------------------------

REFUSED_MOVES = [
    (
        "submitted",
        "close",
        lambda p, req: service.close(p.staff, req),
        "This request is received, so that cannot be done now.",
    ),
    (
        "in_progress",
        "approve",
        lambda p, req: approve_release(p.admin, req, p.review()),
        "There is no release waiting for approval on this request.",
    ),
    (
        "completed",
        "withdraw",
        lambda p, req: service.withdraw(req.patient, req),
        "This request is completed, so that cannot be done now.",
    ),
    (
        "released",
        "extend",
        lambda p, req: service.extend(p.staff, req, "Many calls to find"),
        "Only an open request can be extended.",
    ),
    (
        "in_progress",
        "answer",
        lambda p, req: service.answer_clarification(req.patient, req, ANSWER),
        "The practice is not waiting for an answer on this request.",
    ),
    (
        "awaiting_identity",
        "start-work",
        lambda p, req: service.start_work(p.staff, req),
        "This request is waiting for identity check, so that cannot be done now.",
    ),
    (
        "released",
        "withdraw",
        lambda p, req: service.withdraw(req.patient, req),
        "This request is ready to download, so that cannot be done now.",
    ),
    (
        "ready_for_approval",
        "ask",
        lambda p, req: service.ask_for_clarification(p.staff, req, QUESTION),
        "This request is being checked before release, so that cannot be done now.",
    ),
    (
        "submitted",
        "revoke",
        lambda p, req: revoke_release(p.admin, req, "No reason", reissue=True),
        "This request has no released link.",
    ),
    (
        "in_progress",
        "decline",
        lambda p, req: decline_release(p.admin, req, "Nothing to decline"),
        "There is no release waiting for approval on this request.",
    ),
    (
        "completed",
        "no-recordings",
        lambda p, req: service.mark_no_recordings(p.staff, req, EXPLANATION),
        "This request is completed, so that cannot be done now.",
    ),
    (
        "in_progress",
        "close-without-saying-how",
        lambda p, req: service.close(p.staff, req),
        "Say how the patient received their recordings (for example, listened at the practice).",
    ),
    (
        "completed",
        "refuse-part",
        lambda p, req: service.refuse(p.staff, req, REFUSAL, partly=True),
        "This request is closed.",
    ),
]


def _snapshot(req: RecordingRequest) -> tuple:
    req = fresh(req)
    return (
        req.status,
        req.due_on,
        req.closed_at,
        req.refusal_reason,
        req.partly_refused,
        count(RequestEvent, RequestEvent.request_id == req.id),
        count(AuditEvent),
        count(OutboundEmail),
    )


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [(status, action, message) for status, _, action, message in REFUSED_MOVES],
    ids=[f"{name}-when-{status}" for status, name, _, _ in REFUSED_MOVES],
)
def test_a_move_the_state_machine_does_not_allow_is_refused_and_changes_nothing(
    app, tmp_path, monkeypatch, status, action, message
):
    use_recordings_dir(app, tmp_path, monkeypatch)
    people = make_people()
    req = request_in(status, people)
    before = _snapshot(req)

    with pytest.raises(RequestError) as refused:
        action(people, fresh(req))

    assert str(refused.value) == message
    assert _snapshot(req) == before


def test_a_whole_journey_emails_the_patient_at_each_step_without_any_details_of_the_calls(app, tmp_path, monkeypatch):
    """DESIGN §6: emails say there is an update and link to the request; the question asked, the answer, the
    description, the refusal reason and the explanation stay behind sign-in."""
    use_recordings_dir(app, tmp_path, monkeypatch)
    people = make_people()
    first = submit(people.patient)
    service.ask_for_clarification(people.staff, first, QUESTION)
    service.answer_clarification(people.patient, first, ANSWER)
    service.extend(people.staff, first, "There are many calls to search")
    service.refuse(people.staff, first, REFUSAL, partly=True)
    service.mark_no_recordings(people.staff, first, EXPLANATION)
    second = submit(people.patient)
    service.withdraw(people.patient, second)
    service.complain(people.patient, first, "You took too long with my " + DESCRIPTION)

    messages = emails_to("ada@example.org")
    assert [m.subject for m in messages] == [
        f"We have received your request ({first.reference})",
        f"We need more information ({first.reference})",
        f"We need more time for your request ({first.reference})",
        f"An update on your request ({first.reference})",
        f"An update on your request ({first.reference})",
        f"We have received your request ({second.reference})",
        f"You withdrew your request ({second.reference})",
        f"We have received your complaint ({first.reference})",
    ]
    for message in messages:
        reference = message.subject.rsplit("(", 1)[1].rstrip(")")
        assert absolute_url_for("portal.request_detail", reference=reference) in message.body_text
        for free_text in (*FREE_TEXTS, "There are many calls to search", "inhaler", "4471"):
            assert free_text not in message.body_text
            assert free_text not in message.subject


def test_a_reply_recorded_by_staff_also_restarts_the_clock():
    """An answer that came by phone or letter, typed in by staff, ends the pause just as the patient's would."""
    with time_machine.travel(london(2026, 9, 3), tick=False) as traveller:
        staff = make_staff().account
        patient = make_patient(verified=True).account
        req = submit(patient)
        service.ask_for_clarification(staff, req, QUESTION)
        traveller.move_to(london(2026, 9, 6))

        service.answer_clarification(staff, req, "Patient phoned: the 4471 number")

    req = fresh(req)
    assert req.status == "in_progress"
    assert (req.paused_days, req.paused_since) == (3, None)
    assert req.due_on == date(2026, 10, 6)  # 3 October + 3 days
    last = status_entries(req)[-1]
    assert (last.summary, last.actor_type, last.body) == (
        "Reply recorded by the practice",
        "staff",
        "Patient phoned: the 4471 number",
    )


# ---------------------------------------------------------------------------------------------------------
# The legal clock (UK GDPR Art. 12(3); DESIGN §4 worked examples)
# ---------------------------------------------------------------------------------------------------------


def london(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def test_a_verified_patients_request_on_3_september_2026_is_due_on_monday_5_october():
    with time_machine.travel(london(2026, 9, 3), tick=False):
        patient = make_patient(verified=True).account
        req = submit(patient)

    req = fresh(req)
    assert req.status == "submitted"
    assert req.received_on == date(2026, 9, 3)
    assert req.relevant_day == date(2026, 9, 3)
    assert req.due_on == date(2026, 10, 5)  # 3 October 2026 is a Saturday
    [received] = emails_to(patient.email)
    assert "We will respond by Monday 5 October 2026." in received.body_text


def test_an_unverified_patients_request_waits_and_its_clock_starts_on_the_day_staff_verify_them():
    with time_machine.travel(london(2026, 9, 3), tick=False) as traveller:
        staff = make_staff(role="admin").account
        patient = make_patient(verified=False).account
        req = submit(patient)
        waiting = fresh(req)
        assert (waiting.status, waiting.received_on) == ("awaiting_identity", date(2026, 9, 3))
        assert (waiting.relevant_day, waiting.due_on) == (None, None)
        assert "the legal time limit starts when we have done so" in emails_to(patient.email)[0].body_text

        traveller.move_to(london(2026, 9, 10, 9, 30))
        accounts.verify_identity(staff, patient, method="photo_id", note="")

    req = fresh(req)
    assert req.status == "submitted"
    assert req.received_on == date(2026, 9, 3)
    assert req.identity_confirmed_on == date(2026, 9, 10)
    assert req.relevant_day == date(2026, 9, 10)
    assert legal_clock.due_date(date(2026, 9, 10)) == date(2026, 10, 12)  # 10 October 2026 is a Saturday
    assert req.due_on == date(2026, 10, 12)
    started = [m for m in emails_to(patient.email) if m.subject.startswith("Your request has started")]
    assert len(started) == 1 and "We will respond by Monday 12 October 2026." in started[0].body_text


def test_days_waiting_for_a_clarification_move_the_due_date_then_the_working_day_rule_applies():
    with time_machine.travel(london(2026, 9, 3), tick=False) as traveller:
        staff = make_staff().account
        patient = make_patient(verified=True).account
        req = submit(patient)
        assert fresh(req).due_on == date(2026, 10, 5)

        traveller.move_to(london(2026, 9, 7))
        service.ask_for_clarification(staff, req, QUESTION)
        assert fresh(req).paused_since == date(2026, 9, 7)
        traveller.move_to(london(2026, 9, 12))  # five days later
        service.answer_clarification(patient, req, ANSWER)
        req = fresh(req)
        assert req.paused_days == 5
        assert req.due_on == date(2026, 10, 8)  # 3 October + 5 days, a Thursday
        assert req.due_on == legal_clock.due_date(date(2026, 9, 3), paused_days=5)

        traveller.move_to(london(2026, 9, 14))
        service.ask_for_clarification(staff, req, "And roughly what time?")
        traveller.move_to(london(2026, 9, 16))  # two more days
        service.answer_clarification(patient, req, "Mid-morning")

    req = fresh(req)
    assert req.paused_days == 7
    assert req.due_on == date(2026, 10, 12)  # 10 October is a Saturday: rolled to Monday
    answered = audit_events("request_clarification_answered", req.reference)
    assert [json.loads(e.details)["paused_days"] for e in answered] == [5, 2]


def test_an_extension_makes_it_three_months_from_the_relevant_day_once_only():
    with time_machine.travel(london(2026, 9, 3), tick=False) as traveller:
        staff = make_staff().account
        patient = make_patient(verified=True).account
        req = submit(patient)
        traveller.move_to(london(2026, 10, 5, 16))  # the original due date itself is still in time
        service.extend(staff, req, "There are more than forty calls to search")
        extended = fresh(req)
        assert extended.due_on == date(2026, 12, 3)
        assert extended.extended_at is not None
        assert extended.extension_reason == "There are more than forty calls to search"
        [event] = audit_events("request_extended", req.reference)
        assert json.loads(event.details) == {"due_before": "2026-10-05", "due_after": "2026-12-03"}
        before = _snapshot(req)

        with pytest.raises(
            RequestError, match=exactly("This request has already been extended. It can be extended only once.")
        ):
            service.extend(staff, req, "Even more calls")

    assert _snapshot(req) == before
    assert fresh(req).extension_reason == "There are more than forty calls to search"


def test_an_extension_is_refused_after_the_original_due_date():
    with time_machine.travel(london(2026, 9, 3), tick=False) as traveller:
        staff = make_staff().account
        patient = make_patient(verified=True).account
        req = submit(patient)
        traveller.move_to(london(2026, 10, 6, 9))
        before = _snapshot(req)

        with pytest.raises(RequestError) as refused:
            service.extend(staff, req, "Too late now")

    assert str(refused.value) == "The original due date has passed, so the request can no longer be extended."
    assert _snapshot(req) == before
    assert fresh(req).extended_at is None


def test_the_received_date_is_the_date_in_london_not_in_utc():
    """23:30 UTC on 30 June 2026 is 00:30 on 1 July in London (BST): the law counts from 1 July."""
    with time_machine.travel(datetime(2026, 6, 30, 23, 30, tzinfo=UTC), tick=False):
        patient = make_patient(verified=True).account
        req = submit(patient, calls_to=date(2026, 6, 30))
        assert service.practice_today() == date(2026, 7, 1)

    req = fresh(req)
    assert req.received_on == date(2026, 7, 1)
    assert req.relevant_day == date(2026, 7, 1)
    assert req.due_on == date(2026, 8, 3)  # 1 August 2026 is a Saturday


def test_call_dates_in_the_future_or_the_wrong_way_round_are_refused():
    with time_machine.travel(london(2026, 9, 3), tick=False):
        patient = make_patient(verified=True).account
        with pytest.raises(RequestError, match=exactly("The dates of the calls must be today or in the past.")):
            submit(patient, calls_to=date(2026, 9, 4))
        with pytest.raises(
            RequestError, match=exactly("The first date of the calls must be on or before the last date.")
        ):
            submit(patient, calls_from=date(2026, 9, 2), calls_to=date(2026, 9, 1))
        with pytest.raises(RequestError, match=exactly("Select how you would like to receive the recordings.")):
            submit(patient, preferred_format="fax")
    assert count(RecordingRequest) == 0
    assert count(ReferenceCounter) == 0


# ---------------------------------------------------------------------------------------------------------
# Requests logged by staff (letter, phone, desk, email)
# ---------------------------------------------------------------------------------------------------------


def offline(**changes) -> OfflineRequest:
    values = {
        "received_via": "letter",
        "received_on": date(2026, 8, 20),
        "details": call_details(calls_from=date(2026, 8, 1), calls_to=date(2026, 8, 14)),
        "requester_name": "Mary Seacole",
        "requester_nhs_number": "9434765889",
        "requester_date_of_birth": date(1940, 5, 6),
        "requester_contact": "12 Bentham Road, London SE28 8BE",
        "identity_confirmed_on": date(2026, 8, 25),
    }
    values.update(changes)
    return OfflineRequest(**values)


def test_a_letter_from_someone_without_an_account_starts_its_clock_when_identity_was_checked():
    with time_machine.travel(london(2026, 8, 26, 10), tick=False):
        staff = make_staff().account
        req = service.log_offline_request(staff, offline())

    req = fresh(req)
    assert req.patient_id is None
    assert (req.requester_name, req.requester_nhs_number) == ("Mary Seacole", "9434765889")
    assert req.received_via == "letter"
    assert req.received_on == date(2026, 8, 20)
    assert req.identity_confirmed_on == date(2026, 8, 25)
    assert req.relevant_day == date(2026, 8, 25)
    assert req.due_on == legal_clock.due_date(date(2026, 8, 25)) == date(2026, 9, 25)
    assert req.status == "submitted"
    assert req.logged_by_id == staff.id
    [entry] = status_entries(req)
    assert (entry.to_status, entry.summary) == ("submitted", "Request received (letter) and logged by the practice")
    [event] = audit_events("request_logged_offline", req.reference)
    assert json.loads(event.details) == {"status": "submitted", "via": "letter"}
    assert count(OutboundEmail) == 0  # no account to email: staff reply by letter


def test_a_logged_request_without_an_identity_check_waits_with_no_due_date():
    with time_machine.travel(london(2026, 8, 26, 10), tick=False):
        staff = make_staff().account
        req = service.log_offline_request(staff, offline(identity_confirmed_on=None))
    req = fresh(req)
    assert (req.status, req.relevant_day, req.due_on) == ("awaiting_identity", None, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"received_on": date(2026, 8, 27)}, "The date received must be today or in the past."),
        ({"requester_name": ""}, "Enter the name of the person making the request."),
        ({"identity_confirmed_on": date(2026, 8, 27)}, "The date identity was confirmed must be today or in the past."),
        ({"received_via": "online"}, "Select how the request was received."),
        ({"received_via": "carrier pigeon"}, "Select how the request was received."),
    ],
    ids=["future-received-date", "no-name", "future-identity-date", "online", "unknown-route"],
)
def test_a_wrong_offline_request_is_refused_and_nothing_is_written(changes, message):
    with time_machine.travel(london(2026, 8, 26, 10), tick=False):
        staff = make_staff().account
        audits = count(AuditEvent)
        with pytest.raises(RequestError) as refused:
            service.log_offline_request(staff, offline(**changes))

    assert str(refused.value) == message
    assert count(RecordingRequest) == 0
    assert count(RequestEvent) == 0
    assert count(ReferenceCounter) == 0
    assert count(AuditEvent) == audits
