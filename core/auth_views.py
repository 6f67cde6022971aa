"""The sign-in pages, one blueprint registered inside both areas: the portal (patients) under /account and
the admin area (staff). Each view reads which area it is in from the request's blueprint (`current_journey`).

Password step, code step, recovery code, authenticator set-up, confirm-it-is-you, change password, sign out
other devices, forgotten password, reset and sign out. The endpoints are named as the area's own
(`portal.sign_in`, `admin.sign_in`): the rate limits count per endpoint, and url_for, the guards and the tests
use these names. Only the URLs, the templates' wording and where each journey ends differ. Every form reads
only the fields it names.

Flask-Login's `current_user` is the account signed in with both factors (core.auth); `login_required` marks
the pages that need it (the areas' guards refuse the rest first). The pending stages (password done, or an
authenticator to set up) are `g.pending_account`, and each sign-in step checks the exact stage it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, g, make_response, redirect, render_template, request, url_for
from flask.sansio.blueprints import BlueprintSetupState
from flask_login import login_required, logout_user

from core.auth import (
    begin_sign_in,
    complete_sign_in,
    current_session,
    forget_link_token,
    fresh_second_factor_required,
    is_fresh,
    link_token,
    login_manager,
    note_code_failure,
    safe_next_path,
    signed_in,
)
from core.auth_forms import (
    ChangePasswordForm,
    CodeForm,
    ForgotPasswordForm,
    NewPasswordForm,
    PasswordForm,
    ReauthenticateForm,
    RecoveryCodeForm,
    SignInForm,
    code_message,
    recovery_code_message,
)
from core.auth_limits import (
    email_address_limit,
    guess_ip_limit,
    guessable,
    reset_ip_limit,
    sign_in_account_limit,
)
from core.auth_pages import (
    JOURNEYS,
    Journey,
    codes_kept_for_download,
    current_journey,
    form_page,
    link_invalid,
    open_emailed_link,
    recovery_codes_file,
    show_recovery_codes,
)
from core.forms import FormErrors, PortalForm
from core.services import accounts, totp
from core.services.passwords import verify_password
from core.services.tokens import RESET_PASSWORD, SET_UP_AGAIN, peek_token

SIGN_IN_FAILED = "Enter a correct email address and password"
TOO_MANY_CODES = "You entered too many incorrect codes. Sign in again."
SET_UP_KEY_EXPIRED = (
    "The set-up key expired after 30 minutes, so here is a new one. "
    "Add it to your authenticator app, then enter the code the app shows"
)
REAUTHENTICATION_FAILED = "Enter your password and a current security code from your authenticator app"


class AreaBlueprint(Blueprint):
    """A blueprint registered inside an area's blueprint whose endpoints are named as the area's own
    (`portal.sign_in`, not `portal.sign_in_pages.sign_in`), so that `request.blueprint` is the area. Its own
    request hooks would never run: the area registers them (see `forget_recovery_codes_elsewhere`)."""

    def make_setup_state(self, app, options, first_registration=False) -> BlueprintSetupState:
        state = super().make_setup_state(app, options, first_registration)
        state.name, state.name_prefix = state.name_prefix, ""
        return state


bp = AreaBlueprint("sign_in_pages", __name__)


@bp.record
def _register_area(state: BlueprintSetupState) -> None:
    """Registered with `journey=Journey(...)`: remember the area's journey and its sign-in page."""
    journey: Journey = state.options["journey"]
    state.app.extensions.setdefault(JOURNEYS, {})[state.name] = journey
    login_manager.blueprint_login_views[state.name] = f"{state.name}.sign_in"


@login_manager.unauthorized_handler
def send_to_sign_in():
    """A page that needs someone signed in (`login_required`, the areas' guards): on to the area's sign-in page
    (`blueprint_login_views`), coming back to this page afterwards."""
    next_path = safe_next_path(request.full_path.rstrip("?"), prefix=current_journey().area)
    return redirect(url_for(login_manager.blueprint_login_views[request.blueprint], next=next_path))


# For sensitive actions: both factors within the last SESSION_FRESH_MINUTES (SECURITY E12).
fresh_second_factor = fresh_second_factor_required(".reauthenticate")  # this area's own page
# The limits on the second factor, on a password from someone signed in, and (its own count, so that choosing
# a new password that the policy refuses never blocks "confirm it is you") on changing the password.
second_factor_limit = guessable("second-factor")
password_limit = guessable("password")
change_password_limit = guessable("change-password")
BOTH = ["GET", "POST"]


def _mine(journey: Journey, account):
    """The account, if it is the kind this journey is for (a patient never uses the staff sign-in pages)."""
    return account if account is not None and account.kind == journey.kind else None


@bp.route("/sign-in", methods=BOTH)
@guess_ip_limit()
@sign_in_account_limit()
def sign_in():
    journey = current_journey()
    next_path = safe_next_path(request.values.get("next"), prefix=journey.area)
    form = SignInForm()
    errors = FormErrors()
    if form.validate_on_submit():
        outcome = accounts.check_password(journey.kind, form.email.data, form.password.data)
        if outcome.account is not None:
            stage = begin_sign_in(outcome.account)
            if next_path:
                current_session()["next"] = next_path
            return redirect(journey.url("sign_in_code" if stage == "password" else "set_up_authenticator"))
        if outcome.email_unconfirmed:
            return redirect(journey.url("check_email"))
        errors.add(form.email.id, SIGN_IN_FAILED)
    timed_out = current_session().timed_out and request.method == "GET"
    return form_page(
        "shared/auth/sign-in.html", form, errors, journey=journey, next_path=next_path, timed_out=timed_out
    )


def _second_factor_step(
    journey: Journey, form: CodeForm | RecoveryCodeForm, template: str, message, accepts, signed_in
):
    """The step after the password: `accepts(account, value)` checks what was typed in the form's one
    field, and `message(value)` says why it was refused; five refused in one sign-in start it again from
    the password (SECURITY D7), whatever the reason."""
    account = _mine(journey, g.pending_account)
    if account is None or current_session().stage != "password":
        return redirect(journey.url("sign_in"))
    errors = FormErrors()
    if form.validate_on_submit():
        field = form[form.main_field]
        if accepts(account, field.data):
            next_path = current_session().pop("next", None)
            complete_sign_in(account)
            return signed_in(next_path)
        if note_code_failure():
            accounts.record_pending_sign_in_abandoned(account)
            flash(TOO_MANY_CODES)
            return redirect(journey.url("sign_in"))
        errors.add(field.id, message(field.data))
    return form_page(template, form, errors, journey=journey)


@bp.route("/sign-in/code", methods=BOTH)
@guess_ip_limit()
@second_factor_limit
def sign_in_code():
    journey = current_journey()
    return _second_factor_step(
        journey,
        CodeForm(),
        "shared/auth/code.html",
        code_message,
        lambda account, code: accounts.check_second_factor(account, code=code) == "accepted",
        lambda next_path: redirect(safe_next_path(next_path) or url_for(journey.home)),
    )


@bp.route("/sign-in/recovery-code", methods=BOTH)
@guess_ip_limit()
@second_factor_limit
def sign_in_recovery():
    journey = current_journey()

    def signed_in(_next_path):
        flash(
            "You signed in with a recovery code, which cannot be used again. "
            "If you have lost your phone, set up your authenticator app again."
        )
        return redirect(url_for(journey.home))

    return _second_factor_step(
        journey,
        RecoveryCodeForm(),
        "shared/auth/recovery-code.html",
        recovery_code_message,
        lambda account, raw: accounts.check_second_factor(account, recovery_code=raw) == "recovery",
        signed_in,
    )


@bp.route("/authenticator/set-up", methods=BOTH)
@guess_ip_limit()
@second_factor_limit
def set_up_authenticator():
    """First set-up (straight after the password), or a new phone (needs a fresh second factor)."""
    journey = current_journey()
    enrolling = current_session().stage == "enrol"
    account = _mine(journey, g.pending_account if enrolling else signed_in())
    if account is None:
        return redirect(journey.url("sign_in"))
    if enrolling and account.has_authenticator:
        # Set up meanwhile (in another browser): the password alone must not replace it.
        current_session().drop_account()
        return redirect(journey.url("sign_in"))
    if not enrolling and not is_fresh():
        return redirect(journey.url("reauthenticate", next=journey.url("set_up_authenticator")))
    link_missing = not accounts.set_up_link_matches(account, link_token(SET_UP_AGAIN.name))
    if enrolling and accounts.set_up_link_needed(account) and link_missing:
        return render_template("shared/auth/set-up-link-needed.html", journey=journey)
    form = CodeForm()
    errors = FormErrors()
    if form.validate_on_submit():
        expired = totp.pending_has_expired(account)  # finish_enrolment clears an expired key
        try:
            codes = accounts.finish_enrolment(
                account,
                form.code.data,
                keep_session_id=current_session().session_id,
                set_up_link=link_token(SET_UP_AGAIN.name),
            )
        except accounts.AccountError:  # the link was used by a second submission of this form meanwhile
            return link_invalid(journey)
        if codes is not None:
            forget_link_token(SET_UP_AGAIN.name)
            if enrolling:
                complete_sign_in(account)
            else:
                current_session().prove_second_factor(now=datetime.now(UTC))
            return show_recovery_codes(journey, codes)
        errors.add(form.code.id, SET_UP_KEY_EXPIRED if expired else code_message(form.code.data))
    secret = accounts.begin_enrolment(account)
    uri = totp.provisioning_uri(secret, account.email)
    return form_page(
        "shared/auth/set-up-authenticator.html",
        form,
        errors,
        journey=journey,
        replacing=not enrolling,
        secret=secret,
        otpauth_uri=uri,  # a link for the phone showing the page; the QR code for another device
        qr=totp.qr_code(uri),
    )


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    journey = current_journey()
    account = signed_in() or g.pending_account
    if account is not None:
        accounts.record_sign_out(account, reason="signed_out")
    current_session().end()
    logout_user()  # the page below is for someone signed out
    g.account = g.pending_account = None
    response = make_response(render_template("shared/auth/signed-out.html", journey=journey))
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


@bp.route("/confirm-it-is-you", methods=BOTH)
@login_required
@guess_ip_limit()
@second_factor_limit
@password_limit
def reauthenticate():
    """Password and a code again, before a sensitive action (SECURITY E12)."""
    journey = current_journey()
    account = signed_in()
    next_path = safe_next_path(request.values.get("next"), prefix=journey.area) or url_for(journey.home)
    form = ReauthenticateForm()
    errors = FormErrors()
    # A field left empty or a code that cannot be one is said so before anything is checked (the form's
    # validators); a wrong password and a wrong code then share one message, so neither is confirmed alone.
    if form.validate_on_submit():
        matches, _ = verify_password(account.password_hash, form.password.data)
        if matches:
            result = accounts.check_second_factor(account, code=form.code.data, purpose="reauthentication")
        else:
            accounts.record_reauthentication_failure(account)
            result = "invalid"
        if result == "accepted":
            current_session().prove_second_factor(now=datetime.now(UTC))
            return redirect(next_path)
        errors.add(form.password.id, REAUTHENTICATION_FAILED)
    return form_page("shared/auth/reauthenticate.html", form, errors, journey=journey, next_path=next_path)


@bp.route("/recovery-codes/new", methods=BOTH)
@login_required
@fresh_second_factor
def regenerate_recovery_codes():
    journey = current_journey()
    if PortalForm().validate_on_submit():
        codes = accounts.regenerate_recovery_codes(signed_in())
        return show_recovery_codes(journey, codes)
    return render_template("shared/auth/regenerate-recovery-codes.html", journey=journey)


@bp.route("/recovery-codes/download", methods=["POST"])
@login_required
def download_recovery_codes():
    """The codes just shown, as a text file: only in the session that was shown them, within a few minutes
    and before it moves on to another page (a POST, so nothing fetches it by following a link)."""
    journey = current_journey()
    codes = codes_kept_for_download()
    if codes is None:
        flash(
            "For your safety, recovery codes can be downloaded only straight after they are shown. "
            "If you did not save yours, get new ones."
        )
        return redirect(journey.url("regenerate_recovery_codes"))
    return recovery_codes_file(codes)


def _owner(journey: Journey, account) -> dict:
    """Whose new password a form checks (the password policy refuses one made of these)."""
    return {"email": account.email, "names": journey.names(account), "staff": journey.kind == "staff"}


@bp.route("/change-password", methods=BOTH)
@login_required
@guess_ip_limit()
@change_password_limit
def change_password():
    journey = current_journey()
    account = signed_in()
    form = ChangePasswordForm(**_owner(journey, account))
    errors = FormErrors()
    if form.validate_on_submit():
        current, new = form.current_password.data, form.new_password.data
        try:
            accounts.change_password(account, current, new, keep_session_id=current_session().session_id)
        except accounts.AccountError as refused:
            form.add_service_error(errors, refused)
        else:
            current_session().rotate_id()
            flash("Your password has been changed. Any other devices have been signed out.")
            return redirect(url_for(journey.home))
    return form_page("shared/auth/change-password.html", form, errors, journey=journey)


@bp.route("/sign-out-other-devices", methods=BOTH)
@login_required
@guess_ip_limit()
@password_limit
def sign_out_other_devices():
    journey = current_journey()
    form = PasswordForm()
    errors = FormErrors()
    if form.validate_on_submit():
        ended = accounts.sign_out_other_devices(
            signed_in(), form.password.data, keep_session_id=current_session().session_id
        )
        if ended is not None:
            flash("You have signed out of every other device.")
            return redirect(url_for(journey.home))
        errors.add(form.password.id, "Your password is not correct")
    return form_page("shared/auth/sign-out-other-devices.html", form, errors, journey=journey)


@bp.route("/forgot-password", methods=BOTH)
@reset_ip_limit()
@email_address_limit(None, "reset-email")
def forgot_password():
    journey = current_journey()
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(journey.kind, form.email.data)
        return redirect(journey.url("forgot_password_sent"))
    return form_page("shared/auth/forgot-password.html", form, journey=journey)


@bp.route("/forgot-password/check-your-email")
def forgot_password_sent():
    journey = current_journey()
    return render_template("shared/auth/forgot-password-sent.html", journey=journey)


@bp.route("/authenticator/set-up/<token>")
def set_up_link(token: str):
    """The link staff send after removing a lost authenticator: kept in the session, then sign in."""
    journey = current_journey()
    return open_emailed_link(SET_UP_AGAIN, token, f"{journey.blueprint}.sign_in", journey)


@bp.route("/reset-password/<token>")
def reset_password(token: str):
    journey = current_journey()
    return open_emailed_link(RESET_PASSWORD, token, f"{journey.blueprint}.choose_new_password", journey)


@bp.route("/reset-password", methods=BOTH)
def choose_new_password():
    journey = current_journey()
    token = link_token(RESET_PASSWORD.name)
    row = peek_token(RESET_PASSWORD, token)
    account = accounts.get_account(row.account_kind, row.account_id) if row else None
    if account is None or account.kind != journey.kind:
        return link_invalid(journey, RESET_PASSWORD if row is None else None, token)
    form = NewPasswordForm(**_owner(journey, account))
    if form.validate_on_submit():
        forget_link_token(RESET_PASSWORD.name)
        if accounts.reset_password(journey.kind, token, form.password.data) is None:
            return link_invalid(journey)
        current_session().drop_account()
        flash("Your password has been reset. Sign in with your new password and your authenticator app.")
        return redirect(journey.url("sign_in"))
    return form_page("shared/auth/reset-password.html", form, journey=journey)
