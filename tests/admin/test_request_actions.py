"""A request's page for staff and the actions on it: the state machine decides (a POST the status does not
allow is refused and changes nothing), every action is audited and on the timeline, and releasing the
recordings follows DESIGN §6 (admins approve; four eyes; a clinical review when the preparer is not a
clinician; the patient is emailed a link and nothing about their health; revoked links stop working).

SECURITY rows: G4 (roles), G10 (refusals audited), E12 (fresh second factor), H6 (revoked link), L1 (one
audit event per action), J1 (CSRF).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import Complaint, RecordingRequest, Release, RequestEvent
from core.services import recordings, releases
from core.services import requests as requests_service
from core.services.requests import RIGHTS_TEXT
from tests.accounts_support import (
    SignInAccount,
    emails_to,
    make_patient,
    make_staff,
    post_form,
    signed_in_browser,
)
from tests.conftest import check_page

AUDIO = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
DESCRIPTION = "I rang about my inhaler and my results from the sexual health clinic"
PHONE = "07700 900461"
SPOKE_TO = "Nurse Patel"


@dataclass
class People:
    patient: SignInAccount
    clerk: SignInAccount  # staff, not a clinician
    admin: SignInAccount  # admin, not a clinician
    doctor: SignInAccount  # admin and clinician


@pytest.fixture
def people(app, tmp_path, monkeypatch) -> People:
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    doctor = make_staff(email="doctor@practice.example", name="Dr Dee Doctor", role="admin")
    doctor.account.is_clinician = True
    db.session.commit()
    return People(
        patient=make_patient(verified=True),
        clerk=make_staff(email="clerk@practice.example", name="Cal Clerk"),
        admin=make_staff(email="admin@practice.example", name="Ava Admin", role="admin"),
        doctor=doctor,
    )


@pytest.fixture
def clerk_browser(app, people) -> FlaskClient:
    return signed_in_browser(app, people.clerk)


@pytest.fixture
def admin_browser(app, people) -> FlaskClient:
    return signed_in_browser(app, people.admin)


@pytest.fixture
def doctor_browser(app, people) -> FlaskClient:
    return signed_in_browser(app, people.doctor)


def submit(patient: SignInAccount) -> RecordingRequest:
    details = requests_service.CallDetails(
        calls_from=requests_service.practice_today() - timedelta(days=6),
        calls_to=requests_service.practice_today() - timedelta(days=2),
        approximate_time="About 9am",
        phone_number=PHONE,
        spoke_to=SPOKE_TO,
        description=DESCRIPTION,
    )
    return requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)


def attach(people: People, req: RecordingRequest, extension: str = "wav"):
    with (AUDIO / f"call-sample.{extension}").open("rb") as stream:
        return recordings.attach_recording(
            people.clerk.account, req, stream, recordings.RecordingDetails(original_name=f"morning-call.{extension}")
        )


def request_in(people: People, status: str) -> RecordingRequest:
    """A request of the patient's, moved to `status` through the services as staff would."""
    if status == "awaiting_identity":
        return submit(make_patient(email="new@example.org", nhs_number="9434765870"))
    req = submit(people.patient)
    clerk, doctor = people.clerk.account, people.doctor.account
    if status == "submitted":
        return req
    requests_service.start_work(clerk, req)
    if status == "clarification_requested":
        requests_service.ask_for_clarification(clerk, req, "Which number did you ring from?")
    if status in ("ready_for_approval", "released", "completed"):
        attach(people, req)
        releases.prepare_release(clerk, req)
    if status in ("released", "completed"):
        releases.approve_release(doctor, req, releases.ClinicalReview(doctor, "Nothing to withhold"))
    if status == "completed":
        requests_service.close(clerk, req)
    return fresh(req)


def fresh(req: RecordingRequest) -> RecordingRequest:
    db.session.expire_all()
    return db.session.get(RecordingRequest, req.id)


def page_path(req: RecordingRequest) -> str:
    return f"/admin/requests/{req.reference}"


def act(client: FlaskClient, req: RecordingRequest, action: str, data: dict | None = None, **files):
    """POST one of the request page's forms with the CSRF token from that page."""
    return post_form(client, f"{page_path(req)}/{action}", {**(data or {}), **files}, form_page=page_path(req))


def parse(response) -> BeautifulSoup:
    assert response.mimetype == "text/html"
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def error_summary(response) -> str:
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None, "no error summary"
    return summary.get_text(" ", strip=True)


def audit_events(reference: str, action: str | None = None) -> list[AuditEvent]:
    """Events about the request: on the request itself (object_id) or on its recordings and releases."""
    statement = select(AuditEvent).order_by(AuditEvent.seq)
    if action:
        statement = statement.where(AuditEvent.action == action)
    events = db.session.execute(statement).scalars()
    return [
        event
        for event in events
        if event.object_id == reference or json.loads(event.details or "{}").get("request") == reference
    ]


def timeline(req: RecordingRequest) -> list[RequestEvent]:
    db.session.expire_all()
    return list(
        db.session.execute(
            select(RequestEvent).where(RequestEvent.request_id == req.id).order_by(RequestEvent.id)
        ).scalars()
    )


def snapshot(req: RecordingRequest) -> tuple:
    """What a refused action must leave exactly as it was."""
    req = fresh(req)
    return (
        req.status,
        req.due_on,
        req.extended_at,
        req.refusal_reason,
        req.assigned_to_id,
        len(timeline(req)),
        db.session.execute(select(func.count(AuditEvent.seq)).where(AuditEvent.outcome == "success")).scalar_one(),
        db.session.execute(select(func.count(Release.id))).scalar_one(),
    )


def form_actions(soup: BeautifulSoup, req: RecordingRequest) -> set[str]:
    """The request's actions offered on a page, by the last part of each address: the links under "What to
    do next" and each recording's "Remove" (each action has a page of its own), and the forms on the page (on
    an action's page, its form and any second button's formaction)."""
    prefix = page_path(req) + "/"
    found = set()
    addresses = [link["href"] for link in soup.select("#next-steps a[href], #recordings-table a[href$='/remove']")]
    for form in soup.select("main form[method=post]"):
        addresses += [form["action"], *(button["formaction"] for button in form.select("[formaction]"))]
    for address in addresses:
        if address.startswith(prefix):
            action = address[len(prefix) :]
            found.add("remove" if action.endswith("/remove") else action)
    return found


# --- The page ---------------------------------------------------------------------------------------------


def test_the_request_page_shows_the_patient_identity_clock_calls_notice_and_timeline(app, clerk_browser, people):
    req = submit(people.patient)
    soup = parse(clerk_browser.get(page_path(req)))

    assert soup.h1.get_text(" ", strip=True) == f"Request {req.reference}"
    facts = {
        row.select_one("dt").get_text(" ", strip=True): row.select_one("dd").get_text(" ", strip=True)
        for row in soup.select("main .nhsuk-summary-list__row")
    }
    assert facts["Patient"] == "Ada Lovelace"
    assert soup.select_one("main dd a")["href"] == f"/admin/patients/{people.patient.account.public_id}"
    assert facts["NHS number"] == "943 476 5919"
    assert facts["Identity"].startswith("Confirmed")
    assert facts["Received"] == f"Online, {requests_service.long_date(req.received_on)}"
    assert facts["Due date"].startswith(requests_service.long_date(req.due_on))
    assert facts["Due date"].endswith("working days")  # with the days left beside it
    assert facts["Notice shown when asking"].startswith(f"Version {req.notice_version.version}, published ")
    assert facts["Description"] == DESCRIPTION
    assert facts["Spoke to"] == SPOKE_TO
    assert "Request received" in soup.select_one("#timeline-events").get_text()
    note_page = parse(clerk_browser.get(f"{page_path(req)}/notes"))
    assert note_page.select_one("textarea#note").get_text() == ""  # an empty form field, not "None"


def test_an_unknown_reference_is_a_404(clerk_browser, people):
    assert clerk_browser.get("/admin/requests/CR-2026-99999").status_code == 404
    response = post_form(
        clerk_browser, "/admin/requests/CR-2026-99999/notes", {"note": "x"}, form_page="/admin/requests"
    )
    assert response.status_code == 404


def test_what_the_patient_wrote_is_shown_as_text_not_markup(clerk_browser, people):
    details = requests_service.CallDetails(
        calls_from=date(2026, 1, 5), calls_to=date(2026, 1, 5), description='<script>alert("x")</script>'
    )
    req = requests_service.submit_request(people.patient.account, details, submission_key="k")
    body = clerk_browser.get(page_path(req)).get_data(as_text=True)
    assert '<script>alert("x")</script>' not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


STAFF_OFFERS = {
    "submitted": {"assign", "notes", "start", "clarify", "extend", "no-recordings", "refuse", "upload"},
    "clarification_requested": {"assign", "notes", "reply", "extend", "no-recordings", "refuse", "upload"},
    "in_progress": {
        "assign",
        "notes",
        "clarify",
        "extend",
        "no-recordings",
        "refuse",
        "close",
        "release/prepare",
        "upload",
        "remove",
    },
    "ready_for_approval": {"assign", "notes", "extend"},
    "released": {"assign", "notes", "release/revoke", "close"},
    "completed": {"notes"},
}


@pytest.mark.parametrize("status", sorted(STAFF_OFFERS))
def test_the_page_offers_only_the_actions_the_status_allows(clerk_browser, people, status):
    req = request_in(people, status)
    if status == "in_progress":
        attach(people, req)
    assert form_actions(parse(clerk_browser.get(page_path(req))), req) == STAFF_OFFERS[status]


def test_admins_are_offered_approval_and_reissue_where_staff_are_not(admin_browser, people):
    ready = request_in(people, "ready_for_approval")
    assert form_actions(parse(admin_browser.get(page_path(ready))), ready) == {
        "assign",
        "notes",
        "extend",
        "release/approve",
        "release/decline",
    }
    released = request_in(people, "released")
    revoke_page = parse(admin_browser.get(f"{page_path(released)}/release/revoke"))
    assert form_actions(revoke_page, released) == {"release/revoke", "release/reissue"}


@pytest.mark.parametrize(
    ("status", "action", "data", "message"),
    [
        (
            "submitted",
            "close",
            {"note": "Listened at the desk"},
            "This request is received, so that cannot be done now",
        ),
        ("submitted", "release/prepare", {}, "Attach at least one recording before preparing a release"),
        ("completed", "start", {}, "This request is completed, so that cannot be done now"),
        ("completed", "clarify", {"question": "Which day?"}, "This request is completed, so that cannot be done now"),
        ("in_progress", "reply", {"reply": "Tuesday"}, "The practice is not waiting for an answer on this request"),
        (
            "released",
            "refuse",
            {"scope": "all", "reason": "No", "confirm": "y"},
            "This request is ready to download, so that",
        ),
        ("completed", "no-recordings", {"explanation": "None"}, "This request is completed, so that cannot be"),
        (
            "in_progress",
            "release/revoke",
            {"reason": "Wrong file", "confirm": "y"},
            "This request has no released link",
        ),
    ],
)
def test_an_action_the_status_does_not_allow_is_refused_with_a_clear_message_and_changes_nothing(
    clerk_browser, people, status, action, data, message
):
    req = request_in(people, status)
    before = snapshot(req)
    response = act(clerk_browser, req, action, data)

    assert response.status_code == 400
    assert message in error_summary(response)
    assert snapshot(req) == before


# --- Each action on a page of its own -------------------------------------------------------------------

ACTION_PAGES = [
    # (status, admin, the action's address, its <h1>)
    ("awaiting_identity", False, "notes", "Add an internal note"),
    ("submitted", False, "start", "Start work on this request"),
    ("submitted", False, "assign", "Assign the request"),
    ("in_progress", False, "clarify", "Ask the patient for more information"),
    ("clarification_requested", False, "reply", "Record the patient's answer"),
    ("in_progress", False, "extend", "Extend the time limit"),
    ("in_progress", False, "no-recordings", "Close the request: no recordings found"),
    ("in_progress", False, "close", "Complete the request"),
    ("in_progress", False, "refuse", "Refuse all or part of the request"),
    ("in_progress", False, "upload", "Attach a recording"),
    ("in_progress", False, "release/prepare", "Put the recordings forward for approval"),
    ("ready_for_approval", True, "release/approve", "Check and approve the release"),
    ("ready_for_approval", True, "release/decline", "Send the release back"),
    ("released", False, "release/revoke", "Revoke the download link"),
]


@pytest.mark.parametrize(("status", "as_admin", "action", "heading"), ACTION_PAGES)
def test_each_action_the_request_page_links_to_is_a_page_with_one_form(
    clerk_browser, admin_browser, people, status, as_admin, action, heading
):
    req = request_in(people, status)
    if status == "in_progress":
        attach(people, req)
    client = admin_browser if as_admin else clerk_browser
    links = [link["href"] for link in parse(client.get(page_path(req))).select("#next-steps a")]
    assert f"{page_path(req)}/{action}" in links

    soup = parse(client.get(f"{page_path(req)}/{action}"))

    assert soup.h1.get_text(" ", strip=True) == heading
    assert soup.select_one("main .nhsuk-back-link")["href"] == page_path(req)
    [form] = soup.select("main form[method=post]")
    assert form["action"] in (f"{page_path(req)}/{action}", f"{page_path(req)}/recordings")


def test_what_to_do_next_comes_after_the_recordings_and_the_timeline(clerk_browser, people):
    req = request_in(people, "in_progress")
    attach(people, req)
    headings = [h2.get_text(strip=True) for h2 in parse(clerk_browser.get(page_path(req))).select("main h2")]
    assert headings.index("Recordings") < headings.index("Timeline") < headings.index("What to do next")


def test_an_action_page_the_status_does_not_offer_sends_staff_back_to_the_request_with_a_message(clerk_browser, people):
    req = request_in(people, "completed")
    before = snapshot(req)
    for action in ("clarify", "refuse", "upload", "release/revoke", "assign"):
        response = clerk_browser.get(f"{page_path(req)}/{action}")
        assert (response.status_code, response.headers["Location"]) == (302, page_path(req)), action
        banner = parse(clerk_browser.get(page_path(req))).select_one(".nhsuk-notification-banner")
        assert "now: this request is completed" in banner.get_text(" ", strip=True), action
    assert snapshot(req) == before


def test_after_an_action_the_request_page_shows_what_happened_in_a_banner(clerk_browser, people):
    req = request_in(people, "in_progress")
    response = act(clerk_browser, req, "clarify", {"question": "Which number did you ring from?"})
    assert (response.status_code, response.headers["Location"]) == (302, page_path(req))
    banner = parse(clerk_browser.get(page_path(req))).select_one(".nhsuk-notification-banner")
    assert "Your question has been sent" in banner.get_text()


def test_an_invalid_action_form_is_shown_again_with_the_error_beside_its_field(clerk_browser, people):
    req = request_in(people, "in_progress")
    response = act(clerk_browser, req, "clarify", {"question": "   "})
    assert response.status_code == 400
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    assert soup.select_one(".nhsuk-error-summary a[href='#question']").get_text(strip=True) == (
        "Enter the question for the patient"
    )
    assert "Enter the question for the patient" in soup.select_one("#question-error").get_text()
    assert fresh(req).status == "in_progress"


def test_action_forms_strip_and_nfc_normalise_what_staff_type(clerk_browser, people):
    req = request_in(people, "in_progress")
    act(clerk_browser, req, "notes", {"note": "  Cafe\u0301 called back  "})
    assert timeline(req)[-1].body == "Caf\u00e9 called back"


# --- Every action: audited and on the timeline -------------------------------------------------------------

ACTIONS = [
    # (starting status, form, data, audit action, timeline summary, status afterwards)
    (
        "submitted",
        "start",
        {},
        "request_status_changed",
        "The practice started work on the request",
        "in_progress",
    ),
    (
        "in_progress",
        "clarify",
        {"question": "Which number did you ring from?"},
        "request_clarification_requested",
        "The practice asked for more information",
        "clarification_requested",
    ),
    (
        "clarification_requested",
        "reply",
        {"reply": "The mobile"},
        "request_clarification_answered",
        "Reply recorded by the practice",
        "in_progress",
    ),
    (
        "in_progress",
        "extend",
        {"reason": "Many calls over a long period"},
        "request_extended",
        "Time limit extended to",
        "in_progress",
    ),
    (
        "in_progress",
        "no-recordings",
        {"explanation": "Calls older than 90 days are deleted"},
        "request_status_changed",
        "No recordings were found",
        "no_recordings_found",
    ),
    (
        "in_progress",
        "refuse",
        {"scope": "all", "reason": "Manifestly excessive: the exemption is Art 12(5)", "confirm": "y"},
        "request_status_changed",
        "Request refused",
        "refused",
    ),
    (
        "in_progress",
        "refuse",
        {"scope": "part", "reason": "One call holds a third party's details", "confirm": "y"},
        "request_partly_refused",
        "Part of the request was refused",
        "in_progress",
    ),
    (
        "in_progress",
        "close",
        {"note": "Listened at the practice on Monday"},
        "request_status_changed",
        "Request completed",
        "completed",
    ),
    ("released", "close", {}, "request_status_changed", "Request completed", "completed"),
    ("in_progress", "notes", {"note": "Rang the phone supplier"}, "request_note_added", "Internal note", "in_progress"),
]


@pytest.mark.parametrize(("status", "action", "data", "audit_action", "summary", "after"), ACTIONS)
def test_each_action_writes_an_audit_event_and_a_timeline_entry_l1(
    clerk_browser, people, status, action, data, audit_action, summary, after
):
    req = request_in(people, status)
    before_events = len(timeline(req))

    response = act(clerk_browser, req, action, data)

    assert (response.status_code, response.headers.get("Location")) == (302, page_path(req))
    assert fresh(req).status == after
    events = audit_events(req.reference, audit_action)
    assert events, f"no {audit_action} event"
    event = events[-1]
    assert (event.actor_type, event.actor_id, event.object_id) == (
        "staff",
        people.clerk.account.public_id,
        req.reference,
    )
    added = timeline(req)[before_events:]
    assert any(entry.summary.startswith(summary) for entry in added), [entry.summary for entry in added]
    shown = parse(clerk_browser.get(page_path(req))).select_one("#timeline-events").get_text()
    assert summary in shown


def test_a_refusal_sends_the_reason_with_the_rights_to_complain_to_the_ico_and_to_go_to_court(clerk_browser, people):
    req = request_in(people, "in_progress")
    soup = parse(clerk_browser.get(f"{page_path(req)}/refuse"))
    offered = soup.select_one("textarea#refusal-reason").get_text()
    assert "exemption" in offered and "[" in offered

    unchanged = act(clerk_browser, req, "refuse", {"scope": "all", "reason": offered, "confirm": "y"})
    assert unchanged.status_code == 400
    assert "Replace the parts in square brackets" in error_summary(unchanged)
    no_scope = act(clerk_browser, req, "refuse", {"reason": "A reason"})
    assert "Select whether you are refusing all or part" in error_summary(no_scope)
    assert fresh(req).status == "in_progress"

    unconfirmed = act(clerk_browser, req, "refuse", {"scope": "all", "reason": "The exemption applies"})
    assert "Confirm that you want to send this refusal to the patient" in error_summary(unconfirmed)
    assert fresh(req).status == "in_progress"

    act(
        clerk_browser,
        req,
        "refuse",
        {"scope": "all", "reason": "The exemption for third-party data applies", "confirm": "y"},
    )
    refusal = next(entry for entry in timeline(req) if entry.to_status == "refused")
    assert refusal.visible_to_patient
    assert refusal.body.startswith("The exemption for third-party data applies")
    assert RIGHTS_TEXT in refusal.body and "ico.org.uk" in refusal.body and "court" in refusal.body


def test_notes_are_internal_and_assigning_starts_work(clerk_browser, people):
    req = request_in(people, "submitted")
    act(clerk_browser, req, "notes", {"note": "Patient rang to chase"})
    note = timeline(req)[-1]
    assert (note.summary, note.body, note.visible_to_patient) == ("Internal note", "Patient rang to chase", False)

    response = act(clerk_browser, req, "assign", {"assignee": people.clerk.account.public_id})
    assert response.status_code == 302
    req = fresh(req)
    assert (req.assigned_to_id, req.status) == (people.clerk.account.id, "in_progress")
    assert audit_events(req.reference, "request_assigned")[-1].actor_id == people.clerk.account.public_id
    soup = parse(clerk_browser.get(f"{page_path(req)}/assign"))
    assert soup.select_one("select#assignee option[selected]").get_text() == "Cal Clerk"  # already theirs
    assert [option.get_text() for option in soup.select("select#assignee option")] == [
        "Nobody",
        "Ava Admin",
        "Cal Clerk",
        "Dr Dee Doctor",
    ]

    act(clerk_browser, req, "assign", {"assignee": people.admin.account.public_id})
    assert fresh(req).assigned_to_id == people.admin.account.id
    bogus = act(clerk_browser, req, "assign", {"assignee": "f" * 32})
    assert bogus.status_code == 400 and "Select a member of staff" in error_summary(bogus)
    act(clerk_browser, req, "assign", {"assignee": ""})
    assert fresh(req).assigned_to_id is None


def test_assigning_to_a_deactivated_member_of_staff_is_refused(clerk_browser, people):
    req = request_in(people, "in_progress")
    people.admin.account.is_active = False
    db.session.commit()
    response = act(clerk_browser, req, "assign", {"assignee": people.admin.account.public_id})
    assert response.status_code == 400
    assert "not active" in error_summary(response)
    assert fresh(req).assigned_to_id is None


def test_asking_for_clarification_pauses_the_clock_and_the_recorded_answer_moves_the_due_date(app, people):
    start = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        clerk_browser = signed_in_browser(app, people.clerk)
        req = request_in(people, "in_progress")
        due = req.due_on
        act(clerk_browser, req, "clarify", {"question": "Which number did you ring from?"})
        assert fresh(req).status == "clarification_requested"
        assert [email.subject for email in emails_to(people.patient.account.email)][-1].startswith(
            "We need more information"
        )
        traveller.shift(timedelta(days=5))
        clerk_browser = signed_in_browser(app, people.clerk)
        page = parse(clerk_browser.get(page_path(req)))
        assert "Which number did you ring from?" in page.get_text()
        act(clerk_browser, req, "reply", {"reply": "My mobile, he said on the phone"})
    req = fresh(req)
    assert (req.status, req.paused_days) == ("in_progress", 5)
    assert req.due_on > due


def test_an_extension_is_offered_once_before_the_original_due_date(clerk_browser, people):
    req = request_in(people, "in_progress")
    response = act(clerk_browser, req, "extend", {"reason": ""})
    assert "Enter the reason for the extension" in error_summary(response)
    act(clerk_browser, req, "extend", {"reason": "Many calls"})
    req = fresh(req)
    assert req.extended_at is not None and req.extension_reason == "Many calls"
    soup = parse(clerk_browser.get(page_path(req)))
    assert "extend" not in form_actions(soup, req)
    assert "Original due date" in soup.get_text()
    again = act(clerk_browser, req, "extend", {"reason": "More"})
    assert "already been extended" in error_summary(again)


def test_an_offline_request_without_an_account_has_its_identity_confirmed_on_the_request_page(clerk_browser, people):
    offline = requests_service.OfflineRequest(
        received_via="letter",
        received_on=requests_service.practice_today() - timedelta(days=10),
        details=requests_service.CallDetails(calls_from=date(2026, 1, 5), calls_to=date(2026, 1, 5)),
        requester_name="Bea Caller",
        requester_contact="12 High Street",
    )
    req = requests_service.log_offline_request(people.clerk.account, offline)
    assert form_actions(parse(clerk_browser.get(page_path(req))), req) >= {"identity", "refuse"}
    checked = requests_service.practice_today() - timedelta(days=3)
    response = act(
        clerk_browser,
        req,
        "identity",
        {"identity-date-day": checked.day, "identity-date-month": checked.month, "identity-date-year": checked.year},
    )
    assert response.status_code == 302
    req = fresh(req)
    assert (req.status, req.relevant_day, req.identity_confirmed_on) == ("submitted", checked, checked)
    assert audit_events(req.reference, "request_identity_confirmed")


# --- Releasing -------------------------------------------------------------------------------------------


def test_staff_cannot_approve_decline_or_reissue_a_release_g4(clerk_browser, people):
    """G4, G10: the admin-only release actions refuse the staff role (403, audited) and change nothing."""
    ready = request_in(people, "ready_for_approval")
    released = request_in(people, "released")
    before = (snapshot(ready), snapshot(released))
    for req, action, data in [
        (ready, "release/approve", {"reviewer": people.doctor.account.public_id, "review-outcome": "Fine"}),
        (ready, "release/decline", {"reason": "No"}),
        (released, "release/reissue", {"reason": "Lost email"}),
    ]:
        response = act(clerk_browser, req, action, data)
        assert response.status_code == 403, action
    refusals = (
        db.session.execute(
            select(AuditEvent).where(
                AuditEvent.action == "authz_fail", AuditEvent.actor_id == people.clerk.account.public_id
            )
        )
        .scalars()
        .all()
    )
    assert {event.object_id for event in refusals} == {
        "admin.request_approve_release",
        "admin.request_decline_release",
        "admin.request_reissue_link",
    }
    assert (snapshot(ready)[:6], snapshot(released)[:6]) == (before[0][:6], before[1][:6])
    page = parse(clerk_browser.get(page_path(ready)))
    assert "Waiting for an admin to check and approve the release" in page.get_text()


def test_with_four_eyes_the_admin_who_prepared_a_release_cannot_approve_it(doctor_browser, people):
    req = request_in(people, "in_progress")
    attach(people, req)
    assert act(doctor_browser, req, "release/prepare").status_code == 302
    assert (
        "You prepared this release, so another admin must approve it"
        in parse(doctor_browser.get(page_path(req))).get_text()
    )
    before = snapshot(req)

    response = act(doctor_browser, req, "release/approve")

    assert response.status_code == 400
    assert "Another admin must approve this release: you prepared it" in error_summary(response)
    assert snapshot(req) == before
    assert releases.pending_release(fresh(req)).approved_at is None


def test_with_four_eyes_off_the_admin_who_prepared_a_release_can_approve_it(app, doctor_browser, people, monkeypatch):
    monkeypatch.setitem(app.config, "RELEASE_FOUR_EYES", False)
    req = request_in(people, "in_progress")
    attach(people, req)
    act(doctor_browser, req, "release/prepare")

    response = act(doctor_browser, req, "release/approve")

    assert response.status_code == 302
    release = releases.live_release(fresh(req))
    assert release.prepared_by_id == release.approved_by_id == people.doctor.account.id
    assert release.clinical_review_by_id is None  # prepared by a clinician: no separate review
    assert fresh(req).status == "released"


def test_a_release_prepared_by_a_non_clinician_needs_the_clinical_review_recorded(admin_browser, people):
    req = request_in(people, "ready_for_approval")  # prepared by the clerk
    page = parse(admin_browser.get(f"{page_path(req)}/release/approve"))
    assert [option.get_text() for option in page.select("select#reviewer option")] == [
        "Select a clinician",
        "Dr Dee Doctor",
    ]
    before = snapshot(req)
    cases = [
        ({"review-outcome": "Fine"}, "reviewer", "Select the clinician who reviewed the recordings"),
        (
            {"reviewer": people.admin.account.public_id, "review-outcome": "Fine"},
            "reviewer",
            "Select the clinician who reviewed the recordings",
        ),
        ({"reviewer": people.doctor.account.public_id}, "review-outcome", "Enter the outcome of the clinical review"),
    ]
    for data, field, message in cases:
        response = act(admin_browser, req, "release/approve", data)
        assert response.status_code == 400
        assert message in error_summary(response)
        assert parse(response).select_one(f".nhsuk-error-summary a[href='#{field}']") is not None
        assert snapshot(req) == before

    response = act(
        admin_browser,
        req,
        "release/approve",
        {"reviewer": people.doctor.account.public_id, "review-outcome": "Nothing to withhold"},
    )

    assert response.status_code == 302
    release = releases.live_release(fresh(req))
    assert (release.clinical_review_by_id, release.clinical_review_outcome) == (
        people.doctor.account.id,
        "Nothing to withhold",
    )
    assert release.approved_by_id == people.admin.account.id
    approved = audit_events(req.reference, "release_approved")[-1]
    assert (approved.actor_id, approved.object_id) == (people.admin.account.public_id, release.public_id)
    assert any(entry.to_status == "released" for entry in timeline(req))
    facts = parse(admin_browser.get(page_path(req))).select_one("#releases-table").get_text(" ", strip=True)
    assert "Dr Dee Doctor" in facts and "Nothing to withhold" in facts and "0 of 3" in facts


def test_approval_emails_the_patient_a_download_link_and_nothing_about_their_health(admin_browser, people):
    req = request_in(people, "ready_for_approval")
    act(
        admin_browser,
        req,
        "release/approve",
        {"reviewer": people.doctor.account.public_id, "review-outcome": "Withheld nothing about the clinic"},
    )

    email = emails_to(people.patient.account.email)[-1]
    assert email.subject == f"Your call recordings are ready ({req.reference})"
    assert "https://localhost/downloads/" in email.body_text
    token = email.body_text.split("https://localhost/downloads/", 1)[1].split()[0]
    assert releases.check_token(token).reason == "ok"
    for private in (DESCRIPTION, "sexual health", PHONE, SPOKE_TO, "morning-call", "Withheld nothing", "clinic"):
        assert private not in email.body_text and private not in email.subject


def test_an_admin_can_send_a_release_back(admin_browser, people):
    req = request_in(people, "ready_for_approval")
    unconfirmed = act(admin_browser, req, "release/decline", {"reason": "Wrong day attached"})
    assert "Confirm that you want to send the release back" in error_summary(unconfirmed)
    assert fresh(req).status == "ready_for_approval"

    response = act(admin_browser, req, "release/decline", {"reason": "Wrong day attached", "confirm": "y"})
    assert response.status_code == 302
    assert fresh(req).status == "in_progress"
    assert releases.releases_for(fresh(req))[-1].declined_at is not None
    assert audit_events(req.reference, "release_declined")[-1].actor_id == people.admin.account.public_id
    assert timeline(req)[-1].body == "Wrong day attached"


def test_revoking_and_reissuing_stops_the_old_link_and_sends_a_new_one_h6(admin_browser, people):
    req = request_in(people, "released")
    old_token = emails_to(people.patient.account.email)[-1].body_text.split("/downloads/", 1)[1].split()[0]
    assert releases.check_token(old_token).reason == "ok"

    response = post_form(
        admin_browser,
        f"{page_path(req)}/release/reissue",
        {"reason": "The patient lost the email", "confirm": "y"},
        form_page=page_path(req),
    )

    assert response.status_code == 302
    new_email = emails_to(people.patient.account.email)[-1]
    new_token = new_email.body_text.split("/downloads/", 1)[1].split()[0]
    assert new_token != old_token
    assert releases.check_token(old_token).reason == "revoked"
    assert releases.check_token(new_token).reason == "ok"
    assert fresh(req).status == "released"
    assert audit_events(req.reference, "release_revoked")[-1].actor_id == people.admin.account.public_id
    assert audit_events(req.reference, "release_reissued")
    summaries = [entry.summary for entry in timeline(req)]
    assert summaries[-2:] == ["Download link revoked", "A new download link was emailed"]


def test_staff_can_revoke_a_link_which_sends_the_request_back_to_being_processed_h6(clerk_browser, people):
    req = request_in(people, "released")
    token = emails_to(people.patient.account.email)[-1].body_text.split("/downloads/", 1)[1].split()[0]
    assert "To send the patient a new link, ask an admin" in parse(clerk_browser.get(page_path(req))).get_text()
    empty = act(clerk_browser, req, "release/revoke", {"reason": ""})
    assert "Enter the reason for revoking the link" in error_summary(empty)
    assert releases.check_token(token).reason == "ok"

    unconfirmed = act(clerk_browser, req, "release/revoke", {"reason": "Wrong recording attached"})
    assert "Confirm that you want to stop the link working" in error_summary(unconfirmed)
    assert releases.check_token(token).reason == "ok"

    act(clerk_browser, req, "release/revoke", {"reason": "Wrong recording attached", "confirm": "y"})

    assert releases.check_token(token).reason == "revoked"
    assert fresh(req).status == "in_progress"
    assert audit_events(req.reference, "release_revoked")[-1].actor_id == people.clerk.account.public_id


# --- A fresh second factor for what changes what the patient gets ---------------------------------------


FRESH_ACTIONS = ["clarify", "extend", "no-recordings", "refuse", "close", "release/prepare", "identity"]


@pytest.mark.parametrize("action", FRESH_ACTIONS)
def test_with_a_stale_second_factor_an_action_asks_to_confirm_it_is_you_and_changes_nothing_e12(app, people, action):
    with time_machine.travel(datetime(2026, 9, 7, 9, 0, tzinfo=UTC), tick=False) as traveller:
        req = request_in(people, "in_progress")
        attach(people, req)
        client = signed_in_browser(app, people.clerk)
        traveller.shift(timedelta(minutes=10))
        assert client.get(page_path(req)).status_code == 200
        traveller.shift(timedelta(minutes=6))
        before = snapshot(req)

        response = act(client, req, action, {"reason": "r", "question": "q", "explanation": "e", "scope": "all"})

        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert (location.path, parse_qs(location.query)) == ("/admin/confirm-it-is-you", {"next": [page_path(req)]})
        assert snapshot(req) == before
        # Notes and assignment need no fresh second factor.
        assert act(client, req, "notes", {"note": "Still looking"}).status_code == 302


# --- Complaints -------------------------------------------------------------------------------------------


def test_staff_acknowledge_a_complaint_on_the_request_page(clerk_browser, people):
    req = request_in(people, "in_progress")
    complaint = requests_service.complain(people.patient.account, req, "Nobody has called me back")
    soup = parse(clerk_browser.get(page_path(req)))
    assert "Nobody has called me back" in soup.select_one("#complaints ~ p").get_text()
    path = f"/admin/complaints/{complaint.public_id}/acknowledge"

    empty = post_form(clerk_browser, path, {"message": ""}, form_page=page_path(req))
    assert empty.status_code == 400
    assert "Enter the acknowledgement the patient will see" in error_summary(empty)

    response = post_form(clerk_browser, path, {"message": "We are looking into it"}, form_page=page_path(req))

    assert (response.status_code, response.headers["Location"]) == (302, page_path(req))
    db.session.expire_all()
    complaint = db.session.get(Complaint, complaint.id)
    assert complaint.acknowledged_at is not None and complaint.acknowledged_by_id == people.clerk.account.id
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "complaint_acknowledged")).scalar_one()
    assert (event.actor_id, event.object_id) == (people.clerk.account.public_id, complaint.public_id)
    assert timeline(req)[-1].summary == "The practice acknowledged the complaint"
    again = post_form(clerk_browser, path, {"message": "Again"}, form_page=page_path(req))
    assert "already been acknowledged" in error_summary(again)
    assert (
        post_form(
            clerk_browser, "/admin/complaints/" + "0" * 32 + "/acknowledge", {"message": "x"}, form_page=page_path(req)
        ).status_code
        == 404
    )


def test_every_staff_action_form_needs_the_csrf_token_j1(clerk_browser, people):
    req = request_in(people, "in_progress")
    before = snapshot(req)
    for action, data in [("notes", {"note": "x"}), ("clarify", {"question": "q"}), ("refuse", {"scope": "all"})]:
        response = clerk_browser.post(
            f"{page_path(req)}/{action}", data=data, headers={"Referer": "https://localhost/"}
        )
        assert response.status_code == 400, action
    assert snapshot(req) == before


def test_staff_pages_are_never_cached(clerk_browser, people):
    response = clerk_browser.get(page_path(submit(people.patient)))
    assert "no-store" in response.headers["Cache-Control"]
