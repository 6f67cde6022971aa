"""The `flask content` commands, run as a person would run them."""

from __future__ import annotations

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
