"""The two scheduled commands of the request domain: `flask reminders send` (the staff digest of deadlines,
UK GDPR Art. 12(3); SECURITY N3) and `flask purge` (release copies deleted after PURGE_AFTER_DAYS, the audit
keeping name, size and hash; DESIGN §6 step 5; SECURITY H15, N2, L1).

Both run through the real CLI, as cron would run them. The digest names references, dates and states only:
no patient's name, no description and no complaint text leave the portal in an email (DESIGN §6).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from core import legal_clock
from core.extensions import db
from core.models.email import OutboundEmail
from core.models.requests import Recording, RecordingRequest
from core.services import accounts
from core.services import requests as service
from core.services.recordings import stored_path
from core.services.releases import approve_release, prepare_release
from core.services.tokens import absolute_url_for
from tests.accounts_support import make_staff
from tests.core.test_request_lifecycle import (
    DESCRIPTION,
    Staffing,
    attach_sample,
    audit_events,
    fresh,
    london,
    make_people,
    submit,
    use_recordings_dir,
)

DIGEST_SUBJECT = "Call recording requests:"
COMPLAINT = "Nobody has replied to me for weeks about the call where I discussed my diabetes"
MONDAY = london(2026, 9, 14, 8)  # a working morning


@pytest.fixture
def people(app, tmp_path, monkeypatch) -> Staffing:
    use_recordings_dir(app, tmp_path, monkeypatch)
    return make_people()


def digests() -> list[OutboundEmail]:
    return list(
        db.session.execute(
            select(OutboundEmail).where(OutboundEmail.subject.startswith(DIGEST_SUBJECT)).order_by(OutboundEmail.id)
        ).scalars()
    )


def set_due(req: RecordingRequest, due: date) -> None:
    db.session.execute(update(RecordingRequest).where(RecordingRequest.id == req.id).values(due_on=due))
    db.session.commit()


def release(people: Staffing, req: RecordingRequest) -> None:
    prepare_release(people.staff, req)
    approve_release(people.admin, fresh(req), people.review())


def run(app, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result


# ---------------------------------------------------------------------------------------------------------
# flask reminders send
# ---------------------------------------------------------------------------------------------------------


def test_reminders_email_each_active_staff_member_the_overdue_and_due_soon_references_only(app, people):
    with time_machine.travel(MONDAY, tick=False):
        today = service.practice_today()
        overdue = submit(people.patient)
        set_due(overdue, date(2026, 9, 10))  # Thursday: two working days ago
        soon = submit(people.patient)
        service.assign(people.admin, soon, people.staff)
        set_due(soon, legal_clock.add_working_days(today, 3))
        due_today = submit(people.patient)
        set_due(due_today, today)
        far = submit(people.patient)
        set_due(far, legal_clock.add_working_days(today, 20))
        waiting = submit(people.unverified)  # no clock yet
        handed_over = submit(people.patient)
        attach_sample(people.staff, handed_over)
        release(people, handed_over)
        set_due(handed_over, date(2026, 9, 1))  # released: waiting for the patient, not for staff
        withdrawn = submit(people.patient)
        set_due(withdrawn, date(2026, 9, 1))
        service.withdraw(people.patient, withdrawn)
        service.complain(people.patient, withdrawn, COMPLAINT)
        deactivated = make_staff(email="dee@practice.example", name="Dee Parted").account
        accounts.set_account_active(people.admin, deactivated, False)
        invited = make_staff(email="ivy@practice.example", name="Ivy Invited").account
        invited.password_hash = None  # invited, has not set a password yet
        db.session.commit()

        result = run(app, "reminders", "send")

    assert result.output == (
        "1 overdue, 2 due within 7 working days, 1 complaints to acknowledge: 3 reminder emails queued.\n"
    )
    messages = digests()
    assert sorted(m.to_address for m in messages) == [
        "ava@practice.example",
        "ben@practice.example",
        "sam@practice.example",
    ]
    link = absolute_url_for("admin.request_detail", reference=overdue.reference)
    for message in messages:
        assert message.subject == f"{DIGEST_SUBJECT} 1 overdue, 2 due soon, 1 complaints to acknowledge"
        body = message.body_text
        assert (
            f"OVERDUE\n- {overdue.reference}: due Thursday 10 September 2026 (2 working days overdue); "
            f"received; not assigned\n  {link}"
        ) in body
        assert (
            f"- {soon.reference}: due Thursday 17 September 2026 (3 working days left); being processed; "
            f"assigned to Sam Clerk\n  {absolute_url_for('admin.request_detail', reference=soon.reference)}"
        ) in body
        assert f"- {due_today.reference}: due Monday 14 September 2026 (due today); received; not assigned" in body
        assert body.index(due_today.reference) < body.index(soon.reference)  # soonest first
        assert (
            f"COMPLAINTS WAITING FOR AN ACKNOWLEDGEMENT\n- Complaint about {withdrawn.reference}: acknowledge by "
            f"Wednesday 14 October 2026\n  {absolute_url_for('admin.complaint_list')}"
        ) in body
        for absent in (far.reference, waiting.reference, handed_over.reference):
            assert absent not in body
        for private in (
            "Ada",
            "Lovelace",
            "Grace",
            "Hopper",
            people.patient.nhs_number,
            people.unverified.nhs_number,
            people.patient.email,
            DESCRIPTION,
            COMPLAINT,
            "diabetes",
        ):
            assert private not in body
            assert private not in message.subject
    names = {m.to_address: m.body_text.split("\n", 1)[0] for m in messages}
    assert names["sam@practice.example"] == "Dear Sam Clerk,"
    [event] = audit_events("reminders_sent")
    assert json.loads(event.details) == {"emails": 3, "overdue": 1, "due_soon": 2, "complaints": 1}
    assert event.actor_type == "system"


def test_no_reminders_are_sent_when_there_is_nothing_to_report(app, people):
    with time_machine.travel(MONDAY, tick=False):
        far = submit(people.patient)
        set_due(far, legal_clock.add_working_days(service.practice_today(), 8))
        complaint = service.complain(people.patient, far, COMPLAINT)
        service.acknowledge_complaint(people.admin, complaint, "We are looking into it")
        overdue_but_closed = submit(people.patient)
        set_due(overdue_but_closed, date(2026, 9, 1))
        service.refuse(people.staff, overdue_but_closed, "Manifestly unfounded", partly=False)

        result = run(app, "reminders", "send")

    assert (
        result.output
        == "0 overdue, 0 due within 7 working days, 0 complaints to acknowledge: 0 reminder emails queued.\n"
    )
    assert digests() == []
    [event] = audit_events("reminders_sent")
    assert json.loads(event.details) == {"emails": 0, "overdue": 0, "due_soon": 0, "complaints": 0}


# ---------------------------------------------------------------------------------------------------------
# flask purge
# ---------------------------------------------------------------------------------------------------------

PURGE_NOW = datetime(2026, 10, 15, 9, 0, tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def days_before(days: int) -> datetime:
    return PURGE_NOW - timedelta(days=days)


def test_purge_deletes_release_copies_only_after_the_keeping_period_and_the_audit_keeps_what_they_were_h15(
    app, people, tmp_path
):
    store = tmp_path / "recordings"
    with time_machine.travel(days_before(40), tick=False) as traveller:
        closed_long_ago = submit(people.patient)
        closed_recently = submit(people.patient)
        expired_long_ago = submit(people.patient)
        expired_recently = submit(people.patient)
        live = submit(people.patient)
        never_released = submit(people.patient)
        files = {
            "closed_long_ago": attach_sample(people.staff, closed_long_ago, "wav"),
            "closed_recently": attach_sample(people.staff, closed_recently, "mp3"),
            "expired_long_ago": attach_sample(people.staff, expired_long_ago, "ogg"),
            "expired_recently": attach_sample(people.staff, expired_recently, "m4a"),
            "live": attach_sample(people.staff, live, "mp3"),
            "never_released": attach_sample(people.staff, never_released, "ogg"),
        }
        release(people, closed_long_ago)
        release(people, closed_recently)
        traveller.move_to(days_before(38))
        release(people, expired_long_ago)  # expires 31 days before the purge
        traveller.move_to(days_before(31))
        service.close(people.staff, fresh(closed_long_ago))
        traveller.move_to(days_before(29))
        service.close(people.staff, fresh(closed_recently))
        traveller.move_to(days_before(20))
        release(people, expired_recently)  # expired 13 days before the purge
        traveller.move_to(days_before(2))
        release(people, live)

        traveller.move_to(PURGE_NOW)
        gone = {"closed_long_ago", "expired_long_ago"}
        freed = sum(files[name].size_bytes for name in gone)
        all_names = sorted(r.stored_name for r in files.values())
        assert sorted(p.name for p in store.iterdir()) == all_names

        dry = run(app, "purge", "--dry-run")

        assert dry.output == f"Would delete 2 recording files ({freed:,} bytes).\n"
        assert sorted(p.name for p in store.iterdir()) == all_names
        assert db.session.execute(select(Recording.purged_at)).scalars().all() == [None] * 6
        assert audit_events("recording_purged") == []

        real = run(app, "purge")

        assert real.output == f"Deleted 2 recording files ({freed:,} bytes).\n"
        again = run(app, "purge")
        assert again.output == "Deleted 0 recording files (0 bytes).\n"

    assert sorted(p.name for p in store.iterdir()) == sorted(files[n].stored_name for n in files if n not in gone)
    events = {e.object_id: json.loads(e.details) for e in audit_events("recording_purged")}
    assert len(events) == 2
    for name, before in files.items():
        row = db.session.get(Recording, before.id)
        assert (row.original_name, row.size_bytes, row.sha256) == (
            before.original_name,
            before.size_bytes,
            before.sha256,
        )
        if name in gone:
            assert row.purged_at is not None
            assert aware(row.purged_at) == PURGE_NOW
            assert stored_path(row) is None
            assert events[row.public_id] == {
                "request": db.session.get(RecordingRequest, row.request_id).reference,
                "name": before.original_name,
                "size": before.size_bytes,
                "sha256": before.sha256,
            }
        else:
            assert row.purged_at is None, name
            assert stored_path(row) == store / row.stored_name
            assert row.public_id not in events
