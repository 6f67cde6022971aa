"""Staff accounts: the first admin from the CLI, invitations, roles, deactivation, signing people out and
resetting a lost authenticator (SECURITY A4, D15, E4, E6, E8, R7; DESIGN.md §5).

Every journey goes through the real pages with CSRF on, as a member of staff would use them: an admin in
one browser (client), the person they manage in another.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import Patient, StaffUser, WebSession
from core.models.audit import AuditEvent
from core.services import accounts
from tests.accounts_support import (
    SignInAccount,
    csrf_token,
    emails_to,
    link_in,
    make_patient,
    make_staff,
    post_form,
    sign_in,
    sign_in_password,
    signed_in_browser,
)
from tests.conftest import check_page, new_browser

NEW_PASSWORD = "lantern meadow copper violin"
# Fifteen seconds into a 30-second step, so codes computed for it are unambiguous.
NOW = datetime(2026, 3, 9, 10, 0, 15, tzinfo=UTC)
# Where an invitation link leads: the set-up page at an address without the token (SECURITY H13).
SET_UP_ACCOUNT = "/admin/invitation"


@pytest.fixture
def admin() -> SignInAccount:
    return make_staff(email="admin@practice.example", name="Ava Admin", role="admin")


@pytest.fixture
def admin_client(app, admin) -> FlaskClient:
    client = new_browser(app)
    sign_in(client, admin)
    return client


def parse(response) -> BeautifulSoup:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def error_summary(response) -> str:
    soup = parse(response)
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None, "no error summary"
    assert soup.title.get_text(strip=True).startswith("Error: ")
    return summary.get_text(" ", strip=True)


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )


def the_event(action: str, *, actor, subject) -> dict:
    """The single `action` event by `actor` about `subject`; returns its details."""
    found = [
        event
        for event in events(action)
        if event.actor_id == actor.public_id and event.object_id == subject.public_id and event.outcome == "success"
    ]
    assert len(found) == 1, f"{action}: {len(found)} events by {actor.public_id} about {subject.public_id}"
    assert found[0].actor_type == actor.kind and found[0].object_type == subject.kind
    return json.loads(found[0].details)


def fresh(model, account_id: int):
    """The row as the database has it now (requests run in other sessions)."""
    db.session.expire_all()
    return db.session.get(model, account_id)


def staff_count() -> int:
    return db.session.execute(select(func.count()).select_from(StaffUser)).scalar_one()


def is_sent_to_sign_in(client: FlaskClient, path: str = "/admin/") -> bool:
    response = client.get(path)
    return response.status_code == 302 and response.headers["Location"].startswith("/admin/sign-in")


def invite(admin_client: FlaskClient, **fields) -> object:
    data = {"name": "Nia New", "email": "nia.new@practice.example", "role": "staff", **fields}
    return post_form(admin_client, "/admin/staff/invite", data)


def follow_invitation(client: FlaskClient, link: str):
    """Open an invitation link as a browser does (SECURITY H13): the link answers 303 to the token-less
    set-up page and the browser goes on there. Returns that page."""
    response = client.get(link)
    assert response.status_code == 303, response.status_code
    assert response.headers["Location"] == SET_UP_ACCOUNT
    return client.get(SET_UP_ACCOUNT)


def accept(client: FlaskClient, password: str = NEW_PASSWORD, *, form_page: str = SET_UP_ACCOUNT):
    """Send a password from the set-up page (the CSRF token from `form_page`)."""
    return post_form(client, SET_UP_ACCOUNT, {"password": password, "confirm-password": password}, form_page=form_page)


def assert_link_does_not_work(response) -> None:
    assert response.status_code == 404
    assert parse(response).h1.get_text(strip=True) == "This link does not work"


def setup_key(client: FlaskClient) -> str:
    page = parse(client.get("/admin/authenticator/set-up"))
    return "".join(page.select_one("#setup-key").get_text().split())


# --- A4: the first admin --------------------------------------------------------------------------------


def test_a_fresh_installation_has_no_accounts_at_all():
    """A4: no default staff (no admin/admin) and no patients after the migrations and default content."""
    assert staff_count() == 0
    assert db.session.execute(select(func.count()).select_from(Patient)).scalar_one() == 0


def test_the_first_admin_is_created_by_the_cli_with_a_one_time_invitation_and_must_enrol(app):
    """A4: `flask staff create-admin` makes an admin with no password, prints a one-time link, and that
    person must choose a password and set up an authenticator before reaching any admin page."""
    result = app.test_cli_runner().invoke(
        args=["staff", "create-admin", "--email", "Boss@Practice.example", "--name", "Bo Boss"]
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"https?://[^/\s]+(/admin/invitation/\S+)", result.output)
    assert match, result.output
    boss = db.session.execute(select(StaffUser)).scalar_one()
    assert (boss.email, boss.name, boss.role) == ("boss@practice.example", "Bo Boss", "admin")
    assert boss.password_hash is None and not boss.has_authenticator

    client = new_browser(app)
    link = match.group(1)
    assert follow_invitation(client, link).status_code == 200
    response = accept(client)
    assert response.headers["Location"] == "/admin/authenticator/set-up"
    assert is_sent_to_sign_in(client, "/admin/staff")
    assert_link_does_not_work(client.get(link))  # one time only
    assert_link_does_not_work(client.get(SET_UP_ACCOUNT))

    again = app.test_cli_runner().invoke(
        args=["staff", "create-admin", "--email", "boss@practice.example", "--name", "Bo Again"]
    )
    assert again.exit_code != 0
    assert staff_count() == 1


# --- Invitations ------------------------------------------------------------------------------------------


def test_an_invited_member_of_staff_sets_a_password_then_must_set_up_an_authenticator_before_anything_else(
    app, admin, admin_client
):
    """The whole invitation journey, with an audit event at each step."""
    response = invite(admin_client, email="Nia.New@Practice.example")
    assert response.status_code == 302
    nia = db.session.execute(select(StaffUser).where(StaffUser.email == "nia.new@practice.example")).scalar_one()
    assert response.headers["Location"] == f"/admin/staff/{nia.public_id}"
    assert (nia.role, nia.password_hash, nia.invited_by_id) == ("staff", None, admin.account.id)
    assert the_event("staff_invited", actor=admin.account, subject=nia) == {"role": "staff"}

    [email] = emails_to("nia.new@practice.example")
    link = link_in(email)
    assert link.startswith("/admin/invitation/")
    assert "72 hours" in email.body_text

    browser = new_browser(app)
    form = parse(follow_invitation(browser, link))
    assert form.select_one("main form[method=post]")["action"] == SET_UP_ACCOUNT
    assert form.select_one("input[name=password][type=password]") is not None
    assert form.select_one("input[name=confirm-password][type=password]") is not None
    assert "Nia New" in form.get_text(" ", strip=True)
    assert events("staff_invitation_accepted") == []  # opening the link changes nothing

    response = accept(browser)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/authenticator/set-up"
    assert the_event("staff_invitation_accepted", actor=nia, subject=nia) == {}
    assert is_sent_to_sign_in(browser, "/admin/"), "reached the dashboard without an authenticator"

    secret = setup_key(browser)
    response = post_form(browser, "/admin/authenticator/set-up", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = parse(response).select("#recovery-codes li")
    assert len(codes) == 10
    assert the_event("mfa_enrolled", actor=nia, subject=nia) == {"recovery_codes": 10}

    dashboard = browser.get("/admin/")
    assert dashboard.status_code == 200
    assert "Signed in as Nia New (staff)" in parse(dashboard).get_text(" ", strip=True)
    assert browser.get("/admin/staff").status_code == 403  # invited as staff, not admin


def test_an_invitation_link_works_once(app, admin, admin_client):
    invite(admin_client)
    link = link_in(emails_to("nia.new@practice.example")[0])
    browser = new_browser(app)
    follow_invitation(browser, link)
    assert accept(browser).status_code == 302

    assert_link_does_not_work(browser.get(link))
    other_browser = new_browser(app)
    assert_link_does_not_work(other_browser.get(link))
    assert_link_does_not_work(accept(other_browser, "x" + NEW_PASSWORD, form_page="/admin/sign-in"))
    nia = db.session.execute(select(StaffUser).where(StaffUser.email == "nia.new@practice.example")).scalar_one()
    assert len(events("staff_invitation_accepted")) == 1
    assert nia.password_hash is not None
    started = sign_in_password(other_browser, SignInAccount(nia, NEW_PASSWORD, None))  # the first password
    assert started.headers["Location"] == "/admin/authenticator/set-up"


def test_an_invitation_link_expires_after_72_hours(app, admin):
    with time_machine.travel(NOW, tick=False) as traveller:
        accounts.invite_staff(admin.account, email="nia.new@practice.example", name="Nia New", role="staff")
        link = link_in(emails_to("nia.new@practice.example")[0])
        browser = new_browser(app)

        traveller.move_to(NOW + timedelta(hours=71, minutes=59))
        assert follow_invitation(browser, link).status_code == 200

        # Also once opened: the token kept for the set-up page expires with the link.
        traveller.move_to(NOW + timedelta(hours=72, seconds=1))
        assert_link_does_not_work(browser.get(SET_UP_ACCOUNT))
        assert_link_does_not_work(accept(browser, form_page="/admin/sign-in"))
        assert_link_does_not_work(browser.get(link))
        assert_link_does_not_work(new_browser(app).get(link))
    nia = db.session.execute(select(StaffUser).where(StaffUser.email == "nia.new@practice.example")).scalar_one()
    assert nia.password_hash is None
    assert events("staff_invitation_accepted") == []


def test_sending_a_new_invitation_voids_the_old_link(app, admin, admin_client):
    invite(admin_client)
    nia = db.session.execute(select(StaffUser).where(StaffUser.email == "nia.new@practice.example")).scalar_one()
    old_link = link_in(emails_to(nia.email)[0])
    opened_before = new_browser(app)
    assert follow_invitation(opened_before, old_link).status_code == 200

    response = post_form(
        admin_client, f"/admin/staff/{nia.public_id}/resend-invitation", {}, form_page=f"/admin/staff/{nia.public_id}"
    )
    assert response.status_code == 302
    new_link = link_in(emails_to(nia.email)[-1])
    assert new_link != old_link

    assert_link_does_not_work(opened_before.get(SET_UP_ACCOUNT))  # opened before the resend: void too
    assert_link_does_not_work(accept(opened_before, form_page="/admin/sign-in"))
    browser = new_browser(app)
    assert_link_does_not_work(browser.get(old_link))
    assert follow_invitation(browser, new_link).status_code == 200
    the_event("staff_invitation_resent", actor=admin.account, subject=nia)
    assert fresh(StaffUser, nia.id).password_hash is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-email"}, "Enter an email address in the correct format"),
        ({"email": ""}, "Enter an email address in the correct format"),
        ({"name": ""}, "Enter the person's full name"),
        ({"name": "   "}, "Enter the person's full name"),
        ({"email": "ADMIN@practice.example"}, "A staff account with this email address already exists"),
        ({"role": ""}, "Select a role"),
        ({"role": "superuser"}, "Select a role"),
    ],
)
def test_an_invitation_with_a_mistake_is_refused_with_an_error_summary(admin, admin_client, fields, message):
    before = staff_count()
    response = invite(admin_client, **fields)
    assert response.status_code == 400
    assert message in error_summary(response)
    assert staff_count() == before
    assert events("staff_invited") == []


def test_an_invitation_cannot_be_accepted_with_a_weak_password(app, admin, admin_client):
    invite(admin_client)
    link = link_in(emails_to("nia.new@practice.example")[0])
    browser = new_browser(app)
    follow_invitation(browser, link)
    response = accept(browser, "short")
    assert response.status_code == 400
    error_summary(response)
    assert browser.get(SET_UP_ACCOUNT).status_code == 200  # the link is still good, here
    assert follow_invitation(new_browser(app), link).status_code == 200  # and anywhere
    assert events("staff_invitation_accepted") == []


# --- Invitation links keep their token out of page addresses (H10, H13) -----------------------------------


def invitation_link(admin_client: FlaskClient) -> str:
    assert invite(admin_client).status_code == 302
    return link_in(emails_to("nia.new@practice.example")[-1])


def test_the_invitation_link_moves_its_token_into_the_session_and_on_to_an_address_without_it_h13(
    app, admin, admin_client, caplog
):
    """H13: the link answers 303, with `Referrer-Policy: no-referrer`, to /admin/invitation, and neither that
    answer nor the set-up page holds the token (so the page's own requests, their Referer and a proxy's log
    cannot either). H10: opening the link and the page changes nothing. The request log names the route, not
    the token."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    link = invitation_link(admin_client)
    token = link.rsplit("/", 1)[1]
    browser = new_browser(app)

    opened = browser.get(link)

    assert opened.status_code == 303
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert opened.headers["Location"] == SET_UP_ACCOUNT
    assert token not in str(opened.headers)
    form_page = browser.get(SET_UP_ACCOUNT)
    assert form_page.status_code == 200
    assert token not in form_page.get_data(as_text=True)
    assert token not in str(form_page.headers)
    assert parse(form_page).select_one("main form[method=post]")["action"] == SET_UP_ACCOUNT
    nia = db.session.execute(select(StaffUser).where(StaffUser.email == "nia.new@practice.example")).scalar_one()
    assert nia.password_hash is None
    assert events("staff_invitation_accepted") == []
    messages = [record.getMessage() for record in caplog.records]
    assert "GET /admin/invitation/<token> 303" in messages and f"GET {SET_UP_ACCOUNT} 200" in messages
    for record in caplog.records:
        assert token not in f"{record.getMessage()} {record.args!r} {record.__dict__!r}", record.name


def test_the_set_up_page_does_not_work_in_a_browser_that_never_opened_the_invitation_link(app, admin, admin_client):
    """The token is kept by the browser that opened the link, not by the page's address."""
    link = invitation_link(admin_client)
    browser = new_browser(app)
    assert follow_invitation(browser, link).status_code == 200
    other_browser = new_browser(app)

    assert_link_does_not_work(other_browser.get(SET_UP_ACCOUNT))
    assert_link_does_not_work(accept(other_browser, "x" + NEW_PASSWORD, form_page="/admin/sign-in"))
    assert events("staff_invitation_accepted") == []
    assert accept(browser).status_code == 302  # still good where it was opened
    assert len(events("staff_invitation_accepted")) == 1


def test_after_the_invitation_is_accepted_going_back_to_the_set_up_page_does_not_work(app, admin, admin_client):
    """Once the password is chosen the session forgets the token: the page (and its form) no longer work."""
    browser = new_browser(app)
    assert follow_invitation(browser, invitation_link(admin_client)).status_code == 200
    assert accept(browser).status_code == 302

    assert_link_does_not_work(browser.get(SET_UP_ACCOUNT))
    assert_link_does_not_work(accept(browser, "x" + NEW_PASSWORD, form_page="/admin/authenticator/set-up"))
    assert len(events("staff_invitation_accepted")) == 1


# --- Staff password reset links ------------------------------------------------------------------------------


def test_a_staff_reset_link_leads_to_the_staff_reset_page_and_not_to_the_patients_one(app):
    """The reset link keeps its token in the session like the others; the patients' reset page in the same
    browser refuses a staff member's token (and so cannot set a staff password)."""
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    old_hash = clerk.account.password_hash
    browser = new_browser(app)
    assert post_form(browser, "/admin/forgot-password", {"email": clerk.account.email}).status_code == 302
    [email] = [message for message in emails_to(clerk.account.email) if message.subject == "Reset your password"]
    link = link_in(email)
    assert link.startswith("/admin/reset-password/")

    opened = browser.get(link)
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/admin/reset-password"
    assert link.rsplit("/", 1)[1] not in browser.get("/admin/reset-password").get_data(as_text=True)
    assert_link_does_not_work(browser.get("/account/reset-password"))
    fields = {"password": NEW_PASSWORD, "confirm-password": NEW_PASSWORD}
    refused = post_form(browser, "/account/reset-password", fields, form_page="/admin/reset-password")
    assert_link_does_not_work(refused)
    assert fresh(StaffUser, clerk.account.id).password_hash == old_hash

    response = post_form(browser, "/admin/reset-password", fields)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/sign-in"
    assert fresh(StaffUser, clerk.account.id).password_hash != old_hash
    assert_link_does_not_work(browser.get("/admin/reset-password"))
    clerk.password = NEW_PASSWORD
    assert sign_in_password(new_browser(app), clerk).headers["Location"] == "/admin/sign-in/code"


# --- Roles -------------------------------------------------------------------------------------------------


def test_an_admin_changes_a_role_and_it_is_audited(app, admin, admin_client):
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    clerk_browser = signed_in_browser(app, clerk)
    assert clerk_browser.get("/admin/staff").status_code == 403

    page = f"/admin/staff/{clerk.account.public_id}"
    response = post_form(admin_client, f"{page}/role", {"role": "admin"}, form_page=page)
    assert response.status_code == 302 and response.headers["Location"] == page
    assert fresh(StaffUser, clerk.account.id).role == "admin"
    assert the_event("staff_role_changed", actor=admin.account, subject=clerk.account) == {
        "from": "staff",
        "to": "admin",
    }
    assert clerk_browser.get("/admin/staff").status_code == 200  # applies to the live session at once

    response = post_form(admin_client, f"{page}/role", {"role": "root"}, form_page=page)
    assert response.status_code == 400
    assert fresh(StaffUser, clerk.account.id).role == "admin"


def test_the_last_active_admin_cannot_be_demoted(admin, admin_client):
    """A deactivated admin does not count: the active one still may not step down."""
    retired = make_staff(email="retired@practice.example", name="Rex Retired", role="admin")
    retired.account.is_active = False
    db.session.commit()

    page = f"/admin/staff/{admin.account.public_id}"
    response = post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page)
    assert response.status_code == 400
    assert "There must always be at least one active admin" in error_summary(response)
    assert fresh(StaffUser, admin.account.id).role == "admin"
    assert events("staff_role_changed") == []


def test_the_last_active_admin_cannot_be_deactivated(admin):
    """The pages cannot even ask for this (only an admin may deactivate, and not themselves), so the service
    is asked directly, as a future page or command would."""
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    with pytest.raises(accounts.AccountError, match="at least one active admin"):
        accounts.set_account_active(clerk.account, admin.account, False)
    assert fresh(StaffUser, admin.account.id).is_active


def test_a_deactivated_admin_can_be_demoted_while_another_admin_is_active(admin, admin_client):
    retired = make_staff(email="retired@practice.example", name="Rex Retired", role="admin")
    retired.account.is_active = False
    db.session.commit()
    page = f"/admin/staff/{retired.account.public_id}"
    response = post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page)
    assert response.status_code == 302
    assert fresh(StaffUser, retired.account.id).role == "staff"


def test_an_admin_can_demote_another_admin(app, admin, admin_client):
    other = make_staff(email="other@practice.example", name="Oli Other", role="admin")
    page = f"/admin/staff/{other.account.public_id}"
    assert post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page).status_code == 302
    assert fresh(StaffUser, other.account.id).role == "staff"
    the_event("staff_role_changed", actor=admin.account, subject=other.account)


# --- Deactivation, signing out everywhere (E6, E8) ---------------------------------------------------------


def test_a_deactivated_member_of_staff_is_refused_on_their_next_request_and_cannot_sign_in(app, admin, admin_client):
    """E6: deactivation ends every session at once; reactivation lets them sign in again."""
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    clerk_browser = signed_in_browser(app, clerk)
    assert clerk_browser.get("/admin/").status_code == 200

    page = f"/admin/staff/{clerk.account.public_id}"
    response = post_form(admin_client, f"{page}/deactivate", {}, form_page=page)
    assert response.status_code == 302
    assert is_sent_to_sign_in(clerk_browser)
    assert the_event("staff_deactivated", actor=admin.account, subject=clerk.account) == {"sessions_ended": 1}

    again = new_browser(app)
    response = sign_in_password(again, clerk)
    assert response.status_code == 400  # the sign-in page again, with the usual error
    assert "Enter a correct email address and password" in error_summary(response)

    response = post_form(admin_client, f"{page}/reactivate", {}, form_page=page)
    assert response.status_code == 302
    assert fresh(StaffUser, clerk.account.id).is_active
    the_event("staff_reactivated", actor=admin.account, subject=clerk.account)
    sign_in(again, clerk)
    assert again.get("/admin/").status_code == 200


def test_an_admin_cannot_deactivate_themselves(admin, admin_client):
    make_staff(email="other@practice.example", name="Oli Other", role="admin")  # so "last admin" does not apply
    page = f"/admin/staff/{admin.account.public_id}"
    response = post_form(admin_client, f"{page}/deactivate", {}, form_page=page)
    assert response.status_code == 400
    assert "You cannot deactivate your own account" in error_summary(response)
    assert fresh(StaffUser, admin.account.id).is_active
    assert admin_client.get("/admin/").status_code == 200
    assert events("staff_deactivated") == []


def test_an_admin_signs_a_member_of_staff_out_everywhere(app, admin, admin_client):
    """E8: the live session of the member of staff ends; they can sign in again."""
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    clerk_browser = signed_in_browser(app, clerk)

    page = f"/admin/staff/{clerk.account.public_id}"
    response = post_form(admin_client, f"{page}/end-sessions", {}, form_page=page)
    assert response.status_code == 302
    assert is_sent_to_sign_in(clerk_browser)
    assert the_event("sessions_ended", actor=admin.account, subject=clerk.account) == {"count": 1, "reason": "staff"}
    assert admin_client.get("/admin/").status_code == 200  # the admin's own session is untouched


# --- Resetting a lost authenticator (R7) --------------------------------------------------------------------


def test_resetting_a_staff_authenticator_stops_the_old_code_and_emails_a_link(app, admin, admin_client):
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    clerk_browser = signed_in_browser(app, clerk)
    password_hash = clerk.account.password_hash

    page = f"/admin/staff/{clerk.account.public_id}"
    unchecked = post_form(admin_client, f"{page}/reset-authenticator", {}, form_page=page)
    assert unchecked.status_code == 400
    assert "Confirm that you have checked who they are in person" in error_summary(unchecked)
    assert fresh(StaffUser, clerk.account.id).has_authenticator
    assert events("mfa_reset_by_staff") == []

    response = post_form(admin_client, f"{page}/reset-authenticator", {"identity-checked": "yes"}, form_page=page)
    assert response.status_code == 302
    assert the_event("mfa_reset_by_staff", actor=admin.account, subject=clerk.account) == {
        "sessions_ended": 1,
        "identity_checked": "in_person",
    }
    assert is_sent_to_sign_in(clerk_browser)

    refreshed = fresh(StaffUser, clerk.account.id)
    assert not refreshed.has_authenticator
    assert refreshed.password_hash == password_hash  # the admin never sets or sees a password
    [email] = [message for message in emails_to(clerk.account.email) if "authenticator" in message.subject]
    assert link_in(email).startswith("/admin/authenticator/set-up/")

    old_code = clerk.code()
    browser = new_browser(app)
    assert browser.get(link_in(email)).headers["Location"] == "/admin/sign-in"
    response = sign_in_password(browser, clerk)
    assert response.headers["Location"] == "/admin/authenticator/set-up"  # no code step with the old app
    response = post_form(browser, "/admin/sign-in/code", {"code": old_code}, form_page="/admin/authenticator/set-up")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/sign-in"
    response = post_form(browser, "/admin/authenticator/set-up", {"code": old_code})
    assert response.status_code == 400
    assert is_sent_to_sign_in(browser)


# --- D15 and E4: both factors, every time, and a short idle timeout ---------------------------------------


def test_staff_sign_in_needs_both_factors_with_no_way_round_the_code(app):
    """D15: the right password alone reaches nothing; a wrong or missing code is refused; only the code (or
    a recovery code) finishes signing in."""
    clerk = make_staff(role="admin")
    browser = new_browser(app)
    response = sign_in_password(browser, clerk)
    assert response.headers["Location"] == "/admin/sign-in/code"
    code_page = parse(browser.get("/admin/sign-in/code"))
    links = {anchor["href"] for anchor in code_page.select("main a[href]")}
    assert links <= {"/admin/sign-in/recovery-code"}, links  # the only alternative is a recovery code
    for attempt in ("", "000000", "not-a-code"):
        response = post_form(browser, "/admin/sign-in/code", {"code": attempt})
        assert response.status_code == 400
        assert is_sent_to_sign_in(browser, "/admin/staff")
    response = post_form(browser, "/admin/sign-in/recovery-code", {"recovery-code": "ABCD-EFGH-JKLM-NPQR"})
    assert response.status_code == 400
    assert is_sent_to_sign_in(browser, "/admin/staff")

    response = post_form(browser, "/admin/sign-in/code", {"code": clerk.code()})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert browser.get("/admin/staff").status_code == 200


def test_a_staff_member_cannot_remove_their_authenticator_without_setting_up_a_new_one(app):
    """D15: the replace-authenticator page keeps the old app until a new one is confirmed with a code."""
    clerk = make_staff(role="staff")
    browser = signed_in_browser(app, clerk)
    response = post_form(browser, "/admin/authenticator/set-up", {"code": ""})
    assert response.status_code == 400
    assert fresh(StaffUser, clerk.account.id).has_authenticator


def test_staff_are_signed_out_after_15_minutes_without_a_request(app):
    """E4: staff idle timeout is 15 minutes (patients have 30), enforced on the server."""
    clerk = make_staff(role="staff")
    patient = make_patient()
    with time_machine.travel(NOW, tick=False) as traveller:
        browser = signed_in_browser(app, clerk)
        patient_browser = new_browser(app)
        sign_in(patient_browser, patient)

        for _ in range(2):  # activity restarts the 15 minutes
            traveller.shift(timedelta(minutes=14, seconds=50))
            assert browser.get("/admin/").status_code == 200
            assert patient_browser.get("/account").status_code == 200

        traveller.shift(timedelta(minutes=15, seconds=10))
        response = browser.get("/admin/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/sign-in")
        page = parse(browser.get("/admin/sign-in"))
        assert "15 minutes" in page.get_text(" ", strip=True)
        assert patient_browser.get("/account").status_code == 200  # 15 minutes is the staff limit only


# --- E12: changing who can do what needs both factors within the last 15 minutes ---------------------------

STAFF_ACTIONS = {
    "role": {"role": "admin"},
    "deactivate": {},
    "reactivate": {},
    "reset-authenticator": {"identity-checked": "yes"},
    "end-sessions": {},
}
STAFF_ACTION_EVENTS = (
    "staff_invited",
    "staff_role_changed",
    "staff_deactivated",
    "staff_reactivated",
    "mfa_reset_by_staff",
    "sessions_ended",
)


def staff_state(account: StaffUser) -> tuple:
    """What the admin actions change: the role, active or not, the authenticator and the live sessions."""
    staff = fresh(StaffUser, account.id)
    sessions = db.session.execute(
        select(func.count())
        .select_from(WebSession)
        .where(WebSession.account_kind == "staff", WebSession.account_id == staff.id)
    ).scalar_one()
    state = (staff.role, staff.is_active, staff.totp_secret_encrypted, sessions, staff_count())
    db.session.rollback()
    return state


def signed_in_long_ago(app, test_account: SignInAccount, traveller) -> FlaskClient:
    """A browser whose both factors were proved 16 minutes ago, though it was used 6 minutes ago (so the
    staff idle timeout of 15 minutes has not signed it out)."""
    client = signed_in_browser(app, test_account)
    traveller.shift(timedelta(minutes=10))
    assert client.get("/admin/").status_code == 200
    traveller.shift(timedelta(minutes=6))
    return client


def sent_to_confirm_it_is_you(response, come_back_to: str) -> bool:
    location = urlsplit(response.headers.get("Location", ""))
    return response.status_code == 302 and (location.path, parse_qs(location.query)) == (
        "/admin/confirm-it-is-you",
        {"next": [come_back_to]},
    )


def no_staff_action_events() -> bool:
    return all(events(action) == [] for action in STAFF_ACTION_EVENTS)


@pytest.mark.parametrize("action", sorted(STAFF_ACTIONS))
def test_a_staff_admin_action_with_a_stale_second_factor_asks_to_confirm_it_is_you_e12(app, admin, action):
    """E12: with both factors proved more than 15 minutes ago, the form sends the admin to confirm it is them,
    to come back to the page the form was on (its Referer); nothing changes until the form is sent again."""
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    if action == "reactivate":
        clerk.account.is_active = False
        db.session.commit()
    with time_machine.travel(NOW, tick=False) as traveller:
        if action != "reactivate":
            signed_in_browser(app, clerk)
        admin_browser = signed_in_long_ago(app, admin, traveller)
        before = staff_state(clerk.account)
        page = f"/admin/staff/{clerk.account.public_id}"

        response = post_form(admin_browser, f"{page}/{action}", STAFF_ACTIONS[action], form_page=page)

    assert sent_to_confirm_it_is_you(response, page)
    assert staff_state(clerk.account) == before
    assert no_staff_action_events()
    assert emails_to(clerk.account.email) == []


def test_inviting_with_a_stale_second_factor_asks_to_confirm_it_is_you_first_e12(app, admin):
    """The invitation page itself asks (GET), and a form opened in time but sent too late invites nobody."""
    with time_machine.travel(NOW, tick=False) as traveller:
        admin_browser = signed_in_browser(app, admin)
        token = csrf_token(admin_browser, "/admin/staff/invite")  # the form, opened while the factor was fresh
        traveller.shift(timedelta(minutes=10))
        assert admin_browser.get("/admin/").status_code == 200
        traveller.shift(timedelta(minutes=6))

        opened = admin_browser.get("/admin/staff/invite")
        sent = admin_browser.post(
            "/admin/staff/invite",
            data={"name": "Nia New", "email": "nia.new@practice.example", "role": "admin", "csrf_token": token},
            headers={"Referer": "https://localhost/admin/staff/invite"},
        )

    assert sent_to_confirm_it_is_you(opened, "/admin/staff/invite")
    assert sent_to_confirm_it_is_you(sent, "/admin/staff/invite")
    assert staff_count() == 1
    assert emails_to("nia.new@practice.example") == []
    assert no_staff_action_events()


def test_after_confirming_it_is_them_the_admin_goes_back_to_the_page_and_the_action_works_e12(app, admin):
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    page = f"/admin/staff/{clerk.account.public_id}"
    with time_machine.travel(NOW, tick=False) as traveller:
        admin_browser = signed_in_long_ago(app, admin, traveller)
        asked = post_form(admin_browser, f"{page}/role", {"role": "admin"}, form_page=page)
        assert sent_to_confirm_it_is_you(asked, page)

        confirmed = post_form(
            admin_browser, asked.headers["Location"], {"password": admin.password, "code": admin.code(), "next": page}
        )
        assert confirmed.headers["Location"] == page
        done = post_form(admin_browser, f"{page}/role", {"role": "admin"}, form_page=page)
        assert admin_browser.get("/admin/staff/invite").status_code == 200

    assert (done.status_code, done.headers["Location"]) == (302, page)
    assert fresh(StaffUser, clerk.account.id).role == "admin"
    assert the_event("staff_role_changed", actor=admin.account, subject=clerk.account) == {
        "from": "staff",
        "to": "admin",
    }


# --- The last admin who can sign in ---------------------------------------------------------------------------


def admin_who_cannot_sign_in(admin_client: FlaskClient, how: str) -> StaffUser:
    """Another admin who does not count: invited and never signed in, or whose authenticator was reset."""
    if how == "invited":
        assert invite(admin_client, role="admin", email="invited.admin@practice.example").status_code == 302
        other = db.session.execute(
            select(StaffUser).where(StaffUser.email == "invited.admin@practice.example")
        ).scalar_one()
        assert other.password_hash is None and not other.has_authenticator
    else:
        other = make_staff(email="reset.admin@practice.example", name="Rae Reset", role="admin").account
        resetter = db.session.execute(select(StaffUser).where(StaffUser.id != other.id)).scalars().first()
        accounts.reset_authenticator(resetter, other, identity_check="in_person")
        other = fresh(StaffUser, other.id)
        assert other.password_hash is not None and not other.has_authenticator
    db.session.rollback()
    return other


@pytest.mark.parametrize("how", ["invited", "authenticator-reset"])
def test_an_admin_who_cannot_sign_in_does_not_count_as_the_remaining_admin(admin, admin_client, how):
    """The last-admin rule counts admins who can sign in (active, with a password and an authenticator): the
    only such admin may not step down, even with an invited admin who has never signed in on the list."""
    other = admin_who_cannot_sign_in(admin_client, how)
    page = f"/admin/staff/{admin.account.public_id}"

    response = post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page)

    assert response.status_code == 400
    assert "There must always be at least one active admin who can sign in" in error_summary(response)
    assert fresh(StaffUser, admin.account.id).role == "admin"
    assert fresh(StaffUser, other.id).role == "admin"
    assert events("staff_role_changed") == []
    assert admin_client.get("/admin/staff").status_code == 200


@pytest.mark.parametrize("how", ["invited", "authenticator-reset"])
def test_the_only_admin_who_can_sign_in_cannot_be_deactivated_whoever_else_is_an_admin(admin, admin_client, how):
    """The pages cannot ask for this (an admin may not deactivate themselves), so the service is asked, by the
    other admin, as a future page or command would."""
    other = admin_who_cannot_sign_in(admin_client, how)
    with pytest.raises(accounts.AccountError, match="at least one active admin who can sign in"):
        accounts.set_account_active(other, admin.account, False)
    db.session.rollback()
    assert fresh(StaffUser, admin.account.id).is_active
    assert events("staff_deactivated") == []


def test_an_admin_may_step_down_once_another_admin_can_sign_in(app, admin, admin_client):
    """The invited admin counts once they have a password and an authenticator."""
    invite(admin_client, role="admin")
    link = link_in(emails_to("nia.new@practice.example")[0])
    nia_browser = new_browser(app)
    follow_invitation(nia_browser, link)
    assert accept(nia_browser).headers["Location"] == "/admin/authenticator/set-up"
    page = f"/admin/staff/{admin.account.public_id}"
    assert post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page).status_code == 400

    key = setup_key(nia_browser)
    assert post_form(nia_browser, "/admin/authenticator/set-up", {"code": pyotp.TOTP(key).now()}).status_code == 200

    assert post_form(admin_client, f"{page}/role", {"role": "staff"}, form_page=page).status_code == 302
    assert fresh(StaffUser, admin.account.id).role == "staff"


def test_an_admin_cannot_reset_their_own_authenticator_from_the_staff_page(admin, admin_client):
    """Resetting your own would lock you out; a new phone is set up from your own account instead."""
    page = f"/admin/staff/{admin.account.public_id}"
    response = post_form(admin_client, f"{page}/reset-authenticator", {"identity-checked": "yes"}, form_page=page)
    assert response.status_code == 400
    assert "You cannot reset your own authenticator here" in error_summary(response)
    assert fresh(StaffUser, admin.account.id).has_authenticator
    assert events("mfa_reset_by_staff") == []
