"""The `flask content` and `flask requests` commands, run as a person would run them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.extensions import db
from core.models import NoticeVersion


def test_load_defaults_reports_that_nothing_changed_when_content_exists(app):
    result = app.test_cli_runner().invoke(args=["content", "load-defaults"])
    assert result.exit_code == 0
    assert result.output == "Every content page already has content; nothing changed.\n"


def test_load_defaults_publishes_the_missing_pages(app):
    db.session.execute(NoticeVersion.__table__.delete())
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["content", "load-defaults"])
    assert result.exit_code == 0
    assert "Published default content for call-recording-notice." in result.output
    assert db.session.execute(select(func.count(NoticeVersion.id))).scalar_one() == 3


def test_requests_due_date_prints_the_received_and_due_dates_in_words(app):
    result = app.test_cli_runner().invoke(args=["requests", "due-date", "2026-09-03"])
    assert result.exit_code == 0
    assert result.output == "Received: Thursday 3 September 2026\nReply due by: Monday 5 October 2026\n"


def test_requests_due_date_extended_prints_the_extended_date_and_when_to_tell_the_patient(app):
    result = app.test_cli_runner().invoke(args=["requests", "due-date", "2026-09-03", "--extended"])
    assert result.exit_code == 0
    assert result.output == (
        "Received: Thursday 3 September 2026\n"
        "Reply due by (extended): Thursday 3 December 2026\n"
        "Tell the patient about the extension by: Monday 5 October 2026\n"
    )


def test_requests_due_date_accepts_a_date_years_ahead(app):
    result = app.test_cli_runner().invoke(args=["requests", "due-date", "2030-12-31"])
    assert result.exit_code == 0
    # 31 January 2031 is a Friday.
    assert result.output == "Received: Tuesday 31 December 2030\nReply due by: Friday 31 January 2031\n"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("2026-02-30", "2026-02-30 is not a real date: February 2026 has no day 30."),
        ("2026-13-01", "2026-13-01 is not a real date: there is no month 13."),
        ("tomorrow", "'tomorrow' is not a date written as YYYY-MM-DD, for example 2026-09-03."),
        ("3/9/2026", "'3/9/2026' is not a date written as YYYY-MM-DD, for example 2026-09-03."),
        ("9999-12-31", "9999-12-31 is too far in the future to count from."),
    ],
)
def test_requests_due_date_refuses_a_bad_date_with_usage_error(app, argument, message):
    result = app.test_cli_runner().invoke(args=["requests", "due-date", argument])
    assert result.exit_code == 2
    assert f"Invalid value for 'RECEIVED': {message}" in result.output
    assert "Reply due by" not in result.output
