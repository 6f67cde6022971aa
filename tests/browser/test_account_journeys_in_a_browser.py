"""Accounts in a real browser: a patient registers, confirms their email, sets up an authenticator, signs out
and back in; an admin invites a member of staff, who accepts the invitation and sets up an authenticator.

Every page each journey passes through is checked with axe-core (desktop width), must record no Content
Security Policy violation, and is saved as a screenshot under test-artifacts/screenshots/. No request may
leave the live server's origin: the QR code is drawn on our own page, not fetched from a QR service.
Fields are found by their labels, so the journeys also prove that every form field they use is labelled.

SECURITY.md rows proven end to end in a browser: A3 (the emailed link and the account's password confirm the
address, by a POST from the page the link leads to; a wrong password is refused there), H13 (an emailed
link's token moves into the session: the page the link leads to, that page's requests and their Referer hold
no token), D2 and D12 (the key read from the set-up page gives codes the server accepts; signing in needs a
code), D13 (the QR code is an inline SVG and the page loads nothing from another origin), R1 (ten recovery
codes are shown once), E3 in section F (after signing out, the account page asks for the password again) and
G9 (the role decides: a member of staff neither sees nor opens the admin-only Staff pages).
The axe results are written to test-artifacts/axe-results-account-journeys.json.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.extensions import db
from tests.accounts_support import make_patient, make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import (
    PASSWORD,
    code_for_next_step,
    fill_registration_form,
    open_emailed_link,
    path_of_link_in_latest_email,
    set_up_authenticator,
    sign_in_as,
)

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-account-journeys.json")


def test_a_patient_registers_confirms_their_email_sets_up_an_authenticator_and_signs_in_again(journeys):
    """SECURITY A3, D2, D12, D13, R1, E3: the whole patient journey in Chromium, axe-core on every page."""
    journey = journeys("patient")
    page = journey.page
    email = "ada.browser@example.org"

    journey.goto("/account/register")
    journey.check("register", "Create an account")
    fill_registration_form(page, email=email)
    page.get_by_role("button", name="Create account").click()

    # Said first, so a refused form fails with its own error messages rather than a wrong address.
    expect(page.locator(".nhsuk-error-summary")).to_have_count(0)
    expect(page).to_have_url(journey.url_pattern("/account/register/check-your-email"))
    journey.check("check your email", "Check your email")

    confirm_path = path_of_link_in_latest_email(email)
    assert confirm_path.startswith("/account/confirm-email/"), confirm_path
    open_emailed_link(journey, confirm_path, "/account/confirm-email")
    journey.check("confirm your email address", "Confirm your email address")
    # The link alone proves nothing: the password chosen when registering goes with it.
    page.get_by_label("Password", exact=True).fill("not the password I chose")
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text(
        "Enter the password you chose when you created your account"
    )
    journey.check("confirm your email address, wrong password", "Confirm your email address")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    requests_before = len(journey.requests)
    page.get_by_role("button", name="Confirm my email address").click()

    # Confirming starts signing in: straight on to setting up the authenticator, with no sign-in page between.
    expect(page).to_have_url(journey.url_pattern("/account/authenticator/set-up"))
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("Your email address is confirmed")
    secret = set_up_authenticator(journey, requests_before=requests_before)
    page.get_by_role("link", name="I have saved my recovery codes").click()

    expect(page).to_have_url(journey.url_pattern("/account"))
    journey.check("your account", "Your account")
    main = page.locator("main")
    expect(main).to_contain_text("Ada Lovelace")
    expect(main).to_contain_text("Waiting for the practice")

    page.locator("header").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(journey.url_pattern("/account/sign-out"))
    journey.check("signed out", "You have signed out")
    page.get_by_role("link", name="Sign in again").click()

    expect(page).to_have_url(journey.url_pattern("/account/sign-in"))
    journey.check("sign in", "Sign in")
    # Signed out means signed out: the account page now asks for the password again.
    journey.goto("/account")
    expect(page).to_have_url(journey.url_pattern("/account/sign-in"))
    journey.check("sign in, sent back from the account page", "Sign in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(journey.url_pattern("/account/sign-in/code"))
    journey.check("security code", "Enter the security code from your authenticator app")
    page.get_by_label("Security code").fill(code_for_next_step(secret))
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(journey.url_pattern("/account"))
    journey.check("your account, signed in again", "Your account")
    expect(page.locator("main")).to_contain_text("Ada Lovelace")

    assert journey.foreign_requests() == []
    assert journey.failed_requests == []
    assert len(journey.checked) == 12


def test_the_signed_out_page_no_longer_shows_the_account_in_the_header(journeys):
    """SECURITY E3 (section F): after signing out, nothing on screen says who was signed in (a shared computer)."""
    patient = make_patient(email="mary.browser@example.org", given_name="Mary", family_name="Seacole")
    db.session.rollback()  # let go of the database: the live server writes next

    journey = journeys("patient signing out")
    page = journey.page
    sign_in_as(journey, patient, area="/account")
    expect(page).to_have_url(journey.url_pattern("/account"))
    journey.check("your account", "Your account")
    header = page.locator("header")
    expect(header).to_contain_text("Mary Seacole")

    header.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(journey.url_pattern("/account/sign-out"))
    journey.check("signed out", "You have signed out")
    expect(header).not_to_contain_text("Mary Seacole")
    expect(header.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(header.get_by_role("link", name="Your account")).to_have_count(0)


def test_an_admin_invites_a_member_of_staff_who_sets_up_their_account(journeys):
    """SECURITY D2, D12, D13, R1, G9: invitation to first sign-in in Chromium, axe-core on every page both see."""
    admin = make_staff(role="admin", email="alex.admin@practice.example", name="Alex Admin")
    db.session.rollback()  # let go of the database: the live server writes next

    journey = journeys("admin")
    page = journey.page
    sign_in_as(journey, admin)

    expect(page).to_have_url(journey.url_pattern("/admin/"))
    journey.check("admin home", "Call recordings admin")
    page.locator("header").get_by_role("link", name="Staff", exact=True).click()

    expect(page).to_have_url(journey.url_pattern("/admin/staff"))
    journey.check("staff list", "Staff")
    page.get_by_role("link", name="Invite a member of staff").click()

    expect(page).to_have_url(journey.url_pattern("/admin/staff/invite"))
    journey.check("invite a member of staff", "Invite a member of staff")
    invitee_email = "jo.bloggs@practice.example"
    page.get_by_label("Full name").fill("Jo Bloggs")
    page.get_by_label("Work email address").fill(invitee_email)
    page.get_by_role("group", name="Role").get_by_label("Staff", exact=True).check()
    page.get_by_role("button", name="Send invitation").click()

    expect(page).to_have_url(journey.url_pattern("/admin/staff/[A-Za-z0-9_-]+"))
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text(f"Invitation sent to {invitee_email}")
    journey.check("staff member, invitation sent banner", "Jo Bloggs")

    invitee = journeys("invited staff")
    invitation_path = path_of_link_in_latest_email(invitee_email)
    assert invitation_path.startswith("/admin/invitation/"), invitation_path
    open_emailed_link(invitee, invitation_path, "/admin/invitation")
    invitee.check("set up your staff account", "Set up your staff account")
    invitee_page = invitee.page
    invitee_page.get_by_label("Create a password", exact=True).fill(PASSWORD)
    invitee_page.get_by_label("Confirm your password", exact=True).fill(PASSWORD)
    requests_before = len(invitee.requests)
    invitee_page.get_by_role("button", name="Continue").click()

    expect(invitee_page).to_have_url(invitee.url_pattern("/admin/authenticator/set-up"))
    set_up_authenticator(invitee, requests_before=requests_before)
    invitee_page.get_by_role("link", name="I have saved my recovery codes").click()

    expect(invitee_page).to_have_url(invitee.url_pattern("/admin/"))
    invitee.check("admin home", "Call recordings admin")
    expect(invitee_page.locator("main")).to_contain_text("Signed in as Jo Bloggs (staff)")
    header = invitee_page.locator("header")
    expect(header).to_contain_text("Jo Bloggs")
    expect(header.get_by_role("link", name="Find a patient")).to_have_count(1)
    expect(header.get_by_role("link", name="Staff", exact=True)).to_have_count(0)
    # The admin, in their own browser, still sees it: the difference is the role, not a broken header.
    expect(page.locator("header").get_by_role("link", name="Staff", exact=True)).to_have_count(1)
    # Hiding the link is not the protection: the page itself refuses a member of staff.
    invitee.goto("/admin/staff", status=403)
    invitee.check("staff list refused", "You cannot see this page")

    for person in (journey, invitee):
        assert person.foreign_requests() == []
        assert person.failed_requests == []
    assert len(journey.checked) == 6
    assert len(invitee.checked) == 5
