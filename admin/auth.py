"""Staff sign-in (the sign-in pages of core.auth_views, registered here) and accepting an invitation. The staff
home page (`admin.dashboard`) is in admin.dashboard."""

from __future__ import annotations

from flask import redirect, url_for

from admin import bp
from core.auth import begin_sign_in, forget_link_token, link_token
from core.auth_forms import NewPasswordForm
from core.auth_pages import Journey, forget_recovery_codes_elsewhere, form_page, link_invalid, open_emailed_link
from core.auth_views import bp as sign_in_pages
from core.services import accounts
from core.services.tokens import STAFF_INVITATION, peek_token

JOURNEY = Journey(kind="staff", blueprint="admin", home="admin.dashboard", prefix="", area="/admin/")
bp.before_request(forget_recovery_codes_elsewhere)
bp.register_blueprint(sign_in_pages, journey=JOURNEY)  # admin.sign_in and the rest, under /admin


@bp.get("/invitation/<token>")
def accept_invitation(token: str):
    return open_emailed_link(STAFF_INVITATION, token, "admin.set_up_account", JOURNEY)


@bp.route("/invitation", methods=["GET", "POST"])
def set_up_account():
    """An invited member of staff chooses a password, then must set up an authenticator before anything else."""
    token = link_token(STAFF_INVITATION.name)
    row = peek_token(STAFF_INVITATION, token)
    staff = accounts.get_account("staff", row.account_id) if row and row.account_kind == "staff" else None
    if staff is None or staff.password_hash is not None or not staff.is_active:
        return link_invalid(JOURNEY, STAFF_INVITATION if row is None else None, token)
    form = NewPasswordForm(email=staff.email, names=JOURNEY.names(staff), staff=True)
    if form.validate_on_submit():
        forget_link_token(STAFF_INVITATION.name)
        staff = accounts.accept_invitation(token, form.password.data)
        if staff is None:
            return link_invalid(JOURNEY)
        begin_sign_in(staff)
        return redirect(url_for("admin.set_up_authenticator"))
    return form_page("admin/auth/accept-invitation.html", form, staff=staff)
