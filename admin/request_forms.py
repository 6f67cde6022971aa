"""The forms of the staff request pages, one class per page (GOV.UK "one thing per page").

Each form carries validation and wording only; the services in core decide what the request's state allows.
Field names are the names the pages have always posted (`reason`, `review-outcome`...), so bookmarks and
tests keep working; ids are what the error summary links to. Every text value is trimmed and in composed
Unicode (NFC) before any validator sees it (`RequestForm`).
"""

from __future__ import annotations

from wtforms import BooleanField, Field, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from core.forms import PortalForm, TimestampField
from core.models.redaction import REASON_LABELS, format_timestamp
from core.services import accounts
from core.services.redaction import NOTE_MAX

TEXT_LIMIT = 5000
REASON_LIMIT = 2000


class RequestForm(PortalForm):
    """The base of the request pages' forms (see core.forms.PortalForm)."""


def _text(name: str, message: str, *, limit: int = TEXT_LIMIT, field_id: str | None = None, required: bool = True):
    validators = [DataRequired(message) if required else Optional(), Length(max=limit, message=_too_long(limit))]
    return TextAreaField(name=name, id=field_id or name, validators=validators)


def _too_long(limit: int) -> str:
    return f"Enter no more than {limit:,} characters"


def _confirm(message: str):
    return BooleanField(name="confirm", id="confirm", validators=[DataRequired(message)])


class ChosenFrom:
    """The value must be one of the choices the view set (not the empty "Select..." one), with this message
    (WTForms' own says "Not a valid choice")."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, form, field: Field) -> None:
        if field.data not in {choice.value for choice in field.choices if choice.value}:
            raise ValidationError(self.message)


class ConfirmForm(RequestForm):
    """A page whose only question is the button (start work, put forward for approval)."""


class NoteForm(RequestForm):
    main_field = "note"
    note = _text("note", "Enter the note")


class AssignForm(RequestForm):
    """The select lists the active staff; any staff account passes here, so that the service is the one to
    refuse a deactivated one (with its own message: the account is not active)."""

    main_field = "assignee"
    assignee = SelectField(name="assignee", id="assignee", choices=[], validate_choice=False)

    def validate_assignee(self, field: Field) -> None:
        if field.data and accounts.account_by_public_id("staff", field.data) is None:
            raise ValidationError("Select a member of staff")


class ClarifyForm(RequestForm):
    main_field = "question"
    question = _text("question", "Enter the question for the patient")


class ReplyForm(RequestForm):
    main_field = "reply"
    reply = _text("reply", "Enter the patient's answer")


class ExtendForm(RequestForm):
    main_field = "reason"
    reason = _text("reason", "Enter the reason for the extension. The patient will see it", field_id="extension-reason")


class NoRecordingsForm(RequestForm):
    main_field = "explanation"
    explanation = _text(
        "explanation",
        "Enter the explanation. The patient will see it",
        field_id="no-recordings-explanation",
    )


class CloseForm(RequestForm):
    """Completing a request. The note is required unless the recordings were released (the view says which:
    the service checks it again)."""

    main_field = "note"
    note = _text("note", "", field_id="close-note", required=False)


class RefuseForm(RequestForm):
    main_field = "reason"
    scope = RadioField(
        name="scope",
        id="refusal-scope",
        choices=[
            SelectChoice("part", "Part of the request (the rest stays open)"),
            SelectChoice("all", "All of it (this closes the request)"),
        ],
        validate_choice=False,
        validators=[ChosenFrom("Select whether you are refusing all or part of the request")],
    )
    reason = _text("reason", "Enter the reason for the refusal. The patient will see it", field_id="refusal-reason")
    confirm = _confirm("Confirm that you want to send this refusal to the patient")

    def validate_reason(self, field: Field) -> None:
        if "[" in field.data or "]" in field.data:
            raise ValidationError("Replace the parts in square brackets with the details of this refusal")


class ApproveForm(RequestForm):
    """Approving a release. The clinical review fields are removed by the view when the preparer is a
    clinician (no separate review is needed)."""

    main_field = "reviewer"
    reviewer = SelectField(
        name="reviewer",
        id="reviewer",
        choices=[],
        validate_choice=False,
        validators=[ChosenFrom("Select the clinician who reviewed the recordings")],
    )
    review_outcome = _text(
        "review-outcome", "Enter the outcome of the clinical review", limit=REASON_LIMIT, field_id="review-outcome"
    )


class DeclineForm(RequestForm):
    main_field = "reason"
    reason = _text("reason", "Enter what needs to change before the release can be approved", field_id="decline-reason")
    confirm = _confirm("Confirm that you want to send the release back")


class RevokeForm(RequestForm):
    main_field = "reason"
    reason = _text("reason", "Enter the reason for revoking the link", limit=REASON_LIMIT, field_id="revoke-reason")
    confirm = _confirm("Confirm that you want to stop the link working")


class RemoveRecordingForm(RequestForm):
    main_field = "reason"
    reason = _text("reason", "Enter why the recording is being removed", limit=REASON_LIMIT, field_id="remove-reason")
    confirm = _confirm("Confirm that you want to delete the recording's file")


class RangeForm(RequestForm):
    """A part of a recording to withhold: its start and end (typed, or filled in by dragging on the waveform),
    why, and an optional note for colleagues. The view sets `duration_ms` (the recording's length, when known)
    so an end past it is refused here with the length; the service checks every rule again."""

    main_field = "start"
    duration_ms: int | None = None
    start = TimestampField(name="start", id="range-start", what="start")
    end = TimestampField(name="end", id="range-end", what="end")
    reason = RadioField(
        name="reason",
        id="range-reason",
        choices=[SelectChoice(value, label) for value, label in REASON_LABELS.items()],
        validate_choice=False,
        validators=[ChosenFrom("Select why this part is withheld")],
    )
    note = _text("note", "", limit=NOTE_MAX, field_id="range-note", required=False)

    def validate_end(self, field: Field) -> None:
        if self.start.ms is None or field.ms is None:
            return
        if field.ms <= self.start.ms:
            raise ValidationError("The end must be after the start")
        if self.duration_ms is not None and field.ms > self.duration_ms:
            length = format_timestamp(self.duration_ms)
            raise ValidationError(f"The end must be within the recording (it is {length} long)")

    def validate_start(self, field: Field) -> None:
        if field.ms is not None and self.duration_ms is not None and field.ms >= self.duration_ms:
            length = format_timestamp(self.duration_ms)
            raise ValidationError(f"The start must be within the recording (it is {length} long)")
