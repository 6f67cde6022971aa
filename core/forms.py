"""Reading and checking submitted forms, shared by the patient and staff areas.

Every form is a WTForms class built on `PortalForm` (through Flask-WTF, which brings the CSRF check). Below it
are what those forms share: `new_password_field` and `check_new_password` (a new password and its
confirmation), `DateInputField` (an NHS date input; `read_date` is the one reader of date inputs, which
`date_from_parts` also uses for pages still read by hand, with `text`), `YesField` (a "yes" checkbox) and
`TimestampField` (a time in a recording, "mm:ss.s").

Forms read only the fields they name (an explicit allow-list: extra fields such as `role` or `is_verified`
are never looked at, SECURITY G5). Every value is treated as untrusted text of bounded length. Errors are
collected in `FormErrors`, in the order of the fields on the page, worded as the NHS.UK design system asks
("Enter your date of birth"), and shown both in the error summary and next to the field.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import current_app
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, Field, PasswordField, StringField
from wtforms.utils import unset_value
from wtforms.validators import StopValidation

from core.services.breached import is_breached
from core.services.passwords import MAX_LENGTH, normalise_password, password_problems
from core.services.requests import CallDetails

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
    (`form_id`, the id of the page's <form>). The patient's pages show a service's message as written, full
    stop and all (`trim_full_stop = False`)."""

    main_field: str | None = None
    form_id: str = "action-form"
    trim_full_stop: bool = True  # a service's message is shown without its full stop, as field errors are

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
            errors.add(self.error_anchor(field), str(message).rstrip(".") if self.trim_full_stop else str(message))


def text(form: MultiDict, name: str, *, limit: int = MAX_FIELD_LENGTH) -> str:
    """A text value, trimmed and in composed Unicode (NFC: "e" plus a separate accent becomes "é", as some
    keyboards send it); only the first value if the field is repeated."""
    value = form.get(name, "")
    if not isinstance(value, str):
        return ""
    return unicodedata.normalize("NFC", value[: limit * 4]).strip()[: limit + 1]


def bounded_password(value):
    """A password exactly as typed (no trimming: spaces may be part of it), bounded in length."""
    return value[: MAX_LENGTH * 8] if isinstance(value, str) else ""


def new_password_field(name: str = "password") -> PasswordField:
    """A new password's field: checked by `check_new_password` (from the form's `validate`), not by validators
    of its own, so that the outside breached-password service is asked only about an otherwise valid form."""
    return PasswordField(name=name, id=name, filters=[bounded_password])


def check_new_password(
    form: PortalForm,
    *,
    field: str = "password",
    confirm_field: str | None = "confirm_password",
    email: str | None = None,
    names: tuple[str, ...] = (),
    staff: bool = False,
) -> bool:
    """Validate a form's new password (attribute `field`) and its confirmation (`confirm_field`), adding any
    problem to the field; True when both are fine. Called from the form's `validate`, after its fields.

    The breached-password check runs last, only on a password that passes everything else and when no field
    above it on the page has an error; for `staff` it fails closed when the check cannot be made (see
    core.services.breached)."""
    password = form[field]
    problems = password_problems(password.data or "", email=email, names=names)
    above = itertools.takewhile(lambda each: each is not password, form)
    if not problems and not any(each.errors for each in above):  # only an otherwise complete form is sent out
        breached = is_breached(normalise_password(password.data))
        if breached:
            problems = [BREACHED]
        elif breached is None and staff and current_app.config.get("PWNED_PASSWORDS_URL"):
            problems = [CANNOT_CHECK]
    if problems:
        password.errors = [*password.errors, problems[0]]
        return False
    confirm = form[confirm_field] if confirm_field else None
    if confirm is not None and normalise_password(confirm.data or "") != normalise_password(password.data):
        confirm.errors = [*confirm.errors, "The passwords do not match. Enter the same password twice"]
        return False
    return True


@dataclass(frozen=True)
class DateWording:
    """The messages of an NHS date input, worded for what it asks ({label}, {Label} capitalised, {part})."""

    label: str
    empty: str = "Enter your {label}"
    missing: str = "Your {label} must include a {part}"
    not_real: str = "Your {label} must be a real date, like 15 3 1984"
    future: str = "Your {label} must be in the past"
    too_early: str = "Your {label} must be after 1890"
    earliest_year: int | None = 1890

    def say(self, message: str, part: str = "") -> str:
        return message.format(label=self.label, Label=self.label[:1].upper() + self.label[1:], part=part)


DATE_PARTS = ("day", "month", "year")


def read_date(parts: dict[str, str], wording: DateWording, today: date) -> tuple[date | None, str, str]:
    """The one reader of NHS date inputs: the date the parts (day, month, year) make, or None with the part
    the problem is shown against and the message ("" when nothing was typed: the caller decides whether the
    date was required)."""
    if not any(parts.values()):
        return None, "day", ""
    missing = [part for part in DATE_PARTS if not parts[part]]
    if missing:
        return None, missing[0], wording.say(wording.missing, missing[0])
    try:
        if not all(value.isascii() and value.isdigit() for value in parts.values()) or len(parts["year"]) != 4:
            raise ValueError(parts)
        value = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except ValueError:
        return None, "day", wording.say(wording.not_real)
    if value > today:
        return None, "day", wording.say(wording.future)
    if wording.earliest_year is not None and value.year < wording.earliest_year:
        return None, "year", wording.say(wording.too_early)
    return value, "", ""


def date_from_parts(
    errors: FormErrors, form: MultiDict, prefix: str, *, label: str, today: date
) -> tuple[date | None, dict[str, str]]:
    """Read an NHS date input (`prefix-day`, `prefix-month`, `prefix-year`) from a request's form, for pages
    that do not have a form class. Returns the date (or None) and the values typed, so the form can be shown
    again with them."""
    parts = {part: text(form, f"{prefix}-{part}", limit=4) for part in DATE_PARTS}
    wording = DateWording(label)
    value, part, message = read_date(parts, wording, today)
    if value is None:
        errors.add(f"{prefix}-{part}", message or wording.say(wording.empty))
    return value, parts


class DateInputField(Field):
    """An NHS date input as one field: its parts are posted as `<name>-day`, `<name>-month` and `<name>-year`
    (as templates/shared/fields.html draws them); `data` is the date, `parts` what was typed. An error is
    shown against the part it is about (`error_id`), as the NHS.UK design system asks."""

    def __init__(
        self,
        label=None,
        validators=None,
        *,
        wording: DateWording,
        today: Callable[[], date],
        required: bool = True,
        **kwargs,
    ):
        # The date is read by the last validator, so that one before it (admin.forms.AskedWhen: a follow-up
        # question not asked) can stop it being checked at all.
        super().__init__(label, [*(validators or ()), self._read], **kwargs)
        self.wording, self.today, self.required = wording, today, required
        self.parts = dict.fromkeys(DATE_PARTS, "")
        self.error_id = f"{self.id}-day"

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.process_errors, self.raw_data = [], None
        self.data = None if data is unset_value else data
        if isinstance(self.data, date):
            self.parts = {"day": str(self.data.day), "month": str(self.data.month), "year": str(self.data.year)}
        if formdata is not None:
            self.raw_data = [formdata.get(f"{self.name}-{part}", "") for part in DATE_PARTS]
            self.parts = {
                part: normalise_text(value[:16])[:5] if isinstance(value, str) else ""
                for part, value in zip(DATE_PARTS, self.raw_data, strict=True)
            }
            self.data = None

    def _read(self, form, field) -> None:
        if self.raw_data is None:
            return
        self.data, part, message = read_date(self.parts, self.wording, self.today())
        if self.data is None and (message or self.required):
            self.error_id = f"{self.id}-{part}"
            raise StopValidation(message or self.wording.say(self.wording.empty))


class YesField(BooleanField):
    """A checkbox whose value is "yes": ticked only when exactly that was posted."""

    def process_formdata(self, valuelist):
        self.data = bool(valuelist) and valuelist[0] == "yes"


class CallDetailsFields:
    """A form mixin: what the patient's request form and staff's offline-request form both ask about the calls
    (their dates, a time, the number, who they spoke to, what they were about, the format, the NHS England
    consent), as the service takes it."""

    def call_details(self) -> CallDetails:
        return CallDetails(
            calls_from=self.calls_from.data,
            calls_to=self.calls_to.data or self.calls_from.data,
            approximate_time=self.approximate_time.data,
            phone_number=self.phone_number.data,
            spoke_to=self.spoke_to.data,
            description=self.description.data,
            preferred_format=self.preferred_format.data,
            share_with_nhs_england=self.share_with_nhs_england.data,
        )


# ASCII digits only, as in the date inputs (other scripts' digits are not read as numbers).
TIMESTAMP = re.compile(r"(?:(?:(\d{1,2}):)?(\d{1,3}):)?(\d{1,5})(?:[.,](\d{1,3}))?", re.ASCII)


def parse_timestamp(value: str) -> int | None:
    """A time in a recording as staff type it ("75", "1:15", "01:15.5", "1:01:15.5") in milliseconds, or None
    when it is not one. Seconds (and minutes, after hours) above 59 are refused once a larger unit is given."""
    match = TIMESTAMP.fullmatch(value.replace(" ", ""))
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if (minutes is not None and int(seconds) > 59) or (hours is not None and int(minutes) > 59):
        return None
    total_seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds)
    return total_seconds * 1000 + int((fraction or "0").ljust(3, "0"))


class TimestampField(StringField):
    """A time in a recording, typed as "mm:ss.s" (also "ss", "m:ss" or "h:mm:ss.s"): `data` is what was typed,
    `ms` the time in milliseconds once it validates. `what` names it in the messages ("start", "end")."""

    def __init__(self, label=None, validators=None, *, what: str, **kwargs):
        super().__init__(label, [*(validators or ()), self._read], **kwargs)
        self.what = what
        self.ms: int | None = None

    def _read(self, form, field) -> None:
        self.ms = None
        if not self.data:
            raise StopValidation(f"Enter the {self.what} time")
        self.ms = parse_timestamp(self.data[:20])
        if self.ms is None:
            raise StopValidation(f"Enter the {self.what} time in minutes and seconds, for example 01:23.5")
