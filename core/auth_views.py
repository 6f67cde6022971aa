"""The sign-in journey and account-security pages, written once for patients and staff.

`add_auth_views(bp, kind=...)` adds the same views to the portal (patients) and admin (staff) blueprints:
password step, code step, recovery code, authenticator set-up, confirm-it-is-you, change password, sign out
other devices, forgotten password, reset and sign out. Only the URLs, the templates' wording and where each
journey ends differ. Every form reads only the fields it names.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from core import crypto
from core.auth import (
    begin_sign_in,
    complete_sign_in,
    current_session,
    follow_emailed_link,
    forget_link_token,
    fresh_second_factor_required,
    is_fresh,
    link_token,
    note_code_failure,
    safe_next_path,
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
from core.extensions import limiter
from core.forms import FormErrors, PortalForm, text
from core.limits import configured_limit, on_breach
from core.services import accounts, totp
from core.services.passwords import verify_password
from core.services.settings import practice_settings
from core.services.tokens import RESET_PASSWORD, SET_UP_AGAIN, peek_token, token_has_expired

SIGN_IN_FAILED = "Enter a correct email address and password"
TOO_MANY_CODES = "You entered too many incorrect codes. Sign in again."
SET_UP_KEY_EXPIRED = (
    "The set-up key expired after 30 minutes, so here is a new one. "
    "Add it to your authenticator app, then enter the code the app shows"
)
REAUTHENTICATION_FAILED = "Enter your password and a current security code from your authenticator app"


@dataclass(frozen=True)
class Journey:
    kind: str  # "patient" or "staff"
    blueprint: str  # "portal" or "admin"
    home: str  # endpoint to land on after signing in
    prefix: str  # URL prefix of the account pages within the blueprint
    area: str  # the part of the site a `next` address after sign-in may point into

    def url(self, view: str, **values) -> str:
        return url_for(f"{self.blueprint}.{view}", **values)

    def names(self, account) -> tuple[str, ...]:
        return (account.given_name, account.family_name) if self.kind == "patient" else tuple(account.name.split())


def email_address_limit(kind: str, scope: str):
    """At most a few emails a day to one address from forms anyone can fill in (registration, forgotten
    password), so nobody can use the portal to flood someone's inbox. Only a form that was accepted (and so
    sent an email) counts."""
    return limiter.limit(
        configured_limit("EMAILS_TO_ONE_ADDRESS"),
        key_func=_account_key(kind),
        scope=scope,
        methods=["POST"],
        deduct_when=lambda response: response.status_code == 302,
        on_breach=on_breach("email"),
    )


def _account_key(kind: str):
    """The per-account limit's key: a hash of the normalised email, so whatever was typed (even a password in
    the wrong box) never reaches the limiter's log lines or its store's key names."""

    def key() -> str:
        email = accounts.normalise_email(text(request.form, "email", limit=320))
        return f"{kind}:" + hashlib.sha256(email.encode()).hexdigest()[:32]

    return key


def _account_of_session() -> str:
    return f"{current_session().account_kind}:{current_session().account_id}"


def _guessable(scope: str):
    """The limit on forms that take a code or a password from someone (part-)signed-in: one count per
    account and scope, shared by the patient and staff pages (`shared_limit`), so moving to the other sign-in
    pages, or to "confirm it is you", gives no extra guesses."""
    return limiter.shared_limit(
        configured_limit("CODE"),
        scope=scope,
        key_func=_account_of_session,
        methods=["POST"],
        on_breach=on_breach("code"),
    )


# The one per-IP count shared by every form that takes a password or a code (SECURITY C2): patient and staff
# sign-in, the code and recovery-code pages, confirm-it-is-you, changing the password, signing out other
# devices, confirming the email address and entering a registration key. Counted per page, an address would
# get the limit again on each page it moved to.
GUESS_IP_SCOPE = "password-or-code-by-ip"


def guess_ip_limit():
    """The shared per-IP limit (RATELIMIT_SIGN_IN_IP) on a password or code form's POSTs."""
    return limiter.shared_limit(
        configured_limit("SIGN_IN_IP"), scope=GUESS_IP_SCOPE, methods=["POST"], on_breach=on_breach("ip")
    )


def guessable(scope: str):
    """The per-account limit on a form that takes a code, a key or a password from a signed-in (or part
    signed-in) account (see `_guessable`), for views outside the sign-in journey."""
    return _guessable(scope)


def form_page(template: str, form: PortalForm, errors: FormErrors | None = None, **context) -> tuple[str, int]:
    """A form's page, with the form's own errors after `errors` (a service's refusals): status 400 if any."""
    errors = errors if errors is not None else FormErrors()
    for field_id, message in form.page_errors().items():
        errors.add(field_id, message)
    return render_template(template, form=form, errors=errors, **context), 400 if errors else 200


# Recovery codes can be downloaded only straight after they are shown, in the same session: kept encrypted in
# the server-side session (never in plain text), for this long, and forgotten at the next page of the area.
RECOVERY_CODES_KEY = "recovery-codes"
RECOVERY_CODES_DOWNLOAD_WINDOW = timedelta(minutes=10)
RECOVERY_CODES_FILENAME = "recovery-codes.txt"


def show_recovery_codes(journey: Journey, codes: list[str]):
    """The page that shows new recovery codes once, keeping them (encrypted) for its download button."""
    kept = {"codes": codes, "shown_at": datetime.now(UTC).isoformat()}
    current_session()[RECOVERY_CODES_KEY] = crypto.encrypt(crypto.RECOVERY_CODES, json.dumps(kept))
    return render_template("shared/auth/recovery-codes.html", codes=codes, journey=journey)


def _codes_kept_for_download() -> list[str] | None:
    stored = current_session().get(RECOVERY_CODES_KEY)
    if not isinstance(stored, str):
        return None
    try:
        kept = json.loads(crypto.decrypt(crypto.RECOVERY_CODES, stored))
        shown_at = datetime.fromisoformat(kept["shown_at"])
        codes = [code for code in kept["codes"] if isinstance(code, str)]
    except (crypto.DecryptionError, ValueError, KeyError, TypeError):
        return None
    if datetime.now(UTC) - shown_at > RECOVERY_CODES_DOWNLOAD_WINDOW:
        return None
    return codes


def recovery_codes_file(codes: list[str]) -> Response:
    """The codes as a text file to keep: an attachment that no browser or proxy stores, and that runs nothing."""
    lines = [
        f"Recovery codes for your {practice_settings().practice_name} account ({current_app.config['SERVICE_NAME']}).",
        "Each code works once. Keep them safe and share them with nobody.",
        "",
        *(f"{number}. {code}" for number, code in enumerate(codes, start=1)),
        "",
    ]
    response = make_response("\r\n".join(lines))
    response.mimetype = "text/plain"  # sent as "text/plain; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{RECOVERY_CODES_FILENAME}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def link_invalid(journey: Journey, purpose=None, token: str | None = None):
    """The answer to a link that is forged, expired, used or cancelled: "This link does not work" (404).

    Given the link's `purpose` and `token`, a genuine link whose time ran out says so, and how long links
    last; a forged, used or cancelled one gets the general wording."""
    expired_after = None
    if purpose is not None and token and token_has_expired(purpose, token):
        hours = int(purpose.lifetime.total_seconds() // 3600)
        expired_after = f"{hours} hour" if hours == 1 else f"{hours} hours"
    return render_template("shared/auth/link-invalid.html", journey=journey, expired_after=expired_after), 404


def open_emailed_link(purpose, token: str, form_endpoint: str, journey: Journey):
    """The GET of a link from an email: "This link does not work" (404), or on to its token-less form page."""
    row = peek_token(purpose, token)
    if row is None or row.account_kind != journey.kind:
        return link_invalid(journey, purpose if row is None else None, token)
    return follow_emailed_link(purpose.name, token, form_endpoint)


def _mine(journey: Journey, account):
    """The account, if it is the kind this journey is for (a patient never uses the staff sign-in pages)."""
    return account if account is not None and account.kind == journey.kind else None


def sign_in(journey: Journey):
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


def sign_in_code(journey: Journey):
    return _second_factor_step(
        journey,
        CodeForm(),
        "shared/auth/code.html",
        code_message,
        lambda account, code: accounts.check_second_factor(account, code=code) == "accepted",
        lambda next_path: redirect(safe_next_path(next_path) or url_for(journey.home)),
    )


def sign_in_recovery(journey: Journey):
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


def set_up_authenticator(journey: Journey):
    """First set-up (straight after the password), or a new phone (needs a fresh second factor)."""
    enrolling = current_session().stage == "enrol"
    account = _mine(journey, g.pending_account if enrolling else g.account)
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


def sign_out(journey: Journey):
    account = g.account or g.pending_account
    if account is not None:
        accounts.record_sign_out(account, reason="signed_out")
    current_session().end()
    g.account = g.pending_account = None  # the page below is for someone signed out
    response = make_response(render_template("shared/auth/signed-out.html", journey=journey))
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


def reauthenticate(journey: Journey):
    """Password and a code again, before a sensitive action (SECURITY E12)."""
    account = g.account
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


def regenerate_recovery_codes(journey: Journey):
    if PortalForm().validate_on_submit():
        codes = accounts.regenerate_recovery_codes(g.account)
        return show_recovery_codes(journey, codes)
    return render_template("shared/auth/regenerate-recovery-codes.html", journey=journey)


def download_recovery_codes(journey: Journey):
    """The codes just shown, as a text file: only in the session that was shown them, within a few minutes
    and before it moves on to another page (a POST, so nothing fetches it by following a link)."""
    codes = _codes_kept_for_download()
    if codes is None:
        flash(
            "For your safety, recovery codes can be downloaded only straight after they are shown. "
            "If you did not save yours, get new ones."
        )
        return redirect(journey.url("regenerate_recovery_codes"))
    return recovery_codes_file(codes)


def forget_recovery_codes_elsewhere(journey: Journey):
    """Any other page of this area forgets the codes kept for the download button."""
    if request.endpoint != f"{journey.blueprint}.download_recovery_codes" and RECOVERY_CODES_KEY in current_session():
        current_session().pop(RECOVERY_CODES_KEY)


def _owner(journey: Journey, account) -> dict:
    """Whose new password a form checks (the password policy refuses one made of these)."""
    return {"email": account.email, "names": journey.names(account), "staff": journey.kind == "staff"}


def change_password(journey: Journey):
    account = g.account
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


def sign_out_other_devices(journey: Journey):
    form = PasswordForm()
    errors = FormErrors()
    if form.validate_on_submit():
        ended = accounts.sign_out_other_devices(
            g.account, form.password.data, keep_session_id=current_session().session_id
        )
        if ended is not None:
            flash("You have signed out of every other device.")
            return redirect(url_for(journey.home))
        errors.add(form.password.id, "Your password is not correct")
    return form_page("shared/auth/sign-out-other-devices.html", form, errors, journey=journey)


def forgot_password(journey: Journey):
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(journey.kind, form.email.data)
        return redirect(journey.url("forgot_password_sent"))
    return form_page("shared/auth/forgot-password.html", form, journey=journey)


def forgot_password_sent(journey: Journey):
    return render_template("shared/auth/forgot-password-sent.html", journey=journey)


def set_up_link(journey: Journey, token: str):
    """The link staff send after removing a lost authenticator: kept in the session, then sign in."""
    return open_emailed_link(SET_UP_AGAIN, token, f"{journey.blueprint}.sign_in", journey)


def reset_password(journey: Journey, token: str):
    return open_emailed_link(RESET_PASSWORD, token, f"{journey.blueprint}.choose_new_password", journey)


def choose_new_password(journey: Journey):
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


def add_auth_views(bp: Blueprint, journey: Journey) -> None:
    """Add the journey's views to `bp`, with their rate limits."""
    bp.before_request(functools.partial(forget_recovery_codes_elsewhere, journey))
    ip_limit = guess_ip_limit()
    sign_in_limits = (
        ip_limit,
        limiter.limit(
            configured_limit("SIGN_IN_ACCOUNT"),
            key_func=_account_key(journey.kind),
            methods=["POST"],
            on_breach=on_breach("account"),
        ),
    )
    second_factor_limit = _guessable("second-factor")
    password_limit = _guessable("password")
    # Its own count, so that choosing a new password that the policy refuses never blocks "confirm it is you".
    change_password_limit = _guessable("change-password")
    reset_limit = limiter.limit(configured_limit("RESET_IP"), methods=["POST"], on_breach=on_breach("reset"))
    fresh = fresh_second_factor_required(f"{journey.blueprint}.reauthenticate")
    both = ["GET", "POST"]
    routes = [
        ("/sign-in", sign_in, both, sign_in_limits),
        ("/sign-in/code", sign_in_code, both, (ip_limit, second_factor_limit)),
        ("/sign-in/recovery-code", sign_in_recovery, both, (ip_limit, second_factor_limit)),
        ("/authenticator/set-up", set_up_authenticator, both, (ip_limit, second_factor_limit)),
        ("/sign-out", sign_out, ["POST"], ()),
        ("/confirm-it-is-you", reauthenticate, both, (ip_limit, second_factor_limit, password_limit)),
        ("/recovery-codes/new", regenerate_recovery_codes, both, (fresh,)),
        ("/recovery-codes/download", download_recovery_codes, ["POST"], ()),
        ("/change-password", change_password, both, (ip_limit, change_password_limit)),
        ("/sign-out-other-devices", sign_out_other_devices, both, (ip_limit, password_limit)),
        ("/forgot-password", forgot_password, both, (reset_limit, email_address_limit(journey.kind, "reset-email"))),
        ("/forgot-password/check-your-email", forgot_password_sent, ["GET"], ()),
        ("/reset-password/<token>", reset_password, ["GET"], ()),
        ("/authenticator/set-up/<token>", set_up_link, ["GET"], ()),
        ("/reset-password", choose_new_password, both, ()),
    ]
    for rule, func, methods, decorators in routes:
        view = _journey_view(journey, func)
        for decorator in reversed(decorators):
            view = decorator(view)
        bp.add_url_rule(f"{journey.prefix}{rule}", view_func=view, methods=methods)


def _journey_view(journey: Journey, func):
    """The view of `func` for this journey, named per blueprint: Flask-Limiter files decorated limits under the
    function's qualified name."""

    @functools.wraps(func)
    def view(**values):
        return func(journey, **values)

    view.__qualname__ = f"{journey.blueprint}.{func.__name__}"
    return view
