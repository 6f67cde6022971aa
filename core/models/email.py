"""The outbox: every email is stored here, in the transaction that causes it, and delivered later."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.content import utc_now
from core.models.types import UTCDateTime


class OutboundEmail(db.Model):
    """One message. `status` is pending until it is sent, or failed once every retry is used up.

    Bodies never hold health information: only "there is an update, sign in to see it" and a link.
    """

    __tablename__ = "outbound_email"
    __table_args__ = (Index("ix_outbound_email_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Set when a worker takes the message to send it; another worker leaves it alone until then (see
    # core.services.email.deliver_pending).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
