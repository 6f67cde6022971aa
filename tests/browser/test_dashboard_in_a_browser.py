"""The compliance dashboard in Chromium (issue 5, "Dashboard"): axe-core finds no violation on the staff home
page with a year of requests and with none, on a desktop and at a phone's width (390 x 844), and the chart
is drawn in the page (no script, nothing from another origin) at a size that can be read on a phone.

The axe results are written to test-artifacts/axe-results-dashboard.json; the screenshots to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from core.extensions import db
from core.legal_clock import add_months
from core.models.requests import CLOSED_STATUSES, RecordingRequest
from core.services.requests import practice_today
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import DESKTOP, sign_in_as

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-dashboard.json")
PHONE = {"width": 390, "height": 844}
NARROWEST = {"width": 320, "height": 640}
MOST_HEIGHT_AT_320 = 4_500  # px; 8,300 before issue 12
STATUSES = ("completed", "completed", "refused", "in_progress", "no_recordings_found", "withdrawn", "submitted")


def add_a_year_of_requests() -> None:
    """A few requests received each month of the last year, most of them answered a few weeks later."""
    today = practice_today()
    number = 0
    for months_ago in range(11, -1, -1):
        received = add_months(today.replace(day=1), -months_ago)
        for index in range(months_ago % 4 + 1):
            number += 1
            status = STATUSES[(number + index) % len(STATUSES)]
            took = 20 + (number * 7) % 20
            closed = datetime(received.year, received.month, received.day, 11, tzinfo=UTC) + timedelta(days=took)
            if status in CLOSED_STATUSES and closed.date() >= today:
                status = "in_progress"  # not answered yet
            db.session.add(
                RecordingRequest(
                    reference=f"CR-2026-{number:05d}",
                    status=status,
                    received_on=received,
                    received_via="letter",
                    relevant_day=received,
                    due_on=add_months(received, 1),
                    closed_at=closed if status in CLOSED_STATUSES else None,
                    extended_at=closed - timedelta(days=10) if number % 5 == 0 else None,
                    calls_from=received - timedelta(days=2),
                    calls_to=received - timedelta(days=2),
                    requester_name="Rita Requester",
                    description="What the calls were about",
                )
            )
    db.session.commit()


def check_at_both_sizes(journey, label: str) -> None:
    page = journey.page
    journey.check(f"{label} (desktop)", "Call recordings admin")
    page.get_by_text("How these are counted").click()  # the details open, and are checked open
    journey.check(f"{label}, how these are counted (desktop)", "Call recordings admin")
    page.set_viewport_size(PHONE)
    journey.check(f"{label} (phone)", "Call recordings admin")
    chart = page.locator("#monthly-chart svg")
    expect(chart).to_be_visible()
    chart.screenshot(path=str(journey.screenshots_dir / f"{journey.name}-chart-{label.replace(' ', '-')}-phone.png"))
    box = chart.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"], box  # no sideways scrolling for the chart
    month_label = page.locator("#monthly-chart text.chart-month").first.bounding_box()
    assert month_label is not None and month_label["height"] >= 8, month_label  # still legible, not shrunk away
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # The narrowest phone (WCAG 1.4.10 reflow, issue 12): no sideways scrolling, chart text still legible, and
    # the months stay a table (stacked, they made the page 6,700 px tall or more).
    page.get_by_text("How these are counted").click()  # closed again, as the page first shows it
    expect(page.locator("#how-counted")).not_to_have_attribute("open", "")
    print(f"{label}: {page.evaluate('document.documentElement.scrollHeight')} px tall at 390 px wide")
    page.set_viewport_size(NARROWEST)
    journey.check(f"{label} (320 px)", "Call recordings admin")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROWEST["width"]
    chart.screenshot(path=str(journey.screenshots_dir / f"{journey.name}-chart-{label.replace(' ', '-')}-320.png"))
    month_label = page.locator("#monthly-chart text.chart-month").first.bounding_box()
    assert month_label is not None and month_label["height"] >= 10, month_label
    table = page.locator("#monthly-figures")
    assert table.evaluate("(table) => getComputedStyle(table.querySelector('tbody tr')).display") == "table-row"
    region = page.get_by_role("region", name=re.compile("^Requests each month"))
    expect(region).to_have_attribute("tabindex", "0")
    height = page.evaluate("document.documentElement.scrollHeight")
    print(f"{label}: {height} px tall at 320 px wide")
    assert height <= MOST_HEIGHT_AT_320, height
    page.set_viewport_size(DESKTOP)
    assert journey.foreign_requests() == []


def test_the_dashboard_with_a_year_of_requests_passes_axe_on_a_desktop_and_a_phone(journeys):
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk")
    add_a_year_of_requests()
    db.session.rollback()  # let go of the database: the live server reads next

    journey = journeys("clerk")
    sign_in_as(journey, clerk)
    expect(journey.page).to_have_url(journey.url_pattern("/admin/"))
    expect(journey.page.locator("#monthly-chart rect.chart-bar")).to_have_count(12)
    expect(journey.page.locator("#monthly-chart circle.chart-point").first).to_be_visible()
    check_at_both_sizes(journey, "dashboard with a year of requests")


def test_the_dashboard_with_no_requests_passes_axe_on_a_desktop_and_a_phone(journeys):
    admin = make_staff(email="admin@practice.example", name="Ann Admin", role="admin")
    db.session.rollback()

    journey = journeys("admin")
    sign_in_as(journey, admin)
    expect(journey.page).to_have_url(journey.url_pattern("/admin/"))
    expect(journey.page.locator("#monthly-figures tbody tr")).to_have_count(12)
    expect(journey.page.locator("#monthly-chart circle.chart-point")).to_have_count(0)
    check_at_both_sizes(journey, "dashboard with no requests")
