"""Email through an outbox, so that no message is lost when the mail server is down.

`queue_email` adds a message in the caller's transaction: it exists exactly when the change that caused it
does. `deliver_pending` (run continuously by the worker, `flask worker`, or once by `flask outbox deliver`)
sends what is due, one commit per message, retrying with growing delays and giving up after MAX_ATTEMPTS.
Patients never see a mail server failure: their action has already succeeded.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app
from sqlalchemy import or_, select, update

from core.extensions import db
from core.log import logger
from core.models.email import OutboundEmail

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)


def normalise_email(raw: str) -> str:
    """An address as accounts store and compare it: NFKC-normalised, trimmed, lower case."""
    return unicodedata.normalize("NFKC", raw or "").strip().lower()


# A pragmatic shape check: one @, a dot in the domain, and none of the characters that have no business in an
# address we will put in an email header or a page.
EMAIL_SHAPE = re.compile(r"[^@\s<>\"'(),;:\[\]\\]{1,64}@[^@\s<>\"'(),;:\[\]\\]{1,252}\.[^@\s<>\"'(),;:\[\]\\.]{2,63}")


def looks_like_email(raw: str) -> bool:
    email = normalise_email(raw)
    return len(email) <= 254 and EMAIL_SHAPE.fullmatch(email) is not None


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    given_up: int = 0


def queue_email(*, to: str, subject: str, body: str) -> OutboundEmail:
    """Add a message to the outbox in the current transaction (the caller's service commits)."""
    if "\n" in subject or "\r" in subject or "\n" in to or "\r" in to:
        raise ValueError("email addresses and subjects cannot contain line breaks")
    message = OutboundEmail(to_address=to.strip(), subject=subject.strip()[:200], body_text=body)
    db.session.add(message)
    return message


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failed attempt, never more than six hours."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


def _as_message(row: OutboundEmail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.set_content(row.body_text)
    return message


def _send(row: OutboundEmail) -> None:
    config = current_app.config
    message = _as_message(row, config["MAIL_FROM"])
    if config["MAIL_TRANSPORT"] == "log":
        # Development only: the address is shown so a developer can follow a sign-up; never in production.
        logger.info("email (not sent: MAIL_TRANSPORT=log) to %s: %s\n%s", row.to_address, row.subject, row.body_text)
        return
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT_SECONDS"]) as smtp:
        if config["MAIL_USE_STARTTLS"]:
            smtp.starttls(context=ssl.create_default_context())  # the server's certificate and name are checked
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        smtp.send_message(message)


def deliver_pending(
    *, now: datetime | None = None, limit: int = 100, should_stop: Callable[[], bool] = lambda: False
) -> DeliveryReport:
    """Send every pending message that is due; return how many were sent, will be retried, or given up.

    Safe with several workers: each message is first claimed by one conditional UPDATE (committed before it
    is sent), so two workers never send it at the same time. A worker killed after sending but before
    recording it leaves the claim to run out (`OUTBOX_CLAIM_SECONDS`), and the message is sent once more:
    at most twice, never lost. `should_stop` is asked between messages (the worker's SIGTERM).
    """
    now = now or datetime.now(UTC)
    claim_for = timedelta(seconds=current_app.config["OUTBOX_CLAIM_SECONDS"])
    due = db.session.execute(
        select(OutboundEmail.id)
        .where(
            OutboundEmail.status == "pending",
            OutboundEmail.next_attempt_at <= now,
            or_(OutboundEmail.claimed_until.is_(None), OutboundEmail.claimed_until < now),
        )
        .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
        .limit(limit)
    ).scalars()
    counts = {"sent": 0, "retrying": 0, "given_up": 0}
    for message_id in list(due):
        if should_stop():
            break
        # The clock is read again for each claim: with a slow mail server a batch takes minutes, and a claim
        # timed from the batch's start could already have run out when taken. Retries stay timed from `now`.
        claim_at = max(now, datetime.now(UTC))
        claimed = db.session.execute(
            update(OutboundEmail)
            .where(
                OutboundEmail.id == message_id,
                OutboundEmail.status == "pending",
                or_(OutboundEmail.claimed_until.is_(None), OutboundEmail.claimed_until < claim_at),
            )
            .values(claimed_until=claim_at + claim_for, attempts=OutboundEmail.attempts + 1)
        ).rowcount
        db.session.commit()
        if claimed:  # else another worker took it
            counts[_deliver_claimed(message_id, now)] += 1
    return DeliveryReport(**counts)


def _deliver_claimed(message_id: int, now: datetime) -> str:
    """Send one claimed message and record the outcome ("sent", "retrying" or "given_up"), releasing the claim;
    committed at once, so a worker killed later does not send it again."""
    row = db.session.get(OutboundEmail, message_id, populate_existing=True)
    try:
        _send(row)
    except (OSError, smtplib.SMTPException) as exc:
        row.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            outcome = "given_up"
            logger.error("email given up after %s attempts", row.attempts, extra={"email_id": row.id})
        else:
            row.next_attempt_at = now + retry_delay(row.attempts)
            outcome = "retrying"
            logger.warning("email delivery failed; will retry", extra={"email_id": row.id})
    else:
        row.status = "sent"
        row.sent_at = datetime.now(UTC)
        row.last_error = None
        outcome = "sent"
    row.claimed_until = None
    db.session.commit()
    return outcome
