"""The actions on a request, each on a page of its own with one form (GOV.UK "one thing per page"): assign,
add a note, start work, confirm identity, ask for clarification, record the answer, extend, close with no
recordings found, refuse, complete. The release actions and the recordings are in admin.recordings.

Each page answers GET with its form and POST with one service call; on success it goes back to the request's
page with a notification banner. The services in core.services.requests decide what the request's state
allows: a refusal from the service is shown on the page against the one thing the page asks, and changes
nothing. The destructive action here (refusing) asks for a confirmation before its red button.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from admin import bp
from admin.forms import IdentityForm
from admin.guard import fresh_second_factor
from admin.request_forms import (
    AssignForm,
    ClarifyForm,
    CloseForm,
    ConfirmForm,
    ExtendForm,
    NoRecordingsForm,
    NoteForm,
    RefuseForm,
    ReplyForm,
    RequestForm,
)
from admin.requests import REFUSAL_TEMPLATE, available_actions, request_or_404
from core import legal_clock
from core.forms import FormErrors
from core.models.requests import RecordingRequest
from core.services import accounts
from core.services import requests as requests_service
from core.services.requests import RequestError


def action_page(
    req: RecordingRequest,
    form: RequestForm,
    *,
    action: str,
    template: str,
    run: Callable[[], object],
    done: str | Callable[[], str],
    **context,
) -> ResponseReturnValue:
    """The shape of every action page: show the form; on a valid POST make the one service call, flash `done`
    and go back to the request's page; otherwise show the form again with its errors (status 400).

    A GET for an action the request's state does not offer goes back to the request's page with a message
    (the page would only be refused); a POST always reaches the service, which decides."""
    page_errors = FormErrors()
    if request.method == "GET" and (back := back_unless_offered(req, action, "That cannot be done now")):
        return back
    if form.validate_on_submit():
        try:
            run()
        except RequestError as exc:
            form.add_service_error(page_errors, exc)
        else:
            flash(done() if callable(done) else done)
            return redirect(url_for("admin.request_detail", reference=req.reference))
    for field_id, message in form.page_errors().items():
        page_errors.add(field_id, message)
    page = render_template(template, req=req, form=form, errors=page_errors, **context)
    return page, (400 if page_errors else 200)


def back_unless_offered(req: RecordingRequest, action: str, cannot: str) -> ResponseReturnValue | None:
    """None when the request's state offers `action`; otherwise a redirect to the request's page, saying so."""
    if action in available_actions(req, requests_service.practice_today()):
        return None
    flash(f"{cannot}: this request is {req.status_label.lower()}.")
    return redirect(url_for("admin.request_detail", reference=req.reference))


def staff_choices(*, clinicians_only: bool = False, none_text: str) -> list[SelectChoice]:
    """The choices of a select of active staff, the first (empty) one reading `none_text`."""
    return [SelectChoice("", none_text)] + [
        SelectChoice(member.public_id, member.name)
        for member in requests_service.active_staff(clinicians_only=clinicians_only)
    ]


@bp.route("/requests/<reference>/assign", methods=["GET", "POST"])
def request_assign(reference: str):
    req = request_or_404(reference)
    form = AssignForm(assignee=req.assigned_to.public_id if req.assigned_to else "")
    form.assignee.choices = staff_choices(none_text="Nobody")
    assignee = accounts.account_by_public_id("staff", form.assignee.data) if form.assignee.data else None

    def done() -> str:
        return f"Assigned to {assignee.name}." if assignee else "The request is no longer assigned to anyone."

    return action_page(
        req,
        form,
        action="assign",
        template="admin/requests/assign.html",
        run=lambda: requests_service.assign(g.staff_user, req, assignee),
        done=done,
    )


@bp.route("/requests/<reference>/notes", methods=["GET", "POST"])
def request_note(reference: str):
    req = request_or_404(reference)
    form = NoteForm()
    return action_page(
        req,
        form,
        action="note",
        template="admin/requests/note.html",
        run=lambda: requests_service.add_note(g.staff_user, req, form.note.data),
        done="Note added. Patients never see notes.",
    )


@bp.route("/requests/<reference>/start", methods=["GET", "POST"])
def request_start(reference: str):
    req = request_or_404(reference)
    return action_page(
        req,
        ConfirmForm(),
        action="start",
        template="admin/requests/start.html",
        run=lambda: requests_service.start_work(g.staff_user, req),
        done="The request is now being processed.",
    )


@bp.route("/requests/<reference>/identity", methods=["GET", "POST"])
@fresh_second_factor
def request_confirm_identity(reference: str):
    req = request_or_404(reference)
    form = IdentityForm()
    return action_page(
        req,
        form,
        action="confirm_identity",
        template="admin/requests/identity.html",
        run=lambda: requests_service.confirm_requester_identity(g.staff_user, req, form.identity_date.data),
        done="Identity confirmed. The time limit has started.",
    )


@bp.route("/requests/<reference>/clarify", methods=["GET", "POST"])
@fresh_second_factor
def request_clarify(reference: str):
    req = request_or_404(reference)
    form = ClarifyForm()
    return action_page(
        req,
        form,
        action="clarify",
        template="admin/requests/clarify.html",
        run=lambda: requests_service.ask_for_clarification(g.staff_user, req, form.question.data),
        done="Your question has been sent. The time limit is paused until the patient answers.",
    )


@bp.route("/requests/<reference>/reply", methods=["GET", "POST"])
def request_record_reply(reference: str):
    req = request_or_404(reference)
    form = ReplyForm()
    return action_page(
        req,
        form,
        action="record_reply",
        template="admin/requests/reply.html",
        run=lambda: requests_service.answer_clarification(g.staff_user, req, form.reply.data),
        done="The patient's answer has been recorded. The time limit has restarted.",
        question=requests_service.latest_question(req),
    )


@bp.route("/requests/<reference>/extend", methods=["GET", "POST"])
@fresh_second_factor
def request_extend(reference: str):
    req = request_or_404(reference)
    form = ExtendForm()
    return action_page(
        req,
        form,
        action="extend",
        template="admin/requests/extend.html",
        run=lambda: requests_service.extend(g.staff_user, req, form.reason.data),
        done="The time limit has been extended. The patient has been told why.",
        original_due=requests_service.original_due_on(req),
        extended_due=legal_clock.due_date(req.relevant_day, paused_days=req.paused_days, extended=True)
        if req.relevant_day
        else None,
    )


@bp.route("/requests/<reference>/no-recordings", methods=["GET", "POST"])
@fresh_second_factor
def request_no_recordings(reference: str):
    req = request_or_404(reference)
    form = NoRecordingsForm()
    return action_page(
        req,
        form,
        action="no_recordings",
        template="admin/requests/no-recordings.html",
        run=lambda: requests_service.mark_no_recordings(g.staff_user, req, form.explanation.data),
        done="The request is closed: no recordings were found. The patient has been told.",
    )


@bp.route("/requests/<reference>/close", methods=["GET", "POST"])
@fresh_second_factor
def request_close(reference: str):
    req = request_or_404(reference)
    form = CloseForm()
    return action_page(
        req,
        form,
        action="close",
        template="admin/requests/close.html",
        run=lambda: requests_service.close(g.staff_user, req, form.note.data or ""),
        done="The request is completed.",
    )


@bp.route("/requests/<reference>/refuse", methods=["GET", "POST"])
@fresh_second_factor
def request_refuse(reference: str):
    req = request_or_404(reference)
    form = RefuseForm(reason=REFUSAL_TEMPLATE)
    return action_page(
        req,
        form,
        action="refuse",
        template="admin/requests/refuse.html",
        run=lambda: requests_service.refuse(g.staff_user, req, form.reason.data, partly=form.scope.data == "part"),
        done="The refusal has been sent to the patient with their right to complain to the ICO and to go to court.",
    )
