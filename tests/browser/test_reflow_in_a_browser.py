"""Reflow (WCAG 1.4.10): no page scrolls sideways at 320 CSS pixels wide, checked in Chromium on every page a
signed-out visitor, a signed-in patient and a signed-in admin can reach (issue 12, "Phones").

Each page is opened at 320 x 640, a full-page screenshot is saved as test-artifacts/screenshots/reflow-320-*.png,
axe-core is run on it at that width, and its width and height are written to test-artifacts/reflow-320.json.
Every page is measured before any assertion, so a failure lists every page that overflows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect
from sqlalchemy import select

from core.extensions import db
from core.models.accounts import StaffUser
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.release_support import released_request

pytestmark = pytest.mark.browser

NARROWEST = {"width": 320, "height": 640}
axe_summary = axe_summary_writer("axe-results-reflow-320.json")

ACTION_PAGES = ("assign", "notes", "release/revoke", "close", "extend", "refuse", "clarify", "no-recordings")
SIGNED_OUT_PAGES = [
    "/",
    "/call-recording-notice",
    "/how-to-request",
    "/accessibility-statement",
    "/account/sign-in",
    "/account/register",
    "/account/register/check-your-email",
    "/account/forgot-password",
    "/account/forgot-password/check-your-email",
    "/account/reset-password/not-a-real-link",
    "/admin/sign-in",
    "/admin/forgot-password",
    "/no-such-page",
]


@pytest.fixture(scope="module")
def measurements(artifacts_dir: Path) -> Iterator[dict]:
    """Width and height of every page measured in this module, written out at the end (afresh each run)."""
    found: dict[str, dict] = {}
    yield found
    (artifacts_dir / "reflow-320.json").write_text(json.dumps(found, indent=2, sort_keys=True))


# The innermost elements that reach past the right edge: what to fix when a page overflows.
OVERFLOWING = """
() => {
  const edge = document.documentElement.clientWidth + 0.5;
  const past = (el) => el.getBoundingClientRect().right > edge;
  return Array.from(document.querySelectorAll("body *"))
    .filter((el) => past(el) && !Array.from(el.children).some(past))
    .slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}: ${el.textContent.trim().slice(0, 40)}`);
}
"""


def measure(journey, path: str, measurements: dict, axe_summary: dict, *, state: str = "") -> dict:
    """Open `path` at 320 px (or, given a `state`, measure the page already open, as `path` in that state),
    keep a screenshot, run axe-core, and note the page's scroll width and height."""
    page = journey.page
    page.set_viewport_size(NARROWEST)
    if state:
        page.wait_for_load_state("networkidle")
        response, path = None, f"{path} ({state})"
    else:
        response = page.goto(journey.url(path), wait_until="networkidle")
    landed = urlsplit(page.url).path
    key = f"{journey.name} {path}" + (f" -> {landed}" if landed != urlsplit(journey.url(path)).path else "")
    slug = re.sub(r"[^a-z0-9]+", "-", f"reflow-320-{journey.name}-{path}".lower()).strip("-")
    page.screenshot(path=str(journey.screenshots_dir / f"{slug}.png"), full_page=True)
    violations = Axe().run(page).response["violations"]
    axe_summary[key] = {"path": landed, "violations": [violation["id"] for violation in violations]}
    result = {
        "status": response.status if response else 200,
        "landed_on": landed,
        "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
        "scroll_height": page.evaluate("document.documentElement.scrollHeight"),
        "axe_violations": [violation["id"] for violation in violations],
        "csp_violations": page.evaluate("window.__cspViolations"),
        "screenshot": f"screenshots/{slug}.png",
    }
    if result["scroll_width"] > NARROWEST["width"]:
        result["overflowing"] = page.evaluate(OVERFLOWING)
    measurements[key] = result
    return result


def assert_every_page_reflows(results: dict[str, dict]) -> None:
    too_wide = {
        key: (result["scroll_width"], result["overflowing"])
        for key, result in results.items()
        if result["scroll_width"] > NARROWEST["width"]
    }
    assert too_wide == {}, f"pages that scroll sideways at 320 px: {too_wide}"
    with_axe = {key: result["axe_violations"] for key, result in results.items() if result["axe_violations"]}
    assert with_axe == {}, f"axe-core violations at 320 px: {with_axe}"
    with_csp = {key: result["csp_violations"] for key, result in results.items() if result["csp_violations"]}
    assert with_csp == {}, with_csp
    failed = {key: result["status"] for key, result in results.items() if result["status"] not in (200, 404)}
    assert failed == {}, failed


def sign_in_measuring(journey, account, area: str, measurements: dict, axe_summary: dict) -> dict[str, dict]:
    """Sign in through the real pages at 320 px, measuring each step (and an error) on the way."""
    page = journey.page
    results = {f"{area}/sign-in": measure(journey, f"{area}/sign-in", measurements, axe_summary)}
    page.get_by_label("Email address").fill(account.account.email)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(journey.url_pattern(f"{area}/sign-in/code"))
    for path in (f"{area}/sign-in/code", f"{area}/sign-in/recovery-code"):
        results[path] = measure(journey, path, measurements, axe_summary)
    journey.goto(f"{area}/sign-in/code")
    page.get_by_role("button", name="Continue").click()  # nothing typed: the error summary and message
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()
    results["code error"] = measure(journey, f"{area}/sign-in/code", measurements, axe_summary, state="error")
    page.get_by_label("Security code").fill(account.code())
    page.get_by_role("button", name="Continue").click()
    expect(page).not_to_have_url(journey.url_pattern(f"{area}/sign-in/code"))
    return results


def test_no_public_page_scrolls_sideways_at_320_px(journeys, measurements, axe_summary):
    journey = journeys("visitor")
    results = {path: measure(journey, path, measurements, axe_summary) for path in SIGNED_OUT_PAGES}
    assert results["/no-such-page"]["status"] == 404
    assert_every_page_reflows(results)


def test_no_page_a_patient_reaches_scrolls_sideways_at_320_px(app, journeys, measurements, axe_summary, tmp_path):
    patient, req, _release, _token = released_request(app, tmp_path)
    reference = req.reference
    db.session.rollback()  # let go of the database: the live server reads and writes next

    journey = journeys("patient")
    signing_in = sign_in_measuring(journey, patient, "/account", measurements, axe_summary)
    paths = [
        "/account",
        "/requests",
        f"/requests/{reference}",
        f"/requests/{reference}/complaint",
        "/requests/new",
        "/downloads/",
        "/account/change-password",
        "/account/sign-out-other-devices",
        "/account/registration-key",
        "/account/confirm-it-is-you",
        "/account/recovery-codes/new",
    ]
    results = {path: measure(journey, path, measurements, axe_summary) for path in paths}
    assert results[f"/requests/{reference}"]["landed_on"] == f"/requests/{reference}"
    assert_every_page_reflows(signing_in | results)


def test_no_page_an_admin_reaches_scrolls_sideways_at_320_px(app, journeys, measurements, axe_summary, tmp_path):
    patient, req, _release, _token = released_request(app, tmp_path)
    admin = make_staff(email="ann.admin@practice.example", name="Ann Admin", role="admin")
    reference, patient_id = req.reference, patient.account.public_id
    staff_id = db.session.execute(select(StaffUser.public_id).where(StaffUser.role == "staff")).scalars().first()
    slug = "call-recording-notice"
    db.session.rollback()

    journey = journeys("admin")
    signing_in = sign_in_measuring(journey, admin, "/admin", measurements, axe_summary)
    paths = [
        "/admin/",
        "/admin/requests",
        f"/admin/requests/{reference}",
        # The request's action pages (one form each); one the state does not offer leads back to the request.
        *(f"/admin/requests/{reference}/{action}" for action in ACTION_PAGES),
        "/admin/requests/new",
        "/admin/complaints",
        "/admin/patients",
        f"/admin/patients?q={patient.account.family_name}",
        "/admin/patients/awaiting-verification",
        f"/admin/patients/{patient_id}",
        "/admin/staff",
        "/admin/staff/invite",
        f"/admin/staff/{staff_id}",
        "/admin/content",
        f"/admin/content/{slug}",
        f"/admin/content/{slug}/versions",
        f"/admin/content/{slug}/versions/1",
        "/admin/settings",
        "/admin/audit",
        "/admin/audit/access-report",
        "/admin/change-password",
        "/admin/sign-out-other-devices",
        "/admin/confirm-it-is-you",
    ]
    results = {path: measure(journey, path, measurements, axe_summary) for path in paths}
    assert results[f"/admin/requests/{reference}"]["landed_on"] == f"/admin/requests/{reference}"
    assert_every_page_reflows(signing_in | results)
