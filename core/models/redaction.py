"""Withholding parts of a recording before release: the ranges staff mark, each copy made from them, and the
waveform a recording's page draws.

A copy is an ordinary `Recording` on the same request (encrypted, in the store, with its own SHA-256) whose
`redacted_from_id` names the original; the original is never changed. A `RedactedCopy` row is one press of
"Produce the redacted copy": the worker (`flask worker`) claims it, makes the copy and proves the ranges silent.
It keeps the ranges it was made from, so the copy can always say what was withheld and why even after staff
change the ranges (which makes that copy out of date: SUPERSEDED).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extensions import db
from core.models.accounts import StaffUser
from core.models.content import utc_now
from core.models.requests import Recording, new_public_id
from core.models.types import UTCDateTime


class RedactionReason(StrEnum):
    """Why a part is withheld (ICO right-of-access guidance: other people's information, unless they agree or
    it is reasonable to disclose; information likely to cause serious harm)."""

    OTHER_PERSON = "other-person"
    STAFF_DETAILS = "staff-details"
    SERIOUS_HARM = "serious-harm"


REASON_LABELS: dict[str, str] = {
    RedactionReason.OTHER_PERSON: "Another person's information",
    RedactionReason.STAFF_DETAILS: "Personal details of a member of staff",
    RedactionReason.SERIOUS_HARM: "Information likely to cause serious harm",
}

# The same reasons in the words the patient reads on their download page.
REASON_PATIENT_WORDING: dict[str, str] = {
    RedactionReason.OTHER_PERSON: "it was information about another person",
    RedactionReason.STAFF_DETAILS: "it was personal information about a member of our staff",
    RedactionReason.SERIOUS_HARM: "a clinician judged it likely to cause serious harm to someone's health or wellbeing",
}


class CopyStatus(StrEnum):
    QUEUED = "queued"
    WORKING = "working"
    READY = "ready"
    REFUSED = "refused"  # made, but the proof found sound in a range or a changed length: not kept
    FAILED = "failed"  # could not be decoded or encoded
    SUPERSEDED = "superseded"  # the ranges changed after it was asked for


def format_timestamp(ms: int) -> str:
    """Milliseconds as "mm:ss.s" ("h:mm:ss.s" from an hour), the form staff type times in."""
    tenths = round(ms / 100)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    seconds, tenth = divmod(rest, 10)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}.{tenth}"
    return f"{minutes:02d}:{seconds:02d}.{tenth}"


class RedactionRange(db.Model):
    """A part of an original recording to withhold: from `start_ms` to `end_ms`, why, and an optional note
    for colleagues (kept here, never in the audit trail, as it may name the other person)."""

    __tablename__ = "redaction_range"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), nullable=False, index=True)
    start_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    end_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    updated_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)

    created_by: Mapped[StaffUser] = relationship(StaffUser, foreign_keys=[created_by_id])
    updated_by: Mapped[StaffUser] = relationship(StaffUser, foreign_keys=[updated_by_id])

    @property
    def start_label(self) -> str:
        return format_timestamp(self.start_ms)

    @property
    def end_label(self) -> str:
        return format_timestamp(self.end_ms)

    @property
    def reason_label(self) -> str:
        return REASON_LABELS.get(self.reason, self.reason)

    def snapshot(self) -> dict:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "reason": self.reason, "note": self.note}


class RedactedCopy(db.Model):
    """One request for a redacted copy of `original`, and what became of it (`status`, `progress`, the proof)."""

    __tablename__ = "redacted_copy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    original_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), nullable=False, index=True)
    copy_id: Mapped[int | None] = mapped_column(ForeignKey("recording.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=CopyStatus.QUEUED, index=True)
    fill: Mapped[str] = mapped_column(String(16), nullable=False)
    # The ranges it is made from: [{"start_ms", "end_ms", "reason", "note"}] by start.
    ranges: Mapped[list] = mapped_column(JSON, nullable=False)
    progress: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    proof: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    original: Mapped[Recording] = relationship(Recording, foreign_keys=[original_id])
    copy: Mapped[Recording | None] = relationship(Recording, foreign_keys=[copy_id])
    requested_by: Mapped[StaffUser] = relationship(StaffUser)

    @property
    def in_progress(self) -> bool:
        return self.status in (CopyStatus.QUEUED, CopyStatus.WORKING)


class RecordingWaveform(db.Model):
    """The loudest level of each tenth of a second (0..100), drawn once by the worker so a recording's page
    draws its waveform without fetching the audio. `status` is working, ready or failed."""

    __tablename__ = "recording_waveform"

    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="working")
    per_second: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    values: Mapped[list | None] = mapped_column(JSON, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message: Mapped[str | None] = mapped_column(String(300), nullable=True)
