"""Each recording's waveform, drawn once by the worker (core.audio.compute_peaks) and kept as the loudest level
of every tenth of a second, so a recording's page draws an hour-long call without fetching its audio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.extensions import db
from core.log import logger
from core.models.redaction import RecordingWaveform
from core.models.requests import Recording
from core.services.db import transactional
from core.services.recordings import open_recording
from core.services.requests.lifecycle import audit_object

# A waveform "working" for longer than this lost its worker: another worker draws it again.
LEASE = timedelta(minutes=30)


def waveform_for(recording: Recording) -> RecordingWaveform | None:
    return db.session.get(RecordingWaveform, recording.id)


def _next_without_waveform() -> int | None:
    return db.session.execute(
        select(Recording.id)
        .outerjoin(RecordingWaveform, RecordingWaveform.recording_id == Recording.id)
        .where(
            RecordingWaveform.recording_id.is_(None),
            Recording.removed_at.is_(None),
            Recording.purged_at.is_(None),
            Recording.storage.is_not(None),
        )
        .order_by(Recording.id)
        .limit(1)
    ).scalar_one_or_none()


def _claim(worker: str, now: datetime) -> int | None:
    """A recording whose waveform nobody has drawn (or whose worker died), taken so only one worker draws it."""
    recording_id = _next_without_waveform()
    if recording_id is not None:
        db.session.add(RecordingWaveform(recording_id=recording_id, status="working", worker=worker, started_at=now))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return None  # another worker took it first; the next round looks again
        return recording_id
    stale = db.session.execute(
        select(RecordingWaveform.recording_id, RecordingWaveform.started_at)
        .where(RecordingWaveform.status == "working", RecordingWaveform.started_at < now - LEASE)
        .limit(1)
    ).one_or_none()
    if stale is None:
        db.session.rollback()
        return None
    taken = db.session.execute(
        update(RecordingWaveform)
        .where(RecordingWaveform.recording_id == stale.recording_id, RecordingWaveform.started_at == stale.started_at)
        .values(worker=worker, started_at=now)
    ).rowcount
    db.session.commit()
    return stale.recording_id if taken else None


def draw_next_waveform(worker: str) -> bool:
    """Draw one recording's waveform, if one needs it. True when one was taken (whatever became of it)."""
    from core import audio  # PyAV and numpy load only in the process that draws

    recording_id = _claim(worker, datetime.now(UTC))
    if recording_id is None:
        return False
    recording = db.session.get(Recording, recording_id)
    try:
        reader = open_recording(recording, read_ahead=4)
        if reader is None:
            raise audio.AudioError("The recording is no longer stored.")
        with reader:
            peaks = audio.compute_peaks(reader)
    except audio.AudioError as exc:
        _finish(recording_id, status="failed", message=str(exc))
        return True
    except Exception as exc:  # shown on the page as "could not be drawn"; the worker carries on
        db.session.rollback()
        logger.exception("waveform of recording %s failed", recording.public_id)
        _finish(recording_id, status="failed", message=f"The waveform could not be drawn ({type(exc).__name__}).")
        return True
    _finish(recording_id, status="ready", values=peaks.values, duration=peaks.duration, per_second=peaks.per_second)
    return True


@transactional
def _finish(recording_id: int, *, status: str, message: str | None = None, values=None, duration=None, per_second=10):
    row = db.session.get(RecordingWaveform, recording_id)
    row.status, row.message, row.values = status, message, values
    row.duration_seconds, row.per_second, row.finished_at = duration, per_second, datetime.now(UTC)
    recording = db.session.get(Recording, recording_id)
    audit_object(
        None,
        "recording_waveform_drawn",
        recording,
        outcome="success" if status == "ready" else "failure",
        details={"points": len(values or []), "per_second": per_second, **({"message": message} if message else {})},
    )
