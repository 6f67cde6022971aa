"""The outbox: messages go to a real SMTP server (aiosmtpd on loopback), and none is lost while it is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.extensions import db
from core.models import OutboundEmail
from core.services.db import transactional
from core.services.email import MAX_ATTEMPTS, deliver_pending, queue_email, retry_delay
from tests.smtp_support import start_server


@transactional
def queue(to: str = "patient@example.org", subject: str = "Update on your request") -> OutboundEmail:
    return queue_email(to=to, subject=subject, body="There is an update. Sign in to see it.")


def stored() -> list[OutboundEmail]:
    db.session.expire_all()
    return list(db.session.execute(select(OutboundEmail).order_by(OutboundEmail.id)).scalars())


def test_queued_messages_are_delivered_by_smtp(app, smtp_port):
    controller, inbox = start_server(smtp_port)
    try:
        queue(to="a@example.org")
        queue(to="b@example.org", subject="Your recordings are ready")
        report = deliver_pending()
    finally:
        controller.stop()
    assert (report.sent, report.retrying) == (2, 0)
    assert sorted(message["To"] for message in inbox.messages) == ["a@example.org", "b@example.org"]
    assert inbox.messages[0]["From"] == "portal@example.org"
    assert "Sign in to see it." in inbox.messages[0].get_payload()
    assert [row.status for row in stored()] == ["sent", "sent"]
    assert deliver_pending().sent == 0  # nothing is sent twice


def test_nothing_is_lost_while_the_mail_server_is_down(app, smtp_port):
    queue()
    started = datetime.now(UTC)
    report = deliver_pending(now=started)
    assert (report.sent, report.retrying) == (0, 1)
    row = stored()[0]
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("ConnectionRefusedError")

    assert deliver_pending(now=started + timedelta(seconds=30)).sent == 0  # not yet due again

    controller, inbox = start_server(smtp_port)
    try:
        report = deliver_pending(now=started + retry_delay(1))
    finally:
        controller.stop()
    assert report.sent == 1
    assert len(inbox.messages) == 1
    assert stored()[0].status == "sent"


def test_delivery_gives_up_after_the_last_attempt(app, smtp_port):
    queue()
    now = datetime.now(UTC)
    for _ in range(MAX_ATTEMPTS):
        deliver_pending(now=now)
        now += timedelta(hours=7)
    row = stored()[0]
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)


def test_retry_delays_grow_and_are_capped():
    assert [retry_delay(n) for n in (1, 2, 3)] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert retry_delay(20) == timedelta(hours=6)


def test_a_message_queued_by_a_change_that_fails_is_not_sent(app):
    @transactional
    def failing_change():
        queue_email(to="a@example.org", subject="Update", body="Sign in.")
        raise ValueError("the change failed")

    with pytest.raises(ValueError, match="the change failed"):
        failing_change()
    assert stored() == []


def test_header_injection_is_refused(app):
    with pytest.raises(ValueError, match="line breaks"):
        queue(subject="Hello\r\nBcc: victim@example.org")


def test_outbox_deliver_command_reports_what_it_did(app, smtp_port):
    controller, _ = start_server(smtp_port)
    try:
        queue()
        result = app.test_cli_runner().invoke(args=["outbox", "deliver"])
    finally:
        controller.stop()
    assert result.exit_code == 0
    assert result.output == "Sent 1; 0 to retry later; 0 given up.\n"


def test_development_transport_writes_to_the_log_instead_of_sending(app, caplog):
    app.config["MAIL_TRANSPORT"] = "log"
    try:
        queue()
        assert deliver_pending().sent == 1
    finally:
        app.config["MAIL_TRANSPORT"] = "smtp"
    assert any("Update on your request" in record.getMessage() for record in caplog.records)
