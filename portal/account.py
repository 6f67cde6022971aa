"""Patient accounts: register, confirm the email address, the account page; and (from core.auth_views) the
two-factor sign-in journey and account-security pages.

Every route here is listed in `portal.guard` as public, as part of signing in, or as needing a signed-in
patient; the guard refuses anything else. Forms read only the fields they name.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from core.auth import begin_sign_in, forget_link_token, link_token
from core.auth_views import (
    Journey,
    add_auth_views,
    email_address_limit,
    guess_ip_limit,
    guessable,
    link_invalid,
    open_emailed_link,
)
from core.extensions import db, limiter
from core.forms import FormErrors, check_new_password, date_from_parts, password_field, text
from core.limits import configured_limit, on_breach
from core.services import accounts, totp
from core.services.register import normalise_postcode, parse_nhs_number
from core.services.tokens import VERIFY_EMAIL, peek_token
from portal import bp

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
    errors = FormErrors()
    values: dict = {}
    if request.method == "POST":
        form = request.form
        values = {
            "given-name": text(form, "given-name", limit=100),
            "family-name": text(form, "family-name", limit=100),
            "nhs-number": text(form, "nhs-number", limit=20),
            "postcode": text(form, "postcode", limit=10),
            "email": text(form, "email", limit=320),
            "mobile": text(form, "mobile", limit=20),
        }
        _check_name(errors, values, "given-name", "first name")
        _check_name(errors, values, "family-name", "last name")
        date_of_birth, values["dob"] = date_from_parts(
            errors, form, "dob", label="date of birth", today=datetime.now(UTC).date()
        )
        nhs_number = parse_nhs_number(values["nhs-number"])
        if not values["nhs-number"]:
            errors.add("nhs-number", "Enter your NHS number")
        elif nhs_number is None:
            errors.add("nhs-number", "Enter a valid NHS number. It is 10 digits, like 485 777 3456")
        postcode = normalise_postcode(values["postcode"])
        if not values["postcode"]:
            errors.add("postcode", "Enter your postcode")
        elif postcode is None:
            errors.add("postcode", "Enter a real postcode, like SE28 8BE")
        email = accounts.normalise_email(values["email"])
        if not email:
            errors.add("email", "Enter your email address")
        elif not accounts.looks_like_email(email):
            errors.add("email", "Enter an email address in the correct format, like name@example.com")
        if values["mobile"] and not _looks_like_phone(values["mobile"]):
            errors.add("mobile", "Enter a UK mobile number, like 07700 900 982")
        password = check_new_password(errors, form, email=email, names=(values["given-name"], values["family-name"]))
        if form.get("terms") != "yes":
            errors.add("terms", "Confirm that you agree to the terms of use")
        if not errors:
            registration = accounts.Registration(
                given_name=values["given-name"],
                family_name=values["family-name"],
                date_of_birth=date_of_birth,
                nhs_number=nhs_number,
                postcode=postcode,
                email=email,
                mobile=values["mobile"] or None,
                password=password,
            )
            try:
                accounts.register_patient(registration)
            except IntegrityError:
                # The same new address sent twice at once (a double click): the first made the account; this
                # one gets the same answer, as it would a moment later.
                db.session.rollback()
            return redirect(url_for("portal.check_email"))
    status = 400 if errors else 200
    return render_template("portal/account/register.html", errors=errors, values=values), status


# Between the letters of a name (in any alphabet, with their accents and vowel signs), a name may have spaces,
# hyphens, dashes, apostrophes and full stops: nothing that could carry a link or a message.
NAME_JOINERS = frozenset(" -\u2010\u2013'\u2019.")


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


def _check_name(errors: FormErrors, values: dict, field: str, label: str) -> None:
    value = values[field]
    if not value:
        errors.add(field, f"Enter your {label}")
    elif len(value) > 100:
        errors.add(field, f"{label.capitalize()} must be 100 characters or fewer")
    elif not _looks_like_a_name(value):
        errors.add(field, f"{label.capitalize()} must only include letters, spaces, hyphens and apostrophes")


def _looks_like_phone(value: str) -> bool:
    digits = "".join(char for char in value if char.isdigit())
    allowed = set("0123456789 +-()")
    return set(value) <= allowed and 10 <= len(digits) <= 13


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
    errors = FormErrors()
    if request.method == "POST":
        patient = accounts.confirm_email(token, password_field(request.form, "password"))
        if patient is not None:
            forget_link_token(VERIFY_EMAIL.name)
            stage = begin_sign_in(patient)
            flash("Your email address is confirmed.")
            return redirect(url_for("portal.set_up_authenticator" if stage == "enrol" else "portal.sign_in_code"))
        errors.add("password", "Enter the password you chose when you created your account")
    return render_template("portal/account/confirm-email.html", errors=errors), 400 if errors else 200


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
    errors = FormErrors()
    value = ""
    if request.method == "POST":
        value = text(request.form, "registration-key", limit=64)
        if not value:
            errors.add("registration-key", "Enter your registration key")
        else:
            outcome = accounts.redeem_registration_key(patient, value)
            if outcome in (accounts.KEY_VERIFIED, accounts.KEY_NOT_NEEDED):
                flash("Your identity is confirmed. The practice can now send you copies of your call recordings.")
                return redirect(url_for("portal.account"))
            errors.add("registration-key", KEY_MESSAGES[outcome])
    return render_template("portal/account/registration-key.html", errors=errors, value=value), 400 if errors else 200


add_auth_views(bp, JOURNEY)
