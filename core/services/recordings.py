"""Recording files: checking an upload is really audio, storing it encrypted, reading it back, and purging it.

The type is decided from the file's bytes, never from its name or the browser's content type: the first
bytes must carry a known container signature *and* mutagen must parse the file as that format (which also
gives the duration). The upload is encrypted chunk by chunk as it is read (core.services.recording_crypto)
into the configured store (core.services.recording_store) under a new random name, while the SHA-256 of the
plain audio is computed; the type is then checked by reading the stored copy back through its decryption. A
failed or refused upload leaves nothing behind. Recordings are only ever found by the stored name the server
made up (never under `static/`), and plain audio never reaches the disk.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
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

from core.extensions import db
from core.formatters import format_file_size
from core.models.accounts import StaffUser, new_public_id
from core.models.requests import DIRECTIONS, Recording, RecordingRequest, Status
from core.services.audit import record_event
from core.services.db import transactional
from core.services.recording_crypto import (
    CHUNK_SIZE,
    ChunkCipher,
    Keyring,
    RecordingIntegrityError,
    UnknownRecordingKeyError,
    parse_recording_keys,
    unwrap_data_key,
    wrap_data_key,
)
from core.services.recording_store import (
    FilesystemStore,
    RecordingReader,
    current_store,
    recordings_dir,
    store_named,
)
from core.services.requests.lifecycle import RequestError, add_timeline_entry, audit_object, lock, move


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


def _parse(handle: BinaryIO, kind: AudioType):
    """The mutagen object for the file, or None when it is not really `kind` (a renamed or broken file)."""
    for parser in kind.parsers:
        try:
            handle.seek(0)
            audio = parser(handle)
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


def _wav_duration(handle: BinaryIO, size: int) -> float:
    """The length in seconds of the audio actually in a WAV file, from its RIFF chunks, not from the size its
    header claims (which mutagen trusts: a 44-byte header that claims 3 seconds would pass as 3 seconds).

    Raises RequestError when the file holds no complete block of audio, or fewer bytes of audio than its header
    says (a truncated file). Works for any WAV encoding (PCM, A-law, mu-law, GSM 6.10...): the duration is the
    bytes present divided by the format's bytes per second.
    """
    handle.seek(12)  # "RIFF", the RIFF size, "WAVE": checked by sniff()
    byte_rate = block_align = 0
    while handle.tell() + 8 <= size:
        header = _read_exactly(handle, 8)
        chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
        start = handle.tell()
        if chunk_id == b"fmt " and chunk_size >= 16:
            fields = _read_exactly(handle, 16)
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


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    """`size` bytes, or fewer only at the end of the stream (a socket or a reader may return short reads)."""
    parts, wanted = [], size
    while wanted > 0:
        part = handle.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def keyring() -> Keyring:
    """RECORDING_KEYS, parsed (the configuration was checked at start-up)."""
    return parse_recording_keys(current_app.config["RECORDING_KEYS"])


def stored_path(recording: Recording) -> Path | None:
    """The encrypted file of a recording in the filesystem store, found only by its server-made name inside
    RECORDINGS_DIR; None if purged, missing, or kept in another store."""
    if recording.purged_at is not None or recording.storage != "filesystem":
        return None
    return FilesystemStore(recordings_dir()).path(recording.stored_name)


def is_stored(recording: Recording) -> bool:
    """The recording's audio is in its store (not purged, removed or lost, and not a plain file from before
    encryption that `flask recordings encrypt-files` has not yet moved)."""
    if recording.purged_at is not None or recording.storage is None or recording.wrapped_key is None:
        return False
    return store_named(recording.storage).exists(recording.stored_name)


def open_recording(
    recording: Recording,
    *,
    read_ahead: int = 1,
    on_failure: Callable[[RecordingIntegrityError], None] | None = None,
) -> RecordingReader | None:
    """The plain audio as a seekable file that decrypts as it is read; None when the audio is not stored.
    Raises UnknownRecordingKeyError when its data key is wrapped by a key no longer in RECORDING_KEYS, and
    RecordingIntegrityError when the wrapped key was changed."""
    if not is_stored(recording):
        return None
    data_key = unwrap_data_key(keyring(), recording.public_id, recording.key_id, recording.wrapped_key)
    return RecordingReader(
        store_named(recording.storage),
        recording.stored_name,
        ChunkCipher(recording.public_id, data_key),
        recording.size_bytes,
        chunk_size=recording.chunk_size or CHUNK_SIZE,
        read_ahead=read_ahead,
        on_failure=on_failure,
    )


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
class Sealed:
    """Audio written encrypted to a store: where, under which key, and the plain audio's size and SHA-256."""

    public_id: str
    stored_name: str
    storage: str
    key_id: str
    wrapped_key: bytes
    size: int
    sha256: str

    def recording_columns(self) -> dict:
        """What a `Recording` of this audio takes from it: its ids, where and how it is stored, its size and hash."""
        return {
            "public_id": self.public_id,
            "stored_name": self.stored_name,
            "storage": self.storage,
            "key_id": self.key_id,
            "wrapped_key": self.wrapped_key,
            "chunk_size": CHUNK_SIZE,
            "size_bytes": self.size,
            "sha256": self.sha256,
        }


class _UploadTooLargeError(Exception):
    pass


def seal_into_store(stream: BinaryIO, *, public_id: str, stored_name: str, max_bytes: int | None = None) -> Sealed:
    """Encrypt `stream` chunk by chunk as it is read, into the configured store under `stored_name`. All or
    nothing: if reading fails part-way, or the stream is larger than `max_bytes`, nothing is stored."""
    store = current_store()
    cipher, data_key = ChunkCipher.new(public_id)
    key_id, wrapped = wrap_data_key(keyring(), public_id, data_key)
    digest = hashlib.sha256()
    size = 0

    def sealed_chunks() -> Iterator[bytes]:
        nonlocal size
        index, pending = 0, _read_exactly(stream, CHUNK_SIZE)
        while True:
            following = _read_exactly(stream, CHUNK_SIZE) if len(pending) == CHUNK_SIZE else b""
            size += len(pending)
            if max_bytes is not None and size > max_bytes:
                raise _UploadTooLargeError
            digest.update(pending)
            yield cipher.seal(index, pending, last=not following)
            if not following:
                return
            index, pending = index + 1, following

    store.write(stored_name, sealed_chunks())
    return Sealed(public_id, stored_name, store.name, key_id, wrapped, size, digest.hexdigest())


@dataclass(frozen=True)
class StoredUpload:
    sealed: Sealed
    kind: AudioType
    duration: float | None

    @property
    def stored_name(self) -> str:
        return self.sealed.stored_name


def new_stored_name(extension: str = "rec") -> str:
    return f"{secrets.token_hex(16)}.{extension}"


def store_upload(stream: BinaryIO, *, max_bytes: int) -> StoredUpload:
    """Encrypt the upload into the store under a new random name and check it is audio. Raises RequestError
    (and leaves nothing stored) if it is not audio, is empty or is larger than `max_bytes`."""
    head = _read_exactly(stream, 16)
    kind = sniff(head)
    stored_name = new_stored_name(kind.extension if kind else "rec")
    try:
        sealed = seal_into_store(
            _Prefixed(head, stream), public_id=new_public_id(), stored_name=stored_name, max_bytes=max_bytes
        )
    except _UploadTooLargeError:
        raise RequestError(f"The file is larger than the limit of {format_file_size(max_bytes)}.") from None
    try:
        if sealed.size == 0:
            raise RequestError("The selected file is empty.")
        if kind is None:
            raise RequestError(f"The selected file must be a {ACCEPTED} recording.")
        data_key = unwrap_data_key(keyring(), sealed.public_id, sealed.key_id, sealed.wrapped_key)
        reader = RecordingReader(
            store_named(sealed.storage), stored_name, ChunkCipher(sealed.public_id, data_key), sealed.size
        )
        with reader:
            audio = _parse(reader, kind)
            if audio is None:
                raise RequestError(f"The selected file must be a {ACCEPTED} recording.")
            duration = getattr(audio.info, "length", None)
            if kind is WAV:
                duration = _wav_duration(reader, sealed.size)
    except BaseException:
        store_named(sealed.storage).discard(stored_name)
        raise
    return StoredUpload(sealed, kind, round(duration, 2) if duration else None)


class _Prefixed:
    """A stream with the bytes already read from its start put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            part, self.head = (
                (self.head, b"")
                if size < 0 or size >= len(self.head)
                else (
                    self.head[:size],
                    self.head[size:],
                )
            )
            return part
        return self.rest.read(size)


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
    if req.is_closed or req.status in (Status.AWAITING_IDENTITY, Status.RELEASED, Status.READY_FOR_APPROVAL):
        raise RequestError("Recordings can be attached only while the request is being processed.")
    upload = store_upload(stream, max_bytes=current_app.config["RECORDING_MAX_BYTES"])
    try:
        return _record_attachment(actor, req, upload, details)
    except BaseException:
        store_named(upload.sealed.storage).discard(upload.stored_name)
        raise


@transactional
def _record_attachment(actor: StaffUser, req: RecordingRequest, upload: StoredUpload, details: RecordingDetails):
    req = lock(req)
    if req.is_closed or req.status in (Status.AWAITING_IDENTITY, Status.RELEASED, Status.READY_FOR_APPROVAL):
        raise RequestError("Recordings can be attached only while the request is being processed.")
    sealed = upload.sealed
    recording = Recording(
        **sealed.recording_columns(),
        request_id=req.id,
        original_name=safe_display_name(details.original_name),
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
    if req.status == Status.SUBMITTED:
        move(req, Status.IN_PROGRESS, actor, summary="The practice started work on the request")
    add_timeline_entry(
        req, kind="recording", actor=actor, summary=f"Recording attached: {recording.original_name}", visible=False
    )
    audit_object(
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
    req = lock(req)
    if recording.request_id != req.id or recording.removed_at is not None:
        raise RequestError("That recording is not attached to this request.")
    if req.status in (Status.READY_FOR_APPROVAL, Status.RELEASED) or req.is_closed:
        raise RequestError("A recording cannot be removed while a release is being approved or is live.")
    recording.removed_at = datetime.now(UTC)
    add_timeline_entry(
        req,
        kind="recording",
        actor=actor,
        summary=f"Recording removed: {recording.original_name}",
        body=reason,
        visible=False,
    )
    audit_object(
        actor,
        "recording_removed",
        recording,
        details={"request": req.reference, "sha256": recording.sha256},
    )
    delete_stored(recording)
    recording.purged_at = datetime.now(UTC)
    _remove_redacted_copies(actor, req, recording)


def _remove_redacted_copies(actor: StaffUser, req: RecordingRequest, original: Recording) -> None:
    """A removed recording's redacted copies go with it (they could only ever be released in its place)."""
    copies = db.session.execute(
        select(Recording).where(Recording.redacted_from_id == original.id, Recording.removed_at.is_(None))
    ).scalars()
    for copy in copies:
        copy.removed_at = datetime.now(UTC)
        audit_object(
            actor,
            "recording_removed",
            copy,
            details={"request": req.reference, "sha256": copy.sha256, "redacted_from": original.public_id},
        )
        delete_stored(copy)
        copy.purged_at = copy.removed_at


def delete_stored(recording: Recording) -> None:
    """Delete the recording's audio from its store as part of the caller's unit of work, and forget its
    wrapped data key (so even a backup of the chunks can no longer be read with the current keys)."""
    if recording.storage is not None:
        store_named(recording.storage).delete(recording.stored_name)
    else:  # a plain file from before encryption
        FilesystemStore(recordings_dir()).delete(recording.stored_name)
    recording.wrapped_key = None


def attached_recordings(req: RecordingRequest) -> list[Recording]:
    """The recordings staff attached (originals: redacted copies are reached through core.services.redaction)."""
    return list(
        db.session.execute(
            select(Recording)
            .where(
                Recording.request_id == req.id,
                Recording.removed_at.is_(None),
                Recording.redacted_from_id.is_(None),  # a redacted copy is shown with its original
            )
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
    audit_object(
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
    """Every recording not yet purged is in its store, every chunk passes its check, and the plain audio's
    SHA-256 is the one recorded at upload (`flask recordings verify`: after a restore, or to prove the store
    has not been changed)."""
    problems: list[str] = []
    checked = 0
    rows = db.session.execute(select(Recording).where(Recording.purged_at.is_(None)).order_by(Recording.id)).scalars()
    for recording in rows:
        checked += 1
        if recording.storage is None:
            problems.append(f"recording {recording.public_id}: not encrypted yet (run flask recordings encrypt-files)")
            continue
        try:
            reader = open_recording(recording, read_ahead=16)
            if reader is None:
                problems.append(f"recording {recording.public_id}: its file is missing")
                continue
            with reader:
                digest = reader.verify()
        except UnknownRecordingKeyError as exc:
            problems.append(f"recording {recording.public_id}: {exc}")
            continue
        except RecordingIntegrityError as exc:
            problems.append(f"recording {recording.public_id}: the stored copy was changed ({exc})")
            continue
        if digest != recording.sha256:
            problems.append(f"recording {recording.public_id}: the file is not the one uploaded (SHA-256 differs)")
    return StoreCheck(checked=checked, problems=problems)


# ---------------------------------------------------------------------------------------------------------
# Refusing a changed recording
# ---------------------------------------------------------------------------------------------------------

INTEGRITY_REFUSED = "integrity_failed"
UNKNOWN_KEY_REFUSED = "unknown_key"


@transactional
def record_recording_unreadable(
    recording_public_id: str, reason: str, *, actor_type: str, actor_id: str | None, detail: str, where: str
) -> None:
    """SECURITY H15: a recording was not sent because a stored chunk failed its check (the stored copy was
    changed), or its data key is wrapped by a key no longer configured. Audited, with who asked and where."""
    record_event(
        action="recording_unreadable",
        actor_type=actor_type,
        actor_id=actor_id,
        object_type="recording",
        object_id=recording_public_id,
        outcome="failure",
        details={"reason": reason, "detail": detail[:200], "where": where[:100]},
    )


# ---------------------------------------------------------------------------------------------------------
# Keys and the move to encrypted storage (command-line)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewrapReport:
    rewrapped: int
    already_current: int
    key_id: str
    problems: list[str]


def rewrap_data_keys() -> RewrapReport:
    """Wrap every stored recording's data key under the first RECORDING_KEYS key (`flask recordings rewrap`),
    one recording per transaction. Afterwards no recording needs the older keys, which can be removed. Audited:
    one event per run with the counts, and a failure event naming each recording that could not be re-wrapped.
    """
    ring = keyring()
    rewrapped = current = 0
    problems: list[str] = []
    ids = db.session.execute(
        select(Recording.id).where(Recording.wrapped_key.is_not(None)).order_by(Recording.id)
    ).scalars()
    for recording_id in list(ids):
        recording = db.session.get(Recording, recording_id)
        if recording.key_id == ring.current_id:
            current += 1
            continue
        try:
            _rewrap_one(recording, ring)
        except (UnknownRecordingKeyError, RecordingIntegrityError) as exc:
            db.session.rollback()
            problems.append(f"recording {recording.public_id}: {exc}")
            _audit_rewrap_problem(recording.public_id, str(exc))
            continue
        rewrapped += 1
    _audit_rewrap(ring.current_id, rewrapped, current, len(problems))
    return RewrapReport(rewrapped, current, ring.current_id, problems)


@transactional
def _rewrap_one(recording: Recording, ring: Keyring) -> None:
    data_key = unwrap_data_key(ring, recording.public_id, recording.key_id, recording.wrapped_key)
    old_key_id = recording.key_id
    recording.key_id, recording.wrapped_key = wrap_data_key(ring, recording.public_id, data_key)
    record_event(
        action="recording_key_rewrapped",
        object_type="recording",
        object_id=recording.public_id,
        details={"from_key": old_key_id, "to_key": recording.key_id},
    )


@transactional
def _audit_rewrap_problem(public_id: str, problem: str) -> None:
    record_event(
        action="recording_key_rewrapped",
        object_type="recording",
        object_id=public_id,
        outcome="failure",
        details={"problem": problem[:200]},
    )


@transactional
def _audit_rewrap(key_id: str, rewrapped: int, current: int, problems: int) -> None:
    record_event(
        action="recording_keys_rewrapped",
        details={"key": key_id, "rewrapped": rewrapped, "already_current": current, "problems": problems},
        outcome="success" if not problems else "failure",
    )


@dataclass(frozen=True)
class EncryptFilesReport:
    encrypted: int
    problems: list[str]


def encrypt_plain_files() -> EncryptFilesReport:
    """Move every recording still kept as a plain file in RECORDINGS_DIR (from before encryption) into the
    configured store, encrypted (`flask recordings encrypt-files`). The plain file must still have the SHA-256
    recorded at upload. Each recording gets a new stored name: the encrypted copy is written, the row points
    at it (audited) and only then is the plain file deleted, so a run stopped part-way loses nothing, and
    running it again moves only what is left."""
    encrypted = 0
    problems: list[str] = []
    plain_store = FilesystemStore(recordings_dir())
    ids = db.session.execute(
        select(Recording.id).where(Recording.storage.is_(None), Recording.purged_at.is_(None)).order_by(Recording.id)
    ).scalars()
    for recording_id in list(ids):
        recording = db.session.get(Recording, recording_id)
        path = plain_store.path(recording.stored_name)
        if path is None:
            problems.append(f"recording {recording.public_id}: its plain file is missing")
            continue
        old_name = recording.stored_name
        with path.open("rb") as handle:
            sealed = seal_into_store(
                handle, public_id=recording.public_id, stored_name=new_stored_name(recording.extension)
            )
        if sealed.sha256 != recording.sha256 or sealed.size != recording.size_bytes:
            store_named(sealed.storage).discard(sealed.stored_name)
            problems.append(
                f"recording {recording.public_id}: the plain file is not the one uploaded (SHA-256 differs)"
            )
            continue
        try:
            _point_at_encrypted_copy(recording, sealed, old_name)
        except BaseException:
            store_named(sealed.storage).discard(sealed.stored_name)
            raise
        plain_store.delete(old_name)
        encrypted += 1
    return EncryptFilesReport(encrypted, problems)


@transactional
def _point_at_encrypted_copy(recording: Recording, sealed: Sealed, old_name: str) -> None:
    recording.stored_name = sealed.stored_name
    recording.storage = sealed.storage
    recording.key_id = sealed.key_id
    recording.wrapped_key = sealed.wrapped_key
    recording.chunk_size = CHUNK_SIZE
    record_event(
        action="recording_encrypted",
        object_type="recording",
        object_id=recording.public_id,
        details={"store": sealed.storage, "key": sealed.key_id, "sha256": recording.sha256},
    )
