"""Releasing recordings to the patient, through the service (DESIGN §6 steps 2-4; SECURITY G3, H1-H8, H5, H6,
H11, L1).

Preparing needs recordings and a verified patient with an account; approving needs an admin who did not
prepare it (four eyes) and, when the preparer is not a clinician, a recorded clinical review. Approval makes
the link live for RELEASE_LINK_DAYS and emails it. `check_token` decides whether a link works and says exactly
why not; `take_download` counts each download atomically.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from core.extensions import db
from core.models.accounts import Patient
from core.models.audit import AuditEvent
from core.models.email import OutboundEmail
from core.models.requests import Release, ReleaseItem
from core.services import accounts, releases
from core.services import requests as service
from core.services.recordings import remove_recording
from core.services.releases import (
    DOWNLOAD_SALT,
    ClinicalReview,
    approve_release,
    check_token,
    decline_release,
    prepare_release,
    revoke_release,
    take_download,
)
from core.services.requests import RequestError
from tests.accounts_support import emails_to, make_staff
from tests.core.test_request_lifecycle import (
    DESCRIPTION,
    Staffing,
    attach_sample,
    audit_events,
    count,
    exactly,
    fresh,
    make_people,
    offline,
    submit,
    use_recordings_dir,
)

NOW = datetime(2026, 9, 21, 9, 0, 0, tzinfo=UTC)
READY_SUBJECT = "Your call recordings are ready"


@pytest.fixture
def people(app, tmp_path, monkeypatch) -> Staffing:
    use_recordings_dir(app, tmp_path, monkeypatch)
    return make_people()


@pytest.fixture
def req(people):
    """A request in progress with two recordings attached."""
    req = submit(people.patient)
    attach_sample(people.staff, req, "wav")
    attach_sample(people.staff, req, "mp3")
    return fresh(req)


def token_of(link: str) -> str:
    assert link.startswith("https://localhost/downloads/"), link
    return link.rsplit("/", 1)[1]


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def ready_emails(patient: Patient) -> list[OutboundEmail]:
    return [m for m in emails_to(patient.email) if m.subject.startswith(READY_SUBJECT)]


def released(people: Staffing, req) -> tuple[Release, str]:
    """Prepare (by a non-clinician) and approve (by the clinician admin) the request's release."""
    prepare_release(people.staff, req)
    link = approve_release(people.admin, fresh(req), people.review())
    return releases.live_release(fresh(req)), token_of(link)


# ---------------------------------------------------------------------------------------------------------
# Preparing
# ---------------------------------------------------------------------------------------------------------


def test_preparing_needs_at_least_one_attached_recording(people):
    req = submit(people.patient)
    service.start_work(people.staff, req)
    with pytest.raises(RequestError, match=exactly("Attach at least one recording before preparing a release.")):
        prepare_release(people.staff, fresh(req))

    recording = attach_sample(people.staff, req)
    remove_recording(people.staff, fresh(req), recording, "Wrong call")
    with pytest.raises(RequestError, match=exactly("Attach at least one recording before preparing a release.")):
        prepare_release(people.staff, fresh(req))
    assert fresh(req).status == "in_progress"
    assert count(Release) == 0


def test_preparing_needs_a_patient_account_to_send_the_link_to(people):
    req = service.log_offline_request(people.staff, offline(received_on=service.practice_today()))
    service.start_work(people.staff, req)
    attach_sample(people.staff, req)

    with pytest.raises(RequestError) as refused:
        prepare_release(people.staff, fresh(req))

    assert str(refused.value).startswith("This request is not linked to a patient account")
    assert fresh(req).status == "in_progress"
    assert count(Release) == 0


def test_preparing_needs_a_verified_patient(people):
    today = service.practice_today()
    req = service.log_offline_request(
        people.staff, offline(patient=people.unverified, received_on=today, identity_confirmed_on=today)
    )
    service.start_work(people.staff, req)
    attach_sample(people.staff, req)

    with pytest.raises(RequestError, match=exactly("The patient's identity has not been confirmed.")):
        prepare_release(people.staff, fresh(req))
    assert fresh(req).status == "in_progress"
    assert count(Release) == 0


def test_preparing_puts_every_attached_recording_on_the_release(people, req):
    release = prepare_release(people.staff, req)

    assert fresh(req).status == "ready_for_approval"
    assert releases.pending_release(fresh(req)).id == release.id
    assert sorted(item.recording.extension for item in release.items) == ["mp3", "wav"]
    assert all(item.download_count == 0 for item in release.items)
    assert release.max_downloads == 3
    assert release.approved_at is None and release.expires_at is None
    assert check_token(releases.make_token(release)).reason == "not_approved"
    assert ready_emails(people.patient) == []


# ---------------------------------------------------------------------------------------------------------
# Approving: four eyes and the clinical review
# ---------------------------------------------------------------------------------------------------------


def test_the_admin_who_prepared_a_release_cannot_approve_it(people, req):
    prepare_release(people.admin, req)  # a clinician admin: no clinical review needed

    with pytest.raises(RequestError, match=exactly("Another admin must approve this release: you prepared it.")):
        approve_release(people.admin, fresh(req))

    assert fresh(req).status == "ready_for_approval"
    assert releases.pending_release(fresh(req)).approved_at is None
    assert ready_emails(people.patient) == []
    approve_release(people.second_admin, fresh(req))
    assert fresh(req).status == "released"


def test_with_four_eyes_switched_off_the_preparer_may_approve(app, people, req, monkeypatch):
    monkeypatch.setitem(app.config, "RELEASE_FOUR_EYES", False)
    prepare_release(people.admin, req)
    approve_release(people.admin, fresh(req))
    assert fresh(req).status == "released"


def test_staff_without_the_admin_role_cannot_approve(people, req):
    clinician = make_staff(email="nurse@practice.example", name="Nia Nurse").account
    clinician.is_clinician = True
    db.session.commit()
    prepare_release(people.staff, req)

    for actor in (clinician, people.staff):
        with pytest.raises(RequestError, match=exactly("Only an admin can approve a release.")):
            approve_release(actor, fresh(req), ClinicalReview(clinician, "Fine to release"))

    assert fresh(req).status == "ready_for_approval"
    assert ready_emails(people.patient) == []


def test_a_release_prepared_by_a_non_clinician_needs_a_clinicians_review_with_an_outcome(people, req):
    release = prepare_release(people.staff, req)
    assert releases.clinical_review_needed(release) is True

    attempts = [
        (None, "Select the clinician who reviewed the recordings."),
        (ClinicalReview(None, "Fine"), "Select the clinician who reviewed the recordings."),
        (ClinicalReview(people.second_admin, "Fine"), "Select the clinician who reviewed the recordings."),
        (ClinicalReview(people.admin, "   "), "Enter the outcome of the clinical review."),
    ]
    for review, message in attempts:
        with pytest.raises(RequestError) as refused:
            approve_release(people.second_admin, fresh(req), review)
        assert str(refused.value) == message
        assert fresh(req).status == "ready_for_approval"

    approve_release(people.second_admin, fresh(req), ClinicalReview(people.admin, " No harm in release. "))

    release = db.session.get(Release, release.id)
    assert release.clinical_review_by_id == people.admin.id
    assert release.clinical_review_outcome == "No harm in release."
    assert release.clinical_review_at is not None
    assert release.approved_by_id == people.second_admin.id
    [event] = audit_events("release_approved", release.public_id)
    details = json.loads(event.details)
    assert details["clinical_review_by"] == people.admin.public_id
    assert details["prepared_by"] == people.staff.public_id


def test_a_release_prepared_by_a_clinician_needs_no_separate_review(people, req):
    release = prepare_release(people.admin, req)
    assert releases.clinical_review_needed(release) is False
    approve_release(people.second_admin, fresh(req))
    assert db.session.get(Release, release.id).clinical_review_by_id is None


def test_approval_makes_the_link_live_for_the_configured_days_and_emails_it_without_details(
    app, people, req, monkeypatch
):
    monkeypatch.setitem(app.config, "RELEASE_LINK_DAYS", 14)
    with time_machine.travel(NOW, tick=False):
        prepare_release(people.staff, req)
        link = approve_release(people.admin, fresh(req), people.review())

    release = releases.live_release(fresh(req), now=NOW)
    assert fresh(req).status == "released"
    assert aware(release.approved_at) == NOW
    assert aware(release.expires_at) == NOW + timedelta(days=14)
    assert release.approved_by_id == people.admin.id
    [message] = ready_emails(people.patient)
    assert message.subject == f"{READY_SUBJECT} ({req.reference})"
    assert link in message.body_text
    assert "The link works until Monday 5 October 2026." in message.body_text
    assert "Each recording can be downloaded 3 times." in message.body_text
    for private in (DESCRIPTION, "call-sample", "07700 900123", people.patient.nhs_number):
        assert private not in message.body_text
    token = token_of(link)
    assert check_token(token, now=NOW).reason == "ok"
    # SECURITY H8: the readable payload carries only the release's random id.
    assert releases._serializer().loads(token) == {"r": release.public_id}


# ---------------------------------------------------------------------------------------------------------
# Declining, revoking, re-issuing
# ---------------------------------------------------------------------------------------------------------


def test_declining_sends_the_release_back_to_be_worked_on(people, req):
    first = prepare_release(people.staff, req)

    decline_release(people.admin, fresh(req), "The second recording is another patient's call")

    assert fresh(req).status == "in_progress"
    assert db.session.get(Release, first.id).declined_at is not None
    assert releases.pending_release(fresh(req)) is None
    assert check_token(releases.make_token(first)).reason == "not_approved"
    note = service.timeline(fresh(req), for_patient=False)[-1]
    assert (note.summary, note.visible_to_patient) == ("Release sent back", False)
    assert "another patient" not in "\n".join(e.body or "" for e in service.timeline(fresh(req), for_patient=True))
    second = prepare_release(people.staff, fresh(req))
    assert second.id != first.id
    assert releases.pending_release(fresh(req)).id == second.id


def test_revoking_with_reissue_stops_the_old_link_and_sends_a_fresh_one_h6(people, req):
    with time_machine.travel(NOW, tick=False) as traveller:
        old, old_token = released(people, req)
        old_item = old.items[0]
        assert take_download(old, old_item, people.patient) is True
        traveller.move_to(NOW + timedelta(days=2))

        new_link = revoke_release(people.second_admin, fresh(req), "Sent while the address was wrong", reissue=True)
        later = NOW + timedelta(days=2)

        new_token = token_of(new_link)
        assert check_token(old_token).reason == "revoked"
        current = check_token(new_token)
        assert current.reason == "ok"

    old = db.session.get(Release, old.id)
    new = current.release
    assert new.id != old.id
    assert aware(old.revoked_at) == later
    assert (old.revoked_by_id, old.revoke_reason) == (people.second_admin.id, "Sent while the address was wrong")
    assert sorted(i.recording_id for i in new.items) == sorted(i.recording_id for i in old.items)
    assert [i.download_count for i in new.items] == [0, 0]
    assert sorted(i.download_count for i in old.items) == [0, 1]
    assert aware(new.expires_at) == later + timedelta(days=7)
    assert new.approved_by_id == people.second_admin.id
    assert new.clinical_review_by_id == people.admin.id  # the review of the same recordings carries over
    assert fresh(req).status == "released"
    assert releases.live_release(fresh(req), now=later).id == new.id
    messages = ready_emails(people.patient)
    assert len(messages) == 2
    assert new_link in messages[1].body_text and old_token not in messages[1].body_text
    assert [json.loads(e.details)["reissue"] for e in audit_events("release_revoked", old.public_id)] == [True]
    [reissued] = audit_events("release_reissued", new.public_id)
    assert json.loads(reissued.details)["replaces"] == old.public_id
    with time_machine.travel(later, tick=False):
        assert take_download(db.session.get(Release, old.id), old_item, people.patient) is False


def test_revoking_without_reissue_returns_the_request_to_being_worked_on(people, req):
    _, token = released(people, req)

    assert revoke_release(people.admin, fresh(req), "Wrong file attached", reissue=False) is None

    assert fresh(req).status == "in_progress"
    assert check_token(token).reason == "revoked"
    assert releases.live_release(fresh(req)) is None
    assert len(ready_emails(people.patient)) == 1


def test_revoking_needs_a_reason(people, req):
    _, token = released(people, req)
    with pytest.raises(RequestError, match=exactly("Enter the reason for revoking the link.")):
        revoke_release(people.admin, fresh(req), "  ", reissue=True)
    assert check_token(token).reason == "ok"


def test_deactivating_the_patient_revokes_their_live_links_h6(people, req):
    release, token = released(people, req)

    accounts.set_account_active(people.admin, people.patient, False)

    release = db.session.get(Release, release.id)
    assert release.revoked_at is not None
    assert release.revoked_by_id == people.admin.id
    assert release.revoke_reason == "The patient's account was deactivated."
    assert check_token(token).reason == "revoked"
    assert take_download(release, release.items[0], people.patient) is False


# ---------------------------------------------------------------------------------------------------------
# Counting downloads
# ---------------------------------------------------------------------------------------------------------


def test_each_recording_downloads_up_to_the_limit_then_no_more_h5(people, req):
    release, token = released(people, req)
    first, second = release.items

    results = [take_download(db.session.get(Release, release.id), first, people.patient) for _ in range(4)]

    assert results == [True, True, True, False]
    assert db.session.get(ReleaseItem, first.id).download_count == 3
    assert db.session.get(ReleaseItem, second.id).download_count == 0
    assert check_token(token).reason == "ok"  # the other recording still has downloads left
    downloads = audit_events("recording_downloaded", first.recording.public_id)
    assert [e.outcome for e in downloads] == ["success", "success", "success", "failure"]
    assert json.loads(downloads[-1].details)["reason"] == "no_downloads_left"
    assert json.loads(downloads[0].details) == {
        "release": release.public_id,
        "request": req.reference,
        "bytes": first.recording.size_bytes,
        "sha256": first.recording.sha256,
    }
    assert [take_download(db.session.get(Release, release.id), second, people.patient) for _ in range(3)] == [True] * 3
    assert check_token(token).reason == "exhausted"


def test_parallel_downloads_never_take_more_than_the_limit_h5(app, people, req):
    release, _ = released(people, req)
    release_id, item_id, patient_id = release.id, release.items[0].id, people.patient.id
    outcomes: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def download() -> None:
        try:
            with app.app_context():
                mine = db.session.get(Release, release_id)
                item = db.session.get(ReleaseItem, item_id)
                patient = db.session.get(Patient, patient_id)
                start.wait(timeout=30)
                outcomes.append(take_download(mine, item, patient))
        except BaseException as exc:  # hand failures in the threads to the test
            errors.append(exc)

    threads = [threading.Thread(target=download) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(outcomes) == [False, False, False, True, True, True]
    db.session.expire_all()
    assert db.session.get(ReleaseItem, item_id).download_count == 3


def test_a_download_after_the_link_expired_is_not_counted(people, req):
    with time_machine.travel(NOW, tick=False):
        release, _ = released(people, req)
    item = release.items[0]
    after = NOW + timedelta(days=7, seconds=1)
    assert take_download(db.session.get(Release, release.id), item, people.patient, now=after) is False
    assert db.session.get(ReleaseItem, item.id).download_count == 0


# ---------------------------------------------------------------------------------------------------------
# Why a link does not work
# ---------------------------------------------------------------------------------------------------------


def sign(payload, *, key: str | None = None, salt: str = DOWNLOAD_SALT) -> str:
    from flask import current_app

    return URLSafeTimedSerializer(key or current_app.config["DOWNLOAD_SIGNING_KEYS"], salt=salt).dumps(payload)


def test_check_token_gives_the_exact_reason_a_link_does_not_work_h1_h2_h4_h11(people, req):
    with time_machine.travel(NOW, tick=False):
        release, token = released(people, req)
        payload, timestamp, signature = token.rsplit(".", 2)
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        cases = {
            "flipped signature": (f"{payload}.{timestamp}.{flipped}", "bad_signature"),
            "another key": (sign({"r": release.public_id}, key="another-key-" + "x" * 40), "bad_signature"),
            "another purpose's salt": (sign({"r": release.public_id}, salt="portal-reset-password"), "bad_signature"),
            "not a token": ("../../etc/passwd", "bad_signature"),
            "path in the payload": (sign({"r": "../../etc"}), "bad_payload"),
            "wrong type in the payload": (sign({"r": 12345}), "bad_payload"),
            "a list payload": (sign([release.public_id]), "bad_payload"),
            "unknown release": (sign({"r": "0" * 32}), "unknown_release"),
            "the real link": (token, "ok"),
        }
        audits, emails = count(AuditEvent), count(OutboundEmail)
        reasons = {name: check_token(value).reason for name, (value, _) in cases.items()}

        assert reasons == {name: reason for name, (_, reason) in cases.items()}
        assert (count(AuditEvent), count(OutboundEmail)) == (audits, emails)  # checking changes nothing

    assert check_token(token, now=NOW + timedelta(days=7)).reason == "expired"
    with time_machine.travel(NOW + timedelta(days=7, seconds=1), tick=False):
        assert check_token(token).reason == "expired"
    with time_machine.travel(NOW + timedelta(days=92), tick=False):
        assert check_token(token).reason == "signature_expired"


def test_a_link_of_a_deactivated_account_does_not_work(people, req):
    _, token = released(people, req)
    people.patient.is_active = False  # set directly: the service would also revoke the link
    db.session.commit()
    assert check_token(token).reason == "account_inactive"


def test_a_refused_link_is_audited_with_its_reason(people, req):
    release, token = released(people, req)
    revoke_release(people.admin, fresh(req), "Wrong file", reissue=False)

    result = check_token(token)
    releases.record_link_refused(result, people.patient)

    [event] = db.session.execute(select(AuditEvent).where(AuditEvent.action == "download_link_refused")).scalars()
    assert (event.actor_type, event.actor_id) == ("patient", people.patient.public_id)
    assert (event.object_id, event.outcome) == (release.public_id, "failure")
    assert json.loads(event.details) == {"reason": "revoked"}
    assert token not in event.details
