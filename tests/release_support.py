"""A released request, made through the real services: a verified patient submits, a member of staff
attaches a recording and prepares the release, a clinician admin approves it with the clinical review, and the
patient's emailed link is live.

`released_request(app, tmp_path)` returns `(patient_account, request, release, token)`; the token is the last
part of the emailed `/downloads/<token>` link. Recordings are stored under `tmp_path` (RECORDINGS_DIR).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from core.extensions import db
from core.models.accounts import StaffUser
from core.models.requests import RecordingRequest, Release
from core.services import recordings, releases
from core.services import requests as requests_service
from tests.accounts_support import SignInAccount, make_patient, make_staff

AUDIO = Path(__file__).parent / "fixtures" / "audio"
SAMPLE_WAV = AUDIO / "call-sample.wav"


def _staff(*, email: str, name: str, role: str, clinician: bool) -> StaffUser:
    """The member of staff with this address, made the first time it is asked for."""
    staff = db.session.execute(select(StaffUser).where(StaffUser.email == email)).scalar_one_or_none()
    if staff is None:
        staff = make_staff(email=email, name=name, role=role).account
        staff.is_clinician = clinician
        db.session.commit()
    return staff


def released_request(
    app: Flask,
    tmp_path: Path,
    *,
    patient: SignInAccount | None = None,
    samples: tuple[Path, ...] = (SAMPLE_WAV,),
    monkeypatch=None,
) -> tuple[SignInAccount, RecordingRequest, Release, str]:
    """A request with `samples` attached and released to `patient` (a new verified patient by default).

    RECORDINGS_DIR is set to `tmp_path / "recordings"`: through `monkeypatch` when given (undone after the
    test), otherwise on the application's config directly (every test that stores files sets its own).
    """
    directory = str(tmp_path / "recordings")
    if monkeypatch is not None:
        monkeypatch.setitem(app.config, "RECORDINGS_DIR", directory)
    else:
        app.config["RECORDINGS_DIR"] = directory
    patient = patient or make_patient(verified=True)
    clerk = _staff(email="clerk@practice.example", name="Sam Clerk", role="staff", clinician=False)
    admin = _staff(email="doctor@practice.example", name="Dr Ada Admin", role="admin", clinician=True)

    today = requests_service.practice_today()
    details = requests_service.CallDetails(
        calls_from=today - timedelta(days=10), calls_to=today - timedelta(days=3), description="A call about results"
    )
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    for position, sample in enumerate(samples, start=1):
        with sample.open("rb") as stream:
            recordings.attach_recording(
                clerk, req, stream, recordings.RecordingDetails(original_name=f"{position}-{sample.name}")
            )
    releases.prepare_release(clerk, req)
    link = releases.approve_release(admin, req, releases.ClinicalReview(admin, "Checked: nothing to withhold"))
    release = releases.live_release(req)
    assert release is not None
    return patient, req, release, link.rsplit("/", 1)[1]


def open_link(client, token: str):
    """Follow the emailed link as a browser does: the 303 to /downloads/ (checked), then that page."""
    followed = client.get(f"/downloads/{token}")
    assert followed.status_code == 303 and followed.headers["Location"] == "/downloads/", followed.status_code
    return client.get("/downloads/")
