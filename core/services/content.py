"""Published content pages: loading the defaults, publishing versions and serving the current one.

The public pages are read far more often than they change, so the sanitised HTML of the current version is
kept in the process. Each read asks the database one cheap, indexed question ("which version is current?")
and re-renders only when the answer changed, so a version published by any worker is served by every
worker on its next request.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.extensions import db
from core.models import NoticeVersion
from core.sanitise import render_markdown, sanitise_html
from core.services.audit import record_event
from core.services.db import transactional

DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "default_content"
DEFAULT_AUTHOR = "Default content"
MAX_SOURCE_LENGTH = 100_000


@dataclass(frozen=True)
class PageDefinition:
    slug: str
    title: str


PAGES: tuple[PageDefinition, ...] = (
    PageDefinition("call-recording-notice", "Recording of telephone calls"),
    PageDefinition("how-to-request", "How to ask for a copy of a call recording"),
    PageDefinition("accessibility-statement", "Accessibility statement"),
)
PAGE_SLUGS = frozenset(page.slug for page in PAGES)


class ContentError(ValueError):
    """A content change that cannot be made, with a message fit to show the person making it."""


@dataclass(frozen=True)
class PublishedPage:
    """What the public page needs: already sanitised HTML plus the facts for caching headers."""

    slug: str
    title: str
    html: str
    version: int
    version_id: int
    content_sha256: str
    published_at: datetime

    def etag(self, release_id: str) -> str:
        return f"{self.slug}-v{self.version}-{self.content_sha256[:16]}-{release_id}"


def source_hash(title: str, source_text: str) -> str:
    """SHA-256 of a version's title and source, used in the audit trail and as the cache key."""
    return hashlib.sha256(f"{title}\n\n{source_text}".encode()).hexdigest()


def practice_values(config) -> dict[str, str]:
    """The practice details that default content may mention, from configuration."""
    phone = config["PRACTICE_PHONE"]
    return {
        "practice_name": config["PRACTICE_NAME"],
        "practice_address": config["PRACTICE_ADDRESS"],
        "practice_phone": phone,
        "practice_phone_tel": "tel:" + re.sub(r"[^0-9+]", "", phone),
        "practice_email": config["PRACTICE_EMAIL"] or "",
        "release_link_days": str(config["RELEASE_LINK_DAYS"]),
    }


def default_source(slug: str, values: dict[str, str]) -> str:
    """The default Markdown for `slug`, with the practice's details filled in."""
    text = (DEFAULT_CONTENT_DIR / f"{slug}.md").read_text(encoding="utf-8")
    return Template(text).safe_substitute(values)


def _new_version(*, slug: str, title: str, source_text: str, change_summary: str, author_label: str) -> NoticeVersion:
    if slug not in PAGE_SLUGS:
        raise ContentError(f"There is no content page called {slug!r}.")
    title = title.strip()
    if not title:
        raise ContentError("Enter a page title.")
    if len(title) > 200:
        raise ContentError("Page title must be 200 characters or fewer.")
    if not source_text.strip():
        raise ContentError("Enter the page text.")
    if len(source_text) > MAX_SOURCE_LENGTH:
        raise ContentError(f"Page text must be {MAX_SOURCE_LENGTH:,} characters or fewer.")
    latest = db.session.execute(select(func.max(NoticeVersion.version)).where(NoticeVersion.slug == slug)).scalar()
    version = NoticeVersion(
        slug=slug,
        version=(latest or 0) + 1,
        title=title,
        source_text=source_text,
        html=render_markdown(source_text),
        content_sha256=source_hash(title, source_text),
        change_summary=change_summary.strip()[:500],
        author_label=author_label,
    )
    db.session.add(version)
    return version


@transactional
def publish_version(
    *,
    slug: str,
    title: str,
    source_text: str,
    change_summary: str,
    author_label: str,
    actor_type: str = "system",
    actor_id: str | None = None,
) -> NoticeVersion:
    """Create and publish a new version of page `slug`, audited with the before and after hashes.

    Raises ContentError for invalid input; nothing is written then.
    """
    before = current_version(slug)
    version = _new_version(
        slug=slug, title=title, source_text=source_text, change_summary=change_summary, author_label=author_label
    )
    version.published_at = datetime.now(UTC)
    db.session.flush()
    record_event(
        action="content.published",
        actor_type=actor_type,
        actor_id=actor_id,
        object_type="content_page",
        object_id=slug,
        details={
            "version": version.version,
            "before_sha256": before.content_sha256 if before else None,
            "after_sha256": version.content_sha256,
            "change_summary": version.change_summary,
            "author": author_label,
        },
    )
    return version


def load_default_content(*, config) -> list[str]:
    """Publish version 1 of every page that has no version yet; return the slugs it created.

    Safe to run any number of times, and by two processes at once: a page that already has a version,
    edited or not, is never touched.
    """
    values = practice_values(config)
    created = []
    for page in PAGES:
        exists = db.session.execute(select(NoticeVersion.id).where(NoticeVersion.slug == page.slug).limit(1)).first()
        if exists:
            continue
        try:
            publish_version(
                slug=page.slug,
                title=page.title,
                source_text=default_source(page.slug, values),
                change_summary="Default content loaded at installation",
                author_label=DEFAULT_AUTHOR,
            )
        except IntegrityError:
            # Another process loaded the same page between our check and our insert.
            continue
        created.append(page.slug)
    return created


class _PageCache:
    """Per-application cache of rendered pages, keyed by slug and checked against the current version."""

    def __init__(self) -> None:
        self._pages: dict[str, PublishedPage] = {}
        self._lock = threading.Lock()

    def get(self, slug: str, version_id: int, content_sha256: str) -> PublishedPage | None:
        page = self._pages.get(slug)
        if page and page.version_id == version_id and page.content_sha256 == content_sha256:
            return page
        return None

    def put(self, page: PublishedPage) -> None:
        with self._lock:
            self._pages[page.slug] = page


def _cache() -> _PageCache:
    return current_app.extensions.setdefault("portal.page_cache", _PageCache())


def current_version(slug: str):
    """(id, content_sha256) of the current published version of `slug`: one indexed query, or None."""
    return db.session.execute(
        select(NoticeVersion.id, NoticeVersion.content_sha256)
        .where(NoticeVersion.slug == slug, NoticeVersion.published_at.is_not(None))
        .order_by(NoticeVersion.version.desc())
        .limit(1)
    ).first()


def get_published_page(slug: str) -> PublishedPage | None:
    """The current published version of `slug`, rendered and sanitised, or None if there is none."""
    current = current_version(slug)
    if current is None:
        return None
    cache = _cache()
    page = cache.get(slug, current.id, current.content_sha256)
    if page is None:
        row = db.session.get(NoticeVersion, current.id)
        published_at = row.published_at
        if published_at.tzinfo is None:  # SQLite returns naive datetimes; we only ever store UTC.
            published_at = published_at.replace(tzinfo=UTC)
        page = PublishedPage(
            slug=row.slug,
            title=row.title,
            # Sanitised again on render: rows written by an older sanitiser benefit from today's rules.
            html=sanitise_html(row.html),
            version=row.version,
            version_id=row.id,
            content_sha256=row.content_sha256,
            published_at=published_at,
        )
        cache.put(page)
    return page
