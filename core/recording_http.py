"""Sending a stored recording over HTTP, decrypted as it streams (for the patient's downloads and the staff
player alike).

Conditional requests and HTTP Range work as they do for `send_file` (werkzeug's `make_conditional`), but only
the chunks a range covers are read and decrypted. The first chunk is decrypted before the response starts, so
a changed chunk there is a clean refusal (RecordingRefusedError, audited). A chunk that fails later, once the
status and headers have gone, ends the stream: the server drops the connection short of the Content-Length,
and no byte of the failing chunk is sent. Either way the audit records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from core.models.requests import Recording
from core.services.recording_crypto import RecordingIntegrityError, UnknownRecordingKeyError
from core.services.recording_store import RecordingBody
from core.services.recordings import (
    INTEGRITY_REFUSED,
    UNKNOWN_KEY_REFUSED,
    open_recording,
    record_recording_unreadable,
)

# Chunks fetched from the store in one read while streaming (1 MiB of audio).
READ_AHEAD = 16


class RecordingMissingError(Exception):
    """The recording's audio is not in its store (purged, removed, or never moved into the store)."""


class RecordingRefusedError(Exception):
    """The recording cannot be sent: a stored chunk failed its check, or its key is no longer configured.
    Already audited when raised."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Reader:
    """Who is reading, for the audit of a refusal."""

    actor_type: str
    actor_id: str | None
    where: str


def _open_for(recording: Recording, reader: Reader):
    """The recording opened for reading, with a chunk that fails its check audited (also one met later, while
    the response streams). Raises RecordingMissingError or RecordingRefusedError."""
    app = current_app._get_current_object()
    public_id = recording.public_id

    def audit(reason: str, exc: Exception) -> None:
        record_recording_unreadable(
            public_id,
            reason,
            actor_type=reader.actor_type,
            actor_id=reader.actor_id,
            detail=str(exc),
            where=reader.where,
        )

    def audit_failure(exc: RecordingIntegrityError) -> None:
        with app.app_context():
            audit(INTEGRITY_REFUSED, exc)
            app.logger.error("recording %s: a stored chunk failed its check; not sent (%s)", public_id, exc)

    try:
        opened = open_recording(recording, read_ahead=READ_AHEAD, on_failure=audit_failure)
    except UnknownRecordingKeyError as exc:
        audit(UNKNOWN_KEY_REFUSED, exc)
        raise RecordingRefusedError(UNKNOWN_KEY_REFUSED) from exc
    except RecordingIntegrityError as exc:
        audit_failure(exc)
        raise RecordingRefusedError(INTEGRITY_REFUSED) from exc
    if opened is None:
        raise RecordingMissingError
    return opened


def send_recording(
    recording: Recording,
    reader: Reader,
    *,
    etag: str | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
    conditional: bool = True,
) -> Response:
    """A streaming response with the recording's plain audio. Raises RecordingMissingError or RecordingRefusedError."""
    opened = _open_for(recording, reader)
    body = RecordingBody(opened)
    response = Response(body, mimetype=recording.media_type, direct_passthrough=True)
    response.content_length = opened.size
    if download_name is not None:
        response.headers.set("Content-Disposition", "attachment" if as_attachment else "inline", filename=download_name)
    if etag:
        response.set_etag(etag)
    if conditional:
        try:
            response = response.make_conditional(request.environ, accept_ranges=True, complete_length=opened.size)
        except HTTPException:  # 416: a range outside the recording
            body.close()
            raise
    start, end = 0, opened.size
    if response.status_code == 206 and response.content_range:
        start, end = response.content_range.start, response.content_range.stop
    if response.status_code in (200, 206) and request.method != "HEAD":
        try:
            body.prime(start, end)
        except RecordingIntegrityError as exc:
            body.close()
            raise RecordingRefusedError(INTEGRITY_REFUSED) from exc
    else:
        body.close()
    return response
