"""Recordings encrypted at rest (SECURITY H15), in both stores: the filesystem (RECORDINGS_DIR) and the database
(`recording_chunk`, on SQLite and, with TEST_DATABASE_URL, PostgreSQL).

Through the real services and the patient's real download routes: a round trip, HTTP Range across chunk
boundaries, a changed or moved chunk (refused and audited, nothing altered sent, a stream already started is
cut short), key rotation with `flask recordings rewrap`, a key that is no longer configured, purge, moving plain
files into the store with `flask recordings encrypt-files`, and an upload that fails part-way. The samples
are the synthetic calls in tests/fixtures/audio (copies of /work/shared/samples).
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from core.config import ConfigurationError
from core.extensions import db
from core.factory import create_app
from core.models.audit import AuditEvent
from core.models.requests import Recording, RecordingChunk, RecordingRequest
from core.services import recordings, releases
from core.services.recording_crypto import (
    CHUNK_SIZE,
    RECORD_SIZE,
    ChunkCipher,
    RecordingIntegrityError,
    RecordingKeyError,
    parse_recording_keys,
)
from core.services.recording_store import FilesystemStore, RecordingBody, RecordingReader
from core.services.requests import RequestError
from core.upload_spool import EncryptedSpool, PortalRequest
from tests.accounts_support import CSRF_INPUT, make_patient, make_staff
from tests.core.test_request_lifecycle import submit
from tests.recording_store_support import assert_encrypted, plain_bytes
from tests.release_support import AUDIO, SAMPLE_WAV, open_link, released_request

ORIGINAL = SAMPLE_WAV.read_bytes()  # 216,784 bytes: chunks 0-2 full, chunk 3 part-full
NEW_KEY = "2027-01:" + base64.b64encode(b"n" * 16 + b"e" * 16).decode()
OTHER_KEY = "elsewhere:" + base64.b64encode(b"o" * 32).decode()


@pytest.fixture
def released(app: Flask, tmp_path, monkeypatch, store_kind):
    return released_request(app, tmp_path, monkeypatch=monkeypatch)


def playing(app: Flask, released_tuple):
    """A signed-in browser at the download page, and the released recording."""
    patient, _req, release, token = released_tuple
    from tests.accounts_support import signed_in_browser

    client = signed_in_browser(app, patient)
    assert open_link(client, token).status_code == 200
    return client, release.items[0].recording


def play(client, recording: Recording, headers: dict | None = None):
    return client.get(f"/downloads/recordings/{recording.public_id}/play", headers=headers or {})


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def chunk_rows() -> int:
    return db.session.execute(select(func.count()).select_from(RecordingChunk)).scalar_one()


def files(app: Flask) -> list[str]:
    directory = Path(app.config["RECORDINGS_DIR"])
    return sorted(os.listdir(directory)) if directory.exists() else []


def sealed_chunk(recording: Recording, index: int) -> bytes:
    if recording.storage == "database":
        return db.session.execute(
            select(RecordingChunk.data).where(
                RecordingChunk.object_name == recording.stored_name, RecordingChunk.chunk_index == index
            )
        ).scalar_one()
    data = recordings.stored_path(recording).read_bytes()
    return data[index * RECORD_SIZE : (index + 1) * RECORD_SIZE]


def replace_chunk(recording: Recording, index: int, record: bytes) -> None:
    if recording.storage == "database":
        db.session.execute(
            update(RecordingChunk)
            .where(RecordingChunk.object_name == recording.stored_name, RecordingChunk.chunk_index == index)
            .values(data=record)
        )
        db.session.commit()
        return
    path = recordings.stored_path(recording)
    data = bytearray(path.read_bytes())
    data[index * RECORD_SIZE : index * RECORD_SIZE + len(record)] = record
    path.write_bytes(bytes(data))


def flip_a_byte(recording: Recording, index: int, offset: int = 100) -> None:
    record = bytearray(sealed_chunk(recording, index))
    record[offset] ^= 0x01
    replace_chunk(recording, index, bytes(record))


# --- round trip -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["wav", "mp3", "ogg", "m4a"])
def test_each_sample_round_trips_through_the_store_encrypted(app, store_kind, extension):
    staff, patient = make_staff().account, make_patient(verified=True).account
    req = submit(patient)
    original = (AUDIO / f"call-sample.{extension}").read_bytes()
    with (AUDIO / f"call-sample.{extension}").open("rb") as stream:
        recording = recordings.attach_recording(
            staff, req, stream, recordings.RecordingDetails(original_name=f"call.{extension}")
        )

    assert (recording.storage, recording.key_id, recording.chunk_size) == (store_kind, "test", CHUNK_SIZE)
    assert recording.sha256 == hashlib.sha256(original).hexdigest()  # the identity is the plain audio's
    assert plain_bytes(recording) == original
    chunks = -(-len(original) // CHUNK_SIZE)
    if store_kind == "database":
        assert files(app) == [] and chunk_rows() == chunks
        stored = b"".join(sealed_chunk(recording, index) for index in range(chunks))
        assert len(stored) == len(original) + 28 * chunks
        assert original[1000:1032] not in stored
    else:
        assert files(app) == [recording.stored_name] and chunk_rows() == 0
        assert_encrypted(recordings.stored_path(recording), original)
    result = app.test_cli_runner().invoke(args=["recordings", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 1 recordings checked" in result.output


def test_range_requests_across_chunk_boundaries_match_the_plain_bytes(app, released):
    client, recording = playing(app, released)
    boundary = CHUNK_SIZE
    for first, last in [
        (0, 0),
        (boundary - 1, boundary),
        (boundary - 10, 2 * boundary + 10),
        (3 * boundary, len(ORIGINAL) - 1),
        (len(ORIGINAL) - 5, len(ORIGINAL) + 100),
    ]:
        response = play(client, recording, {"Range": f"bytes={first}-{last}"})
        assert response.status_code == 206, (first, last)
        assert response.get_data() == ORIGINAL[first : last + 1]
        end = min(last, len(ORIGINAL) - 1)
        assert response.headers["Content-Range"] == f"bytes {first}-{end}/{len(ORIGINAL)}"
    suffix = play(client, recording, {"Range": "bytes=-70000"})
    assert suffix.status_code == 206 and suffix.get_data() == ORIGINAL[-70000:]
    whole = play(client, recording)
    assert whole.status_code == 200 and whole.get_data() == ORIGINAL
    assert whole.headers["ETag"] == f'"{hashlib.sha256(ORIGINAL).hexdigest()}"'
    beyond = play(client, recording, {"Range": f"bytes={len(ORIGINAL)}-"})
    assert beyond.status_code == 416


def test_a_chunk_decrypted_in_place_is_checked_first_and_a_failure_leaves_nothing_unchecked_in_the_buffer():
    cipher, _ = ChunkCipher.new("rec-in-place")
    plain = os.urandom(1000)
    record = cipher.seal(3, plain, last=False)
    out = bytearray(1000)
    cipher.open_into(3, record, last=False, out=memoryview(out))
    assert bytes(out) == plain == cipher.open(3, record, last=False, expected_length=1000)

    changed = bytearray(record)
    changed[500] ^= 0x01
    out = bytearray(b"x" * 1000)
    with pytest.raises(RecordingIntegrityError, match="chunk 3 failed its check"):
        cipher.open_into(3, bytes(changed), last=False, out=memoryview(out))
    assert bytes(out) == bytes(1000)  # AES-GCM wrote before it knew: wiped, not the altered audio
    with pytest.raises(RecordingIntegrityError, match="chunk 3 failed its check"):
        cipher.open_into(3, record, last=True, out=memoryview(bytearray(1000)))  # not the last chunk
    with pytest.raises(RecordingIntegrityError, match="wrong length"):
        cipher.open_into(3, record, last=False, out=memoryview(bytearray(999)))


def test_a_stream_from_the_filesystem_hands_over_only_checked_chunks_of_every_block(tmp_path):
    """RecordingBody decrypts each block's chunks into one buffer, and the file source reads each batch into
    one buffer: whole streams and ranges come out exact, and a chunk changed in the middle of a block ends the
    stream after exactly the chunks before it."""
    size = 40 * CHUNK_SIZE + 123
    plain = os.urandom(size)
    cipher, _ = ChunkCipher.new("rec-blocks")
    count = size // CHUNK_SIZE + 1
    records = [cipher.seal(i, plain[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE], last=i == count - 1) for i in range(count)]
    store = FilesystemStore(tmp_path)
    store.write("blocks", records)

    def stream(first: int = 0, end: int = size) -> tuple[list[bytes], Exception | None]:
        body = RecordingBody(RecordingReader(store, "blocks", cipher, size, read_ahead=16))
        body.seek(first)
        body.prime(first, end)
        pieces = []
        try:
            pieces.extend(body)
        except RecordingIntegrityError as exc:
            return pieces, exc
        finally:
            body.close()
        return pieces, None

    pieces, error = stream()
    assert error is None and b"".join(pieces) == plain
    assert all(type(piece) is bytes for piece in pieces) and len(pieces) == 3  # blocks of 16 chunks
    for first, end in [(5, CHUNK_SIZE * 17 + 9), (CHUNK_SIZE * 16 - 1, CHUNK_SIZE * 33), (size - 200, size)]:
        pieces, error = stream(first, end)
        assert error is None and b"".join(pieces) == plain[first:end], (first, end)

    changed = bytearray(records[21])
    changed[40] ^= 0x01
    with open(tmp_path / "blocks", "r+b") as stored:
        stored.seek(21 * RECORD_SIZE)
        stored.write(changed)
    pieces, error = stream()
    assert isinstance(error, RecordingIntegrityError) and "chunk 21" in str(error)
    assert b"".join(pieces) == plain[: 21 * CHUNK_SIZE]


# --- a changed store --------------------------------------------------------------------------------------


def open_streamed(client, *args, **kwargs):
    """A request whose streamed body is left unread, for the test to read as a client receives it (the suite's
    client reads every streamed body at once)."""
    kwargs.setdefault("base_url", "https://localhost")
    return contextvars.Context().run(FlaskClient.open, client, *args, **kwargs)


def read_until_it_stops(response) -> tuple[bytes, Exception | None]:
    """The body as a client receives it: every piece the server sent until the stream ended or broke."""
    received = b""
    try:
        for piece in response.response:
            received += piece
    except Exception as exc:
        return received, exc
    return received, None


def unreadable_events() -> list[dict]:
    return [json.loads(event.details) | {"outcome": event.outcome} for event in events("recording_unreadable")]


def test_a_flipped_byte_in_the_first_chunk_sent_is_a_refusal_with_an_audit_event_and_no_download_counted(app, released):
    client, recording = playing(app, released)
    flip_a_byte(recording, 1)
    page = client.get("/downloads/")
    csrf = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)

    seek = play(client, recording, {"Range": f"bytes={CHUNK_SIZE + 5}-{CHUNK_SIZE + 50}"})
    download = open_streamed(
        client,
        f"/downloads/recordings/{recording.public_id}",
        method="POST",
        data={"csrf_token": csrf},
        headers={"Referer": "https://localhost/downloads/"},
    )
    still_fine = play(client, recording, {"Range": "bytes=0-99"})  # chunk 0 was not changed

    assert seek.status_code == 410 and b"This recording cannot be sent" in seek.get_data()
    assert ORIGINAL[CHUNK_SIZE + 5 : CHUNK_SIZE + 51] not in seek.get_data()
    assert still_fine.status_code == 206 and still_fine.get_data() == ORIGINAL[:100]
    # The download streams chunk 0 first, then stops at chunk 1: cut short, and nothing altered was sent.
    assert download.status_code == 200
    received, error = read_until_it_stops(download)
    assert isinstance(error, RecordingIntegrityError)
    assert received == ORIGINAL[:CHUNK_SIZE]
    problems = unreadable_events()
    assert [(p["reason"], p["outcome"]) for p in problems] == [("integrity_failed", "failure")] * 2
    assert all("chunk 1" in p["detail"] for p in problems)
    assert [e.object_id for e in events("recording_unreadable")] == [recording.public_id] * 2
    result = app.test_cli_runner().invoke(args=["recordings", "verify"])
    assert result.exit_code == 1 and "the stored copy was changed" in result.output


def test_a_changed_first_chunk_refuses_the_download_before_it_is_counted(app, released):
    client, recording = playing(app, released)
    flip_a_byte(recording, 0, offset=5)  # in the nonce
    page = client.get("/downloads/")
    csrf = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)

    download = client.post(
        f"/downloads/recordings/{recording.public_id}",
        data={"csrf_token": csrf},
        headers={"Referer": "https://localhost/downloads/"},
    )

    assert download.status_code == 410 and b"This recording cannot be sent" in download.get_data()
    assert released[2].items[0].download_count == 0
    assert events("recording_downloaded") == []
    assert [p["reason"] for p in unreadable_events()] == ["integrity_failed"]


def test_two_chunks_swapped_are_refused(app, released):
    client, recording = playing(app, released)
    first, second = sealed_chunk(recording, 0), sealed_chunk(recording, 1)
    replace_chunk(recording, 0, second)
    replace_chunk(recording, 1, first)

    for byte_range in ("bytes=0-10", f"bytes={CHUNK_SIZE}-{CHUNK_SIZE + 10}"):
        response = play(client, recording, {"Range": byte_range})
        assert response.status_code == 410
        assert ORIGINAL[:11] not in response.get_data()
        assert ORIGINAL[CHUNK_SIZE : CHUNK_SIZE + 11] not in response.get_data()
    assert len(unreadable_events()) == 2


def test_a_chunk_from_another_recording_in_its_place_is_refused(app, released):
    client, recording = playing(app, released)
    req = db.session.get(RecordingRequest, released[1].id)
    other = db.session.execute(
        select(Recording).where(Recording.request_id == req.id, Recording.id != recording.id)
    ).scalar_one_or_none()
    if other is None:  # a second recording, stored the same way, on another request
        staff, patient = (
            make_staff(email="other@practice.example").account,
            make_patient(verified=True, email="other@example.org").account,
        )
        with SAMPLE_WAV.open("rb") as stream:
            other = recordings.attach_recording(
                staff, submit(patient), stream, recordings.RecordingDetails(original_name="other.wav")
            )
    replace_chunk(recording, 2, sealed_chunk(other, 2))

    response = play(client, recording, {"Range": f"bytes={2 * CHUNK_SIZE}-{2 * CHUNK_SIZE + 99}"})

    assert response.status_code == 410
    assert [p["reason"] for p in unreadable_events()] == ["integrity_failed"]


def test_a_recording_cut_short_is_refused(app, released):
    client, recording = playing(app, released)
    if recording.storage == "database":
        db.session.execute(
            RecordingChunk.__table__.delete().where(
                RecordingChunk.object_name == recording.stored_name, RecordingChunk.chunk_index == 3
            )
        )
        db.session.commit()
    else:
        path = recordings.stored_path(recording)
        path.write_bytes(path.read_bytes()[: 3 * RECORD_SIZE])

    response = play(client, recording, {"Range": f"bytes={3 * CHUNK_SIZE}-"})
    assert response.status_code == 410


# --- keys -------------------------------------------------------------------------------------------------


def test_rewrap_moves_every_data_key_to_the_first_key_and_the_old_key_can_then_be_removed(app, released, monkeypatch):
    client, recording = playing(app, released)
    monkeypatch.setitem(app.config, "RECORDING_KEYS", f"{NEW_KEY},{app.config['RECORDING_KEYS']}")

    result = app.test_cli_runner().invoke(args=["recordings", "rewrap"])
    again = app.test_cli_runner().invoke(args=["recordings", "rewrap"])

    assert result.exit_code == 0, result.output
    assert "Re-wrapped 1 recording keys under key '2027-01'; 0 were already under it." in result.output
    assert "Re-wrapped 0 recording keys under key '2027-01'; 1 were already under it." in again.output
    db.session.expire_all()
    assert db.session.get(Recording, recording.id).key_id == "2027-01"
    [moved] = events("recording_key_rewrapped")
    assert (moved.object_id, json.loads(moved.details)) == (
        recording.public_id,
        {"from_key": "test", "to_key": "2027-01"},
    )
    assert [json.loads(e.details)["rewrapped"] for e in events("recording_keys_rewrapped")] == [1, 0]

    monkeypatch.setitem(app.config, "RECORDING_KEYS", NEW_KEY)  # the old key removed
    whole = play(client, recording)
    assert whole.status_code == 200 and whole.get_data() == ORIGINAL
    assert unreadable_events() == []


def test_a_recording_under_a_key_that_is_no_longer_configured_gets_a_clear_refusal(app, released, monkeypatch):
    client, recording = playing(app, released)
    monkeypatch.setitem(app.config, "RECORDING_KEYS", OTHER_KEY)

    response = play(client, recording)

    assert response.status_code == 410
    assert b"This recording cannot be sent" in response.get_data()
    [problem] = unreadable_events()
    assert problem["reason"] == "unknown_key" and "'test'" in problem["detail"]
    result = app.test_cli_runner().invoke(args=["recordings", "rewrap"])
    assert result.exit_code == 1 and "keep their keys configured" in result.output
    result = app.test_cli_runner().invoke(args=["recordings", "verify"])
    assert result.exit_code == 1 and "not in RECORDING_KEYS" in result.output


def test_recording_keys_are_parsed_strictly():
    assert parse_recording_keys(NEW_KEY + ", " + OTHER_KEY).current_id == "2027-01"
    for bad, message in [
        ("", "at least one key"),
        ("nokey", "id:base64-key"),
        ("a b:" + base64.b64encode(b"k" * 32).decode(), "id:base64-key"),
        ("short:" + base64.b64encode(b"k" * 16).decode(), "must be 32 bytes"),
        ("bad:not*base64", "not valid base64"),
        (NEW_KEY + "," + NEW_KEY, "twice"),
    ]:
        with pytest.raises(RecordingKeyError, match=message):
            parse_recording_keys(bad)


def test_the_application_refuses_to_start_with_a_malformed_key_or_an_unknown_store():
    with pytest.raises(ConfigurationError, match="must be 32 bytes"):
        create_app("test", {"RECORDING_KEYS": "k:" + base64.b64encode(b"x" * 8).decode()})
    with pytest.raises(ConfigurationError, match="RECORDING_STORE must be filesystem or database"):
        create_app("test", {"RECORDING_STORE": "s3"})


# --- purge and removal ------------------------------------------------------------------------------------


def test_purge_leaves_no_chunk_and_forgets_the_data_key(app, released):
    _patient, _req, release, _token = released
    recording = release.items[0].recording
    assert chunk_rows() + len(files(app)) > 0

    report = releases.purge_release_copies(now=datetime.now(UTC) + timedelta(days=120))

    assert report.purged == 1
    assert chunk_rows() == 0 and [name for name in files(app) if not name.startswith(".")] == []
    row = db.session.get(Recording, recording.id)
    assert row.purged_at is not None and row.wrapped_key is None
    assert recordings.open_recording(row) is None


# --- plain files from before encryption -------------------------------------------------------------------


def test_encrypt_files_moves_plain_files_into_the_store_once_and_audits_each(app, released):
    client, recording = playing(app, released)
    directory = Path(app.config["RECORDINGS_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    # The recording as it was kept before encryption: a plain file, and no store, key or wrapped key.
    recordings.store_named(recording.storage).discard(recording.stored_name)
    (directory / "0123456789abcdef0123456789abcdef.wav").write_bytes(ORIGINAL)
    db.session.execute(
        update(Recording)
        .where(Recording.id == recording.id)
        .values(stored_name="0123456789abcdef0123456789abcdef.wav", storage=None, key_id=None, wrapped_key=None)
    )
    db.session.commit()
    assert play(client, recording).status_code == 410  # not offered until it is encrypted
    verify = app.test_cli_runner().invoke(args=["recordings", "verify"])
    assert verify.exit_code == 1 and "not encrypted yet" in verify.output

    first = app.test_cli_runner().invoke(args=["recordings", "encrypt-files"])
    second = app.test_cli_runner().invoke(args=["recordings", "encrypt-files"])

    assert first.exit_code == 0 and f"Encrypted 1 recordings into the {recording.storage} store." in first.output
    assert second.exit_code == 0 and "nothing to encrypt" in second.output
    db.session.expire_all()
    row = db.session.get(Recording, recording.id)
    assert row.storage == app.config["RECORDING_STORE"] and row.key_id == "test"
    assert row.stored_name != "0123456789abcdef0123456789abcdef.wav"
    assert not (directory / "0123456789abcdef0123456789abcdef.wav").exists()
    assert plain_bytes(row) == ORIGINAL
    [event] = events("recording_encrypted")
    assert event.object_id == recording.public_id
    assert json.loads(event.details)["sha256"] == hashlib.sha256(ORIGINAL).hexdigest()
    whole = play(client, row)
    assert whole.status_code == 200 and whole.get_data() == ORIGINAL


def test_encrypt_files_refuses_a_plain_file_that_is_not_the_one_uploaded(app, released):
    _client, recording = playing(app, released)
    directory = Path(app.config["RECORDINGS_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    recordings.store_named(recording.storage).discard(recording.stored_name)
    (directory / "fedcba9876543210fedcba9876543210.wav").write_bytes(
        ORIGINAL[:1000] + bytes([ORIGINAL[1000] ^ 1]) + ORIGINAL[1001:]
    )
    db.session.execute(
        update(Recording)
        .where(Recording.id == recording.id)
        .values(stored_name="fedcba9876543210fedcba9876543210.wav", storage=None, key_id=None, wrapped_key=None)
    )
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["recordings", "encrypt-files"])

    assert result.exit_code == 1 and "SHA-256 differs" in result.output
    assert chunk_rows() == 0 and files(app) == ["fedcba9876543210fedcba9876543210.wav"]


# --- failed uploads leave nothing -------------------------------------------------------------------------


class BrokenStream(io.RawIOBase):
    """An upload whose connection drops after `good` bytes."""

    def __init__(self, data: bytes, good: int):
        self.data, self.good, self.position = data, good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.position >= self.good:
            raise OSError("the client went away")
        piece = self.data[self.position : min(self.position + len(buffer), self.good)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


def test_an_upload_that_fails_part_way_leaves_no_chunk_file_or_row(app, store_kind):
    staff, patient = make_staff().account, make_patient(verified=True).account
    req = submit(patient)

    with pytest.raises(OSError, match="the client went away"):
        recordings.attach_recording(
            staff, req, BrokenStream(ORIGINAL, 3 * CHUNK_SIZE + 10), recordings.RecordingDetails(original_name="x.wav")
        )

    assert chunk_rows() == 0 and files(app) == []
    assert db.session.execute(select(func.count()).select_from(Recording)).scalar_one() == 0


def test_an_upload_refused_after_it_was_stored_leaves_no_chunk_file_or_row(app, store_kind, monkeypatch):
    staff, patient = make_staff().account, make_patient(verified=True).account
    req = submit(patient)
    not_audio = b"RIFF\x00\x00\x00\x00WAVE" + os.urandom(3 * CHUNK_SIZE)  # the right start, then noise
    with pytest.raises(RequestError, match="must be a WAV, MP3, OGG or M4A recording"):
        recordings.attach_recording(staff, req, io.BytesIO(not_audio), recordings.RecordingDetails(original_name="x"))
    assert chunk_rows() == 0 and files(app) == []

    def database_fails(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(recordings, "_record_attachment", database_fails)
    with SAMPLE_WAV.open("rb") as stream, pytest.raises(RuntimeError, match="the database went away"):
        recordings.attach_recording(staff, req, stream, recordings.RecordingDetails(original_name="x.wav"))
    assert chunk_rows() == 0 and files(app) == []
    assert db.session.execute(select(func.count()).select_from(Recording)).scalar_one() == 0


def test_an_upload_over_the_limit_leaves_nothing(app, store_kind, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDING_MAX_BYTES", 2 * CHUNK_SIZE)
    staff, patient = make_staff().account, make_patient(verified=True).account
    with SAMPLE_WAV.open("rb") as stream, pytest.raises(RequestError, match="larger than the limit"):
        recordings.attach_recording(staff, submit(patient), stream, recordings.RecordingDetails(original_name="x.wav"))
    assert chunk_rows() == 0 and files(app) == []


# --- the upload while the form is parsed ------------------------------------------------------------------


def test_an_upload_waits_for_the_view_encrypted_on_disk_and_reads_back_from_anywhere(app):
    assert app.request_class is PortalRequest
    spool = PortalRequest({})._get_file_stream(2_000_000, "audio/wav", "call.wav")
    assert isinstance(spool, EncryptedSpool)
    for start in range(0, len(ORIGINAL), 7000):  # written in pieces, as the form parser does
        spool.write(ORIGINAL[start : start + 7000])
    on_disk = spool._file
    on_disk.flush()
    on_disk.seek(0)
    stored = on_disk.read()
    assert len(stored) == len(ORIGINAL) and ORIGINAL[1000:1032] not in stored

    assert spool.seek(0) == 0 and spool.read() == ORIGINAL
    spool.seek(CHUNK_SIZE + 5)
    assert spool.read(100) == ORIGINAL[CHUNK_SIZE + 5 : CHUNK_SIZE + 105]
    spool.close()
    small = PortalRequest({})._get_file_stream(10_000, "audio/wav", "call.wav")
    assert isinstance(small, io.BytesIO)  # a small file never reaches the disk at all
