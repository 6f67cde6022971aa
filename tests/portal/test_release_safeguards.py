"""Safeguards around a live release that a security review of the first version found missing, each proved
against the real services and pages:

- a released request leaves "released" only by revoking its link, and a link works only while its request is
  released (or completed);
- the audio player is bound by the download allowance, and every part of a recording it is sent is audited;
- a malformed link is a clear refusal, not an error;
- the clinical reviewer must be an active clinician; four eyes holds when a link is re-issued;
- links revoked or releases declined as a side effect (deactivation, withdrawal) are audited;
- no release is prepared or approved for a deactivated patient;
- withdrawing a request needs a recent second factor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import RecordingRequest, Release
from core.services import accounts, releases
from core.services import requests as requests_service
from core.services.requests import RequestError
from tests.accounts_support import make_staff
from tests.portal.test_downloads import download, play, signed_in_at_the_page
from tests.release_support import AUDIO, SAMPLE_WAV, released_request


@pytest.fixture
def released(app, tmp_path, monkeypatch):
    return released_request(app, tmp_path, monkeypatch=monkeypatch)


def actions(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def staff_member(email: str, *, role: str = "staff", clinician: bool = False):
    member = make_staff(email=email, name=email.split("@")[0].title(), role=role).account
    member.is_clinician = clinician
    db.session.commit()
    return member


def test_start_work_cannot_take_a_released_request_back_while_its_link_is_live(app, released):
    """A released request goes back to being processed only through revoking the link: "start work" is
    refused, the status stays released, and the link still works (and can still be revoked)."""
    _patient, req, _release, token = released
    clerk = staff_member("another.clerk@practice.example")
    with pytest.raises(RequestError, match="ready to download, so that cannot be done now"):
        requests_service.start_work(clerk, req)
    db.session.expire_all()
    assert db.session.get(RecordingRequest, req.id).status == "released"
    assert releases.check_token(token).reason == "ok"


def test_a_link_stops_working_when_its_request_is_no_longer_released(app, released):
    """The row decides: a link whose request is back in progress (however it got there) does not work."""
    _patient, req, _release, token = released
    db.session.execute(
        RecordingRequest.__table__.update().where(RecordingRequest.id == req.id).values(status="in_progress")
    )
    db.session.commit()
    assert releases.check_token(token).reason == "request_not_released"


def test_a_completed_requests_link_keeps_working_until_it_expires(app, released):
    _patient, req, _release, token = released
    requests_service.close(staff_member("closer@practice.example"), req)
    assert releases.check_token(token).reason == "ok"


def test_a_link_with_a_nul_character_is_a_404(app, released):
    """A NUL character is refused for every address before any view (core.security), so it is never stored."""
    patient, _req, _release, token = released
    client, _csrf = signed_in_at_the_page(app, patient, token)
    assert client.get("/downloads/abc%00def").status_code == 404


def test_the_player_refuses_a_recording_whose_downloads_are_used_up(app, tmp_path, monkeypatch):
    """The allowance covers listening too: once a recording's last download is taken, the player gets the 410
    page for it and no bytes (even from byte 1), and the refusal is audited; the other recording on the link
    still plays, and playing counts nothing."""
    monkeypatch.setitem(app.config, "RELEASE_MAX_DOWNLOADS", 1)
    patient, _req, release, token = released_request(
        app, tmp_path, monkeypatch=monkeypatch, samples=(SAMPLE_WAV, AUDIO / "call-sample.mp3")
    )
    used, other = (item.recording.public_id for item in release.items)
    client, csrf = signed_in_at_the_page(app, patient, token)
    assert play(client, used).status_code == 200
    assert download(client, used, csrf).status_code == 200

    refused = play(client, used, headers={"Range": "bytes=1-"})
    assert refused.status_code == 410
    assert b"RIFF" not in refused.get_data() and refused.headers["Content-Type"].startswith("text/html")
    assert json.loads(actions("download_link_refused")[-1].details) == {"reason": "no_downloads_left"}
    assert play(client, other).status_code == 200
    page = client.get("/downloads/").get_data(as_text=True)
    assert page.count("<audio") == 1 and "the most this link allows" in page


@pytest.mark.parametrize("token", ["%FF", "%C3%A9t%C3%A9", "a" * 600])
def test_a_malformed_link_gets_the_clear_refusal_not_an_error(app, released, token):
    """M1/M2: a link with characters no signed token has is refused like a forged one (404 page, audited as a
    bad signature), never a 500."""
    patient, _req, _release, _token = released
    client, _csrf = signed_in_at_the_page(app, patient, _token)
    followed = client.get(f"/downloads/{token}")
    assert followed.status_code == 303
    page = client.get("/downloads/")
    assert page.status_code == 404
    assert "This download link does not work" in page.get_data(as_text=True)
    assert json.loads(actions("download_link_refused")[-1].details) == {"reason": "bad_signature"}


def test_a_deactivated_clinician_cannot_be_named_as_the_clinical_reviewer(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path))
    _patient, req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    clerk = release.prepared_by
    releases.revoke_release(staff_member("a1@practice.example", role="admin"), req, "Wrong file", reissue=False)
    releases.prepare_release(clerk, req)
    former = staff_member("former.gp@practice.example", clinician=True)
    former.is_active = False
    db.session.commit()
    approver = staff_member("approver@practice.example", role="admin")
    with pytest.raises(RequestError, match="Select the clinician"):
        releases.approve_release(approver, req, releases.ClinicalReview(former, "Fine"))
    db.session.expire_all()
    assert db.session.get(RecordingRequest, req.id).status == "ready_for_approval"


def test_four_eyes_holds_when_a_link_is_reissued(app, tmp_path, monkeypatch):
    """With four eyes on, the admin who prepared the recordings cannot send a new link for them either."""
    preparer = staff_member("preparer@practice.example", role="admin")
    _patient, req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    release.prepared_by_id = preparer.id
    db.session.commit()
    with pytest.raises(RequestError, match="Another admin must send the new link"):
        releases.revoke_release(preparer, req, "Patient lost the email", reissue=True)
    assert releases.revoke_release(
        staff_member("other.admin@practice.example", role="admin"), req, "Patient lost the email", reissue=True
    ).startswith("https://localhost/downloads/")


def test_deactivating_a_patient_revokes_their_links_on_the_record(app, released):
    """H6 and L1: each link stopped by a deactivation has its own `release_revoked` event and timeline line."""
    patient, req, release, token = released
    admin = staff_member("deactivator@practice.example", role="admin")
    accounts.set_account_active(admin, patient.account, False)
    revoked = actions("release_revoked")
    assert [(e.object_id, e.actor_id) for e in revoked] == [(release.public_id, admin.public_id)]
    assert json.loads(revoked[0].details)["reason"] == "account_deactivated"
    assert releases.check_token(token).reason == "revoked"
    summaries = [event.summary for event in requests_service.timeline(req, for_patient=False)]
    assert summaries[-1] == "Download link revoked"


def test_withdrawing_declines_a_release_waiting_for_approval_on_the_record(app, tmp_path, monkeypatch):
    patient, req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    releases.revoke_release(staff_member("a2@practice.example", role="admin"), req, "Redo", reissue=False)
    pending = releases.prepare_release(release.prepared_by, req)
    requests_service.withdraw(patient.account, req)
    db.session.expire_all()
    assert db.session.get(Release, pending.id).declined_at is not None
    declined = actions("release_declined")
    assert [json.loads(e.details) for e in declined] == [{"release": pending.public_id, "reason": "request_withdrawn"}]


def test_no_release_is_prepared_or_approved_for_a_deactivated_patient(app, tmp_path, monkeypatch):
    patient, req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    admin = staff_member("a3@practice.example", role="admin")
    releases.revoke_release(admin, req, "Redo", reissue=False)
    releases.prepare_release(release.prepared_by, req)
    accounts.set_account_active(admin, patient.account, False)
    with pytest.raises(RequestError, match="deactivated"):
        releases.approve_release(admin, req, releases.ClinicalReview(admin, "Fine"))
    releases.decline_release(admin, req, "Account closed")
    with pytest.raises(RequestError, match="deactivated"):
        releases.prepare_release(release.prepared_by, req)


def test_withdrawing_needs_a_second_factor_from_the_last_15_minutes(app, released):
    """DESIGN §5: withdrawing ends a request the law gives the patient, so it is a sensitive action: with a
    second factor older than 15 minutes, both the page and the POST send the patient to confirm it is them,
    and the request stays open."""
    patient, _req, _release, token = released
    details = requests_service.CallDetails(calls_from=_req.calls_from, calls_to=_req.calls_to, description="x")
    req = requests_service.submit_request(patient.account, details, submission_key="withdraw-me")
    client, csrf = signed_in_at_the_page(app, patient, token)
    path = f"/requests/{req.reference}/withdraw"
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16)):
        page = client.get(path)
        sent = client.post(path, data={"csrf_token": csrf}, headers={"Referer": f"https://localhost{path}"})
    for response in (page, sent):
        assert response.status_code == 302 and "/account/confirm-it-is-you" in response.headers["Location"]
    status = db.session.execute(select(RecordingRequest.status).where(RecordingRequest.id == req.id)).scalar_one()
    assert status == "submitted"
