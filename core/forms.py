"""Reading and checking submitted forms, shared by the patient and staff areas.

Every form is a WTForms class built on `PortalForm` (through Flask-WTF, which brings the CSRF check). The
helpers below it (`text`, `check_new_password`, `date_from_parts`) are what those forms' validators share.

Forms read only the fields they name (an explicit allow-list: extra fields such as `role` or `is_verified`
are never looked at, SECURITY G5). Every value is treated as untrusted text of bounded length. Errors are
collected in `FormErrors`, in the order of the fields on the page, worded as the NHS.UK design system asks
("Enter your date of birth"), and shown both in the error summary and next to the field.
"""

from __future__ import annotations

import unicodedata
from datetime import date

from flask import current_app
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import PasswordField, StringField

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


def normalise_text(value):
    """Trimmed, composed Unicode ("e" plus a separate accent becomes "é", as some keyboards send it)."""
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value


class PortalForm(FlaskForm):
    """The base of every form: text fields (StringField and its subclasses, TextAreaField among them) are
    stripped and NFC-normalised before any validator sees them. Passwords are kept exactly as typed (spaces may
    be part of one; `core.services.passwords` normalises them its own way).

    `main_field` names the field the page asks for: a refusal from a service that names no field is shown
    against it. A form without fields (a confirmation button) has such a refusal shown against the form itself
    (`form_id`, the id of the page's <form>)."""

    main_field: str | None = None
    form_id: str = "action-form"

    class Meta:
        def bind_field(self, form, unbound_field, options):
            filters = list(unbound_field.kwargs.get("filters", ()))
            kind = unbound_field.field_class
            if issubclass(kind, StringField) and not issubclass(kind, PasswordField):
                filters.insert(0, normalise_text)
            return unbound_field.bind(form=form, filters=filters, **options)

    def error_anchor(self, field: str | None = None) -> str:
        """The id an error belongs to: the named field's (a service names it as the form's attribute or as the
        name it is posted under), else the main field's, else the form's. A field drawn as several inputs (a date)
        says which of them an error links to (`error_id`)."""
        for name in (field, self.main_field):
            bound = (self._fields.get(name) or next((f for f in self if f.name == name), None)) if name else None
            if bound is not None:
                return getattr(bound, "error_id", None) or bound.id
        return self.form_id

    def page_errors(self) -> FormErrors:
        """The first message of each field, keyed by the field's id, in the order of the fields on the page."""
        errors = FormErrors()
        for field in self:
            if field.errors and field.id != "csrf_token":
                errors.add(getattr(field, "error_id", None) or field.id, field.errors[0])
        if self.errors.get("csrf_token"):
            errors.add(self.form_id, "The form had expired. Try again")
        return errors

    def add_service_error(self, errors: FormErrors, exc: Exception) -> None:
        """Show a service's refusal (`core.services.errors.ServiceError`) against each field it names, else
        against the main field."""
        problems = getattr(exc, "problems", None) or {getattr(exc, "field", None): str(exc)}
        for field, message in problems.items():
            errors.add(self.error_anchor(field), str(message).rstrip("."))


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
