"""The practice's settings: its details and its policies for releases and retention (admins change them).

Every value has a configured default (core.config: PRACTICE_NAME ... RECORDINGS_KEPT_MONTHS). The one
`practice_settings` row (id 1) overrides a default with each column that is not NULL; with no row, the portal
behaves exactly as configured. A saved value equal to its default is stored as NULL ("use the default"), so
the settings page can say which values are defaults and a default changed by the deployer still applies.

`practice_settings()` is what every reader calls. It asks the database one question by primary key (the row's
`version` and `updated_at`) and re-reads the row only when they changed, so a save by any worker takes effect at
once in every worker, the way core.services.content serves published pages.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.sansio.utils import host_is_trusted

from core.extensions import db
from core.models.accounts import StaffUser
from core.models.settings import PracticeSettings
from core.services.audit import record_event
from core.services.db import transactional
from core.services.email import looks_like_email, normalise_email
from core.services.errors import ServiceError

ROW_ID = 1
CACHE_KEY = "portal.practice_settings_cache"

# Each setting: the configuration key that holds its default (the column has the setting's own name).
CONFIG_KEYS: dict[str, str] = {
    "practice_name": "PRACTICE_NAME",
    "practice_address": "PRACTICE_ADDRESS",
    "practice_phone": "PRACTICE_PHONE",
    "practice_email": "PRACTICE_EMAIL",
    "public_base_url": "PUBLIC_BASE_URL",
    "release_link_days": "RELEASE_LINK_DAYS",
    "release_max_downloads": "RELEASE_MAX_DOWNLOADS",
    "release_four_eyes": "RELEASE_FOUR_EYES",
    "purge_after_days": "PURGE_AFTER_DAYS",
    "recordings_kept_months": "RECORDINGS_KEPT_MONTHS",
    "registration_key_days": "REGISTRATION_KEY_DAYS",
    "redaction_fill": "REDACTION_FILL",
}
FIELD_NAMES: tuple[str, ...] = tuple(CONFIG_KEYS)
# What may replace a withheld part of a recording (core.audio's two fills).
REDACTION_FILLS = ("silence", "tone")
# The form field that confirms turning four-eyes release off.
CONFIRM_FOUR_EYES_OFF = "confirm_four_eyes_off"

# Limits (the form's hints and docs/configuration.md quote them).
NAME_MAX = 200
ADDRESS_MAX = 300
PHONE_LENGTH = (7, 20)
# The longest lifetime of a download link: core.services.releases checks a token's signature with this
# maximum age (plus a day of clock slack).
MAX_LINK_DAYS = 90
BASE_URL_MAX = 300
DOWNLOADS_RANGE = (1, 20)
PURGE_RANGE = (0, 3650)
KEPT_MONTHS_RANGE = (1, 240)
# A registration key goes out in a letter: long enough for the post and a patient who is away, short enough
# that a letter lost in a drawer stops working.
REGISTRATION_KEY_DAYS_RANGE = (1, 90)
PHONE_SHAPE = re.compile(r"\+?[0-9][0-9 ]*")
HOST_SHAPE = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


def link_days_range() -> tuple[int, int]:
    """1 to MAX_LINK_DAYS: a download token's signature stops working after that many days (plus one), so a
    longer lifetime would promise a link that cannot work."""
    return (1, MAX_LINK_DAYS)


@dataclass(frozen=True)
class Settings:
    """The settings in force: each admin's value, or the configured default where there is none.

    `version`, `updated_at` and `overridden` describe where the values came from; they take no part in
    comparing two Settings.
    """

    practice_name: str
    practice_address: str
    practice_phone: str
    practice_email: str
    public_base_url: str
    release_link_days: int
    release_max_downloads: int
    release_four_eyes: bool
    purge_after_days: int
    recordings_kept_months: int
    registration_key_days: int
    redaction_fill: str
    version: int = field(default=0, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    overridden: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_config(cls, config) -> Settings:
        """The configured defaults alone (also what a fresh installation uses)."""
        return cls(
            practice_name=config["PRACTICE_NAME"],
            practice_address=config["PRACTICE_ADDRESS"],
            practice_phone=config["PRACTICE_PHONE"],
            practice_email=config["PRACTICE_EMAIL"] or "",
            public_base_url=(config["PUBLIC_BASE_URL"] or "").rstrip("/"),
            release_link_days=int(config["RELEASE_LINK_DAYS"]),
            release_max_downloads=int(config["RELEASE_MAX_DOWNLOADS"]),
            release_four_eyes=bool(config["RELEASE_FOUR_EYES"]),
            purge_after_days=int(config["PURGE_AFTER_DAYS"]),
            recordings_kept_months=int(config["RECORDINGS_KEPT_MONTHS"]),
            registration_key_days=int(config["REGISTRATION_KEY_DAYS"]),
            redaction_fill=config["REDACTION_FILL"],
        )

    @property
    def details_fingerprint(self) -> str:
        """A short hash of the details every page shows (header and footer), for ETags."""
        shown = "\0".join((self.practice_name, self.practice_address, self.practice_phone, self.practice_email))
        return hashlib.sha256(shown.encode()).hexdigest()[:12]

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_NAMES}


class SettingsError(ServiceError):
    """The settings cannot be saved. `errors` (also `problems`) maps each setting (or CONFIRM_FOUR_EYES_OFF) to
    a message fit to show the admin, in the order of the form. `conflict`: someone else saved since the form
    was opened."""

    def __init__(self, errors: dict[str, str], *, conflict: bool = False) -> None:
        super().__init__("; ".join(errors.values()), problems=errors)
        self.errors = errors
        self.conflict = conflict


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """The row as last read: its version and its non-NULL columns."""

    version: int | None
    overrides: dict[str, Any]
    updated_at: datetime | None


NO_ROW = _Stored(version=None, overrides={}, updated_at=None)


class _SettingsCache:
    def __init__(self) -> None:
        self._stored = NO_ROW
        self._lock = threading.Lock()

    def get(self, version: int | None, updated_at: datetime | None) -> _Stored | None:
        stored = self._stored
        return stored if (stored.version, stored.updated_at) == (version, updated_at) else None

    def put(self, stored: _Stored) -> None:
        with self._lock:
            self._stored = stored

    @property
    def last(self) -> _Stored:
        return self._stored


def _cache() -> _SettingsCache:
    return current_app.extensions.setdefault(CACHE_KEY, _SettingsCache())


def _read_stored() -> _Stored:
    row = db.session.execute(
        select(PracticeSettings).where(PracticeSettings.id == ROW_ID).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return NO_ROW if row is None else _stored_from(row)


def _stored_from(row: PracticeSettings) -> _Stored:
    overrides = {name: getattr(row, name) for name in FIELD_NAMES if getattr(row, name) is not None}
    return _Stored(version=row.version, overrides=overrides, updated_at=row.updated_at)


def _merge(stored: _Stored) -> Settings:
    # The defaults are read from the configuration every time (cheap), so they are never stale either.
    defaults = Settings.from_config(current_app.config)
    return replace(
        defaults,
        **stored.overrides,
        version=stored.version or 0,
        updated_at=stored.updated_at,
        overridden=frozenset(stored.overrides),
    )


def practice_settings() -> Settings:
    """The settings in force now: one query by primary key (the row's version and time of saving), and the
    row itself only when they changed since this process last read it. The time is part of the key so that
    a row deleted and made again, or a database restored from a backup, can never match an old copy by
    version alone. Never flushes the caller's pending changes."""
    with db.session.no_autoflush:
        current = db.session.execute(
            select(PracticeSettings.version, PracticeSettings.updated_at).where(PracticeSettings.id == ROW_ID)
        ).one_or_none()
        version, updated_at = (current.version, current.updated_at) if current else (None, None)
        cache = _cache()
        stored = cache.get(version, updated_at)
        if stored is None:
            stored = NO_ROW if current is None else _read_stored()
            cache.put(stored)
    return _merge(stored)


def last_known_settings() -> Settings:
    """The settings this process last read, without asking the database: only for showing the practice's
    details on a page when the database cannot answer (an error page must still render). Never use it for a
    decision such as four-eyes release: that must fail when the database does."""
    return _merge(_cache().last)


def defaults() -> Settings:
    return Settings.from_config(current_app.config)


# ---------------------------------------------------------------------------------------------------------
# Checking and saving
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberWording:
    enter: str
    label: str
    example: int
    unit: str = ""  # " days": after the range
    of_unit: str = ""  # " of days": after "a whole number"


LINK_DAYS = NumberWording("Enter how many days a download link works", "Link lifetime", 7, " days", " of days")
DOWNLOADS = NumberWording("Enter how many times each recording can be downloaded", "Downloads allowed", 3)
PURGE_DAYS = NumberWording(
    "Enter how many days to keep release copies after a link ends",
    "Days before copies are deleted",
    30,
    " days",
    " of days",
)
KEPT_MONTHS = NumberWording(
    "Enter how many months the telephone system keeps recordings",
    "Months recordings are kept",
    36,
    " months",
    " of months",
)

REGISTRATION_KEY_DAYS = NumberWording(
    "Enter how many days a registration key works",
    "Registration key lifetime",
    30,
    " days",
    " of days",
)


def _whole_number(errors: dict, name: str, raw: str, wording: NumberWording, bounds: tuple[int, int]) -> int | None:
    low, high = bounds
    raw = (raw or "").strip()
    if not raw:
        errors[name] = wording.enter
        return None
    if not (raw.isascii() and raw.isdigit()):
        errors[name] = f"{wording.label} must be a whole number{wording.of_unit}, like {wording.example}"
        return None
    # Very long digit strings are out of range anyway (and int() refuses more than 4,300 digits).
    value = int(raw) if len(raw) <= 9 else high + 1
    if not low <= value <= high:
        errors[name] = f"{wording.label} must be between {low} and {high}{wording.unit}"
        return None
    return value


def _base_url(errors: dict, raw: str) -> str | None:
    name = "public_base_url"
    raw = (raw or "").strip()
    production = current_app.config.get("ENV_NAME") == "production"
    example = "https://recordings.example-practice.nhs.uk"
    if not raw:
        errors[name] = "Enter the portal's web address"
        return None
    if len(raw) > BASE_URL_MAX:
        errors[name] = f"The portal's web address must be {BASE_URL_MAX} characters or fewer"
        return None
    if any(ch.isspace() for ch in raw):
        errors[name] = f"Enter the portal's web address without spaces, like {example}"
        return None
    if not raw.isascii() or any(ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in raw):
        # A backslash or a control character is read differently by different URL parsers: never let one in.
        errors[name] = f"Enter a web address in the correct format, like {example}"
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        errors[name] = f"Enter a web address in the correct format, like {example}"
        return None
    # Plain http:// only outside production (development serves http://127.0.0.1), as core.config demands.
    if parts.scheme.lower() not in (("https",) if production else ("https", "http")):
        errors[name] = f"The portal's web address must start with https://, like {example}"
        return None
    host = (parts.hostname or "").lower()
    if "@" in parts.netloc:
        errors[name] = "The portal's web address must not include a user name or password"
        return None
    if not host or not HOST_SHAPE.fullmatch(host) or ".." in host:
        errors[name] = f"Enter a web address in the correct format, like {example}"
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw or "#" in raw:
        errors[name] = f"Enter only the portal's address, with nothing after the host name, like {example}"
        return None
    trusted = current_app.config.get("TRUSTED_HOSTS")
    if trusted and not host_is_trusted(host, trusted):
        # A link in an email carries a token: it must lead to this portal and nowhere else.
        errors[name] = (
            "The portal's web address must use a host name the portal answers for (TRUSTED_HOSTS): "
            + ", ".join(trusted)
        )
        return None
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def check_settings(form_values: dict[str, str], current: Settings) -> dict[str, Any]:
    """The new values, checked; raises SettingsError with every problem found. `form_values` maps each
    setting's name (and CONFIRM_FOUR_EYES_OFF) to the text the admin sent."""

    def raw(name: str) -> str:
        value = form_values.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    errors: dict[str, str] = {}
    values: dict[str, Any] = _practice_details(errors, raw)
    values["public_base_url"] = _base_url(errors, raw("public_base_url"))
    for name, wording, bounds in (
        ("release_link_days", LINK_DAYS, link_days_range()),
        ("release_max_downloads", DOWNLOADS, DOWNLOADS_RANGE),
    ):
        values[name] = _whole_number(errors, name, raw(name), wording, bounds)

    four_eyes = raw("release_four_eyes")
    if four_eyes not in ("yes", "no"):
        errors["release_four_eyes"] = "Select whether a second admin must approve each release"
    values["release_four_eyes"] = four_eyes == "yes"
    if four_eyes == "no" and current.release_four_eyes and raw(CONFIRM_FOUR_EYES_OFF) != "yes":
        errors[CONFIRM_FOUR_EYES_OFF] = (
            "Confirm that one admin may prepare and approve a release alone, or select Yes to keep two admins"
        )

    for name, wording, bounds in (
        ("purge_after_days", PURGE_DAYS, PURGE_RANGE),
        ("recordings_kept_months", KEPT_MONTHS, KEPT_MONTHS_RANGE),
        ("registration_key_days", REGISTRATION_KEY_DAYS, REGISTRATION_KEY_DAYS_RANGE),
    ):
        values[name] = _whole_number(errors, name, raw(name), wording, bounds)

    values["redaction_fill"] = raw("redaction_fill")
    if values["redaction_fill"] not in REDACTION_FILLS:
        errors["redaction_fill"] = "Select what replaces a part of a recording that is withheld"

    if errors:
        order = (*FIELD_NAMES, CONFIRM_FOUR_EYES_OFF)
        raise SettingsError({key: errors[key] for key in sorted(errors, key=order.index)})
    return values


def _practice_details(errors: dict[str, str], raw) -> dict[str, str]:
    """The practice's name, address, phone and email (shown on every page), checked; problems go to `errors`."""
    values: dict[str, str] = {}
    name = raw("practice_name")
    if not name:
        errors["practice_name"] = "Enter the practice's name"
    elif len(name) > NAME_MAX:
        errors["practice_name"] = f"Practice name must be {NAME_MAX} characters or fewer"
    values["practice_name"] = name

    address = " ".join(raw("practice_address").split())
    if not address:
        errors["practice_address"] = "Enter the practice's address"
    elif len(address) > ADDRESS_MAX:
        errors["practice_address"] = f"Address must be {ADDRESS_MAX} characters or fewer"
    values["practice_address"] = address

    phone = " ".join(raw("practice_phone").split())
    low, high = PHONE_LENGTH
    if not phone:
        errors["practice_phone"] = "Enter the practice's phone number"
    elif not PHONE_SHAPE.fullmatch(phone):
        errors["practice_phone"] = "Phone number must only include numbers 0 to 9, spaces and a + at the start"
    elif not low <= len(phone) <= high:
        errors["practice_phone"] = f"Phone number must be between {low} and {high} characters, like 020 8333 5000"
    values["practice_phone"] = phone

    email = raw("practice_email")
    if email and not looks_like_email(email):
        errors["practice_email"] = "Enter an email address in the correct format, like reception@example.nhs.uk"
    values["practice_email"] = normalise_email(email) if email else ""
    return values


def _locked_row() -> PracticeSettings:
    """The settings row, held (PostgreSQL) until commit so two saves happen one after the other; created
    (empty: every value the default) if there is none yet, in the caller's transaction, so a save that fails
    leaves no row behind. INSERT ... ON CONFLICT DO NOTHING: two first saves at once make one row."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(PracticeSettings)
        .values(id=ROW_ID, version=0, updated_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return db.session.execute(
        select(PracticeSettings)
        .where(PracticeSettings.id == ROW_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


@transactional
def save_settings(actor: StaffUser, form_values: dict[str, str], *, expected_version: int | None = None) -> Settings:
    """Check and save the settings an admin sent; return the settings now in force.

    Nothing is written if any value is wrong (SettingsError lists every problem), if the actor is not an
    active admin, or if someone saved since the form was opened (`expected_version`, when given). A value equal
    to its configured default is stored as "use the default". The save is audited (`settings_changed`, each
    changed setting's value before and after: none is secret or personal); turning four-eyes release off is
    audited again on its own (`four_eyes_release_turned_off`), so a reviewer cannot miss it.
    """
    if not (actor.is_admin and actor.is_active):
        raise SettingsError({"practice_name": "Only an admin can change the practice settings"})
    row = _locked_row()
    before = _merge(_stored_from(row))
    if expected_version is not None and expected_version != (row.version or 0):
        raise SettingsError(
            {
                "practice_name": "Someone else changed the settings while you were editing them. "
                "Check the values below and save again"
            },
            conflict=True,
        )
    values = check_settings(form_values, before)
    default = defaults()
    new_columns = {name: (None if values[name] == getattr(default, name) else values[name]) for name in FIELD_NAMES}
    if all(getattr(row, name) == new_columns[name] for name in FIELD_NAMES):
        db.session.rollback()  # nothing to change: an empty row made just now is not kept either
        return practice_settings()
    for name, value in new_columns.items():
        setattr(row, name, value)
    row.version = (row.version or 0) + 1
    row.updated_at = datetime.now(UTC)
    row.updated_by_id = actor.id
    db.session.flush()
    after = _merge(_stored_from(row))
    changed = {
        name: {"before": getattr(before, name), "after": getattr(after, name), "default": name not in after.overridden}
        for name in FIELD_NAMES
        if getattr(before, name) != getattr(after, name) or (name in before.overridden) != (name in after.overridden)
    }
    record_event(
        action="settings_changed",
        actor_type="staff",
        actor_id=actor.public_id,
        object_type="practice_settings",
        object_id=str(ROW_ID),
        details={"version": row.version, "changed": changed},
    )
    if before.release_four_eyes and not after.release_four_eyes:
        record_event(
            action="four_eyes_release_turned_off",
            actor_type="staff",
            actor_id=actor.public_id,
            object_type="practice_settings",
            object_id=str(ROW_ID),
            details={"version": row.version, "confirmed": True},
        )
    return after


def form_values_of(settings: Settings) -> dict[str, str]:
    """The settings as the form shows them."""
    values = {name: str(value) for name, value in settings.values().items()}
    values["release_four_eyes"] = "yes" if settings.release_four_eyes else "no"
    return values
