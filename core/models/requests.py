"""Requests for copies of call recordings (subject access requests), the recordings staff attach, the
releases that let a patient download them, and complaints about how a request was handled.

The request's status changes only through `core.services.requests` (one state machine); every change is a
`RequestEvent` on the request's timeline and an audit event.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extensions import db
from core.models.accounts import Patient, StaffUser, format_nhs_number
from core.models.content import NoticeVersion, utc_now
from core.models.types import UTCDateTime


class Status(StrEnum):
    """The states of DESIGN §4, in the order a request usually moves through them. A member equals the string
    stored in `recording_request.status` (`Status.SUBMITTED == "submitted"`), so the database, the audit and
    the templates see plain strings. Which moves are allowed: core.services.requests.lifecycle.TRANSITIONS."""

    AWAITING_IDENTITY = "awaiting_identity"
    SUBMITTED = "submitted"
    CLARIFICATION_REQUESTED = "clarification_requested"
    IN_PROGRESS = "in_progress"
    READY_FOR_APPROVAL = "ready_for_approval"
    RELEASED = "released"
    COMPLETED = "completed"
    NO_RECORDINGS_FOUND = "no_recordings_found"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


REQUEST_STATUSES = tuple(Status)
CLOSED_STATUSES = frozenset({Status.COMPLETED, Status.NO_RECORDINGS_FOUND, Status.REFUSED, Status.WITHDRAWN})
STATUS_LABELS = {
    Status.AWAITING_IDENTITY: "Waiting for identity check",
    Status.SUBMITTED: "Received",
    Status.CLARIFICATION_REQUESTED: "Waiting for more information",
    Status.IN_PROGRESS: "Being processed",
    Status.READY_FOR_APPROVAL: "Being checked before release",
    Status.RELEASED: "Ready to download",
    Status.COMPLETED: "Completed",
    Status.NO_RECORDINGS_FOUND: "No recordings found",
    Status.REFUSED: "Refused",
    Status.WITHDRAWN: "Withdrawn",
}
RECEIVED_VIA = {"online": "Online", "letter": "Letter", "phone": "Phone", "in_person": "In person", "email": "Email"}
FORMATS = {
    "download": "Download the recordings",
    "listen_at_practice": "Listen to them at the practice",
    "transcript": "A written transcript (an accessibility adjustment)",
}
DIRECTIONS = {"inbound": "Patient called the practice", "outbound": "The practice called the patient"}


def new_public_id() -> str:
    return secrets.token_hex(16)


class ReferenceCounter(db.Model):
    """The last request number used in a year: references are `CR-<year>-<number>`, numbered per year."""

    __tablename__ = "reference_counter"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RecordingRequest(db.Model):
    __tablename__ = "recording_request"
    __table_args__ = (
        Index("ix_recording_request_status_due", "status", "due_on", "id"),
        Index("ix_recording_request_due", "due_on", "id"),
        Index("ix_recording_request_assigned", "assigned_to_id", "status", "due_on"),
        Index("ix_recording_request_patient", "patient_id", "created_at"),
        # The dashboard's 12-month figures (received per month; answered per month).
        Index("ix_recording_request_received", "received_on"),
        Index("ix_recording_request_closed", "closed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), nullable=False, unique=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), nullable=True)
    # For a request logged by staff for someone without an account: who asked and how to reach them.
    requester_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requester_nhs_number: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)
    requester_date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)
    requester_contact: Mapped[str | None] = mapped_column(String(500), nullable=True)

    received_via: Mapped[str] = mapped_column(String(16), nullable=False, default="online")
    received_on: Mapped[date] = mapped_column(Date, nullable=False)
    logged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    identity_confirmed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The legal clock (core.legal_clock). None while the clock has not started (identity not yet confirmed).
    relevant_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    paused_days: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    paused_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # The calls asked for.
    calls_from: Mapped[date] = mapped_column(Date, nullable=False)
    calls_to: Mapped[date] = mapped_column(Date, nullable=False)
    approximate_time: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    phone_number: Mapped[str] = mapped_column(String(30), nullable=False, default="")
    spoke_to: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    preferred_format: Mapped[str] = mapped_column(String(24), nullable=False, default="download")
    share_with_nhs_england: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    notice_version_id: Mapped[int | None] = mapped_column(ForeignKey("notice_version.id"), nullable=True)
    # Makes a double-clicked submit create one request: the form carries a random key, unique per request.
    submission_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)

    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    # Why the practice refused all or part of the request (sent to the patient with their rights).
    refusal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    partly_refused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    patient: Mapped[Patient | None] = relationship(Patient, lazy="joined")
    assigned_to: Mapped[StaffUser | None] = relationship(StaffUser, foreign_keys=[assigned_to_id])
    # The member of staff who logged a request received offline (None for one made online).
    logged_by: Mapped[StaffUser | None] = relationship(StaffUser, foreign_keys=[logged_by_id])
    notice_version: Mapped[NoticeVersion | None] = relationship(NoticeVersion)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def requester_display_name(self) -> str:
        return self.patient.full_name if self.patient else (self.requester_name or "Unknown")

    @property
    def nhs_number_display(self) -> str | None:
        digits = self.patient.nhs_number if self.patient else self.requester_nhs_number
        return format_nhs_number(digits) if digits else None

    def __repr__(self) -> str:
        return f"<RecordingRequest {self.reference} {self.status}>"


class RequestEvent(db.Model):
    """One entry on a request's timeline: a status change, a message to or from the patient, or a staff note.

    `visible_to_patient` decides whether the patient's page shows it; internal notes never are.
    """

    __tablename__ = "request_event"
    __table_args__ = (Index("ix_request_event_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("recording_request.id"), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    summary: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    visible_to_patient: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Recording(db.Model):
    """An audio file attached to a request by staff: the release copy. The audio is stored encrypted
    (core.services.recording_store) under `stored_name` (random) in the store `storage` names: a file in
    RECORDINGS_DIR or chunks in `recording_chunk`. Its data key is kept wrapped by the RECORDING_KEYS key
    `key_id`. A row from before encryption has no `storage` until `flask recordings encrypt-files` moves its
    plain file into the store. `purged_at` is set when `flask purge` deletes the audio, and the row stays so
    the audit keeps what was released (name, size, hash of the plain audio)."""

    __tablename__ = "recording"
    __table_args__ = (Index("ix_recording_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    request_id: Mapped[int] = mapped_column(ForeignKey("recording_request.id"), nullable=False)
    original_name: Mapped[str] = mapped_column(String(255), nullable=False)
    stored_name: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    media_type: Mapped[str] = mapped_column(String(32), nullable=False)
    extension: Mapped[str] = mapped_column(String(8), nullable=False)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    call_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    caller_number: Mapped[str] = mapped_column(String(30), nullable=False, default="")
    direction: Mapped[str] = mapped_column(String(16), nullable=False, default="inbound")
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), nullable=False)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Encryption at rest: the store holding the chunks ("filesystem" or "database"), the id of the key that
    # wraps the data key, the wrapped data key, and the size of a chunk of plain audio.
    storage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    chunk_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A redacted copy (core.models.redaction) names the original it was made from; an original has None.
    redacted_from_id: Mapped[int | None] = mapped_column(ForeignKey("recording.id"), nullable=True, index=True)

    uploaded_by: Mapped[StaffUser] = relationship(StaffUser)
    redacted_from: Mapped[Recording | None] = relationship(
        "Recording", remote_side=[id], foreign_keys=[redacted_from_id]
    )

    @property
    def duration_label(self) -> str:
        """The `duration` filter's text, for Python callers (a flash message)."""
        from core.formatters import format_duration  # core.formatters reads this module's STATUS_LABELS

        return format_duration(self.duration_seconds)


class RecordingChunk(db.Model):
    """One encrypted chunk of a recording in the database store (RECORDING_STORE=database): nonce, ciphertext
    and tag, found by the recording's `stored_name` and the chunk's index. No foreign key: the chunks are
    written while the upload is read, before the recording's row exists; `written_at` lets the purge job find
    chunks whose row never came (a process killed between the two) and remove them once no upload can still be
    finishing (core.services.recording_store.sweep_orphans)."""

    __tablename__ = "recording_chunk"

    object_name: Mapped[str] = mapped_column(String(80), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class Release(db.Model):
    """A release of a request's recordings to the patient through a download link (DESIGN §6).

    Prepared by staff, approved by an admin (another admin when four-eyes is on), then live until
    `expires_at`. The emailed link carries only `public_id`, signed; this row decides expiry and revocation,
    and `ReleaseItem.download_count` the downloads.
    """

    __tablename__ = "release"
    __table_args__ = (Index("ix_release_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    request_id: Mapped[int] = mapped_column(ForeignKey("recording_request.id"), nullable=False)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), nullable=False)
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), nullable=False)
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    clinical_review_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    clinical_review_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clinical_review_outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    max_downloads: Mapped[int] = mapped_column(Integer, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set on a draft that was sent back without approval.
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    request: Mapped[RecordingRequest] = relationship(RecordingRequest)
    prepared_by: Mapped[StaffUser] = relationship(StaffUser, foreign_keys=[prepared_by_id])
    approved_by: Mapped[StaffUser | None] = relationship(StaffUser, foreign_keys=[approved_by_id])
    clinical_review_by: Mapped[StaffUser | None] = relationship(StaffUser, foreign_keys=[clinical_review_by_id])
    revoked_by: Mapped[StaffUser | None] = relationship(StaffUser, foreign_keys=[revoked_by_id])
    items: Mapped[list[ReleaseItem]] = relationship("ReleaseItem", order_by="ReleaseItem.id", lazy="selectin")

    def is_live(self, now: datetime) -> bool:
        expires = self.expires_at
        return self.approved_at is not None and self.revoked_at is None and expires is not None and expires > now


class ReleaseItem(db.Model):
    """One recording on a release, with how many times it has been downloaded through the link."""

    __tablename__ = "release_item"
    __table_args__ = (Index("ix_release_item_release", "release_id", "recording_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"), nullable=False)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), nullable=False)
    download_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    recording: Mapped[Recording] = relationship(Recording, lazy="joined")


class Complaint(db.Model):
    """A complaint about how a request was handled (UK DPA 2018 s.164A): acknowledged within 30 days."""

    __tablename__ = "complaint"
    __table_args__ = (Index("ix_complaint_acknowledged", "acknowledged_at", "acknowledge_by"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    request_id: Mapped[int] = mapped_column(ForeignKey("recording_request.id"), nullable=False, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    acknowledge_by: Mapped[date] = mapped_column(Date, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)

    request: Mapped[RecordingRequest] = relationship(RecordingRequest)
