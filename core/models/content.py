"""Editable content pages (the call-recording notice and its companions), kept as numbered versions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.types import UTCDateTime

# The author of the versions `flask content load-defaults` publishes (a stored label, not an account).
DEFAULT_CONTENT_AUTHOR = "Default content"


def utc_now() -> datetime:
    return datetime.now(UTC)


class NoticeVersion(db.Model):
    """One version of one content page. Versions are never edited in place: a change is a new version.

    `published_at` is None for a draft. The public page shows the published version with the highest number.
    `content_sha256` is the hash of the source text, used for audit and to key the render cache.
    """

    __tablename__ = "notice_version"
    __table_args__ = (
        UniqueConstraint("slug", "version", name="uq_notice_version_slug_version"),
        Index("ix_notice_version_slug_published", "slug", "published_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    source_text: Mapped[str] = mapped_column(Text, nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    change_summary: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    # Who made the version. Staff accounts arrive later; until then this is a label such as "Default content".
    author_label: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def installed_with_portal(self) -> bool:
        """Published by the default-content loader rather than written by a member of staff."""
        return self.author_label == DEFAULT_CONTENT_AUTHOR

    @property
    def author_text(self) -> str:
        """Who made the version, as the editor's pages say it: a name, or "Installed with the portal"."""
        return "Installed with the portal" if self.installed_with_portal else self.author_label

    def __repr__(self) -> str:
        return f"<NoticeVersion {self.slug} v{self.version}>"
