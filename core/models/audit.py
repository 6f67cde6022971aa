"""The audit trail: append-only events, each chained to the one before by an HMAC.

`AuditChainHead` is a single row holding the newest sequence number and HMAC. Every append updates it
first, which makes concurrent appends queue up behind one another on PostgreSQL and SQLite alike, so the
chain never forks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.content import utc_now
from core.models.types import UTCDateTime

GENESIS_HMAC = "0" * 64
# BIGINT on PostgreSQL (a busy practice can log a million events a year); SQLite needs INTEGER for rowid keys.
BigId = BigInteger().with_variant(Integer, "sqlite")


class AuditEvent(db.Model):
    """One thing that happened: who did what to which object, when, from where, and with what outcome.

    `details` is canonical JSON and never holds passwords, codes, tokens, NHS numbers or health details.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_object", "object_type", "object_id"),
        Index("ix_audit_event_actor", "actor_type", "actor_id"),
        # For the audit viewer's filters, newest first by keyset on seq (no OFFSET over a million rows).
        Index("ix_audit_event_action_seq", "action", "seq"),
        Index("ix_audit_event_actor_type_seq", "actor_type", "seq"),
        Index("ix_audit_event_actor_seq", "actor_id", "seq"),
        Index("ix_audit_event_object_seq", "object_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now, index=True)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    object_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    prev_hmac: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hmac: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditChainHead(db.Model):
    """The newest link of the chain. Exactly one row, id 1, created by the migration."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_hmac: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditCheck(db.Model):
    """The result of one verification of the audit chain (`flask audit verify` or the admin audit page), so
    the audit viewer can show when the chain was last checked and where it broke, without re-reading a
    million rows on every page view."""

    __tablename__ = "audit_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    checked: Mapped[int] = mapped_column(BigInteger, nullable=False)
    broken_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Who asked: "system" for the scheduled command, or a staff member's public id.
    checked_by: Mapped[str] = mapped_column(String(64), nullable=False, default="system")


class AuditAnchor(db.Model):
    """The chain's head as the daily check found it: the newest event's number and HMAC, written once a day.

    The portal's database role may only add rows here (deploy/postgres/roles.sql), so an anchor is never
    rewritten: if events after an anchor were later cut from the end of the trail, and the head row moved
    back, `verify_chain` still finds that an anchored event is missing. The same line goes to the log, which
    the portal cannot change.
    """

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    row_hmac: Mapped[str] = mapped_column(String(64), nullable=False)
