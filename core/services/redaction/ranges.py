"""The parts of an original recording staff mark to withhold: add, change, remove, each audited with the times
and reason (never the note, which may name the other person), and the state of its redacted copies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from core.extensions import db
from core.models.accounts import StaffUser
from core.models.redaction import (
    REASON_LABELS,
    REASON_PATIENT_WORDING,
    CopyStatus,
    RedactedCopy,
    RedactionRange,
    format_timestamp,
)
from core.models.requests import Recording, RecordingRequest, Status
from core.services.db import transactional
from core.services.errors import ServiceError
from core.services.recordings import name_for_audit
from core.services.requests.lifecycle import add_timeline_entry, audit_object, lock

# A part shorter than this is almost certainly a slip of the mouse.
MIN_RANGE_MS = 100
NOTE_MAX = 500
# Ranges may change, and copies be made, only while recordings can still be attached or removed: once a release
# is being approved, what the approver listens to must not change under them.
EDITABLE_STATUSES = (Status.SUBMITTED, Status.CLARIFICATION_REQUESTED, Status.IN_PROGRESS)


class RedactionError(ServiceError):
    """A range or copy that cannot be saved or made, with a message for staff naming the field at fault."""


def can_edit(req: RecordingRequest) -> bool:
    return req.status in EDITABLE_STATUSES and not req.is_closed


def ranges_for(recording: Recording) -> list[RedactionRange]:
    return list(
        db.session.execute(
            select(RedactionRange)
            .where(RedactionRange.recording_id == recording.id)
            .order_by(RedactionRange.start_ms, RedactionRange.id)
        ).scalars()
    )


def range_on(recording: Recording, range_public_id: str) -> RedactionRange | None:
    """A range of this recording by its public id; another recording's range is None."""
    return db.session.execute(
        select(RedactionRange).where(
            RedactionRange.public_id == range_public_id, RedactionRange.recording_id == recording.id
        )
    ).scalar_one_or_none()


def ranges_key(ranges: list[dict]) -> list[tuple[int, int, str]]:
    """What decides the audio (and the reasons the patient reads): the times and reasons, not the notes."""
    return sorted((r["start_ms"], r["end_ms"], r["reason"]) for r in ranges)


def check_editable(req: RecordingRequest, recording: Recording) -> RecordingRequest:
    req = lock(req)
    if recording.request_id != req.id or recording.removed_at is not None or recording.purged_at is not None:
        raise RedactionError("That recording is not attached to this request.")
    if recording.redacted_from_id is not None:
        raise RedactionError("This is a redacted copy. Mark the parts to withhold on the original recording.")
    if not can_edit(req):
        raise RedactionError(
            "Parts of a recording can be withheld only while the request is being processed, before a release "
            "is prepared."
        )
    return req


def _check_range(recording: Recording, start_ms: int, end_ms: int, reason: str, note: str) -> None:
    if start_ms < 0:
        raise RedactionError("The start must be 00:00.0 or later.", field="start")
    if end_ms <= start_ms:
        raise RedactionError("The end must be after the start.", field="end")
    if end_ms - start_ms < MIN_RANGE_MS:
        raise RedactionError("A part to withhold must be at least 0.1 seconds long.", field="end")
    if recording.duration_seconds is not None and end_ms > round(recording.duration_seconds * 1000) + 50:
        length = format_timestamp(round(recording.duration_seconds * 1000))
        raise RedactionError(f"The end must be within the recording (it is {length} long).", field="end")
    if reason not in REASON_LABELS:
        raise RedactionError("Select why this part is withheld.", field="reason")
    if len(note) > NOTE_MAX:
        raise RedactionError(f"Enter no more than {NOTE_MAX} characters.", field="note")


def _audit_range(
    actor: StaffUser, action: str, row: RedactionRange, req: RecordingRequest, recording: Recording, **extra
) -> None:
    audit_object(
        actor,
        action,
        row,
        details={
            "request": req.reference,
            "recording": recording.public_id,
            "start_ms": row.start_ms,
            "end_ms": row.end_ms,
            "reason": row.reason,
            "note_given": bool(row.note),
            **extra,
        },
    )


def _timeline(req: RecordingRequest, actor: StaffUser, recording: Recording, text: str) -> None:
    add_timeline_entry(
        req, kind="redaction", actor=actor, summary=f"{text}: {name_for_audit(recording.original_name)}", visible=False
    )


@transactional
def add_range(
    actor: StaffUser, req: RecordingRequest, recording: Recording, *, start_ms: int, end_ms: int, reason: str, note: str
) -> RedactionRange:
    req = check_editable(req, recording)
    note = (note or "").strip()
    _check_range(recording, start_ms, end_ms, reason, note)
    row = RedactionRange(
        recording_id=recording.id,
        start_ms=start_ms,
        end_ms=end_ms,
        reason=reason,
        note=note,
        created_by_id=actor.id,
        updated_by_id=actor.id,
    )
    db.session.add(row)
    db.session.flush()
    _timeline(req, actor, recording, f"Part marked to withhold ({row.start_label} to {row.end_label})")
    _audit_range(actor, "redaction_range_added", row, req, recording)
    _supersede_out_of_date(recording)
    return row


@transactional
def change_range(
    actor: StaffUser,
    req: RecordingRequest,
    recording: Recording,
    range_public_id: str,
    *,
    start_ms: int,
    end_ms: int,
    reason: str,
    note: str,
) -> RedactionRange:
    req = check_editable(req, recording)
    row = range_on(recording, range_public_id)
    if row is None:
        raise RedactionError("That part is no longer marked. It may have been removed.")
    note = (note or "").strip()
    _check_range(recording, start_ms, end_ms, reason, note)
    before = {"start_ms": row.start_ms, "end_ms": row.end_ms, "reason": row.reason, "note_given": bool(row.note)}
    row.start_ms, row.end_ms, row.reason, row.note = start_ms, end_ms, reason, note
    row.updated_by_id = actor.id
    row.updated_at = datetime.now(UTC)
    _timeline(req, actor, recording, f"Part to withhold changed ({row.start_label} to {row.end_label})")
    _audit_range(actor, "redaction_range_changed", row, req, recording, before=before)
    _supersede_out_of_date(recording)
    return row


@transactional
def remove_range(actor: StaffUser, req: RecordingRequest, recording: Recording, range_public_id: str) -> None:
    req = check_editable(req, recording)
    row = range_on(recording, range_public_id)
    if row is None:
        raise RedactionError("That part is no longer marked. It may have been removed.")
    _timeline(req, actor, recording, f"Part no longer withheld ({row.start_label} to {row.end_label})")
    _audit_range(actor, "redaction_range_removed", row, req, recording)
    db.session.delete(row)
    db.session.flush()
    _supersede_out_of_date(recording)


def _supersede_out_of_date(recording: Recording) -> None:
    """Copies asked for or made from other ranges than today's are out of date: never released, and the worker
    stops making one that is under way (its next progress report finds it superseded)."""
    today = ranges_key([r.snapshot() for r in ranges_for(recording)])
    copies = db.session.execute(
        select(RedactedCopy).where(
            RedactedCopy.original_id == recording.id,
            RedactedCopy.status.in_((CopyStatus.QUEUED, CopyStatus.WORKING, CopyStatus.READY)),
        )
    ).scalars()
    for copy in copies:
        if ranges_key(copy.ranges) != today:
            copy.status = CopyStatus.SUPERSEDED
            copy.finished_at = copy.finished_at or datetime.now(UTC)


# ---------------------------------------------------------------------------------------------------------
# What the pages show
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyState:
    ranges: list[RedactionRange]
    latest: RedactedCopy | None
    current: RedactedCopy | None  # the ready copy made from today's ranges

    @property
    def needs_copy(self) -> bool:
        return bool(self.ranges) and self.current is None

    @property
    def in_progress(self) -> bool:
        return self.latest is not None and self.latest.in_progress

    @property
    def summary(self) -> str:
        """One line for the request's page: how many parts are marked and where their copy stands."""
        if not self.ranges:
            return "No parts marked to withhold"
        count = len(self.ranges)
        marked = f"{count} part{'s' if count != 1 else ''} marked to withhold"
        if self.current is not None:
            return f"{marked}; redacted copy ready"
        if self.in_progress:
            return f"{marked}; redacted copy being made ({self.latest.progress}%)"
        if self.latest is not None and self.latest.status in (CopyStatus.REFUSED, CopyStatus.FAILED):
            return f"{marked}; the last copy could not be used: produce it again"
        return f"{marked}; the redacted copy has not been produced"


def copy_state(recording: Recording) -> CopyState:
    ranges = ranges_for(recording)
    latest = db.session.execute(
        select(RedactedCopy).where(RedactedCopy.original_id == recording.id).order_by(RedactedCopy.id.desc()).limit(1)
    ).scalar_one_or_none()
    current = None
    if ranges:
        today = ranges_key([r.snapshot() for r in ranges])
        current = db.session.execute(
            select(RedactedCopy)
            .where(RedactedCopy.original_id == recording.id, RedactedCopy.status == CopyStatus.READY)
            .order_by(RedactedCopy.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if current is not None and (ranges_key(current.ranges) != today or not _copy_usable(current)):
            current = None
    return CopyState(ranges=ranges, latest=latest, current=current)


def _copy_usable(copy: RedactedCopy) -> bool:
    made = copy.copy
    return made is not None and made.removed_at is None and made.purged_at is None


def status_json(recording: Recording) -> dict:
    state = copy_state(recording)
    latest = state.latest
    return {
        "status": latest.status if latest else "none",
        "progress": latest.progress if latest else 0,
        "message": (latest.message or "") if latest else "",
        "ready": state.current is not None,
    }


def redaction_summary(recording: Recording) -> str:
    """One line for the request's page."""
    return copy_state(recording).summary


@dataclass(frozen=True)
class WithheldPart:
    start_label: str
    end_label: str
    reason_label: str
    patient_wording: str


def withheld_parts(copy_recording: Recording) -> list[WithheldPart]:
    """What a redacted copy leaves out and why, from the ranges it was made from (empty for an original)."""
    made_from = db.session.execute(
        select(RedactedCopy).where(RedactedCopy.copy_id == copy_recording.id)
    ).scalar_one_or_none()
    if made_from is None:
        return []
    return [
        WithheldPart(
            start_label=format_timestamp(part["start_ms"]),
            end_label=format_timestamp(part["end_ms"]),
            reason_label=REASON_LABELS.get(part["reason"], part["reason"]),
            patient_wording=REASON_PATIENT_WORDING.get(part["reason"], ""),
        )
        for part in sorted(made_from.ranges, key=lambda p: (p["start_ms"], p["end_ms"]))
    ]
