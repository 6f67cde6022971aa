"""Staff attaching recordings to a request, listening to them and removing them (issue 4; DESIGN §6 step 1;
SECURITY G6, G10, H11, H12, J1, M2).

The type of a file is decided from its bytes, never its name; the file is written under a random name inside
RECORDINGS_DIR and nowhere else (every test checks the folder's listing afterwards); the size limit answers a
clear 413 page; the audio is streamed with Range, `no-store`, `nosniff` and a sandboxing CSP, and each listen
is audited once (not every seek).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import Recording, RecordingRequest
from core.services import recordings
from core.services import requests as requests_service
from tests.accounts_support import make_patient, post_form, signed_in_browser
from tests.conftest import check_page
from tests.recording_store_support import assert_encrypted, plain_bytes

AUDIO = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
SAMPLES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
}
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(wav|mp3|ogg|m4a)")
NOT_AUDIO = "The selected file must be a WAV, MP3, OGG or M4A recording"


@pytest.fixture
def store(app, tmp_path, monkeypatch) -> Path:
    """RECORDINGS_DIR inside a folder of its own, so a file written beside it would show up too."""
    directory = tmp_path / "recordings"
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(directory))
    return directory


@pytest.fixture
def req() -> RecordingRequest:
    patient = make_patient(verified=True)
    details = requests_service.CallDetails(
        calls_from=requests_service.practice_today() - timedelta(days=3),
        calls_to=requests_service.practice_today() - timedelta(days=3),
    )
    return requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)


def page_path(req: RecordingRequest) -> str:
    return f"/admin/requests/{req.reference}"


def upload(client: FlaskClient, req: RecordingRequest, content: bytes, name: str, **fields):
    data = {"direction": "inbound", **fields, "recording": (io.BytesIO(content), name)}
    return post_form(client, f"{page_path(req)}/recordings", data, form_page=page_path(req))


def sample(extension: str) -> bytes:
    return (AUDIO / f"call-sample.{extension}").read_bytes()


def parse(response) -> BeautifulSoup:
    assert response.mimetype == "text/html"
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def error_summary(response) -> str:
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    return soup.select_one(".nhsuk-error-summary").get_text(" ", strip=True)


def files_under(folder: Path) -> list[str]:
    """Every file below `folder` (the recordings folder's parent), relative to it."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def stored_recordings() -> list[Recording]:
    db.session.expire_all()
    return list(db.session.execute(select(Recording).order_by(Recording.id)).scalars())


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def audio_path(req: RecordingRequest, recording: Recording) -> str:
    return f"{page_path(req)}/recordings/{recording.public_id}/audio"


# --- The four formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("extension", "media_type"), sorted(SAMPLES.items()))
def test_each_sample_format_is_stored_under_a_random_name_with_its_type_hash_and_length(
    clerk_browser, clerk, req, store, extension, media_type
):
    content = sample(extension)

    response = upload(clerk_browser, req, content, f"call-sample.{extension}", **{"caller-number": "07700 900461"})

    assert (response.status_code, response.headers["Location"]) == (302, page_path(req))
    [recording] = stored_recordings()
    assert recording.media_type == media_type
    assert recording.sha256 == hashlib.sha256(content).hexdigest()
    assert recording.size_bytes == len(content)
    assert recording.duration_seconds == pytest.approx(13.5, abs=0.5)
    assert (recording.original_name, recording.caller_number) == (f"call-sample.{extension}", "07700 900461")
    assert STORED_NAME.fullmatch(recording.stored_name)
    assert files_under(store.parent) == [f"recordings/{recording.stored_name}"]
    # Stored encrypted (SECURITY H15): the file is ciphertext; decrypted, it is the upload.
    assert_encrypted(store / recording.stored_name, content)
    assert plain_bytes(recording) == content

    event = events("recording_attached")[-1]
    assert (event.actor_id, event.object_id) == (clerk.account.public_id, recording.public_id)
    assert json.loads(event.details)["request"] == req.reference
    assert json.loads(event.details)["sha256"] == recording.sha256
    db.session.expire_all()
    assert db.session.get(RecordingRequest, req.id).status == "in_progress"  # attaching starts the work

    soup = parse(clerk_browser.get(page_path(req)))
    text = soup.get_text(" ", strip=True)
    assert recording.sha256 in text and media_type in text and "14 s" in text
    player = soup.select_one("main audio[controls]")
    assert player["src"] == audio_path(req, recording)


def test_the_call_date_and_time_are_stored_as_london_time(clerk_browser, req, store):
    fields = {"call-date-day": "2", "call-date-month": "7", "call-date-year": "2025", "call-time": "14:05"}
    upload(clerk_browser, req, sample("mp3"), "call.mp3", direction="outbound", **fields)
    [recording] = stored_recordings()
    started = recording.call_started_at.replace(tzinfo=UTC)
    assert started == datetime(2025, 7, 2, 13, 5, tzinfo=UTC)  # 14:05 BST
    assert recording.direction == "outbound"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"call-time": "14:05"}, "call-date-day", "Enter the date of the call, or leave the time empty"),
        ({"call-date-day": "2", "call-date-month": "7", "call-date-year": "2025"}, "call-time", "Enter the time"),
        (
            {"call-date-day": "2", "call-date-month": "7", "call-date-year": "2025", "call-time": "25:00"},
            "call-time",
            "24-hour time",
        ),
        ({"direction": "sideways"}, "direction", "Select who made the call"),
    ],
)
def test_mistakes_in_the_call_details_store_nothing(clerk_browser, req, store, fields, field, message):
    response = upload(clerk_browser, req, sample("wav"), "call.wav", **fields)
    assert response.status_code == 400
    assert message in error_summary(response)
    assert parse(response).select_one(f".nhsuk-error-summary a[href='#{field}']") is not None
    assert stored_recordings() == []
    assert files_under(store.parent) == []


# --- Files that are not what they claim ------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 200
FAKE_WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 300  # the right first bytes, but no audio


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"Dear practice, this is a letter.\n" * 20, "call.wav", NOT_AUDIO),
        (PNG, "call.wav", NOT_AUDIO),
        (PNG, "call.mp3", NOT_AUDIO),
        (FAKE_WAV, "call.wav", NOT_AUDIO),
        (b"<html><script>alert(1)</script></html>", "call.m4a", NOT_AUDIO),
        (sample("wav")[:44], "call.wav", NOT_AUDIO),  # a header and no sound
        (b"", "call.wav", "The selected file is empty"),
    ],
    ids=["text", "png-as-wav", "png-as-mp3", "fake-wav-header", "html-as-m4a", "wav-header-only", "empty"],
)
def test_a_file_that_is_not_audio_is_refused_by_its_bytes_whatever_its_name_and_nothing_is_left_behind(
    clerk_browser, req, store, content, name, message
):
    response = upload(clerk_browser, req, content, name)

    assert response.status_code == 400
    assert message in error_summary(response)
    assert stored_recordings() == []
    assert files_under(store.parent) == []  # not even the temporary file


def test_a_form_without_a_file_asks_for_one(clerk_browser, req, store):
    response = post_form(
        clerk_browser, f"{page_path(req)}/recordings", {"direction": "inbound"}, form_page=page_path(req)
    )
    assert response.status_code == 400
    assert "Select a recording to upload" in error_summary(response)
    assert files_under(store.parent) == []


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.wav",
        "..\\..\\x.wav",
        "%2e%2e%2f.wav",
        "/etc/passwd.wav",
        "a\x00b.wav",
        "call\r\nX-Header: 1.wav",
        "x" * 1000 + ".wav",
        "..",
    ],
    ids=["dot-dot-slash", "backslashes", "percent-encoded", "absolute", "nul", "newline", "very-long", "dot-dot"],
)
def test_a_file_name_with_path_tricks_never_decides_where_the_file_goes_h11(clerk_browser, req, store, name):
    response = upload(clerk_browser, req, sample("wav"), name)

    if response.status_code == 400:  # refused cleanly (the name did not survive the form encoding)
        assert stored_recordings() == []
        assert files_under(store.parent) == []
        return
    assert response.status_code == 302
    [recording] = stored_recordings()
    assert STORED_NAME.fullmatch(recording.stored_name)
    assert files_under(store.parent) == [f"recordings/{recording.stored_name}"]
    shown = recording.original_name
    assert not any(character in shown for character in "/\\\x00\r\n")
    assert 1 <= len(shown) <= 200 and shown not in (".", "..")
    body = clerk_browser.get(page_path(req)).get_data(as_text=True)
    assert "\x00" not in body


# --- Size -------------------------------------------------------------------------------------------------


def test_a_file_over_the_limit_gets_a_clear_413_page_and_nothing_is_stored_m2(
    app, clerk_browser, req, store, monkeypatch
):
    monkeypatch.setitem(app.config, "RECORDING_MAX_BYTES", 64_000)
    response = upload(clerk_browser, req, sample("wav"), "call.wav")  # 212 KB

    assert response.status_code == 413
    soup = parse(response)
    assert soup.h1.get_text(strip=True) == "The file is too large"
    assert "The largest recording you can upload is 64 KB" in soup.get_text()
    assert stored_recordings() == []
    assert files_under(store.parent) == []


def silent_wav(seconds: int) -> bytes:
    """A real WAV file of silence (8 kHz, 16-bit mono: 16 KB a second)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * seconds)
    return buffer.getvalue()


def test_a_recording_larger_than_the_usual_1_mib_form_limit_is_accepted(clerk_browser, req, store):
    """The application refuses bodies over 1 MiB; the upload form alone raises that limit, before the body (and
    the CSRF token in it) is read."""
    content = silent_wav(120)
    assert len(content) > 1.5 * 1024 * 1024

    response = upload(clerk_browser, req, content, "long-call.wav")

    assert response.status_code == 302
    [recording] = stored_recordings()
    assert (recording.size_bytes, recording.duration_seconds) == (len(content), 120)
    # Stored encrypted (SECURITY H15): the file is ciphertext; decrypted, it is the upload.
    assert_encrypted(store / recording.stored_name, content)
    assert plain_bytes(recording) == content


def test_at_the_default_limit_the_413_page_names_200_mb_without_reading_the_body(clerk_browser, req, store):
    """The declared length alone is enough to refuse: a 300 MB upload is not read into the server first."""
    page = clerk_browser.get(page_path(req)).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = clerk_browser.post(
        f"{page_path(req)}/recordings",
        data={"csrf_token": token, "direction": "inbound", "recording": (io.BytesIO(b"RIFF"), "big.wav")},
        headers={"Referer": f"https://localhost{page_path(req)}"},
        environ_overrides={"CONTENT_LENGTH": str(300 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert "The largest recording you can upload is 200 MB" in response.get_data(as_text=True)
    assert files_under(store.parent) == []


def test_other_forms_keep_the_small_limit(app, clerk_browser, req):
    """Only the upload form raises the 1 MiB limit: a 2 MiB note is refused with the general 413 page."""
    response = post_form(
        clerk_browser, f"{page_path(req)}/notes", {"note": "x" * (2 * 1024 * 1024)}, form_page=page_path(req)
    )
    assert response.status_code == 413
    assert "The file or form you sent is too large" in response.get_data(as_text=True)


def test_an_upload_needs_the_csrf_token_j1(clerk_browser, req, store):
    response = clerk_browser.post(
        f"{page_path(req)}/recordings",
        data={"direction": "inbound", "recording": (io.BytesIO(sample("wav")), "call.wav")},
        headers={"Referer": f"https://localhost{page_path(req)}"},
    )
    assert response.status_code == 400
    assert stored_recordings() == []
    assert files_under(store.parent) == []


def test_an_upload_with_a_stale_second_factor_stores_nothing_e12(app, clerk, req, store):
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        client = signed_in_browser(app, clerk)
        traveller.shift(timedelta(minutes=10))
        assert client.get(page_path(req)).status_code == 200
        traveller.shift(timedelta(minutes=6))
        response = upload(client, req, sample("wav"), "call.wav")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/confirm-it-is-you"
    assert stored_recordings() == []
    assert files_under(store.parent) == []


@pytest.mark.parametrize("status", ["awaiting_identity", "ready_for_approval", "completed"])
def test_recordings_can_be_attached_only_while_the_request_is_being_processed(clerk_browser, req, store, status):
    req.status = status
    db.session.commit()
    response = upload(clerk_browser, req, sample("wav"), "call.wav")
    assert response.status_code == 400
    assert "Recordings can be attached only while the request is being processed" in error_summary(response)
    assert files_under(store.parent) == []


# --- Listening ------------------------------------------------------------------------------------------


@pytest.fixture
def attached(clerk, req, store) -> Recording:
    with (AUDIO / "call-sample.wav").open("rb") as stream:
        return recordings.attach_recording(
            clerk.account, req, stream, recordings.RecordingDetails(original_name="call.wav")
        )


def test_staff_listen_through_a_stream_that_is_never_cached_sniffed_or_run_h12(clerk_browser, req, attached):
    response = clerk_browser.get(audio_path(req, attached))

    assert response.status_code == 200
    assert response.data == sample("wav")
    assert response.mimetype == "audio/wav"
    assert "no-store" in {part.strip() for part in response.headers["Cache-Control"].split(",")}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "attachment" not in response.headers.get("Content-Disposition", "")


def test_a_changed_stored_chunk_is_never_played_to_staff_and_is_audited_h15(clerk_browser, clerk, req, attached, store):
    path = store / attached.stored_name
    stored = bytearray(path.read_bytes())
    stored[200] ^= 0x01  # in chunk 0's ciphertext
    path.write_bytes(bytes(stored))

    response = clerk_browser.get(audio_path(req, attached), headers={"Range": "bytes=0-99"})

    assert response.status_code == 410
    assert sample("wav")[:100] not in response.data
    [event] = events("recording_unreadable")
    assert (event.actor_type, event.actor_id, event.object_id, event.outcome) == (
        "staff",
        clerk.account.public_id,
        attached.public_id,
        "failure",
    )
    assert json.loads(event.details)["reason"] == "integrity_failed"


def test_a_range_request_returns_part_of_the_file_and_every_part_sent_is_audited_with_its_range(
    clerk_browser, clerk, req, attached
):
    content = sample("wav")
    whole = clerk_browser.get(audio_path(req, attached))
    start = clerk_browser.get(audio_path(req, attached), headers={"Range": "bytes=0-99"})
    seek = clerk_browser.get(audio_path(req, attached), headers={"Range": "bytes=1000-1999"})
    tail = clerk_browser.get(audio_path(req, attached), headers={"Range": "bytes=-500"})
    head = clerk_browser.head(audio_path(req, attached))

    assert whole.status_code == 200 and head.status_code == 200
    assert (start.status_code, start.data) == (206, content[:100])
    assert (seek.status_code, seek.data) == (206, content[1000:2000])
    assert (tail.status_code, tail.data) == (206, content[-500:])
    assert seek.headers["Content-Range"] == f"bytes 1000-1999/{len(content)}"
    # Every GET is a read the access review must see, a seek included (a range from byte 1 would otherwise
    # copy the whole file unrecorded); HEAD sends no audio and is not a listen.
    listens = events("recording_listened")
    assert [json.loads(event.details) for event in listens] == [
        {"request": req.reference},
        {"request": req.reference, "range": "bytes=0-99"},
        {"request": req.reference, "range": "bytes=1000-1999"},
        {"request": req.reference, "range": "bytes=-500"},
    ]
    for event in listens:
        assert (event.actor_id, event.object_id) == (clerk.account.public_id, attached.public_id)


# --- Another request's recording (G6) ------------------------------------------------------------------


def test_a_recording_of_another_request_is_a_404_on_this_requests_pages_and_is_audited_g6(
    clerk_browser, clerk, req, attached, store
):
    other_patient = make_patient(email="other@example.org", nhs_number="9434765870", verified=True)
    other = requests_service.submit_request(
        other_patient.account,
        requests_service.CallDetails(calls_from=req.calls_from, calls_to=req.calls_to),
        submission_key="other",
    )
    with (AUDIO / "call-sample.mp3").open("rb") as stream:
        theirs = recordings.attach_recording(
            clerk.account, other, stream, recordings.RecordingDetails(original_name="theirs.mp3")
        )
    before = files_under(store.parent)

    listen = clerk_browser.get(f"{page_path(req)}/recordings/{theirs.public_id}/audio")
    remove = post_form(
        clerk_browser,
        f"{page_path(req)}/recordings/{theirs.public_id}/remove",
        {"reason": "Tampered id"},
        form_page=page_path(req),
    )

    assert (listen.status_code, remove.status_code) == (404, 404)
    assert b"ID3" not in listen.data and b"RIFF" not in listen.data
    assert files_under(store.parent) == before
    assert [r.removed_at for r in stored_recordings()] == [None, None]
    refusals = [event for event in events("authz_fail") if event.object_type == "recording"]
    assert [(event.object_id, json.loads(event.details)["endpoint"]) for event in refusals] == [
        (theirs.public_id, "admin.recording_audio"),
        (theirs.public_id, "admin.recording_remove"),
    ]
    assert {json.loads(event.details)["request"] for event in refusals} == {req.reference}
    assert events("recording_listened") == []
    assert clerk_browser.get(audio_path(other, theirs)).status_code == 200  # on its own request it works


# --- Removing -------------------------------------------------------------------------------------------


def test_removing_a_recording_needs_a_reason_deletes_its_file_and_is_on_the_timeline(
    clerk_browser, clerk, req, attached, store
):
    path = f"{page_path(req)}/recordings/{attached.public_id}/remove"
    empty = post_form(clerk_browser, path, {"reason": ""}, form_page=page_path(req))
    assert empty.status_code == 400
    assert "Enter why the recording is being removed" in error_summary(empty)
    assert files_under(store.parent) == [f"recordings/{attached.stored_name}"]

    unconfirmed = post_form(clerk_browser, path, {"reason": "Wrong patient's call"}, form_page=path)
    assert unconfirmed.status_code == 400
    assert "Confirm that you want to delete the recording's file" in error_summary(unconfirmed)
    assert files_under(store.parent) == [f"recordings/{attached.stored_name}"]

    response = post_form(clerk_browser, path, {"reason": "Wrong patient's call", "confirm": "y"}, form_page=path)

    assert response.status_code == 302
    assert files_under(store.parent) == []
    [recording] = stored_recordings()
    assert recording.removed_at is not None and recording.purged_at is not None
    assert recordings.attached_recordings(req) == []
    event = events("recording_removed")[-1]
    assert (event.actor_id, event.object_id) == (clerk.account.public_id, attached.public_id)
    assert json.loads(event.details)["request"] == req.reference
    soup = parse(clerk_browser.get(page_path(req)))
    assert "Recording removed: call.wav" in soup.select_one("#timeline-events").get_text()
    assert soup.select("main audio") == []
    assert clerk_browser.get(audio_path(req, attached)).status_code == 404
    assert (
        db.session.execute(select(func.count(AuditEvent.seq)).where(AuditEvent.action == "authz_fail")).scalar_one()
        == 0
    )


# --- Issue 11: a WAV's length and "is audio" come from the frames actually in the file --------------------


def wav_header_claiming(seconds: int) -> bytes:
    """The 44-byte header of an 8 kHz 16-bit mono WAV whose data chunk claims `seconds` of audio."""
    return silent_wav(seconds)[:44]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (wav_header_claiming(3), "The selected file has no audio in it"),
        (wav_header_claiming(3) + b"\x00", "The selected file has no audio in it"),  # not one whole frame
        (silent_wav(3)[: 44 + 16000], "The selected file is incomplete"),  # 1 of the 3 seconds it claims
    ],
    ids=["header-only", "half-a-frame", "truncated"],
)
def test_a_wav_that_is_only_a_header_or_truncated_is_refused_with_a_clear_message(
    clerk_browser, req, store, content, message
):
    """On main a 44-byte header claiming 3 seconds was accepted as a 3-second recording: mutagen takes the
    duration from the size the header claims. (No SECURITY.md row covers upload contents; ASVS5 5.2.2.)"""
    response = upload(clerk_browser, req, content, "call.wav")

    assert response.status_code == 400
    assert message in error_summary(response)
    assert stored_recordings() == []
    assert files_under(store.parent) == []


def test_a_wav_still_being_written_is_timed_by_the_frames_present(clerk_browser, req, store):
    """A recorder streaming a WAV writes 0xFFFFFFFF as the data size until it finishes: the length is what is
    there (2 seconds), not what a header says."""
    content = bytearray(silent_wav(2))
    content[40:44] = (0xFFFFFFFF).to_bytes(4, "little")

    assert upload(clerk_browser, req, bytes(content), "streamed.wav").status_code == 302

    [recording] = stored_recordings()
    assert recording.duration_seconds == 2
