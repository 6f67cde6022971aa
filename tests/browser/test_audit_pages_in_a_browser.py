"""The audit log viewer and the access report in Chromium: an admin filters the trail, pages it, checks the chain
(intact, then broken after a deliberate tamper), and reads the access report. axe-core checks every page state
(filtered, with an error, the chain's status both ways, the report), and no page breaks the Content Security
Policy. A `<script>` in an event's details is shown as text and never runs (SECURITY X7, L5).

The axe results are written to test-artifacts/axe-results-audit.json.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import text, update

from core.extensions import db
from core.models.audit import AuditEvent
from core.services.audit import record_event
from core.services.db import transactional
from core.services.requests import practice_today
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import sign_in_as
from tests.release_support import released_request

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-audit.json")
HOSTILE = "<script>window.__ran = true</script>"


@transactional
def append(**kwargs) -> AuditEvent:
    return record_event(**kwargs)


def tamper_with(seq: int) -> None:
    """Change one event behind the portal's back (PostgreSQL's append-only trigger is switched off for it, as only
    the table's owner could), then let go of the database for the live server."""
    db.session.rollback()
    statement = update(AuditEvent).where(AuditEvent.seq == seq).values(details='{"changed":true}')
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
        db.session.execute(statement)
        db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    else:
        db.session.execute(statement)
    db.session.commit()
    db.session.rollback()


def fill_date(page, legend: str, day) -> None:
    group = page.get_by_role("group", name=legend)
    group.get_by_label("Day").fill(str(day.day))
    group.get_by_label("Month").fill(str(day.month))
    group.get_by_label("Year").fill(str(day.year))


def test_an_admin_filters_the_trail_checks_the_chain_and_reads_the_access_report(app, journeys, tmp_path, monkeypatch):
    _patient, req, _release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    hostile = append(action="test_hostile_details", object_id="CR-2026-99999", details={"note": HOSTILE})
    for number in range(60):
        append(action="test_filler", details={"n": number})
    admin = make_staff(email="ava.auditor@practice.example", name="Ava Auditor", role="admin")
    hostile_seq = hostile.seq
    db.session.rollback()  # let go of the database: the live server reads and writes next
    today = practice_today()

    journey = journeys("admin")
    page = journey.page
    sign_in_as(journey, admin)
    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(journey.url_pattern("/admin/audit"))
    expect(page.locator("#chain-status + *")).to_contain_text("has not been checked yet")
    journey.check("audit log", "Audit log")
    expect(page.locator("#audit-events tbody tr")).to_have_count(50)

    # Older events, then back to the newer ones.
    page.get_by_role("link", name="Older events").click()
    expect(page).to_have_url(journey.url_pattern("/admin/audit"))
    assert "before=" in page.url
    journey.check("audit log, older events", "Audit log")
    page.get_by_role("link", name="Newer events").click()
    assert "after=" in page.url

    # Filters: an action and today's date; the script in the details is text and does not run.
    page.get_by_label("Action").select_option("test_hostile_details")
    fill_date(page, "From", today)
    fill_date(page, "To (included)", today)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#audit-events tbody tr")).to_have_count(1)
    expect(page.locator("#audit-events tbody tr td").nth(4)).to_contain_text(HOSTILE)
    assert page.evaluate("window.__ran === undefined")
    journey.check("audit log, filtered", "Audit log")

    # A request reference finds the request and its recordings and download link.
    page.get_by_label("Action").select_option("")
    page.get_by_label("Object").fill(req.reference)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#audit-events tbody tr").first).to_be_visible()
    expect(page.locator("#audit-events")).to_contain_text("release_approved")

    # An impossible date: the error summary, and nothing else breaks.
    page.get_by_role("group", name="From").get_by_label("Day").fill("31")
    page.get_by_role("group", name="From").get_by_label("Month").fill("2")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("The start date must be a real date")
    assert page.title().startswith("Error: ")
    journey.check("audit log, impossible date", "Audit log")

    # The chain, checked now: intact.
    page.get_by_role("link", name="Clear the filters").click()
    page.get_by_role("button", name="Check the chain now").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("The audit chain is intact")
    expect(page.locator("#chain-status + *")).to_contain_text("by Ava Auditor")
    journey.check("chain intact", "Audit log")

    # Someone changes an event outside the portal: the next check names it.
    tamper_with(hostile_seq)
    page.get_by_role("button", name="Check the chain now").click()
    expect(page.locator("#chain-status + *")).to_contain_text(f"The chain is broken at event {hostile_seq:,}")
    journey.check("chain broken", "Audit log")

    # The access report for today.
    page.get_by_role("link", name="See who accessed which recordings (access report)").click()
    expect(page).to_have_url(journey.url_pattern("/admin/audit/access-report"))
    journey.check("access report, last quarter", "Access report")
    fill_date(page, "From", today)
    fill_date(page, "To (included)", today)
    page.get_by_role("button", name="Show the report").click()
    expect(page.locator("main")).to_contain_text("Sam Clerk")
    expect(page.locator("main")).to_contain_text("Uploaded a recording")
    journey.check("access report, today", "Access report")
