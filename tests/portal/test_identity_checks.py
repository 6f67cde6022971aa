"""Issue 11, finding 1: automatic identity verification needs something only the patient holds (SECURITY A6,
A7, A1, A5).

The four facts a register match uses (NHS number, date of birth, family name, postcode) are not secret. A
patient is verified automatically only when they prove the email address the practice's register holds for
them (with the emailed link), or enter a one-time registration key the practice issued. Two accounts claiming
one NHS number both wait for staff, and the real patient can always register.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from core.extensions import db
from core.models.accounts import Patient, RegisterEntry, RegistrationKey
from core.models.audit import AuditEvent
from core.models.requests import RecordingRequest
from core.services import registration_keys
from core.services import requests as requests_service
from core.services.requests import CallDetails
from tests.accounts_support import (
    SignInAccount,
    make_patient,
    make_staff,
    post_form,
    register_entry,
    signed_in_browser,
)
from tests.conftest import Pages, new_browser
from tests.portal.test_patient_accounts import (
    EMAIL,
    NEW_PASSWORD,
    confirm,
    confirm_link,
    enrol,
    patient_by_email,
    register,
)

KEY_PAGE = "/account/registration-key"
KEY_SHAPE = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{4}){3}")
STRANGER_EMAIL = "not.grace@example.net"


def audit_events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.session.execute(query).scalars())


def details(event: AuditEvent) -> dict:
    return json.loads(event.details)


def register_and_confirm(client: FlaskClient, email: str = EMAIL) -> SignInAccount:
    """Register with Grace's four facts and `email`, confirm the address and set up the authenticator: the
    patient is then signed in with both factors on `client`."""
    assert register(client, email=email).status_code == 302
    assert confirm(client, confirm_link(email)).status_code == 302
    account = SignInAccount(patient_by_email(email), NEW_PASSWORD, None)
    enrol(client, account)
    return account


def ask_for_recordings(patient: Patient) -> RecordingRequest:
    details_ = CallDetails(calls_from=date(2026, 9, 1), calls_to=date(2026, 9, 1), description="My call")
    return requests_service.submit_request(patient, details_, submission_key="identity-test")


def status_of(req: RecordingRequest) -> str:
    db.session.expire_all()
    return db.session.get(RecordingRequest, req.id).status


def main_text(response) -> str:
    return " ".join(Pages.parse(response).select_one("main").get_text(" ").split())


def error_message(response) -> str:
    soup = Pages.parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None
    return " ".join(summary.get_text(" ").split())


def enter_key(client: FlaskClient, key: str):
    return post_form(client, KEY_PAGE, {"registration-key": key})


def issue_key(entry: RegisterEntry) -> str:
    """A key for `entry`, as `flask register issue-keys` would print it."""
    [issued] = registration_keys.issue_keys_for_numbers([entry.nhs_number])
    return issued.key


@pytest.fixture
def clerk_browser(app) -> FlaskClient:
    return signed_in_browser(app, make_staff(email="clerk@practice.example", name="Cal Clerk"))


# ---------------------------------------------------------------------------------------------------------
# A6: the four facts alone verify nobody
# ---------------------------------------------------------------------------------------------------------


def test_a_stranger_who_knows_the_four_facts_is_not_verified_and_their_request_waits_for_identity_a6_a1(
    browser, clerk_browser
):
    """The finding: the register row has no email address; someone who knows Grace's NHS number, date of
    birth, family name and postcode registers with their own address. On main they were verified at once and
    their request's legal clock started."""
    register_entry()

    stranger = register_and_confirm(browser, STRANGER_EMAIL)
    req = ask_for_recordings(stranger.account)

    patient = patient_by_email(STRANGER_EMAIL)
    assert (patient.identity_status, patient.identity_method) == ("unverified", None)
    assert status_of(req) == "awaiting_identity"
    assert db.session.get(RecordingRequest, req.id).due_on is None
    assert audit_events("identity_verified") == []
    [refused] = audit_events("identity_register_match_refused")
    assert (refused.object_id, details(refused)) == (patient.public_id, {"reason": "no email on the register"})
    # They are told plainly what happens next and how to get a registration key.
    account_page = main_text(browser.get("/account"))
    assert "a member of staff will check" in account_page
    assert "enter a registration key" in account_page
    assert "ask for a registration letter to be posted to the address on your GP record" in account_page
    # And staff see them waiting.
    waiting = main_text(clerk_browser.get("/admin/patients/awaiting-verification"))
    assert "Grace Hopper" in waiting


def test_the_register_email_proved_by_the_link_still_verifies_at_once_a6(browser):
    register_entry(email="  Grace.Hopper@Example.ORG ")

    register_and_confirm(browser)

    patient = patient_by_email(EMAIL)
    assert (patient.identity_status, patient.identity_method) == ("verified", "register_match")
    [verified] = audit_events("identity_verified")
    assert (verified.object_id, details(verified)) == (patient.public_id, {"method": "register_match"})


# ---------------------------------------------------------------------------------------------------------
# A7: the practice-issued registration key
# ---------------------------------------------------------------------------------------------------------


def test_staff_issue_a_key_shown_once_and_the_patient_is_verified_with_it_and_their_clock_starts_a7_a1(
    app, browser, clerk_browser
):
    register_entry()
    patient = register_and_confirm(browser)
    req = ask_for_recordings(patient.account)
    detail = f"/admin/patients/{patient.account.public_id}"

    issued_page = post_form(clerk_browser, f"{detail}/registration-key", {}, form_page=detail)

    assert issued_page.status_code == 200
    shown = KEY_SHAPE.findall(main_text(issued_page))
    assert len(shown) == 1
    key = shown[0]
    assert "shown only once" in main_text(issued_page)
    assert "no-store" in issued_page.headers["Cache-Control"]
    # Stored hashed: neither the key nor its compact form is anywhere in the table.
    dump = repr(db.session.execute(text("SELECT * FROM registration_key")).mappings().all())
    assert key not in dump and key.replace("-", "") not in dump and key.replace("-", "").lower() not in dump
    # Nor in the audit trail, which names the key by its public id.
    [issued_event] = audit_events("registration_key_issued")
    assert issued_event.actor_type == "staff"
    assert details(issued_event)["patient"] == patient.account.public_id
    assert key.replace("-", "") not in repr(db.session.execute(text("SELECT * FROM audit_event")).all())
    # The patient page never shows the key again.
    assert not KEY_SHAPE.search(main_text(clerk_browser.get(detail)))

    response = enter_key(browser, key.lower().replace("-", " "))

    assert (response.status_code, response.headers["Location"]) == (302, "/account")
    verified = patient_by_email(EMAIL)
    assert (verified.identity_status, verified.identity_method) == ("verified", "registration_key")
    assert status_of(req) == "submitted"
    assert db.session.get(RecordingRequest, req.id).due_on is not None
    [used] = audit_events("registration_key_used")
    assert (used.actor_type, used.actor_id, used.object_id) == ("patient", verified.public_id, issued_event.object_id)
    [identity] = audit_events("identity_verified")
    assert (identity.actor_type, details(identity)) == ("patient", {"method": "registration_key"})
    assert "with the registration key it gave you" in main_text(browser.get("/account"))


@pytest.mark.parametrize("typed", ["ABCD-EFGH-JKLM-NPQR", "not a key at all", "x" * 5000, "\uff11\uff12\uff13\uff14"])
def test_a_wrong_key_is_refused_with_a_clear_message_and_verifies_nobody_a7(browser, typed):
    entry = register_entry()
    register_and_confirm(browser)
    issue_key(entry)

    response = enter_key(browser, typed)

    assert response.status_code == 400
    assert "Enter the registration key exactly as it is on your letter" in error_message(response)
    assert patient_by_email(EMAIL).identity_status == "unverified"
    [failed] = audit_events("registration_key_failed")
    assert details(failed)["reason"] == "wrong" and failed.outcome == "failure"


def test_an_empty_or_non_text_key_gets_a_clear_message_not_an_error_page(browser):
    register_and_confirm(browser)
    assert "Enter your registration key" in error_message(enter_key(browser, ""))
    token_page = browser.get(KEY_PAGE)
    token = re.search(r'name="csrf_token" value="([^"]+)"', token_page.get_data(as_text=True)).group(1)
    response = browser.post(
        KEY_PAGE, json={"registration-key": ["ABCD"], "csrf_token": token}, headers={"Referer": "https://localhost/"}
    )
    assert 400 <= response.status_code < 500


def test_a_used_key_fails_with_a_clear_message_a7(app, browser):
    entry = register_entry()
    key = issue_key(entry)
    register_and_confirm(browser)
    assert enter_key(browser, key).status_code == 302
    # The account is verified now, so a second patient tries the same key on their own account.
    make_patient(email="other@example.org", nhs_number="9434765919", date_of_birth=date(1956, 12, 9))
    other = make_patient(
        email="third@example.org", given_name="Grace", family_name="Hopper", date_of_birth=date(1956, 12, 9)
    )
    db.session.execute(
        Patient.__table__.update().where(Patient.id == other.account.id).values(identity_status="unverified")
    )
    db.session.commit()
    other_browser = signed_in_browser(app, other)

    response = enter_key(other_browser, key)

    assert response.status_code == 400
    assert "This registration key has already been used" in error_message(response)
    assert db.session.get(Patient, other.account.id).identity_status == "unverified"


def test_an_expired_key_fails_with_a_clear_message_a7(browser):
    entry = register_entry()
    register_and_confirm(browser)
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(days=30, minutes=1), tick=False):
        key = issue_key(entry)

    response = enter_key(browser, key)

    assert response.status_code == 400
    assert "This registration key has expired. Ask the practice for a new one" in error_message(response)
    assert patient_by_email(EMAIL).identity_status == "unverified"
    assert details(audit_events("registration_key_failed")[0])["reason"] == "expired"


def test_a_key_still_works_on_its_last_day_and_its_lifetime_is_the_practice_setting_a7(browser):
    entry = register_entry()
    register_and_confirm(browser)
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(days=29, hours=23), tick=False):
        key = issue_key(entry)
    row = db.session.execute(select(RegistrationKey)).scalar_one()
    assert row.expires_at.replace(tzinfo=UTC) - row.issued_at.replace(tzinfo=UTC) == timedelta(days=30)

    assert enter_key(browser, key).status_code == 302


def test_a_newer_key_replaces_the_older_one_a7(browser):
    entry = register_entry()
    register_and_confirm(browser)
    first = issue_key(entry)
    second = issue_key(entry)

    response = enter_key(browser, first)

    assert response.status_code == 400
    assert "replaced by a newer one" in error_message(response)
    assert enter_key(browser, second).status_code == 302


def test_a_key_issued_for_someone_else_does_not_verify_this_account_a7(browser):
    register_entry()
    other_entry = register_entry(nhs_number="4010232137", given_name="Bob", family_name="Smith-Jones")
    register_and_confirm(browser)

    response = enter_key(browser, issue_key(other_entry))

    assert response.status_code == 400
    assert "This registration key is not for the details on your account" in error_message(response)
    assert patient_by_email(EMAIL).identity_status == "unverified"
    # The key is not spent: its patient can still use it.
    assert db.session.execute(select(RegistrationKey.used_at)).scalar_one() is None


def test_guessing_keys_is_rate_limited_like_a_password_a7_c1(browser):
    """Five wrong keys a minute per account (RATELIMIT_CODE), then 429 even for the right key."""
    entry = register_entry()
    register_and_confirm(browser)
    key = issue_key(entry)
    with time_machine.travel(datetime.now(UTC), tick=False):
        statuses = [enter_key(browser, f"AAAA-BBBB-CCCC-DD{n}{n}").status_code for n in range(2, 7)]
        right = enter_key(browser, key)
    assert statuses == [400] * 5
    assert right.status_code == 429
    assert patient_by_email(EMAIL).identity_status == "unverified"
    assert audit_events("authn_login_fail_max")


def test_a_verified_patient_does_not_need_a_key(browser):
    register_entry(email=EMAIL)
    register_and_confirm(browser)
    response = browser.get(KEY_PAGE)
    assert (response.status_code, response.headers["Location"]) == (302, "/account")


def test_the_key_page_needs_a_signed_in_patient(client, app):
    assert client.get(KEY_PAGE, base_url="https://localhost").status_code == 302
    staff_browser = signed_in_browser(app, make_staff())
    assert staff_browser.get(KEY_PAGE).status_code == 403


# ---------------------------------------------------------------------------------------------------------
# A6: two claims of one NHS number
# ---------------------------------------------------------------------------------------------------------


def test_two_accounts_claiming_one_nhs_number_both_wait_for_staff_and_the_real_patient_is_not_locked_out_a6(
    app, browser, clerk_browser
):
    """The stranger registers first; the real patient, whose email address the register holds, registers
    afterwards: registration is accepted, neither is verified automatically (by the register's email or by a
    key), and both are flagged for staff, who can then confirm the real one."""
    entry = register_entry(email=EMAIL)
    stranger = register_and_confirm(new_browser(app), STRANGER_EMAIL)

    real = register_and_confirm(browser)

    assert patient_by_email(EMAIL) is not None  # registering was not refused
    for email in (EMAIL, STRANGER_EMAIL):
        assert patient_by_email(email).identity_status == "unverified", email
    refused = [details(event) for event in audit_events("identity_register_match_refused")]
    assert {"reason": "number claimed by another account"} in refused
    [flagged] = audit_events("identity_duplicate_claim")
    assert flagged.object_id == real.account.public_id
    assert details(flagged) == {"other_accounts": [stranger.account.public_id]}
    assert "Your NHS number is on more than one account" in main_text(browser.get("/account"))

    # A key does not get past a duplicate claim either, and is not spent by trying.
    key = issue_key(entry)
    response = enter_key(browser, key)
    assert response.status_code == 400
    assert "Your NHS number is on more than one account" in error_message(response)
    assert db.session.execute(select(RegistrationKey.used_at)).scalar_one() is None

    # Staff see both, flagged, and each page names the other account.
    waiting = Pages.parse(clerk_browser.get("/admin/patients/awaiting-verification"))
    flags = [row.get_text(" ", strip=True) for row in waiting.select("tbody tr")]
    assert len(flags) == 2 and all("also claimed by 1 other account" in row for row in flags)
    real_page = main_text(clerk_browser.get(f"/admin/patients/{real.account.public_id}"))
    assert "Another account claims this NHS number" in real_page and "Grace Hopper" in real_page

    # Staff turn the stranger down: the real patient's key then works.
    stranger_page = f"/admin/patients/{stranger.account.public_id}"
    rejected = post_form(
        clerk_browser, f"{stranger_page}/reject", {"reason": "ID did not match"}, form_page=stranger_page
    )
    assert rejected.status_code == 302
    assert enter_key(browser, key).status_code == 302
    assert patient_by_email(EMAIL).identity_status == "verified"


def test_a_second_claim_after_a_verified_account_waits_for_staff_a6(browser):
    register_entry(email="grace.at.home@example.net")
    make_patient(email="first.claimant@example.org", nhs_number="9434765919", verified=True)

    register_and_confirm(browser)

    assert patient_by_email(EMAIL).identity_status == "unverified"
    assert audit_events("identity_verified") == []


def test_staff_cannot_issue_a_key_for_an_account_that_does_not_match_the_register(clerk_browser):
    patient = make_patient(email="nobody.on.register@example.org")
    detail = f"/admin/patients/{patient.account.public_id}"

    response = post_form(clerk_browser, f"{detail}/registration-key", {}, form_page=detail)

    assert response.status_code == 400
    assert "do not all match the practice register" in error_message(response)
    assert db.session.execute(select(func.count()).select_from(RegistrationKey)).scalar_one() == 0


def test_the_key_form_is_only_on_the_page_of_a_patient_waiting_for_a_check(clerk_browser):
    waiting = make_patient(email="waiting@example.org")
    verified = make_patient(email="verified@example.org", nhs_number="4010232137", verified=True)
    soup = Pages.parse(clerk_browser.get(f"/admin/patients/{waiting.account.public_id}"))
    assert soup.select_one(f"form[action$='{waiting.account.public_id}/registration-key']") is not None
    soup = Pages.parse(clerk_browser.get(f"/admin/patients/{verified.account.public_id}"))
    assert soup.select_one("form[action$='/registration-key']") is None


def test_an_issued_key_page_is_well_formed(clerk_browser):
    register_entry()
    patient = make_patient(email=EMAIL, given_name="Grace", family_name="Hopper", date_of_birth=date(1956, 12, 9))
    detail = f"/admin/patients/{patient.account.public_id}"
    soup: BeautifulSoup = Pages.parse(post_form(clerk_browser, f"{detail}/registration-key", {}, form_page=detail))
    assert soup.h1.get_text(strip=True) == "Registration key for Grace Hopper"
