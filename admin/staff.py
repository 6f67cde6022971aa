"""Managing staff accounts (admins only: see ADMIN_ONLY_ENDPOINTS in admin.guard).

Admins invite staff by email and choose their role, change roles, deactivate and reactivate accounts, end a
person's sessions and reset a lost authenticator. Every change is audited by the account services.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from sqlalchemy import select

from admin import bp
from admin.forms import InviteStaffForm, StaffResetAuthenticatorForm, StaffRoleForm
from admin.guard import fresh_second_factor
from core.extensions import db
from core.forms import FormErrors, PortalForm
from core.models.accounts import StaffUser
from core.services import accounts


def _staff_or_404(public_id: str) -> StaffUser:
    return accounts.account_by_public_id("staff", public_id) or abort(404)


@bp.get("/staff")
def staff_list():
    staff = db.session.execute(select(StaffUser).order_by(StaffUser.is_active.desc(), StaffUser.name)).scalars().all()
    return render_template("admin/staff/list.html", staff=staff)


@bp.route("/staff/invite", methods=["GET", "POST"])
@fresh_second_factor
def staff_invite():
    form = InviteStaffForm()
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            staff = accounts.invite_staff(
                g.staff_user,
                email=form.email.data,
                name=form.name.data,
                role=form.role.data,
                is_clinician=form.clinician.data,
            )
        except accounts.AccountError as exc:
            form.add_service_error(errors, exc)
        else:
            flash(f"Invitation sent to {staff.email}. It works for 72 hours.")
            return redirect(url_for("admin.staff_detail", public_id=staff.public_id))
    for field_id, message in form.page_errors().items():
        errors.add(field_id, message)
    return render_template("admin/staff/invite.html", form=form, errors=errors), 400 if errors else 200


@bp.get("/staff/<public_id>")
def staff_detail(public_id: str):
    return render_template("admin/staff/detail.html", staff=_staff_or_404(public_id), errors=FormErrors())


def _staff_action(public_id: str, action, done: str, form: PortalForm | None = None):
    """Make the change `action` on the account, unless `form` (validated) has a problem; show the account's page
    again with the problem or the service's refusal, else flash `done`."""
    staff = _staff_or_404(public_id)
    errors = form.page_errors() if form is not None else FormErrors()
    if not errors:
        try:
            action(staff)
        except accounts.AccountError as exc:
            errors.add("action", str(exc))
    if errors:
        return render_template("admin/staff/detail.html", staff=staff, errors=errors), 400
    flash(done)
    return redirect(url_for("admin.staff_detail", public_id=staff.public_id))


@bp.post("/staff/<public_id>/role")
@fresh_second_factor
def staff_role(public_id: str):
    form = StaffRoleForm()
    return _staff_action(
        public_id,
        lambda staff: accounts.set_staff_role(g.staff_user, staff, form.role.data or ""),
        "The role has been changed.",
    )


@bp.post("/staff/<public_id>/deactivate")
@fresh_second_factor
def staff_deactivate(public_id: str):
    return _staff_action(
        public_id,
        lambda staff: accounts.set_account_active(g.staff_user, staff, False),
        "The account has been deactivated and signed out everywhere.",
    )


@bp.post("/staff/<public_id>/reactivate")
@fresh_second_factor
def staff_reactivate(public_id: str):
    return _staff_action(
        public_id, lambda staff: accounts.set_account_active(g.staff_user, staff, True), "The account is active again."
    )


@bp.post("/staff/<public_id>/reset-authenticator")
@fresh_second_factor
def staff_reset_authenticator(public_id: str):
    form = StaffResetAuthenticatorForm()
    form.validate()
    return _staff_action(
        public_id,
        lambda staff: accounts.reset_authenticator(g.staff_user, staff, identity_check="in_person"),
        "The authenticator has been removed. They have been emailed a link to set up a new one.",
        form,
    )


@bp.post("/staff/<public_id>/end-sessions")
@fresh_second_factor
def staff_end_sessions(public_id: str):
    return _staff_action(
        public_id, lambda staff: accounts.end_sessions_for(g.staff_user, staff), "They have been signed out everywhere."
    )


@bp.post("/staff/<public_id>/resend-invitation")
@fresh_second_factor
def staff_resend_invitation(public_id: str):
    return _staff_action(
        public_id, lambda staff: accounts.resend_invitation(g.staff_user, staff), "A new invitation has been sent."
    )
