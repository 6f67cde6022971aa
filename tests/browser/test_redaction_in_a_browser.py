"""Withholding two parts of a recording, from marking to the patient's download, in Chromium (issue 15).

A member of staff opens the sample call's redaction page, marks one part by dragging across the waveform and
another by typing its times, and produces the redacted copy (the worker's step runs here, in the test, as
`flask worker` would run it). The page follows the copy's progress and shows it when ready; the copy, fetched
as the page's player fetches it, is decoded here with PyAV and both parts are silent in it, though the original
has speech in both. The member of staff puts it forward, an admin who listens to the copy on the approval page
approves it with the clinical review (four eyes), and the patient downloads it: decoded again, both parts are
still silent, and its SHA-256 is the copy's. axe-core checks the redaction page (with the waveform drawn and
the parts shaded), and no page breaks the Content Security Policy or asks another origin for anything.

The axe results are written to test-artifacts/axe-results-redaction.json.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from playwright.sync_api import expect

from core.extensions import db
from core.services import recordings, redaction
from core.services import requests as requests_service
from tests.accounts_support import make_patient, make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import open_emailed_link, path_of_link_in_latest_email, sign_in_as

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-redaction.json")
SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "call-sample.wav"
SILENT = 10 ** (-60 / 20)  # -60 dBFS: the engine's silence threshold, as an amplitude
WORKER = "browser-test"
TYPED = (8_000, 10_000)  # the part typed in, in milliseconds


def mono_samples(content: bytes) -> tuple[np.ndarray, int]:
    """Every sample of a recording as mono floating point, and its sample rate, decoded by PyAV."""
    with av.open(io.BytesIO(content)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            mono.to_ndarray().reshape(-1) for frame in container.decode(stream) for mono in resampler.resample(frame)
        ]
        chunks += [mono.to_ndarray().reshape(-1) for mono in resampler.resample(None)]
    return np.concatenate(chunks), rate


def peak_between(samples: np.ndarray, rate: int, start_ms: int, end_ms: int) -> float:
    return float(np.max(np.abs(samples[start_ms * rate // 1000 : end_ms * rate // 1000])))


def sign_in(journey, test_account, *, area: str = "/admin") -> None:
    """Sign in through the real pages and let the page reached load fully (leaving it half-loaded would
    abort its styles and scripts, which the journey counts as failed requests)."""
    sign_in_as(journey, test_account, area=area)
    expect(journey.page).not_to_have_url(journey.url_pattern(f"{area}/sign-in/code"))
    journey.page.wait_for_load_state("networkidle")


def run_the_worker() -> None:
    """What `flask worker` does each round, until nothing is left; then let go of the database."""
    while redaction.run_pending(WORKER):
        pass
    db.session.rollback()


def test_two_parts_are_withheld_proved_silent_released_through_four_eyes_and_downloaded(
    app, journeys, monkeypatch, tmp_path
):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    patient = make_patient(email="ada@example.org", verified=True)
    clerk = make_staff(email="sam.clerk@practice.example", name="Sam Clerk", role="staff")
    admin = make_staff(email="alex.admin@practice.example", name="Alex Admin", role="admin")
    admin.account.is_clinician = True
    db.session.commit()
    today = requests_service.practice_today()
    details = requests_service.CallDetails(calls_from=today - timedelta(days=2), calls_to=today - timedelta(days=2))
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    with SAMPLE.open("rb") as stream:
        recordings.attach_recording(
            clerk.account, req, stream, recordings.RecordingDetails(original_name="call-sample.wav")
        )
    reference = req.reference
    run_the_worker()  # draws the waveform

    staff = journeys("staff")
    page = staff.page
    sign_in(staff, clerk)
    staff.goto(f"/admin/requests/{reference}")
    page.locator("#recordings-table").get_by_text("Details, withhold parts").click()  # folded, to keep it short
    page.get_by_role("link", name="Withhold parts of this recording").click()
    heading = "Withhold parts of call-sample.wav"
    expect(page.locator("h1")).to_have_text(heading)
    waveform = page.locator("#waveform")
    expect(waveform).to_have_attribute("data-ready", "yes")

    # One part by dragging across the waveform: it fills in Start and End, and moves on to the reason.
    box = waveform.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 2.0 / 13.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 4.0 / 13.5, y, steps=12)
    page.mouse.up()
    start, end = page.get_by_label("Start").input_value(), page.get_by_label("End").input_value()
    assert re.fullmatch(r"00:0[12]\.\d", start) and re.fullmatch(r"00:0[34]\.\d", end), (start, end)
    expect(page.locator("input[name=reason]").first).to_be_focused()
    page.get_by_label("Another person's information").check()
    page.get_by_role("button", name="Mark this part").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text(f"The part from {start} to {end} is marked")

    # The other by typing its times, as a keyboard or screen-reader user would.
    page.get_by_label("Start").fill("00:08.0")
    page.get_by_label("End").fill("00:10")
    page.get_by_label("Personal details of a member of staff").check()
    page.get_by_role("button", name="Mark this part").click()
    expect(page.locator("#ranges-table tbody tr")).to_have_count(2)
    expect(waveform).to_have_attribute("data-ready", "yes")
    staff.check("redaction page with two parts marked", heading)
    marked = [(part.start_ms, part.end_ms) for part in redaction.ranges_for(_original(req))]
    db.session.rollback()
    assert marked[1] == TYPED and 1_000 <= marked[0][0] < marked[0][1] <= 4_500, marked

    # Produce the copy: the page shows its progress, the worker makes it, the page says when it is ready.
    page.get_by_role("button", name="Produce the redacted copy").click()
    expect(page.locator("#copy-progress")).to_contain_text("The redacted copy is being produced")
    run_the_worker()
    expect(page.locator("#copy-ready")).to_have_text("Redacted copy of call-sample.wav", timeout=20_000)
    staff.check("redaction page with the copy ready", heading)
    copy_sha256 = page.locator("#copy-sha256").inner_text()
    expect(page.locator("#proof-table tbody tr")).to_have_count(2)
    expect(page.locator("#proof-table")).not_to_contain_text("Not silent")

    # The copy as the page's player fetches it, decoded here: both parts silent, where the original speaks.
    copy_url = page.locator("#copy-state audio").get_attribute("src")
    fetched = page.request.get(staff.url(copy_url))
    assert fetched.ok and fetched.headers["content-type"] == "audio/mp4"
    copy_bytes = fetched.body()
    assert hashlib.sha256(copy_bytes).hexdigest() == copy_sha256
    original, original_rate = mono_samples(SAMPLE.read_bytes())
    copy, rate = mono_samples(copy_bytes)
    assert abs(len(copy) / rate - len(original) / original_rate) < 0.2
    for start_ms, end_ms in marked:
        assert peak_between(original, original_rate, start_ms, end_ms) > 100 * SILENT, (start_ms, end_ms)
        assert peak_between(copy, rate, start_ms, end_ms) <= SILENT, (start_ms, end_ms)
    assert peak_between(copy, rate, 5_000, 7_000) > 100 * SILENT  # the rest of the call is still there

    # Put forward by the member of staff, who is not a clinician ...
    page.get_by_role("link", name=f"Back to request {reference}", exact=True).click()
    page.locator("#next-steps").get_by_role("link", name="Put the recordings forward for approval").click()
    expect(page.locator("main")).to_contain_text("Redacted copy of call-sample.wav")
    page.get_by_role("button", name="Put the recordings forward for approval").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("ready for an admin to check")

    # ... approved by an admin who listens to the copy, with the parts withheld and why beside it.
    approver = journeys("admin")
    approver_page = approver.page
    sign_in(approver, admin)
    approver.goto(f"/admin/requests/{reference}/release/approve")
    approver.check("approve the redacted copy", "Check and approve the release")
    item = approver_page.locator("main li").filter(has_text="Redacted copy of call-sample.wav")
    expect(item.locator("audio")).to_have_attribute("src", copy_url)
    expect(item.locator(".portal-withheld-parts li")).to_have_text(
        [
            f"{start} to {end}: Another person's information",
            "00:08.0 to 00:10.0: Personal details of a member of staff",
        ]
    )
    approver_page.get_by_label("Clinician who reviewed the recordings").select_option(label="Alex Admin")
    approver_page.get_by_label("Outcome of the clinical review").fill("Listened to the redacted copy.")
    approver_page.get_by_role("button", name="Approve and email the link").click()
    expect(approver_page.locator(".nhsuk-notification-banner")).to_contain_text("The release is approved")

    # The patient reads what was withheld and why, and downloads the copy: still silent in both parts.
    patient_journey = journeys("patient")
    patient_page = patient_journey.page
    sign_in(patient_journey, patient, area="/account")
    open_emailed_link(patient_journey, path_of_link_in_latest_email("ada@example.org"), "/downloads/")
    patient_journey.check("your call recordings, redacted", "Your call recordings")
    withheld = patient_page.locator(".nhsuk-inset-text").filter(has_text="withheld")
    expect(withheld).to_contain_text(f"from {start} to {end}, because it was information about another person")
    expect(withheld).to_contain_text("0303 123 1113")
    with patient_page.expect_download() as download_info:
        patient_page.get_by_role("button", name=re.compile(r"^Download")).first.click()
    download = download_info.value
    assert download.suggested_filename == f"recording-{reference}-1.m4a"
    downloaded = Path(download.path()).read_bytes()
    assert hashlib.sha256(downloaded).hexdigest() == copy_sha256
    copy, rate = mono_samples(downloaded)
    for start_ms, end_ms in marked:
        assert peak_between(copy, rate, start_ms, end_ms) <= SILENT, (start_ms, end_ms)

    for person in (staff, approver, patient_journey):
        assert person.foreign_requests() == []
        assert [url for url in person.failed_requests if url != download.url] == [], person.name


def _original(req):
    [recording] = recordings.attached_recordings(req)
    return recording
