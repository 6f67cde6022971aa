"""The one guard in front of every patient page (deny-by-default, like the admin area's).

Each portal endpoint is either public, part of signing in (reachable after the password step), or needs a
patient signed in with both factors (Flask-Login's `current_user`). An endpoint in neither list needs a
signed-in patient, so a new page is protected without anyone remembering to protect it;
tests/portal/test_guard.py walks the URL map.
"""

from __future__ import annotations

from flask import Response, abort, g, request
from flask_login import current_user

from core.auth import login_manager, signed_in
from core.services.accounts import record_refusal
from portal import bp

PUBLIC_ENDPOINTS = frozenset(
    {
        "portal.home",
        "portal.call_recording_notice",
        "portal.how_to_request",
        "portal.accessibility_statement",
        "portal.healthz",
        "portal.healthz_worker",
        "portal.register",
        "portal.check_email",
        "portal.confirm_email",
        "portal.confirm_email_form",
        "portal.sign_in",
        "portal.forgot_password",
        "portal.forgot_password_sent",
        "portal.reset_password",
        "portal.set_up_link",
        "portal.choose_new_password",
        "portal.sign_out",
        # The emailed download link only keeps its token in the session and moves on to /downloads/ (which
        # needs the patient): asking for sign-in here would put the token in the sign-in page's `next`.
        "portal.download_link",
    }
)
# Reachable with the password step done; each view checks the exact stage it needs.
SIGN_IN_STEP_ENDPOINTS = frozenset({"portal.sign_in_code", "portal.sign_in_recovery", "portal.set_up_authenticator"})


@bp.before_request
def require_signed_in_patient():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_user.is_authenticated and current_user.kind == "patient":
        return None
    if request.endpoint in SIGN_IN_STEP_ENDPOINTS and g.get("pending_account") is not None:
        return None
    if current_user.is_authenticated:  # a member of staff: this is the patients' area
        record_refusal(signed_in(), endpoint=request.endpoint, method=request.method, reason="not a patient")
        abort(403)
    return login_manager.unauthorized()  # on to portal.sign_in, and back here afterwards


@bp.after_request
def never_cache_account_pages(response: Response) -> Response:
    if request.endpoint not in PUBLIC_ENDPOINTS or request.endpoint == "portal.sign_in":
        response.cache_control.no_store = True
    return response
