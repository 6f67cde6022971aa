"""Withholding parts of a recording before it is released, for staff: the recording's redaction page (its
waveform, the parts marked, the form to mark another, the redacted copy and its proof), a page each to change
or remove a part, producing the copy, and the JSON the page's script reads (the copy's progress, the waveform).

Every change is one call to core.services.redaction, which checks the times again, audits it and refuses
anything once the request's recordings can no longer change (`can_edit`): these pages then go back to the
redaction page with a message, as the request's other actions do. A part can be marked by typing its times,
so the page works without its script; dragging on the waveform only fills in the same two fields.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from admin import bp
from admin.guard import fresh_second_factor
from admin.request_forms import ConfirmForm, RangeForm
from admin.requests import recording_or_404, request_or_404
from core.forms import FormErrors
from core.models.redaction import RedactionRange, format_timestamp
from core.models.requests import Recording, RecordingRequest
from core.security import allow_style_nonce
from core.services import redaction
from core.services.redaction import RedactionError
from core.services.settings import practice_settings

CANNOT_CHANGE = "The parts to withhold cannot be changed now: the recordings have been put forward for release"


def original_or_404(req: RecordingRequest, public_id: str) -> Recording:
    """An original recording of this request that is still stored: a redacted copy, a removed recording or
    another request's recording is a 404 (the last is audited by recording_or_404)."""
    recording = recording_or_404(req, public_id)
    if recording.redacted_from_id is not None or recording.removed_at is not None:
        abort(404)
    return recording


def request_and_original_or_404(reference: str, public_id: str) -> tuple[RecordingRequest, Recording]:
    req = request_or_404(reference)
    return req, original_or_404(req, public_id)


def range_or_404(recording: Recording, range_id: str) -> RedactionRange:
    return redaction.range_on(recording, range_id) or abort(404)


def _page_url(req: RecordingRequest, recording: Recording, anchor: str | None = None) -> str:
    return url_for("admin.recording_redact", reference=req.reference, public_id=recording.public_id, _anchor=anchor)


def _back_unless_editable(req: RecordingRequest, recording: Recording) -> ResponseReturnValue | None:
    if redaction.can_edit(req):
        return None
    flash(f"{CANNOT_CHANGE}.")
    return redirect(_page_url(req, recording))


def _range_form(recording: Recording, **data) -> RangeForm:
    form = RangeForm(**data)
    if recording.duration_seconds:
        form.duration_ms = round(recording.duration_seconds * 1000)
    return form


def _range_values(form: RangeForm) -> dict:
    return {"start_ms": form.start.ms, "end_ms": form.end.ms, "reason": form.reason.data, "note": form.note.data or ""}


def _redaction_page(req: RecordingRequest, recording: Recording, form: RangeForm, errors: FormErrors | None = None):
    """The recording's redaction page, with the "Mark a part to withhold" form as sent (status 400 when it
    has errors). The waveform's <style> is allowed by this response's nonce (wavesurfer.js's `cspNonce`)."""
    errors = errors if errors is not None else form.page_errors()
    allow_style_nonce()
    state = redaction.copy_state(recording)
    page = render_template(
        "admin/requests/redaction/redact.html",
        req=req,
        recording=recording,
        form=form,
        errors=errors,
        editable=redaction.can_edit(req),
        state=state,
        spans=[[marked.start_ms, marked.end_ms] for marked in state.ranges],
        waveform=redaction.waveform_for(recording),
        fill=practice_settings().redaction_fill,
        produce_form=ConfirmForm(),
    )
    return page, (400 if errors else 200)


@bp.get("/requests/<reference>/recordings/<public_id>/redact")
@fresh_second_factor
def recording_redact(reference: str, public_id: str):
    """The redaction page of one original recording."""
    req, recording = request_and_original_or_404(reference, public_id)
    return _redaction_page(req, recording, _range_form(recording))


@bp.post("/requests/<reference>/recordings/<public_id>/redact/ranges")
@fresh_second_factor
def redaction_range_add(reference: str, public_id: str):
    """Mark a part to withhold; the page is shown again with the errors beside the fields."""
    req, recording = request_and_original_or_404(reference, public_id)
    if back := _back_unless_editable(req, recording):
        return back
    form = _range_form(recording)
    if not form.validate_on_submit():
        return _redaction_page(req, recording, form)
    try:
        marked = redaction.add_range(g.staff_user, req, recording, **_range_values(form))
    except RedactionError as exc:
        errors = FormErrors()
        form.add_service_error(errors, exc)
        return _redaction_page(req, recording, form, errors)
    flash(f"The part from {marked.start_label} to {marked.end_label} is marked to be withheld.")
    return redirect(_page_url(req, recording, "parts"))


def _range_action_page(
    req: RecordingRequest,
    recording: Recording,
    marked: RedactionRange,
    form: RangeForm | ConfirmForm,
    *,
    template: str,
    run: Callable[[], object],
    done: str,
) -> ResponseReturnValue:
    """Change or remove one part, on a page of its own (the shape of admin.request_actions.action_page)."""
    if back := _back_unless_editable(req, recording):
        return back
    errors = FormErrors()
    if form.validate_on_submit():
        try:
            run()
        except RedactionError as exc:
            form.add_service_error(errors, exc)
        else:
            flash(done)
            return redirect(_page_url(req, recording, "parts"))
    for field_id, message in form.page_errors().items():
        errors.add(field_id, message)
    back_link = {"href": _page_url(req, recording), "text": "Back to the recording"}
    back_link["cancel"] = "Cancel and go back to the recording"
    page = render_template(
        template, req=req, recording=recording, marked=marked, form=form, errors=errors, back=back_link
    )
    return page, (400 if errors else 200)


@bp.route("/requests/<reference>/recordings/<public_id>/redact/ranges/<range_id>/change", methods=["GET", "POST"])
@fresh_second_factor
def redaction_range_change(reference: str, public_id: str, range_id: str):
    req, recording = request_and_original_or_404(reference, public_id)
    marked = range_or_404(recording, range_id)
    data = {"start": marked.start_label, "end": marked.end_label, "reason": marked.reason, "note": marked.note}
    form = _range_form(recording, data=data if request.method == "GET" else None)
    return _range_action_page(
        req,
        recording,
        marked,
        form,
        template="admin/requests/redaction/change-range.html",
        run=lambda: redaction.change_range(g.staff_user, req, recording, range_id, **_range_values(form)),
        done="The part to withhold has been changed. Produce the redacted copy again.",
    )


@bp.route("/requests/<reference>/recordings/<public_id>/redact/ranges/<range_id>/remove", methods=["GET", "POST"])
@fresh_second_factor
def redaction_range_remove(reference: str, public_id: str, range_id: str):
    req, recording = request_and_original_or_404(reference, public_id)
    marked = range_or_404(recording, range_id)
    return _range_action_page(
        req,
        recording,
        marked,
        ConfirmForm(),
        template="admin/requests/redaction/remove-range.html",
        run=lambda: redaction.remove_range(g.staff_user, req, recording, range_id),
        done=f"The part from {marked.start_label} to {marked.end_label} is no longer withheld.",
    )


@bp.post("/requests/<reference>/recordings/<public_id>/redact/copy")
@fresh_second_factor
def redaction_produce(reference: str, public_id: str):
    """Ask for the redacted copy: the worker makes it; the page shows its progress."""
    req, recording = request_and_original_or_404(reference, public_id)
    if back := _back_unless_editable(req, recording):
        return back
    if ConfirmForm().validate_on_submit():
        try:
            redaction.request_copy(g.staff_user, req, recording)
        except RedactionError as exc:
            flash(f"{str(exc).rstrip('.')}.")
        else:
            flash("The redacted copy is being produced. This page shows its progress.")
    else:
        flash("The form had expired. Try again.")
    return redirect(_page_url(req, recording, "copy"))


@bp.get("/requests/<reference>/recordings/<public_id>/redact/status")
def redaction_status(reference: str, public_id: str):
    """The redacted copy's progress, which the page asks for every 2 seconds while it is being produced."""
    _, recording = request_and_original_or_404(reference, public_id)
    response = jsonify(redaction.status_json(recording))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/requests/<reference>/recordings/<public_id>/waveform.json")
def recording_waveform(reference: str, public_id: str):
    """The recording's waveform as the worker drew it (the loudest level of each slice, 0..100), so the page
    draws it without fetching the audio. 404 until it is ready."""
    _, recording = request_and_original_or_404(reference, public_id)
    waveform = redaction.waveform_for(recording)
    if waveform is None or waveform.status != "ready":
        abort(404)
    response = jsonify(
        {"duration": waveform.duration_seconds, "per_second": waveform.per_second, "peaks": waveform.values or []}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def redaction_helpers() -> dict:
    """For the request page (each recording's line) and the release pages (what goes into the release)."""
    return {
        "redaction_summary": redaction.redaction_summary,
        "recording_has_ranges": lambda recording: bool(redaction.ranges_for(recording)),
        "redaction_state": redaction.copy_state,
        "withheld_parts": redaction.withheld_parts,
        "seconds_label": lambda seconds: format_timestamp(round(seconds * 1000)),
    }
