"""A request for call recordings from start to finish, in Chromium, with every email sent through a real SMTP
server (aiosmtpd on loopback) and read from what that server received.

A patient registers (matched to the practice register, so verified at once) and asks for their recordings;
a member of staff, in a browser of their own, attaches a WAV recording and puts it forward (each action on
its own page, linked from the request's "What to do next"); an admin, in a third browser, listens on the
approval page, records the clinical review and approves; the patient opens the link from the email they
received, plays the recording in the page and downloads it, and the downloaded bytes hash to the SHA-256 of
the file staff uploaded. axe-core checks every page of the journey, and no page breaks the Content Security
Policy or fetches anything from another origin.

The axe results are written to test-artifacts/axe-results-request-journey.json.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.extensions import db
from core.models.accounts import RegisterEntry
from core.models.audit import AuditEvent
from core.models.requests import Recording, RecordingRequest
from core.services.email import deliver_pending
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import (
    PASSWORD,
    fill_registration_form,
    open_emailed_link,
    set_up_authenticator,
    sign_in_as,
)
from tests.smtp_support import start_server

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-request-journey.json")
WAV = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "call-sample.wav"
LINK = re.compile(r"https://localhost(/\S+)")


def deliver_and_read_link(inbox, address: str, *, subject_contains: str) -> tuple[str, str]:
    """Send the outbox through the SMTP server, then take the newest message to `address` whose subject
    matches, as received. Returns (the link's path, the body). The database is let go afterwards."""
    db.session.rollback()
    try:
        deliver_pending()
    finally:
        db.session.rollback()
    received = [
        message for message in inbox.messages if message["To"] == address and subject_contains in message["Subject"]
    ]
    assert received, f"no email to {address} about {subject_contains!r}: {[m['Subject'] for m in inbox.messages]}"
    body = received[-1].get_payload(decode=True).decode()
    match = LINK.search(body)
    assert match, body
    return match.group(1), body


def test_a_patient_asks_staff_attach_and_release_and_the_patient_plays_and_downloads(
    app, journeys, smtp_port, monkeypatch, tmp_path
):
    """Issue 4's whole journey; SECURITY H9, H10, H12, H13 and G9 in a real browser."""
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    controller, inbox = start_server(smtp_port)
    try:
        _journey(app, journeys, inbox)
    finally:
        controller.stop()


def _journey(app, journeys, inbox) -> None:
    email = "ada.requests@example.org"
    db.session.add(
        RegisterEntry(
            nhs_number="9434765919",
            date_of_birth=date(1955, 12, 10),
            given_name="Ada",
            family_name="Lovelace",
            postcode="SE28 8BE",
            email=email,
        )
    )
    db.session.commit()
    staff = make_staff(email="sam.clerk@practice.example", name="Sam Clerk", role="staff")
    admin = make_staff(email="alex.admin@practice.example", name="Alex Admin", role="admin")
    admin.account.is_clinician = True
    db.session.commit()
    db.session.rollback()  # let go of the database: the live server writes next

    # The patient registers, confirms their email from the message the SMTP server received, sets up an app.
    patient = journeys("patient")
    page = patient.page
    patient.goto("/account/register")
    patient.check("register", "Create an account")
    fill_registration_form(page, email=email)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(patient.url_pattern("/account/register/check-your-email"))
    confirm_path, _ = deliver_and_read_link(inbox, email, subject_contains="Confirm")
    open_emailed_link(patient, confirm_path, "/account/confirm-email")
    patient.check("confirm your email address", "Confirm your email address")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    requests_before = len(patient.requests)
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page).to_have_url(patient.url_pattern("/account/authenticator/set-up"))
    set_up_authenticator(patient, requests_before=requests_before)
    page.get_by_role("link", name="I have saved my recovery codes").click()
    expect(page).to_have_url(patient.url_pattern("/account"))
    patient.check("your account", "Your account")

    # ... and asks for the recordings of a call.
    page.get_by_role("link", name="Ask for a copy of your call recordings").first.click()
    expect(page).to_have_url(patient.url_pattern("/requests/new"))
    patient.check("request form", "Ask for a copy of your call recordings")
    call_date = page.get_by_role("group", name="Date of the call")
    call_date.get_by_label("Day").fill("2")
    call_date.get_by_label("Month").fill("11")
    call_date.get_by_label("Year").fill("2026")
    page.get_by_label("Approximate time of the call (optional)").fill("morning")
    page.get_by_label("Describe the calls").fill("I rang about my blood test results.")
    page.get_by_label("Download the recordings").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(patient.url_pattern("/requests/new/check"))
    patient.check("check your request", "Check your request")
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("h1")).to_have_text("Request sent")
    patient.check("request sent", "Request sent")
    reference = re.search(r"CR-\d{4}-\d{5}", page.locator("main").inner_text()).group(0)
    _, acknowledgement = deliver_and_read_link(inbox, email, subject_contains="received your request")
    assert reference in acknowledgement and "blood test" not in acknowledgement

    # A member of staff finds the request, attaches the recording and puts it forward for approval.
    clerk = journeys("staff")
    clerk_page = clerk.page
    sign_in_as(clerk, staff)
    expect(clerk_page).to_have_url(clerk.url_pattern("/admin/"))
    clerk.check("admin home", "Call recordings admin")
    clerk_page.locator("header").get_by_role("link", name="Requests", exact=True).click()
    clerk.check("request queue", "Requests for call recordings")
    clerk_page.get_by_role("link", name=reference).click()
    clerk.check("request", f"Request {reference}")
    # Each action is a page of its own, linked from "What to do next" below the recordings and the timeline.
    headings = clerk_page.locator("main h2").all_inner_texts()
    assert headings.index("Recordings") < headings.index("Timeline") < headings.index("What to do next")
    clerk_page.locator("#next-steps").get_by_role("link", name="Attach a recording").click()
    expect(clerk_page).to_have_url(clerk.url_pattern(f"/admin/requests/{reference}/upload"))
    clerk.check("attach a recording", "Attach a recording")
    # The design system's script turns the file input into a drop zone button; the input itself takes the file.
    clerk_page.locator("input[type=file][name=recording]").set_input_files(str(WAV))
    clerk_page.get_by_label("Patient called the practice").check()
    clerk_page.get_by_role("button", name="Upload the recording").click()
    expect(clerk_page.locator(".nhsuk-error-summary")).to_have_count(0)
    expect(clerk_page).to_have_url(clerk.url_pattern(f"/admin/requests/{reference}"))
    expect(clerk_page.locator(".nhsuk-notification-banner")).to_contain_text("call-sample.wav has been attached")
    clerk.check("request with a recording", f"Request {reference}")
    expect(clerk_page.locator("#recordings-table audio")).to_have_count(1)
    clerk_page.locator("#next-steps").get_by_role("link", name="Put the recordings forward for approval").click()
    clerk.check("put forward for approval", "Put the recordings forward for approval")
    clerk_page.get_by_role("button", name="Put the recordings forward for approval").click()
    expect(clerk_page.locator(".nhsuk-notification-banner")).to_contain_text("ready for an admin to check")
    clerk.check("request ready for approval", f"Request {reference}")
    expect(clerk_page.locator("main")).to_contain_text("Waiting for an admin to check and approve the release")

    # An admin, who did not prepare it, listens on the approval page, records the clinical review and approves.
    approver = journeys("admin")
    approver_page = approver.page
    sign_in_as(approver, admin)
    expect(approver_page).to_have_url(approver.url_pattern("/admin/"))
    approver.check("admin home", "Call recordings admin")
    approver.goto(f"/admin/requests/{reference}")
    approver.check("request to approve", f"Request {reference}")
    approver_page.locator("#next-steps").get_by_role("link", name="Check and approve the release").click()
    approver.check("check and approve the release", "Check and approve the release")
    # "Listen to the recordings above": the players are above the form on this page.
    player_top = approver_page.locator("main audio").first.bounding_box()["y"]
    text_top = approver_page.get_by_text("Listen to the recordings above").bounding_box()["y"]
    assert player_top < text_top
    approver_page.get_by_role("button", name="Approve and email the link").click()
    expect(approver_page.locator(".nhsuk-error-summary")).to_be_visible()
    approver.check("approval without the clinical review", "Check and approve the release")
    approver_page.get_by_label("Clinician who reviewed the recordings").select_option(label="Alex Admin")
    approver_page.get_by_label("Outcome of the clinical review").fill("Nothing to withhold.")
    approver_page.get_by_role("button", name="Approve and email the link").click()
    expect(approver_page.locator(".nhsuk-error-summary")).to_have_count(0)
    expect(approver_page.locator(".nhsuk-notification-banner")).to_contain_text("The release is approved")
    approver.check("request released", f"Request {reference}")

    # The patient opens the link from the email the SMTP server received, plays and downloads the recording.
    download_path, body = deliver_and_read_link(inbox, email, subject_contains="recordings are ready")
    assert download_path.startswith("/downloads/") and "blood test" not in body
    open_emailed_link(patient, download_path, "/downloads/")
    patient.check("your call recordings", "Your call recordings")
    played = page.evaluate(
        """async () => {
            const audio = document.querySelector('audio');
            audio.muted = true;  // muted playback needs no user gesture
            await audio.play();
            await new Promise((resolve) => setTimeout(resolve, 1500));
            const reached = audio.currentTime;
            audio.pause();
            return {reached, duration: audio.duration};
        }"""
    )
    assert played["reached"] > 0.5, played
    assert abs(played["duration"] - 13.5) < 0.5, played
    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile(r"^Download")).first.click()
    download = download_info.value
    assert re.fullmatch(rf"recording-{reference}-1\.wav", download.suggested_filename)
    downloaded = Path(download.path()).read_bytes()
    uploaded_sha256 = hashlib.sha256(WAV.read_bytes()).hexdigest()
    assert hashlib.sha256(downloaded).hexdigest() == uploaded_sha256

    # The auditor's view: the stored hash is the uploaded file's, and the play and download are on record.
    db.session.rollback()
    request_id = db.session.execute(
        select(RecordingRequest.id).where(RecordingRequest.reference == reference)
    ).scalar_one()
    assert db.session.execute(select(Recording.sha256).where(Recording.request_id == request_id)).scalar_one() == (
        uploaded_sha256
    )
    actions = set(db.session.execute(select(AuditEvent.action)).scalars())
    assert {"request_submitted", "recording_attached", "release_prepared", "release_approved"} <= actions
    assert {"download_page_viewed", "recording_played", "recording_downloaded"} <= actions
    db.session.rollback()

    for person in (patient, clerk, approver):
        assert person.foreign_requests() == []
        # A response saved as a download ends the request as "aborted" for the page; nothing else may fail.
        assert [url for url in person.failed_requests if url != download.url] == []
