"""A patient's account, through the pages as a person uses them: registering, proving the email address,
setting up the authenticator app, resetting and changing the password, recovery codes, and the practice
resetting a lost authenticator.

Every test talks HTTPS to the application with CSRF on, and names the SECURITY.md rows it proves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pyotp
import pytest
import time_machine
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import AccountToken, Patient, StaffUser, WebSession
from core.models.audit import AuditEvent
from core.services import accounts, totp
from core.services.passwords import verify_password
from tests.accounts_support import (
    CSRF_INPUT,
    PASSWORD,
    emails_to,
    link_in,
    make_patient,
    make_staff,
    post_form,
    register_entry,
    sign_in,
    sign_in_password,
)
from tests.accounts_support import SignInAccount as Account
from tests.conftest import Pages, new_browser

NEW_PASSWORD = "harbour lantern mosaic violet"
EMAIL = "grace.hopper@example.org"
# A valid NHS number (Modulus 11) shown 3-3-4, and the same number with its check digit changed.
NHS_NUMBER = "943 476 5919"
BAD_NHS_NUMBER = "943 476 5918"
GOOD_REGISTRATION = {
    "given-name": "Grace",
    "family-name": "Hopper",
    "dob-day": "9",
    "dob-month": "12",
    "dob-year": "1956",
    "nhs-number": NHS_NUMBER,
    "postcode": "se28 8be",
    "email": EMAIL,
    "mobile": "07700 900 982",
    "password": NEW_PASSWORD,
    "confirm-password": NEW_PASSWORD,
    "terms": "yes",
}
SET_UP = "/account/authenticator/set-up"
# Where the emailed links lead: the same pages at addresses without the token (SECURITY H13).
CONFIRM_PAGE = "/account/confirm-email"
RESET_PAGE = "/account/reset-password"
RECOVERY_CODE_SHAPE = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{4}){3}")


# ---------------------------------------------------------------------------------------------------------
# Fixtures and small helpers
# ---------------------------------------------------------------------------------------------------------


def new_browser_for(client: FlaskClient) -> FlaskClient:
    """Another device, for the application `client` talks to."""
    return new_browser(client.application)


@pytest.fixture
def other_browser(app: Flask) -> FlaskClient:
    """A second device of the same patient."""
    return new_browser(app)


def page(response) -> BeautifulSoup:
    """Parse an HTML response and run the checks every page must pass (one h1, a title, unique ids)."""
    return Pages.parse(response)


def main_text(soup: BeautifulSoup) -> str:
    return " ".join(soup.select_one("main").get_text(" ").split())


def register(client: FlaskClient, **changes):
    return post_form(client, "/account/register", {**GOOD_REGISTRATION, **changes})


def patient_by_email(email: str) -> Patient | None:
    db.session.expire_all()
    return db.session.execute(select(Patient).where(Patient.email == email)).scalar_one_or_none()


def patient_count() -> int:
    return db.session.execute(select(func.count()).select_from(Patient)).scalar_one()


def audit_events(action: str) -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def emails_about(address: str, subject: str) -> list:
    return [message for message in emails_to(address) if message.subject == subject]


def confirm_link(address: str = EMAIL) -> str:
    """The path of the newest email-confirmation link sent to `address`."""
    return link_in(emails_about(address, "Confirm your email address")[-1])


def follow_link(client: FlaskClient, link: str, form_page: str):
    """Open an emailed link as a browser does (SECURITY H13): the link answers 303 to its form page, an address
    without the token, and the browser goes on there. Returns the form page."""
    response = client.get(link)
    assert response.status_code == 303, response.status_code
    assert response.headers["Location"] == form_page
    return client.get(form_page)


def confirm(client: FlaskClient, link: str, password: str = NEW_PASSWORD):
    """Open the link, then type the account's password on the page it leads to and press the button (which posts
    to that token-less page). The CSRF token comes from another page, so this also works when the link no
    longer leads to a form."""
    client.get(link)
    return post_form(client, CONFIRM_PAGE, {"password": password}, form_page="/account/register")


def registered_and_confirmed(client: FlaskClient) -> Account:
    """A patient who registered and confirmed their email through the pages, with no authenticator yet.
    Confirming starts signing in: `client` is left on the way to setting up the authenticator."""
    assert register(client).status_code == 302
    response = confirm(client, confirm_link())
    assert (response.status_code, response.headers["Location"]) == (302, SET_UP)
    return Account(patient_by_email(EMAIL), NEW_PASSWORD, None)


def setup_key(soup: BeautifulSoup) -> str:
    return "".join(soup.select_one("#setup-key").get_text().split())


def a_wrong_code(key: str) -> str:
    """Six digits the authenticator app does not show now, nor one 30-second step either side."""
    now = datetime.now(UTC)
    shown = {pyotp.TOTP(key).at(now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in shown)


def enrol(client: FlaskClient, test_account: Account) -> list[str]:
    """Finish setting up the authenticator from the key on the page; returns the recovery codes shown."""
    key = setup_key(page(client.get("/account/authenticator/set-up")))
    response = post_form(client, "/account/authenticator/set-up", {"code": pyotp.TOTP(key).now()})
    assert response.status_code == 200, response.status_code
    test_account.secret = key
    return [item.get_text(strip=True) for item in page(response).select("#recovery-codes li")]


def ask_for_reset(client: FlaskClient, email: str):
    return post_form(client, "/account/forgot-password", {"email": email})


def reset_link(address: str) -> str:
    return link_in(emails_about(address, "Reset your password")[-1])


def choose_new_password(client: FlaskClient, link: str | None, password: str = NEW_PASSWORD):
    """Open the reset link (unless `link` is None: the browser already has), then send a new password from the
    token-less page it leads to. The CSRF token comes from another page, as for `confirm`."""
    if link is not None:
        client.get(link)
    return post_form(
        client, RESET_PAGE, {"password": password, "confirm-password": password}, form_page="/account/forgot-password"
    )


def is_sent_to_sign_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    return response.status_code == 302 and response.headers["Location"].startswith("/account/sign-in")


def with_recovery_codes(test_account: Account) -> list[str]:
    codes = totp.generate_recovery_codes(test_account.account)
    db.session.commit()
    return codes


def use_recovery_code(client: FlaskClient, test_account: Account, code: str):
    assert sign_in_password(client, test_account).headers["Location"] == "/account/sign-in/code"
    return post_form(client, "/account/sign-in/recovery-code", {"recovery-code": code})


def frozen_now():
    """Freeze the clock at the real current time (so rows made before the test stay consistent)."""
    return time_machine.travel(datetime.now(UTC), tick=False)


# ---------------------------------------------------------------------------------------------------------
# Registration (A2, A3, B6, B7, G5, K8)
# ---------------------------------------------------------------------------------------------------------


def test_good_registration_goes_to_check_your_email_and_creates_one_unverified_patient(browser):
    response = register(browser)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account/register/check-your-email"
    assert page(browser.get(response.headers["Location"])).h1.get_text(strip=True) == "Check your email"
    patient = patient_by_email(EMAIL)
    assert patient_count() == 1
    assert patient.email_verified_at is None
    assert patient.identity_status == "unverified"
    assert (patient.nhs_number, patient.postcode) == ("9434765919", "SE28 8BE")
    assert patient.date_of_birth == date(1956, 12, 9)


def test_registration_emails_one_confirmation_link_from_the_public_base_url(browser):
    register(browser)

    [message] = emails_to(EMAIL)
    assert message.subject == "Confirm your email address"
    assert re.search(r"https://localhost/account/confirm-email/\S+", message.body_text)


def test_confirmation_link_ignores_the_host_header_of_the_request(browser):
    """K8: links are built from PUBLIC_BASE_URL, never from the Host the request was sent to."""
    other_host = {"base_url": "https://127.0.0.1"}  # an allowed host (TRUSTED_HOSTS), but not the public one
    token = CSRF_INPUT.search(browser.get("/account/register", **other_host).get_data(as_text=True)).group(1)
    response = browser.post(
        "/account/register",
        data={**GOOD_REGISTRATION, "csrf_token": token},
        headers={"Referer": "https://127.0.0.1/account/register"},
        **other_host,
    )

    assert response.status_code == 302
    assert response.request.host == "127.0.0.1"
    [message] = emails_to(EMAIL)
    assert "https://localhost/account/confirm-email/" in message.body_text
    assert "127.0.0.1" not in message.body_text


def test_the_registration_form_sends_exactly_the_fields_the_server_reads(browser):
    """The names a browser submits come from the page: a date of birth sent as "dob[day]" would be lost."""
    form = page(browser.get("/account/register")).select_one("main form")

    names = {field["name"] for field in form.select("input[name], select[name], textarea[name]")}

    assert names == set(GOOD_REGISTRATION) | {"csrf_token"}


FIELD_ERRORS = [
    pytest.param({"given-name": ""}, "given-name", "Enter your first name", id="missing-first-name"),
    pytest.param({"family-name": ""}, "family-name", "Enter your last name", id="missing-last-name"),
    pytest.param(
        {"dob-day": "", "dob-month": "", "dob-year": ""}, "dob-day", "Enter your date of birth", id="missing-dob"
    ),
    pytest.param(
        {"dob-day": "31", "dob-month": "2", "dob-year": "1990"},
        "dob-day",
        "Your date of birth must be a real date, like 15 3 1984",
        id="impossible-dob-31-february",
    ),
    pytest.param(
        {"dob-year": str(datetime.now(UTC).year + 1)},
        "dob-day",
        "Your date of birth must be in the past",
        id="future-dob",
    ),
    pytest.param({"nhs-number": ""}, "nhs-number", "Enter your NHS number", id="missing-nhs-number"),
    pytest.param(
        {"nhs-number": BAD_NHS_NUMBER},
        "nhs-number",
        "Enter a valid NHS number. It is 10 digits, like 485 777 3456",
        id="nhs-number-failing-modulus-11",
    ),
    pytest.param({"postcode": ""}, "postcode", "Enter your postcode", id="missing-postcode"),
    pytest.param({"postcode": "NOT A CODE"}, "postcode", "Enter a real postcode, like SE28 8BE", id="bad-postcode"),
    pytest.param({"email": ""}, "email", "Enter your email address", id="missing-email"),
    pytest.param(
        {"email": "grace.example.org"},
        "email",
        "Enter an email address in the correct format, like name@example.com",
        id="bad-email",
    ),
    pytest.param({"password": "", "confirm-password": ""}, "password", "Enter a password", id="missing-password"),
    pytest.param(
        {"password": "tulip orbit", "confirm-password": "tulip orbit"},
        "password",
        "Password must be 12 characters or more",
        id="short-password",
    ),
    pytest.param(
        {"password": "password1234", "confirm-password": "password1234"},
        "password",
        "Choose a password that is harder to guess. This one is used by a lot of people",
        id="B6-common-password",
    ),
    pytest.param(
        {"password": "thamesmead lantern violet", "confirm-password": "thamesmead lantern violet"},
        "password",
        "Your password must not include your email address, your name, the practice's name or words like "
        "surgery and NHS",
        id="B7-password-with-practice-name",
    ),
    pytest.param(
        {"confirm-password": "harbour lantern mosaic violets"},
        "confirm-password",
        "The passwords do not match. Enter the same password twice",
        id="mismatched-confirmation",
    ),
    pytest.param({"terms": ""}, "terms", "Confirm that you agree to the terms of use", id="terms-not-ticked"),
]


NAME_SHAPE_MESSAGE = "{} must only include letters, spaces, hyphens and apostrophes"
# Anything that is not letters with spaces, hyphens, apostrophes and full stops between them: a line break (a
# second line in the emails that greet the patient by name), a link, markup, digits.
NOT_NAMES = {"line-break": "a\nb", "link": "http://x.y", "markup": "<b>", "digit": "Bob1"}
FIELD_ERRORS += [
    pytest.param({field: value}, field, NAME_SHAPE_MESSAGE.format(label), id=f"{field}-{case}")
    for field, label in (("given-name", "First name"), ("family-name", "Last name"))
    for case, value in NOT_NAMES.items()
]


@pytest.mark.parametrize(("changes", "field", "message"), FIELD_ERRORS)
def test_each_registration_field_error_is_summarised_and_shown_next_to_its_field(browser, changes, field, message):
    response = register(browser, **changes)

    assert response.status_code == 400
    soup = page(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    links = soup.select(".nhsuk-error-summary a")
    assert [(link["href"], link.get_text(strip=True)) for link in links] == [(f"#{field}", message)]
    target = soup.find(id=field)
    assert target is not None, f"the summary links to #{field}, which is not on the page"
    group = target.find_parents(class_="nhsuk-form-group")[-1]  # the field's own group, round a date's parts
    assert message in group.select_one(".nhsuk-error-message").get_text(" ", strip=True)
    assert patient_count() == 0
    assert emails_to(EMAIL) == []


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("family-name", "O'Brien"),
        ("family-name", "O\u2019Brien"),
        ("family-name", "Smith-Jones"),
        ("given-name", "Zo\u00eb"),
        ("family-name", "St. John"),
        ("given-name", "Nguy\u1ec5n V\u0103n"),
        ("given-name", "Mary Ann"),
    ],
)
def test_real_names_with_accents_apostrophes_hyphens_and_full_stops_are_accepted(browser, field, name):
    response = register(browser, **{field: name})

    assert response.status_code == 302, error_texts(response)
    stored = patient_by_email(EMAIL)
    assert (stored.given_name if field == "given-name" else stored.family_name) == name


@pytest.mark.parametrize("name", ["Zoe\u0308", "Nguye\u0302\u0303n"])
def test_an_accented_name_sent_in_decomposed_unicode_is_accepted(browser, name):
    response = register(browser, **{"given-name": name})

    assert response.status_code == 302, error_texts(response)
    assert unicodedata.normalize("NFC", patient_by_email(EMAIL).given_name) == unicodedata.normalize("NFC", name)


def error_texts(response) -> list[str]:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return [anchor.get_text(strip=True) for anchor in soup.select(".nhsuk-error-summary a")]


def test_registering_with_an_existing_email_looks_exactly_like_registering_a_new_one(app):
    """A2: the answer does not tell anyone whether the address already has an account."""
    make_patient(email=EMAIL)
    existing, new = new_browser(app), new_browser(app)

    taken = register(existing)
    fresh = register(new, email="someone.new@example.org")

    assert taken.status_code == fresh.status_code == 302
    assert taken.headers["Location"] == fresh.headers["Location"] == "/account/register/check-your-email"
    assert taken.get_data() == fresh.get_data()
    taken_page = page(existing.get(taken.headers["Location"]))
    fresh_page = page(new.get(fresh.headers["Location"]))
    assert str(taken_page.select_one("main")) == str(fresh_page.select_one("main"))


def test_registering_with_an_existing_email_warns_its_owner_and_creates_no_second_account(browser):
    """A2: the owner of a confirmed account learns of the attempt by email; nothing else changes (not the name,
    not the password), and no confirmation link is sent."""
    owner = make_patient(email=EMAIL, given_name="Ada")

    register(browser, **{"given-name": "Mallory"})

    [message] = emails_to(EMAIL)
    assert message.subject == "Someone tried to register with your email address"
    assert patient_count() == 1
    patient = patient_by_email(EMAIL)
    assert (patient.id, patient.given_name) == (owner.account.id, "Ada")
    assert verify_password(patient.password_hash, PASSWORD)[0]
    assert not verify_password(patient.password_hash, NEW_PASSWORD)[0]
    assert [event.object_id for event in audit_events("registration_duplicate_email")] == [owner.account.public_id]
    assert audit_events("registration_replaced_unconfirmed") == []


ATTACKER_PASSWORD = "quartz turnip anvil meadow"


def test_someone_who_registers_first_with_another_persons_address_cannot_take_over_the_account_a3(app):
    """A3 (pre-registration takeover): an attacker registers with the victim's address and a password of their
    own. The victim gets that first link, cannot confirm it with their own password, registers themselves: that
    replaces the details and password of the account nobody has confirmed and voids the first link. The
    victim confirms the newest link with their password; the attacker's password neither confirms nor signs
    in."""
    attacker, victim = new_browser(app), new_browser(app)
    attacker_details = {
        "given-name": "Mallory",
        "family-name": "Moriarty",
        "mobile": "07700 900 123",
        "password": ATTACKER_PASSWORD,
        "confirm-password": ATTACKER_PASSWORD,
    }
    assert register(attacker, **attacker_details).headers["Location"] == "/account/register/check-your-email"
    first_link = confirm_link()
    assert confirm(victim, first_link, NEW_PASSWORD).status_code == 400  # the victim's password: not theirs

    assert register(victim).headers["Location"] == "/account/register/check-your-email"

    assert patient_count() == 1
    patient = patient_by_email(EMAIL)
    assert (patient.given_name, patient.family_name, patient.mobile) == ("Grace", "Hopper", "07700 900 982")
    assert verify_password(patient.password_hash, NEW_PASSWORD)[0]
    assert not verify_password(patient.password_hash, ATTACKER_PASSWORD)[0]
    assert [event.object_id for event in audit_events("registration_replaced_unconfirmed")] == [patient.public_id]
    assert len(emails_about(EMAIL, "Confirm your email address")) == 2
    assert emails_about(EMAIL, "Someone tried to register with your email address") == []
    newest_link = confirm_link()
    assert newest_link != first_link
    # The first link no longer works: neither the page it was opened on, nor the link itself, anywhere.
    assert_link_does_not_work(victim.get(CONFIRM_PAGE))
    assert_link_does_not_work(new_browser(app).get(first_link))
    assert_link_does_not_work(confirm(attacker, first_link, ATTACKER_PASSWORD))
    # Even with the newest link, the attacker's password confirms nothing.
    assert confirm(new_browser(app), newest_link, ATTACKER_PASSWORD).status_code == 400
    assert patient_by_email(EMAIL).email_verified_at is None

    confirmed = confirm(victim, newest_link, NEW_PASSWORD)

    assert (confirmed.status_code, confirmed.headers["Location"]) == (302, SET_UP)
    assert patient_by_email(EMAIL).email_verified_at is not None
    assert [event.object_id for event in audit_events("email_verified")] == [patient.public_id]
    attacker_account = Account(patient_by_email(EMAIL), ATTACKER_PASSWORD, None)
    assert sign_in_password(new_browser(app), attacker_account).status_code == 400
    assert_link_does_not_work(confirm(new_browser(app), first_link, ATTACKER_PASSWORD))
    victim_account = Account(patient_by_email(EMAIL), NEW_PASSWORD, None)
    assert sign_in_password(new_browser(app), victim_account).headers["Location"] == SET_UP


def test_registering_again_before_confirming_sends_a_new_link_and_voids_the_old_one(browser, other_browser):
    """A patient who lost the first email (or forgot the password) registers again: only the newest link
    works, with the newest password."""
    register(browser, password="the first passphrase", **{"confirm-password": "the first passphrase"})
    first_link = confirm_link()
    register(other_browser)

    assert_link_does_not_work(browser.get(first_link))
    assert confirm(other_browser, confirm_link(), "the first passphrase").status_code == 400
    assert post_form(other_browser, CONFIRM_PAGE, {"password": NEW_PASSWORD}).headers["Location"] == SET_UP


def test_a_patient_on_the_practice_register_is_verified_automatically_once_they_confirm_their_email(browser):
    """A5: the register is matched when the address is proved (with the password), not when the form is sent:
    registering with someone else's details proves nothing. A6 (issue 11): the register holds the address
    the patient proves, which the four facts alone never do (tests/portal/test_identity_checks.py)."""
    register_entry(email=EMAIL)

    register(browser)

    assert patient_by_email(EMAIL).identity_status == "unverified"
    assert audit_events("identity_verified") == []
    assert confirm(browser, confirm_link()).status_code == 302
    patient = patient_by_email(EMAIL)
    assert (patient.identity_status, patient.identity_method) == ("verified", "register_match")
    [event] = audit_events("identity_verified")
    assert event.object_id == patient.public_id
    assert "register_match" in event.details


def test_a_wrong_password_on_the_confirmation_page_matches_nobody_on_the_register(browser):
    register_entry(email=EMAIL)
    register(browser)

    assert confirm(browser, confirm_link(), "not the password I chose").status_code == 400

    assert patient_by_email(EMAIL).identity_status == "unverified"
    assert audit_events("identity_verified") == audit_events("identity_register_match_refused") == []


def test_second_account_with_an_already_verified_nhs_number_is_not_verified_automatically(browser):
    register_entry(email=EMAIL)
    make_patient(email="first.claimant@example.org", nhs_number="9434765919", verified=True)

    register(browser)
    assert confirm(browser, confirm_link()).status_code == 302

    assert patient_by_email(EMAIL).identity_status == "unverified"
    [refused] = audit_events("identity_register_match_refused")
    assert refused.object_id == patient_by_email(EMAIL).public_id
    assert json.loads(refused.details) == {"reason": "number claimed by another account"}
    assert audit_events("identity_verified") == []


def test_the_register_match_is_refused_when_the_register_holds_another_email_address(browser):
    """A5: someone who knows a patient's NHS number, date of birth and postcode, but registers with their own
    address, is left for staff to check when the practice has a different address on record."""
    register_entry(email="grace.at.home@example.net")

    register(browser)
    assert confirm(browser, confirm_link()).status_code == 302

    patient = patient_by_email(EMAIL)
    assert patient.email_verified_at is not None
    assert (patient.identity_status, patient.identity_method) == ("unverified", None)
    [refused] = audit_events("identity_register_match_refused")
    assert refused.object_id == patient.public_id
    assert json.loads(refused.details) == {"reason": "email differs"}
    assert audit_events("identity_verified") == []


def test_the_register_match_accepts_the_email_address_on_record_whatever_its_case(browser):
    register_entry(email="  Grace.Hopper@Example.ORG ")

    register(browser)
    assert confirm(browser, confirm_link()).status_code == 302

    assert patient_by_email(EMAIL).identity_status == "verified"
    assert audit_events("identity_register_match_refused") == []


def test_registration_ignores_extra_fields_that_try_to_set_privileges(browser):
    """G5: the form reads only the fields it names."""
    response = register(
        browser,
        identity_status="verified",
        identity_method="photo_id",
        is_verified="1",
        email_verified_at="2020-01-01",
        role="admin",
        id="4242",
        public_id="chosen-by-attacker",
    )

    assert response.status_code == 302
    patient = patient_by_email(EMAIL)
    assert (patient.identity_status, patient.identity_method, patient.email_verified_at) == ("unverified", None, None)
    assert patient.id != 4242
    assert patient.public_id != "chosen-by-attacker"
    assert db.session.execute(select(func.count()).select_from(StaffUser)).scalar_one() == 0


# ---------------------------------------------------------------------------------------------------------
# Password fields and forbidden recovery questions (B11, B17)
# ---------------------------------------------------------------------------------------------------------


def assert_password_inputs(soup: BeautifulSoup, expected: dict[str, str]) -> None:
    inputs = {field["name"]: field for field in soup.select("input[name]") if field["name"] in expected}
    assert set(inputs) == set(expected)
    for name, autocomplete in expected.items():
        assert inputs[name].get("type") == "password", name
        assert inputs[name].get("autocomplete") == autocomplete, name
    blocking = [
        (element.name, attribute)
        for element in soup.find_all(True)
        for attribute in element.attrs
        if attribute.lower() in ("onpaste", "oncopy", "oncut", "ondrop")
    ]
    assert blocking == []


NEW_PASSWORD_FIELDS = {"password": "new-password", "confirm-password": "new-password"}


def test_password_fields_on_the_public_forms_allow_password_managers_and_pasting(browser):
    """B11: type=password, the right autocomplete, and no paste or copy blocking."""
    make_patient(email="reset.me@example.org")
    ask_for_reset(browser, "reset.me@example.org")

    assert_password_inputs(page(browser.get("/account/register")), NEW_PASSWORD_FIELDS)
    assert_password_inputs(page(browser.get("/account/sign-in")), {"password": "current-password"})
    assert_password_inputs(
        page(follow_link(browser, reset_link("reset.me@example.org"), RESET_PAGE)), NEW_PASSWORD_FIELDS
    )


def test_password_fields_on_the_account_forms_allow_password_managers_and_pasting(browser):
    """B11, for the forms of a signed-in patient."""
    sign_in(browser, make_patient())

    assert_password_inputs(
        page(browser.get("/account/change-password")),
        {"current-password": "current-password", "new-password": "new-password", "confirm-password": "new-password"},
    )
    assert_password_inputs(page(browser.get("/account/confirm-it-is-you")), {"password": "current-password"})
    assert_password_inputs(page(browser.get("/account/sign-out-other-devices")), {"password": "current-password"})


FORBIDDEN_RECOVERY_WORDING = ("secret question", "security question", "password hint", "memorable word", "maiden name")


def test_no_page_asks_for_password_hints_or_secret_questions(app, browser):
    """B17: every account page, signed out, part-way through signing in and signed in."""
    patient = make_patient()
    bodies = [browser.get(path) for path in ("/account/register", "/account/sign-in", "/account/forgot-password")]
    sign_in_password(browser, patient)
    bodies += [browser.get(path) for path in ("/account/sign-in/code", "/account/sign-in/recovery-code")]
    signed_in = new_browser(app)
    sign_in(signed_in, patient)
    bodies += [
        signed_in.get(path)
        for path in (
            "/account",
            "/account/change-password",
            "/account/authenticator/set-up",
            "/account/recovery-codes/new",
            "/account/sign-out-other-devices",
        )
    ]

    assert [response.status_code for response in bodies] == [200] * len(bodies)
    for response in bodies:
        text = main_text(page(response)).lower()
        assert not [words for words in FORBIDDEN_RECOVERY_WORDING if words in text], response.request.path


# ---------------------------------------------------------------------------------------------------------
# Proving the email address (A3)
# ---------------------------------------------------------------------------------------------------------


def test_opening_the_confirmation_link_changes_nothing(browser):
    """A GET (an email scanner following the link, and its redirect) only shows a form asking for the
    account's password."""
    register(browser)

    opened = browser.get(confirm_link())
    assert opened.status_code == 303
    assert patient_by_email(EMAIL).email_verified_at is None
    soup = page(browser.get(opened.headers["Location"]))

    assert soup.h1.get_text(strip=True) == "Confirm your email address"
    form = soup.select_one("main form[method=post]")
    assert form["action"] == CONFIRM_PAGE
    password = form.select_one("input[name=password]")
    assert (password["type"], password["autocomplete"]) == ("password", "current-password")
    assert soup.select_one(f"label[for={password['id']}]").get_text(strip=True) == "Password"
    assert patient_by_email(EMAIL).email_verified_at is None
    assert audit_events("email_verified") == []
    assert confirm(browser, confirm_link()).status_code == 302  # the link was not used up by looking at it


def test_confirming_with_the_password_confirms_the_email_and_goes_straight_to_setting_up_the_authenticator(browser):
    """A3: the link and the account's password together prove the address; signing in begins there, so the
    next page is the authenticator set-up (and nothing else opens before it is done)."""
    register(browser)

    response = confirm(browser, confirm_link())

    assert response.status_code == 302
    assert response.headers["Location"] == SET_UP
    patient = patient_by_email(EMAIL)
    assert patient.email_verified_at is not None
    [event] = audit_events("email_verified")
    assert (event.actor_id, event.object_id) == (patient.public_id, patient.public_id)
    set_up = page(browser.get(SET_UP))
    banner = set_up.select_one(".nhsuk-notification-banner")
    assert banner is not None and "Your email address is confirmed." in banner.get_text(" ", strip=True)
    assert set_up.select_one("#setup-key") is not None
    assert browser.get("/account").headers["Location"].startswith("/account/sign-in")


@pytest.mark.parametrize("typed", ["not the password I chose", "", NEW_PASSWORD.upper(), " " + NEW_PASSWORD])
def test_a_wrong_password_on_the_confirmation_page_is_refused_and_the_link_still_works(browser, typed):
    """A3: a wrong password confirms nothing and starts no sign-in; the error is next to the field, and the
    patient can try again with the same link."""
    register(browser)
    link = confirm_link()

    response = confirm(browser, link, typed)

    assert response.status_code == 400
    soup = page(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    message = "Enter the password you chose when you created your account"
    links = soup.select(".nhsuk-error-summary a")
    assert [(anchor["href"], anchor.get_text(strip=True)) for anchor in links] == [("#password", message)]
    group = soup.find(id="password").find_parents(class_="nhsuk-form-group")[-1]
    assert message in group.select_one(".nhsuk-error-message").get_text(" ", strip=True)
    assert patient_by_email(EMAIL).email_verified_at is None
    assert audit_events("email_verified") == []
    [failed] = audit_events("email_verification_failed")
    assert (failed.object_id, json.loads(failed.details)) == (patient_by_email(EMAIL).public_id, {"reason": "password"})
    assert browser.get(SET_UP).headers["Location"].startswith("/account/sign-in")
    assert db.session.execute(select(WebSession).where(WebSession.account_id.is_not(None))).first() is None

    assert page(browser.get(CONFIRM_PAGE)).h1.get_text(strip=True) == "Confirm your email address"
    assert post_form(browser, CONFIRM_PAGE, {"password": NEW_PASSWORD}).headers["Location"] == SET_UP
    assert patient_by_email(EMAIL).email_verified_at is not None


def test_guessing_the_password_on_the_confirmation_page_is_limited_per_link_c1(browser, other_browser):
    """C1: the confirmation form takes a password, so guesses are counted per emailed link (5 a minute,
    every try counted, from any computer): once reached, even the right password gets 429."""
    register(browser)
    link = confirm_link()
    browser.get(link)
    other_browser.get(link)
    with frozen_now():
        statuses = [
            post_form(browser, CONFIRM_PAGE, {"password": f"guess number {n} here"}).status_code for n in range(5)
        ]
        from_elsewhere = post_form(other_browser, CONFIRM_PAGE, {"password": NEW_PASSWORD})
    assert statuses == [400] * 5
    assert from_elsewhere.status_code == 429
    assert patient_by_email(EMAIL).email_verified_at is None


def assert_link_does_not_work(response) -> None:
    assert response.status_code == 404
    assert page(response).h1.get_text(strip=True) == "This link does not work"


def test_a_confirmation_link_works_only_once(browser, other_browser):
    register(browser)
    link = confirm_link()
    assert confirm(browser, link).status_code == 302

    assert_link_does_not_work(confirm(browser, link))
    assert_link_does_not_work(browser.get(link))
    assert_link_does_not_work(other_browser.get(link))
    assert_link_does_not_work(confirm(other_browser, link))
    assert [event.object_id for event in audit_events("email_verified")] == [patient_by_email(EMAIL).public_id]


def test_a_tampered_confirmation_link_does_not_work(browser):
    register(browser)
    link = confirm_link()
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    assert_link_does_not_work(browser.get(tampered))
    assert_link_does_not_work(browser.get(CONFIRM_PAGE))  # a tampered token is never kept for the form
    assert_link_does_not_work(confirm(browser, tampered))
    assert patient_by_email(EMAIL).email_verified_at is None


def test_a_confirmation_link_expires_after_24_hours(browser):
    """Also once opened: the token kept for the form page expires with the link."""
    with frozen_now() as clock:
        register(browser)
        link = confirm_link()
        clock.shift(timedelta(hours=23, minutes=59))
        assert follow_link(browser, link, CONFIRM_PAGE).status_code == 200
        clock.shift(timedelta(minutes=2))

        assert_link_does_not_work(browser.get(CONFIRM_PAGE))
        assert_link_does_not_work(post_form(browser, CONFIRM_PAGE, {}, form_page="/account/register"))
        assert_link_does_not_work(browser.get(link))
        assert_link_does_not_work(confirm(browser, link))
    assert patient_by_email(EMAIL).email_verified_at is None


def test_a_password_reset_link_does_not_confirm_an_email_address(browser):
    """One salt, one row purpose and one place in the session per kind of link: a reset token is no email
    proof, whether it is put in a confirmation link or kept in the session by opening the reset link."""
    register(browser)
    ask_for_reset(browser, EMAIL)
    link = reset_link(EMAIL)
    token = link.rsplit("/", 1)[1]

    assert_link_does_not_work(browser.get(f"/account/confirm-email/{token}"))
    assert_link_does_not_work(confirm(browser, f"/account/confirm-email/{token}"))
    assert follow_link(browser, link, RESET_PAGE).status_code == 200
    assert_link_does_not_work(browser.get(CONFIRM_PAGE))
    assert_link_does_not_work(post_form(browser, CONFIRM_PAGE, {}, form_page=RESET_PAGE))
    assert patient_by_email(EMAIL).email_verified_at is None


def test_signing_in_before_confirming_starts_no_sign_in_and_sends_a_fresh_link_at_most_every_15_minutes(browser):
    with frozen_now() as clock:
        register(browser)
        first_link = confirm_link()
        account = Account(patient_by_email(EMAIL), NEW_PASSWORD, None)

        response = sign_in_password(browser, account)

        assert response.headers["Location"] == "/account/register/check-your-email"
        assert browser.get("/account/sign-in/code").headers["Location"].startswith("/account/sign-in")
        assert browser.get("/account/authenticator/set-up").headers["Location"].startswith("/account/sign-in")
        assert db.session.execute(select(WebSession).where(WebSession.account_id.is_not(None))).first() is None
        assert len(emails_about(EMAIL, "Confirm your email address")) == 1  # one went out a moment ago

        clock.shift(timedelta(minutes=16))
        sign_in_password(browser, account)
        assert len(emails_about(EMAIL, "Confirm your email address")) == 2
        assert confirm_link() != first_link
        assert_link_does_not_work(browser.get(first_link))
        assert confirm(browser, confirm_link()).status_code == 302


# ---------------------------------------------------------------------------------------------------------
# First sign-in and setting up the authenticator app (D9, D12, D13, R1, R4)
# ---------------------------------------------------------------------------------------------------------


def test_signing_in_before_the_authenticator_is_set_up_leads_to_setting_it_up(browser, other_browser):
    """D15: a patient who confirmed their email but left before setting up the app is sent back to set-up by
    the password step, on any device, and reaches nothing else."""
    patient = registered_and_confirmed(browser)

    response = sign_in_password(other_browser, patient)

    assert response.headers["Location"] == SET_UP
    assert other_browser.get(SET_UP).status_code == 200
    for client in (browser, other_browser):
        assert client.get("/account").headers["Location"].startswith("/account/sign-in")


def test_set_up_page_shows_a_server_drawn_qr_code_and_the_key_and_is_never_cached(browser):
    """D9: a 160-bit key; D13: an inline SVG drawn here, and Cache-Control: no-store."""
    registered_and_confirmed(browser)  # confirming leads straight to the set-up page

    response = browser.get("/account/authenticator/set-up")

    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    soup = page(response)
    assert soup.select_one(".app-qr-code svg") is not None
    assert not soup.select(".app-qr-code img")
    assert re.fullmatch(r"[A-Z2-7]{32}", setup_key(soup))


def test_authenticator_label_is_the_email_address_never_the_nhs_number(browser, monkeypatch):
    """D13: authenticator apps show (and may back up) the label, so it holds no NHS number."""
    drawn = []
    original = totp.provisioning_uri

    def remember(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(totp, "provisioning_uri", remember)
    registered_and_confirmed(browser)  # confirming leads straight to the set-up page

    browser.get("/account/authenticator/set-up")

    [uri] = drawn
    issuer, _, label = unquote(urlsplit(uri).path).lstrip("/").rpartition(":")  # otpauth://totp/Issuer:label
    assert issuer and label == EMAIL
    assert "9434765919" not in uri


def test_a_wrong_code_does_not_activate_the_new_authenticator(browser):
    """D12: the key becomes active only after a right code."""
    registered_and_confirmed(browser)  # confirming leads straight to the set-up page
    key = setup_key(page(browser.get("/account/authenticator/set-up")))

    response = post_form(browser, "/account/authenticator/set-up", {"code": a_wrong_code(key)})

    assert response.status_code == 400
    assert page(response).title.get_text(strip=True).startswith("Error: ")
    assert patient_by_email(EMAIL).totp_secret_encrypted is None
    assert browser.get("/account").headers["Location"].startswith("/account/sign-in")


def test_an_unconfirmed_authenticator_key_expires_after_30_minutes(browser):
    """D12: a key shown but never confirmed with a code stops working; the page then shows a new one."""
    registered_and_confirmed(browser)
    with frozen_now() as clock:
        key = setup_key(page(browser.get(SET_UP)))
        clock.shift(timedelta(minutes=20))
        reloaded = browser.get(SET_UP)
        assert setup_key(page(reloaded)) == key  # a reload within the lifetime keeps the key just scanned
        token = CSRF_INPUT.search(reloaded.get_data(as_text=True)).group(1)
        clock.shift(timedelta(minutes=11))

        response = browser.post(
            SET_UP,
            data={"code": pyotp.TOTP(key).now(), "csrf_token": token},
            headers={"Referer": f"https://localhost{SET_UP}"},
        )

    assert response.status_code == 400
    assert setup_key(page(response)) != key
    assert patient_by_email(EMAIL).totp_secret_encrypted is None


def test_the_right_code_shows_ten_recovery_codes_once(browser):
    """R1: ten codes of 80 bits; R4: never shown again afterwards."""
    patient = registered_and_confirmed(browser)

    codes = enrol(browser, patient)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(RECOVERY_CODE_SHAPE.fullmatch(code) for code in codes)
    assert patient_by_email(EMAIL).totp_secret_encrypted is not None
    later = [browser.get("/account"), browser.get("/account/recovery-codes/new")]
    assert [response.status_code for response in later] == [200, 200]
    for response in later:
        body = response.get_data(as_text=True)
        assert not [code for code in codes if code in body or code.replace("-", "") in body]


def test_account_page_shows_name_formatted_nhs_number_and_waiting_identity_check(browser):
    patient = registered_and_confirmed(browser)
    enrol(browser, patient)

    soup = page(browser.get("/account"))

    rows = {
        row.select_one(".nhsuk-summary-list__key").get_text(strip=True): row.select_one(
            ".nhsuk-summary-list__value"
        ).get_text(" ", strip=True)
        for row in soup.select(".nhsuk-summary-list__row")
    }
    assert rows["Name"] == "Grace Hopper"
    assert rows["NHS number"] == "943 476 5919"
    assert rows["Identity check"] == "Waiting for the practice"


def test_the_authenticator_key_never_reaches_the_logs(browser, caplog):
    """D13, L2: the whole journey, with every logger at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    patient = registered_and_confirmed(browser)
    shown = setup_key(page(browser.get("/account/authenticator/set-up")))
    post_form(browser, "/account/authenticator/set-up", {"code": a_wrong_code(shown)})
    enrol(browser, patient)
    browser.get("/account")
    post_form(browser, "/account/sign-out", {}, form_page="/account")
    sign_in(browser, patient)
    browser.get("/account")

    key = patient.secret
    # The journey was logged (so the search below means something), set-up pages included.
    assert [r.getMessage() for r in caplog.records].count("POST /account/authenticator/set-up 400") == 1
    grouped = " ".join(key[i : i + 4] for i in range(0, len(key), 4))
    for record in caplog.records:
        everything = f"{record.getMessage()} {record.args!r} {record.__dict__!r}"
        for form in (key, key.lower(), grouped):
            assert form not in everything, f"authenticator key in a {record.name} log record"


# ---------------------------------------------------------------------------------------------------------
# Forgotten password and reset links (A2, B15, B16)
# ---------------------------------------------------------------------------------------------------------


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(app):
    """A2: same status, same redirect, same page; only a real account gets an email."""
    make_patient(email=EMAIL)
    known, unknown = new_browser(app), new_browser(app)

    for_known = ask_for_reset(known, EMAIL)
    for_unknown = ask_for_reset(unknown, "nobody@example.org")

    assert for_known.status_code == for_unknown.status_code == 302
    assert for_known.headers["Location"] == for_unknown.headers["Location"]
    assert for_known.headers["Location"] == "/account/forgot-password/check-your-email"
    assert for_known.get_data() == for_unknown.get_data()
    known_page = page(known.get(for_known.headers["Location"]))
    unknown_page = page(unknown.get(for_unknown.headers["Location"]))
    assert str(known_page.select_one("main")) == str(unknown_page.select_one("main"))
    assert [message.subject for message in emails_to(EMAIL)] == ["Reset your password"]
    assert emails_to("nobody@example.org") == []


def test_a_reset_link_works_once(browser):
    make_patient(email=EMAIL)
    ask_for_reset(browser, EMAIL)
    link = reset_link(EMAIL)

    first = choose_new_password(browser, link)
    second = choose_new_password(browser, link, "another quite long passphrase")

    assert first.status_code == 302
    assert_link_does_not_work(second)
    assert_link_does_not_work(browser.get(link))
    assert_link_does_not_work(new_browser_for(browser).get(link))
    assert [event.object_id for event in audit_events("password_reset")] == [patient_by_email(EMAIL).public_id]
    assert sign_in_password(browser, Account(patient_by_email(EMAIL), NEW_PASSWORD, None)).status_code == 302


def test_a_reset_link_expires_after_one_hour(browser):
    """Also once opened: the token kept for the form page expires with the link."""
    patient = make_patient(email=EMAIL)
    with frozen_now() as clock:
        ask_for_reset(browser, EMAIL)
        link = reset_link(EMAIL)
        clock.shift(timedelta(minutes=59))
        assert follow_link(browser, link, RESET_PAGE).status_code == 200
        clock.shift(timedelta(minutes=2))

        assert_link_does_not_work(browser.get(RESET_PAGE))
        assert_link_does_not_work(choose_new_password(browser, None))
        assert_link_does_not_work(browser.get(link))
        assert_link_does_not_work(choose_new_password(browser, link))
        assert sign_in_password(browser, patient).headers["Location"] == "/account/sign-in/code"


def test_a_reset_link_stops_working_once_the_password_is_changed_another_way(browser, other_browser):
    """Also when the link was opened before the change: the token kept for the form page is void too."""
    patient = make_patient(email=EMAIL)
    ask_for_reset(browser, EMAIL)
    link = reset_link(EMAIL)
    assert follow_link(browser, link, RESET_PAGE).status_code == 200
    sign_in(other_browser, patient)
    changed = post_form(
        other_browser,
        "/account/change-password",
        {"current-password": PASSWORD, "new-password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD},
    )
    assert changed.status_code == 302

    assert_link_does_not_work(browser.get(RESET_PAGE))
    assert_link_does_not_work(choose_new_password(browser, None, "another quite long passphrase"))
    assert_link_does_not_work(browser.get(link))
    assert_link_does_not_work(choose_new_password(browser, link, "another quite long passphrase"))
    assert audit_events("password_reset") == []


def test_a_reset_ends_every_session_of_the_account_and_emails_the_owner(browser, other_browser):
    """B16: a device signed in before the reset is signed out; the email holds nothing sensitive."""
    patient = make_patient(email=EMAIL)
    sign_in(other_browser, patient)
    assert other_browser.get("/account").status_code == 200
    ask_for_reset(browser, EMAIL)

    choose_new_password(browser, reset_link(EMAIL))

    assert is_sent_to_sign_in(other_browser)
    [message] = emails_about(EMAIL, "Your password was reset")
    assert NEW_PASSWORD not in message.body_text
    assert "9434765919" not in message.body_text


def test_a_reset_does_not_sign_in_and_the_next_sign_in_still_needs_a_code(browser):
    """B15: a reset link is no way round the authenticator."""
    patient = make_patient(email=EMAIL)
    ask_for_reset(browser, EMAIL)

    response = choose_new_password(browser, reset_link(EMAIL))

    assert response.headers["Location"] == "/account/sign-in"
    assert is_sent_to_sign_in(browser)
    patient.password = NEW_PASSWORD
    assert sign_in_password(browser, patient).headers["Location"] == "/account/sign-in/code"
    assert browser.get("/account").headers["Location"].startswith("/account/sign-in")
    response = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert response.headers["Location"] == "/account"


def test_a_patients_reset_link_cannot_reset_a_password_from_the_staff_reset_page(browser):
    """A patient's token put in the staff link's place is refused by the link itself (404, not on to the staff
    reset page), so it never reaches the staff page's session slot; that page and its form change nothing."""
    make_patient(email=EMAIL)
    ask_for_reset(browser, EMAIL)
    token = reset_link(EMAIL).rsplit("/", 1)[1]

    # The staff link checks the kind of account at once: "This link does not work", and nothing kept.
    assert_link_does_not_work(browser.get(f"/admin/reset-password/{token}"))

    assert_link_does_not_work(browser.get("/admin/reset-password"))
    fields = {"password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD}
    assert_link_does_not_work(post_form(browser, "/admin/reset-password", fields, form_page="/admin/sign-in"))
    assert not verify_password(patient_by_email(EMAIL).password_hash, NEW_PASSWORD)[0]
    assert audit_events("password_reset") == []
    assert choose_new_password(browser, reset_link(EMAIL)).status_code == 302  # the link itself is still good


# ---------------------------------------------------------------------------------------------------------
# Emailed links keep their token out of page addresses (H10, H13)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailedLink:
    """One kind of link we email a patient: how they come to be sent one, the token-less page it leads to, what
    that page's form sends, and whether the form has done its work (read from the database)."""

    send: Callable[[FlaskClient], None]
    subject: str
    form_page: str
    form: dict[str, str]
    used: Callable[[], bool]

    def link(self) -> str:
        return link_in(emails_about(EMAIL, self.subject)[-1])


def _registered(client: FlaskClient) -> None:
    assert register(client).status_code == 302


def _asked_for_reset(client: FlaskClient) -> None:
    make_patient(email=EMAIL)
    assert ask_for_reset(client, EMAIL).status_code == 302


def _email_confirmed() -> bool:
    return patient_by_email(EMAIL).email_verified_at is not None


def _password_reset() -> bool:
    return verify_password(patient_by_email(EMAIL).password_hash, NEW_PASSWORD)[0]


EMAILED_LINKS = [
    pytest.param(
        EmailedLink(
            _registered, "Confirm your email address", CONFIRM_PAGE, {"password": NEW_PASSWORD}, _email_confirmed
        ),
        id="confirm-email",
    ),
    pytest.param(
        EmailedLink(
            _asked_for_reset,
            "Reset your password",
            RESET_PAGE,
            {"password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD},
            _password_reset,
        ),
        id="reset-password",
    ),
]


@pytest.mark.parametrize("kind", EMAILED_LINKS)
def test_an_emailed_link_moves_its_token_into_the_session_and_on_to_an_address_without_it_h13(browser, caplog, kind):
    """H13: the link answers 303, with `Referrer-Policy: no-referrer`, to an address without the token, and the
    page there does not hold the token either (so neither its own requests, their Referer, nor a proxy's log
    can). H10: opening the link and its page changes nothing. The request log names the route, not the token."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    kind.send(browser)
    link = kind.link()
    token = link.rsplit("/", 1)[1]

    opened = browser.get(link)

    assert opened.status_code == 303
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert opened.headers["Location"] == kind.form_page
    assert token not in str(opened.headers)
    form_page = browser.get(kind.form_page)
    assert form_page.status_code == 200
    assert token not in form_page.get_data(as_text=True)
    assert token not in str(form_page.headers)
    assert page(form_page).select_one("main form[method=post]")["action"] == kind.form_page
    assert not kind.used()
    link_route = link.rsplit("/", 1)[0] + "/<token>"
    messages = [record.getMessage() for record in caplog.records]
    assert f"GET {link_route} 303" in messages and f"GET {kind.form_page} 200" in messages
    for record in caplog.records:
        assert token not in f"{record.getMessage()} {record.args!r} {record.__dict__!r}", record.name


@pytest.mark.parametrize("kind", EMAILED_LINKS)
def test_an_emailed_links_page_does_not_work_in_a_browser_that_never_opened_the_link(browser, other_browser, kind):
    """The token is kept by the browser that opened the link, not by the page's address: the same page in
    another browser says the link does not work, and its form does nothing there."""
    kind.send(browser)
    assert follow_link(browser, kind.link(), kind.form_page).status_code == 200

    assert_link_does_not_work(other_browser.get(kind.form_page))
    assert_link_does_not_work(post_form(other_browser, kind.form_page, kind.form, form_page="/account/sign-in"))
    assert not kind.used()
    assert post_form(browser, kind.form_page, kind.form).status_code == 302  # still good where it was opened
    assert kind.used()


@pytest.mark.parametrize("kind", EMAILED_LINKS)
def test_after_an_emailed_links_form_is_used_going_back_to_its_page_does_not_work(browser, kind):
    """Once the form has done its work the session forgets the token: going back to the page (or sending its
    form again) says the link does not work."""
    kind.send(browser)
    assert follow_link(browser, kind.link(), kind.form_page).status_code == 200
    assert post_form(browser, kind.form_page, kind.form).status_code == 302
    assert kind.used()

    assert_link_does_not_work(browser.get(kind.form_page))
    assert_link_does_not_work(post_form(browser, kind.form_page, kind.form, form_page="/account/sign-in"))


def id_in_link(link: str) -> str:
    """The random id a link carries: the payload of its signed token, read without checking the signature."""
    token = link.rsplit("/", 1)[1]
    return URLSafeSerializer("only-reads-the-payload").load_payload(token.rsplit(".", 2)[0].encode())


def session_data() -> list[str]:
    """The `data` column of every stored session, as a copy of the database would hold it."""
    values = list(db.session.execute(select(WebSession.data)).scalars())
    db.session.rollback()
    return values


@pytest.mark.parametrize("kind", EMAILED_LINKS)
def test_a_copy_of_the_database_holds_no_working_link_h10(browser, kind):
    """H10: the token row keeps only the SHA-256 of the id in the link, and the session that opened the link
    keeps the token encrypted: neither the link's token nor its id is in the `account_token` or `web_session`
    tables."""
    kind.send(browser)
    link = kind.link()
    token, raw_id = link.rsplit("/", 1)[1], id_in_link(link)
    assert len(raw_id) >= 24

    stored_ids = set(db.session.execute(select(AccountToken.id)).scalars())
    db.session.rollback()
    assert hashlib.sha256(raw_id.encode()).hexdigest() in stored_ids
    assert not [stored for stored in stored_ids if raw_id in stored or stored in token]

    assert follow_link(browser, link, kind.form_page).status_code == 200
    data = session_data()
    assert [value for value in data if "link:" in value], "the session keeps the link (encrypted) for its page"
    for value in data:
        assert token not in value and raw_id not in value
    assert post_form(browser, kind.form_page, kind.form).status_code == 302  # the kept token still works
    assert kind.used()


# ---------------------------------------------------------------------------------------------------------
# Changing the password (B9, B16, E7)
# ---------------------------------------------------------------------------------------------------------


def change_password(client: FlaskClient, current: str):
    return post_form(
        client,
        "/account/change-password",
        {"current-password": current, "new-password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD},
    )


def test_a_wrong_current_password_is_refused_and_audited(browser):
    """B9."""
    patient = make_patient(email=EMAIL)
    sign_in(browser, patient)

    response = change_password(browser, "not my password at all")

    assert response.status_code == 400
    assert "Your current password is not correct" in main_text(page(response))
    [event] = audit_events("password_change_failed")
    assert (event.object_id, event.outcome) == (patient.account.public_id, "failure")
    assert emails_about(EMAIL, "Your password was changed") == []
    assert sign_in_password(new_browser_for(browser), patient).headers["Location"] == "/account/sign-in/code"


def test_changing_the_password_ends_other_sessions_but_keeps_this_one(browser, other_browser):
    """B16, E7."""
    patient = make_patient(email=EMAIL)
    sign_in(browser, patient)
    sign_in(other_browser, patient)

    response = change_password(browser, PASSWORD)

    assert response.headers["Location"] == "/account"
    assert browser.get("/account").status_code == 200
    assert is_sent_to_sign_in(other_browser)


def test_changing_the_password_emails_the_owner_and_the_new_password_works(browser):
    """B16: the notification holds no password."""
    patient = make_patient(email=EMAIL)
    sign_in(browser, patient)

    change_password(browser, PASSWORD)

    [message] = emails_about(EMAIL, "Your password was changed")
    assert NEW_PASSWORD not in message.body_text and PASSWORD not in message.body_text
    fresh = new_browser_for(browser)
    assert sign_in_password(fresh, patient, password=NEW_PASSWORD).headers["Location"] == "/account/sign-in/code"
    assert sign_in_password(new_browser_for(browser), patient).status_code == 400


# ---------------------------------------------------------------------------------------------------------
# Recovery codes (R3, R4, R5, R6)
# ---------------------------------------------------------------------------------------------------------


def test_a_recovery_code_signs_in_once_only(browser, other_browser):
    """R3."""
    patient = make_patient(email=EMAIL)
    codes = with_recovery_codes(patient)

    first = use_recovery_code(browser, patient, codes[0])
    second = use_recovery_code(other_browser, patient, codes[0])

    assert first.headers["Location"] == "/account"
    assert browser.get("/account").status_code == 200
    assert second.status_code == 400
    assert is_sent_to_sign_in(other_browser)


def test_signing_in_with_a_recovery_code_emails_the_owner(browser):
    """R6: logged, and the patient is told."""
    patient = make_patient(email=EMAIL)
    codes = with_recovery_codes(patient)

    use_recovery_code(browser, patient, codes[3])

    [message] = emails_about(EMAIL, "A recovery code was used to sign in")
    assert "9 recovery codes left" in message.body_text
    assert codes[3] not in message.body_text
    [event] = [e for e in audit_events("authn_login_success") if "recovery_code" in (e.details or "")]
    assert event.object_id == patient.account.public_id


def test_new_recovery_codes_need_a_second_factor_from_the_last_15_minutes(browser):
    """R4, E12: after 16 minutes the page sends the patient to confirm it is them."""
    patient = make_patient(email=EMAIL)
    with frozen_now() as clock:
        sign_in(browser, patient)
        assert browser.get("/account/recovery-codes/new").status_code == 200
        clock.shift(timedelta(minutes=16))

        for response in (
            browser.get("/account/recovery-codes/new"),
            post_form(browser, "/account/recovery-codes/new", {}, form_page="/account"),
        ):
            assert response.status_code == 302
            assert response.headers["Location"].startswith("/account/confirm-it-is-you")
    assert emails_about(EMAIL, "You have new recovery codes") == []


def test_new_recovery_codes_after_confirming_it_is_you_void_the_old_ones(browser, app):
    """R5."""
    patient = make_patient(email=EMAIL)
    old_codes = with_recovery_codes(patient)
    with frozen_now() as clock:
        sign_in(browser, patient)
        clock.shift(timedelta(minutes=16))
        asked = browser.get("/account/recovery-codes/new")
        confirmed = post_form(
            browser,
            asked.headers["Location"],
            {"password": PASSWORD, "code": patient.code(), "next": "/account/recovery-codes/new"},
        )
        assert confirmed.headers["Location"] == "/account/recovery-codes/new"
        response = post_form(browser, "/account/recovery-codes/new", {})

    assert response.status_code == 200
    new_codes = [item.get_text(strip=True) for item in page(response).select("#recovery-codes li")]
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert use_recovery_code(new_browser(app), patient, old_codes[0]).status_code == 400
    assert use_recovery_code(new_browser(app), patient, new_codes[0]).headers["Location"] == "/account"
    assert len(emails_about(EMAIL, "You have new recovery codes")) == 1


# ---------------------------------------------------------------------------------------------------------
# The practice resets a lost authenticator (R7)
# ---------------------------------------------------------------------------------------------------------


def test_after_a_staff_reset_the_patient_is_signed_out_and_emailed_a_set_up_link_r7(browser):
    patient = make_patient(email=EMAIL)
    staff = make_staff()
    sign_in(browser, patient)

    accounts.reset_authenticator(staff.account, patient.account)

    assert is_sent_to_sign_in(browser)
    [message] = emails_about(EMAIL, "Set up your authenticator app again")
    link = link_in(message)
    assert link.startswith("/account/authenticator/set-up/")
    opened = browser.get(link)
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/account/sign-in"
    assert opened.headers["Referrer-Policy"] == "no-referrer"


def _reset_by_staff(patient: Account) -> str:
    staff = db.session.execute(select(StaffUser)).scalars().first() or make_staff().account
    accounts.reset_authenticator(staff, patient.account)
    return link_in(emails_about(patient.account.email, "Set up your authenticator app again")[-1])


def test_after_a_staff_reset_the_password_alone_cannot_set_up_a_new_authenticator_r7(browser):
    """Someone who knows the password but does not have the emailed link gets no new authenticator key."""
    patient = make_patient(email=EMAIL)
    codes = with_recovery_codes(patient)
    _reset_by_staff(patient)

    response = sign_in_password(browser, patient)

    assert response.headers["Location"] == "/account/authenticator/set-up"
    set_up = page(browser.get("/account/authenticator/set-up"))
    assert set_up.h1.get_text(strip=True) == "Use the link in your email"
    assert set_up.select_one(".app-qr-code") is None and set_up.find(id="setup-key") is None
    posted = post_form(browser, "/account/authenticator/set-up", {"code": "123456"}, form_page="/account/sign-in")
    assert page(posted).h1.get_text(strip=True) == "Use the link in your email"
    db.session.expire_all()
    assert not db.session.get(Patient, patient.account.id).has_authenticator
    assert codes and totp.remaining_recovery_codes(patient.account) == 0


def test_after_a_staff_reset_the_emailed_link_and_the_password_set_up_a_new_authenticator_once_r7(browser):
    patient = make_patient(email=EMAIL)
    link = _reset_by_staff(patient)

    browser.get(link)
    assert sign_in_password(browser, patient).headers["Location"] == "/account/authenticator/set-up"
    set_up = page(browser.get("/account/authenticator/set-up"))
    key = set_up.find(id="setup-key").get_text().replace(" ", "").strip()
    response = post_form(browser, "/account/authenticator/set-up", {"code": pyotp.TOTP(key).now()})

    assert response.status_code == 200
    assert len(RECOVERY_CODE_SHAPE.findall(response.get_data(as_text=True))) == 10
    assert browser.get("/account").status_code == 200
    other = new_browser(browser.application)
    assert page(other.get(link)).h1.get_text(strip=True) == "This link does not work"


def test_a_set_up_link_works_only_for_its_own_account_and_expires_after_72_hours_r7(browser):
    patient = make_patient(email=EMAIL)
    someone_else = make_patient(email="someone.else@example.org", nhs_number="4010232137")
    link = _reset_by_staff(patient)
    _reset_by_staff(someone_else)

    browser.get(link)
    sign_in_password(browser, someone_else)
    assert page(browser.get("/account/authenticator/set-up")).h1.get_text(strip=True) == "Use the link in your email"

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=72, seconds=1), tick=False):
        late = new_browser(browser.application)
        assert late.get(link).status_code == 404
