"""The practice settings page in Chromium (issue 5, "Practice settings"): axe-core finds no violation on the
form, on its error state and after a save (with the four-eyes warning shown), and the saved practice name is
in the header of the very next page.

The axe results are written to test-artifacts/axe-results-settings.json; the screenshots to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.extensions import db
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import sign_in_as

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-settings.json")
HEADING = "Practice settings"


def test_the_settings_page_its_errors_and_a_save_pass_axe(journeys):
    admin = make_staff(email="admin@practice.example", name="Ann Admin", role="admin")
    db.session.rollback()  # let go of the database: the live server reads next

    journey = journeys("settings admin")
    page = journey.page
    sign_in_as(journey, admin)
    expect(page).to_have_url(journey.url_pattern("/admin/"))
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page).to_have_url(journey.url_pattern("/admin/settings"))
    journey.check("practice settings", HEADING)
    expect(page.get_by_label("Practice name")).to_have_value("Thamesmead Medical Associates")

    # Three mistakes at once: an empty name, a lifetime in words, four eyes off without confirming.
    page.get_by_label("Practice name").fill("")
    page.get_by_label("How many days a download link works").fill("a week")
    page.get_by_role("group", name="Must a second admin approve each release?").get_by_label("No").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page).to_have_title("Error: Practice settings - Call recordings - Thamesmead Medical Associates")
    summary = page.locator(".nhsuk-error-summary")
    expect(summary.locator("li")).to_have_count(3)
    expect(summary).to_be_focused()  # the design system moves focus to the summary
    journey.check("practice settings with errors", HEADING)
    summary.get_by_role("link", name="Enter the practice's name").click()
    expect(page.get_by_label("Practice name")).to_be_focused()

    page.get_by_label("Practice name").fill("Riverside Surgery")
    page.get_by_label("How many days a download link works").fill("14")
    page.get_by_label("I understand that one admin will be able to prepare and approve a release alone").check()
    page.get_by_role("button", name="Save settings").click()

    expect(page).to_have_url(journey.url_pattern("/admin/settings"))
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("The practice settings have been saved")
    expect(page.locator(".nhsuk-header")).to_contain_text("Riverside Surgery")
    expect(page.locator(".nhsuk-card--warning")).to_contain_text("Four-eyes release is off")
    expect(page.get_by_label("How many days a download link works")).to_have_value("14")
    journey.check("practice settings saved", HEADING)
    assert journey.foreign_requests() == []
