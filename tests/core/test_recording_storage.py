"""Storing recordings staff attach to a request (DESIGN §6 step 1; SECURITY H11, H15, G6).

The type is decided from the file's bytes and a real parse, never from its name: each accepted sample is
stored under a random name inside RECORDINGS_DIR with its SHA-256 and duration, and anything else is refused
with no file left behind, not even the temporary `.part` file.

Sample durations, measured with mutagen 1.48 when these tests were written: WAV 13.544 s, MP3 13.644 s,
OGG 13.544 s, M4A 13.608 s (the service keeps two decimals).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import Recording, RecordingRequest
from core.services import recordings
from core.services import requests as requests_service
from core.services.recordings import RecordingDetails, attach_recording, safe_display_name, stored_path
from core.services.requests import RequestError
from tests.accounts_support import make_patient, make_staff
from tests.core.test_request_lifecycle import AUDIO, attach_sample, count, exactly, fresh, submit, use_recordings_dir
from tests.recording_store_support import assert_encrypted, plain_bytes

NOT_AUDIO = "The selected file must be a WAV, MP3, OGG or M4A recording."
SAMPLES = {
    # extension: (media type, duration in seconds as stored)
    "wav": ("audio/wav", 13.54),
    "mp3": ("audio/mpeg", 13.64),
    "ogg": ("audio/ogg", 13.54),
    "m4a": ("audio/mp4", 13.61),
}


@pytest.fixture
def store(app, tmp_path, monkeypatch) -> Path:
    return use_recordings_dir(app, tmp_path, monkeypatch)


@pytest.fixture
def work():
    """A member of staff and a request they are working on."""
    staff = make_staff().account
    patient = make_patient(verified=True).account
    return staff, submit(patient)


def files_in(directory: Path) -> list[str]:
    """Every entry in the directory, hidden ones (a leftover `.upload-*.part`) included."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def attach_bytes(staff, req, data: bytes, name: str = "call.wav"):
    return attach_recording(staff, req, io.BytesIO(data), RecordingDetails(original_name=name))


@pytest.mark.parametrize("extension", sorted(SAMPLES))
def test_each_sample_format_is_stored_under_a_random_name_with_its_hash_and_length_h11(store, work, extension):
    staff, req = work
    sample = AUDIO / f"call-sample.{extension}"
    data = sample.read_bytes()

    recording = attach_sample(staff, req, extension)

    media_type, duration = SAMPLES[extension]
    assert recording.media_type == media_type
    assert recording.extension == extension
    assert recording.duration_seconds == pytest.approx(duration, abs=0.005)
    assert abs(recording.duration_seconds - 13) < 0.7
    assert recording.sha256 == hashlib.sha256(data).hexdigest()
    assert recording.size_bytes == len(data)
    assert re.fullmatch(rf"[0-9a-f]{{32}}\.{extension}", recording.stored_name)
    assert files_in(store) == [recording.stored_name]
    # Stored encrypted (SECURITY H15): the file is ciphertext; decrypted, it is the upload.
    assert_encrypted(store / recording.stored_name, data)
    assert plain_bytes(recording) == data
    assert stored_path(recording) == store / recording.stored_name
    assert recording.original_name == f"call-sample.{extension}"
    assert fresh(req).status == "in_progress"  # the first recording starts the work
    [event] = db.session.execute(select(AuditEvent).where(AuditEvent.action == "recording_attached")).scalars()
    assert event.object_id == recording.public_id
    assert json.loads(event.details) == {
        "request": req.reference,
        "name": f"call-sample.{extension}",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "type": media_type,
    }


def test_two_uploads_of_the_same_file_get_different_stored_names(store, work):
    staff, req = work
    first = attach_sample(staff, req)
    second = attach_sample(staff, req)
    assert first.stored_name != second.stored_name
    assert files_in(store) == sorted([first.stored_name, second.stored_name])


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")
    )


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("call.wav", (AUDIO / "call-sample.wav").read_bytes())
    return buffer.getvalue()


NOT_RECORDINGS = {
    "text": b"This is a plain text file pretending to be a recording.\n" * 20,
    "png": _png(),
    "zip-holding-a-wav": _zip(),
    "wav-header-only": (AUDIO / "call-sample.wav").read_bytes()[:44],
    "mp3-signature-then-garbage": b"\xff\xfb\x90\x64" + b"This is not an MPEG audio frame. " * 200,
    "id3-tag-then-garbage": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"<script>alert(1)</script>" * 200,
    "html-behind-riff-wave": b"RIFF\x24\x08\x00\x00WAVE<html><body><script>alert(1)</script></body></html>" * 20,
    "ogg-signature-then-garbage": b"OggS" + b"\x00" * 60 + b"not vorbis" * 100,
}


@pytest.mark.parametrize("kind", sorted(NOT_RECORDINGS))
def test_a_file_that_is_not_really_audio_is_refused_and_nothing_is_left_on_disk(store, work, kind):
    staff, req = work
    with pytest.raises(RequestError) as refused:
        attach_bytes(staff, req, NOT_RECORDINGS[kind], name="call.wav")

    assert str(refused.value) == NOT_AUDIO
    assert files_in(store) == []
    assert count(Recording) == 0
    assert fresh(req).status == "submitted"


def test_an_empty_file_is_refused(store, work):
    staff, req = work
    with pytest.raises(RequestError) as refused:
        attach_bytes(staff, req, b"")
    assert str(refused.value) == "The selected file is empty."
    assert files_in(store) == []
    assert count(Recording) == 0


def test_a_file_over_the_size_limit_is_refused_while_streaming(app, store, work, monkeypatch):
    staff, req = work
    monkeypatch.setitem(app.config, "RECORDING_MAX_BYTES", 100_000)
    assert (AUDIO / "call-sample.wav").stat().st_size > 100_000

    with pytest.raises(RequestError) as refused:
        attach_sample(staff, req, "wav")

    assert str(refused.value).startswith("The file is larger than the limit of ")
    assert files_in(store) == []
    assert count(Recording) == 0
    # A file under the limit is still accepted.
    assert (AUDIO / "call-sample.mp3").stat().st_size < 100_000
    attach_sample(staff, req, "mp3")
    assert len(files_in(store)) == 1


def test_the_file_is_removed_if_recording_it_in_the_database_fails(store, work, monkeypatch):
    staff, req = work

    def database_down(*args, **kwargs):
        assert len(files_in(store)) == 1  # the file really was written before the database step
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(recordings, "_record_attachment", database_down)
    with pytest.raises(RuntimeError, match="database unavailable"):
        attach_sample(staff, req)

    assert files_in(store) == []
    assert count(Recording) == 0


def test_nothing_can_be_attached_to_a_closed_request_or_one_waiting_for_identity(store):
    staff = make_staff().account
    unverified = make_patient(verified=False).account
    waiting = submit(unverified)
    withdrawn = submit(make_patient(verified=True, email="b@example.org", nhs_number="9434765870").account)
    requests_service.withdraw(withdrawn.patient, withdrawn)
    for req in (waiting, fresh(withdrawn)):
        with pytest.raises(
            RequestError, match=exactly("Recordings can be attached only while the request is being processed.")
        ):
            attach_sample(staff, req)
    assert files_in(store) == []
    assert count(Recording) == 0


@pytest.mark.parametrize(
    ("uploaded", "shown"),
    [
        ("../../etc/passwd.wav", "passwd.wav"),
        ("C:\\Users\\x\\call.wav", "call.wav"),
        ("call\x00\x1b[31m\r\nred.wav", "call[31mred.wav"),
        ("  ..hidden.wav. ", "hidden.wav"),
        ('<img src=x onerror="alert(1)">.wav', "img src=x onerror=alert(1).wav"),
        ("", "recording"),
        ("../..", "recording"),
    ],
    ids=["unix-path", "windows-path", "control-characters", "dots-and-spaces", "markup", "empty", "only-dots"],
)
def test_display_names_keep_only_a_safe_last_path_part(store, work, uploaded, shown):
    staff, req = work
    recording = attach_sample(staff, req, name=uploaded)
    assert recording.original_name == shown
    assert safe_display_name(uploaded) == shown


def test_a_very_long_display_name_is_cut_to_200_characters(store, work):
    staff, req = work
    recording = attach_sample(staff, req, name="x" * 996 + ".wav")
    assert recording.original_name == "x" * 200


def test_stored_path_never_leaves_the_recordings_directory_h11(store, work, tmp_path):
    """Even a tampered row cannot point the server at a file outside RECORDINGS_DIR."""
    staff, req = work
    recording = attach_sample(staff, req)
    outside = tmp_path / "x"
    outside.write_bytes(b"a file outside the recordings directory")

    for tampered in ("../x", str(outside), "../recordings/../x", "..\\x"):
        db.session.execute(update(Recording).where(Recording.id == recording.id).values(stored_name=tampered))
        db.session.commit()
        assert stored_path(db.session.get(Recording, recording.id)) is None, tampered


def test_a_purged_or_missing_file_has_no_stored_path(store, work):
    staff, req = work
    recording = attach_sample(staff, req)
    (store / recording.stored_name).unlink()
    assert stored_path(recording) is None


def test_a_recording_is_found_only_on_its_own_request_g6(store):
    staff = make_staff().account
    patient = make_patient(verified=True).account
    mine, other = submit(patient), submit(patient)
    recording = attach_sample(staff, mine)

    assert recordings.recording_on_request(mine, recording.public_id).id == recording.id
    assert recordings.recording_on_request(other, recording.public_id) is None
    assert recordings.recording_on_request(mine, "../../etc/passwd") is None


def test_removing_a_recording_deletes_its_file_and_keeps_the_row(store, work):
    staff, req = work
    recording = attach_sample(staff, req)
    keep = attach_sample(staff, req, "mp3")

    recordings.remove_recording(staff, fresh(req), recording, "Wrong patient's call")

    assert files_in(store) == [keep.stored_name]
    row = db.session.get(Recording, recording.id)
    assert row.removed_at is not None and row.purged_at is not None
    assert [r.id for r in recordings.attached_recordings(db.session.get(RecordingRequest, req.id))] == [keep.id]
    with pytest.raises(RequestError, match=exactly("Enter why the recording is being removed.")):
        recordings.remove_recording(staff, fresh(req), keep, "  ")
    assert files_in(store) == [keep.stored_name]
