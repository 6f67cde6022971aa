"""The practice's settings that admins change in the portal (issue: practice settings).

One row (id 1). A column left empty means "use the configured default" (core.config), so a fresh
installation behaves exactly as configured until an admin saves the settings page. `version` goes up on
every save: each worker compares it with the one it cached (one indexed read a request), so a change takes
effect at once everywhere.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.content import utc_now
from core.models.types import UTCDateTime


class PracticeSettings(db.Model):
    __tablename__ = "practice_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    practice_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    practice_address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    practice_phone: Mapped[str | None] = mapped_column(String(30), nullable=True)
    practice_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    public_base_url: Mapped[str | None] = mapped_column(String(300), nullable=True)
    release_link_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    release_max_downloads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    release_four_eyes: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    purge_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recordings_kept_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    registration_key_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What replaces a withheld part of a recording: "silence" or "tone" (core.audio).
    redaction_fill: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
