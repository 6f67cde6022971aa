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

from core import legal_clock
from core.auth import current_session, fresh_second_factor_required
from core.forms import FormErrors, text
from core.models.requests import FORMATS, RecordingRequest
from core.services import releases
from core.services import requests as requests_service
from core.services.accounts import record_refusal
from core.services.requests import CallDetails, RequestError
from core.services.settings import practice_settings
from core.services.totp import TotpKeyError, decrypt_secret, encrypt_secret
from portal import bp

DRAFT_KEY = "request-draft"
DESCRIPTION_MAX = 2000
REPLY_MAX = 5000
COMPLAINT_MAX = 5000
PHONE_MAX = 20
APPROXIMATE_TIME_MAX = 100
SPOKE_TO_MAX = 200
PHONE_CHARACTERS = frozenset("0123456789 +")

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


def _render(template: str, status: int = 200, **context):
    return (
        render_template(
            template,
            formats=FORMATS,
            # One number for each limit: the form's character count and its error message both show it.
            description_max=DESCRIPTION_MAX,
            reply_max=REPLY_MAX,
            complaint_max=COMPLAINT_MAX,
            **context,
        ),
        status,
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


def _call_date(
    errors: FormErrors, form, prefix: str, *, label: str, today: date, required: bool
) -> tuple[date | None, dict[str, str]]:
    """An NHS date input for a call (`prefix-day`, `-month`, `-year`): a real date, today or earlier.

    core.forms.date_from_parts words its messages for a date of birth ("Your date of birth ..."); these are
    about the calls ("The date of the call ...")."""
    parts = {part: text(form, f"{prefix}-{part}", limit=4) for part in ("day", "month", "year")}
    sentence_label = label[0].upper() + label[1:]
    if not any(parts.values()):
        if required:
            errors.add(f"{prefix}-day", f"Enter the {label}")
        return None, parts
    missing = [part for part in ("day", "month", "year") if not parts[part]]
    if missing:
        errors.add(f"{prefix}-{missing[0]}", f"The {label} must include a {missing[0]}")
        return None, parts
    try:
        if not all(value.isascii() and value.isdigit() for value in parts.values()) or len(parts["year"]) != 4:
            raise ValueError(parts)
        value = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except ValueError:
        errors.add(f"{prefix}-day", f"{sentence_label} must be a real date, like 15 3 2026")
        return None, parts
    if value > today:
        errors.add(f"{prefix}-day", f"The {label} must be today or in the past")
        return None, parts
    return value, parts


def _optional_text(errors: FormErrors, form, field: str, *, label: str, limit: int) -> str:
    value = text(form, field, limit=limit)
    if len(value) > limit:
        errors.add(field, f"{label} must be {limit:,} characters or fewer")
    return value


def _long_text(form, field: str, *, limit: int) -> str:
    """A textarea's text, with each line break counted as one character, as the character count shows it."""
    return text(form, field, limit=limit * 2).replace("\r\n", "\n").replace("\r", "\n")[: limit + 1]


def _read_request_form(form, today: date) -> tuple[dict, FormErrors, dict | None]:
    """Check the request form. Returns the values to show again, the errors, and (when there are none) the
    answers to keep in the session. Only the fields named here are read (SECURITY G5)."""
    errors = FormErrors()
    values: dict = {}
    calls_from, values["calls-from"] = _call_date(
        errors, form, "calls-from", label="date of the call", today=today, required=True
    )
    calls_to, values["calls-to"] = _call_date(
        errors, form, "calls-to", label="date of the last call", today=today, required=False
    )
    if calls_from and calls_to and calls_to < calls_from:
        errors.add("calls-to-day", "The date of the last call must be the same as or after the date of the call")
    values["approximate-time"] = _optional_text(
        errors, form, "approximate-time", label="Approximate time", limit=APPROXIMATE_TIME_MAX
    )
    phone_number = _optional_text(errors, form, "phone-number", label="Phone number", limit=PHONE_MAX)
    values["phone-number"] = phone_number
    looks_like_a_number = set(phone_number) <= PHONE_CHARACTERS and any(char.isdigit() for char in phone_number)
    if phone_number and "phone-number" not in errors and not looks_like_a_number:
        errors.add("phone-number", "Enter a phone number using only numbers, spaces and +, like 020 7946 0000")
    values["spoke-to"] = _optional_text(errors, form, "spoke-to", label="Who you spoke to", limit=SPOKE_TO_MAX)
    description = _long_text(form, "description", limit=DESCRIPTION_MAX)
    values["description"] = description
    if not description:
        errors.add("description", "Enter a description of the calls")
    elif len(description) > DESCRIPTION_MAX:
        errors.add("description", f"Description must be {DESCRIPTION_MAX:,} characters or fewer")
    preferred_format = text(form, "preferred-format", limit=30)
    values["preferred-format"] = preferred_format
    if preferred_format not in FORMATS:
        errors.add("preferred-format", "Select how you would like to get the recordings")
    share = form.get("share-with-nhs-england") == "yes"
    values["share-with-nhs-england"] = share
    if errors:
        return values, errors, None
    draft = {
        "calls_from": calls_from.isoformat(),
        "calls_to": (calls_to or calls_from).isoformat(),
        "approximate_time": values["approximate-time"],
        "phone_number": phone_number,
        "spoke_to": values["spoke-to"],
        "description": description,
        "preferred_format": preferred_format,
        "share_with_nhs_england": share,
        # Sent by the check page with the final submit; the service makes one request per key.
        "key": secrets.token_urlsafe(24),
    }
    return values, errors, draft


def _keep_draft(draft: dict) -> None:
    """Keep the checked answers in the session, encrypted: they may describe the patient's health, and a copy
    of the session table must not show them (json.dumps makes them ASCII, which the cipher needs)."""
    current_session()[DRAFT_KEY] = encrypt_secret(json.dumps(draft))


def _draft() -> dict | None:
    stored = current_session().get(DRAFT_KEY)
    if not isinstance(stored, str):
        return None
    try:
        draft = json.loads(decrypt_secret(stored))
    except (TotpKeyError, ValueError):
        return None  # written under a key since retired: the patient fills the form in again
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


def _values_from(details: CallDetails) -> dict:
    """The form's values for answers already given (the patient came back from the check page to change one)."""

    def parts(day: date) -> dict[str, str]:
        return {"day": str(day.day), "month": str(day.month), "year": str(day.year)}

    return {
        "calls-from": parts(details.calls_from),
        "calls-to": parts(details.calls_to) if details.calls_to != details.calls_from else {},
        "approximate-time": details.approximate_time,
        "phone-number": details.phone_number,
        "spoke-to": details.spoke_to,
        "description": details.description,
        "preferred-format": details.preferred_format,
        "share-with-nhs-england": details.share_with_nhs_england,
    }


def _oldest_kept(today: date) -> date:
    """The earliest call the practice should still have a recording of (a practice setting)."""
    return legal_clock.add_months(today, -practice_settings().recordings_kept_months)


@bp.route("/requests/new", methods=["GET", "POST"])
def request_new():
    if request.method == "POST":
        values, errors, draft = _read_request_form(request.form, requests_service.practice_today())
        if not errors:
            _keep_draft(draft)
            return redirect(url_for("portal.request_check"))
        return _render("portal/requests/new.html", 400, errors=errors, values=values)
    draft = _draft()
    details = _details(draft) if draft else None
    values = _values_from(details) if details else {}
    return _render("portal/requests/new.html", errors=FormErrors(), values=values)


def _check_page(draft: dict, details: CallDetails, errors: FormErrors | None = None, status: int = 200):
    today = requests_service.practice_today()
    oldest_kept = _oldest_kept(today)
    return _render(
        "portal/requests/check.html",
        status,
        details=details,
        submission_key=draft["key"],
        errors=errors or FormErrors(),
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
    return _check_page(draft, details)


@bp.post("/requests/new/check")
@fresh_second_factor
def request_submit():
    """Submit the checked answers. The same key sent again (a double click, a resend after a slow answer)
    leads to the request the first one made."""
    key = text(request.form, "submission-key", limit=64)
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
    except RequestError as problem:
        errors = FormErrors()
        errors.add("submit", str(problem))
        return _check_page(draft, details, errors, 400)
    current_session().pop(DRAFT_KEY, None)
    return redirect(url_for("portal.request_submitted", reference=req.reference))


@bp.get("/requests/<reference>/submitted")
def request_submitted(reference: str):
    req = own_request_or_404(reference)
    return _render("portal/requests/submitted.html", req=req, patient=g.account)


# ---------------------------------------------------------------------------------------------------------
# A request's page and what the patient can do there
# ---------------------------------------------------------------------------------------------------------


def _detail_page(req: RecordingRequest, *, errors: FormErrors | None = None, values: dict | None = None):
    errors = errors or FormErrors()
    return _render(
        "portal/requests/detail.html",
        400 if errors else 200,
        req=req,
        events=requests_service.timeline(req, for_patient=True),
        question=requests_service.latest_question(req),
        complaints=requests_service.complaints_for(req),
        rights_text=requests_service.RIGHTS_TEXT,
        errors=errors,
        values=values or {},
    )


@bp.get("/requests/<reference>")
def request_detail(reference: str):
    return _detail_page(own_request_or_404(reference))


@bp.post("/requests/<reference>/reply")
def request_reply(reference: str):
    req = own_request_or_404(reference)
    answer = _long_text(request.form, "answer", limit=REPLY_MAX)
    errors = FormErrors()
    if not answer:
        errors.add("answer", "Enter your answer")
    elif len(answer) > REPLY_MAX:
        errors.add("answer", f"Your answer must be {REPLY_MAX:,} characters or fewer")
    else:
        try:
            requests_service.answer_clarification(g.account, req, answer)
        except RequestError as problem:
            errors.add("answer", str(problem))
    if errors:
        return _detail_page(req, errors=errors, values={"answer": answer})
    flash("We have sent your answer to the practice.")
    return redirect(url_for("portal.request_detail", reference=req.reference))


@bp.route("/requests/<reference>/withdraw", methods=["GET", "POST"])
@fresh_second_factor  # withdrawing ends a request the law gives the patient: confirm it is them
def request_withdraw(reference: str):
    req = own_request_or_404(reference)
    errors = FormErrors()
    if request.method == "POST":
        try:
            requests_service.withdraw(g.account, req)
        except RequestError as problem:
            errors.add("withdraw", str(problem))
        else:
            flash("You have withdrawn your request. The practice will take no further action on it.")
            return redirect(url_for("portal.request_detail", reference=req.reference))
    return _render("portal/requests/withdraw.html", 400 if errors else 200, req=req, errors=errors)


@bp.route("/requests/<reference>/complaint", methods=["GET", "POST"])
def request_complaint(reference: str):
    req = own_request_or_404(reference)
    errors = FormErrors()
    complaint = ""
    if request.method == "POST":
        complaint = _long_text(request.form, "complaint", limit=COMPLAINT_MAX)
        if not complaint:
            errors.add("complaint", "Enter your complaint")
        elif len(complaint) > COMPLAINT_MAX:
            errors.add("complaint", f"Your complaint must be {COMPLAINT_MAX:,} characters or fewer")
        else:
            made = requests_service.complain(g.account, req, complaint)
            flash(
                "We have received your complaint. We will acknowledge it by "
                f"{requests_service.long_date(made.acknowledge_by)}."
            )
            return redirect(url_for("portal.request_detail", reference=req.reference))
    return _render(
        "portal/requests/complaint.html", 400 if errors else 200, req=req, errors=errors, complaint=complaint
    )


@bp.post("/requests/<reference>/new-link")
def request_new_link(reference: str):
    req = own_request_or_404(reference)
    try:
        releases.ask_for_new_link(g.account, req)
    except RequestError as problem:
        errors = FormErrors()
        errors.add("new-link", str(problem))
        return _detail_page(req, errors=errors)
    flash("We have asked the practice to send you a new link.")
    return redirect(url_for("portal.request_detail", reference=req.reference))
