"""The access report (admins only): for the practice's quarterly access review, which members of staff uploaded,
listened to, released or revoked which recordings in a period, and which patients opened, played or downloaded
them, with counts and first and last times; also as CSV, whose download is audited.

SECURITY L1 (the audit trail answers "who read this recording?"), L3 (patients by public id only, no names),
G4 (admins only: see tests/admin/test_audit_viewer.py and tests/admin/test_guard.py).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models.audit import AuditEvent
from core.services import audit_log, recordings, releases
from tests.accounts_support import make_patient, make_staff, signed_in_browser
from tests.release_support import released_request

DAY = date(2026, 9, 7)
MORNING = datetime(2026, 9, 7, 8, 0, tzinfo=UTC)  # 09:00 in London (BST)


def soup_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def tables(response) -> dict[str, list[list[str]]]:
    """Each table on the report by its caption, as rows of cell texts (without the narrow-screen headings)."""
    found = {}
    for table in soup_of(response).select("main table"):
        rows = []
        for row in table.select("tbody tr"):
            for heading in row.select(".nhsuk-table-responsive__heading"):
                heading.extract()
            rows.append([cell.get_text(" ", strip=True) for cell in row.select("td")])
        found[table.caption.get_text(" ", strip=True)] = rows
    return found


def summary(rows: list[list[str]]) -> list[tuple[str, str, str]]:
    """(request, what, times) for each row."""
    return [(row[0], row[2], row[3]) for row in rows]


@pytest.fixture
def activity(app, tmp_path, monkeypatch):
    """On 7 September 2026: a request released (the clerk uploads and prepares, the doctor approves), the clerk
    listens in three parts and the doctor once, the patient plays twice and downloads once, the clerk tries a
    recording that is not on the request, then revokes the link. Returns what the report should show."""
    with time_machine.travel(MORNING, tick=False) as traveller:
        patient = make_patient(given_name="Zebedee", family_name="Quartermain", verified=True)
        patient, req, release, _token = released_request(app, tmp_path, patient=patient, monkeypatch=monkeypatch)
        item = release.items[0]
        recording = item.recording
        clerk, doctor = release.prepared_by, release.approved_by
        for part in ("bytes=0-", "bytes=1000-", "bytes=2000-"):
            traveller.shift(timedelta(minutes=10))
            recordings.record_staff_listen(clerk, req, recording, byte_range=part)
        traveller.shift(timedelta(minutes=5))
        recordings.record_staff_listen(doctor, req, recording, byte_range="bytes=0-")
        for _ in range(2):
            traveller.shift(timedelta(minutes=5))
            releases.record_patient_access("recording_played", release, patient.account, recording)
        traveller.shift(timedelta(minutes=5))
        assert releases.take_download(release, item, patient.account)
        recordings.record_recording_refused(clerk, req, "f" * 32, endpoint="admin.recording_audio", method="GET")
        traveller.shift(timedelta(minutes=5))
        releases.revoke_release(clerk, req, "Wrong recording attached", reissue=False)
        traveller.shift(timedelta(minutes=5))
        admin = make_staff(email="auditor@practice.example", name="Ava Auditor", role="admin")
        client = signed_in_browser(app, admin)
        yield {
            "client": client,
            "admin": admin,
            "patient": patient.account,
            "req": req,
            "release": release,
            "recording": recording,
            "clerk": clerk,
            "doctor": doctor,
            "traveller": traveller,
        }


def report_page(client: FlaskClient, **params):
    response = client.get("/admin/audit/access-report", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response


def test_the_report_groups_each_persons_access_by_request_and_recording_with_counts_and_times(app, activity):
    response = report_page(activity["client"], **{"from": "2026-09-07", "to": "2026-09-07"})
    found = tables(response)
    ref, clerk, doctor, patient = (activity[key] for key in ("req", "clerk", "doctor", "patient"))
    ref = ref.reference

    clerk_rows = found[f"{clerk.name} ({clerk.public_id})"]
    assert summary(clerk_rows) == [
        (ref, "Uploaded a recording", "1"),
        (ref, "Listened (parts sent to the player)", "3"),
        (ref, "Prepared a release", "1"),
        (ref, "Revoked a download link", "1"),
        ("Not known", "Refused: the recording is not on the request", "1"),
    ]
    listened = clerk_rows[1]
    assert activity["recording"].public_id in listened[1]
    assert (listened[4], listened[5]) == ("7 September 2026, 09:10:00 BST", "7 September 2026, 09:30:00 BST")
    assert activity["release"].public_id in clerk_rows[2][1]

    assert summary(found[f"{doctor.name} ({doctor.public_id})"]) == [
        (ref, "Listened (parts sent to the player)", "1"),
        (ref, "Approved a release", "1"),
    ]
    assert summary(found[f"Patient {patient.public_id}"]) == [
        (ref, "Played (parts sent to the player)", "2"),
        (ref, "Downloaded", "1"),
    ]
    # Members of staff come in name order; the patient is never named.
    captions = list(found)
    assert captions.index(f"{doctor.name} ({doctor.public_id})") < captions.index(f"{clerk.name} ({clerk.public_id})")
    page_text = soup_of(response).get_text(" ")
    assert patient.given_name not in page_text and patient.family_name not in page_text


def test_a_period_without_the_activity_shows_nothing_and_a_wider_one_shows_it_all(app, activity):
    client = activity["client"]
    empty = soup_of(report_page(client, **{"from": "2026-09-08", "to": "2026-09-30"})).get_text(" ")
    assert "No member of staff uploaded, listened to or released a recording in this period." in empty
    assert "No patient opened, played or downloaded a recording in this period." in empty
    before = soup_of(report_page(client, **{"from": "2026-08-01", "to": "2026-09-06"})).get_text(" ")
    assert "No member of staff uploaded" in before
    wide = report_page(
        client,
        **{"from-day": "1", "from-month": "7", "from-year": "2026", "to-day": "30", "to-month": "9", "to-year": "2026"},
    )
    assert len(tables(wide)) == 3
    assert soup_of(wide).select_one("main h2").get_text(strip=True) == "1 July 2026 to 30 September 2026"


def test_with_no_period_the_report_covers_the_last_full_quarter(app, activity):
    start, end = audit_log.previous_quarter(date(2026, 9, 7))
    assert (start, end) == (date(2026, 4, 1), date(2026, 6, 30))
    page = soup_of(report_page(activity["client"]))
    assert page.select_one("main h2").get_text(strip=True) == "1 April 2026 to 30 June 2026"
    assert page.select_one("#from-day")["value"] == "1" and page.select_one("#to-month")["value"] == "6"


@pytest.mark.parametrize(
    ("today", "quarter"),
    [
        (date(2026, 1, 1), (date(2025, 10, 1), date(2025, 12, 31))),
        (date(2026, 3, 31), (date(2025, 10, 1), date(2025, 12, 31))),
        (date(2026, 4, 1), (date(2026, 1, 1), date(2026, 3, 31))),
        (date(2026, 12, 31), (date(2026, 7, 1), date(2026, 9, 30))),
    ],
)
def test_the_last_full_quarter(today, quarter):
    assert audit_log.previous_quarter(today) == quarter


def get_streamed(client: FlaskClient, path: str, **params):
    """GET `path`; the client reads a streamed body in the request's own context (tests/conftest.py).
    Returns (response, whether it was streamed)."""
    response = client.get(path, query_string=params)
    return response, response.was_streamed


def test_the_report_downloads_as_csv_and_the_download_is_audited(app, activity):
    response, streamed = get_streamed(
        activity["client"], "/admin/audit/access-report.csv", **{"from": "2026-09-07", "to": "2026-09-07"}
    )
    assert response.status_code == 200 and streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="access-report-20260907-20260907.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0] == audit_log.ACCESS_CSV_HEADER
    by_action = {(row[1], row[6]): row for row in rows[1:]}
    clerk, patient = activity["clerk"], activity["patient"]
    listened = by_action[(clerk.public_id, "recording_listened")]
    assert listened[:4] == ["staff", clerk.public_id, clerk.name, activity["req"].reference]
    assert (listened[9], listened[10], listened[11]) == ("3", "2026-09-07 09:10:00 BST", "2026-09-07 09:30:00 BST")
    downloaded = by_action[(patient.public_id, "recording_downloaded")]
    assert downloaded[:3] == ["patient", patient.public_id, ""]
    assert len(rows) == 1 + 5 + 2 + 2

    db.session.rollback()
    exported = db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit_exported")).scalar_one()
    assert exported.actor_id == activity["admin"].account.public_id
    assert json.loads(exported.details) == {"report": "access_report", "from": "2026-09-07", "to": "2026-09-07"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-09-07"}, "Enter the end date"),
        ({"to": "2026-09-07"}, "Enter the start date"),
        ({"from": "2026-09-08", "to": "2026-09-07"}, "The end date must be the same as or after the start date"),
        ({"from-day": "30", "from-month": "2", "from-year": "2026", "to": "2026-09-07"}, "must be a real date"),
        ({"from": "07/09/2026", "to": "2026-09-07"}, "The start date must be a real date"),
        (
            {"from": "2026-01-01", "to-day": "1", "to-month": "1", "to-year": "10000"},
            "The end date must be a real date",
        ),
    ],
)
def test_a_bad_period_is_a_400_with_a_message_never_a_500(app, activity, params, message):
    for path in ("/admin/audit/access-report", "/admin/audit/access-report.csv"):
        response = activity["client"].get(path, query_string=params)
        assert response.status_code == 400, (path, response.status_code)
        page = soup_of(response)
        assert page.title.get_text().startswith("Error: ")
        errors = [item.get_text(" ", strip=True) for item in page.select(".nhsuk-error-summary__list li")]
        assert any(message in error for error in errors), errors
    db.session.rollback()
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit_exported")).first() is None
