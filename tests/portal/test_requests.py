"""A patient asking for copies of their call recordings, through the pages as a person uses them: the form,
the "Check your request" page, a fresh second factor, the confirmation, and then the request's own page
(status, due date, timeline, answering a question, withdrawing, complaining, asking for a new link).

Every test talks HTTPS to the application with CSRF on. Today is fixed at Thursday 3 September 2026, whose
due date is Monday 5 October 2026 (DESIGN §4: 3 October is a Saturday).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core import legal_clock
from core.extensions import db
from core.models.accounts import WebSession
from core.models.requests import Complaint, RecordingRequest, RequestEvent
from core.services import recordings, releases
from core.services import requests as requests_service
from core.services.content import current_version
from core.services.requests import CallDetails
from tests.accounts_support import (
    SignInAccount,
    emails_to,
    make_patient,
    make_staff,
    post_form,
    signed_in_browser,
)
from tests.conftest import Pages
from tests.session_support import tamper_with_session_value

NOW = datetime(2026, 9, 3, 10, 0, tzinfo=UTC)  # Thursday 3 September 2026, 11am in London
TODAY = date(2026, 9, 3)
DUE = date(2026, 10, 5)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
DESCRIPTION = "I rang about my blood test results.\nThe receptionist said a doctor would call me back."
GOOD_ANSWERS = {
    "calls-from-day": "1",
    "calls-from-month": "9",
    "calls-from-year": "2026",
    "approximate-time": "about 10am",
    "phone-number": "+44 7700 900 982",
    "spoke-to": "The receptionist",
    "description": DESCRIPTION,
    "preferred-format": "download",
}
REFERENCE = re.compile(r"^CR-2026-\d{5}$")


# ---------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def clock():
    """Today is 3 September 2026 (the clock keeps ticking from there; tests move it with `shift`)."""
    with time_machine.travel(NOW) as traveller:
        yield traveller


@pytest.fixture
def patient(clock) -> SignInAccount:
    return make_patient(verified=True)


@pytest.fixture
def patient_browser(app, patient) -> FlaskClient:
    return signed_in_browser(app, patient)


def parse(response) -> BeautifulSoup:
    return Pages.parse(response)


def fill_in_form(client: FlaskClient, answers: dict | None = None):
    return post_form(client, "/requests/new", GOOD_ANSWERS if answers is None else answers)


def check_page(client: FlaskClient) -> tuple[BeautifulSoup, dict]:
    """The check page, and the form fields its "Submit request" button sends."""
    response = client.get("/requests/new/check")
    assert response.status_code == 200, response.status_code
    soup = parse(response)
    form = soup.find("form", action="/requests/new/check")
    fields = {field["name"]: field["value"] for field in form.find_all("input", type="hidden")}
    assert set(fields) == {"csrf_token", "submission-key"}
    return soup, fields


def submit(client: FlaskClient, fields: dict, extra: dict | None = None):
    return client.post(
        "/requests/new/check",
        data={**fields, **(extra or {})},
        headers={"Referer": "https://localhost/requests/new/check"},
    )


def ask_for_recordings(client: FlaskClient, answers: dict | None = None) -> RecordingRequest:
    """The whole form journey; returns the request made."""
    assert fill_in_form(client, answers).status_code == 302
    _, fields = check_page(client)
    response = submit(client, fields)
    assert response.status_code == 302, response.status_code
    reference = re.fullmatch(r"/requests/(CR-\d{4}-\d{5})/submitted", response.headers["Location"]).group(1)
    return requests_service.request_by_reference(reference)


def nothing_to_check(client: FlaskClient) -> bool:
    """True when the check page has no answers kept for this patient (and so no "Submit request" button)."""
    soup = parse(client.get("/requests/new/check"))
    submit_form = soup.find("form", action="/requests/new/check")
    return "There are no answers to check" in soup.get_text() and submit_form is None


def request_count() -> int:
    return db.session.execute(select(func.count(RecordingRequest.id))).scalar_one()


def lines(element) -> list[str]:
    """The lines of a text shown with its line breaks (the design-system macros indent what they wrap)."""
    return [line.strip() for line in element.get_text().strip().splitlines()]


def error_summary(soup: BeautifulSoup) -> list[str]:
    summary = soup.select_one(".nhsuk-error-summary")
    return [item.get_text(strip=True) for item in summary.select("li")] if summary else []


def made_by_service(patient: SignInAccount, key: str = "service-key", **changes) -> RecordingRequest:
    details = CallDetails(calls_from=date(2026, 9, 1), calls_to=date(2026, 9, 1), description=DESCRIPTION, **changes)
    return requests_service.submit_request(patient.account, details, submission_key=key)


def fresh(req: RecordingRequest) -> RecordingRequest:
    db.session.expire_all()
    return db.session.get(RecordingRequest, req.id)


# ---------------------------------------------------------------------------------------------------------
# Asking for recordings
# ---------------------------------------------------------------------------------------------------------


def test_a_patient_with_no_requests_sees_an_empty_list_with_a_start_button(patient_browser):
    soup = parse(patient_browser.get("/requests"))
    assert "You have not asked for any call recordings yet" in soup.get_text()
    start = soup.find("a", class_="nhsuk-button")
    assert start["href"] == "/requests/new"
    assert soup.find("table") is None
    header_links = {link.get_text(strip=True): link["href"] for link in soup.select("header a")}
    assert header_links["Your requests"] == "/requests"


def test_a_verified_patient_asks_for_recordings_checks_the_answers_and_gets_a_reference_and_due_date(
    patient_browser, patient
):
    form = parse(patient_browser.get("/requests/new"))
    for field in ("calls-from-day", "calls-to-year", "approximate-time", "phone-number", "spoke-to", "description"):
        assert form.find(id=field) is not None, field
    assert not form.find(id="share-with-nhs-england").has_attr("checked"), "consent must start unticked"
    assert form.find(id="description").get_text() == ""

    response = fill_in_form(patient_browser)
    assert response.headers["Location"] == "/requests/new/check"
    assert request_count() == 0, "nothing is made before the patient checks and submits"

    soup, fields = check_page(patient_browser)
    summary = {
        row.select_one(".nhsuk-summary-list__key").get_text(strip=True): row.select_one(
            ".nhsuk-summary-list__value"
        ).get_text(strip=True)
        for row in soup.select(".nhsuk-summary-list__row")
    }
    assert summary["Date of the call"] == "1 September 2026"
    assert summary["Phone number"] == "+44 7700 900 982"
    assert summary["How you want the recordings"] == "Download the recordings"
    assert summary["Share with NHS England for a complaint"] == "No"
    description = soup.select_one(".portal-preserve-lines")
    assert lines(description) == DESCRIPTION.splitlines()  # line break kept, shown by CSS white-space: pre-line
    assert soup.select_one(".nhsuk-card--warning") is None, "a recent call needs no warning"

    response = submit(patient_browser, fields)
    req = db.session.execute(select(RecordingRequest)).scalar_one()
    assert response.headers["Location"] == f"/requests/{req.reference}/submitted"
    assert REFERENCE.match(req.reference)
    assert req.patient_id == patient.account.id
    assert (req.status, req.received_via, req.received_on) == ("submitted", "online", TODAY)
    assert req.due_on == legal_clock.due_date(TODAY) == DUE
    assert (req.calls_from, req.calls_to) == (date(2026, 9, 1), date(2026, 9, 1))
    assert (req.approximate_time, req.phone_number, req.spoke_to) == (
        "about 10am",
        "+44 7700 900 982",
        "The receptionist",
    )
    assert req.description == DESCRIPTION
    assert (req.preferred_format, req.share_with_nhs_england) == ("download", False)
    # The version of the call-recording notice published when the patient asked.
    assert req.notice_version_id is not None
    assert req.notice_version_id == current_version("call-recording-notice").id

    confirmation = parse(patient_browser.get(response.headers["Location"]))
    panel = confirmation.select_one(".nhsuk-panel")
    assert panel.find("h1").get_text(strip=True) == "Request sent"
    assert req.reference in panel.get_text()
    assert "Monday 5 October 2026" in confirmation.get_text()
    assert patient.account.email in confirmation.get_text()
    assert "What happens next" in confirmation.get_text()

    # The answers are no longer kept once the request is made.
    assert nothing_to_check(patient_browser)


def test_the_confirmation_email_gives_the_reference_and_due_date_but_no_health_details(patient_browser, patient):
    """L3, DESIGN §6: an email never says what the calls were about."""
    req = ask_for_recordings(patient_browser)
    [message] = emails_to(patient.account.email)
    assert req.reference in message.subject
    assert req.reference in message.body_text
    assert "Monday 5 October 2026" in message.body_text
    for private in ("blood test", "receptionist said", "7700 900 982", "about 10am", DESCRIPTION):
        assert private not in message.body_text
        assert private not in message.subject


def test_references_are_numbered_per_year_and_the_list_shows_the_newest_first(patient_browser):
    first = ask_for_recordings(patient_browser)
    second = ask_for_recordings(patient_browser, {**GOOD_ANSWERS, "calls-from-day": "2"})
    assert (first.reference, second.reference) == ("CR-2026-00001", "CR-2026-00002")

    soup = parse(patient_browser.get("/requests"))
    for heading in soup.select("tbody .nhsuk-table-responsive__heading"):  # shown only on a phone, hidden from AT
        heading.decompose()
    rows = soup.select("table tbody tr")
    assert [row.find("a").get_text(strip=True) for row in rows] == ["CR-2026-00002", "CR-2026-00001"]
    cells = [cell.get_text(" ", strip=True) for cell in rows[1].find_all("td")]
    assert cells == ["CR-2026-00001", "1 September 2026", "Received", "Monday 5 October 2026"]
    assert soup.find("caption") is not None


def test_a_double_clicked_submit_makes_one_request(patient_browser, patient):
    """The same submission key sent twice (the second after the first has finished) leads to one request, one
    email, and the same confirmation page."""
    fill_in_form(patient_browser)
    _, fields = check_page(patient_browser)
    first = submit(patient_browser, fields)
    second = submit(patient_browser, fields)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert request_count() == 1
    assert len(emails_to(patient.account.email)) == 1


def test_each_time_the_answers_are_checked_they_get_a_new_submission_key(patient_browser):
    """Two different requests, sent one after the other, are two requests (a key is not reused)."""
    fill_in_form(patient_browser)
    _, first_fields = check_page(patient_browser)
    submit(patient_browser, first_fields)
    fill_in_form(patient_browser, {**GOOD_ANSWERS, "calls-from-day": "2"})
    _, second_fields = check_page(patient_browser)
    assert first_fields["submission-key"] != second_fields["submission-key"]
    submit(patient_browser, second_fields)
    assert request_count() == 2


def test_a_stale_check_page_does_not_submit_answers_it_did_not_show(patient_browser):
    """A check page from before the answers changed (another tab) sends the patient back to check again."""
    fill_in_form(patient_browser)
    _, old_fields = check_page(patient_browser)
    fill_in_form(patient_browser, {**GOOD_ANSWERS, "calls-from-day": "2"})
    response = submit(patient_browser, old_fields)
    assert response.headers["Location"] == "/requests/new/check"
    assert request_count() == 0


def test_submitting_needs_a_recent_second_factor_and_the_answers_survive_confirming_it(patient_browser, patient, clock):
    """DESIGN §5 (E12): 16 minutes after signing in, "Submit request" asks for the password and a code first;
    nothing is made until then, and afterwards the check page still has the patient's answers."""
    fill_in_form(patient_browser)
    _, fields = check_page(patient_browser)
    clock.shift(timedelta(minutes=16))

    response = submit(patient_browser, fields)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/confirm-it-is-you?next=/requests/new/check"
    assert request_count() == 0

    response = post_form(
        patient_browser,
        "/account/confirm-it-is-you?next=/requests/new/check",
        {"password": patient.password, "code": patient.code()},
    )
    assert response.headers["Location"] == "/requests/new/check"
    soup, fields_after = check_page(patient_browser)
    assert lines(soup.select_one(".portal-preserve-lines")) == DESCRIPTION.splitlines()
    assert fields_after["submission-key"] == fields["submission-key"]

    response = submit(patient_browser, fields_after)
    assert re.fullmatch(r"/requests/CR-2026-00001/submitted", response.headers["Location"])
    assert request_count() == 1


def test_the_answers_waiting_to_be_checked_are_encrypted_in_the_session_store(patient_browser):
    """L3 / DESIGN §6: between the form and the submit the answers wait in the server-side session; what they
    say about the patient's health is not readable from a copy of the session table."""
    fill_in_form(patient_browser)
    stored = " ".join(db.session.execute(select(WebSession.data)).scalars())
    assert "blood test" not in stored and "receptionist" not in stored
    check_page(patient_browser)  # and the check page can still read them


def test_answers_changed_in_the_session_store_are_treated_as_never_filled_in(patient_browser):
    """An edit of the session table cannot feed the service answers: the draft fails its check, and the patient
    is asked to fill the form in again (never an error page)."""
    fill_in_form(patient_browser)
    _, fields = check_page(patient_browser)
    assert tamper_with_session_value("request-draft") == 1
    assert nothing_to_check(patient_browser)
    response = submit(patient_browser, fields)
    assert (response.status_code, response.headers["Location"]) == (302, "/requests/new")
    assert "Your answers were not saved" in patient_browser.get("/requests/new").get_data(as_text=True)
    assert request_count() == 0


def test_going_back_to_change_an_answer_shows_the_form_filled_in(patient_browser):
    fill_in_form(patient_browser, {**GOOD_ANSWERS, "calls-to-day": "2", "calls-to-month": "9", "calls-to-year": "2026"})
    soup, _ = check_page(patient_browser)
    change = soup.select_one(".nhsuk-summary-list__actions a")
    assert change["href"].startswith("/requests/new#")
    form = parse(patient_browser.get("/requests/new"))
    assert form.find(id="calls-from-day")["value"] == "1"
    assert form.find(id="calls-to-day")["value"] == "2"
    assert form.find(id="description").get_text() == DESCRIPTION
    assert form.find("input", {"name": "preferred-format", "value": "download"}).has_attr("checked")


BAD_ANSWERS = [
    pytest.param(
        {"calls-from-day": "4"},
        "calls-from-day",
        "The date of the call must be today or in the past",
        id="future-date",
    ),
    pytest.param(
        {"calls-from-day": "31", "calls-from-month": "2"},
        "calls-from-day",
        "Date of the call must be a real date, like 15 3 2026",
        id="impossible-date",
    ),
    pytest.param(
        {"calls-from-day": "29", "calls-from-month": "2", "calls-from-year": "2025"},
        "calls-from-day",
        "Date of the call must be a real date, like 15 3 2026",
        id="29-february-in-a-common-year",
    ),
    pytest.param(
        {"calls-from-month": "September"},
        "calls-from-day",
        "Date of the call must be a real date, like 15 3 2026",
        id="month-in-words",
    ),
    pytest.param(
        {"calls-from-year": "26"},
        "calls-from-day",
        "Date of the call must be a real date, like 15 3 2026",
        id="two-digit-year",
    ),
    pytest.param(
        {"calls-from-day": "", "calls-from-month": "", "calls-from-year": ""},
        "calls-from-day",
        "Enter the date of the call",
        id="no-date",
    ),
    pytest.param(
        {"calls-from-month": ""},
        "calls-from-month",
        "The date of the call must include a month",
        id="missing-month",
    ),
    pytest.param(
        {"calls-from-day": "3", "calls-to-day": "1", "calls-to-month": "9", "calls-to-year": "2026"},
        "calls-to-day",
        "The date of the last call must be the same as or after the date of the call",
        id="inverted-range",
    ),
    pytest.param(
        {"calls-to-day": "10", "calls-to-month": "9", "calls-to-year": "2026"},
        "calls-to-day",
        "The date of the last call must be today or in the past",
        id="range-ending-in-the-future",
    ),
    pytest.param(
        {"calls-to-day": "30", "calls-to-month": "9"},
        "calls-to-year",
        "The date of the last call must include a year",
        id="range-end-missing-year",
    ),
    pytest.param({"description": "   "}, "description", "Enter a description of the calls", id="no-description"),
    pytest.param(
        {"description": "x" * 2001}, "description", "Description must be 2,000 characters or fewer", id="long-text"
    ),
    pytest.param(
        {"phone-number": "call me on 0123"},
        "phone-number",
        "Enter a phone number using only numbers, spaces and +, like 020 7946 0000",
        id="phone-with-words",
    ),
    pytest.param(
        {"phone-number": "0" * 21}, "phone-number", "Phone number must be 20 characters or fewer", id="long-phone"
    ),
    pytest.param(
        {"preferred-format": "fax"},
        "preferred-format",
        "Select how you would like to get the recordings",
        id="unknown-format",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_ANSWERS)
def test_bad_answers_are_refused_with_a_clear_message_next_to_the_field(patient_browser, changes, field, message):
    """M2: a clear message and a 400, never a 500; the error summary links to the field; nothing is kept."""
    response = fill_in_form(patient_browser, {**GOOD_ANSWERS, **changes})
    assert response.status_code == 400
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    assert error_summary(soup) == [message]
    assert soup.select_one(".nhsuk-error-summary a")["href"] == f"#{field}"
    assert soup.find(id=field) is not None
    assert message in soup.select_one(".nhsuk-error-message").get_text()
    assert request_count() == 0
    assert nothing_to_check(patient_browser)


def test_the_limit_is_written_the_same_way_in_the_hint_and_the_error(patient_browser):
    """The character count's own text and the error both say "2,000", not "2000"."""
    soup = parse(fill_in_form(patient_browser, {**GOOD_ANSWERS, "description": "x" * 2001}))
    hint = soup.select_one("#description-info").get_text(strip=True)
    assert hint == "You can enter up to 2,000 characters"
    assert error_summary(soup) == ["Description must be 2,000 characters or fewer"]


def test_a_description_at_the_limit_is_accepted_with_line_breaks_counted_once(patient_browser):
    """The character count counts a line break as one character; browsers send it as two (CR LF)."""
    text = ("a" * 99 + "\r\n") * 20  # 2,000 characters as the patient sees them
    response = fill_in_form(patient_browser, {**GOOD_ANSWERS, "description": text.strip()})
    assert response.status_code == 302


def test_a_call_older_than_the_practice_keeps_recordings_gets_a_warning_not_a_refusal(patient_browser, app):
    """Recordings are kept RECORDINGS_KEPT_MONTHS (36 by default): older calls are warned about on the check
    page, and the request can still be sent."""
    assert app.config["RECORDINGS_KEPT_MONTHS"] == 36
    response = fill_in_form(patient_browser, {**GOOD_ANSWERS, "calls-from-day": "2", "calls-from-year": "2023"})
    assert response.status_code == 302
    soup, fields = check_page(patient_browser)
    warning = soup.select_one(".nhsuk-card--warning")
    assert "may no longer have recordings of calls before 3 September 2023" in warning.get_text()
    assert submit(patient_browser, fields).status_code == 302
    assert request_count() == 1


def test_an_unverified_patients_request_waits_for_identity_with_no_due_date(app, clock):
    patient = make_patient(verified=False)
    client = signed_in_browser(app, patient)
    fill_in_form(client)
    soup, _fields = check_page(client)
    assert "once we have" in soup.select_one(".nhsuk-inset-text").get_text()
    req = ask_for_recordings(client)
    req = fresh(req)
    assert req.status == "awaiting_identity"
    assert req.due_on is None and req.relevant_day is None

    confirmation = parse(client.get(f"/requests/{req.reference}/submitted")).get_text()
    assert "The time limit starts when the practice has confirmed your identity" in confirmation
    assert "We must reply by" not in confirmation
    listing = parse(client.get("/requests")).select_one("table tbody tr").get_text(" ", strip=True)
    assert "Starts when your identity is confirmed" in listing
    detail = parse(client.get(f"/requests/{req.reference}"))
    assert "The time limit starts when your identity is confirmed" in detail.get_text()
    [message] = emails_to(patient.account.email)
    assert "confirm your identity" in message.body_text


def test_extra_fields_in_the_form_cannot_set_the_status_owner_reference_or_dates(app, patient_browser, patient):
    """G5: the form reads only its own fields; status, patient, reference and due date are the service's."""
    other = make_patient(email="other@example.org", nhs_number="9434765870")
    extra = {
        "status": "released",
        "patient_id": str(other.account.id),
        "patient-id": str(other.account.id),
        "reference": "CR-1999-00001",
        "due_on": "2030-01-01",
        "received_on": "2020-01-01",
        "notice_version_id": "999",
        "submission_key": "chosen-by-the-patient",
        "paused_days": "90",
    }
    assert fill_in_form(patient_browser, {**GOOD_ANSWERS, **extra}).status_code == 302
    _, fields = check_page(patient_browser)
    submit(patient_browser, fields, extra)
    req = db.session.execute(select(RecordingRequest)).scalar_one()
    assert req.patient_id == patient.account.id
    assert (req.status, req.reference, req.due_on, req.received_on) == ("submitted", "CR-2026-00001", DUE, TODAY)
    assert req.paused_days == 0
    assert req.submission_key == fields["submission-key"]
    assert req.notice_version_id == current_version("call-recording-notice").id


def test_what_a_patient_types_is_shown_as_text_never_as_markup(patient_browser):
    """X-series / DESIGN §8: a script in the description comes out escaped on the check and detail pages."""
    script = "<script>alert('x')</script>"
    req = ask_for_recordings(patient_browser, {**GOOD_ANSWERS, "description": script})
    page = patient_browser.get(f"/requests/{req.reference}").get_data(as_text=True)
    assert script not in page
    assert "&lt;script&gt;" in page


# ---------------------------------------------------------------------------------------------------------
# The request's page
# ---------------------------------------------------------------------------------------------------------


def test_the_request_page_shows_status_due_date_calls_and_timeline(patient_browser):
    req = ask_for_recordings(patient_browser, {**GOOD_ANSWERS, "share-with-nhs-england": "yes"})
    soup = parse(patient_browser.get(f"/requests/{req.reference}"))
    assert req.reference in soup.find("h1").get_text()
    assert soup.select_one(".nhsuk-tag").get_text(strip=True) == "Received"
    text = soup.get_text(" ", strip=True)
    assert "Reply due by Monday 5 October 2026" in text
    assert "Share with NHS England for a complaint Yes" in text
    assert soup.select_one(".portal-timeline").get_text(" ", strip=True).startswith("Request received")
    withdraw = soup.find("a", href=f"/requests/{req.reference}/withdraw")
    assert withdraw is not None
    assert soup.find("a", href=f"/requests/{req.reference}/complaint") is not None
    assert soup.find("form", action=f"/requests/{req.reference}/reply") is None


def test_answering_a_question_restarts_the_clock_and_moves_the_due_date_by_the_pause(app, clock):
    """DESIGN §4: the clock stands still while the practice waits for an answer it needs. Asked on
    Thursday 10 September and answered on Thursday 17 September, the due date moves 7 days: 3 October plus 7
    is Saturday 10 October, so Monday 12 October."""
    patient = make_patient(verified=True)
    staff = make_staff()
    req = made_by_service(patient)
    assert req.due_on == DUE

    clock.move_to(datetime(2026, 9, 10, 9, 0, tzinfo=UTC))
    requests_service.start_work(staff.account, req)
    requests_service.ask_for_clarification(staff.account, req, "Which number did you call from?\nHome or mobile?")

    clock.move_to(datetime(2026, 9, 17, 9, 0, tzinfo=UTC))
    client = signed_in_browser(app, patient)
    page = parse(client.get(f"/requests/{req.reference}"))
    assert page.select_one(".nhsuk-tag").get_text(strip=True) == "Waiting for more information"
    assert "paused until you answer" in page.get_text()
    assert page.find(id="answer").get_text() == ""
    question = page.select_one(".nhsuk-inset-text .portal-preserve-lines")
    assert lines(question) == ["Which number did you call from?", "Home or mobile?"]

    empty = post_form(
        client, f"/requests/{req.reference}/reply", {"answer": " "}, form_page=f"/requests/{req.reference}"
    )
    assert empty.status_code == 400
    assert error_summary(parse(empty)) == ["Enter your answer"]

    response = post_form(
        client, f"/requests/{req.reference}/reply", {"answer": "My mobile."}, form_page=f"/requests/{req.reference}"
    )
    assert response.headers["Location"] == f"/requests/{req.reference}"
    req = fresh(req)
    assert (req.status, req.paused_days) == ("in_progress", 7)
    assert req.due_on == legal_clock.due_date(TODAY, paused_days=7) == date(2026, 10, 12)

    page = parse(client.get(f"/requests/{req.reference}"))
    text = page.get_text(" ", strip=True)
    assert "We have sent your answer to the practice." in text
    assert "Reply due by Monday 12 October 2026" in text
    assert "My mobile." in page.select_one(".portal-timeline").get_text()
    assert page.find("form", action=f"/requests/{req.reference}/reply") is None

    again = post_form(client, f"/requests/{req.reference}/reply", {"answer": "Again"}, form_page="/requests")
    assert again.status_code == 400
    assert error_summary(parse(again)) == ["The practice is not waiting for an answer on this request."]


def test_a_patient_withdraws_an_open_request_after_confirming(patient_browser, patient):
    req = made_by_service(patient)
    page = parse(patient_browser.get(f"/requests/{req.reference}/withdraw"))
    assert "Are you sure" in page.find("h1").get_text()
    assert fresh(req).status == "submitted", "the confirmation page changes nothing"

    response = post_form(patient_browser, f"/requests/{req.reference}/withdraw", {})
    assert response.headers["Location"] == f"/requests/{req.reference}"
    assert fresh(req).status == "withdrawn"
    page = parse(patient_browser.get(f"/requests/{req.reference}"))
    assert page.select_one(".nhsuk-tag").get_text(strip=True) == "Withdrawn"
    assert "You have withdrawn your request" in page.get_text()
    assert page.find("a", href=f"/requests/{req.reference}/withdraw") is None
    assert "You withdrew your request" in emails_to(patient.account.email)[-1].subject

    again = post_form(patient_browser, f"/requests/{req.reference}/withdraw", {})
    assert again.status_code == 400
    assert error_summary(parse(again)) == ["This request is withdrawn, so that cannot be done now."]


def test_a_complaint_is_recorded_with_its_30_day_acknowledgement_date(patient_browser, patient):
    """DPA 2018 s.164A: received 3 September 2026, acknowledged by Saturday 3 October 2026 (30 days)."""
    req = made_by_service(patient)
    path = f"/requests/{req.reference}/complaint"
    empty = post_form(patient_browser, path, {"complaint": ""})
    assert empty.status_code == 400
    assert error_summary(parse(empty)) == ["Enter your complaint"]
    assert parse(empty).title.get_text().startswith("Error: ")

    response = post_form(patient_browser, path, {"complaint": "Nobody has replied to my messages."})
    assert response.headers["Location"] == f"/requests/{req.reference}"
    complaint = db.session.execute(select(Complaint)).scalar_one()
    assert complaint.request_id == req.id
    assert complaint.acknowledge_by == TODAY + timedelta(days=30) == date(2026, 10, 3)

    page = parse(patient_browser.get(f"/requests/{req.reference}")).get_text(" ", strip=True)
    assert "We will acknowledge it by Saturday 3 October 2026" in page
    assert "We will acknowledge your complaint by Saturday 3 October 2026" in page
    message = emails_to(patient.account.email)[-1]
    assert "Nobody has replied" not in message.body_text


def test_a_refusal_shows_the_reason_with_the_right_to_complain_to_the_ico_and_go_to_court(patient_browser, patient):
    staff = make_staff()
    req = made_by_service(patient)
    requests_service.refuse(staff.account, req, "The calls you describe were not recorded.", partly=False)
    page = parse(patient_browser.get(f"/requests/{req.reference}")).get_text(" ", strip=True)
    assert "Why we refused your request" in page
    assert "The calls you describe were not recorded." in page
    assert "Information Commissioner's Office" in page
    assert "court" in page


def test_an_extension_shows_the_reason_and_the_later_due_date(patient_browser, patient):
    staff = make_staff()
    req = made_by_service(patient)
    requests_service.extend(staff.account, req, "You asked for calls over two years.")
    page = parse(patient_browser.get(f"/requests/{req.reference}")).get_text(" ", strip=True)
    assert "Why we need more time" in page
    assert "You asked for calls over two years." in page
    assert "Reply due by Thursday 3 December 2026 (extended)" in page


def release_recordings(req: RecordingRequest) -> None:
    """Staff attach a recording, a clinician admin prepares the release and another admin approves it."""
    preparer = make_staff(email="clinician@practice.example", name="Dr Cole", role="admin")
    preparer.account.is_clinician = True
    db.session.commit()
    approver = make_staff(email="manager@practice.example", name="Pat Manager", role="admin")
    requests_service.start_work(preparer.account, req)
    with (FIXTURES / "call-sample.wav").open("rb") as stream:
        recordings.attach_recording(preparer.account, req, stream, recordings.RecordingDetails("call.wav"))
    releases.prepare_release(preparer.account, req)
    releases.approve_release(approver.account, req)


def test_a_patient_asks_for_a_new_download_link_and_it_appears_on_the_timeline(
    patient_browser, patient, app, monkeypatch, tmp_path
):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path))
    req = made_by_service(patient)
    path = f"/requests/{req.reference}/new-link"
    refused = post_form(patient_browser, path, {}, form_page=f"/requests/{req.reference}")
    assert refused.status_code == 400, "there is no link yet"
    assert error_summary(parse(refused)) == ["There is no download link on this request."]

    release_recordings(req)
    page = parse(patient_browser.get(f"/requests/{req.reference}"))
    assert "We have emailed you a link to download your recordings" in page.get_text()
    assert page.find("a", href=f"/requests/{req.reference}/withdraw") is None

    response = post_form(patient_browser, path, {}, form_page=f"/requests/{req.reference}")
    assert response.headers["Location"] == f"/requests/{req.reference}"
    page = parse(patient_browser.get(f"/requests/{req.reference}"))
    assert "We have asked the practice to send you a new link" in page.get_text()
    assert "The patient asked for a new download link" in page.select_one(".portal-timeline").get_text()
    asked = db.session.execute(
        select(func.count(RequestEvent.id)).where(
            RequestEvent.request_id == req.id, RequestEvent.summary == "The patient asked for a new download link"
        )
    ).scalar_one()
    assert asked == 1


def test_the_account_page_links_to_the_patients_requests(patient_browser):
    soup = parse(patient_browser.get("/account"))
    links = {link["href"] for link in soup.select("main a")}
    assert {"/requests", "/requests/new"} <= links
