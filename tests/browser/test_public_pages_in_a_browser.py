"""Every public page, opened in Chromium: no axe-core violation, no blocked or foreign request, scripts run.

Each page is checked at a desktop width and at a phone width (many patients use a phone), and a full-page
screenshot of each is saved under test-artifacts/screenshots/. The axe results are written to
test-artifacts/axe-results.json.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.conftest import CSP_LISTENER, axe_summary_writer

pytestmark = pytest.mark.browser

PAGES = [
    ("home", "/", 200),
    ("call-recording-notice", "/call-recording-notice", 200),
    ("how-to-request", "/how-to-request", 200),
    ("accessibility-statement", "/accessibility-statement", 200),
    ("staff-sign-in", "/admin/sign-in", 200),
    ("page-not-found", "/no-such-page", 404),
]
CACHED_PAGES = ("/call-recording-notice", "/how-to-request", "/accessibility-statement")
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 375, "height": 740}}

axe_summary = axe_summary_writer("axe-results.json")


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize(("name", "path", "status"), PAGES)
def test_public_page_passes_axe_and_loads_only_from_our_origin(
    browser, live_server_url, screenshots_dir, axe_summary, name, path, status, viewport
):
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    foreign_requests: list[str] = []
    failed_requests: list[str] = []
    console_errors: list[str] = []
    origin = urlsplit(live_server_url).netloc
    page.on("request", lambda r: urlsplit(r.url).netloc not in ("", origin) and foreign_requests.append(r.url))
    page.on("requestfailed", lambda r: failed_requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    try:
        response = page.goto(live_server_url + path, wait_until="networkidle")
        assert response.status == status
        page.screenshot(path=str(screenshots_dir / f"{name}-{viewport}.png"), full_page=True)

        results = Axe().run(page)
        violations = results.response["violations"]
        axe_summary[f"{name} ({viewport})"] = {
            "path": path,
            "violations": [v["id"] for v in violations],
            "passes": len(results.response["passes"]),
            "incomplete": [v["id"] for v in results.response["incomplete"]],
        }
        assert results.violations_count == 0, results.generate_report()

        if path in CACHED_PAGES:
            # Cached whole and the same for every visitor: no nonce, the inline script allowed by its hash.
            assert "nonce" not in response.headers["content-security-policy"]
            assert "nonce" not in page.content()
        body_classes = page.evaluate("document.body.className")
        assert "js-enabled" in body_classes, "the page's inline script did not run"
        assert page.evaluate("window.__cspViolations") == []
        assert foreign_requests == []
        assert failed_requests == []
        if status == 200:
            assert console_errors == []
        assert page.locator("h1").count() == 1
    finally:
        context.close()


def test_the_skip_link_works_with_a_keyboard_on_a_phone(browser, live_server_url):
    context = browser.new_context(viewport=VIEWPORTS["phone"])
    page = context.new_page()
    try:
        page.goto(live_server_url + "/")
        page.keyboard.press("Tab")
        skip = page.locator(".nhsuk-skip-link")
        assert skip.evaluate("element => element === document.activeElement")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "maincontent"
    finally:
        context.close()


def test_the_server_sends_no_version_banner(live_server_url):
    with urllib.request.urlopen(live_server_url + "/healthz", timeout=10) as response:  # noqa: S310 (loopback)
        assert response.headers.get("Server") is None
        body = json.loads(response.read())
        assert body["status"] == "ok" and body["database"] == "ok"
