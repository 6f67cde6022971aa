"""Patient accounts: register, confirm the email address, the account page; and (core.auth_views, registered
here) the two-factor sign-in journey and account-security pages.

Every route here is listed in `portal.guard` as public, as part of signing in, or as needing a signed-in
patient; the guard refuses anything else. Forms read only the fields they name.
"""

from __future__ import annotations

import hashlib

from flask import flash, g, redirect, render_template, url_for
from sqlalchemy.exc import IntegrityError

from core.auth import begin_sign_in, forget_link_token, link_token
from core.auth_forms import PasswordForm
from core.auth_limits import email_address_limit, guess_ip_limit, guessable
from core.auth_pages import Journey, forget_recovery_codes_elsewhere, form_page, link_invalid, open_emailed_link
from core.auth_views import bp as sign_in_pages
from core.extensions import db, limiter
from core.forms import FormErrors
from core.limits import configured_limit, on_breach
from core.services import accounts, totp
from core.services.tokens import VERIFY_EMAIL, peek_token
from portal import bp
from portal.forms import RegisterForm, RegistrationKeyForm

JOURNEY = Journey(kind="patient", blueprint="portal", home="portal.account", prefix="/account", area="/")

# ---------------------------------------------------------------------------------------------------------
# Register and confirm the email address
# ---------------------------------------------------------------------------------------------------------


@bp.route("/account/register", methods=["GET", "POST"])
# Counts accounts created (a redirect), not attempts, so a patient correcting mistakes is never held up.
@limiter.limit(
    configured_limit("REGISTER"),
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 302,
    on_breach=on_breach("register"),
)
@email_address_limit("patient", "register-email")
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            accounts.register_patient(form.registration())
        except IntegrityError:
            # The same new address sent twice at once (a double click): the first made the account; this one
            # gets the same answer, as it would a moment later.
            db.session.rollback()
        return redirect(url_for("portal.check_email"))
    return form_page("portal/account/register.html", form)


@bp.get("/account/register/check-your-email")
def check_email():
    return render_template("portal/account/check-email.html")


@bp.get("/account/confirm-email/<token>")
def confirm_email(token: str):
    """The link in the email. It changes nothing (an email scanner may follow it): it only leads to a button."""
    return open_emailed_link(VERIFY_EMAIL, token, "portal.confirm_email_form", JOURNEY)


def _link_key() -> str:
    """Password guesses on the confirm page are counted per emailed link, wherever they come from."""
    return "confirm-link:" + hashlib.sha256(link_token(VERIFY_EMAIL.name).encode()).hexdigest()[:32]


@bp.route("/account/confirm-email", methods=["GET", "POST"])
@guess_ip_limit()
@limiter.limit(configured_limit("CODE"), key_func=_link_key, methods=["POST"], on_breach=on_breach("account"))
def confirm_email_form():
    """Confirm the address with the account's password, then go straight on to setting up the authenticator."""
    token = link_token(VERIFY_EMAIL.name)
    if peek_token(VERIFY_EMAIL, token) is None:
        return link_invalid(JOURNEY, VERIFY_EMAIL, token)
    form = PasswordForm()
    errors = FormErrors()
    if form.validate_on_submit():
        patient = accounts.confirm_email(token, form.password.data)
        if patient is not None:
            forget_link_token(VERIFY_EMAIL.name)
            stage = begin_sign_in(patient)
            flash("Your email address is confirmed.")
            return redirect(url_for("portal.set_up_authenticator" if stage == "enrol" else "portal.sign_in_code"))
        errors.add(form.password.id, "Enter the password you chose when you created your account")
    return form_page("portal/account/confirm-email.html", form, errors)


# ---------------------------------------------------------------------------------------------------------
# The account page and what it offers
# ---------------------------------------------------------------------------------------------------------


@bp.get("/account")
def account():
    patient = g.account
    return render_template(
        "portal/account/index.html",
        patient=patient,
        recovery_codes_left=totp.remaining_recovery_codes(patient),
        old_recovery_codes=totp.has_legacy_recovery_codes(patient),
        duplicate_claim=patient.identity_status == "unverified" and bool(accounts.other_claims(patient)),
    )


# What the patient is told for each outcome of entering a registration key (SECURITY A7): plainly, and what to do.
KEY_MESSAGES = {
    accounts.KEY_WRONG: "Enter the registration key exactly as it is on your letter, like ABCD-EFGH-JKLM-NPQR",
    accounts.KEY_USED: "This registration key has already been used. Ask the practice for a new one",
    accounts.KEY_REPLACED: "This registration key has been replaced by a newer one. Use the key in the practice's "
    "most recent letter, or ask for a new one",
    accounts.KEY_EXPIRED: "This registration key has expired. Ask the practice for a new one",
    accounts.KEY_NOT_FOR_THIS_ACCOUNT: "This registration key is not for the details on your account. Check your "
    "name, date of birth, NHS number and postcode with the practice",
    accounts.KEY_DUPLICATE_CLAIM: "Your NHS number is on more than one account, so a member of staff must check who "
    "you are. We have told them. You do not need to do anything else",
    accounts.KEY_DECIDED_BY_STAFF: "The practice could not confirm who you are. Contact the practice to find out why",
}


@bp.route("/account/registration-key", methods=["GET", "POST"])
@guess_ip_limit()
@guessable("registration-key")
def registration_key():
    """A patient waiting for an identity check enters the one-time key the practice gave them."""
    patient = g.account
    if patient.identity_status == "verified":
        flash("Your identity is already confirmed.")
        return redirect(url_for("portal.account"))
    form = RegistrationKeyForm()
    errors = FormErrors()
    if form.validate_on_submit():
        outcome = accounts.redeem_registration_key(patient, form.registration_key.data)
        if outcome in (accounts.KEY_VERIFIED, accounts.KEY_NOT_NEEDED):
            flash("Your identity is confirmed. The practice can now send you copies of your call recordings.")
            return redirect(url_for("portal.account"))
        errors.add(form.registration_key.id, KEY_MESSAGES[outcome])
    return form_page("portal/account/registration-key.html", form, errors)


bp.before_request(forget_recovery_codes_elsewhere)
bp.register_blueprint(sign_in_pages, url_prefix="/account", journey=JOURNEY)  # portal.sign_in and the rest
