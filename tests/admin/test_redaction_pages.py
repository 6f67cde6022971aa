"""Staff withholding parts of a recording through the pages (issue 15): marking parts by typed times, changing
and removing them, the errors beside the fields, the refusals (another request's recording, a release already
prepared), the JSON the page's script reads, the copy and its proof, the release pages and the patient's
download page.

The worker's steps (`redaction.draw_next_waveform`, `redaction.process_next_copy`) are run here in the test,
on the real sample recording, as `flask worker` runs them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.forms import parse_timestamp
from core.models.audit import AuditEvent
from core.models.requests import Recording, RecordingRequest
from core.services import recordings, redaction, releases
from core.services import requests as requests_service
from tests.accounts_support import make_patient, make_staff, post_form, signed_in_browser
from tests.conftest import check_page
from tests.release_support import open_link

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "call-sample.wav"
WORKER = "test-worker"


@pytest.fixture
def store(app, tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "recordings"
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(directory))
    return directory


@pytest.fixture
def patient():
    return make_patient(verified=True)


@pytest.fixture
def req(patient) -> RecordingRequest:
    details = requests_service.CallDetails(
        calls_from=requests_service.practice_today() - timedelta(days=3),
        calls_to=requests_service.practice_today() - timedelta(days=3),
    )
    return requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)


@pytest.fixture
def recording(clerk, req, store) -> Recording:
    with SAMPLE.open("rb") as stream:
        return recordings.attach_recording(
            clerk.account, req, stream, recordings.RecordingDetails(original_name="call-sample.wav")
        )


def page_path(req: RecordingRequest, recording: Recording, tail: str = "redact") -> str:
    return f"/admin/requests/{req.reference}/recordings/{recording.public_id}/{tail}"


def parse(response) -> BeautifulSoup:
    assert response.mimetype == "text/html"
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def mark(client: FlaskClient, req, recording, **fields):
    data = {"start": "00:02.5", "end": "00:04.0", "reason": "other-person", "note": "", **fields}
    return post_form(client, page_path(req, recording, "redact/ranges"), data, form_page=page_path(req, recording))


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def ranges_table(soup: BeautifulSoup) -> list[list[str]]:
    table = soup.select_one("#ranges-table")
    if table is None:
        return []
    return [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in table.select("tbody tr")]


# --- The page -----------------------------------------------------------------------------------------------


def test_the_redaction_page_has_the_player_the_form_and_the_fill(clerk_browser, req, recording):
    soup = parse(clerk_browser.get(page_path(req, recording)))

    assert soup.h1.get_text(strip=True) == "Withhold parts of call-sample.wav"
    player = soup.select_one("audio#redaction-player[controls]")
    assert player["src"] == page_path(req, recording, "audio")
    assert "The waveform is being prepared" in soup.select_one("#waveform-status").get_text()
    form = soup.select_one("form#action-form")
    assert form["action"] == page_path(req, recording, "redact/ranges")
    for field in ("range-start", "range-end"):
        hint = soup.select_one(f"#{field}-hint").get_text(strip=True)
        assert hint == "mm:ss.s, for example 01:23.5"
    reasons = [label.get_text(strip=True) for label in form.select("input[name=reason] + label")]
    assert reasons == [
        "Another person's information",
        "Personal details of a member of staff",
        "Information likely to cause serious harm",
    ]
    assert "replaced with silence" in soup.select_one("#fill-statement").get_text()
    assert "Mark at least one part" in soup.get_text()
    # The waveform's script is our own, and its <style> is allowed by this response's nonce alone.
    script = soup.select_one("script#redaction-script")
    assert script["src"].startswith("/static/js/redaction.js") and script["type"] == "module"
    policy = clerk_browser.get(page_path(req, recording)).headers["Content-Security-Policy"]
    style_src = next(part for part in policy.split("; ") if part.startswith("style-src"))
    assert style_src.startswith("style-src 'self' 'nonce-") and "unsafe-inline" not in policy


def test_the_page_says_when_the_practice_fills_with_a_soft_tone(app, clerk_browser, req, recording, monkeypatch):
    monkeypatch.setitem(app.config, "REDACTION_FILL", "tone")

    statement = parse(clerk_browser.get(page_path(req, recording))).select_one("#fill-statement").get_text()

    assert "replaced with a soft tone" in statement


@pytest.mark.parametrize(
    ("typed", "ms"),
    [
        ("75", 75_000),
        ("2.5", 2_500),
        ("1:15", 75_000),
        ("01:23.5", 83_500),
        ("01:23,5", 83_500),
        ("0:00:09.25", 9_250),
        ("1:01:15.5", 3_675_500),
        ("1:60", None),
        ("1:60:00", None),
        ("01:23.", None),
        ("-1", None),
        ("1:2:3:4", None),
        ("\uff11\uff12", None),  # full-width digits
    ],
)
def test_times_are_read_in_the_forms_staff_type_them(typed, ms):
    assert parse_timestamp(typed) == ms


def test_other_pages_keep_styles_to_our_own_origin(clerk_browser, req, recording):
    policy = clerk_browser.get(f"/admin/requests/{req.reference}").headers["Content-Security-Policy"]
    assert "style-src 'self';" in policy


def test_the_request_page_links_each_recording_to_its_redaction_page(clerk_browser, req, recording):
    assert mark(clerk_browser, req, recording).status_code == 302
    soup = parse(clerk_browser.get(f"/admin/requests/{req.reference}"))

    link = soup.select_one(f'#recordings-table a[href="{page_path(req, recording)}"]')
    assert link.get_text(" ", strip=True) == "Withhold parts of this recording (call-sample.wav)"
    summary = soup.select_one(".portal-redaction-summary").get_text(strip=True)
    assert summary == redaction.redaction_summary(recording) and "1 part" in summary


# --- Marking, changing and removing parts ----------------------------------------------------------------


def test_a_part_marked_by_typed_times_is_listed_and_audited(clerk_browser, clerk, req, recording):
    response = mark(clerk_browser, req, recording, start="2.5", end="0:04", note="The daughter's name")

    assert response.status_code == 302
    assert response.headers["Location"] == page_path(req, recording) + "#parts"
    soup = parse(clerk_browser.get(page_path(req, recording)))
    assert "The part from 00:02.5 to 00:04.0 is marked" in soup.select_one(".nhsuk-notification-banner").get_text()
    assert ranges_table(soup) == [
        [
            "00:02.5",
            "00:04.0",
            "Another person's information",
            "The daughter's name",
            "Change the part from 00:02.5 to 00:04.0 Remove the part from 00:02.5 to 00:04.0",
        ]
    ]
    [marked] = redaction.ranges_for(recording)
    assert (marked.start_ms, marked.end_ms, marked.reason) == (2500, 4000, "other-person")
    [event] = events("redaction_range_added")
    assert event.actor_id == clerk.account.public_id
    assert "daughter" not in event.details  # the note may name the other person: never in the audit trail


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"start": ""}, "range-start", "Enter the start time"),
        ({"start": "one minute"}, "range-start", "Enter the start time in minutes and seconds, for example 01:23.5"),
        ({"start": "1:75"}, "range-start", "Enter the start time in minutes and seconds, for example 01:23.5"),
        ({"end": "x" * 5000}, "range-end", "Enter the end time in minutes and seconds, for example 01:23.5"),
        ({"start": "00:05", "end": "00:04.5"}, "range-end", "The end must be after the start"),
        ({"start": "00:05", "end": "00:05"}, "range-end", "The end must be after the start"),
        ({"end": "04:12"}, "range-end", "The end must be within the recording (it is 00:13.5 long)"),
        (
            {"start": "00:20", "end": "00:30"},
            "range-start",
            "The start must be within the recording (it is 00:13.5 long)",
        ),
        ({"reason": ""}, "range-reason", "Select why this part is withheld"),
        ({"reason": "because"}, "range-reason", "Select why this part is withheld"),
        ({"note": "n" * 501}, "range-note", "Enter no more than 500 characters"),
    ],
)
def test_a_part_that_cannot_be_marked_is_explained_beside_its_field(
    clerk_browser, req, recording, fields, field_id, message
):
    response = mark(clerk_browser, req, recording, **fields)

    assert response.status_code == 400
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    summary = soup.select_one(".nhsuk-error-summary a")
    assert (summary["href"], summary.get_text(strip=True)) == (f"#{field_id}", message)
    beside = soup.select_one(f"#{field_id}--error-message") or soup.select_one(f"#{field_id}-error")
    assert beside is not None and message in beside.get_text()
    assert redaction.ranges_for(recording) == []
    if fields.get("start"):
        assert soup.select_one("#range-start")["value"] == fields["start"]


def test_a_part_is_changed_on_its_own_page(clerk_browser, clerk, req, recording):
    mark(clerk_browser, req, recording, note="First note")
    [marked] = redaction.ranges_for(recording)
    change = page_path(req, recording, f"redact/ranges/{marked.public_id}/change")

    soup = parse(clerk_browser.get(change))
    assert soup.h1.get_text(strip=True) == "Change the part from 00:02.5 to 00:04.0"
    assert (soup.select_one("#range-start")["value"], soup.select_one("#range-end")["value"]) == ("00:02.5", "00:04.0")
    assert soup.select_one("input[name=reason][value=other-person]").has_attr("checked")
    assert soup.select_one("#range-note").get_text() == "First note"

    wrong = post_form(clerk_browser, change, {"start": "00:09", "end": "00:08", "reason": "staff-details"})
    assert wrong.status_code == 400 and "The end must be after the start" in parse(wrong).get_text()
    response = post_form(clerk_browser, change, {"start": "00:06", "end": "00:08.2", "reason": "staff-details"})

    assert (response.status_code, response.headers["Location"]) == (302, page_path(req, recording) + "#parts")
    db.session.expire_all()
    [changed] = redaction.ranges_for(recording)
    assert (changed.start_ms, changed.end_ms, changed.reason, changed.note) == (6000, 8200, "staff-details", "")
    assert [event.actor_id for event in events("redaction_range_changed")] == [clerk.account.public_id]


def test_a_part_is_removed_after_a_confirmation_page(clerk_browser, req, recording):
    mark(clerk_browser, req, recording)
    [marked] = redaction.ranges_for(recording)
    remove = page_path(req, recording, f"redact/ranges/{marked.public_id}/remove")

    soup = parse(clerk_browser.get(remove))
    assert soup.h1.get_text(strip=True) == "Remove the part from 00:02.5 to 00:04.0"
    assert redaction.ranges_for(recording) != []
    response = post_form(clerk_browser, remove, {})

    assert response.status_code == 302
    db.session.expire_all()
    assert redaction.ranges_for(recording) == []
    assert len(events("redaction_range_removed")) == 1
    assert ranges_table(parse(clerk_browser.get(page_path(req, recording)))) == []


def test_another_requests_recording_and_an_unknown_part_are_not_found(clerk_browser, clerk, req, recording, patient):
    other_details = requests_service.CallDetails(
        calls_from=requests_service.practice_today(), calls_to=requests_service.practice_today()
    )
    other = requests_service.submit_request(patient.account, other_details, submission_key=uuid.uuid4().hex)
    mark(clerk_browser, req, recording)
    [marked] = redaction.ranges_for(recording)
    wrong = f"/admin/requests/{other.reference}/recordings/{recording.public_id}"

    for tail in ("redact", "redact/status", "waveform.json", f"redact/ranges/{marked.public_id}/change"):
        assert clerk_browser.get(f"{wrong}/{tail}").status_code == 404, tail
    response = post_form(
        clerk_browser,
        f"{wrong}/redact/ranges",
        {"start": "1", "end": "2", "reason": "other-person"},
        form_page=page_path(req, recording),
    )
    assert response.status_code == 404
    unknown = page_path(req, recording, "redact/ranges/" + "0" * 32 + "/remove")
    assert clerk_browser.get(unknown).status_code == 404
    assert len(redaction.ranges_for(recording)) == 1


def test_parts_cannot_change_once_the_release_is_prepared(clerk_browser, clerk, req, recording):
    releases.prepare_release(clerk.account, req)

    soup = parse(clerk_browser.get(page_path(req, recording)))
    assert soup.select_one("form#action-form") is None
    assert "cannot be changed now" in soup.get_text()
    response = mark(clerk_browser, req, recording)

    assert (response.status_code, response.headers["Location"]) == (302, page_path(req, recording))
    assert "cannot be changed now" in clerk_browser.get(page_path(req, recording)).get_data(as_text=True)
    assert redaction.ranges_for(recording) == []
    assert events("redaction_range_added") == []


# --- The JSON the page's script reads ------------------------------------------------------------------------


def test_the_waveform_json_is_served_once_the_worker_has_drawn_it(app, clerk_browser, req, recording):
    assert clerk_browser.get(page_path(req, recording, "waveform.json")).status_code == 404

    while redaction.draw_next_waveform(WORKER):
        pass

    response = clerk_browser.get(page_path(req, recording, "waveform.json"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "no-store" in response.headers["Cache-Control"]
    waveform = response.get_json()
    assert waveform["duration"] == pytest.approx(13.5, abs=0.1)
    assert waveform["per_second"] == 10
    assert len(waveform["peaks"]) == pytest.approx(135, abs=2)
    assert all(0 <= value <= 100 for value in waveform["peaks"]) and max(waveform["peaks"]) > 10
    soup = parse(clerk_browser.get(page_path(req, recording)))
    assert soup.select_one("#waveform")["data-peaks-url"] == page_path(req, recording, "waveform.json")
    assert soup.select_one("#waveform-status") is None


def produce(client: FlaskClient, req, recording):
    return post_form(client, page_path(req, recording, "redact/copy"), {}, form_page=page_path(req, recording))


def test_producing_the_copy_shows_progress_then_the_copy_and_its_proof(clerk_browser, req, recording):
    mark(clerk_browser, req, recording, start="00:02", end="00:04")
    mark(clerk_browser, req, recording, start="00:07.5", end="00:09", reason="staff-details")

    response = produce(clerk_browser, req, recording)
    assert (response.status_code, response.headers["Location"]) == (302, page_path(req, recording) + "#copy")
    status = clerk_browser.get(page_path(req, recording, "redact/status"))
    assert "no-store" in status.headers["Cache-Control"]
    assert status.get_json() == {
        "status": "queued",
        "progress": 0,
        "message": status.get_json()["message"],
        "ready": False,
    }
    soup = parse(clerk_browser.get(page_path(req, recording)))
    assert "being produced: 0% done" in soup.select_one("#copy-progress[aria-live=polite]").get_text()
    assert soup.select_one("#copy-refresh a")["href"] == page_path(req, recording) + "#copy"
    assert soup.select_one("#copy-state")["data-status-url"] == page_path(req, recording, "redact/status")
    assert soup.find("button", string=lambda text: text and "Produce the redacted copy" in text) is None

    assert redaction.process_next_copy(WORKER)

    assert clerk_browser.get(page_path(req, recording, "redact/status")).get_json()["ready"] is True
    soup = parse(clerk_browser.get(page_path(req, recording)))
    copy = redaction.copy_state(recording).current.copy
    assert soup.select_one("#copy-ready").get_text(strip=True) == "Redacted copy of call-sample.wav"
    assert soup.select_one("#copy-sha256").get_text(strip=True) == copy.sha256
    players = [audio["src"] for audio in soup.select("#copy-state audio")]
    assert players == [page_path(req, copy, "audio")]
    rows = [
        [cell.get_text(" ", strip=True) for cell in row.select("td")] for row in soup.select("#proof-table tbody tr")
    ]
    assert [[row[0], row[2]] for row in rows] == [["00:02.0 to 00:04.0", "Silent"], ["00:07.5 to 00:09.0", "Silent"]]
    proof = redaction.copy_state(recording).current.proof
    assert [row[1] for row in rows] == [f"{part['peak_dbfs']:.1f} dBFS" for part in proof["ranges"]]
    assert all(part["peak_dbfs"] <= -60 for part in proof["ranges"])
    assert soup.select_one("#copy-progress") is None
    # The copy is released in place of the original: it has no redaction page of its own.
    assert clerk_browser.get(page_path(req, copy)).status_code == 404
    assert clerk_browser.get(page_path(req, copy, "audio")).status_code == 200


def test_produce_is_refused_with_a_message_when_nothing_is_marked(clerk_browser, req, recording):
    response = produce(clerk_browser, req, recording)

    assert (response.status_code, response.headers["Location"]) == (302, page_path(req, recording) + "#copy")
    banner = parse(clerk_browser.get(page_path(req, recording))).select_one(".nhsuk-notification-banner")
    assert banner is not None and "being produced" not in banner.get_text()
    assert redaction.copy_state(recording).latest is None
    assert events("redacted_copy_requested") == []


# --- The release pages and the patient's page ------------------------------------------------------------------


def test_the_approver_and_the_patient_get_the_redacted_copy_with_the_parts_withheld(
    app, clerk_browser, clerk, req, recording, patient
):
    mark(clerk_browser, req, recording, start="00:02", end="00:04", note="Her neighbour")
    produce(clerk_browser, req, recording)
    assert redaction.process_next_copy(WORKER)
    copy = redaction.copy_state(recording).current.copy

    prepare = parse(clerk_browser.get(f"/admin/requests/{req.reference}/release/prepare"))
    assert "Redacted copy of call-sample.wav" in prepare.get_text()
    releases.prepare_release(clerk.account, req)
    admin = make_staff(email="doctor@practice.example", name="Dr Ada Admin", role="admin")
    admin.account.is_clinician = True
    db.session.commit()
    approver = signed_in_browser(app, admin)
    approve = parse(approver.get(f"/admin/requests/{req.reference}/release/approve"))
    item = approve.select_one("main li")
    assert "Redacted copy of call-sample.wav" in item.get_text()
    assert item.select_one("audio")["src"] == page_path(req, copy, "audio")
    assert [li.get_text(" ", strip=True) for li in item.select(".portal-withheld-parts li")] == [
        "00:02.0 to 00:04.0: Another person's information"
    ]
    link = releases.approve_release(
        admin.account, req, releases.ClinicalReview(admin.account, "Checked the redacted copy")
    )

    patient_browser = signed_in_browser(app, patient)
    page = open_link(patient_browser, link.rsplit("/", 1)[1])
    assert page.status_code == 200
    soup = parse(page)
    withheld = soup.select_one(".portal-withheld-parts").find_parent("div").get_text(" ", strip=True)
    assert "withheld a part of this recording" in withheld
    assert "from 00:02.0 to 00:04.0, because it was information about another person" in withheld
    assert "a moment either side of it (less than half a second) is withheld too" in withheld  # the guard
    assert "Information Commissioner's Office" in withheld and "0303 123 1113" in withheld
    assert soup.select_one('a[href="https://ico.org.uk/make-a-complaint/"]') is not None
    assert "neighbour" not in soup.get_text()  # the note is for staff only
