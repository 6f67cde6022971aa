"""The forms of the sign-in journey and the account-security pages, shared by patients and staff (see
core.auth_views), one class per form.

Field names are the names the pages have always posted (`current-password`, `recovery-code`...); ids are what
the error summary links to. Passwords are kept exactly as typed (`core.forms.bounded_password`); new ones are
checked by `core.forms.check_new_password` with the account's email address and names, which the view gives
the form. Which code or password is right is for the services in core to say, never for a form.
"""

from __future__ import annotations

from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, ValidationError

from core.forms import PortalForm, bounded_password, check_new_password, new_password_field
from core.services import totp

EMAIL_LIMIT = 320
# One message per cause. A wrong code and one already used share a message: telling them apart would confirm
# to someone guessing that a code they saw (over a shoulder, say) was right.
CODE_MESSAGES = {
    totp.EMPTY: "Enter the 6-digit security code from your authenticator app",
    totp.MALFORMED: "The security code must be 6 numbers, like 123456",
    "wrong": "This security code is wrong or has already been used. Enter the code your authenticator app shows now",
}
RECOVERY_CODE_MESSAGES = {
    totp.EMPTY: "Enter one of your recovery codes",
    totp.MALFORMED: "A recovery code is 16 letters and numbers, like ABCD-EFGH-JKLM-NPQR",
    "wrong": "This recovery code is wrong or has already been used. Each code works once",
}


def code_message(raw: object) -> str:
    """The message for a security code that was refused: empty, not 6 digits, or wrong (or already used)."""
    return CODE_MESSAGES[totp.code_problem(raw) or "wrong"]


def recovery_code_message(raw: object) -> str:
    """The message for a recovery code that was refused: empty, not the shape of one, or wrong (or used)."""
    return RECOVERY_CODE_MESSAGES[totp.recovery_code_problem(raw) or "wrong"]


def _password(name: str = "password", message: str | None = None) -> PasswordField:
    validators = [InputRequired(message)] if message else []
    return PasswordField(name=name, id=name, filters=[bounded_password], validators=validators)


def _email() -> StringField:
    return StringField(name="email", id="email", default="", filters=[lambda value: (value or "")[: EMAIL_LIMIT + 1]])


def _code() -> StringField:
    return StringField(name="code", id="code", default="")


class SignInForm(PortalForm):
    """Email address and password. Whether they match is the service's answer, shown against the email
    address (the first field) in one message that says neither which was wrong."""

    main_field = "email"
    email = _email()
    password = _password()


class CodeForm(PortalForm):
    """A security code from the authenticator app: at sign-in, or confirming a new authenticator."""

    main_field = "code"
    code = _code()


class RecoveryCodeForm(PortalForm):
    main_field = "recovery_code"
    recovery_code = StringField(name="recovery-code", id="recovery-code", default="")


class ReauthenticateForm(PortalForm):
    """Password and a current code. A field left empty, or a code that cannot be one, is said so before
    anything is checked; a wrong password and a wrong code then share one message, against the password."""

    main_field = "password"
    password = _password(message="Enter your password")
    code = _code()

    def validate_code(self, field) -> None:
        if totp.code_problem(field.data):
            raise ValidationError(code_message(field.data))


class PasswordForm(PortalForm):
    """The account's password, to confirm an action (signing out other devices, confirming the email address)."""

    main_field = "password"
    password = _password()


class ForgotPasswordForm(PortalForm):
    main_field = "email"
    email = StringField(name="email", id="email", default="", validators=[DataRequired("Enter your email address")])


class OwnedPasswordForm(PortalForm):
    """A form with a new password: the view names whose password it is (`email`, `names`, `staff`), for the
    password policy (`check_new_password`, called from `validate`)."""

    def __init__(self, *args, email: str = "", names: tuple[str, ...] = (), staff: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = {"email": email, "names": names, "staff": staff}


class NewPasswordForm(OwnedPasswordForm):
    """A new password and its confirmation (a reset, or an invited member of staff's first password). The view
    names whose password it is (`email`, `names`, `staff`), for the password policy."""

    main_field = "password"
    password = new_password_field()
    confirm_password = new_password_field("confirm-password")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        return check_new_password(self, **self.owner) and valid


class ChangePasswordForm(OwnedPasswordForm):
    """The current password, and a new one with its confirmation. The service says whether the current
    password is right; a refusal names the field."""

    main_field = "current_password"
    current_password = _password("current-password", "Enter your current password")
    new_password = new_password_field("new-password")
    confirm_password = new_password_field("confirm-password")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        return check_new_password(self, field="new_password", **self.owner) and valid
