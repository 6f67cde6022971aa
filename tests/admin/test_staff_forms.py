"""What staff notice of the staff forms being WTForms classes (admin.forms): a refusal from a service appears
beside the field it names and in the error summary; text reaches the services trimmed and in composed Unicode
(NFC); fields a form does not declare are ignored. Time is frozen on Monday 2 March 2026, 10:00 in London."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import select

from admin.forms import OfflineRequestForm
from core.extensions import db
from core.forms import FormErrors
from core.models.requests import RecordingRequest
from core.services import requests as requests_service
from core.services.requests import CallDetails, OfflineRequest, RequestError
from core.services.settings import practice_settings
from tests.accounts_support import make_patient, make_staff, post_form, signed_in_browser

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TODAY = date(2026, 3, 2)
LOG_OFFLINE = "/admin/requests/new"
SETTINGS = "/admin/settings"


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin_browser(app) -> FlaskClient:
    return signed_in_browser(app, make_staff(email="ava@practice.example", name="Ava Admin", role="admin"))


def parse(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def summary_links(soup: BeautifulSoup) -> dict[str, str]:
    """The error summary: each link's target -> its text."""
    return {link["href"]: link.get_text(" ", strip=True) for link in soup.select(".nhsuk-error-summary a")}


def message_beside(soup: BeautifulSoup, field_id: str) -> str:
    """The error message in the nearest form group holding the element `field_id` that has one (a date's boxes
    each sit in a group of their own, inside the date's), without "Error:"."""
    for group in soup.select_one(f"#{field_id}").find_parents(class_="nhsuk-form-group"):
        if (message := group.select_one(".nhsuk-error-message")) is not None:
            return message.get_text(" ", strip=True).removeprefix("Error:").strip()
    raise AssertionError(f"no message beside #{field_id}")


def offline_answers(**changes) -> dict:
    answers = {
        "received-via": "letter",
        "received-day": "20",
        "received-month": "2",
        "received-year": "2026",
        "requester": "unregistered",
        "requester-name": "Bea Caller",
        "requester-contact": "12 High Street, Anytown",
        "identity-checked": "no",
        "calls-from-day": "10",
        "calls-from-month": "2",
        "calls-from-year": "2026",
        "format": "download",
    }
    answers.update(changes)
    return answers


def only_request() -> RecordingRequest:
    db.session.expire_all()
    return db.session.execute(select(RecordingRequest)).scalar_one()


# --- A refusal from a service, beside the field it names ---------------------------------------------------


def _offline(**changes) -> OfflineRequest:
    details = {"calls_from": TODAY, "calls_to": TODAY, **changes.pop("details", {})}
    fields = {"received_via": "letter", "received_on": TODAY, "requester_name": "Bea Caller", "requester_contact": "x"}
    return OfflineRequest(details=CallDetails(**details), **{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "field_id", "message"),
    [
        ({"received_on": TODAY + timedelta(days=1)}, "received-day", "The date received must be today or in the past"),
        ({"received_via": "online"}, "received-via", "Select how the request was received"),
        (
            {"identity_confirmed_on": TODAY + timedelta(days=1)},
            "identity-date-day",
            "The date identity was confirmed must be today or in the past",
        ),
        ({"requester_name": ""}, "requester-name", "Enter the name of the person making the request"),
        ({"details": {"calls_from": TODAY, "calls_to": TODAY - timedelta(days=1)}}, "calls-to-day", "The first date"),
        ({"details": {"preferred_format": "fax"}}, "format", "Select how you would like to receive the recordings"),
    ],
)
def test_each_refusal_of_the_log_offline_service_names_the_field_it_is_shown_beside(
    app, clerk, changes, field_id, message
):
    """The service names the field it refuses, so the page needs no table of message words to place it."""
    with pytest.raises(RequestError) as refused:
        requests_service.log_offline_request(clerk.account, _offline(**changes))
    with app.test_request_context(LOG_OFFLINE, method="POST", data=offline_answers()):
        form = OfflineRequestForm(meta={"csrf": False})
        errors = FormErrors()
        form.add_service_error(errors, refused.value)
    assert list(errors) == [field_id]
    assert errors[field_id].startswith(message)


def test_a_refusal_naming_no_field_is_shown_beside_the_date_on_the_identity_page(clerk_browser, clerk):
    """A request logged for a patient with an account waits for their identity, which is checked on their
    patient page: the identity page's service refuses, and says so beside the one date it asks for."""
    patient = make_patient(nhs_number="9434765919")
    details = CallDetails(calls_from=TODAY, calls_to=TODAY)
    offline = OfflineRequest(received_via="letter", received_on=TODAY, details=details, patient=patient.account)
    req = requests_service.log_offline_request(clerk.account, offline)

    response = post_form(
        clerk_browser,
        f"/admin/requests/{req.reference}/identity",
        {"identity-date-day": "1", "identity-date-month": "3", "identity-date-year": "2026"},
        form_page="/admin/requests",
    )

    assert response.status_code == 400
    soup = parse(response)
    expected = "Confirm this patient's identity on their patient page"
    assert summary_links(soup) == {"#identity-date-day": expected}
    assert message_beside(soup, "identity-date-day") == expected
    assert soup.select_one("#identity-date-day")["value"] == "1"


def test_a_settings_value_the_service_refuses_is_beside_its_field_and_in_the_summary(admin_browser):
    page = parse(admin_browser.get(SETTINGS))
    form = page.find("form", action=SETTINGS)
    data = {
        field["name"]: field.get("value", "")
        for field in form.find_all("input")
        if field.get("type") != "radio" or field.has_attr("checked")
    }
    data.update({"release-four-eyes": "yes", "release-link-days": "a fortnight"})
    data.pop("confirm-four-eyes-off", None)

    response = admin_browser.post(SETTINGS, data=data)

    assert response.status_code == 400
    soup = parse(response)
    links = summary_links(soup)
    assert list(links) == ["#release-link-days"]
    assert message_beside(soup, "release-link-days") == links["#release-link-days"]
    assert soup.select_one("#release-link-days")["value"] == "a fortnight"
    assert practice_settings().release_link_days != "a fortnight"


def test_the_note_the_identity_service_asks_for_is_named_beside_the_note(clerk_browser):
    patient = make_patient(nhs_number="9434765919")
    path = f"/admin/patients/{patient.account.public_id}"

    response = post_form(clerk_browser, f"{path}/verify", {"method": "other", "note": "  "}, form_page=path)

    assert response.status_code == 400
    soup = parse(response)
    assert summary_links(soup) == {"#note": "Describe how you checked the patient's identity."}
    assert message_beside(soup, "note") == "Describe how you checked the patient's identity."


# --- Text is trimmed and composed before it reaches a service ----------------------------------------------


def test_offline_text_reaches_the_service_trimmed_and_in_composed_unicode(clerk_browser):
    answers = offline_answers(**{"requester-name": "  Zoe\u0301 Caller \t", "spoke-to": "\n Dr Ade\u0301 "})

    response = post_form(clerk_browser, LOG_OFFLINE, answers)

    assert response.status_code == 302
    req = only_request()
    assert (req.requester_name, req.spoke_to) == ("Zo\u00e9 Caller", "Dr Ad\u00e9")


def test_a_settings_value_reaches_the_service_trimmed_and_in_composed_unicode(admin_browser):
    page = parse(admin_browser.get(SETTINGS))
    form = page.find("form", action=SETTINGS)
    data = {
        field["name"]: field.get("value", "")
        for field in form.find_all("input")
        if field.get("type") != "radio" or field.has_attr("checked")
    }
    data.update({"release-four-eyes": "yes", "practice-name": "  Ade\u0301 Road Surgery  "})
    data.pop("confirm-four-eyes-off", None)

    response = admin_browser.post(SETTINGS, data=data)

    assert response.status_code == 302
    assert practice_settings().practice_name == "Ad\u00e9 Road Surgery"


# --- Fields a form does not declare are ignored -------------------------------------------------------------


def test_fields_the_offline_form_does_not_ask_for_are_ignored(clerk_browser, clerk):
    patient = make_patient(verified=True, nhs_number="9434765919")
    answers = offline_answers(
        requester="registered",
        **{
            "patient-nhs-number": "943 476 5919",
            "requester-name": "Mallory",  # a question for a requester without an account: not asked here
            "status": "released",
            "logged_by_id": "999",
            "patient_id": "999",
            "due_on": "2026-01-01",
        },
    )

    response = post_form(clerk_browser, LOG_OFFLINE, answers)

    assert response.status_code == 302
    req = only_request()
    assert (req.status, req.patient_id, req.logged_by_id) == ("submitted", patient.account.id, clerk.account.id)
    assert req.requester_name is None
    assert req.due_on == date(2026, 3, 20)


def test_a_follow_up_question_not_asked_is_not_checked(clerk_browser):
    """An NHS number typed in the "no account" group is not checked when the answer was "yes, an account"
    (and the other way round): only the questions of the answer given are."""
    make_patient(verified=True, nhs_number="9434765919")
    answers = offline_answers(
        requester="registered", **{"patient-nhs-number": "9434765919", "requester-nhs-number": "123"}
    )
    assert post_form(clerk_browser, LOG_OFFLINE, answers).status_code == 302

    wrong = offline_answers(**{"patient-nhs-number": "123", "requester-nhs-number": "123"})
    soup = parse(post_form(clerk_browser, LOG_OFFLINE, wrong))
    assert list(summary_links(soup)) == ["#requester-nhs-number"]
