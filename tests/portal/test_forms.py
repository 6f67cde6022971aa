"""The patient's forms and the sign-in forms (core.auth_forms, portal.forms) as a person meets them: what they
type is tidied (trimmed, composed Unicode) before it reaches the service, passwords arrive exactly as typed,
fields a page does not have are never read, and a refusal from a service that names a field is shown beside
that field and in the error summary."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime

import pytest
import time_machine
from bs4 import BeautifulSoup
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from core import auth_forms
from core.extensions import db
from core.forms import DateInputField, DateWording, FormErrors, PortalForm, date_from_parts
from core.models.accounts import Patient
from core.models.requests import RecordingRequest
from core.services.accounts import AccountError
from core.services.passwords import verify_password
from portal import forms as portal_forms
from tests.accounts_support import PASSWORD, make_patient, post_form, sign_in, signed_in_browser
from tests.conftest import Pages

NOW = datetime(2026, 9, 3, 10, 0, tzinfo=UTC)
EMAIL = "grace.hopper@example.org"
NEW_PASSWORD = "harbour lantern mosaic violet"
REGISTRATION = {
    "given-name": "Grace",
    "family-name": "Hopper",
    "dob-day": "9",
    "dob-month": "12",
    "dob-year": "1956",
    "nhs-number": "943 476 5919",
    "postcode": "se28 8be",
    "email": EMAIL,
    "mobile": "07700 900 982",
    "password": NEW_PASSWORD,
    "confirm-password": NEW_PASSWORD,
    "terms": "yes",
}
REQUEST = {
    "calls-from-day": "1",
    "calls-from-month": "9",
    "calls-from-year": "2026",
    "description": "I rang about my results.",
    "preferred-format": "download",
}
# What someone might add to any form to try to set what only staff or the system may set (SECURITY G5).
EXTRA_FIELDS = {
    "role": "admin",
    "is_verified": "1",
    "identity_status": "verified",
    "status": "released",
    "reference": "CR-2026-99999",
    "id": "1",
}
EVERY_FORM = [
    auth_forms.SignInForm,
    auth_forms.CodeForm,
    auth_forms.RecoveryCodeForm,
    auth_forms.ReauthenticateForm,
    auth_forms.PasswordForm,
    auth_forms.ForgotPasswordForm,
    auth_forms.NewPasswordForm,
    auth_forms.ChangePasswordForm,
    portal_forms.RegisterForm,
    portal_forms.RegistrationKeyForm,
    portal_forms.RequestDetailsForm,
    portal_forms.SubmitRequestForm,
    portal_forms.ReplyForm,
    portal_forms.ComplaintForm,
    portal_forms.WithdrawForm,
    portal_forms.NewLinkForm,
]


@pytest.fixture
def clock():
    with time_machine.travel(NOW) as traveller:
        yield traveller


def parse(response) -> BeautifulSoup:
    return Pages.parse(response)


def error_beside(soup: BeautifulSoup, field_id: str) -> str:
    """The error message in the form group that holds the field with this id."""
    group = soup.find(id=field_id).find_parent(class_="nhsuk-form-group")
    message = group.select_one(".nhsuk-error-message")
    return message.get_text(" ", strip=True).removeprefix("Error:").strip() if message else ""


def summary_links(soup: BeautifulSoup) -> dict[str, str]:
    summary = soup.select_one(".nhsuk-error-summary")
    return {link["href"]: link.get_text(strip=True) for link in summary.select("a")} if summary else {}


# ---------------------------------------------------------------------------------------------------------
# What is typed reaches the service tidied, and passwords as typed
# ---------------------------------------------------------------------------------------------------------


def test_a_name_typed_with_a_separate_accent_and_spaces_is_saved_composed_and_trimmed(browser):
    decomposed = "  Zoe\u0301  "  # "e" then a combining acute accent, as some keyboards send it
    response = post_form(browser, "/account/register", {**REGISTRATION, "given-name": decomposed})

    assert response.status_code == 302, response.status_code
    patient = db.session.execute(select(Patient)).scalar_one()
    assert patient.given_name == "Zo\u00e9" == unicodedata.normalize("NFC", decomposed.strip())


def test_a_password_with_spaces_at_either_end_is_kept_exactly_as_typed(browser):
    typed = "  " + NEW_PASSWORD + " "
    response = post_form(browser, "/account/register", {**REGISTRATION, "password": typed, "confirm-password": typed})

    assert response.status_code == 302, response.status_code
    patient = db.session.execute(select(Patient)).scalar_one()
    assert verify_password(patient.password_hash, typed)[0]
    assert not verify_password(patient.password_hash, NEW_PASSWORD)[0]


def test_a_description_typed_decomposed_with_windows_line_breaks_reaches_the_request_composed(app, clock):
    patient = make_patient(verified=True)
    browser = signed_in_browser(app, patient)
    typed = "\r\n  Cafe\u0301 on the phone\r\nThen a call back  \r\n"

    assert post_form(browser, "/requests/new", {**REQUEST, "description": typed}).status_code == 302
    soup = parse(browser.get("/requests/new/check"))
    key = soup.find("input", attrs={"name": "submission-key"})["value"]
    response = browser.post(
        "/requests/new/check",
        data={"csrf_token": soup.find("input", attrs={"name": "csrf_token"})["value"], "submission-key": key},
        headers={"Referer": "https://localhost/requests/new/check"},
    )

    assert response.status_code == 302, response.status_code
    req = db.session.execute(select(RecordingRequest)).scalar_one()
    assert req.description == "Caf\u00e9 on the phone\nThen a call back"


def test_a_registration_key_typed_with_spaces_around_it_is_trimmed(app, clock):
    patient = make_patient()
    browser = signed_in_browser(app, patient)

    response = post_form(browser, "/account/registration-key", {"registration-key": "   "})

    assert response.status_code == 400
    assert error_beside(parse(response), "registration-key") == "Enter your registration key"


# ---------------------------------------------------------------------------------------------------------
# Fields a page does not have are never read
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form_class", EVERY_FORM, ids=lambda form_class: form_class.__name__)
def test_every_form_reads_only_the_fields_it_names(app, form_class):
    with app.test_request_context("/", method="POST", data=EXTRA_FIELDS):
        form = form_class(meta={"csrf": False})
        named = {field.name for field in form}
        assert not named & set(EXTRA_FIELDS)
        assert not set(form.data) & set(EXTRA_FIELDS)
        assert not any(value in EXTRA_FIELDS.values() for value in form.data.values() if isinstance(value, str))


def test_registering_with_extra_fields_makes_an_ordinary_unverified_account(browser):
    response = post_form(browser, "/account/register", {**REGISTRATION, **EXTRA_FIELDS})

    assert response.status_code == 302
    patient = db.session.execute(select(Patient)).scalar_one()
    assert (patient.identity_status, patient.identity_method) == ("unverified", None)


def test_a_request_with_extra_fields_is_made_as_any_other_not_released(app, clock):
    browser = signed_in_browser(app, make_patient(verified=True))

    assert post_form(browser, "/requests/new", {**REQUEST, **EXTRA_FIELDS}).status_code == 302
    soup = parse(browser.get("/requests/new/check"))
    fields = {each["name"]: each["value"] for each in soup.select("form[action='/requests/new/check'] input")}
    response = browser.post(
        "/requests/new/check", data={**fields, **EXTRA_FIELDS}, headers={"Referer": "https://localhost/"}
    )

    assert response.status_code == 302
    req = db.session.execute(select(RecordingRequest)).scalar_one()
    assert req.status == "submitted" and req.reference != EXTRA_FIELDS["reference"]


# ---------------------------------------------------------------------------------------------------------
# A service's refusal naming a field is shown beside that field and in the summary
# ---------------------------------------------------------------------------------------------------------


def test_a_wrong_current_password_is_shown_beside_that_field_and_linked_from_the_summary(browser):
    patient = make_patient(email=EMAIL)
    sign_in(browser, patient)

    response = post_form(
        browser,
        "/account/change-password",
        {"current-password": "not my password", "new-password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD},
    )

    assert response.status_code == 400
    soup = parse(response)
    assert summary_links(soup) == {"#current-password": "Your current password is not correct"}
    assert error_beside(soup, "current-password") == "Your current password is not correct"
    assert error_beside(soup, "new-password") == ""
    assert soup.find(id="current-password").get("value") in (None, "")  # a password is never sent back


def test_a_refusal_naming_fields_by_the_names_they_are_posted_as_goes_beside_each(app):
    with app.test_request_context("/", method="POST", data={}):
        form = portal_forms.RequestDetailsForm(meta={"csrf": False})
        errors = FormErrors()
        refusal = AccountError(problems={"phone-number": "Not that number.", "calls-to": "Not that day."})
        form.add_service_error(errors, refusal)
        form.add_service_error(errors, AccountError("Something about the whole request."))

    assert dict(errors) == {
        "phone-number": "Not that number.",  # the patient's pages keep the service's full stop
        "calls-to-day": "Not that day.",  # a date input's error belongs to its first box
        "description": "Something about the whole request.",  # no field named: the page's main question
    }


def test_a_refusal_of_a_button_only_form_is_shown_against_the_button(app):
    with app.test_request_context("/", method="POST", data={}):
        form = portal_forms.WithdrawForm(meta={"csrf": False})
        errors = FormErrors()
        form.add_service_error(errors, AccountError("This request is closed."))

    assert dict(errors) == {"withdraw": "This request is closed."}


# ---------------------------------------------------------------------------------------------------------
# The NHS date input: one reader, errors on the box they are about
# ---------------------------------------------------------------------------------------------------------


def test_a_date_missing_its_month_is_refused_against_the_month_box(app, clock):
    browser = signed_in_browser(app, make_patient(verified=True))

    response = post_form(browser, "/requests/new", {**REQUEST, "calls-from-month": ""})

    assert response.status_code == 400
    soup = parse(response)
    assert summary_links(soup) == {"#calls-from-month": "The date of the call must include a month"}
    assert soup.find(id="calls-from-day")["value"] == "1"  # what was typed is shown again
    assert soup.find(id="calls-from-year")["value"] == "2026"


@pytest.mark.parametrize(
    ("parts", "where", "message"),
    [
        (("", "", ""), "day", "Enter your date of birth"),
        (("9", "", "1956"), "month", "Your date of birth must include a month"),
        (("31", "2", "1956"), "day", "Your date of birth must be a real date, like 15 3 1984"),
        (("\uff19", "12", "1956"), "day", "Your date of birth must be a real date, like 15 3 1984"),
        (("9", "12", "3000"), "day", "Your date of birth must be in the past"),
        (("9", "12", "1850"), "year", "Your date of birth must be after 1890"),
    ],
)
def test_the_date_field_and_the_page_reader_say_the_same_about_the_same_date(app, parts, where, message):
    data = MultiDict(dict(zip(("dob-day", "dob-month", "dob-year"), parts, strict=True)))

    class DobForm(PortalForm):
        dob = DateInputField(name="dob", id="dob", wording=DateWording("date of birth"), today=lambda: date(2026, 9, 3))

    with app.test_request_context("/", method="POST", data=data):
        form = DobForm(meta={"csrf": False})
        assert not form.validate()
        read_by_page = FormErrors()
        value, typed = date_from_parts(read_by_page, data, "dob", label="date of birth", today=date(2026, 9, 3))

    assert value is None and typed == dict(zip(("day", "month", "year"), parts, strict=True))
    assert dict(form.page_errors()) == dict(read_by_page) == {f"dob-{where}": message}


def test_the_sign_in_password_is_not_trimmed(app, browser):
    patient = make_patient(email=EMAIL)

    response = post_form(browser, "/account/sign-in", {"email": f"  {EMAIL.upper()} ", "password": f" {PASSWORD}"})

    assert response.status_code == 400  # the password with a space in front is not the password
    assert post_form(browser, "/account/sign-in", {"email": f"  {EMAIL} ", "password": PASSWORD}).status_code == 302
    assert patient.account.email == EMAIL
