"""Recording files: checking an upload is really audio, storing it, reading it back, and purging it.

The type is decided from the file's bytes, never from its name or the browser's content type: the first
bytes must carry a known container signature *and* mutagen must parse the file as that format (which also
gives the duration). The file is streamed to a temporary file in RECORDINGS_DIR while its SHA-256 is
computed, fsynced, then renamed to a random name (an atomic step): a failed upload leaves nothing behind,
and a half-written file never carries a name the database knows. Files are only ever found by the stored
name the server made up, inside RECORDINGS_DIR (never `static/`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import mutagen
from flask import current_app
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from sqlalchemy import select
from werkzeug.security import safe_join

from core.extensions import db
from core.formatters import format_file_size
from core.models.accounts import StaffUser
from core.models.requests import DIRECTIONS, Recording, RecordingRequest
from core.services.audit import record_event
from core.services.db import transactional
from core.services.requests import RequestError, _audit_object, _lock, _move, _timeline

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class AudioType:
    media_type: str
    extension: str
    parsers: tuple


WAV = AudioType("audio/wav", "wav", (WAVE,))
MPEG = AudioType("audio/mpeg", "mp3", (MP3,))
OGG = AudioType("audio/ogg", "ogg", (OggVorbis, OggOpus))
M4A = AudioType("audio/mp4", "m4a", (MP4,))
ACCEPTED = "WAV, MP3, OGG or M4A"


def sniff(head: bytes) -> AudioType | None:
    """The audio container named by the file's first bytes, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"OggS":
        return OGG
    if head[4:8] == b"ftyp" and head[8:12] in (b"M4A ", b"mp42", b"isom", b"mp41", b"M4B ", b"dash", b"iso2"):
        return M4A
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MPEG
    return None


def _parse(path: Path, kind: AudioType):
    """The mutagen object for the file, or None when it is not really `kind` (a renamed or broken file)."""
    for parser in kind.parsers:
        try:
            audio = parser(path)
        except (mutagen.MutagenError, ValueError, EOFError, OSError, IndexError, KeyError):
            continue
        if audio.info is not None and getattr(audio.info, "length", 0) > 0:
            return audio
    return None


WAV_NO_AUDIO = "The selected file has no audio in it: it is only the start of a WAV file. Upload the whole recording."
WAV_TRUNCATED = (
    "The selected file is incomplete: it ends before the audio it describes does. It may not have finished "
    "downloading or copying. Upload the whole recording."
)
# A declared data size of 0 or 0xFFFFFFFF is what a recorder writes while streaming, before it knows the size.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF)


def _wav_duration(path: Path) -> float:
    """The length in seconds of the audio actually in a WAV file, from its RIFF chunks, not from the size its
    header claims (which mutagen trusts: a 44-byte header that claims 3 seconds would pass as 3 seconds).

    Raises RequestError when the file holds no complete block of audio, or fewer bytes of audio than its header
    says (a truncated file). Works for any WAV encoding (PCM, A-law, mu-law, GSM 6.10...): the duration is the
    bytes present divided by the format's bytes per second.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(12)  # "RIFF", the RIFF size, "WAVE": checked by sniff()
        byte_rate = block_align = 0
        while handle.tell() + 8 <= size:
            header = handle.read(8)
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            start = handle.tell()
            if chunk_id == b"fmt " and chunk_size >= 16:
                fields = handle.read(16)
                byte_rate = int.from_bytes(fields[8:12], "little")
                block_align = int.from_bytes(fields[12:14], "little")
            elif chunk_id == b"data":
                if not byte_rate or not block_align:
                    break  # no usable format chunk before the audio: not a WAV we can read
                present = size - start
                if chunk_size not in _UNKNOWN_WAV_SIZES:
                    if present < chunk_size:
                        raise RequestError(WAV_TRUNCATED if present >= block_align else WAV_NO_AUDIO)
                    present = chunk_size
                blocks = present // block_align
                if blocks == 0:
                    raise RequestError(WAV_NO_AUDIO)
                return blocks * block_align / byte_rate
            handle.seek(start + chunk_size + (chunk_size & 1))  # chunks are padded to an even length
    raise RequestError(WAV_NO_AUDIO)


def recordings_dir() -> Path:
    path = Path(current_app.config["RECORDINGS_DIR"])
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def stored_path(recording: Recording) -> Path | None:
    """The file for a recording, found only by its server-made name inside RECORDINGS_DIR; None if purged."""
    if recording.purged_at is not None:
        return None
    joined = safe_join(str(recordings_dir()), recording.stored_name)
    return Path(joined) if joined is not None and os.path.isfile(joined) else None


def safe_display_name(name: str) -> str:
    """The uploaded name as staff will see it: the last path part only, no control characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    return name.strip(" .")[:200] or "recording"


LONG_NUMBER = re.compile(r"\d[\d ]{5,}\d")


def name_for_audit(name: str) -> str:
    """A recording's file name as the audit keeps it: telephone systems put the caller's number (and
    sometimes an NHS number) in file names, and the audit trail holds no such identifiers (SECURITY L3), so
    every run of seven or more digits keeps only its last three."""
    return LONG_NUMBER.sub(lambda match: "…" + match.group(0).replace(" ", "")[-3:], name)


@dataclass(frozen=True)
class StoredUpload:
    stored_name: str
    size: int
    sha256: str
    kind: AudioType
    duration: float | None


def store_upload(stream: BinaryIO, *, max_bytes: int) -> StoredUpload:
    """Write the upload to RECORDINGS_DIR under a new random name and check it is audio. Raises RequestError
    (and leaves no file) if it is not audio or is larger than `max_bytes`."""
    directory = recordings_dir()
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise RequestError(f"The file is larger than the limit of {format_file_size(max_bytes)}.")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise RequestError("The selected file is empty.")
        with open(temporary, "rb") as check:
            kind = sniff(check.read(16))
        audio = _parse(Path(temporary), kind) if kind else None
        if audio is None:
            raise RequestError(f"The selected file must be a {ACCEPTED} recording.")
        duration = getattr(audio.info, "length", None)
        if kind is WAV:
            duration = _wav_duration(Path(temporary))
        stored_name = f"{secrets.token_hex(16)}.{kind.extension}"
        os.replace(temporary, directory / stored_name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return StoredUpload(stored_name, size, digest.hexdigest(), kind, round(duration, 2) if duration else None)


@dataclass(frozen=True)
class RecordingDetails:
    original_name: str
    call_started_at: datetime | None = None
    caller_number: str = ""
    direction: str = "inbound"


def attach_recording(actor: StaffUser, req: RecordingRequest, stream: BinaryIO, details: RecordingDetails) -> Recording:
    """Store the file, then record it against the request. If the database step fails the file is removed."""
    if details.direction not in DIRECTIONS:
        raise RequestError("Select who made the call.")
    if req.is_closed or req.status in ("awaiting_identity", "released", "ready_for_approval"):
        raise RequestError("Recordings can be attached only while the request is being processed.")
    upload = store_upload(stream, max_bytes=current_app.config["RECORDING_MAX_BYTES"])
    try:
        return _record_attachment(actor, req, upload, details)
    except BaseException:
        (recordings_dir() / upload.stored_name).unlink(missing_ok=True)
        raise


@transactional
def _record_attachment(actor: StaffUser, req: RecordingRequest, upload: StoredUpload, details: RecordingDetails):
    req = _lock(req)
    if req.is_closed or req.status in ("awaiting_identity", "released", "ready_for_approval"):
        raise RequestError("Recordings can be attached only while the request is being processed.")
    recording = Recording(
        request_id=req.id,
        original_name=safe_display_name(details.original_name),
        stored_name=upload.stored_name,
        size_bytes=upload.size,
        sha256=upload.sha256,
        media_type=upload.kind.media_type,
        extension=upload.kind.extension,
        duration_seconds=upload.duration,
        call_started_at=details.call_started_at,
        caller_number=details.caller_number[:30],
        direction=details.direction,
        uploaded_by_id=actor.id,
    )
    db.session.add(recording)
    db.session.flush()
    if req.status == "submitted":
        _move(req, "in_progress", actor, summary="The practice started work on the request")
    _timeline(
        req, kind="recording", actor=actor, summary=f"Recording attached: {recording.original_name}", visible=False
    )
    _audit_object(
        actor,
        "recording_attached",
        recording,
        details={
            "request": req.reference,
            "name": name_for_audit(recording.original_name),
            "size": recording.size_bytes,
            "sha256": recording.sha256,
            "type": recording.media_type,
        },
    )
    return recording


@transactional
def remove_recording(actor: StaffUser, req: RecordingRequest, recording: Recording, reason: str) -> None:
    """Take a wrongly attached recording off the request before release. The file is deleted at once."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("Enter why the recording is being removed.")
    req = _lock(req)
    if recording.request_id != req.id or recording.removed_at is not None:
        raise RequestError("That recording is not attached to this request.")
    if req.status in ("ready_for_approval", "released") or req.is_closed:
        raise RequestError("A recording cannot be removed while a release is being approved or is live.")
    recording.removed_at = datetime.now(UTC)
    _timeline(
        req,
        kind="recording",
        actor=actor,
        summary=f"Recording removed: {recording.original_name}",
        body=reason,
        visible=False,
    )
    _audit_object(
        actor,
        "recording_removed",
        recording,
        details={"request": req.reference, "sha256": recording.sha256},
    )
    path = stored_path(recording)
    recording.purged_at = datetime.now(UTC)
    if path is not None:
        path.unlink(missing_ok=True)


def attached_recordings(req: RecordingRequest) -> list[Recording]:
    return list(
        db.session.execute(
            select(Recording)
            .where(Recording.request_id == req.id, Recording.removed_at.is_(None))
            .order_by(Recording.call_started_at, Recording.id)
        ).scalars()
    )


def recording_on_request(req: RecordingRequest, public_id: str) -> Recording | None:
    """A recording of this request by its public id; a recording of another request is None (SECURITY G6)."""
    return db.session.execute(
        select(Recording).where(Recording.public_id == public_id, Recording.request_id == req.id)
    ).scalar_one_or_none()


@transactional
def record_staff_listen(actor: StaffUser, req: RecordingRequest, recording: Recording, *, byte_range: str = "") -> None:
    """Audit every part of a recording sent to a member of staff's player, with the byte range asked for (a
    player seeking asks for several), so the access review sees every read."""
    _audit_object(
        actor,
        "recording_listened",
        recording,
        details={"request": req.reference, **({"range": byte_range[:100]} if byte_range else {})},
    )


@transactional
def record_recording_refused(
    actor: StaffUser, req: RecordingRequest, public_id: str, *, endpoint: str, method: str
) -> None:
    """SECURITY G6/G10: a recording id that is not on the request in the address (another request's, or none)
    was sent to a staff recording page. The page answers 404; the audit keeps who tried what."""
    record_event(
        action="authz_fail",
        actor_type="staff",
        actor_id=actor.public_id,
        object_type="recording",
        object_id=(public_id or "")[:64],
        outcome="failure",
        details={"request": req.reference, "endpoint": endpoint, "method": method, "reason": "not on this request"},
    )


@dataclass(frozen=True)
class StoreCheck:
    checked: int
    problems: list[str]


def check_stored_files() -> StoreCheck:
    """Every recording not yet purged has its file, and the file's SHA-256 is the one recorded at upload
    (`flask recordings verify`: after a restore, or to prove the store has not been changed)."""
    problems: list[str] = []
    checked = 0
    rows = db.session.execute(select(Recording).where(Recording.purged_at.is_(None)).order_by(Recording.id)).scalars()
    for recording in rows:
        checked += 1
        path = stored_path(recording)
        if path is None:
            problems.append(f"recording {recording.public_id}: its file is missing")
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
        if digest.hexdigest() != recording.sha256:
            problems.append(f"recording {recording.public_id}: the file is not the one uploaded (SHA-256 differs)")
    return StoreCheck(checked=checked, problems=problems)
