"""The staff pages' forms, one class per form (the request action pages' forms are in admin.request_forms).

Each form carries validation and wording only; the services in core decide the rest and name the field a
refusal belongs to (core.services.errors.ServiceError). Field names are the names the pages have always
posted (`received-via`, `practice-name`...), so bookmarks and tests keep working; ids are what the error
summary links to. Every text value is trimmed and in composed Unicode (NFC) before any validator sees it
(core.forms.PortalForm), and a form reads only the fields it declares: anything else posted is ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask_wtf.file import FileField, FileRequired
from wtforms import Field, HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError

from admin.request_forms import ChosenFrom
from core.forms import CallDetailsFields, DateInputField, DateWording, PortalForm, YesField
from core.models.accounts import STAFF_ROLES
from core.models.requests import DIRECTIONS, FORMATS, RECEIVED_VIA
from core.services import requests as requests_service
from core.services.content import MAX_SOURCE_LENGTH, MAX_SUMMARY_LENGTH
from core.services.email import looks_like_email
from core.services.register import parse_nhs_number
from core.services.requests import LONDON
from core.services.settings import CONFIRM_FOUR_EYES_OFF

OFFLINE_VIA = {key: label for key, label in RECEIVED_VIA.items() if key != "online"}
NHS_NUMBER_FORMAT = "Enter a valid NHS number. It is 10 digits, like 485 777 3456"
TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3])[:.]([0-5]\d)")


# ---------------------------------------------------------------------------------------------------------
# Fields and validators the staff forms share
# ---------------------------------------------------------------------------------------------------------


def too_long(limit: int) -> str:
    return f"Enter no more than {limit:,} characters"


def cut(limit: int):
    """A filter keeping the first `limit` characters: a bound on what is read of a value the service checks
    itself (over-long ones are kept long enough for its "too long" message), or of a search, where a longer value
    is no error."""
    return lambda value: value[:limit] if isinstance(value, str) else value


class AskedWhen:
    """Validate the field only when another field has one of the given values (the follow-up questions of a
    radio answer); otherwise it is not asked, and nothing about it is checked."""

    def __init__(self, other: str, *values: str) -> None:
        self.other, self.values = other, values

    def __call__(self, form, field: Field) -> None:
        if form[self.other].data not in self.values:
            field.errors[:] = []
            raise StopValidation()


STAFF_DATE = dict(
    empty="Enter the {label}",
    missing="The {label} must include a {part}",
    not_real="The {label} must be a real date, like 15 3 1984",
    future="The {label} must be today or in the past",
    too_early="The {label} must be after 1890",
)


def staff_date(*, name: str, what: str, required: bool = True, **kwargs) -> DateInputField:
    """An NHS date input on a staff page (core.forms.DateInputField), worded for staff ("Enter the date
    received") and checked against the practice's today."""
    wording = DateWording(what, **STAFF_DATE)
    return DateInputField(
        name=name, wording=wording, today=lambda: requests_service.practice_today(), required=required, **kwargs
    )


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


def _text(name: str, limit: int, *, required: str | None = None, area: bool = False, validators=()):
    checks = [*validators, *([DataRequired(required)] if required else []), Length(max=limit, message=too_long(limit))]
    return (TextAreaField if area else StringField)(name=name, id=name, validators=checks)


# ---------------------------------------------------------------------------------------------------------
# Requests: the queue's search, logging a request received offline, attaching a recording
# ---------------------------------------------------------------------------------------------------------


class QueueSearchForm(PortalForm):
    """The queue's search box (by POST, so that an NHS number never reaches an address)."""

    q = StringField(name="q", id="q", filters=[cut(100)])


class OfflineRequestForm(CallDetailsFields, PortalForm):
    """A request received by letter, phone, email or at the desk. The follow-up questions of each radio answer
    are checked only for that answer (`AskedWhen`). The service checks the dates and the choices again and names
    the field it refuses (core.services.requests.log_offline_request)."""

    main_field = "received_via"
    received_via = RadioField(
        name="received-via",
        choices=_choices(OFFLINE_VIA),
        validate_choice=False,
        validators=[ChosenFrom("Select how the request was received")],
    )
    received_on = staff_date(name="received", what="date the request was received")
    requester = RadioField(
        name="requester",
        choices=[SelectChoice("registered", "Yes"), SelectChoice("unregistered", "No")],
        validate_choice=False,
        validators=[ChosenFrom("Select whether the patient has an account on the portal")],
    )
    patient_nhs_number = _text(
        "patient-nhs-number",
        20,
        required="Enter the patient's NHS number",
        validators=[AskedWhen("requester", "registered")],
    )
    requester_name = _text(
        "requester-name",
        200,
        required="Enter the name of the person making the request",
        validators=[AskedWhen("requester", "unregistered")],
    )
    requester_nhs_number = _text("requester-nhs-number", 20, validators=[AskedWhen("requester", "unregistered")])
    requester_date_of_birth = staff_date(
        name="requester-dob", what="date of birth", required=False, validators=[AskedWhen("requester", "unregistered")]
    )
    requester_contact = _text(
        "requester-contact",
        500,
        required="Enter how the practice can contact them about the request",
        area=True,
        validators=[AskedWhen("requester", "unregistered")],
    )
    identity_checked = RadioField(
        name="identity-checked",
        choices=[SelectChoice("yes", "Yes"), SelectChoice("no", "No, not yet")],
        validate_choice=False,
        validators=[ChosenFrom("Select whether the requester's identity has been checked")],
    )
    identity_confirmed_on = staff_date(
        name="identity-date", what="date identity was checked", validators=[AskedWhen("identity_checked", "yes")]
    )
    calls_from = staff_date(name="calls-from", what="date of the calls")
    calls_to = staff_date(name="calls-to", what="last date of the calls", required=False)
    approximate_time = _text("approximate-time", 100)
    phone_number = _text("phone-number", 30)
    spoke_to = _text("spoke-to", 200)
    description = _text("description", 5000, area=True)
    preferred_format = RadioField(
        name="format",
        choices=_choices(FORMATS),
        default="download",
        validate_choice=False,
        validators=[ChosenFrom("Select how the patient would like to receive the recordings")],
    )
    share_with_nhs_england = YesField(name="share-with-nhs-england")

    patient = None  # the account the NHS number found, once validated

    def validate_patient_nhs_number(self, field: Field) -> None:
        nhs_number = parse_nhs_number(field.data)
        if nhs_number is None:
            raise ValidationError(NHS_NUMBER_FORMAT)
        found = requests_service.patients_with_nhs_number(nhs_number)
        if not found:
            raise ValidationError(
                "No patient account has this NHS number. Check it, or log the request for someone who is "
                "not registered on the portal"
            )
        if len(found) > 1:
            raise ValidationError(
                "More than one patient account has this NHS number. Find the right one on the patients page "
                "and ask an admin to deactivate the other, or log the request as not registered"
            )
        self.patient = found[0]

    def validate_requester_nhs_number(self, field: Field) -> None:
        if field.data and parse_nhs_number(field.data) is None:
            raise ValidationError(NHS_NUMBER_FORMAT)

    def validate_calls_to(self, field: Field) -> None:
        if field.data and self.calls_from.data and field.data < self.calls_from.data:
            raise ValidationError("The last date of the calls must be on or after the first date")

    def offline_request(self) -> requests_service.OfflineRequest:
        """What a valid form asks the service to log."""
        details = self.call_details()
        requester = {}
        if self.requester.data == "unregistered":
            nhs_number = self.requester_nhs_number.data
            requester = {
                "requester_name": self.requester_name.data,
                "requester_nhs_number": parse_nhs_number(nhs_number) if nhs_number else None,
                "requester_date_of_birth": self.requester_date_of_birth.data,
                "requester_contact": self.requester_contact.data,
            }
        return requests_service.OfflineRequest(
            received_via=self.received_via.data,
            received_on=self.received_on.data,
            details=details,
            patient=self.patient if self.requester.data == "registered" else None,
            identity_confirmed_on=self.identity_confirmed_on.data if self.identity_checked.data == "yes" else None,
            **requester,
        )


class UploadForm(PortalForm):
    """Attaching a recording. The file's size is limited before the form is read, and its type is checked from
    its bytes by the service (core.services.recordings.attach_recording), which names this form's file field.
    The date and time of the call are optional, but together: a date alone would store a made-up time."""

    main_field = "recording"
    recording = FileField(name="recording", id="recording", validators=[FileRequired("Select a recording to upload")])
    call_date = staff_date(name="call-date", what="date of the call", required=False)
    call_time = StringField(name="call-time", id="call-time", filters=[cut(6)])
    caller_number = StringField(name="caller-number", id="caller-number", filters=[cut(30)])
    direction = RadioField(
        name="direction",
        choices=_choices(DIRECTIONS),
        validate_choice=False,
        validators=[ChosenFrom("Select who made the call")],
    )

    def validate_call_date(self, field: Field) -> None:
        if field.data is None and self.call_time.data:
            raise ValidationError("Enter the date of the call, or leave the time empty")

    def validate_call_time(self, field: Field) -> None:
        if self.call_date.data is None:
            return  # nothing asked, or the date's own message says what to do
        if not field.data:
            raise ValidationError("Enter the time of the call, like 14:05, or leave the date empty")
        if TIME_OF_DAY.fullmatch(field.data) is None:
            raise ValidationError("Enter the time of the call in 24-hour time, like 14:05")

    def call_started_at(self) -> datetime | None:
        """The start of the call in UTC, when both its date and time were given."""
        day, match = self.call_date.data, TIME_OF_DAY.fullmatch(self.call_time.data or "")
        if day is None or match is None:
            return None
        hour, minute = int(match.group(1)), int(match.group(2))
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


class IdentityForm(PortalForm):
    """Confirming the identity of a requester without an account: the day it was checked."""

    main_field = "identity_date"
    identity_date = staff_date(name="identity-date", what="date identity was checked")


# ---------------------------------------------------------------------------------------------------------
# Complaints, patients and staff
# ---------------------------------------------------------------------------------------------------------


class AcknowledgeComplaintForm(PortalForm):
    """The acknowledgement of a complaint; the service checks that it is there."""

    message = TextAreaField(name="message", filters=[cut(5000)])


class PatientSearchForm(PortalForm):
    q = StringField(name="q", id="q", filters=[cut(320)])


class VerifyIdentityForm(PortalForm):
    """How a patient's identity was checked; the service checks the method and the note."""

    main_field = "method"
    method = StringField(name="method", id="method", filters=[cut(20)])
    note = TextAreaField(name="note", id="note", filters=[cut(500)])


class RejectIdentityForm(PortalForm):
    main_field = "reason"
    reason = TextAreaField(name="reason", id="reason", filters=[cut(500)])


class PhotoIdCheckedForm(PortalForm):
    photo_id_checked = YesField(
        name="photo-id-checked",
        id="photo-id-checked",
        validators=[DataRequired("Confirm that you have checked the patient's photo ID in person")],
    )


class InviteStaffForm(PortalForm):
    """Inviting a member of staff. A refusal from the service (an address already in use) is about the email."""

    trim_full_stop = False  # its messages are shown as the service wrote them, full stop and all

    main_field = "email"
    name = StringField(
        name="name",
        id="name",
        validators=[
            DataRequired("Enter the person's full name"),
            Length(max=200, message="Name must be 200 characters or fewer"),
        ],
    )
    email = StringField(name="email", id="email", filters=[cut(321)])
    role = RadioField(
        name="role",
        choices=[SelectChoice(role, role.capitalize()) for role in STAFF_ROLES],
        default="staff",
        validate_choice=False,
        validators=[ChosenFrom("Select a role")],
    )
    clinician = YesField(name="clinician", id="clinician")

    def validate_email(self, field: Field) -> None:
        if not looks_like_email(field.data):
            raise ValidationError("Enter an email address in the correct format, like name@example.com")


class StaffRoleForm(PortalForm):
    """Changing a role; the service checks it is one."""

    role = StringField(name="role", id="role", filters=[cut(16)])


class StaffResetAuthenticatorForm(PortalForm):
    identity_checked = YesField(
        name="identity-checked",
        id="identity-checked",
        validators=[DataRequired("Confirm that you have checked who they are in person")],
    )


# ---------------------------------------------------------------------------------------------------------
# The notice editor and the practice settings
# ---------------------------------------------------------------------------------------------------------


class NoticeEditorForm(PortalForm):
    """The notice editor's text. The service checks every field and names those at fault (ContentError); a
    value over its limit comes back whole with the message, not cut short."""

    trim_full_stop = False  # its messages are shown as the service wrote them, full stop and all

    main_field = "source"
    title = StringField(name="title", id="title", filters=[cut(400)])
    source = TextAreaField(name="source", id="source", filters=[cut(2 * MAX_SOURCE_LENGTH)])
    change_summary = StringField(name="change-summary", id="change-summary", filters=[cut(2 * MAX_SUMMARY_LENGTH)])
    action = HiddenField(name="action")  # the button pressed: preview, draft or publish

    def text(self) -> dict[str, str]:
        """The text as the content services take it."""
        return {
            "title": self.title.data or "",
            "source_text": self.source.data or "",
            "change_summary": self.change_summary.data or "",
        }


def _setting(name: str):
    """A setting's field: posted and shown under the setting's name in kebab case (the service checks it)."""
    return StringField(name=name.replace("_", "-"), id=name.replace("_", "-"), filters=[cut(400)])


class SettingsForm(PortalForm):
    """The practice settings, named as the settings are (SettingsError names them so); `version` is the version
    the form was opened on, so that a save over someone else's is noticed."""

    trim_full_stop = False  # its messages are shown as the service wrote them, full stop and all

    main_field = "practice_name"
    version = HiddenField(name="version", filters=[cut(12)])
    practice_name = _setting("practice_name")
    practice_address = _setting("practice_address")
    practice_phone = _setting("practice_phone")
    practice_email = _setting("practice_email")
    public_base_url = _setting("public_base_url")
    release_link_days = _setting("release_link_days")
    release_max_downloads = _setting("release_max_downloads")
    release_four_eyes = _setting("release_four_eyes")
    confirm_four_eyes_off = _setting(CONFIRM_FOUR_EYES_OFF)
    purge_after_days = _setting("purge_after_days")
    recordings_kept_months = _setting("recordings_kept_months")
    registration_key_days = _setting("registration_key_days")
    redaction_fill = _setting("redaction_fill")

    def expected_version(self) -> int | None:
        version = self.version.data or ""
        return int(version) if version.isascii() and version.isdigit() and len(version) <= 9 else None

    def settings_values(self, names) -> dict[str, str]:
        return {name: self[name].data or "" for name in names}
