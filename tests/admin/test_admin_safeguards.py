"""Safeguards a security review of the admin pages (issue 5) found missing, each proved against the real
pages and services: no caller or NHS number in the audit trail from a recording's file name (L3); drafts are
for admins; a draft cannot go live through "roll back"; odd input (a NUL character, a huge version number)
is a 4xx, never a 500 (M1/M2)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.extensions import db
from core.models.audit import AuditEvent
from core.services import content, recordings
from core.services import requests as requests_service
from core.services.content import ContentError
from tests.accounts_support import make_patient, make_staff, post_form, signed_in_browser
from tests.release_support import SAMPLE_WAV

NOTICE = "call-recording-notice"


@pytest.fixture
def admin():
    return make_staff(email="admin.reviewer@practice.example", name="Alex Admin", role="admin")


@pytest.fixture
def draft(admin):
    return content.save_draft(
        admin.account, slug=NOTICE, title="Unreviewed", source_text="Draft words only admins see.", change_summary=""
    )


def test_a_recordings_file_name_is_audited_without_the_callers_or_nhs_number_l3(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path))
    patient = make_patient(verified=True)
    clerk = make_staff(email="clerk.names@practice.example", role="staff").account
    req = requests_service.submit_request(
        patient.account,
        requests_service.CallDetails(
            calls_from=requests_service.practice_today(), calls_to=requests_service.practice_today()
        ),
        submission_key="names",
    )
    name = "2026-03-01_1405_07700900123_Lovelace-Ada_9434765919.wav"
    with SAMPLE_WAV.open("rb") as stream:
        recordings.attach_recording(clerk, req, stream, recordings.RecordingDetails(original_name=name))
    details = db.session.execute(
        select(AuditEvent.details).where(AuditEvent.action == "recording_attached")
    ).scalar_one()
    assert "07700900123" not in details and "9434765919" not in details
    assert json.loads(details)["name"] == "2026-03-01_1405_…123_Lovelace-Ada_…919.wav"


def test_staff_cannot_read_a_draft_but_can_read_published_versions(app, admin, draft):
    staff = make_staff(email="reader@practice.example", role="staff")
    staff_browser = signed_in_browser(app, staff)
    assert staff_browser.get(f"/admin/content/{NOTICE}/versions/{draft.version}").status_code == 404
    assert staff_browser.get(f"/admin/content/{NOTICE}/versions/1").status_code == 200
    admin_page = signed_in_browser(app, admin).get(f"/admin/content/{NOTICE}/versions/{draft.version}")
    assert admin_page.status_code == 200 and "Draft words only admins see." in admin_page.get_data(as_text=True)


def test_a_draft_cannot_be_published_by_rolling_back_to_it(app, admin, draft):
    with pytest.raises(ContentError, match="never published"):
        content.roll_back(admin.account, slug=NOTICE, number=draft.version)
    assert content.get_published_page(NOTICE).title != "Unreviewed"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/admin/audit?actor=a%00b", 400), ("/admin/audit.csv?object=a%00b", 400), ("/admin/requests/CR-2026%00", 404)],
)
def test_a_nul_character_in_an_address_is_refused_never_an_error(app, admin, path, status):
    assert signed_in_browser(app, admin).get(path).status_code == status


def test_a_nul_character_in_a_form_is_refused_with_400_and_nothing_is_saved(app, admin):
    client = signed_in_browser(app, admin)
    response = post_form(
        client,
        f"/admin/content/{NOTICE}",
        {"action": "draft", "title": "T", "source": "text\x00more", "change-summary": ""},
    )
    assert response.status_code == 400
    assert [v.version for v in content.page_versions(NOTICE)] == [1]


def test_a_huge_version_number_is_a_404_not_an_error(app, admin):
    client = signed_in_browser(app, admin)
    assert client.get(f"/admin/content/{NOTICE}/versions/99999999999999999999").status_code == 404
