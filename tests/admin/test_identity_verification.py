"""Staff checking who a patient is, finding patients, resetting a patient's lost authenticator, and admins
deactivating patients (SECURITY A5, G5, R7, E6; DESIGN.md §5).

Staff and patients each use their own browser (client), signed in through the real pages with CSRF on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import Patient, RecoveryCode, WebSession
from core.models.audit import AuditEvent
from core.services import totp
from tests.accounts_support import (
    emails_to,
    link_in,
    make_patient,
    make_staff,
    post_form,
    sign_in_password,
    signed_in_browser,
)
from tests.conftest import check_page, new_browser

if TYPE_CHECKING:
    from tests.accounts_support import SignInAccount

UNKNOWN_ID = "0" * 32


@pytest.fixture
def clerk() -> SignInAccount:
    return make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")


@pytest.fixture
def clerk_browser(app, clerk) -> FlaskClient:
    return signed_in_browser(app, clerk)


@pytest.fixture
def patient() -> SignInAccount:
    return make_patient()


def parse(response) -> BeautifulSoup:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def page_text(response) -> str:
    return parse(response).get_text(" ", strip=True)


def error_summary(response) -> str:
    soup = parse(response)
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None, "no error summary"
    assert soup.title.get_text(strip=True).startswith("Error: ")
    return summary.get_text(" ", strip=True)


def fresh_patient(test_account: SignInAccount) -> Patient:
    db.session.expire_all()
    return db.session.get(Patient, test_account.account.id)


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def the_event(action: str, *, actor, subject) -> dict:
    """The single `action` event by `actor` about `subject`; returns its details."""
    found = [event for event in events(action) if event.object_id == subject.public_id]
    assert len(found) == 1, f"{action}: {len(found)} events about {subject.public_id}"
    event = found[0]
    assert (event.actor_type, event.actor_id, event.object_type) == (actor.kind, actor.public_id, subject.kind)
    return json.loads(event.details)


def detail_path(test_account: SignInAccount) -> str:
    return f"/admin/patients/{test_account.account.public_id}"


def act(client: FlaskClient, test_account: SignInAccount, action: str, data: dict | None = None):
    """POST one of the patient page's forms, with the CSRF token from that page."""
    page = detail_path(test_account)
    return post_form(client, f"{page}/{action}", data or {}, form_page=page)


def is_sent_to_sign_in(client: FlaskClient, path: str = "/account") -> bool:
    response = client.get(path)
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


# --- A5: who is waiting ------------------------------------------------------------------------------------


def test_only_patients_who_confirmed_their_email_and_are_unverified_wait_for_a_check(clerk_browser):
    waiting = make_patient(email="waiting@example.org", family_name="Waiting")
    make_patient(email="unconfirmed@example.org", family_name="Unconfirmed", email_confirmed=False)
    make_patient(email="verified@example.org", family_name="Verified", verified=True)

    response = clerk_browser.get("/admin/patients/awaiting-verification")
    assert response.status_code == 200
    links = [anchor["href"] for anchor in parse(response).select("main table a[href]")]
    assert links == [detail_path(waiting)]
    assert "1 patient to check" in page_text(clerk_browser.get("/admin/"))


# --- A5: recording the decision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "note"), [("photo_id", ""), ("call_back", ""), ("other", "Known to the practice manager for years")]
)
def test_staff_confirm_a_patients_identity_and_the_patient_is_told(app, clerk, clerk_browser, patient, method, note):
    response = act(clerk_browser, patient, "verify", {"method": method, "note": note})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/patients/awaiting-verification"

    decided = fresh_patient(patient)
    assert (decided.identity_status, decided.identity_method) == ("verified", method)
    assert decided.identity_decided_by_id == clerk.account.id
    assert decided.identity_decided_at is not None
    assert (decided.identity_note or "") == note
    assert the_event("identity_verified", actor=clerk.account, subject=patient.account) == {"method": method}
    assert [message.subject for message in emails_to(patient.account.email)] == ["We have confirmed your identity"]
    assert detail_path(patient) not in clerk_browser.get("/admin/patients/awaiting-verification").get_data(as_text=True)

    patient_browser = signed_in_browser(app, patient)
    account_page = parse(patient_browser.get("/account"))
    assert account_page.select_one(".nhsuk-tag").get_text(strip=True) == "Confirmed"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "other", "note": ""}, "Describe how you checked the patient's identity"),
        ({"method": "other", "note": "   "}, "Describe how you checked the patient's identity"),
        ({"note": "I just know"}, "Select how you checked the patient's identity"),
        ({"method": "register_match"}, "Select how you checked the patient's identity"),
        ({"method": "verified"}, "Select how you checked the patient's identity"),
    ],
)
def test_a_check_without_a_valid_method_or_a_note_for_other_is_refused(clerk_browser, patient, data, message):
    response = act(clerk_browser, patient, "verify", data)
    assert response.status_code == 400
    assert message in error_summary(response)
    assert fresh_patient(patient).identity_status == "unverified"
    assert events("identity_verified") == []
    assert emails_to(patient.account.email) == []


def test_staff_record_that_identity_could_not_be_confirmed_and_the_patient_sees_why(app, clerk, clerk_browser, patient):
    reason = "The name on your passport does not match the name you registered with."
    response = act(clerk_browser, patient, "reject", {"reason": reason})
    assert response.status_code == 302

    decided = fresh_patient(patient)
    assert (decided.identity_status, decided.identity_note) == ("rejected", reason)
    assert decided.identity_decided_by_id == clerk.account.id
    the_event("identity_rejected", actor=clerk.account, subject=patient.account)
    [email] = emails_to(patient.account.email)
    assert email.subject == "We could not confirm your identity"
    assert reason not in email.body_text  # the reason is shown after signing in, not in an email

    patient_browser = signed_in_browser(app, patient)
    account_page = parse(patient_browser.get("/account"))
    assert account_page.select_one(".nhsuk-tag").get_text(strip=True) == "Not confirmed"
    assert reason in account_page.get_text(" ", strip=True)


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_rejection_without_a_reason_is_refused(clerk_browser, patient, reason):
    response = act(clerk_browser, patient, "reject", {"reason": reason})
    assert response.status_code == 400
    assert "Enter the reason" in error_summary(response)
    assert fresh_patient(patient).identity_status == "unverified"
    assert events("identity_rejected") == []


def test_a_patient_waiting_for_a_check_sees_that_on_their_account_page(app, patient):
    patient_browser = signed_in_browser(app, patient)
    tag = parse(patient_browser.get("/account")).select_one(".nhsuk-tag").get_text(strip=True)
    assert tag == "Waiting for the practice"


# --- A5 and G5: a patient cannot verify themselves -----------------------------------------------------------

ELEVATING_FIELDS = {
    "identity_status": "verified",
    "identity-status": "verified",
    "is_verified": "1",
    "identity_method": "photo_id",
    "method": "photo_id",
    "role": "admin",
}


def test_a_patient_cannot_mark_themselves_verified_through_any_form(app, patient):
    """A5/G5: extra fields on every form a patient can reach are ignored, and the staff form refuses them."""
    patient_browser = signed_in_browser(app, patient)
    attempts = [  # (path, fields, page to take the CSRF token from, the answer that shows the form was read)
        ("/account", {}, "/account/change-password", 405),
        ("/account/change-password", {"current-password": "wrong"}, None, 400),
        ("/account/sign-out-other-devices", {"password": patient.password}, None, 302),
        ("/account/recovery-codes/new", {}, None, 200),
        (f"/admin/patients/{patient.account.public_id}/verify", {}, "/account/change-password", 403),
    ]
    for path, data, form_page, expected in attempts:
        response = post_form(patient_browser, path, {**ELEVATING_FIELDS, **data}, form_page=form_page)
        assert response.status_code == expected, path

    after = fresh_patient(patient)
    assert (after.identity_status, after.identity_method, after.identity_decided_by_id) == ("unverified", None, None)
    assert events("identity_verified") == []


def test_registering_with_extra_identity_fields_still_leaves_the_patient_unverified(app):
    """A5/G5: the registration form reads only its own fields (and the practice register has no entry)."""
    visitor = new_browser(app)
    password = "pelican harbour nutmeg fiddle"
    response = post_form(
        visitor,
        "/account/register",
        {
            **ELEVATING_FIELDS,
            "given-name": "Grace",
            "family-name": "Hopper",
            "dob-day": "9",
            "dob-month": "12",
            "dob-year": "1966",
            "nhs-number": "9876543210",
            "postcode": "SE28 8BE",
            "email": "grace@example.org",
            "password": password,
            "confirm-password": password,
            "terms": "yes",
        },
    )
    assert response.status_code == 302
    registered = db.session.execute(select(Patient).where(Patient.email == "grace@example.org")).scalar_one()
    assert (registered.identity_status, registered.identity_method) == ("unverified", None)


# --- Finding a patient ---------------------------------------------------------------------------------------


def search(client: FlaskClient, query: str):
    """Send the search form (a POST, so the NHS number or address is in no URL), as a browser would."""
    return post_form(client, "/admin/patients", {"q": query})


@pytest.mark.parametrize(
    "query",
    ["9434765919", "943 476 5919", " 943-476-5919 ", "ada@example.org", "ADA@Example.ORG", "lovelace", "LoveLace"],
)
def test_staff_find_a_patient_by_nhs_number_email_or_last_name(clerk_browser, query):
    wanted = make_patient(email="ada@example.org")
    make_patient(email="grace@example.org", given_name="Grace", family_name="Hopper", nhs_number="9876543210")
    response = search(clerk_browser, query)
    assert response.status_code == 200
    links = [anchor["href"] for anchor in parse(response).select("main ul a[href]")]
    assert links == [detail_path(wanted)]


def test_a_search_that_matches_nobody_says_so(clerk_browser, patient):
    response = search(clerk_browser, "Babbage")
    assert "0 patients found" in page_text(response)


def test_the_search_form_posts_with_a_csrf_token_so_what_was_searched_is_in_no_address(clerk_browser):
    form = parse(clerk_browser.get("/admin/patients")).select_one("main form")
    assert (form["method"].lower(), form["action"]) == ("post", "/admin/patients")
    assert form.select_one("input[name=csrf_token]")["value"]
    assert form.select_one("input[name=q]") is not None


def test_a_search_sent_in_the_address_is_not_carried_out(clerk_browser, patient):
    """A GET with ?q= (an old bookmark, a link, a guess) shows the empty form: it never searches, and does not
    echo what was in the address."""
    for query in ("9434765919", "patient@example.org", "Lovelace"):
        response = clerk_browser.get("/admin/patients", query_string={"q": query})
        assert response.status_code == 200
        soup = parse(response)
        assert soup.select("main ul a[href]") == []
        assert "found" not in soup.select_one("main").get_text(" ", strip=True)
        assert soup.select_one("input[name=q]").get("value", "") == ""
        assert query not in response.get_data(as_text=True)
    assert search(clerk_browser, "Lovelace").status_code == 200  # the same search, sent by the form, works


def test_a_search_without_a_csrf_token_is_refused(clerk_browser, patient):
    response = clerk_browser.post("/admin/patients", data={"q": "Lovelace"})
    assert response.status_code == 400
    assert detail_path(patient) not in response.get_data(as_text=True)


def test_an_unknown_patient_is_a_404_on_every_patient_page(clerk_browser, patient):
    assert clerk_browser.get(f"/admin/patients/{UNKNOWN_ID}").status_code == 404
    for action in ("verify", "reject", "reset-authenticator"):
        path = f"/admin/patients/{UNKNOWN_ID}/{action}"
        response = post_form(
            clerk_browser,
            path,
            {"method": "photo_id", "reason": "x", "photo-id-checked": "yes"},
            form_page=detail_path(patient),
        )
        assert response.status_code == 404, action


# --- R7: a lost authenticator ----------------------------------------------------------------------------------


def recovery_code_count(test_account: SignInAccount) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.account_kind == "patient", RecoveryCode.account_id == test_account.account.id)
    ).scalar_one()


def test_resetting_a_patients_authenticator_needs_the_photo_id_box_ticked(clerk_browser, patient):
    response = act(clerk_browser, patient, "reset-authenticator", {"photo-id-checked": ""})
    assert response.status_code == 400
    assert "Confirm that you have checked the patient's photo ID in person" in error_summary(response)
    assert fresh_patient(patient).has_authenticator
    assert events("mfa_reset_by_staff") == []


def test_resetting_a_patients_authenticator_clears_it_signs_them_out_and_emails_them(
    app, clerk, clerk_browser, patient
):
    """R7: the old authenticator and recovery codes stop working, every session ends, the patient is emailed
    a link to sign in and set up a new one, and it is audited. Staff never see or set a password."""
    totp.generate_recovery_codes(patient.account)
    db.session.commit()
    assert recovery_code_count(patient) == 10
    password_hash = patient.account.password_hash
    patient_browser = signed_in_browser(app, patient)

    detail = parse(clerk_browser.get(detail_path(patient)))
    assert detail.select("input[type=password]") == []
    response = act(clerk_browser, patient, "reset-authenticator", {"photo-id-checked": "yes"})
    assert response.status_code == 302 and response.headers["Location"] == detail_path(patient)

    after = fresh_patient(patient)
    assert not after.has_authenticator
    assert after.password_hash == password_hash
    assert recovery_code_count(patient) == 0
    assert is_sent_to_sign_in(patient_browser)
    assert the_event("mfa_reset_by_staff", actor=clerk.account, subject=patient.account)["sessions_ended"] == 1
    [email] = [message for message in emails_to(patient.account.email) if "authenticator" in message.subject]
    assert link_in(email).startswith("/account/authenticator/set-up/")

    again = new_browser(app)
    assert again.get(link_in(email)).headers["Location"] == "/account/sign-in"
    response = sign_in_password(again, patient)
    assert response.headers["Location"] == "/account/authenticator/set-up"  # their own password, a new app


# --- E6: deactivating a patient (admins only) ------------------------------------------------------------------


def test_an_admin_deactivates_a_patient_and_their_live_session_is_refused(app, patient):
    admin = make_staff(email="admin@practice.example", name="Ava Admin", role="admin")
    admin_browser = signed_in_browser(app, admin)
    patient_browser = signed_in_browser(app, patient)
    assert patient_browser.get("/account").status_code == 200

    response = act(admin_browser, patient, "deactivate")
    assert response.status_code == 302
    assert is_sent_to_sign_in(patient_browser)
    assert not fresh_patient(patient).is_active
    assert the_event("patient_deactivated", actor=admin.account, subject=patient.account) == {"sessions_ended": 1}
    response = sign_in_password(new_browser(app), patient)
    assert response.status_code == 400  # the usual sign-in error: nothing says the account is deactivated

    assert act(admin_browser, patient, "reactivate").status_code == 302
    assert fresh_patient(patient).is_active
    the_event("patient_reactivated", actor=admin.account, subject=patient.account)
    assert signed_in_browser(app, patient).get("/account").status_code == 200


def test_an_admin_signs_a_patient_out_everywhere(app, patient):
    admin = make_staff(email="admin@practice.example", name="Ava Admin", role="admin")
    admin_browser = signed_in_browser(app, admin)
    patient_browser = signed_in_browser(app, patient)
    assert act(admin_browser, patient, "end-sessions").status_code == 302
    assert is_sent_to_sign_in(patient_browser)
    assert the_event("sessions_ended", actor=admin.account, subject=patient.account) == {"count": 1, "reason": "staff"}


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "end-sessions"])
def test_staff_without_the_admin_role_cannot_deactivate_or_sign_out_a_patient(app, clerk_browser, patient, action):
    patient_browser = signed_in_browser(app, patient)
    response = act(clerk_browser, patient, action)
    assert response.status_code == 403
    assert fresh_patient(patient).is_active
    assert patient_browser.get("/account").status_code == 200
    assert events("patient_deactivated") == events("sessions_ended") == []


# --- E12: changing a patient's account needs both factors within the last 15 minutes -----------------------

# Fifteen seconds into a 30-second step, so codes computed for it are unambiguous.
NOW = datetime(2026, 3, 9, 10, 0, 15, tzinfo=UTC)
PATIENT_ACTIONS = {
    "reset-authenticator": {"photo-id-checked": "yes"},
    "deactivate": {},
    "reactivate": {},
    "end-sessions": {},
}
PATIENT_ACTION_EVENTS = ("mfa_reset_by_staff", "patient_deactivated", "patient_reactivated", "sessions_ended")


def account_state(test_account: SignInAccount) -> tuple:
    """What the admin actions on a patient change: active, authenticator, recovery codes and sessions."""
    patient = fresh_patient(test_account)
    sessions = db.session.execute(
        select(func.count())
        .select_from(WebSession)
        .where(WebSession.account_kind == "patient", WebSession.account_id == patient.id)
    ).scalar_one()
    return patient.is_active, patient.totp_secret_encrypted, recovery_code_count(test_account), sessions


def signed_in_long_ago(app, test_account: SignInAccount, traveller) -> FlaskClient:
    """A browser whose both factors were proved 16 minutes ago, though it was used 6 minutes ago (so the
    staff idle timeout of 15 minutes has not signed it out)."""
    client = signed_in_browser(app, test_account)
    traveller.shift(timedelta(minutes=10))
    assert client.get("/admin/").status_code == 200
    traveller.shift(timedelta(minutes=6))
    return client


@pytest.mark.parametrize("action", sorted(PATIENT_ACTIONS))
def test_an_action_on_a_patients_account_with_a_stale_second_factor_asks_to_confirm_it_is_you_e12(app, patient, action):
    """E12: with both factors proved more than 15 minutes ago, the form sends the admin to confirm it is them,
    to come back to the page the form was on; nothing is changed until the form is sent again."""
    admin = make_staff(email="admin@practice.example", name="Ava Admin", role="admin")
    if action == "reactivate":
        patient.account.is_active = False
        db.session.commit()
    else:
        totp.generate_recovery_codes(patient.account)
        db.session.commit()
    with time_machine.travel(NOW, tick=False) as traveller:
        if action != "reactivate":
            signed_in_browser(app, patient)
        admin_browser = signed_in_long_ago(app, admin, traveller)
        before = account_state(patient)
        db.session.rollback()

        response = act(admin_browser, patient, action, PATIENT_ACTIONS[action])

        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert (location.path, parse_qs(location.query)) == (
            "/admin/confirm-it-is-you",
            {"next": [detail_path(patient)]},
        )
        assert account_state(patient) == before
        assert [event.action for action_name in PATIENT_ACTION_EVENTS for event in events(action_name)] == []
        assert emails_to(patient.account.email) == []


def test_after_confirming_it_is_them_the_admin_is_sent_back_and_the_action_works_e12(app, patient):
    admin = make_staff(email="admin@practice.example", name="Ava Admin", role="admin")
    with time_machine.travel(NOW, tick=False) as traveller:
        patient_browser = signed_in_browser(app, patient)
        admin_browser = signed_in_long_ago(app, admin, traveller)
        asked = act(admin_browser, patient, "end-sessions")
        assert not is_sent_to_sign_in(patient_browser)  # nothing done yet

        confirmed = post_form(
            admin_browser,
            asked.headers["Location"],
            {"password": admin.password, "code": admin.code(), "next": detail_path(patient)},
        )
        assert confirmed.headers["Location"] == detail_path(patient)
        done = act(admin_browser, patient, "end-sessions")

    assert (done.status_code, done.headers["Location"]) == (302, detail_path(patient))
    assert is_sent_to_sign_in(patient_browser)
    assert the_event("sessions_ended", actor=admin.account, subject=patient.account) == {"count": 1, "reason": "staff"}
