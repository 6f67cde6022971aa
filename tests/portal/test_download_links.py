"""The download link's token (SECURITY H1-H8, H11 and G3): what it carries, who and what it works for, and
how every way of failing looks the same to the patient while the audit trail records the exact reason.

Each refusal is checked through the pages, as the patient sees it (one page, status 404), and in the audit
trail (`download_link_refused` with the reason). The parallel-download test (H5) uses real threads with an
application context (and so a database session and connection) each; CI runs it again on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask import Flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import Release, ReleaseItem
from core.services import accounts, releases
from tests.accounts_support import CSRF_INPUT, make_patient, make_staff, signed_in_browser
from tests.conftest import Pages
from tests.release_support import open_link, released_request

KEY_1 = "test-download-key-not-for-production-0123456789abcdef"
KEY_2 = "second-download-key-for-rotation-tests-fedcba9876543210"
REFUSED_HEADING = "This download link does not work"


@pytest.fixture
def released(app: Flask, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "DOWNLOAD_SIGNING_KEYS", KEY_1)
    return released_request(app, tmp_path, monkeypatch=monkeypatch)


def refusal_reasons() -> list[str]:
    events = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "download_link_refused").order_by(AuditEvent.seq)
    ).scalars()
    return [json.loads(event.details)["reason"] for event in events]


def assert_refused(response, reason: str, *, patient=None) -> BeautifulSoup:
    """The one page for a link that does not work, and its audit event with the exact reason."""
    assert response.status_code == 404
    page = Pages.parse(response)
    assert page.h1.get_text(strip=True) == REFUSED_HEADING
    text = page.main.get_text(" ", strip=True)
    assert "expired or cannot be used" in text
    assert "Ask for a new link" in text and "020 8333 5000" in text
    assert refusal_reasons()[-1] == reason
    event = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "download_link_refused").order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert event.outcome == "failure"
    if patient is not None:
        assert (event.actor_type, event.actor_id) == ("patient", patient.account.public_id)
    return page


def flip(character: str) -> str:
    return "A" if character != "A" else "B"


# --- H8: what the token carries ---------------------------------------------------------------------------


def test_the_token_payload_holds_only_the_releases_random_id_h8(released):
    """H8: the first segment is readable base64 JSON, so it holds the opaque release id and nothing else: no
    name, NHS number, email, reference or file name."""
    patient, req, release, token = released
    segment = token.split(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    assert payload == {"r": release.public_id}
    assert releases.PUBLIC_ID.fullmatch(payload["r"])
    decoded = json.dumps(payload)
    recording = release.items[0].recording
    for private in (patient.account.nhs_number, patient.account.email, patient.account.family_name, req.reference):
        assert private not in decoded
    assert recording.stored_name.split(".")[0] not in decoded and recording.public_id not in decoded


# --- H1: tampering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_a_token_with_one_character_changed_gets_the_clear_page_and_bad_signature_is_audited_h1(app, released, part):
    """H1: one character changed in the payload or in the signature: the one clear page, reason bad_signature,
    and nothing about the recordings is shown."""
    patient, _req, release, token = released
    payload, timestamp, signature = token.split(".")
    if part == "payload":
        tampered = f"{payload[:5]}{flip(payload[5])}{payload[6:]}.{timestamp}.{signature}"
    else:
        tampered = f"{payload}.{timestamp}.{signature[:-3]}{flip(signature[-3])}{signature[-2:]}"
    assert tampered != token

    page = assert_refused(open_link(signed_in_browser(app, patient), tampered), "bad_signature", patient=patient)

    assert page.find("audio") is None and page.find("form", action=lambda a: "/recordings/" in a) is None
    assert release.items[0].recording.public_id not in str(page)


def test_the_same_link_untouched_works_for_its_patient(app, released):
    """The control for the refusals in this file: the untampered link shows the recordings."""
    patient, _req, _release, token = released
    page = Pages.parse(open_link(signed_in_browser(app, patient), token))
    assert page.h1.get_text(strip=True) == "Your call recordings"
    assert page.find("audio") is not None
    assert refusal_reasons() == []


# --- H2 and H3: age ---------------------------------------------------------------------------------------


def test_a_link_past_its_expiry_date_is_refused_as_expired_h2(app, released):
    """H2 (database): a minute after the release's expires_at the signature is still young enough, and the
    release row refuses it: reason expired."""
    patient, _req, release, token = released
    expires = release.expires_at.replace(tzinfo=UTC)
    with time_machine.travel(expires + timedelta(minutes=1), tick=False):
        assert_refused(open_link(signed_in_browser(app, patient), token), "expired", patient=patient)


def test_a_link_older_than_the_signatures_max_age_is_refused_as_signature_expired_h2(app, released):
    """H2 (signature): `max_age` is always passed, so past it the token is refused before the database is
    asked, even if the row said otherwise (here its expiry is pushed far out to prove it)."""
    patient, _req, release, token = released
    db.session.execute(
        update(Release).where(Release.id == release.id).values(expires_at=datetime.now(UTC) + timedelta(days=400))
    )
    db.session.commit()
    later = datetime.now(UTC) + timedelta(days=releases.MAX_LINK_DAYS + 2)
    with time_machine.travel(later, tick=False):
        assert releases.check_token(token).reason == "signature_expired"
        assert_refused(open_link(signed_in_browser(app, patient), token), "signature_expired", patient=patient)


def test_a_token_signed_with_a_timestamp_in_the_future_is_refused_h3(app, released):
    """H3: a token whose timestamp is a day ahead (signed with a fake clock) has a negative age, which
    itsdangerous refuses as expired: reason signature_expired."""
    patient, _req, release, _token = released
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=False):
        from_the_future = releases.make_token(release)

    assert_refused(open_link(signed_in_browser(app, patient), from_the_future), "signature_expired", patient=patient)


# --- H4: one salt per purpose ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "salt"),
    [("SECRET_KEY", "portal-verify-email"), ("DOWNLOAD_SIGNING_KEYS", "portal-verify-email"), ("SECRET_KEY", None)],
    ids=["email-link-token", "download-key-other-salt", "session-key-download-salt"],
)
def test_a_token_made_for_another_purpose_is_refused_h4(app, released, key_name, salt):
    """H4: the same payload signed under another purpose's salt (an email-confirmation token), or with the
    right salt but the wrong key, is refused: reason bad_signature."""
    patient, _req, release, _token = released
    other = URLSafeTimedSerializer(app.config[key_name], salt=salt or releases.DOWNLOAD_SALT)
    forged = other.dumps({"r": release.public_id})

    assert_refused(open_link(signed_in_browser(app, patient), forged), "bad_signature", patient=patient)


def test_a_download_token_does_not_work_as_an_email_confirmation_link_h4(browser, released):
    """H4 from the other side: the download token is no good to the email-confirmation link."""
    _patient, _req, _release, token = released
    assert browser.get(f"/account/confirm-email/{token}").status_code == 404


# --- H11: a payload naming a path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"r": "../../../../etc/passwd"}, "bad_payload"),
        ({"r": "/etc/passwd"}, "bad_payload"),
        ({"r": "..%2f..%2f..%2f..%2f..%2fetc%2fpasswd"[:32]}, "bad_payload"),
        ({"r": "\u2024\u2024/" * 10 + "ab"}, "bad_payload"),
        ({"r": "0123456789ABCDEF0123456789ABCDEF"}, "bad_payload"),
        ({"r": ["0" * 32]}, "bad_payload"),
        ("0" * 32, "bad_payload"),
        ({"r": "0" * 32}, "unknown_release"),
    ],
    ids=["dot-dot", "absolute", "encoded-dot-dot-32", "unicode-dots-32", "upper-case-hex", "list", "bare", "unknown"],
)
def test_a_validly_signed_token_naming_a_path_or_anything_but_a_release_id_is_refused_h11(
    app, released, payload, reason
):
    """H11: even signed with the real key and salt (as an attacker holding the key could), a payload that is
    not a release's 32-hex id is refused, and no file is served: the token never names a file."""
    patient, _req, _release, _token = released
    forged = URLSafeTimedSerializer(KEY_1, salt=releases.DOWNLOAD_SALT).dumps(payload)

    page = assert_refused(open_link(signed_in_browser(app, patient), forged), reason, patient=patient)
    assert "root:" not in str(page)


# --- H6: revoked links and deactivated patients -----------------------------------------------------------


def test_a_revoked_link_is_refused_and_a_reissued_one_works_h6(app, released):
    """H6: staff revoke the link (and send a new one): the old token is refused as revoked, the new one works."""
    patient, req, _release, token = released
    staff = make_staff(email="another-admin@practice.example", name="Al Other", role="admin").account
    new_link = releases.revoke_release(staff, req, "Sent the wrong recording", reissue=True)
    client = signed_in_browser(app, patient)

    assert_refused(open_link(client, token), "revoked", patient=patient)
    works = open_link(client, new_link.rsplit("/", 1)[1])
    assert works.status_code == 200 and Pages.parse(works).find("audio") is not None


def test_deactivating_the_patient_revokes_their_links_for_good_h6(app, released):
    """H6 (and E6): an admin deactivates the patient; every live link of theirs is revoked at once, so it stays
    refused even if the account is later reactivated."""
    patient, _req, _release, token = released
    admin = make_staff(email="manager@practice.example", name="Mo Manager", role="admin").account
    accounts.set_account_active(admin, patient.account, False)
    assert releases.check_token(token).reason == "revoked"

    accounts.set_account_active(admin, patient.account, True)
    assert_refused(open_link(signed_in_browser(app, patient), token), "revoked", patient=patient)


# --- G3: another patient's link ---------------------------------------------------------------------------


def test_a_patient_signed_in_with_another_patients_link_gets_the_clear_page_g3(app, released):
    """G3: patient B, signed in with both factors, opens A's valid link: refused, audited as wrong_patient
    with B as the actor, and nothing of A's is shown (not even the request's reference)."""
    _patient_a, req, release, token = released
    patient_b = make_patient(email="b.patient@example.org", nhs_number="9434765870", given_name="Bea")

    page = assert_refused(open_link(signed_in_browser(app, patient_b), token), "wrong_patient", patient=patient_b)

    assert req.reference not in str(page)
    assert release.items[0].recording.public_id not in str(page)


# --- H5: the last download, in parallel -------------------------------------------------------------------


def _one_left(release: Release) -> int:
    item_id = release.items[0].id
    db.session.execute(
        update(ReleaseItem).where(ReleaseItem.id == item_id).values(download_count=release.max_downloads - 1)
    )
    db.session.commit()
    return item_id


@pytest.mark.parametrize("threads", [2, 6])
def test_parallel_downloads_of_the_last_allowed_one_let_exactly_one_through_h5(app, released, threads):
    """H5: several threads, each with its own application context (its own database session and
    connection), take the last download of one recording at the same moment: exactly one gets it, the count
    ends at the maximum, and each loser is audited as a failed download.

    On SQLite the writers queue behind the database lock; on PostgreSQL (CI) they really run together, and the
    conditional UPDATE's row lock makes the later ones see the count already taken."""
    patient, _req, release, _token = released
    release_id, patient_id, item_id = release.id, patient.account.id, _one_left(release)
    maximum = release.max_downloads
    db.session.close()  # the test's own session holds no transaction (and so no lock) while the threads run
    start = threading.Barrier(threads)
    results: list[bool] = []
    errors: list[BaseException] = []

    def download() -> None:
        try:
            with app.app_context():
                own_release = db.session.get(Release, release_id)
                item = db.session.get(ReleaseItem, item_id)
                owner = db.session.get(type(patient.account), patient_id)
                start.wait(timeout=30)
                results.append(releases.take_download(own_release, item, owner))
                db.session.remove()
        except BaseException as problem:  # reported by the main thread
            errors.append(problem)

    workers = [threading.Thread(target=download) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert errors == []
    assert sorted(results) == [False] * (threads - 1) + [True]
    assert db.session.get(ReleaseItem, item_id).download_count == maximum
    outcomes = (
        db.session.execute(select(AuditEvent.outcome).where(AuditEvent.action == "recording_downloaded"))
        .scalars()
        .all()
    )
    assert sorted(outcomes) == ["failure"] * (threads - 1) + ["success"]


def test_a_used_up_link_is_refused_as_exhausted_h5(app, released):
    """H5: when every recording on the link has been downloaded the most times allowed, the link itself is
    refused (reason exhausted); the download service says no more too."""
    patient, _req, release, token = released
    item_id = _one_left(release)
    item = db.session.get(ReleaseItem, item_id)
    assert releases.take_download(release, item, patient.account) is True
    assert releases.take_download(release, item, patient.account) is False

    assert_refused(open_link(signed_in_browser(app, patient), token), "exhausted", patient=patient)


# --- H7: key rotation -------------------------------------------------------------------------------------


def test_signing_keys_rotate_oldest_first_with_the_newest_signing_h7(app, released, monkeypatch):
    """H7: a token signed with K1 still works when the keys are "K1,K2"; new tokens are then signed with K2
    (they verify with K2 alone, not with K1); once K1 is dropped ("K2") the K1 token is refused."""
    patient, _req, release, token_k1 = released

    monkeypatch.setitem(app.config, "DOWNLOAD_SIGNING_KEYS", f"{KEY_1},{KEY_2}")
    assert releases.check_token(token_k1).reason == "ok"
    token_k2 = releases.make_token(release)
    assert URLSafeTimedSerializer(KEY_2, salt=releases.DOWNLOAD_SALT).loads(token_k2) == {"r": release.public_id}
    with pytest.raises(BadSignature):
        URLSafeTimedSerializer(KEY_1, salt=releases.DOWNLOAD_SALT).loads(token_k2)

    monkeypatch.setitem(app.config, "DOWNLOAD_SIGNING_KEYS", KEY_2)
    client = signed_in_browser(app, patient)
    assert_refused(open_link(client, token_k1), "bad_signature", patient=patient)
    assert open_link(client, token_k2).status_code == 200


# --- the same answer for every reason ---------------------------------------------------------------------


def test_without_an_opened_link_the_page_says_to_open_it_and_the_recordings_stay_closed(app, released):
    """A signed-in patient who goes straight to /downloads/ (or whose session holding the link timed out) is
    told to open the emailed link; nothing was presented, so nothing is refused or audited. Their own
    recording cannot be played or downloaded without the link: 404, audited as no_link."""
    patient, _req, release, _token = released
    client = signed_in_browser(app, patient)
    csrf = CSRF_INPUT.search(client.get("/account/change-password").get_data(as_text=True)).group(1)

    page = Pages.parse(client.get("/downloads/"))

    assert page.h1.get_text(strip=True) == "Open the download link in your email"
    assert page.find("audio") is None and refusal_reasons() == []
    recording_id = release.items[0].recording.public_id
    played = client.get(f"/downloads/recordings/{recording_id}/play")
    pressed = client.post(
        f"/downloads/recordings/{recording_id}",
        data={"csrf_token": csrf},
        headers={"Referer": "https://localhost/downloads/"},
    )
    for response in (played, pressed):
        assert response.status_code == 404 and b"RIFF" not in response.get_data()
    assert refusal_reasons() == ["no_link", "no_link"]
    db.session.refresh(release.items[0])
    assert release.items[0].download_count == 0


def test_every_reason_gets_the_same_status_heading_and_advice(app, released):
    """H1-H6: a forged link and the patient's own revoked link look the same: one status, one heading, the
    same advice (sign in and ask for a new link, or phone). Only the patient's own link adds the way back to
    that request's page."""
    patient, req, _release, token = released
    client = signed_in_browser(app, patient)
    forged = assert_refused(open_link(client, token[:-2] + "xx"), "bad_signature")
    staff = make_staff(email="revoker@practice.example", name="Rae Voker", role="admin").account
    releases.revoke_release(staff, req, "Wrong patient's recording attached", reissue=False)
    revoked = assert_refused(open_link(client, token), "revoked")

    assert forged.h1 == revoked.h1 and forged.title == revoked.title
    assert forged.main.find_all("p")[0] == revoked.main.find_all("p")[0]
    assert revoked.main.find("a", href=f"/requests/{req.reference}") is not None
    assert forged.main.find("a", href=f"/requests/{req.reference}") is None
