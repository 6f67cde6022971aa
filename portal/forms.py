"""The patient's forms, one class per form: creating an account, the registration key, asking for recordings
(with its check page), answering the practice's question, complaining, withdrawing and asking for a new link.
The sign-in and account-security forms are in core.auth_forms.

Field names are the names the pages have always posted (`given-name`, `calls-from-day`...); ids are what the
error summary links to. Text is trimmed and in composed Unicode (NFC) before any validator sees it
(core.forms.PortalForm); a form reads only the fields it names.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime

from wtforms import Field, HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, Optional, StopValidation, ValidationError

from core.forms import (
    CallDetailsFields,
    DateInputField,
    DateWording,
    PortalForm,
    YesField,
    check_new_password,
    new_password_field,
)
from core.models.requests import FORMATS
from core.services import accounts
from core.services import requests as requests_service
from core.services.email import looks_like_email
from core.services.register import normalise_postcode, parse_nhs_number

DESCRIPTION_MAX = 2000
REPLY_MAX = 5000
COMPLAINT_MAX = 5000
PHONE_MAX = 20
APPROXIMATE_TIME_MAX = 100
SPOKE_TO_MAX = 200
PHONE_CHARACTERS = frozenset("0123456789 +")
# Between the letters of a name (in any alphabet, with their accents and vowel signs), a name may have spaces,
# hyphens, dashes, apostrophes and full stops: nothing that could carry a link or a message.
NAME_JOINERS = frozenset(" -\u2010\u2013'\u2019.")


class PatientForm(PortalForm):
    """The base of the patient's forms: a refusal from a service is shown as the service words it."""

    trim_full_stop = False


def _looks_like_a_name(value: str) -> bool:
    if not value or not unicodedata.category(value[0]).startswith("L"):
        return False
    previous = ""
    for char in value:
        if unicodedata.category(char).startswith(("L", "M")):
            pass
        elif char not in NAME_JOINERS:
            return False
        elif char != " " and previous in NAME_JOINERS and previous != " ":
            return False  # two punctuation marks in a row, such as "--" or ".."
        previous = char
    return previous not in NAME_JOINERS or previous == "."


def _looks_like_phone(value: str) -> bool:
    digits = "".join(char for char in value if char.isdigit())
    return set(value) <= set("0123456789 +-()") and 10 <= len(digits) <= 13


def _name(name: str, label: str) -> StringField:
    def check(form, field: Field) -> None:
        if not _looks_like_a_name(field.data):
            raise ValidationError(f"{label.capitalize()} must only include letters, spaces, hyphens and apostrophes")

    return StringField(
        name=name,
        id=name,
        default="",
        validators=[
            DataRequired(f"Enter your {label}"),
            Length(max=100, message=f"{label.capitalize()} must be 100 characters or fewer"),
            check,
        ],
    )


def _text(name: str, *, default: str = "", validators=()) -> StringField:
    return StringField(name=name, id=name, default=default, validators=list(validators))


def one_kind_of_line_break(value):
    """A textarea's text with each line break as one "\\n", counted as one character, as the character count
    on the page counts it."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


def _long_text(name: str, *, limit: int, empty: str, too_long: str) -> TextAreaField:
    return TextAreaField(
        name=name,
        id=name,
        default="",
        filters=[one_kind_of_line_break],
        validators=[DataRequired(empty), Length(max=limit, message=too_long)],
    )


def _utc_today():
    return datetime.now(UTC).date()


def _practice_today():
    return requests_service.practice_today()


class RegisterForm(PatientForm):
    """Creating a patient account. The parsed NHS number, postcode and email address are `nhs_number.parsed`
    and so on once the form is valid."""

    main_field = "given_name"
    given_name = _name("given-name", "first name")
    family_name = _name("family-name", "last name")
    dob = DateInputField(name="dob", id="dob", wording=DateWording("date of birth"), today=_utc_today)
    nhs_number = _text("nhs-number", validators=[DataRequired("Enter your NHS number")])
    postcode = _text("postcode", validators=[DataRequired("Enter your postcode")])
    email = _text("email", validators=[DataRequired("Enter your email address")])
    mobile = _text("mobile", validators=[Optional()])
    password = new_password_field()
    confirm_password = new_password_field("confirm-password")
    terms = YesField(name="terms", id="terms", validators=[DataRequired("Confirm that you agree to the terms of use")])

    def validate_nhs_number(self, field: Field) -> None:
        field.parsed = parse_nhs_number(field.data)
        if field.parsed is None:
            raise ValidationError("Enter a valid NHS number. It is 10 digits, like 485 777 3456")

    def validate_postcode(self, field: Field) -> None:
        field.parsed = normalise_postcode(field.data)
        if field.parsed is None:
            raise ValidationError("Enter a real postcode, like SE28 8BE")

    def validate_email(self, field: Field) -> None:
        field.parsed = accounts.normalise_email(field.data)
        if not field.parsed:
            raise StopValidation("Enter your email address")
        if not looks_like_email(field.parsed):
            raise ValidationError("Enter an email address in the correct format, like name@example.com")

    def validate_mobile(self, field: Field) -> None:
        if not _looks_like_phone(field.data):
            raise ValidationError("Enter a UK mobile number, like 07700 900 982")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        email = accounts.normalise_email(self.email.data or "")
        names = (self.given_name.data or "", self.family_name.data or "")
        return check_new_password(self, email=email, names=names) and valid

    def registration(self) -> accounts.Registration:
        return accounts.Registration(
            given_name=self.given_name.data,
            family_name=self.family_name.data,
            date_of_birth=self.dob.data,
            nhs_number=self.nhs_number.parsed,
            postcode=self.postcode.parsed,
            email=self.email.parsed,
            mobile=self.mobile.data or None,
            password=self.password.data,
        )


class RegistrationKeyForm(PatientForm):
    """The one-time key from the practice. Whether it is right, and for whom, is the service's answer."""

    main_field = "registration_key"
    registration_key = StringField(
        name="registration-key",
        id="registration-key",
        default="",
        filters=[lambda value: value[:65] if value else value],
        validators=[DataRequired("Enter your registration key")],
    )


CALL_DATE = DateWording(
    "date of the call",
    empty="Enter the {label}",
    missing="The {label} must include a {part}",
    not_real="{Label} must be a real date, like 15 3 2026",
    future="The {label} must be today or in the past",
    earliest_year=None,
)
LAST_CALL_DATE = dataclasses.replace(CALL_DATE, label="date of the last call")


def _optional(name: str, label: str, limit: int, *validators) -> StringField:
    too_long = Length(max=limit, message=f"{label} must be {limit:,} characters or fewer")
    return _text(name, validators=[too_long, *validators])


def _phone_number(form, field: Field) -> None:
    value = field.data
    if value and not (set(value) <= PHONE_CHARACTERS and any(char.isdigit() for char in value)):
        raise ValidationError("Enter a phone number using only numbers, spaces and +, like 020 7946 0000")


class RequestDetailsForm(CallDetailsFields, PatientForm):
    """Asking for recordings: which calls, and how the patient wants them. Once valid, the answers are kept for
    the check page (portal.requests)."""

    main_field = "description"
    calls_from = DateInputField(name="calls-from", id="calls-from", wording=CALL_DATE, today=_practice_today)
    calls_to = DateInputField(
        name="calls-to",
        id="calls-to",
        wording=LAST_CALL_DATE,
        today=_practice_today,
        required=False,
    )
    approximate_time = _optional("approximate-time", "Approximate time", APPROXIMATE_TIME_MAX)
    phone_number = _optional("phone-number", "Phone number", PHONE_MAX, _phone_number)
    spoke_to = _optional("spoke-to", "Who you spoke to", SPOKE_TO_MAX)
    description = _long_text(
        "description",
        limit=DESCRIPTION_MAX,
        empty="Enter a description of the calls",
        too_long=f"Description must be {DESCRIPTION_MAX:,} characters or fewer",
    )
    preferred_format = RadioField(
        name="preferred-format",
        id="preferred-format",
        choices=[SelectChoice(value, label) for value, label in FORMATS.items()],
        validate_choice=False,
        validators=[AnyOf(list(FORMATS), message="Select how you would like to get the recordings")],
    )
    share_with_nhs_england = YesField(name="share-with-nhs-england", id="share-with-nhs-england")

    def validate_calls_to(self, field: Field) -> None:
        if self.calls_from.data and field.data and field.data < self.calls_from.data:
            raise ValidationError("The date of the last call must be the same as or after the date of the call")

    def details(self) -> requests_service.CallDetails:
        return self.call_details()


class SubmitRequestForm(PatientForm):
    """The check page's button. It sends only the key of the answers it showed; a refusal is shown against the
    button."""

    form_id = "submit"
    submission_key = HiddenField(name="submission-key", id="submission-key", default="", filters=[lambda v: v or ""])


class ReplyForm(PatientForm):
    """The patient's answer to the practice's question."""

    main_field = "answer"
    answer = _long_text(
        "answer",
        limit=REPLY_MAX,
        empty="Enter your answer",
        too_long=f"Your answer must be {REPLY_MAX:,} characters or fewer",
    )


class ComplaintForm(PatientForm):
    main_field = "complaint"
    complaint = _long_text(
        "complaint",
        limit=COMPLAINT_MAX,
        empty="Enter your complaint",
        too_long=f"Your complaint must be {COMPLAINT_MAX:,} characters or fewer",
    )


class WithdrawForm(PatientForm):
    """Withdrawing a request: only the button. A refusal is shown against it."""

    form_id = "withdraw"


class NewLinkForm(PatientForm):
    """Asking for a new download link: only the button. A refusal is shown where the button was."""

    form_id = "new-link"
