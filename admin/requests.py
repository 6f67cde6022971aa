"""Recording requests, for staff: the queue, logging a request received offline, and each request's page (a
summary, the recordings, the timeline, and "What to do next": links to the actions the request's state
allows). The actions have pages of their own in admin.request_actions; the recordings and releasing them are
in admin.recordings.

Every action is one call to a service in core.services.{requests,recordings,releases}; the state machine
there refuses whatever the request's status does not allow, so the page only hides actions that would be
refused anyway. Actions that change what the patient gets need both factors in the last 15 minutes
(`fresh_second_factor`); approving, declining and re-issuing a release are for admins only
(ADMIN_ONLY_ENDPOINTS in admin.guard).
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from flask import abort, flash, g, redirect, render_template, request, url_for

from admin import bp
from admin.forms import OfflineRequestForm, QueueSearchForm
from core import legal_clock
from core.forms import FormErrors
from core.models.requests import (
    DIRECTIONS,
    FORMATS,
    RECEIVED_VIA,
    REQUEST_STATUSES,
    STATUS_LABELS,
    Recording,
    RecordingRequest,
    Status,
)
from core.services import recordings, releases
from core.services import requests as requests_service
from core.services.requests import QueueFilter, RequestError
from core.services.settings import practice_settings

PER_PAGE = 25
SEARCH_RESULTS = 50
QUEUE_STATUSES = ("open", "all", *REQUEST_STATUSES)
# A file answer must not run as a page if a browser is ever tricked into rendering it.
FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
REFUSAL_TEMPLATE = (
    "We have refused [all / part] of your request because [explain which recordings or parts, and why].\n\n"
    'We are relying on this exemption: [name it, for example "the recordings contain information about other '
    "people who have not agreed to it being shared (UK GDPR Article 15(4) and Data Protection Act 2018 "
    'Schedule 2, paragraph 16)"].'
)


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the templates of this module
# ---------------------------------------------------------------------------------------------------------


def due_tag(req: RecordingRequest, today: date) -> dict | None:
    """The tag beside a due date: overdue in red, or how many working days are left."""
    if req.due_on is None or req.is_closed or req.status == Status.RELEASED:
        return None
    if requests_service.is_overdue(req, today):
        return {"text": "Overdue", "colour": "red"}
    left = legal_clock.working_days_between(today, req.due_on)
    if left == 0:
        return {"text": "Due today", "colour": "orange"}
    words = "working day" if left == 1 else "working days"
    return {"text": f"Due in {left} {words}", "colour": "orange" if left <= 7 else "grey"}


@bp.context_processor
def request_helpers() -> dict:
    return {
        "long_date": requests_service.long_date,
        "due_tag": due_tag,
        "status_labels": STATUS_LABELS,
    }


def request_or_404(reference: str) -> RecordingRequest:
    return requests_service.request_by_reference(reference) or abort(404)


def recording_or_404(req: RecordingRequest, public_id: str) -> Recording:
    """A recording of this request. Any other id (another request's recording, or none) is a 404 and is
    audited as a refused access (SECURITY G6, G10)."""
    recording = recordings.recording_on_request(req, public_id)
    if recording is None:
        recordings.record_recording_refused(
            g.staff_user, req, public_id, endpoint=request.endpoint, method=request.method
        )
        abort(404)
    return recording


# ---------------------------------------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------------------------------------


def _queue_choices() -> dict:
    """The filters from the address. They hold no personal data: the search is sent by POST instead."""
    status = request.args.get("status", "open")
    return {
        "status": status if status in QUEUE_STATUSES else "open",
        "overdue": request.args.get("overdue") == "1",
        "due-soon": request.args.get("due-soon") == "1",
        "mine": request.args.get("mine") == "1",
    }


def _queue_url(choices: dict, page: int) -> str:
    args = {"status": choices["status"]}
    args.update({name: "1" for name in ("overdue", "due-soon", "mine") if choices[name]})
    if page > 1:
        args["page"] = str(page)
    return f"{url_for('admin.request_queue')}?{urlencode(args)}"


@bp.route("/requests", methods=["GET", "POST"])
def request_queue():
    """The queue, soonest due first, filtered and paged in the database. Searching by reference, NHS number
    or name is a POST, so an NHS number or a name never appears in an address (or a proxy's log)."""
    choices = _queue_choices()
    form = QueueSearchForm()
    search = form.q.data if form.validate_on_submit() else ""
    if search:
        result = requests_service.queue(QueueFilter(status="all", search=search), per_page=SEARCH_RESULTS)
    else:
        filters = QueueFilter(
            status=choices["status"],
            overdue=choices["overdue"],
            due_soon=choices["due-soon"],
            mine_id=g.staff_user.id if choices["mine"] else None,
        )
        result = requests_service.queue(filters, page=request.args.get("page", 1, type=int), per_page=PER_PAGE)
    return render_template(
        "admin/requests/queue.html",
        result=result,
        search=search,
        choices=choices,
        statuses=[{"value": status, "text": STATUS_LABELS[status]} for status in REQUEST_STATUSES],
        previous_url=_queue_url(choices, result.page - 1) if not search and result.page > 1 else None,
        next_url=_queue_url(choices, result.page + 1) if not search and result.page < result.pages else None,
        today=requests_service.practice_today(),
    )


# ---------------------------------------------------------------------------------------------------------
# Logging a request received offline
# ---------------------------------------------------------------------------------------------------------


@bp.route("/requests/new", methods=["GET", "POST"])
def request_log_offline():
    """A request received by letter, phone, email or at the desk, logged with the day it really arrived."""
    form = OfflineRequestForm()
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            req = requests_service.log_offline_request(g.staff_user, form.offline_request())
        except RequestError as exc:
            form.add_service_error(errors, exc)
        else:
            due = f" It is due by {requests_service.long_date(req.due_on)}." if req.due_on else ""
            flash(f"Request {req.reference} has been logged.{due}")
            return redirect(url_for("admin.request_detail", reference=req.reference))
    for field_id, message in form.page_errors().items():
        errors.add(field_id, message)
    return render_template("admin/requests/log-offline.html", form=form, errors=errors), (400 if errors else 200)


# ---------------------------------------------------------------------------------------------------------
# A request's page: a summary, the recordings, the timeline, then "What to do next" with a link to each
# action's own page (admin.request_actions, admin.recordings).
# ---------------------------------------------------------------------------------------------------------


def available_actions(req: RecordingRequest, today: date) -> set[str]:
    """The actions that fit the request's status, from the state machine's TRANSITIONS (the services refuse
    the rest anyway). Notes can always be added."""
    status = req.status
    allowed = requests_service.TRANSITIONS[status]
    actions = {"note"}
    if status == Status.AWAITING_IDENTITY and req.patient is None:
        actions.add("confirm_identity")
    if status == Status.SUBMITTED:
        actions.add("start")
    if Status.CLARIFICATION_REQUESTED in allowed:
        actions.add("clarify")
    if status == Status.CLARIFICATION_REQUESTED:
        actions.add("record_reply")
    original_due = requests_service.original_due_on(req)
    if (
        not req.is_closed
        and status != Status.RELEASED
        and req.extended_at is None
        and original_due is not None
        and legal_clock.can_extend(original_due, today)
    ):
        actions.add("extend")
    if Status.NO_RECORDINGS_FOUND in allowed:
        actions.add("no_recordings")
    if Status.REFUSED in allowed:
        actions.add("refuse")
    if Status.COMPLETED in allowed:
        actions.add("close")
    if Status.READY_FOR_APPROVAL in allowed:
        actions.add("prepare")
    if status == Status.READY_FOR_APPROVAL:
        actions.update({"approve", "decline"})
    if status == Status.RELEASED:
        actions.add("revoke")
    if status in (Status.SUBMITTED, Status.CLARIFICATION_REQUESTED, Status.IN_PROGRESS):
        actions.update({"upload", "remove"})
    if not req.is_closed:
        actions.add("assign")
    return actions


def _render_detail(req: RecordingRequest, errors: FormErrors | None = None, values: dict | None = None):
    """The request's page. It still has two small forms of its own (removing a recording, acknowledging a
    complaint), so it can be shown again with their errors."""
    today = requests_service.practice_today()
    pending = releases.pending_release(req)
    errors = errors or FormErrors()
    page = render_template(
        "admin/requests/detail.html",
        req=req,
        errors=errors,
        values=values or {},
        today=today,
        actions=available_actions(req, today),
        original_due=requests_service.original_due_on(req),
        question=requests_service.latest_question(req),
        logged_by=req.logged_by,
        events=requests_service.timeline(req, for_patient=False),
        recordings=recordings.attached_recordings(req),
        releases=releases.releases_for(req),
        pending=pending,
        own_release=pending is not None
        and practice_settings().release_four_eyes
        and pending.prepared_by_id == g.staff_user.id,
        complaints=requests_service.complaints_for(req),
        directions=DIRECTIONS,
        formats=FORMATS,
        received_via=RECEIVED_VIA,
    )
    return page, (400 if errors else 200)


def render_with_error(req: RecordingRequest, field: str, message: str, values: dict | None = None):
    """The request's page again, with the problem in the error summary and beside its field (status 400)."""
    errors = FormErrors()
    errors.add(field, message.rstrip("."))
    return _render_detail(req, errors, values)


@bp.get("/requests/<reference>")
def request_detail(reference: str):
    return _render_detail(request_or_404(reference))
