"""The rate limits on the sign-in pages and on every other form that takes a password, a code or an email
address (SECURITY C2). Counts are kept per page (the endpoint, such as `portal.sign_in`) unless a limit is
shared; the per-account keys are hashes, so nothing typed reaches the limiter's logs or its store."""

from __future__ import annotations

import hashlib

from flask import request

from core.auth import current_session
from core.auth_pages import current_journey
from core.extensions import limiter
from core.forms import text
from core.limits import configured_limit, on_breach
from core.services import accounts

# The one per-IP count shared by every form that takes a password or a code (SECURITY C2): patient and staff
# sign-in, the code and recovery-code pages, confirm-it-is-you, changing the password, signing out other
# devices, confirming the email address and entering a registration key. Counted per page, an address would
# get the limit again on each page it moved to.
GUESS_IP_SCOPE = "password-or-code-by-ip"


def email_address_limit(kind: str | None, scope: str):
    """At most a few emails a day to one address from forms anyone can fill in (registration, forgotten
    password), so nobody can use the portal to flood someone's inbox. Only a form that was accepted (and so
    sent an email) counts. `kind` None: the kind of account the page's area is for."""
    return limiter.limit(
        configured_limit("EMAILS_TO_ONE_ADDRESS"),
        key_func=account_key(kind),
        scope=scope,
        methods=["POST"],
        deduct_when=lambda response: response.status_code == 302,
        on_breach=on_breach("email"),
    )


def account_key(kind: str | None):
    """The per-account limit's key: a hash of the normalised email, so whatever was typed (even a password in
    the wrong box) never reaches the limiter's log lines or its store's key names."""

    def key() -> str:
        email = accounts.normalise_email(text(request.form, "email", limit=320))
        return f"{kind or current_journey().kind}:" + hashlib.sha256(email.encode()).hexdigest()[:32]

    return key


def _account_of_session() -> str:
    return f"{current_session().account_kind}:{current_session().account_id}"


def guessable(scope: str):
    """The limit on forms that take a code, a key or a password from someone (part-)signed-in: one count per
    account and scope, shared by the patient and staff pages (`shared_limit`), so moving to the other sign-in
    pages, or to "confirm it is you", gives no extra guesses."""
    return limiter.shared_limit(
        configured_limit("CODE"),
        scope=scope,
        key_func=_account_of_session,
        methods=["POST"],
        on_breach=on_breach("code"),
    )


def guess_ip_limit():
    """The shared per-IP limit (RATELIMIT_SIGN_IN_IP) on a password or code form's POSTs."""
    return limiter.shared_limit(
        configured_limit("SIGN_IN_IP"), scope=GUESS_IP_SCOPE, methods=["POST"], on_breach=on_breach("ip")
    )


def sign_in_account_limit():
    """RATELIMIT_SIGN_IN_ACCOUNT: password attempts at one account, counted on each sign-in page."""
    return limiter.limit(
        configured_limit("SIGN_IN_ACCOUNT"),
        key_func=account_key(None),
        methods=["POST"],
        on_breach=on_breach("account"),
    )


def reset_ip_limit():
    """RATELIMIT_RESET_IP: forgotten-password forms sent from one address."""
    return limiter.limit(configured_limit("RESET_IP"), methods=["POST"], on_breach=on_breach("reset"))
