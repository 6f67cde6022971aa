"""Versioned content: loading the defaults, publishing, and sanitising on save and on render."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from core.extensions import db
from core.models import NoticeVersion
from core.services.content import (
    PAGES,
    ContentError,
    get_published_page,
    load_default_content,
    publish_version,
)


def version_count(slug: str | None = None) -> int:
    query = select(func.count(NoticeVersion.id))
    if slug:
        query = query.where(NoticeVersion.slug == slug)
    return db.session.execute(query).scalar_one()


def test_defaults_give_every_page_one_published_version(app):
    for page in PAGES:
        current = get_published_page(page.slug)
        assert current is not None
        assert current.version == 1
        assert current.title == page.title
    assert version_count() == len(PAGES)


def test_loading_defaults_again_changes_nothing(app):
    assert load_default_content(config=app.config) == []
    assert load_default_content(config=app.config) == []
    assert version_count() == len(PAGES)


def test_loading_defaults_never_overwrites_an_edited_page(app):
    publish_version(
        slug="call-recording-notice",
        title="Recording of telephone calls",
        source_text="Our own wording.",
        change_summary="Edited by the practice",
        author_label="Practice manager",
    )
    assert load_default_content(config=app.config) == []
    page = get_published_page("call-recording-notice")
    assert page.version == 2
    assert "Our own wording." in page.html


def test_loading_defaults_fills_in_a_page_that_has_none(app):
    db.session.execute(NoticeVersion.__table__.delete().where(NoticeVersion.slug == "accessibility-statement"))
    db.session.commit()
    assert load_default_content(config=app.config) == ["accessibility-statement"]
    assert version_count("accessibility-statement") == 1


def test_publishing_numbers_versions_and_records_hash_and_author(app):
    version = publish_version(
        slug="how-to-request",
        title="How to ask",
        source_text="Write to us.",
        change_summary="  Simpler  ",
        author_label="Practice manager",
    )
    assert version.version == 2
    assert version.published_at is not None
    assert len(version.content_sha256) == 64
    assert version.change_summary == "Simpler"
    assert version.author_label == "Practice manager"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "no-such-page"}, "There is no content page called 'no-such-page'."),
        ({"title": "   "}, "Enter a page title."),
        ({"source_text": " \n "}, "Enter the page text."),
        ({"source_text": "x" * 100_001}, "Page text must be 100,000 characters or fewer."),
    ],
)
def test_invalid_content_is_refused_with_a_clear_message_and_nothing_is_written(app, changes, message):
    arguments = {
        "slug": "how-to-request",
        "title": "How to ask",
        "source_text": "Write to us.",
        "change_summary": "",
        "author_label": "Test",
    } | changes
    before = version_count()
    with pytest.raises(ContentError) as raised:
        publish_version(**arguments)
    assert str(raised.value) == message
    assert version_count() == before


def test_markdown_is_sanitised_when_saved(app):
    version = publish_version(
        slug="how-to-request",
        title="How to ask",
        source_text="## Ask\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1)) [good](https://example.org)",
        change_summary="",
        author_label="Test",
    )
    assert "<script>" not in version.html
    assert 'href="javascript' not in version.html
    assert '<a href="https://example.org" rel="noopener noreferrer">good</a>' in version.html


def test_stored_html_is_sanitised_again_when_rendered(client):
    """A row written before today's sanitiser rules (or by hand) still cannot put script on the page."""
    db.session.execute(
        update(NoticeVersion)
        .where(NoticeVersion.slug == "accessibility-statement")
        .values(html='<p>Hello</p><script>alert(1)</script><img src=x onerror="alert(2)">', content_sha256="0" * 64)
    )
    db.session.commit()
    body = client.get("/accessibility-statement").get_data(as_text=True)
    assert "<p>Hello</p>" in body
    assert "alert(1)" not in body
    assert "onerror" not in body


def test_a_page_with_no_published_version_is_not_found(client):
    db.session.execute(NoticeVersion.__table__.delete().where(NoticeVersion.slug == "how-to-request"))
    db.session.commit()
    assert client.get("/how-to-request").status_code == 404
