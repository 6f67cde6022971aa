"""Releasing a request's recordings (prepare, approve with the clinical review, send back, revoke, re-issue)
and the recordings themselves (upload, listen, remove), for staff. Approving, sending back and re-issuing are
for admins (admin.guard). Every action is a service call in `core`; this module reads forms and shows pages."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from admin import bp
from admin.forms import UploadForm
from admin.guard import fresh_second_factor
from admin.request_actions import action_page, back_unless_offered, staff_choices
from admin.request_forms import ApproveForm, ConfirmForm, DeclineForm, RemoveRecordingForm, RevokeForm
from admin.requests import FILE_CSP, recording_or_404, request_or_404
from core.extensions import csrf
from core.formatters import format_file_size
from core.forms import FormErrors
from core.models.requests import RecordingRequest
from core.recording_http import Reader, RecordingMissingError, RecordingRefusedError, send_recording
from core.services import accounts, recordings, releases
from core.services.requests import RequestError
from core.services.settings import practice_settings

# ---------------------------------------------------------------------------------------------------------
# Releasing the recordings: each action on its own page (admin.request_actions.action_page)
# ---------------------------------------------------------------------------------------------------------


@bp.route("/requests/<reference>/release/prepare", methods=["GET", "POST"])
@fresh_second_factor
def request_prepare_release(reference: str):
    req = request_or_404(reference)
    return action_page(
        req,
        ConfirmForm(),
        action="prepare",
        template="admin/requests/prepare.html",
        run=lambda: releases.prepare_release(g.staff_user, req),
        done="The recordings are ready for an admin to check and approve.",
        recordings=recordings.attached_recordings(req),
    )


@bp.route("/requests/<reference>/release/approve", methods=["GET", "POST"])
@fresh_second_factor
def request_approve_release(reference: str):
    """Approve (admins only). When the preparer is not a clinician the form asks which clinician reviewed
    the recordings and the outcome; the service checks both again."""
    req = request_or_404(reference)
    pending = releases.pending_release(req)
    review_needed = pending is not None and releases.clinical_review_needed(pending)
    form = ApproveForm()
    if review_needed:
        form.reviewer.choices = staff_choices(clinicians_only=True, none_text="Select a clinician")
    else:
        del form.reviewer
        del form.review_outcome

    def approve() -> None:
        reviewer = accounts.account_by_public_id("staff", form.reviewer.data) if review_needed else None
        outcome = form.review_outcome.data if review_needed else ""
        releases.approve_release(g.staff_user, req, releases.ClinicalReview(reviewer, outcome))

    return action_page(
        req,
        form,
        action="approve",
        template="admin/requests/approve.html",
        run=approve,
        done="The release is approved. The patient has been emailed a link to download the recordings.",
        pending=pending,
        review_needed=review_needed,
        own_release=pending is not None
        and practice_settings().release_four_eyes
        and pending.prepared_by_id == g.staff_user.id,
        recordings=recordings.attached_recordings(req),
    )


@bp.route("/requests/<reference>/release/decline", methods=["GET", "POST"])
@fresh_second_factor
def request_decline_release(reference: str):
    req = request_or_404(reference)
    form = DeclineForm()
    return action_page(
        req,
        form,
        action="decline",
        template="admin/requests/decline.html",
        run=lambda: releases.decline_release(g.staff_user, req, form.reason.data),
        done="The release has been sent back to be corrected.",
    )


@bp.route("/requests/<reference>/release/revoke", methods=["GET", "POST"])
@fresh_second_factor
def request_revoke_link(reference: str):
    return _revoke_page(reference, reissue=False, done="The download link has been revoked. It no longer works.")


@bp.post("/requests/<reference>/release/reissue")
@fresh_second_factor
def request_reissue_link(reference: str):
    """Revoke the live link and email a new one (admins only: a new link is a new release). Sent from the
    revoke page's second button, with the same reason and confirmation."""
    return _revoke_page(
        reference, reissue=True, done="The old link has been revoked and the patient has been emailed a new one."
    )


def _revoke_page(reference: str, *, reissue: bool, done: str):
    req = request_or_404(reference)
    form = RevokeForm()
    return action_page(
        req,
        form,
        action="revoke",
        template="admin/requests/revoke.html",
        run=lambda: releases.revoke_release(g.staff_user, req, form.reason.data, reissue=reissue),
        done=done,
    )


# ---------------------------------------------------------------------------------------------------------
# Recordings
# ---------------------------------------------------------------------------------------------------------


def _upload_page(req: RecordingRequest, form: UploadForm, errors: FormErrors | None = None):
    errors = errors if errors is not None else form.page_errors()
    page = render_template(
        "admin/requests/upload.html",
        req=req,
        form=form,
        errors=errors,
        max_upload=format_file_size(current_app.config["RECORDING_MAX_BYTES"]),
        recordings=recordings.attached_recordings(req),
    )
    return page, (400 if errors else 200)


@bp.get("/requests/<reference>/upload")
@fresh_second_factor
def recording_upload_form(reference: str):
    """The page for attaching a recording; the form posts to recording_upload."""
    req = request_or_404(reference)
    return back_unless_offered(req, "upload", "Recordings cannot be attached now") or _upload_page(req, UploadForm())


@bp.post("/requests/<reference>/recordings")
@csrf.exempt  # checked below, once this form's larger size limit is in place
@fresh_second_factor
def recording_upload(reference: str):
    """Attach an audio file. The type comes from the file's bytes, and the file is stored encrypted under a
    random name (core.services.recordings); the name the browser sent is only shown, cleaned."""
    req = request_or_404(reference)
    # The application reads at most MAX_CONTENT_LENGTH (1 MiB) of any request. This form alone may carry a
    # recording: raise the limit for it before anything reads the body. The CSRF check reads the form, so it
    # runs here rather than before the view (where the 1 MiB limit would answer 413 to every recording).
    request.max_content_length = current_app.config["RECORDING_MAX_BYTES"] + 64 * 1024
    g.too_large_advice = (
        "The file is too large",
        f"The largest recording you can upload is {format_file_size(current_app.config['RECORDING_MAX_BYTES'])}. "
        "Go back and choose a smaller file, or split a long recording into parts.",
    )
    csrf.protect()
    form = UploadForm()
    if not form.validate():
        return _upload_page(req, form)
    upload = form.recording.data
    details = recordings.RecordingDetails(
        original_name=upload.filename,
        call_started_at=form.call_started_at(),
        caller_number=form.caller_number.data or "",
        direction=form.direction.data,
    )
    try:
        recording = recordings.attach_recording(g.staff_user, req, upload.stream, details)
    except RequestError as exc:
        errors = FormErrors()
        form.add_service_error(errors, exc)
        return _upload_page(req, form, errors)
    flash(f"{recording.original_name} has been attached ({recording.duration_label}).")
    return redirect(url_for("admin.request_detail", reference=req.reference))


@bp.get("/requests/<reference>/recordings/<public_id>/audio")
def recording_audio(reference: str, public_id: str):
    """The recording for the page's audio player: streamed with HTTP Range, never cached or sniffed."""
    req = request_or_404(reference)
    recording = recording_or_404(req, public_id)
    if recording.removed_at is not None or not recordings.is_stored(recording):
        abort(404)
    if request.method == "GET":
        recordings.record_staff_listen(g.staff_user, req, recording, byte_range=request.headers.get("Range", ""))
    try:
        response = send_recording(recording, Reader("staff", g.staff_user.public_id, request.endpoint or ""))
    except RecordingMissingError:
        abort(404)
    except RecordingRefusedError:
        # The stored copy failed its check, or its key is no longer configured: audited; nothing of it is sent.
        abort(410)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = FILE_CSP
    return response


@bp.route("/requests/<reference>/recordings/<public_id>/remove", methods=["GET", "POST"])
@fresh_second_factor
def recording_remove(reference: str, public_id: str):
    """Remove a recording (its file is deleted): a page of its own that asks for the reason and a
    confirmation before the red button."""
    req = request_or_404(reference)
    recording = recording_or_404(req, public_id)
    form = RemoveRecordingForm()
    return action_page(
        req,
        form,
        action="remove",
        template="admin/requests/remove-recording.html",
        run=lambda: recordings.remove_recording(g.staff_user, req, recording, form.reason.data),
        done=f"{recording.original_name} has been removed and its file deleted.",
        recording=recording,
    )
