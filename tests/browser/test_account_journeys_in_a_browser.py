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

import re
import time
from urllib.parse import urlsplit

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from core.extensions import db
from tests.accounts_support import emails_to, link_in, make_patient, make_staff
from tests.browser.conftest import CSP_LISTENER, axe_summary_writer

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "lantern pebble orchid quiver"
TIMEOUT_MS = 15_000

axe_summary = axe_summary_writer("axe-results-account-journeys.json")


class Journey:
    """One person's browser tab: checks each page it reaches and records every request the page makes."""

    def __init__(self, browser, base_url: str, screenshots_dir, name: str, axe_summary: dict) -> None:
        self.axe_summary = axe_summary
        self.base_url = base_url
        self.origin = urlsplit(base_url).netloc
        self.screenshots_dir = screenshots_dir
        self.name = name
        self.context = browser.new_context(viewport=DESKTOP)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_init_script(CSP_LISTENER)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.referers: list[str] = []  # the Referer each request in `requests` carried ("" for none)
        self.failed_requests: list[str] = []
        self.checked: list[str] = []
        self.page.on("request", self._record)
        self.page.on("requestfailed", lambda request: self.failed_requests.append(request.url))

    def _record(self, request) -> None:
        self.requests.append(request.url)
        self.referers.append(request.headers.get("referer", ""))

    def url(self, path: str) -> str:
        return self.base_url + path

    def url_pattern(self, path_regex: str) -> re.Pattern:
        return re.compile(re.escape(self.base_url) + path_regex + r"(\?.*)?$")

    def goto(self, path: str, *, status: int = 200) -> None:
        response = self.page.goto(self.url(path), wait_until="load")
        assert response is not None and response.status == status, (path, response and response.status)

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if urlsplit(url).netloc not in ("", self.origin)]

    def check(self, label: str, heading: str) -> None:
        """The page has the expected <h1>, passes axe-core, broke no CSP rule; a screenshot is kept."""
        page = self.page
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator("h1")).to_have_count(1)
        page.wait_for_load_state("networkidle")
        key = f"{self.name} {len(self.checked) + 1:02d}: {label}"
        path = urlsplit(page.url).path
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.name}-{len(self.checked) + 1:02d}-{label}".lower()).strip("-")
        page.screenshot(path=str(self.screenshots_dir / f"{slug}.png"), full_page=True)
        csp_violations = page.evaluate("window.__cspViolations")
        results = Axe().run(page)
        violations = results.response["violations"]
        self.axe_summary[key] = {
            "path": path,
            "violations": [violation["id"] for violation in violations],
            "passes": len(results.response["passes"]),
            "incomplete": [item["id"] for item in results.response["incomplete"]],
        }
        self.checked.append(f"{key} ({path}): {results.violations_count} violations")
        assert results.violations_count == 0, f"{key}\n{results.generate_report()}"
        assert csp_violations == [], f"{key}: {csp_violations}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def journeys(browser, live_server_url, screenshots_dir, axe_summary):
    opened: list[Journey] = []

    def open_journey(name: str) -> Journey:
        journey = Journey(browser, live_server_url, screenshots_dir, name, axe_summary)
        opened.append(journey)
        return journey

    yield open_journey
    for journey in opened:
        print(f"\nPages axe-core checked for {journey.name}:")
        for line in journey.checked:
            print(f"  {line}")
        journey.close()


def path_of_link_in_latest_email(address: str) -> str:
    """The live server wrote the email in its own transaction; read it in a fresh one, then let go of the
    database again (an open read on SQLite would block the server's next write)."""
    db.session.rollback()
    try:
        messages = emails_to(address)
        assert messages, f"no email to {address}"
        return link_in(messages[-1])
    finally:
        db.session.rollback()


def open_emailed_link(journey: Journey, link_path: str, form_path: str) -> None:
    """Open a link from an email (SECURITY H13): the browser ends on the token-less form page, and the token is
    in no request but the link's own, in no Referer (the form page's styles and scripts do send one) and
    nowhere on the page."""
    token = link_path.rsplit("/", 1)[1]
    requests_before = len(journey.requests)
    journey.goto(link_path)
    expect(journey.page).to_have_url(journey.url_pattern(form_path))
    journey.page.wait_for_load_state("networkidle")
    requests = journey.requests[requests_before:]
    referers = journey.referers[requests_before:]
    assert [url for url in requests if token in url] == [journey.url(link_path)]
    assert [referer for referer in referers if token in referer] == []
    assert journey.url(form_path) in referers, "the form page's own requests carried no Referer to check"
    assert token not in journey.page.content()


def setup_key_on(page: Page) -> str:
    key = page.locator("#setup-key").inner_text()
    return re.sub(r"\s+", "", key)


def code_for_next_step(secret: str) -> str:
    """The code for the next 30-second step: the server allows one step of drift, and it is always newer than
    a code already used, so a second sign-in within the same step is not refused as a replay."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def set_up_authenticator(journey: Journey, *, requests_before: int) -> str:
    """Read the key as a person would type it into an app, enter the app's code. Returns the key.

    `requests_before` counts the requests made before the step that led here, so the set-up page's own
    requests (the page, its styles and scripts) can be told apart."""
    page = journey.page
    journey.check("set up an authenticator app", "Set up an authenticator app")
    qr_code = page.locator(".app-qr-code svg")
    expect(qr_code).to_have_count(1)
    expect(qr_code).to_be_visible()
    set_up_page_requests = journey.requests[requests_before:]
    assert any(urlsplit(url).path.endswith("/authenticator/set-up") for url in set_up_page_requests)
    assert [url for url in set_up_page_requests if urlsplit(url).netloc != journey.origin] == []
    secret = setup_key_on(page)
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    page.get_by_label("Security code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Save your recovery codes")
    journey.check("recovery codes", "Save your recovery codes")
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    for index in range(10):
        expect(codes.nth(index)).to_be_visible()
    return secret


def test_a_patient_registers_confirms_their_email_sets_up_an_authenticator_and_signs_in_again(journeys):
    """SECURITY A3, D2, D12, D13, R1, E3: the whole patient journey in Chromium, axe-core on every page."""
    journey = journeys("patient")
    page = journey.page
    email = "ada.browser@example.org"

    journey.goto("/account/register")
    journey.check("register", "Create an account")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    date_of_birth = page.get_by_role("group", name="Date of birth")
    date_of_birth.get_by_label("Day").fill("10")
    date_of_birth.get_by_label("Month").fill("12")
    date_of_birth.get_by_label("Year").fill("1955")
    page.get_by_label("NHS number").fill("943 476 5919")
    page.get_by_label("Postcode").fill("SE28 8BE")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Create a password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm your password", exact=True).fill(PASSWORD)
    page.get_by_label("I confirm the details are mine").check()
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
    journey.goto("/account/sign-in")
    journey.check("sign in", "Sign in")
    page.get_by_label("Email address").fill(patient.account.email)
    page.get_by_label("Password", exact=True).fill(patient.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(journey.url_pattern("/account/sign-in/code"))
    journey.check("security code", "Enter the security code from your authenticator app")
    page.get_by_label("Security code").fill(patient.code())
    page.get_by_role("button", name="Continue").click()
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
    journey.goto("/admin/sign-in")
    journey.check("staff sign in", "Staff sign in")
    page.get_by_label("Email address").fill(admin.account.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(journey.url_pattern("/admin/sign-in/code"))
    journey.check("security code", "Enter the security code from your authenticator app")
    page.get_by_label("Security code").fill(admin.code())
    page.get_by_role("button", name="Continue").click()

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
