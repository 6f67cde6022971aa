"""The patient's download pages, used as a patient (and a mail scanner) uses them: the emailed link, signing
in, the list of recordings, playing one in the browser and downloading it (DESIGN §6; SECURITY H9-H16, G3).

Every test talks HTTPS to the application with CSRF on; recordings are real audio files from
tests/fixtures/audio, stored under the test's own folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.extensions import db
from core.models.accounts import WebSession
from core.models.audit import AuditEvent
from core.models.requests import Recording, ReleaseItem
from core.services import releases
from core.services import requests as requests_service
from tests.accounts_support import (
    CSRF_INPUT,
    forget_last_code,
    make_patient,
    make_staff,
    post_form,
    sign_in_password,
    signed_in_browser,
)
from tests.conftest import Pages, new_browser
from tests.release_support import AUDIO, SAMPLE_WAV, open_link, released_request

FILE_CSP = "sandbox; default-src 'none'"


@pytest.fixture
def released(app: Flask, tmp_path, monkeypatch):
    return released_request(app, tmp_path, monkeypatch=monkeypatch)


def csrf_from(response) -> str:
    match = CSRF_INPUT.search(response.get_data(as_text=True))
    assert match, response.status_code
    return match.group(1)


def download(client: FlaskClient, recording_id: str, csrf: str):
    """Press a recording's download button on the page (whose address a browser sends as the Referer)."""
    return client.post(
        f"/downloads/recordings/{recording_id}",
        data={"csrf_token": csrf},
        headers={"Referer": "https://localhost/downloads/"},
    )


def play(client: FlaskClient, recording_id: str, *, method: str = "GET", headers: dict | None = None):
    return client.open(f"/downloads/recordings/{recording_id}/play", method=method, headers=headers or {})


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def download_count(item_id: int) -> int:
    return db.session.execute(select(ReleaseItem.download_count).where(ReleaseItem.id == item_id)).scalar_one()


def signed_in_at_the_page(app: Flask, patient, token: str) -> tuple[FlaskClient, str]:
    """A browser signed in as `patient` with the link open; returns it and the page's CSRF token."""
    client = signed_in_browser(app, patient)
    page = open_link(client, token)
    assert page.status_code == 200
    return client, csrf_from(page)


# --- the page ---------------------------------------------------------------------------------------------


def test_the_page_lists_each_recording_with_a_player_a_download_button_and_the_links_expiry(app, tmp_path, monkeypatch):
    """DESIGN §6: each recording has a server-made name (the call's time in London when known), its length,
    size and downloads left, an audio player that loads nothing until asked, and a download button that is a
    CSRF-protected POST. Viewing the page is audited."""
    patient, req, release, token = released_request(
        app, tmp_path, samples=(SAMPLE_WAV, AUDIO / "call-sample.mp3"), monkeypatch=monkeypatch
    )
    first, second = (item.recording for item in release.items)
    db.session.execute(
        update(Recording)
        .where(Recording.id == first.id)
        .values(call_started_at=datetime(2026, 9, 3, 9, 15, tzinfo=UTC))  # 10:15 British Summer Time
    )
    db.session.commit()

    response = open_link(signed_in_browser(app, patient), token)

    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    page = Pages.parse(response)
    assert [h2.get_text(strip=True) for h2 in page.main.find_all("h2")] == [
        "Call on 3 September 2026 at 10:15am",
        "Recording 2",
        "If you need help",
    ]
    for recording in (first, second):
        audio = page.find("source", src=f"/downloads/recordings/{recording.public_id}/play").parent
        assert audio.name == "audio" and audio.has_attr("controls") and audio["preload"] == "none"
        assert audio.source["type"] == recording.media_type
        form = page.find("form", action=f"/downloads/recordings/{recording.public_id}")
        assert form["method"] == "post" and form.find("input", attrs={"name": "csrf_token"})["value"]
    rows = [
        [cell.get_text(" ", strip=True) for cell in row.find_all(["dt", "dd"])]
        for row in page.select(".nhsuk-summary-list__row")
    ]
    assert ["Length", "14 s"] in rows and ["File size", "217 KB"] in rows
    assert rows.count(["Downloads left", "3 of 3"]) == 2
    expires = release.expires_at.replace(tzinfo=UTC).astimezone(requests_service.LONDON)
    clock = f"{expires.hour % 12 or 12}:{expires:%M}{'am' if expires.hour < 12 else 'pm'}"
    until = f"{expires.day} {expires:%B %Y} at {clock}"
    assert f"This link works until {until}." in page.main.get_text(" ", strip=True)
    assert page.main.find("a", href=f"/requests/{req.reference}") is not None

    viewed = events("download_page_viewed")
    assert len(viewed) == 1
    assert (viewed[0].actor_type, viewed[0].actor_id) == ("patient", patient.account.public_id)
    assert json.loads(viewed[0].details) == {"release": release.public_id}


# --- downloading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "media_type", "extension"),
    [
        ("call-sample.wav", "audio/wav", "wav"),
        ("call-sample.mp3", "audio/mpeg", "mp3"),
        ("call-sample.ogg", "audio/ogg", "ogg"),
        ("call-sample.m4a", "audio/mp4", "m4a"),
    ],
)
def test_a_download_is_an_attachment_with_a_server_made_name_and_the_file_headers_h12(
    app, tmp_path, monkeypatch, sample, media_type, extension
):
    """H12: `Content-Disposition: attachment` with a name made from the request reference, the recording's
    place on the page and its type; the exact audio type; nosniff; no-store; a sandboxing CSP in place of the
    site's; same-origin CORP. The bytes are the uploaded file's (its SHA-256), and one download is counted."""
    patient, req, release, token = released_request(app, tmp_path, samples=(AUDIO / sample,), monkeypatch=monkeypatch)
    item = release.items[0]
    client, csrf = signed_in_at_the_page(app, patient, token)

    response = download(client, item.recording.public_id, csrf)

    assert response.status_code == 200
    headers = response.headers
    assert headers["Content-Disposition"] == f"attachment; filename=recording-{req.reference}-1.{extension}"
    assert headers["Content-Type"] == media_type
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store, private"
    assert headers["Content-Security-Policy"] == FILE_CSP
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert headers["Referrer-Policy"] == "no-referrer"
    body = response.get_data()
    assert int(headers["Content-Length"]) == len(body) == item.recording.size_bytes
    assert hashlib.sha256(body).hexdigest() == item.recording.sha256
    assert hashlib.sha256((AUDIO / sample).read_bytes()).hexdigest() == item.recording.sha256
    assert download_count(item.id) == 1
    rows = Pages.parse(client.get("/downloads/")).select(".nhsuk-summary-list__row")
    assert "Downloads left 2 of 3" in [row.get_text(" ", strip=True) for row in rows]


def test_each_download_is_audited_once_with_actor_release_request_bytes_hash_and_outcome_h14(app, released):
    """H14: one `recording_downloaded` event per download: the patient, the recording, the release, the
    request, the bytes and SHA-256 sent, and the outcome; never the file itself."""
    patient, req, release, token = released
    recording = release.items[0].recording
    client, csrf = signed_in_at_the_page(app, patient, token)
    assert events("recording_downloaded") == []

    assert download(client, recording.public_id, csrf).status_code == 200

    (event,) = events("recording_downloaded")
    assert (event.actor_type, event.actor_id) == ("patient", patient.account.public_id)
    assert (event.object_type, event.object_id, event.outcome) == ("recording", recording.public_id, "success")
    assert json.loads(event.details) == {
        "release": release.public_id,
        "request": req.reference,
        "bytes": recording.size_bytes,
        "sha256": recording.sha256,
    }
    assert event.occurred_at is not None and event.ip_address and event.request_id


def test_the_last_allowed_download_taken_twice_gets_410_the_second_time_h5(app, tmp_path, monkeypatch):
    """H5: with one download allowed, the first press sends the file and the second gets the clear "cannot
    download again" page (410) with no bytes; the count stays at the maximum and the refusal is audited."""
    monkeypatch.setitem(app.config, "RELEASE_MAX_DOWNLOADS", 1)
    patient, req, release, token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    item = release.items[0]
    client, csrf = signed_in_at_the_page(app, patient, token)

    first = download(client, item.recording.public_id, csrf)
    second = download(client, item.recording.public_id, csrf)

    assert first.status_code == 200 and first.get_data()[:4] == b"RIFF"
    assert second.status_code == 410
    page = Pages.parse(second)
    assert page.h1.get_text(strip=True) == "You cannot download this recording again"
    assert "Ask for a new link" in page.main.get_text(" ", strip=True)
    assert page.main.find("a", href=f"/requests/{req.reference}") is not None
    assert download_count(item.id) == 1
    assert [(e.outcome, json.loads(e.details).get("reason")) for e in events("recording_downloaded")] == [
        ("success", None),
        ("failure", "no_downloads_left"),
    ]


def test_a_download_without_the_csrf_token_is_refused_and_counts_nothing_j1(app, released):
    """J1: the download is a POST with a CSRF token; without it, 400 and nothing counted or sent."""
    patient, _req, release, token = released
    item = release.items[0]
    client, _csrf = signed_in_at_the_page(app, patient, token)

    response = client.post(f"/downloads/recordings/{item.recording.public_id}", data={})

    assert response.status_code == 400 and b"RIFF" not in response.get_data()
    assert download_count(item.id) == 0


def test_a_recording_whose_file_was_deleted_gets_a_clear_410_and_no_download_is_counted(app, released):
    """DESIGN §6 (purge): when the stored copy has gone, the page says so instead of offering it, and playing
    or downloading it gets a clear 410 page; nothing is counted, and the audit says why."""
    patient, _req, release, token = released
    item = release.items[0]
    client, csrf = signed_in_at_the_page(app, patient, token)
    path = Path(app.config["RECORDINGS_DIR"]) / item.recording.stored_name
    path.unlink()

    page = Pages.parse(client.get("/downloads/"))
    assert page.find("audio") is None and page.find("form", action=lambda a: "/recordings/" in (a or "")) is None
    assert "no longer available" in page.main.get_text(" ", strip=True)
    downloaded = download(client, item.recording.public_id, csrf)
    played = play(client, item.recording.public_id)

    for response in (downloaded, played):
        assert response.status_code == 410
        assert Pages.parse(response).h1.get_text(strip=True) == "This recording is no longer available"
    assert download_count(item.id) == 0
    reasons = [json.loads(e.details)["reason"] for e in events("download_link_refused")]
    assert reasons == ["file_deleted", "file_deleted"]


# --- playing (H16) ----------------------------------------------------------------------------------------


def test_playing_supports_range_and_head_counts_no_download_and_audits_every_part_sent_h16(app, released):
    """H16 and DESIGN §6: the player's requests stream the file with HTTP Range (206 with Content-Range) and
    HEAD, with the same file headers as a download but shown inline. Listening is not downloading: no
    download is counted. Every GET is audited with its range (a seek included); HEAD sends no audio."""
    patient, _req, release, token = released
    item = release.items[0]
    recording = item.recording
    original = SAMPLE_WAV.read_bytes()
    client, _csrf = signed_in_at_the_page(app, patient, token)

    whole = play(client, recording.public_id)
    start = play(client, recording.public_id, headers={"Range": "bytes=0-99"})
    seek = play(client, recording.public_id, headers={"Range": "bytes=1000-1999"})
    head = play(client, recording.public_id, method="HEAD")

    assert whole.status_code == 200 and whole.get_data() == original
    assert start.status_code == 206 and start.get_data() == original[:100]
    assert start.headers["Content-Range"] == f"bytes 0-99/{len(original)}"
    assert seek.status_code == 206 and seek.get_data() == original[1000:2000]
    assert head.status_code == 200 and head.get_data() == b""
    assert int(head.headers["Content-Length"]) == len(original) and head.headers["Accept-Ranges"] == "bytes"
    for response in (whole, start, seek, head):
        assert response.headers["Content-Type"] == "audio/wav"
        assert response.headers["Content-Disposition"].startswith("inline;")
        assert response.headers["Content-Security-Policy"] == FILE_CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store, private"
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert download_count(item.id) == 0
    played = events("recording_played")
    assert [json.loads(e.details).get("range") for e in played] == [None, "bytes=0-99", "bytes=1000-1999"]
    assert {(e.actor_id, e.object_id) for e in played} == {(patient.account.public_id, recording.public_id)}


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_head_and_range_requests_from_another_patient_are_refused_g3_h16(app, released, method):
    """H16, G3: patient B, signed in, with A's link in the session, asks for A's recording by HEAD or by a
    Range request: refused (404) with no bytes, and audited as wrong_patient."""
    _patient_a, _req, release, token = released
    recording = release.items[0].recording
    patient_b = make_patient(email="b.patient@example.org", nhs_number="9434765870", given_name="Bea")
    client = signed_in_browser(app, patient_b)
    assert client.get(f"/downloads/{token}").status_code == 303

    response = play(client, recording.public_id, method=method, headers={"Range": "bytes=0-99"})

    assert response.status_code == 404 and b"RIFF" not in response.get_data()
    assert "Content-Range" not in response.headers
    assert [json.loads(e.details)["reason"] for e in events("download_link_refused")] == ["wrong_patient"]
    assert events("recording_played") == []


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_head_and_range_requests_on_a_revoked_link_are_refused_h6_h16(app, released, method):
    """H16, H6: the player's page was open when staff revoked the link: its next HEAD or Range request is
    refused (404, no bytes) and audited as revoked."""
    patient, req, release, token = released
    recording = release.items[0].recording
    client, _csrf = signed_in_at_the_page(app, patient, token)
    staff = make_staff(email="revoker@practice.example", name="Rae Voker", role="admin").account
    releases.revoke_release(staff, req, "Wrong recording attached", reissue=False)

    response = play(client, recording.public_id, method=method, headers={"Range": "bytes=0-99"})

    assert response.status_code == 404 and b"RIFF" not in response.get_data()
    assert [json.loads(e.details)["reason"] for e in events("download_link_refused")] == ["revoked"]


def test_another_patients_download_button_is_refused_and_counts_nothing_g3(app, released):
    """G3: patient B posts A's recording's download form with A's link in B's session: 404, no bytes, A's
    count unchanged."""
    _patient_a, _req, release, token = released
    item = release.items[0]
    patient_b = make_patient(email="b.patient@example.org", nhs_number="9434765870", given_name="Bea")
    client = signed_in_browser(app, patient_b)
    csrf = csrf_from(client.get("/account/change-password"))
    assert client.get(f"/downloads/{token}").status_code == 303

    response = download(client, item.recording.public_id, csrf)

    assert response.status_code == 404 and b"RIFF" not in response.get_data()
    assert download_count(item.id) == 0


# --- signing in first (H9) --------------------------------------------------------------------------------


def test_a_signed_out_patient_signs_in_with_both_factors_and_comes_back_to_the_page_h9(app, released):
    """H9: the link opened while signed out leads to sign-in (with `next=/downloads/`, never the token); the
    password alone reaches nothing; after the code the patient lands back on the page, which works: the link
    kept in the session survives the new session ids of both sign-in steps."""
    patient, _req, _release, token = released
    client = new_browser(app)

    first = open_link(client, token)
    assert first.status_code == 302
    sign_in_page = first.headers["Location"]
    assert urlsplit(sign_in_page).path == "/account/sign-in"
    assert parse_qs(urlsplit(sign_in_page).query) == {"next": ["/downloads/"]}

    forget_last_code(patient)
    password_step = post_form(client, sign_in_page, {"email": patient.account.email, "password": patient.password})
    assert password_step.headers["Location"] == "/account/sign-in/code"
    assert urlsplit(client.get("/downloads/").headers["Location"]).path == "/account/sign-in"  # e-mail + password

    code_step = post_form(client, "/account/sign-in/code", {"code": patient.code()})
    assert code_step.status_code == 302 and code_step.headers["Location"] == "/downloads/"
    page = client.get("/downloads/")
    assert page.status_code == 200 and Pages.parse(page).find("audio") is not None


def test_the_password_step_alone_never_reaches_the_recordings_h9(app, released):
    """H9: with only the password done (no code), neither the page nor a recording is reachable."""
    patient, _req, release, token = released
    client = new_browser(app)
    assert client.get(f"/downloads/{token}").status_code == 303
    forget_last_code(patient)
    sign_in_password(client, patient)

    for response in (client.get("/downloads/"), play(client, release.items[0].recording.public_id)):
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/account/sign-in"


def test_a_stale_second_factor_means_confirming_it_is_you_before_the_page_or_a_download_h9_e12(app, released):
    """H9, E12: 16 minutes after the code the page asks "confirm it is you" and comes back after it; the
    download button does the same and counts nothing meanwhile; the player's own request gets a 403 (an audio
    element cannot follow a sign-in page)."""
    patient, _req, release, token = released
    item = release.items[0]
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        client, csrf = signed_in_at_the_page(app, patient, token)
        clock.shift(timedelta(minutes=16))

        asked = client.get("/downloads/")
        pressed = download(client, item.recording.public_id, csrf)
        played = play(client, item.recording.public_id, headers={"Range": "bytes=0-99"})

        for response in (asked, pressed):
            assert response.status_code == 302
            location = urlsplit(response.headers["Location"])
            assert location.path == "/account/confirm-it-is-you"
            assert parse_qs(location.query) == {"next": ["/downloads/"]}
        assert played.status_code == 403 and b"RIFF" not in played.get_data()
        assert download_count(item.id) == 0

        confirmed = post_form(
            client,
            asked.headers["Location"],
            {"password": patient.password, "code": patient.code(), "next": "/downloads/"},
        )
        assert confirmed.headers["Location"] == "/downloads/"
        assert client.get("/downloads/").status_code == 200
        assert download(client, item.recording.public_id, csrf).status_code == 200
    assert download_count(item.id) == 1


# --- mail scanners (H10) ----------------------------------------------------------------------------------


def every_row() -> dict[str, list[tuple]]:
    db.session.expire_all()
    return {
        table.name: sorted(tuple(str(value) for value in row) for row in db.session.execute(select(table)))
        for table in db.metadata.sorted_tables
    }


def test_a_mail_scanner_following_the_link_changes_nothing_but_a_session_row_h10(app, released):
    """H10: a GET of the link with no session (a mail scanner), and of the page it redirects to, leaves every
    table exactly as it was (the release, its download counts, the audit trail, the outbox) except one new
    anonymous session row, which holds the token only encrypted."""
    _patient, _req, _release, token = released
    before = every_row()
    scanner = new_browser(app)

    followed = scanner.get(f"/downloads/{token}")
    onward = scanner.get(followed.headers["Location"])

    assert followed.status_code == 303 and followed.headers["Location"] == "/downloads/"
    assert onward.status_code == 302 and urlsplit(onward.headers["Location"]).path == "/account/sign-in"
    after = every_row()
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["web_session"]
    (new_row,) = set(after["web_session"]) - set(before["web_session"])
    session = db.session.execute(select(WebSession)).scalars().all()
    assert len(after["web_session"]) == len(before["web_session"]) + 1
    assert [row.account_kind for row in session if row.account_kind is None] == [None]
    assert token not in "".join(new_row)


# --- the token stays out of addresses, pages and logs (H13) -----------------------------------------------


def test_the_token_never_appears_in_a_page_an_address_a_header_or_a_log_record_h13(app, released, caplog):
    """H13 and L2: across a whole run (the link opened signed out, sign-in, the page, a play and a download)
    the token is in no response body, no Location or other header, and no log record at any level; the
    request log names the route (`/downloads/<token>`), not the address."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    patient, _req, release, token = released
    recording = release.items[0].recording
    client = new_browser(app)
    responses = []

    responses.append(client.get(f"/downloads/{token}"))
    responses.append(client.get("/downloads/"))
    forget_last_code(patient)
    responses.append(
        post_form(
            client, responses[-1].headers["Location"], {"email": patient.account.email, "password": patient.password}
        )
    )
    responses.append(post_form(client, "/account/sign-in/code", {"code": patient.code()}))
    responses.append(client.get("/downloads/"))
    responses.append(play(client, recording.public_id, headers={"Range": "bytes=0-99"}))
    responses.append(download(client, recording.public_id, csrf_from(responses[4])))

    assert [r.status_code for r in responses] == [303, 302, 302, 302, 200, 206, 200]
    assert responses[0].headers["Referrer-Policy"] == "no-referrer"
    for response in responses:
        assert token not in str(response.headers)
        if response.mimetype == "text/html":
            assert token not in response.get_data(as_text=True)
    assert caplog.records, "the run was logged"
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in json.dumps(record.__dict__, default=str)
    assert "GET /downloads/<token> 303" in caplog.text
    stored = db.session.execute(select(WebSession.data)).scalars().all()
    assert stored and not any(token in data for data in stored)


def test_the_page_keeps_a_same_origin_referrer_policy_because_its_download_form_needs_the_referer_h13(app, released):
    """H13 / J4: the page's address holds no token (the 303 dropped it), so it keeps the site's same-origin
    policy: a browser then sends the Referer that the strict HTTPS CSRF check needs for the download button.
    Without a Referer (what `no-referrer` would cause) the download is refused and nothing is counted."""
    patient, _req, release, token = released
    item = release.items[0]
    client = signed_in_browser(app, patient)
    page = open_link(client, token)
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert token not in page.get_data(as_text=True)

    no_referer = client.post(
        f"/downloads/recordings/{item.recording.public_id}",
        data={"csrf_token": csrf_from(page)},
        headers={"Referer": ""},
    )

    assert no_referer.status_code == 400 and download_count(item.id) == 0


# --- path traversal (H11) ---------------------------------------------------------------------------------

TRAVERSALS = [
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5c..%5cetc%5cpasswd",
    "..",
    "%2e%2e",
    "%2fetc%2fpasswd",
    "%00",
    "0123456789abcdef0123456789abcde%00",
    "%E2%80%A4%E2%80%A4%2f%E2%80%A4%E2%80%A4%2fsecret.txt",
    "%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt",
    "secret.txt",
    "..%2fsecret.txt",
]


@pytest.mark.parametrize("recording_id", TRAVERSALS)
def test_path_tricks_in_the_recording_id_are_404_and_serve_no_file_h11(app, released, tmp_path, recording_id):
    """H11: dot-dot (plain, encoded, backslash), absolute paths, NUL and Unicode dots in the recording part
    of the address, for playing and downloading: 404, never a file's bytes (a file sits just outside
    RECORDINGS_DIR to be found), and nothing counted."""
    patient, _req, release, token = released
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE-RECORDINGS")
    client, csrf = signed_in_at_the_page(app, patient, token)

    for response in (
        client.get(f"/downloads/recordings/{recording_id}/play"),
        client.post(f"/downloads/recordings/{recording_id}", data={"csrf_token": csrf}),
    ):
        assert response.status_code == 404, response.status_code
        body = response.get_data()
        assert b"SECRET-OUTSIDE-RECORDINGS" not in body and b"root:" not in body and b"RIFF" not in body
    assert download_count(release.items[0].id) == 0


def test_a_recording_id_from_elsewhere_is_404_even_on_a_working_link_h11_g3(app, released, tmp_path, monkeypatch):
    """H11, G3: a real recording id from another patient's release, the file's stored name, or an id in
    capitals, asked for through the patient's own working link: 404, nothing counted."""
    patient, _req, release, token = released
    patient_b = make_patient(email="b.patient@example.org", nhs_number="9434765870", given_name="Bea", verified=True)
    _b, _req_b, release_b, _token_b = released_request(app, tmp_path, patient=patient_b, monkeypatch=monkeypatch)
    other = release_b.items[0]
    client, csrf = signed_in_at_the_page(app, patient, token)

    for recording_id in (
        other.recording.public_id,
        release.items[0].recording.stored_name,
        release.items[0].recording.public_id.upper(),
    ):
        assert play(client, recording_id).status_code == 404
        assert download(client, recording_id, csrf).status_code == 404
    assert download_count(other.id) == 0 and download_count(release.items[0].id) == 0
