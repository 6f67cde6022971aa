"""The staff request page fits a screen or two in every state (issue 12): at 1280 px wide, with three
recordings and ten timeline entries, the page is at most 2,500 px tall; and every action it links to is a page
of its own that passes axe-core.

Each request is put into its state through the real services; an admin (not a clinician, so the clinical
review form shows where it applies) opens each page in Chromium. The heights are written to
test-artifacts/request-page-heights.json before anything is asserted, so a failing run still shows them all.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.extensions import db
from core.services import recordings, releases
from core.services import requests as requests_service
from tests.accounts_support import make_patient, make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import sign_in_as

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-request-page-heights.json")
AUDIO = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
MAX_HEIGHT = 2_500
TIMELINE_ENTRIES = 10
STATES = (
    "awaiting_identity",
    "submitted",
    "in_progress",
    "clarification_requested",
    "ready_for_approval",
    "released",
    "completed",
    "no_recordings_found",
    "refused",
)


def _request_in(status: str, patient, clerk, doctor):
    """A request in `status` with three recordings (where its status lets it have any: not before work
    starts) and ten timeline entries (notes make up the number)."""
    if status == "awaiting_identity":
        offline = requests_service.OfflineRequest(
            received_via="letter",
            received_on=requests_service.practice_today() - timedelta(days=2),
            details=requests_service.CallDetails(
                calls_from=requests_service.practice_today() - timedelta(days=9),
                calls_to=requests_service.practice_today() - timedelta(days=9),
                description="A call about my prescription",
            ),
            requester_name="Bea Caller",
            requester_contact="12 High Street, Anytown",
        )
        req = requests_service.log_offline_request(clerk, offline)
    else:
        details = requests_service.CallDetails(
            calls_from=requests_service.practice_today() - timedelta(days=9),
            calls_to=requests_service.practice_today() - timedelta(days=2),
            approximate_time="About 9am",
            phone_number="07700 900461",
            spoke_to="Nurse Patel",
            description="I rang about my test results and my repeat prescription.",
        )
        req = requests_service.submit_request(patient, details, submission_key=uuid.uuid4().hex)
        if status == "submitted":  # attaching a recording starts work, so a received request has none
            return _with_timeline(req, clerk)
        requests_service.start_work(clerk, req)
        for position, extension in enumerate(("wav", "mp3", "ogg"), start=1):
            with (AUDIO / f"call-sample.{extension}").open("rb") as stream:
                recordings.attach_recording(
                    clerk, req, stream, recordings.RecordingDetails(original_name=f"call-{position}.{extension}")
                )
        if status == "clarification_requested":
            requests_service.ask_for_clarification(clerk, req, "Which number did you ring from?")
        if status in ("ready_for_approval", "released", "completed"):
            releases.prepare_release(clerk, req)
        if status in ("released", "completed"):
            releases.approve_release(doctor, req, releases.ClinicalReview(doctor, "Nothing to withhold"))
        if status == "completed":
            requests_service.close(clerk, req)
        if status == "no_recordings_found":
            requests_service.mark_no_recordings(clerk, req, "Calls older than 90 days are deleted")
        if status == "refused":
            requests_service.refuse(clerk, req, "The exemption for third-party data applies", partly=False)
    assert req.status == status, (req.status, status)
    return _with_timeline(req, clerk)


def _with_timeline(req, clerk) -> str:
    while len(requests_service.timeline(req, for_patient=False)) < TIMELINE_ENTRIES:
        requests_service.add_note(clerk, req, "Checked the call logs for the dates given; nothing more yet.")
    return req.reference


def _requests_in_every_state(app, tmp_path, monkeypatch):
    """({status: reference}, the admin who opens them)."""
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    patient = make_patient(verified=True).account
    clerk = make_staff(email="clerk@practice.example", name="Sam Clerk").account
    doctor = make_staff(email="doctor@practice.example", name="Dr Dee Doctor", role="admin").account
    doctor.is_clinician = True
    admin = make_staff(email="alex.admin@practice.example", name="Alex Admin", role="admin")
    db.session.commit()
    references = {status: _request_in(status, patient, clerk, doctor) for status in STATES}
    db.session.commit()
    db.session.rollback()  # let go of the database: the live server reads next
    return references, admin


def test_the_request_page_is_at_most_2500_px_tall_in_every_state_at_1280_px(
    app, journeys, artifacts_dir, tmp_path, monkeypatch
):
    references, admin = _requests_in_every_state(app, tmp_path, monkeypatch)
    journey = journeys("admin")
    sign_in_as(journey, admin)
    heights: dict[str, int] = {}
    for status, reference in references.items():
        journey.goto(f"/admin/requests/{reference}")
        heights[status] = journey.page.evaluate("document.documentElement.scrollHeight")
        journey.check(f"request {status.replace('_', ' ')}", f"Request {reference}")
    (artifacts_dir / "request-page-heights.json").write_text(json.dumps(heights, indent=2))
    print("\nRequest page heights at 1280 px:", json.dumps(heights, indent=2))

    too_tall = {status: height for status, height in heights.items() if height > MAX_HEIGHT}
    assert too_tall == {}, too_tall


ACTION_HEADINGS = {
    "identity": "Confirm their identity",
    "start": "Start work on this request",
    "upload": "Attach a recording",
    "release/prepare": "Put the recordings forward for approval",
    "release/approve": "Check and approve the release",
    "release/decline": "Send the release back",
    "reply": "Record the patient's answer",
    "clarify": "Ask the patient for more information",
    "extend": "Extend the time limit",
    "close": "Complete the request",
    "no-recordings": "Close the request: no recordings found",
    "release/revoke": "Revoke the download link",
    "refuse": "Refuse all or part of the request",
    "assign": "Assign the request",
    "notes": "Add an internal note",
    "recordings/<id>/remove": "Remove call-1.wav",
}


def test_every_action_page_the_request_page_links_to_passes_axe_core(app, journeys, tmp_path, monkeypatch):
    """Each action page once (the first state that offers it), reached by its link under "What to do next",
    checked by axe-core; then its empty form is sent, and the page with its error summary is checked too."""
    references, admin = _requests_in_every_state(app, tmp_path, monkeypatch)
    journey = journeys("admin-actions")
    page = journey.page
    sign_in_as(journey, admin)
    checked: set[str] = set()
    for status, reference in references.items():
        journey.goto(f"/admin/requests/{reference}")
        prefix = f"/admin/requests/{reference}/"
        links = page.locator("#next-steps a, #recordings-table a[href$='/remove']")
        hrefs = links.evaluate_all("links => links.map(link => link.getAttribute('href'))")
        for href in hrefs:
            action = href.removeprefix(prefix)
            if action.startswith("recordings/"):
                action = "recordings/<id>/remove"
            if action in checked:
                continue
            checked.add(action)
            journey.goto(href)
            label = f"{action.replace('/', ' ')} ({status.replace('_', ' ')})"
            journey.check(label, ACTION_HEADINGS[action])
            if action in ("start", "release/prepare", "assign"):
                continue  # sent as it is, the form would act (assign: to nobody)
            page.locator("#action-form button[type=submit]").first.click()
            expect(page.locator(".nhsuk-error-summary")).to_be_visible()
            journey.check(f"{label} with errors", ACTION_HEADINGS[action])
    assert checked == set(ACTION_HEADINGS)
