"""The audit trail (SECURITY.md L5): every change is recorded, chained by HMAC, and tampering is caught."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select, text, update

from core.extensions import db
from core.models import AuditEvent
from core.services.audit import AuditError, record_event, verify_chain
from core.services.content import publish_version
from core.services.db import transactional


@transactional
def append(action: str = "test.event", **kwargs) -> AuditEvent:
    return record_event(action=action, **kwargs)


def events() -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())


def tamper(statement) -> None:
    """Change the trail behind the application's back, as someone with database access might."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
        db.session.execute(statement)
        db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    else:
        db.session.execute(statement)
    db.session.commit()


def test_loading_the_default_content_was_audited_with_hashes(app):
    published = [event for event in events() if event.action == "content.published"]
    assert {event.object_id for event in published} == {
        "call-recording-notice",
        "how-to-request",
        "accessibility-statement",
    }
    details = json.loads(published[0].details)
    assert details["before_sha256"] is None
    assert len(details["after_sha256"]) == 64
    assert published[0].actor_type == "system"


def test_publishing_records_before_and_after_hashes(app):
    old = json.loads(events()[0].details)["after_sha256"]
    publish_version(
        slug="call-recording-notice",
        title="Recording of telephone calls",
        source_text="New text.",
        change_summary="Rewrite",
        author_label="Practice manager",
    )
    last = events()[-1]
    details = json.loads(last.details)
    assert (details["before_sha256"], details["version"], details["change_summary"]) == (old, 2, "Rewrite")


def test_an_event_records_who_what_where_and_the_request(client, app):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}, headers={"User-Agent": "Firefox"}):
        append(action="test.seen", actor_type="staff", actor_id="17", object_type="request", object_id="CR-2026-00001")
    event = events()[-1]
    assert (event.actor_type, event.actor_id, event.object_id) == ("staff", "17", "CR-2026-00001")
    assert (event.ip_address, event.user_agent) == ("192.0.2.7", "Firefox")
    assert event.occurred_at is not None


def test_an_intact_chain_verifies(app):
    for number in range(5):
        append(details={"n": number})
    result = verify_chain()
    assert result.ok
    assert result.checked == 3 + 5  # three default pages, five appended here


def test_a_changed_row_is_caught_at_that_row(app):
    for number in range(4):
        append(details={"n": number})
    target = events()[4]
    tamper(update(AuditEvent).where(AuditEvent.id == target.id).values(details='{"n":99}'))
    result = verify_chain()
    assert not result.ok
    assert result.broken_seq == target.seq
    assert result.reason == "its contents were changed after it was written"


def test_a_deleted_row_is_caught(app):
    for number in range(4):
        append(details={"n": number})
    target_id, target_seq = events()[5].id, events()[5].seq
    tamper(AuditEvent.__table__.delete().where(AuditEvent.id == target_id))
    result = verify_chain()
    assert (result.ok, result.broken_seq, result.reason) == (False, target_seq, f"event {target_seq} is missing")


def test_rows_removed_from_the_end_are_caught(app):
    append()
    last_id = events()[-1].id
    tamper(AuditEvent.__table__.delete().where(AuditEvent.id == last_id))
    result = verify_chain()
    assert (result.ok, result.reason) == (False, "events after it were removed from the end")


def test_a_row_re_signed_without_the_key_does_not_verify(app):
    """An attacker with only the database cannot recompute the HMAC: they do not have AUDIT_HMAC_KEY."""
    append(details={"n": 1})
    target = events()[-1]
    forged = "f" * 64
    tamper(update(AuditEvent).where(AuditEvent.id == target.id).values(details='{"n":2}', row_hmac=forged))
    assert verify_chain().broken_seq == target.seq


def test_the_database_refuses_updates_and_deletes_of_audit_rows(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("append-only is enforced by a PostgreSQL trigger; SQLite is for development only")
    target = events()[0]
    with pytest.raises(Exception, match="append-only"):
        db.session.execute(update(AuditEvent).where(AuditEvent.id == target.id).values(details="{}"))
    db.session.rollback()
    with pytest.raises(Exception, match="append-only"):
        db.session.execute(AuditEvent.__table__.delete())
    db.session.rollback()


def test_secrets_are_refused_in_audit_details_and_nothing_is_written(app):
    before = len(events())
    with pytest.raises(AuditError, match="must not hold secrets"):
        append(details={"Password": "hunter2"})
    assert len(events()) == before


def test_a_change_that_fails_leaves_no_audit_event_behind(app):
    before = len(events())

    @transactional
    def failing_change():
        record_event(action="test.half_done")
        raise ValueError("the change itself failed")

    with pytest.raises(ValueError, match="the change itself failed"):
        failing_change()
    assert len(events()) == before


def test_concurrent_appends_never_fork_the_chain(app):
    """Eight threads append at once; the chain stays one line with no gaps."""
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            with app.app_context():
                for step in range(5):
                    append(details={"worker": number, "step": step})
        except BaseException as exc:  # report failures from the threads to the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.session.execute(select(func.count(AuditEvent.id))).scalar_one() == 3 + 40
    assert verify_chain().ok


def test_audit_verify_command_reports_ok_and_then_the_first_broken_row(app):
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0
    assert ok.output == "OK: 3 audit events checked; the chain is intact.\n"

    target = events()[1]
    tamper(update(AuditEvent).where(AuditEvent.id == target.id).values(actor_id="someone-else"))
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert broken.output.startswith(f"BROKEN at audit event {target.seq}: its contents were changed")
