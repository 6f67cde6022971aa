"""Who is signed in, shared by the patient and staff areas.

`load_signed_in_account` runs before every request: it reads the account named by the server-side session,
re-reading it from the database each time (so a deactivation or a role change applies on the next request,
SECURITY E6 and G8), and puts it on `g`:

- `g.account`: a patient or staff member who has passed both factors in this session. Flask-Login's
  `current_user` is this account (its request loader reads it), anonymous otherwise;
- `g.pending_account`: someone who has passed the password step only (or must set up an authenticator).
  A pending account reaches nothing but the next sign-in step (SECURITY D1), and is not `current_user`.

The blueprints' guards use `current_user` and `g.pending_account`; nothing is cached in the cookie.

Flask-Login only reads who is signed in: the server-side session (core.sessions) records it, because ending a
session must stop every copy of its cookie, and ending every session of an account must be possible (both
need the rows). So `login_user` is never called, session protection is off, and no remember-me cookie is
ever set or read (docs/decisions/flask-login.md).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user

from core import crypto
from core.services.accounts import get_account, limit_sessions
from core.sessions import ServerSession, ServerSessionInterface

MAX_CODE_FAILURES = 5
# Flask-Login looks for its remember-me cookie before it asks the request loader. No cookie can have a name
# with a ";" in it, so no cookie sent (even one named like Flask-Login's default) is ever read as one.
NO_REMEMBER_COOKIE = "remember;never-set"
# The characters of an itsdangerous URL-safe token, with room to spare in length.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_.\-]{1,512}")
# The emailed links that matter after the password step: the set-up link staff sent to this account, and a
# download link opened while signed out (its page checks it belongs to whoever signs in, SECURITY G3/H9).
LINKS_KEPT_AT_SIGN_IN = ("link:set-up-authenticator", "link:download")


def current_session() -> ServerSession:
    return session  # type: ignore[return-value]


login_manager = LoginManager()
login_manager.session_protection = None  # the session id is rotated at each sign-in stage instead


@login_manager.request_loader
def account_of_session(_request) -> object | None:
    """`current_user`: the account of this request's server-side session, only once both factors are done."""
    if "account" not in g:
        load_signed_in_account()
    return g.account


def signed_in():
    """The account signed in with both factors (Flask-Login's `current_user`, as the account itself), or None."""
    return current_user._get_current_object() if current_user.is_authenticated else None


def load_signed_in_account() -> None:
    g.account = g.pending_account = None
    active = current_session()
    if active.unavailable:
        abort(503)
    if active.account_kind is None:
        return
    account = get_account(active.account_kind, active.account_id)
    if account is None or not account.is_active:
        active.end()
        active.timed_out = True
        return
    if active.stage == "full":
        g.account = account
    elif active.stage in ("password", "enrol"):
        g.pending_account = account


def no_store_when_signed_in(response: Response) -> Response:
    """Pages seen by a signed-in person may hold personal data: no browser or proxy may keep them."""
    if current_session().account_kind is not None or current_session().ended:
        response.cache_control.no_store = True
        response.cache_control.private = True
        response.cache_control.no_cache = None
    return response


def begin_sign_in(account) -> str:
    """After the password step: a new session id, at the stage the account needs next."""
    stage = "password" if account.has_authenticator else "enrol"
    active = current_session()
    kept = {key: active[key] for key in LINKS_KEPT_AT_SIGN_IN if key in active}
    active.clear()
    active.update(kept)
    active.start_stage(account, stage, now=datetime.now(UTC))
    active["code_failures"] = 0
    return stage


def complete_sign_in(account) -> None:
    """Both factors done: a new session id, and at most the allowed number of signed-in devices."""
    active = current_session()
    active.pop("code_failures", None)
    active.start_stage(account, "full", now=datetime.now(UTC))
    limit_name = "MAX_SESSIONS_STAFF" if account.kind == "staff" else "MAX_SESSIONS_PATIENT"
    limit_sessions(account, limit=current_app.config[limit_name])


def note_code_failure() -> bool:
    """Count a wrong code; True when the pending sign-in must be abandoned (SECURITY D7)."""
    active = current_session()
    active["code_failures"] = int(active.get("code_failures", 0)) + 1
    if active["code_failures"] >= MAX_CODE_FAILURES:
        active.drop_account()
        return True
    return False


def is_fresh() -> bool:
    """Both factors proved in this session within SESSION_FRESH_MINUTES (for sensitive actions)."""
    return current_session().is_fresh(now=datetime.now(UTC), minutes=current_app.config["SESSION_FRESH_MINUTES"])


def follow_emailed_link(purpose: str, token: str, form_endpoint: str, **values) -> Response:
    """The first request from an emailed link: keep its token in the session and send the browser on to the
    same page at an address without the token (SECURITY H13). The form page's own requests for styles and
    scripts, and any Referer they carry, then never hold the token, and neither can a proxy's access log."""
    # Encrypted, so that a copy of the session table holds no working link. A token that is not even made of
    # the characters a signed token uses is kept as one that fails its signature check, so that the page
    # says the link does not work (and audits why) instead of failing.
    if not TOKEN_SHAPE.fullmatch(token):
        token = "malformed"  # noqa: S105 (a placeholder that fails every signature check, not a secret)
    current_session()[f"link:{purpose}"] = crypto.encrypt(crypto.LINK_TOKENS, token)
    response = redirect(url_for(form_endpoint, **values), code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def link_token(purpose: str) -> str:
    stored = current_session().get(f"link:{purpose}")
    if not isinstance(stored, str):
        return ""
    try:
        return crypto.decrypt(crypto.LINK_TOKENS, stored)
    except crypto.DecryptionError:
        return ""  # changed, or kept under a key since retired: as if the link had not been followed


def forget_link_token(purpose: str) -> None:
    current_session().pop(f"link:{purpose}", None)


def safe_next_path(value: str | None, *, prefix: str = "/") -> str | None:
    """A same-site path to return to after signing in, or None. Absolute and scheme-relative addresses,
    backslashes and control characters are refused (no open redirects)."""
    if not value or len(value) > 500 or not value.startswith(prefix):
        return None
    if value.startswith("//") or "\\" in value or any(ord(char) < 32 for char in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def fresh_second_factor_required(reauthenticate_endpoint: str):
    """Decorator for sensitive actions: both factors within the last 15 minutes, else re-authenticate."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if not is_fresh():
                if request.method == "GET":
                    come_back_to = request.full_path.rstrip("?")
                else:
                    # A form was sent: after confirming, go back to the page the form was on (nothing is done
                    # until it is sent again).
                    come_back_to = urlsplit(request.referrer or "").path
                return redirect(url_for(reauthenticate_endpoint, next=safe_next_path(come_back_to)))
            return view(*args, **kwargs)

        return wrapper

    return decorator


def register_auth(app: Flask) -> None:
    app.session_interface = ServerSessionInterface()
    app.config["REMEMBER_COOKIE_NAME"] = NO_REMEMBER_COOKIE
    login_manager.init_app(app)
    app.before_request(load_signed_in_account)
    app.after_request(no_store_when_signed_in)

    @app.context_processor
    def signed_in_context() -> dict:
        return {"signed_in_account": g.get("account")}
