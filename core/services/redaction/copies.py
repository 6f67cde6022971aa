"""Making a redacted copy: staff ask for one (`request_copy`), the worker makes it (`process_next_copy`).

The worker decodes the original from the store (decrypting as it reads), replaces each marked part with silence
or the tone (core.audio), encodes the copy in memory (compressed AAC: about 15 MB an hour, never plain audio on
disk), then decodes the copy again and measures every marked part. Only a copy that passes is sealed into the
store as a new `Recording`; one that fails is refused and staff are told why. The original is never changed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from sqlalchemy import or_, select, update

from core.extensions import db
from core.log import logger
from core.models.accounts import StaffUser, new_public_id
from core.models.redaction import CopyStatus, RedactedCopy
from core.models.requests import Recording, RecordingRequest
from core.services.db import transactional
from core.services.recording_store import store_named
from core.services.recordings import name_for_audit, new_stored_name, open_recording, seal_into_store
from core.services.redaction.ranges import (
    RedactionError,
    check_editable,
    ranges_for,
    ranges_key,
)
from core.services.requests.lifecycle import add_timeline_entry, audit_object, lock
from core.services.settings import practice_settings

# A copy "working" for longer than this lost its worker (killed, host gone): another worker starts it again.
LEASE = timedelta(minutes=30)


@transactional
def request_copy(actor: StaffUser, req: RecordingRequest, recording: Recording) -> RedactedCopy:
    """Ask the worker for a redacted copy made from today's ranges, with the practice's fill."""
    req = check_editable(req, recording)
    snapshot = [row.snapshot() for row in ranges_for(recording)]
    if not snapshot:
        raise RedactionError("Mark at least one part to withhold before producing a redacted copy.")
    for earlier in db.session.execute(
        select(RedactedCopy).where(
            RedactedCopy.original_id == recording.id,
            RedactedCopy.status.in_((CopyStatus.QUEUED, CopyStatus.WORKING, CopyStatus.READY)),
        )
    ).scalars():
        if ranges_key(earlier.ranges) == ranges_key(snapshot):
            if earlier.status == CopyStatus.READY:
                raise RedactionError("The redacted copy of these parts is already ready.")
            raise RedactionError("The redacted copy of these parts is already being made.")
    copy = RedactedCopy(
        original_id=recording.id,
        status=CopyStatus.QUEUED,
        fill=practice_settings().redaction_fill,
        ranges=snapshot,
        requested_by_id=actor.id,
    )
    db.session.add(copy)
    db.session.flush()
    add_timeline_entry(
        req,
        kind="redaction",
        actor=actor,
        summary=f"Redacted copy asked for: {name_for_audit(recording.original_name)}",
        visible=False,
    )
    audit_object(actor, "redacted_copy_requested", copy, details=_copy_details(req, recording, copy))
    return copy


def _copy_details(req: RecordingRequest, original: Recording, copy: RedactedCopy) -> dict:
    return {
        "request": req.reference,
        "original": original.public_id,
        "original_sha256": original.sha256,
        "requested_by": copy.requested_by.public_id,
        "fill": copy.fill,
        "ranges": [{"start_ms": r[0], "end_ms": r[1], "reason": r[2]} for r in ranges_key(copy.ranges)],
    }


# ---------------------------------------------------------------------------------------------------------
# The worker's side
# ---------------------------------------------------------------------------------------------------------


class _SupersededError(Exception):
    """The ranges changed while the copy was being made: stop, keep nothing."""


def _claim(worker: str, now: datetime) -> RedactedCopy | None:
    """Take the oldest queued copy (or one whose worker died), so that of several workers exactly one makes it."""
    candidate = db.session.execute(
        select(RedactedCopy.id, RedactedCopy.status, RedactedCopy.started_at)
        .where(
            or_(
                RedactedCopy.status == CopyStatus.QUEUED,
                (RedactedCopy.status == CopyStatus.WORKING) & (RedactedCopy.started_at < now - LEASE),
            )
        )
        .order_by(RedactedCopy.id)
        .limit(1)
    ).one_or_none()
    if candidate is None:
        db.session.rollback()
        return None
    taken = db.session.execute(
        update(RedactedCopy)
        .where(
            RedactedCopy.id == candidate.id,
            RedactedCopy.status == candidate.status,
            RedactedCopy.started_at.is_(None)
            if candidate.started_at is None
            else RedactedCopy.started_at == candidate.started_at,
        )
        .values(status=CopyStatus.WORKING, worker=worker, started_at=now, progress=0)
    ).rowcount
    db.session.commit()
    return db.session.get(RedactedCopy, candidate.id) if taken else None


def _progress_reporter(copy_id: int, low: int, high: int) -> Callable[[float], None]:
    """Write progress (low..high per cent) as its own small commit; raise _SupersededError if the copy was stopped."""
    last = [-1]

    def report(fraction: float) -> None:
        percent = low + int((high - low) * min(max(fraction, 0.0), 1.0))
        if percent == last[0]:
            return
        last[0] = percent
        still = db.session.execute(
            update(RedactedCopy)
            .where(RedactedCopy.id == copy_id, RedactedCopy.status == CopyStatus.WORKING)
            .values(progress=percent)
        ).rowcount
        db.session.commit()
        if not still:
            raise _SupersededError

    return report


def process_next_copy(worker: str) -> bool:
    """Make one queued redacted copy, if there is one. True when one was taken (whatever became of it)."""
    from core import audio  # PyAV and numpy load only in the process that makes copies

    copy = _claim(worker, datetime.now(UTC))
    if copy is None:
        return False
    original = copy.original
    spans = [audio.Span(r["start_ms"] / 1000, r["end_ms"] / 1000) for r in copy.ranges]
    logger.info("redaction: making copy %s of recording %s", copy.public_id, original.public_id)
    try:
        encoded, proof = _make_and_prove(copy, original, spans)
    except _SupersededError:
        logger.info("redaction: copy %s superseded while being made", copy.public_id)
        return True
    except audio.AudioError as exc:
        _finish_unmade(copy.id, CopyStatus.FAILED, str(exc), None)
        return True
    except Exception as exc:  # any other failure is shown to staff and logged; the worker carries on
        db.session.rollback()
        logger.exception("redaction: copy %s failed", copy.public_id)
        _finish_unmade(copy.id, CopyStatus.FAILED, f"The copy could not be made ({type(exc).__name__}).", None)
        return True
    if not proof.ok:
        _finish_unmade(copy.id, CopyStatus.REFUSED, proof.reason, proof.as_dict())
        return True
    _store_copy(copy.id, encoded, proof, audio.OUTPUT_EXTENSION, audio.OUTPUT_MEDIA_TYPE)
    return True


def _make_and_prove(copy: RedactedCopy, original: Recording, spans):
    from core import audio

    reader = open_recording(original, read_ahead=4)
    if reader is None:
        raise audio.AudioError("The original recording is no longer stored, so no copy can be made from it.")
    encoded = io.BytesIO()
    with reader:
        result = audio.redact(reader, spans, encoded, fill=copy.fill, progress=_progress_reporter(copy.id, 0, 80))
    encoded.seek(0)
    proof = audio.prove(
        encoded, spans, fill=copy.fill, original_duration=result.duration, progress=_progress_reporter(copy.id, 80, 99)
    )
    encoded.seek(0)
    return encoded, proof


@transactional
def _finish_unmade(copy_id: int, status: CopyStatus, message: str, proof: dict | None) -> None:
    copy = db.session.get(RedactedCopy, copy_id)
    if copy.status != CopyStatus.WORKING:
        return
    copy.status, copy.message, copy.proof = status, message[:300], proof
    copy.finished_at = datetime.now(UTC)
    original = copy.original
    req = db.session.get(RecordingRequest, original.request_id)
    action = "redacted_copy_refused" if status == CopyStatus.REFUSED else "redacted_copy_failed"
    audit_object(
        None,
        action,
        copy,
        outcome="failure",
        details={**_copy_details(req, original, copy), "message": copy.message, "proof": proof},
    )
    add_timeline_entry(
        req, kind="redaction", actor=None, summary=f"Redacted copy not made: {copy.message}", visible=False
    )


def _store_copy(copy_id: int, encoded: io.BytesIO, proof, extension: str, media_type: str) -> None:
    """Seal the proven copy into the store, then record it; if recording it fails, the sealed copy is removed."""
    stored_name = new_stored_name(extension)
    sealed = seal_into_store(encoded, public_id=new_public_id(), stored_name=stored_name)
    try:
        kept = _record_copy(copy_id, sealed, proof, extension, media_type)
    except BaseException:
        store_named(sealed.storage).discard(stored_name)
        raise
    if not kept:
        store_named(sealed.storage).discard(stored_name)


@transactional
def _record_copy(copy_id: int, sealed, proof, extension: str, media_type: str) -> bool:
    copy = db.session.get(RedactedCopy, copy_id)
    original = copy.original
    req = lock(db.session.get(RecordingRequest, original.request_id))
    db.session.refresh(copy)
    if copy.status != CopyStatus.WORKING:
        return False  # superseded at the last moment: nothing is kept
    made = Recording(
        **sealed.recording_columns(),
        request_id=req.id,
        original_name=f"{PurePath(original.original_name).stem} (redacted).{extension}"[:255],
        media_type=media_type,
        extension=extension,
        duration_seconds=round(proof.copy_duration, 2),
        call_started_at=original.call_started_at,
        caller_number=original.caller_number,
        direction=original.direction,
        uploaded_by_id=copy.requested_by_id,
        redacted_from_id=original.id,
    )
    db.session.add(made)
    db.session.flush()
    copy.copy_id, copy.status, copy.progress = made.id, CopyStatus.READY, 100
    copy.proof, copy.finished_at = proof.as_dict(), datetime.now(UTC)
    add_timeline_entry(
        req,
        kind="redaction",
        actor=None,
        summary=f"Redacted copy made and checked: {made.original_name}",
        visible=False,
    )
    audit_object(
        None,
        "redacted_copy_produced",
        copy,
        details={
            **_copy_details(req, original, copy),
            "copy": made.public_id,
            "copy_sha256": made.sha256,
            "proof": copy.proof,
        },
    )
    return True
