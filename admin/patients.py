"""Patients, for staff: the list of patients awaiting identity verification, finding a patient, recording how
their identity was checked (or why it could not be), and resetting a lost authenticator after checking photo
ID in person. Deactivating a patient and ending their sessions are for admins (admin.guard)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from sqlalchemy import func, or_, select

from admin import bp
from admin.forms import PatientSearchForm, PhotoIdCheckedForm, RejectIdentityForm, VerifyIdentityForm
from admin.guard import fresh_second_factor
from core.extensions import db
from core.forms import FormErrors
from core.models.accounts import Patient
from core.services import accounts, registration_keys
from core.services.register import parse_nhs_number

SEARCH_LIMIT = 50


def _patient_or_404(public_id: str) -> Patient:
    return accounts.account_by_public_id("patient", public_id) or abort(404)


@bp.get("/patients/awaiting-verification")
def patients_awaiting_verification():
    patients = accounts.patients_awaiting_verification()
    return render_template(
        "admin/patients/awaiting.html", patients=patients, claims=accounts.duplicate_claim_counts(patients)
    )


@bp.route("/patients", methods=["GET", "POST"])
def patient_search():
    """Find a patient by NHS number, email address or last name. The search is sent by POST, so an NHS number
    or an email address never appears in an address (and so in a proxy's log or the browser's history)."""
    form = PatientSearchForm()
    query = form.q.data if form.validate_on_submit() else ""
    results: list[Patient] | None = None
    if query:
        nhs_number = parse_nhs_number(query)
        if nhs_number:
            condition = Patient.nhs_number == nhs_number
        elif "@" in query:
            condition = Patient.email == accounts.normalise_email(query)
        else:
            condition = or_(func.lower(Patient.family_name) == query.lower())
        results = list(
            db.session.execute(
                select(Patient).where(condition).order_by(Patient.family_name).limit(SEARCH_LIMIT)
            ).scalars()
        )
    return render_template("admin/patients/search.html", query=query, results=results)


def _detail_page(patient: Patient, errors: FormErrors, values: dict):
    return render_template(
        "admin/patients/detail.html",
        patient=patient,
        errors=errors,
        values=values,
        other_claims=accounts.other_claims(patient),
    )


@bp.get("/patients/<public_id>")
def patient_detail(public_id: str):
    return _detail_page(_patient_or_404(public_id), FormErrors(), {})


def _render_with_error(patient: Patient, field: str, message: str, values: dict):
    errors = FormErrors()
    errors.add(field, message)
    return _detail_page(patient, errors, values), 400


@bp.post("/patients/<public_id>/registration-key")
@fresh_second_factor
def patient_issue_registration_key(public_id: str):
    """Issue a one-time registration key for the patient, shown on this page once (SECURITY A7)."""
    patient = _patient_or_404(public_id)
    try:
        issued = registration_keys.issue_key_for_patient(g.staff_user, patient)
    except registration_keys.RegistrationKeyError as exc:
        return _render_with_error(patient, "registration-key", exc.problems[0], {})
    return render_template(
        "admin/patients/registration-key.html",
        patient=patient,
        issued=issued,
        expires=issued.expires_at,
    )


@bp.post("/patients/<public_id>/verify")
@fresh_second_factor
def patient_verify(public_id: str):
    patient = _patient_or_404(public_id)
    form = VerifyIdentityForm()
    values = {"method": form.method.data or "", "note": form.note.data or ""}
    try:
        accounts.verify_identity(g.staff_user, patient, method=values["method"], note=values["note"])
    except accounts.AccountError as exc:
        return _render_with_error(patient, form.error_anchor(exc.field), str(exc), values)
    flash(f"{patient.full_name}'s identity is confirmed. They have been emailed.")
    return redirect(url_for("admin.patients_awaiting_verification"))


@bp.post("/patients/<public_id>/reject")
@fresh_second_factor
def patient_reject(public_id: str):
    patient = _patient_or_404(public_id)
    form = RejectIdentityForm()
    values = {"reason": form.reason.data or ""}
    try:
        accounts.reject_identity(g.staff_user, patient, reason=values["reason"])
    except accounts.AccountError as exc:
        return _render_with_error(patient, form.error_anchor(exc.field), str(exc), values)
    flash(f"You recorded that {patient.full_name}'s identity could not be confirmed. They have been emailed.")
    return redirect(url_for("admin.patients_awaiting_verification"))


@bp.post("/patients/<public_id>/reset-authenticator")
@fresh_second_factor
def patient_reset_authenticator(public_id: str):
    patient = _patient_or_404(public_id)
    form = PhotoIdCheckedForm()
    if not form.validate():
        return _detail_page(patient, form.page_errors(), {}), 400
    accounts.reset_authenticator(g.staff_user, patient)
    flash("The authenticator has been removed. The patient has been emailed a link to set up a new one.")
    return redirect(url_for("admin.patient_detail", public_id=patient.public_id))


def _admin_action(public_id: str, action, done: str):
    patient = _patient_or_404(public_id)
    action(patient)
    flash(done)
    return redirect(url_for("admin.patient_detail", public_id=patient.public_id))


@bp.post("/patients/<public_id>/deactivate")
@fresh_second_factor
def patient_deactivate(public_id: str):
    return _admin_action(
        public_id,
        lambda patient: accounts.set_account_active(g.staff_user, patient, False),
        "The account has been deactivated and signed out everywhere.",
    )


@bp.post("/patients/<public_id>/reactivate")
@fresh_second_factor
def patient_reactivate(public_id: str):
    return _admin_action(
        public_id,
        lambda patient: accounts.set_account_active(g.staff_user, patient, True),
        "The account is active again.",
    )


@bp.post("/patients/<public_id>/end-sessions")
@fresh_second_factor
def patient_end_sessions(public_id: str):
    return _admin_action(
        public_id,
        lambda patient: accounts.end_sessions_for(g.staff_user, patient),
        "They have been signed out everywhere.",
    )
