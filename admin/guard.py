"""The one guard in front of every admin page (deny-by-default).

Every admin endpoint refuses a request unless a member of staff has signed in with both factors in a live
session (Flask-Login's `current_user`), except the endpoints named in PUBLIC_ENDPOINTS (signing in,
invitations, password reset) and the sign-in steps (SIGN_IN_STEP_ENDPOINTS, which need the password step
done). ADMIN_ONLY_ENDPOINTS also need the `admin` role. The account and its role are read from the database on
every request (core.auth), so a deactivation or a demotion applies at once. A new admin view is protected
without anyone remembering to protect it; tests/admin/test_guard.py walks the URL map to prove it.
"""

from __future__ import annotations

from flask import Response, abort, g, request
from flask_login import current_user

from admin import bp
from core.auth import fresh_second_factor_required, login_manager, signed_in
from core.services.accounts import record_refusal

PUBLIC_ENDPOINTS = frozenset(
    {
        "admin.sign_in",
        "admin.sign_out",
        "admin.forgot_password",
        "admin.forgot_password_sent",
        "admin.reset_password",
        "admin.set_up_link",
        "admin.choose_new_password",
        "admin.accept_invitation",
        "admin.set_up_account",
    }
)
SIGN_IN_STEP_ENDPOINTS = frozenset({"admin.sign_in_code", "admin.sign_in_recovery", "admin.set_up_authenticator"})
ADMIN_ONLY_ENDPOINTS = frozenset(
    {
        "admin.staff_list",
        "admin.staff_invite",
        "admin.staff_detail",
        "admin.staff_role",
        "admin.staff_deactivate",
        "admin.staff_reactivate",
        "admin.staff_reset_authenticator",
        "admin.staff_end_sessions",
        "admin.staff_resend_invitation",
        "admin.patient_deactivate",
        "admin.patient_reactivate",
        "admin.patient_end_sessions",
        "admin.request_approve_release",
        "admin.request_decline_release",
        "admin.request_reissue_link",
        # The notice editor (admin.content); one version's page is for all staff (see that module).
        "admin.content_list",
        "admin.content_edit",
        "admin.content_versions",
        "admin.content_diff",
        "admin.content_roll_back",
        # The audit log viewer and the access report (admin.audit).
        "admin.audit_log",
        "admin.audit_log_csv",
        "admin.audit_check_chain",
        "admin.audit_access_report",
        "admin.audit_access_report_csv",
        # Practice settings (admin.settings).
        "admin.settings_page",
        "admin.settings_save",
    }
)


# For actions that change who can do what: both factors within the last 15 minutes (SECURITY E12).
fresh_second_factor = fresh_second_factor_required("admin.reauthenticate")


def _refuse(account, reason: str):
    record_refusal(account, endpoint=request.endpoint, method=request.method, reason=reason)
    abort(403)


@bp.before_request
def require_staff_user():
    g.staff_user = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        if request.endpoint in SIGN_IN_STEP_ENDPOINTS and g.get("pending_account") is not None:
            return None
        return login_manager.unauthorized()  # on to admin.sign_in, and back here afterwards
    account = signed_in()
    if account.kind != "staff":
        _refuse(account, "not staff")
    if request.endpoint in ADMIN_ONLY_ENDPOINTS and account.role != "admin":
        _refuse(account, "admin role needed")
    g.staff_user = account
    return None


@bp.after_request
def never_cache_admin_pages(response: Response) -> Response:
    """Staff pages may show patient data: no browser or proxy may store them."""
    response.cache_control.no_store = True
    return response
