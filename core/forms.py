"""Reading and checking submitted forms, shared by the patient and staff areas.

Forms read only the fields they name (an explicit allow-list: extra fields such as `role` or `is_verified`
are never looked at, SECURITY G5). Every value is treated as untrusted text of bounded length. Errors are
collected in `FormErrors`, in the order of the fields on the page, worded as the NHS.UK design system asks
("Enter your date of birth"), and shown both in the error summary and next to the field.
"""

from __future__ import annotations

import unicodedata
from datetime import date

from flask import current_app
from werkzeug.datastructures import MultiDict

from core.services.breached import is_breached
from core.services.passwords import MAX_LENGTH, normalise_password, password_problems

MAX_FIELD_LENGTH = 500
BREACHED = "This password has appeared in a data breach on another website, so it is not safe. Choose a different one"
CANNOT_CHECK = "We could not check this password against known data breaches. Try again in a few minutes"


class FormErrors(dict):
    """field id -> message, in insertion order."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, message)

    def summary(self) -> list[dict]:
        """Items for the NHS error summary component, each linking to its field."""
        return [{"text": message, "href": f"#{field}"} for field, message in self.items()]

    def message(self, field: str) -> dict | None:
        """The errorMessage parameter for a design-system field macro, or None."""
        return {"text": self[field]} if field in self else None


def text(form: MultiDict, name: str, *, limit: int = MAX_FIELD_LENGTH) -> str:
    """A text value, trimmed and in composed Unicode (NFC: "e" plus a separate accent becomes "é", as some
    keyboards send it); only the first value if the field is repeated."""
    value = form.get(name, "")
    if not isinstance(value, str):
        return ""
    return unicodedata.normalize("NFC", value[: limit * 4]).strip()[: limit + 1]


def password_field(form: MultiDict, name: str) -> str:
    """A password exactly as typed (no trimming: spaces may be part of it), bounded in length."""
    value = form.get(name, "")
    return value[: MAX_LENGTH * 8] if isinstance(value, str) else ""


def check_new_password(
    errors: FormErrors,
    form: MultiDict,
    *,
    field: str = "password",
    confirm_field: str | None = "confirm-password",
    email: str | None = None,
    names: tuple[str, ...] = (),
    staff: bool = False,
) -> str:
    """Validate a new password (and its confirmation); return it, with any problems added to `errors`.

    The breached-password check runs last, only on a password that passes everything else; for `staff` it
    fails closed when the check cannot be made (see core.services.breached)."""
    password = password_field(form, field)
    problems = password_problems(password, email=email, names=names)
    if not problems and not errors:  # the outside service is asked only about an otherwise complete form
        breached = is_breached(normalise_password(password))
        if breached:
            problems = [BREACHED]
        elif breached is None and staff and current_app.config.get("PWNED_PASSWORDS_URL"):
            problems = [CANNOT_CHECK]
    if problems:
        errors.add(field, problems[0])
    elif confirm_field is not None and normalise_password(password_field(form, confirm_field)) != normalise_password(
        password
    ):
        errors.add(confirm_field, "The passwords do not match. Enter the same password twice")
    return password


def date_from_parts(
    errors: FormErrors, form: MultiDict, prefix: str, *, label: str, today: date
) -> tuple[date | None, dict[str, str]]:
    """Read an NHS date input (`prefix-day`, `prefix-month`, `prefix-year`). Returns the date (or None) and
    the values typed, so the form can be shown again with them."""
    parts = {part: text(form, f"{prefix}-{part}", limit=4) for part in ("day", "month", "year")}
    if not any(parts.values()):
        errors.add(f"{prefix}-day", f"Enter your {label}")
        return None, parts
    missing = [part for part in ("day", "month", "year") if not parts[part]]
    if missing:
        errors.add(f"{prefix}-{missing[0]}", f"Your {label} must include a {missing[0]}")
        return None, parts
    if not all(value.isascii() and value.isdigit() for value in parts.values()) or len(parts["year"]) != 4:
        errors.add(f"{prefix}-day", f"Your {label} must be a real date, like 15 3 1984")
        return None, parts
    try:
        value = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except ValueError:
        errors.add(f"{prefix}-day", f"Your {label} must be a real date, like 15 3 1984")
        return None, parts
    if value > today:
        errors.add(f"{prefix}-day", f"Your {label} must be in the past")
        return None, parts
    if value.year < 1890:
        errors.add(f"{prefix}-year", f"Your {label} must be after 1890")
        return None, parts
    return value, parts
