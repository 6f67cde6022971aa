"""Releasing a request's recordings (prepare, approve with the clinical review, send back, revoke, re-issue)
and the recordings themselves (upload, listen, remove), for staff. Approving, sending back and re-issuing are
for admins (admin.guard). Every action is a service call in `core`; this module reads forms and shows pages."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, current_app, flash, g, redirect, request, send_file, url_for

from admin import bp
from admin.guard import fresh_second_factor
from admin.requests import (
    FILE_CSP,
    TIME_OF_DAY,
    _act,
    _field,
    _recording_or_404,
    _render_detail,
    _request_or_404,
    _staff_date,
    file_size,
    render_with_error,
)
from core.extensions import csrf
from core.forms import FormErrors
from core.models.requests import DIRECTIONS, RecordingRequest
from core.services import accounts, recordings, releases
from core.services import requests as requests_service
from core.services.requests import LONDON, RequestError

# ---------------------------------------------------------------------------------------------------------
# Releasing the recordings
# ---------------------------------------------------------------------------------------------------------


@bp.post("/requests/<reference>/release/prepare")
@fresh_second_factor
def request_prepare_release(reference: str):
    return _act(
        reference,
        "prepare-form",
        lambda req: releases.prepare_release(g.staff_user, req),
        "The recordings are ready for an admin to check and approve.",
    )


@bp.post("/requests/<reference>/release/approve")
@fresh_second_factor
def request_approve_release(reference: str):
    choice = _field("reviewer", 64)
    outcome = _field("review-outcome", 2000)
    reviewer = accounts.account_by_public_id("staff", choice) if choice else None
    values = {"reviewer": choice, "review-outcome": outcome}

    def approve(req: RecordingRequest) -> None:
        releases.approve_release(g.staff_user, req, releases.ClinicalReview(reviewer, outcome))

    req = _request_or_404(reference)
    try:
        approve(req)
    except RequestError as exc:
        message = str(exc)
        field = "reviewer" if "clinician" in message else "review-outcome" if "outcome" in message else "approve-form"
        return render_with_error(req, field, message, values)
    flash("The release is approved. The patient has been emailed a link to download the recordings.")
    return redirect(url_for("admin.request_detail", reference=req.reference))


@bp.post("/requests/<reference>/release/decline")
@fresh_second_factor
def request_decline_release(reference: str):
    reason = _field("reason")
    return _act(
        reference,
        "decline-reason",
        lambda req: releases.decline_release(g.staff_user, req, reason),
        "The release has been sent back to be corrected.",
        {"decline-reason": reason},
    )


@bp.post("/requests/<reference>/release/revoke")
@fresh_second_factor
def request_revoke_link(reference: str):
    reason = _field("reason", 2000)
    return _act(
        reference,
        "revoke-reason",
        lambda req: releases.revoke_release(g.staff_user, req, reason, reissue=False),
        "The download link has been revoked. It no longer works.",
        {"revoke-reason": reason},
    )


@bp.post("/requests/<reference>/release/reissue")
@fresh_second_factor
def request_reissue_link(reference: str):
    """Revoke the live link and email a new one (admins only: a new link is a new release)."""
    reason = _field("reason", 2000)
    return _act(
        reference,
        "revoke-reason",
        lambda req: releases.revoke_release(g.staff_user, req, reason, reissue=True),
        "The old link has been revoked and the patient has been emailed a new one.",
        {"revoke-reason": reason},
    )


# ---------------------------------------------------------------------------------------------------------
# Recordings
# ---------------------------------------------------------------------------------------------------------


def _call_started_at(errors: FormErrors, values: dict) -> datetime | None:
    today = requests_service.practice_today()
    day, values["call-date"] = _staff_date(errors, "call-date", "date of the call", today, required=False)
    values["call-time"] = _field("call-time", 5)
    if errors or (day is None and not values["call-time"]):
        return None  # both are optional, but together: a date alone would store a made-up time
    match = TIME_OF_DAY.fullmatch(values["call-time"])
    if day is None:
        errors.add("call-date-day", "Enter the date of the call, or leave the time empty")
        return None
    if not values["call-time"]:
        errors.add("call-time", "Enter the time of the call, like 14:05, or leave the date empty")
        return None
    if match is None:
        errors.add("call-time", "Enter the time of the call in 24-hour time, like 14:05")
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


@bp.post("/requests/<reference>/recordings")
@csrf.exempt  # checked below, once this form's larger size limit is in place
@fresh_second_factor
def recording_upload(reference: str):
    """Attach an audio file. The type comes from the file's bytes, and the file is stored under a random name
    in RECORDINGS_DIR (core.services.recordings); the name the browser sent is only shown, cleaned."""
    req = _request_or_404(reference)
    # The application reads at most MAX_CONTENT_LENGTH (1 MiB) of any request. This form alone may carry a
    # recording: raise the limit for it before anything reads the body. The CSRF check reads the form, so it
    # runs here rather than before the view (where the 1 MiB limit would answer 413 to every recording).
    request.max_content_length = current_app.config["RECORDING_MAX_BYTES"] + 64 * 1024
    g.too_large_advice = (
        "The file is too large",
        f"The largest recording you can upload is {file_size(current_app.config['RECORDING_MAX_BYTES'])}. "
        "Go back and choose a smaller file, or split a long recording into parts.",
    )
    csrf.protect()
    errors = FormErrors()
    values: dict = {"direction": _field("direction", 20), "caller-number": _field("caller-number", 30)}
    upload = request.files.get("recording")
    if upload is None or not upload.filename:
        errors.add("recording", "Select a recording to upload")
    if values["direction"] not in DIRECTIONS:
        errors.add("direction", "Select who made the call")
    call_started_at = _call_started_at(errors, values)
    if errors:
        return _render_detail(req, errors, values)
    details = recordings.RecordingDetails(
        original_name=upload.filename,
        call_started_at=call_started_at,
        caller_number=values["caller-number"],
        direction=values["direction"],
    )
    try:
        recording = recordings.attach_recording(g.staff_user, req, upload.stream, details)
    except RequestError as exc:
        return render_with_error(req, "recording", str(exc), values)
    flash(f"{recording.original_name} has been attached ({recording.duration_label}).")
    return redirect(url_for("admin.request_detail", reference=req.reference))


@bp.get("/requests/<reference>/recordings/<public_id>/audio")
def recording_audio(reference: str, public_id: str):
    """The recording for the page's audio player: streamed with HTTP Range, never cached or sniffed."""
    req = _request_or_404(reference)
    recording = _recording_or_404(req, public_id)
    path = recordings.stored_path(recording) if recording.removed_at is None else None
    if path is None:
        abort(404)
    if request.method == "GET":
        recordings.record_staff_listen(g.staff_user, req, recording, byte_range=request.headers.get("Range", ""))
    response = send_file(path, mimetype=recording.media_type, conditional=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = FILE_CSP
    return response


@bp.post("/requests/<reference>/recordings/<public_id>/remove")
@fresh_second_factor
def recording_remove(reference: str, public_id: str):
    req = _request_or_404(reference)
    recording = _recording_or_404(req, public_id)
    reason = _field("reason", 2000)
    field = f"remove-reason-{recording.public_id}"
    try:
        recordings.remove_recording(g.staff_user, req, recording, reason)
    except RequestError as exc:
        return render_with_error(req, field, str(exc), {field: reason})
    flash(f"{recording.original_name} has been removed and its file deleted.")
    return redirect(url_for("admin.request_detail", reference=req.reference))
