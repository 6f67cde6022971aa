"""What every real-browser journey shares: a `Journey` (one person's browser context that checks each page
with axe-core, records every request and refuses CSP violations), the `journeys` fixture that opens them, and
the steps several journeys take (opening an emailed link, setting up an authenticator)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pyotp
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from core.extensions import db
from tests.accounts_support import emails_to, link_in
from tests.browser.conftest import CSP_LISTENER

DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "lantern pebble orchid quiver"
TIMEOUT_MS = 15_000


class Journey:
    """One person's browser tab: checks each page it reaches and records every request the page makes."""

    def __init__(
        self, browser, base_url: str, screenshots_dir, name: str, axe_summary: dict, **context_options
    ) -> None:
        self.axe_summary = axe_summary
        self.base_url = base_url
        self.origin = urlsplit(base_url).netloc
        self.screenshots_dir = screenshots_dir
        self.name = name
        self.context = browser.new_context(viewport=DESKTOP, **context_options)
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


def fill_registration_form(page: Page, *, email: str, password: str = PASSWORD) -> None:
    """Fill in "Create an account" as Ada Lovelace (NHS number 943 476 5919, born 10 December 1955)."""
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    date_of_birth = page.get_by_role("group", name="Date of birth")
    date_of_birth.get_by_label("Day").fill("10")
    date_of_birth.get_by_label("Month").fill("12")
    date_of_birth.get_by_label("Year").fill("1955")
    page.get_by_label("NHS number").fill("943 476 5919")
    page.get_by_label("Postcode").fill("SE28 8BE")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Create a password", exact=True).fill(password)
    page.get_by_label("Confirm your password", exact=True).fill(password)
    page.get_by_label("I confirm the details are mine").check()


def sign_in_as(journey: Journey, test_account, *, area: str = "/admin") -> None:
    """Sign in through the real pages (password, then the authenticator's code), checking each page."""
    page = journey.page
    journey.goto(f"{area}/sign-in")
    journey.check("sign in", "Staff sign in" if area == "/admin" else "Sign in")
    page.get_by_label("Email address").fill(test_account.account.email)
    page.get_by_label("Password", exact=True).fill(test_account.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(journey.url_pattern(f"{area}/sign-in/code"))
    journey.check("security code", "Enter the security code from your authenticator app")
    page.get_by_label("Security code").fill(test_account.code())
    page.get_by_role("button", name="Continue").click()
