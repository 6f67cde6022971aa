"""Published content pages: loading the defaults, publishing versions and serving the current one.

The public pages are read far more often than they change, so the sanitised HTML of the current version is
kept in the process. Each read asks the database one cheap, indexed question ("which version is current?")
and re-renders only when the answer changed, so a version published by any worker is served by every
worker on its next request.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from flask import current_app
from sqlalchemy import Engine, bindparam, create_engine, func, select
from sqlalchemy.exc import IntegrityError

from core.extensions import db
from core.models import NoticeVersion
from core.models.content import DEFAULT_CONTENT_AUTHOR
from core.models.settings import PracticeSettings
from core.sanitise import render_markdown, sanitise_html
from core.services.audit import record_event
from core.services.db import transactional
from core.services.errors import ServiceError
from core.services.settings import ROW_ID as SETTINGS_ROW_ID
from core.services.settings import Settings, practice_settings

DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "default_content"
DEFAULT_AUTHOR = DEFAULT_CONTENT_AUTHOR
MAX_SOURCE_LENGTH = 100_000
MAX_SUMMARY_LENGTH = 500  # the column's length


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


class ContentError(ServiceError):
    """A content change that cannot be made, with a message fit to show the person making it; `problems` maps
    each form field at fault (title, source, change-summary) to its message, in the order of the fields on the
    page. A refusal naming no field is about the page's text (`source`)."""

    def __init__(self, message: str = "", *, field: str = "source", problems: dict[str, str] | None = None) -> None:
        super().__init__(message, field=field, problems=problems)


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


def practice_values(source) -> dict[str, str]:
    """The practice details that default content may mention: from `source`, the settings in force
    (core.services.settings.Settings) or a configuration mapping (its defaults alone)."""
    settings = source if isinstance(source, Settings) else Settings.from_config(source)
    phone = settings.practice_phone
    return {
        "practice_name": settings.practice_name,
        "practice_address": settings.practice_address,
        "practice_phone": phone,
        "practice_phone_tel": "tel:" + re.sub(r"[^0-9+]", "", phone),
        "practice_email": settings.practice_email,
        "release_link_days": str(settings.release_link_days),
    }


def default_source(slug: str, values: dict[str, str]) -> str:
    """The default Markdown for `slug`, with the practice's details filled in."""
    text = (DEFAULT_CONTENT_DIR / f"{slug}.md").read_text(encoding="utf-8")
    return Template(text).safe_substitute(values)


def _checked(
    slug: str, title: str, source_text: str, *, change_summary: str = "", summary_required: bool = False
) -> tuple[str, str]:
    """The title and source as they will be stored (trimmed, line endings made "\n"), or ContentError naming
    every field at fault."""
    if slug not in PAGE_SLUGS:
        raise ContentError(f"There is no content page called {slug!r}.", field="slug")
    problems: dict[str, str] = {}
    title = title.strip()
    if not title:
        problems["title"] = "Enter a page title."
    elif len(title) > 200:
        problems["title"] = "Page title must be 200 characters or fewer."
    # Browsers send a textarea's lines with "\r\n": store "\n" only, so versions compare line by line; blank
    # lines and spaces around the whole text mean nothing in Markdown, so they do not make a version differ.
    source_text = source_text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not source_text.strip():
        problems["source"] = "Enter the page text."
    elif len(source_text) > MAX_SOURCE_LENGTH:
        problems["source"] = f"Page text must be {MAX_SOURCE_LENGTH:,} characters or fewer."
    if summary_required and not change_summary.strip():
        problems["change-summary"] = "Enter a summary of the change."
    elif len(change_summary.strip()) > MAX_SUMMARY_LENGTH:
        problems["change-summary"] = f"Summary of the change must be {MAX_SUMMARY_LENGTH} characters or fewer."
    if problems:
        raise ContentError(problems=problems)
    return title, source_text


def _new_version(*, slug: str, title: str, source_text: str, change_summary: str, author_label: str) -> NoticeVersion:
    title, source_text = _checked(slug, title, source_text)
    latest = db.session.execute(select(func.max(NoticeVersion.version)).where(NoticeVersion.slug == slug)).scalar()
    version = NoticeVersion(
        slug=slug,
        version=(latest or 0) + 1,
        title=title,
        source_text=source_text,
        html=render_markdown(source_text),
        content_sha256=source_hash(title, source_text),
        change_summary=change_summary.strip()[:MAX_SUMMARY_LENGTH],
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
    return _publish(
        slug=slug,
        title=title,
        source_text=source_text,
        change_summary=change_summary,
        author_label=author_label,
        actor_type=actor_type,
        actor_id=actor_id,
    )


def _publish(
    *,
    slug: str,
    title: str,
    source_text: str,
    change_summary: str,
    author_label: str,
    actor_type: str,
    actor_id: str | None,
    action: str = "content.published",
    extra_details: dict | None = None,
) -> NoticeVersion:
    """Add a published version and its audit event to the current transaction (the caller commits)."""
    before = current_version(slug)
    version = _new_version(
        slug=slug, title=title, source_text=source_text, change_summary=change_summary, author_label=author_label
    )
    version.published_at = datetime.now(UTC)
    db.session.flush()
    _record_version_event(action, version, before, actor_type=actor_type, actor_id=actor_id, **(extra_details or {}))
    return version


def _record_version_event(action: str, version: NoticeVersion, before, *, actor_type: str, actor_id, **extra) -> None:
    """Audit a new version: who, which version, the hash of the published text before and of this version."""
    record_event(
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        object_type="content_page",
        object_id=version.slug,
        details={
            "version": version.version,
            "before_sha256": before.content_sha256 if before else None,
            "after_sha256": version.content_sha256,
            "change_summary": version.change_summary,
            "author": version.author_label,
            **extra,
        },
    )


def load_default_content(*, config) -> list[str]:
    """Publish version 1 of every page that has no version yet; return the slugs it created.

    Safe to run any number of times, and by two processes at once: a page that already has a version,
    edited or not, is never touched. The practice's details come from the settings in force (an admin's
    changes over `config`'s defaults; `config` must be the current application's).
    """
    values = practice_values(practice_settings())  # the admins' details, where they changed them
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
    return published_page(slug, current.id, current.content_sha256)


def published_page(slug: str, version_id: int, content_sha256: str) -> PublishedPage:
    """Version `version_id` of `slug` (a published one: see current_version or page_state) ready to show,
    from this process's cache when it has that version."""
    cache = _cache()
    page = cache.get(slug, version_id, content_sha256)
    if page is None:
        row = db.session.get(NoticeVersion, version_id)
        page = PublishedPage(
            slug=row.slug,
            title=row.title,
            # Sanitised again on render: rows written by an older sanitiser benefit from today's rules.
            html=sanitise_html(row.html),
            version=row.version,
            version_id=row.id,
            content_sha256=row.content_sha256,
            published_at=row.published_at,
        )
        cache.put(page)
    return page


@dataclass(frozen=True)
class PageState:
    """Everything a public content page depends on besides the release: the current published version and
    the version of the practice settings (the header and footer show the practice's details)."""

    slug: str
    version: int
    version_id: int
    content_sha256: str
    published_at: datetime
    settings_version: int | None
    settings_updated_at: datetime | None

    def cache_key(self, release_id: str) -> str:
        """A key that changes whenever the page's bytes may change: a publish, a settings save, a release."""
        parts = (
            self.slug,
            self.version_id,
            self.version,
            self.content_sha256,
            self.published_at.isoformat(),
            self.settings_version,
            self.settings_updated_at.isoformat() if self.settings_updated_at else "",
            release_id,
        )
        digest = hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()
        return f"{self.slug}-v{self.version}-{digest[:24]}"

    @property
    def last_modified(self) -> datetime:
        if self.settings_updated_at is None:
            return self.published_at
        return max(self.published_at, self.settings_updated_at)


# Built once: a request for a cached page spends its time on the query, not on building it.
_SETTINGS_ROW = select(PracticeSettings.version, PracticeSettings.updated_at).where(
    PracticeSettings.id == SETTINGS_ROW_ID
)
PAGE_STATE_QUERY = (
    select(
        NoticeVersion.id,
        NoticeVersion.version,
        NoticeVersion.content_sha256,
        NoticeVersion.published_at,
        _SETTINGS_ROW.with_only_columns(PracticeSettings.version).scalar_subquery().label("settings_version"),
        _SETTINGS_ROW.with_only_columns(PracticeSettings.updated_at).scalar_subquery().label("settings_updated_at"),
    )
    .where(NoticeVersion.slug == bindparam("slug"), NoticeVersion.published_at.is_not(None))
    .order_by(NoticeVersion.version.desc())
    .limit(1)
)


PAGE_STATE_ENGINE = "portal.page_state_engine"
_engine_lock = threading.Lock()


def in_memory_sqlite(engine: Engine) -> bool:
    """An in-memory SQLite database: it exists on its engine's one connection only, so nothing else may open
    a connection of its own to it."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


def page_state_engine() -> Engine:
    """The engine `page_state` reads with: the application's database, in autocommit and without the ping
    before each use, so the check is one round trip to the database rather than four (ping, BEGIN, the query,
    ROLLBACK). A connection that has gone bad makes the read fail, and SQLAlchemy then replaces every pooled
    connection; the cached page's caller answers that request through Flask, which asks again. An in-memory
    SQLite database exists on its one connection only: it is read with the application's engine."""
    engine = current_app.extensions.get(PAGE_STATE_ENGINE)
    if engine is None:
        with _engine_lock:
            engine = current_app.extensions.get(PAGE_STATE_ENGINE)
            if engine is None:
                main = db.engine
                engine = (
                    main
                    if in_memory_sqlite(main)
                    else create_engine(
                        main.url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, hide_parameters=True
                    )
                )
                current_app.extensions[PAGE_STATE_ENGINE] = engine
    return engine


def page_state(slug: str, *, engine: Engine | None = None) -> PageState | None:
    """The state of public page `slug` in one indexed query (the newest published version by the unique
    (slug, version) index, the settings row by its primary key), or None when nothing is published.

    It reads outside the request's session, through `engine` (the current application's page_state_engine
    unless given): a read that needs no transaction with anything else, made the cheapest way
    (scripts/bench_notice.py times it)."""
    with (engine or page_state_engine()).connect() as connection:
        row = connection.execute(PAGE_STATE_QUERY, {"slug": slug}).first()
    if row is None:
        return None
    return PageState(
        slug=slug,
        version=row.version,
        version_id=row.id,
        content_sha256=row.content_sha256,
        published_at=row.published_at,
        settings_version=row.settings_version,
        settings_updated_at=row.settings_updated_at,
    )


# --- The notice editor: previews, drafts, history, diffs and roll-back (admin/content.py) ----------------

DIFF_CONTEXT_LINES = 3  # unchanged lines shown around each change


def page_definition(slug: str) -> PageDefinition | None:
    return next((page for page in PAGES if page.slug == slug), None)


def _newest(slug: str, *, published: bool = False) -> NoticeVersion | None:
    query = select(NoticeVersion).where(NoticeVersion.slug == slug)
    if published:
        query = query.where(NoticeVersion.published_at.is_not(None))
    return db.session.execute(query.order_by(NoticeVersion.version.desc()).limit(1)).scalar_one_or_none()


@dataclass(frozen=True)
class PageOverview:
    page: PageDefinition
    published: NoticeVersion | None
    draft: NoticeVersion | None  # the newest version when it is a draft newer than the published one

    @property
    def editing(self) -> NoticeVersion | None:
        """The version the editor starts from: the newer draft if there is one, else the published one."""
        return self.draft or self.published


def page_overview(slug: str) -> PageOverview:
    page = page_definition(slug)
    if page is None:
        raise ContentError(f"There is no content page called {slug!r}.", field="slug")
    published = _newest(slug, published=True)
    newest = _newest(slug)
    draft = newest if newest is not None and newest.published_at is None else None
    if draft is not None and published is not None and draft.version < published.version:
        draft = None
    return PageOverview(page=page, published=published, draft=draft)


def content_overview() -> list[PageOverview]:
    """Every content page with its published version and any newer draft, in the order of PAGES."""
    return [page_overview(page.slug) for page in PAGES]


def page_versions(slug: str) -> list[NoticeVersion]:
    """Every version of `slug`, newest first."""
    return list(
        db.session.execute(
            select(NoticeVersion).where(NoticeVersion.slug == slug).order_by(NoticeVersion.version.desc())
        ).scalars()
    )


def get_version(slug: str, number: int) -> NoticeVersion | None:
    return db.session.execute(
        select(NoticeVersion).where(NoticeVersion.slug == slug, NoticeVersion.version == number)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class RenderedPage:
    """A version, or unsaved text, as the public page would show it. `html` is sanitiser output, for the one
    template that marks it safe; `published_at` is what "Last updated" shows (now, for a preview)."""

    title: str
    html: str
    published_at: datetime


def preview(*, slug: str, title: str, source_text: str) -> RenderedPage:
    """Render unsaved text exactly as publishing it would, writing nothing. ContentError for invalid input."""
    title, source_text = _checked(slug, title, source_text)
    return RenderedPage(title=title, html=render_markdown(source_text), published_at=datetime.now(UTC))


def rendered_version(version: NoticeVersion) -> RenderedPage:
    """A stored version for display, sanitised again on the way out (as the public page does)."""
    return RenderedPage(
        title=version.title,
        html=sanitise_html(version.html),
        published_at=version.published_at or version.created_at,
    )


@transactional
def save_draft(actor, *, slug: str, title: str, source_text: str, change_summary: str) -> NoticeVersion:
    """Save the text as a new draft version by `actor` (a member of staff); the public page does not change.

    Audited as `content.draft_saved`: `before_sha256` is the published version's hash, `after_sha256` the
    draft's. ContentError (naming every field at fault) for invalid input; nothing is written then.
    """
    title, source_text = _checked(slug, title, source_text, change_summary=change_summary)
    before = current_version(slug)
    version = _new_version(
        slug=slug, title=title, source_text=source_text, change_summary=change_summary, author_label=actor.name
    )
    db.session.flush()
    _record_version_event("content.draft_saved", version, before, actor_type="staff", actor_id=actor.public_id)
    return version


def keep_as_draft(actor, *, slug: str, title: str, source_text: str, change_summary: str) -> NoticeVersion | None:
    """save_draft, unless the newest version (draft or published) already has this title and text: None then.

    For text that must not be lost, such as an edit on its way through a second-factor check."""
    checked_title, checked_source = _checked(slug, title, source_text, change_summary=change_summary)
    newest = _newest(slug)
    if newest is not None and newest.content_sha256 == source_hash(checked_title, checked_source):
        return None
    return save_draft(actor, slug=slug, title=title, source_text=source_text, change_summary=change_summary)


@transactional
def publish_edit(actor, *, slug: str, title: str, source_text: str, change_summary: str) -> NoticeVersion:
    """Publish the text as a new version by `actor`: every worker serves it on its next request.

    A change summary is required, and text identical to the published version is refused (there would be
    nothing to publish). Audited as `content.published` with the before and after hashes.
    """
    title, source_text = _checked(slug, title, source_text, change_summary=change_summary, summary_required=True)
    current = current_version(slug)
    if current is not None and current.content_sha256 == source_hash(title, source_text):
        raise ContentError("The public page already shows this title and text: change something to publish it.")
    return _publish(
        slug=slug,
        title=title,
        source_text=source_text,
        change_summary=change_summary,
        author_label=actor.name,
        actor_type="staff",
        actor_id=actor.public_id,
    )


@transactional
def roll_back(actor, *, slug: str, number: int) -> NoticeVersion:
    """Publish the title and text of version `number` again, as a new version with the summary "Rolled back
    to version N" (history is never rewritten). Audited as `content.rolled_back` with the before and after
    hashes. ContentError if the version does not exist or is what the public page already shows."""
    old = get_version(slug, number)
    if old is None:
        raise ContentError(f"There is no version {number} of this page.")
    if old.published_at is None:
        # A draft was never reviewed as published text: it goes live only through Publish, with a summary.
        raise ContentError(f"Version {number} is a draft that was never published. Open it and publish it instead.")
    current = current_version(slug)
    if current is not None and current.content_sha256 == old.content_sha256:
        raise ContentError(f"The public page already shows the text of version {number}.")
    return _publish(
        slug=slug,
        title=old.title,
        source_text=old.source_text,
        change_summary=f"Rolled back to version {number}",
        author_label=actor.name,
        actor_type="staff",
        actor_id=actor.public_id,
        action="content.rolled_back",
        extra_details={"rolled_back_to": number},
    )


@dataclass(frozen=True)
class DiffLine:
    """One row of a diff. `kind` is "same", "removed", "added" or "skipped" (unchanged lines left out, `count`
    of them). `before`/`after` are line numbers in the older and newer text (None where the line is absent)."""

    kind: str
    text: str = ""
    before: int | None = None
    after: int | None = None
    count: int = 0


@dataclass(frozen=True)
class VersionDiff:
    before: NoticeVersion
    after: NoticeVersion
    lines: list[DiffLine]

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.kind == "added")

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.kind == "removed")

    @property
    def title_changed(self) -> bool:
        return self.before.title != self.after.title


def diff_versions(slug: str, *, from_number: int, to_number: int) -> VersionDiff | None:
    """The line-by-line difference between the source text of two versions of `slug` (None if either is
    missing), with DIFF_CONTEXT_LINES unchanged lines around each change and the rest summarised."""
    before, after = get_version(slug, from_number), get_version(slug, to_number)
    if before is None or after is None:
        return None
    old, new = before.source_text.split("\n"), after.source_text.split("\n")
    lines: list[DiffLine] = []
    position = 0  # lines of the older text accounted for so far
    if old != new:
        for group in difflib.SequenceMatcher(None, old, new).get_grouped_opcodes(DIFF_CONTEXT_LINES):
            start = group[0][1]
            if start > position:
                lines.append(DiffLine("skipped", count=start - position))
            for tag, i1, i2, j1, j2 in group:
                if tag == "equal":
                    lines.extend(DiffLine("same", old[i], i + 1, j1 + i - i1 + 1) for i in range(i1, i2))
                    continue
                lines.extend(DiffLine("removed", old[i], before=i + 1) for i in range(i1, i2))
                lines.extend(DiffLine("added", new[j], after=j + 1) for j in range(j1, j2))
            position = group[-1][2]
        if position < len(old):
            lines.append(DiffLine("skipped", count=len(old) - position))
    return VersionDiff(before=before, after=after, lines=lines)
