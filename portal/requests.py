"""The patient's requests for copies of their call recordings: the list, the request form, and each
request's page (status, due date, timeline, messages, replies, withdrawal and complaints).

A request is always looked up together with the signed-in patient, so another patient's reference is a 404
on every route and method (SECURITY G1/G2), and the refusal is in the audit trail (G10).

Asking for recordings takes two steps. The form's answers, once valid, are kept in the server-side session
(`core.sessions`, never the cookie), encrypted, under DRAFT_KEY, with a random submission key; the "Check your request"
page shows them and sends only that key. Submitting needs a second factor in the last 15 minutes: if it is
stale, the patient confirms it is them and comes back to the check page (the Referer) with the answers still
in the session. The service makes one request per submission key, so a double click makes one request.
"""

from __future__ import annotations

import json
import secrets
from datetime import date

from flask import abort, flash, g, redirect, render_template, request, url_for

from core import crypto, legal_clock
from core.auth import current_session, fresh_second_factor_required
from core.forms import FormErrors, PortalForm
from core.models.requests import FORMATS, RecordingRequest
from core.services import releases
from core.services import requests as requests_service
from core.services.accounts import record_refusal
from core.services.requests import CallDetails, RequestError
from core.services.settings import practice_settings
from portal import bp
from portal.forms import (
    COMPLAINT_MAX,
    DESCRIPTION_MAX,
    REPLY_MAX,
    ComplaintForm,
    NewLinkForm,
    ReplyForm,
    RequestDetailsForm,
    SubmitRequestForm,
    WithdrawForm,
)

DRAFT_KEY = "request-draft"

fresh_second_factor = fresh_second_factor_required("portal.reauthenticate")


def own_request_or_404(reference: str) -> RecordingRequest:
    """The signed-in patient's request with this reference. Anyone else's, or one that does not exist, is the
    same 404 (SECURITY G1), recorded as a refused access (G10) without saying which it was."""
    req = requests_service.patient_request(g.account, reference[:40])
    if req is None:
        record_refusal(g.account, endpoint=request.endpoint, method=request.method, reason="no such request")
        abort(404)
    return req


# ---------------------------------------------------------------------------------------------------------
# Rendering (dates, sizes and statuses are Jinja filters: core.formatters)
# ---------------------------------------------------------------------------------------------------------


def _render(template: str, status: int = 200, *, form: PortalForm | None = None, errors=None, **context):
    """A page of this area; given a form, with its errors after `errors` (a service's refusals), and status 400
    if there are any."""
    errors = errors if errors is not None else FormErrors()
    if form is not None:
        for field_id, message in form.page_errors().items():
            errors.add(field_id, message)
    return (
        render_template(
            template,
            form=form,
            errors=errors,
            formats=FORMATS,
            # One number for each limit: the form's character count and its error message both show it.
            description_max=DESCRIPTION_MAX,
            reply_max=REPLY_MAX,
            complaint_max=COMPLAINT_MAX,
            **context,
        ),
        400 if errors else status,
    )


# ---------------------------------------------------------------------------------------------------------
# The list
# ---------------------------------------------------------------------------------------------------------


@bp.get("/requests")
def requests_list():
    return _render("portal/requests/list.html", requests=requests_service.patient_requests(g.account))


# ---------------------------------------------------------------------------------------------------------
# Asking for recordings: the form, the check page, submitting
# ---------------------------------------------------------------------------------------------------------


def _draft_of(form: RequestDetailsForm) -> dict:
    """The checked answers to keep in the session, with a new submission key."""
    details = form.details()
    return {
        "calls_from": details.calls_from.isoformat(),
        "calls_to": details.calls_to.isoformat(),
        "approximate_time": details.approximate_time,
        "phone_number": details.phone_number,
        "spoke_to": details.spoke_to,
        "description": details.description,
        "preferred_format": details.preferred_format,
        "share_with_nhs_england": details.share_with_nhs_england,
        # Sent by the check page with the final submit; the service makes one request per key.
        "key": secrets.token_urlsafe(24),
    }


def _keep_draft(draft: dict) -> None:
    """Keep the checked answers in the session, encrypted: they may describe the patient's health, and a copy
    of the session table must not show them (json.dumps makes them ASCII, which the cipher needs)."""
    current_session()[DRAFT_KEY] = crypto.encrypt(crypto.REQUEST_DRAFTS, json.dumps(draft))


def _draft() -> dict | None:
    stored = current_session().get(DRAFT_KEY)
    if not isinstance(stored, str):
        return None
    try:
        draft = json.loads(crypto.decrypt(crypto.REQUEST_DRAFTS, stored))
    except (crypto.DecryptionError, ValueError):
        return None  # changed, or written under a key since retired: the patient fills the form in again
    return draft if isinstance(draft, dict) else None


def _details(draft: dict) -> CallDetails | None:
    """The answers kept in the session, or None if they cannot be read (then the patient starts again)."""
    try:
        return CallDetails(
            calls_from=date.fromisoformat(draft["calls_from"]),
            calls_to=date.fromisoformat(draft["calls_to"]),
            approximate_time=str(draft["approximate_time"]),
            phone_number=str(draft["phone_number"]),
            spoke_to=str(draft["spoke_to"]),
            description=str(draft["description"]),
            preferred_format=str(draft["preferred_format"]),
            share_with_nhs_england=bool(draft["share_with_nhs_england"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _answers_given(details: CallDetails) -> dict:
    """The form's data for answers already given (the patient came back from the check page to change one)."""
    return {
        "calls_from": details.calls_from,
        "calls_to": details.calls_to if details.calls_to != details.calls_from else None,
        "approximate_time": details.approximate_time,
        "phone_number": details.phone_number,
        "spoke_to": details.spoke_to,
        "description": details.description,
        "preferred_format": details.preferred_format,
        "share_with_nhs_england": details.share_with_nhs_england,
    }


def _oldest_kept(today: date) -> date:
    """The earliest call the practice should still have a recording of (a practice setting)."""
    return legal_clock.add_months(today, -practice_settings().recordings_kept_months)


@bp.route("/requests/new", methods=["GET", "POST"])
def request_new():
    draft = _draft() if request.method == "GET" else None
    details = _details(draft) if draft else None
    form = RequestDetailsForm(**(_answers_given(details) if details else {}))
    if form.validate_on_submit():
        _keep_draft(_draft_of(form))
        return redirect(url_for("portal.request_check"))
    return _render("portal/requests/new.html", form=form)


def _check_page(draft: dict, details: CallDetails, form: SubmitRequestForm, errors: FormErrors | None = None):
    today = requests_service.practice_today()
    oldest_kept = _oldest_kept(today)
    return _render(
        "portal/requests/check.html",
        form=form,
        errors=errors,
        details=details,
        submission_key=draft["key"],
        oldest_kept=oldest_kept if details.calls_from < oldest_kept else None,
        kept_months=practice_settings().recordings_kept_months,
        patient=g.account,
    )


@bp.get("/requests/new/check")
def request_check():
    draft = _draft()
    details = _details(draft) if draft else None
    if details is None:
        # Already sent, or never filled in (a bookmark, the back button after submitting).
        return _render("portal/requests/nothing-to-check.html")
    return _check_page(draft, details, SubmitRequestForm())


@bp.post("/requests/new/check")
@fresh_second_factor
def request_submit():
    """Submit the checked answers. The same key sent again (a double click, a resend after a slow answer)
    leads to the request the first one made."""
    form = SubmitRequestForm()
    if not form.validate_on_submit():
        return redirect(url_for("portal.request_check"))
    key = form.submission_key.data[:65]
    if key:
        made = requests_service.request_by_submission_key(g.account, key)
        if made is not None:
            return redirect(url_for("portal.request_submitted", reference=made.reference))
    draft = _draft()
    details = _details(draft) if draft else None
    if details is None:
        flash("Your answers were not saved. Fill in the form again.")
        return redirect(url_for("portal.request_new"))
    if key != draft["key"]:
        # A check page from before the answers last changed (another tab, say): show the current answers.
        flash("Your answers have changed since that page was shown. Check them and submit again.")
        return redirect(url_for("portal.request_check"))
    try:
        req = requests_service.submit_request(g.account, details, submission_key=key)
    except RequestError as refused:
        errors = FormErrors()
        form.add_service_error(errors, refused)
        return _check_page(draft, details, form, errors)
    current_session().pop(DRAFT_KEY, None)
    return redirect(url_for("portal.request_submitted", reference=req.reference))


@bp.get("/requests/<reference>/submitted")
def request_submitted(reference: str):
    req = own_request_or_404(reference)
    return _render("portal/requests/submitted.html", req=req, patient=g.account)


# ---------------------------------------------------------------------------------------------------------
# A request's page and what the patient can do there
# ---------------------------------------------------------------------------------------------------------


def _detail_page(req: RecordingRequest, form: PortalForm | None = None, errors: FormErrors | None = None):
    """The request's page; the form is the one just posted from it (the answer, or asking for a new link)."""
    return _render(
        "portal/requests/detail.html",
        req=req,
        events=requests_service.timeline(req, for_patient=True),
        question=requests_service.latest_question(req),
        complaints=requests_service.complaints_for(req),
        rights_text=requests_service.RIGHTS_TEXT,
        form=form,
        reply_form=form if isinstance(form, ReplyForm) else ReplyForm(formdata=None),
        errors=errors,
    )


@bp.get("/requests/<reference>")
def request_detail(reference: str):
    return _detail_page(own_request_or_404(reference))


@bp.post("/requests/<reference>/reply")
def request_reply(reference: str):
    req = own_request_or_404(reference)
    form = ReplyForm()
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            requests_service.answer_clarification(g.account, req, form.answer.data)
        except RequestError as refused:
            form.add_service_error(errors, refused)
        else:
            flash("We have sent your answer to the practice.")
            return redirect(url_for("portal.request_detail", reference=req.reference))
    return _detail_page(req, form, errors)


@bp.route("/requests/<reference>/withdraw", methods=["GET", "POST"])
@fresh_second_factor  # withdrawing ends a request the law gives the patient: confirm it is them
def request_withdraw(reference: str):
    req = own_request_or_404(reference)
    form = WithdrawForm()
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            requests_service.withdraw(g.account, req)
        except RequestError as refused:
            form.add_service_error(errors, refused)
        else:
            flash("You have withdrawn your request. The practice will take no further action on it.")
            return redirect(url_for("portal.request_detail", reference=req.reference))
    return _render("portal/requests/withdraw.html", form=form, errors=errors, req=req)


@bp.route("/requests/<reference>/complaint", methods=["GET", "POST"])
def request_complaint(reference: str):
    req = own_request_or_404(reference)
    form = ComplaintForm()
    if form.validate_on_submit():
        made = requests_service.complain(g.account, req, form.complaint.data)
        flash(
            "We have received your complaint. We will acknowledge it by "
            f"{requests_service.long_date(made.acknowledge_by)}."
        )
        return redirect(url_for("portal.request_detail", reference=req.reference))
    return _render("portal/requests/complaint.html", form=form, req=req)


@bp.post("/requests/<reference>/new-link")
def request_new_link(reference: str):
    req = own_request_or_404(reference)
    form = NewLinkForm()
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            releases.ask_for_new_link(g.account, req)
        except RequestError as refused:
            form.add_service_error(errors, refused)
        else:
            flash("We have asked the practice to send you a new link.")
            return redirect(url_for("portal.request_detail", reference=req.reference))
    return _detail_page(req, form, errors)
