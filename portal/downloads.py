"""Download links: `/downloads/<token>` from the patient's email, the page listing the released
recordings, playing them in the browser and downloading them (DESIGN §6, SECURITY H).

The emailed link only keeps its token in the session (encrypted) and moves on to `/downloads/`, an address
without it (H13); that GET, by a patient or a mail scanner, changes nothing about the link (H10). Everything
after it needs the link's own patient (G3), signed in with both factors, the second one in the last 15
minutes (H9). Every way a link can fail (forged, wrong purpose, expired, revoked, used up, another
patient's) gets the same page with the same status, and an audit event with the exact reason (H1-H6).

Listening is not downloading: `download_play` streams a recording to the page's audio player (with HTTP Range
so it can seek) without counting a download, while the recording has downloads left; every part it sends is
audited. `download_file` is a CSRF-protected POST
that takes one download atomically, then sends the file as an attachment (H5, H12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Response, abort, g, make_response, render_template, request

from core.auth import follow_emailed_link, fresh_second_factor_required, is_fresh, link_token
from core.formatters import format_datetime
from core.models.requests import Release, ReleaseItem
from core.recording_http import Reader, RecordingMissingError, RecordingRefusedError, send_recording
from core.services import redaction, releases
from core.services.recordings import is_stored
from portal import bp

LINK_PURPOSE = "download"
# One status for every reason a link does not work, so the answer tells an outsider nothing. 404, not 410:
# a forged or unknown link never existed.
LINK_REFUSED_STATUS = 404
GONE = 410
RECORDING_ID = re.compile(r"[0-9a-f]{32}")
# Sent with the audio itself (SECURITY H12): opened on its own, the file can run nothing and is never
# sniffed as something else, cached, embedded by another site or given a Referer.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}

fresh_second_factor = fresh_second_factor_required("portal.reauthenticate")


@bp.get("/downloads/<token>")
def download_link(token: str):
    """The emailed link: keep the token in the session and continue at an address without it. A GET changes
    nothing about the link (mail scanners follow links)."""
    return follow_emailed_link(LINK_PURPOSE, token, "portal.download_page")


@bp.get("/downloads/")
@fresh_second_factor
def download_page():
    """The recordings on the link, each with a player and a download button. Viewing is audited."""
    if not link_token(LINK_PURPOSE):
        # No link was opened in this browser (or the session holding it timed out): nothing was refused, so
        # say where the link is rather than that it does not work.
        return render_template("portal/downloads/no-link.html")
    release = _patients_release()
    req = release.request
    releases.record_patient_access("download_page_viewed", release, g.account)
    rows = [_row(position, item, release) for position, item in enumerate(release.items, start=1)]
    return render_template(
        "portal/downloads/recordings.html",
        req=req,
        release=release,
        rows=rows,
        expires=release.expires_at,
    )


@bp.get("/downloads/recordings/<recording_id>/play")
def download_play(recording_id: str):
    """Stream one recording to the page's audio player. GET and HEAD, with HTTP Range (SECURITY H16), pass
    the same checks as the page. Listening is not downloading: nothing is counted, but a recording whose
    downloads are used up is not streamed either. Every GET is audited with the byte range it asked for."""
    if not is_fresh():
        # An <audio> element cannot follow a redirect to "confirm it is you"; the page it sits on asks.
        abort(403)
    release = _patients_release()
    item = _item_or_404(release, recording_id)
    _file_or_gone(release, item)
    if item.download_count >= release.max_downloads:
        # The link's allowance covers listening too: once a recording's downloads are used up, it is not
        # streamed either (otherwise the player would be an uncounted download).
        releases.record_link_refused(releases.TokenCheck(release, "no_downloads_left"), g.account)
        abort(_no_downloads_left_page(release))
    if request.method == "GET":
        byte_range = request.headers.get("Range", "")
        releases.record_patient_access("recording_played", release, g.account, item.recording, byte_range=byte_range)
    response = _send(release, item, as_attachment=False, conditional=True)
    return _with_file_headers(response)


@bp.post("/downloads/recordings/<recording_id>")
@fresh_second_factor
def download_file(recording_id: str):
    """Take one download of the recording (atomically, SECURITY H5) and send it as an attachment (H12)."""
    # Whether this recording has downloads left is decided by `take_download` alone, atomically; a link whose
    # every recording is used up therefore gets the "no downloads left" answer here too.
    release = _patients_release(downloads_may_be_used_up=True)
    item = _item_or_404(release, recording_id)
    _file_or_gone(release, item)
    # Opened (and its first chunk checked) before the download is counted: a recording that cannot be sent
    # never uses up a download, and a purge from now on cannot leave a counted download unsent.
    response = _send(release, item, as_attachment=True, conditional=False)
    if not releases.take_download(release, item, g.account):
        response.close()
        return _no_downloads_left_page(release)
    return _with_file_headers(response)


def _send(release: Release, item: ReleaseItem, *, as_attachment: bool, conditional: bool) -> Response:
    """The recording, decrypted as it streams (core.recording_http); a clear page if it cannot be sent."""
    try:
        return send_recording(
            item.recording,
            Reader("patient", g.account.public_id, request.endpoint or ""),
            etag=item.recording.sha256,
            download_name=_file_name(release, item),
            as_attachment=as_attachment,
            conditional=conditional,
        )
    except RecordingMissingError:  # purged between the check and now
        abort(_file_gone_page())
    except RecordingRefusedError:
        # The stored copy failed its check, or its key is gone: audited; nothing of it is sent.
        page = render_template("portal/downloads/file-unreadable.html")
        abort(make_response(page, GONE))


# ---------------------------------------------------------------------------------------------------------
# The checks every download route makes
# ---------------------------------------------------------------------------------------------------------


def _patients_release(*, downloads_may_be_used_up: bool = False) -> Release:
    """The release named by the link kept in this session, if it works and is the signed-in patient's own;
    otherwise the request ends with the one "link does not work" page (and an audit of the exact reason)."""
    token = link_token(LINK_PURPOSE)
    check = releases.check_token(token) if token else releases.TokenCheck(None, "no_link")
    if check.release is not None and check.release.patient_id != g.account.id:
        check = releases.TokenCheck(check.release, "wrong_patient")  # SECURITY G3, whatever else is wrong
    if check.reason == "ok" or (downloads_may_be_used_up and check.reason == "exhausted"):
        return check.release
    releases.record_link_refused(check, g.account)
    own = check.release is not None and check.reason != "wrong_patient"
    page = render_template("portal/downloads/link-refused.html", req=check.release.request if own else None)
    abort(make_response(page, LINK_REFUSED_STATUS))


def _item_or_404(release: Release, recording_id: str) -> ReleaseItem:
    """A recording on this release, by its public id (32 hex digits); anything else is a 404 (SECURITY H11)."""
    if not RECORDING_ID.fullmatch(recording_id):
        abort(404)
    return releases.release_item(release, recording_id) or abort(404)


def _file_or_gone(release: Release, item: ReleaseItem) -> None:
    """The recording's audio must be in its store; a clear 410 if deleted."""
    if not is_stored(item.recording):
        releases.record_link_refused(releases.TokenCheck(release, "file_deleted"), g.account)
        abort(_file_gone_page())


def _no_downloads_left_page(release: Release) -> Response:
    req = release.request
    return make_response(render_template("portal/downloads/no-downloads-left.html", req=req, release=release), GONE)


def _file_gone_page() -> Response:
    return make_response(render_template("portal/downloads/file-gone.html"), GONE)


def _with_file_headers(response: Response) -> Response:
    response.headers.update(FILE_HEADERS)
    return response


# ---------------------------------------------------------------------------------------------------------
# What the page shows
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingRow:
    position: int
    public_id: str
    name: str
    duration_seconds: float | None
    size_bytes: int
    media_type: str
    downloads_left: int
    available: bool
    # For a redacted copy, the parts withheld (times and the reason in plain words); empty for an original.
    withheld: list[redaction.WithheldPart]


def _row(position: int, item: ReleaseItem, release: Release) -> RecordingRow:
    recording = item.recording
    started = recording.call_started_at
    name = f"Call on {format_datetime(started)}" if started else f"Recording {position}"
    return RecordingRow(
        position=position,
        public_id=recording.public_id,
        name=name,
        duration_seconds=recording.duration_seconds,
        size_bytes=recording.size_bytes,
        media_type=recording.media_type,
        downloads_left=max(release.max_downloads - item.download_count, 0),
        available=is_stored(recording),
        withheld=redaction.withheld_parts(recording) if recording.redacted_from_id is not None else [],
    )


def _file_name(release: Release, item: ReleaseItem) -> str:
    """A name made by the server: `recording-CR-2026-00001-1.wav` (request reference, position, type)."""
    position = next(index for index, each in enumerate(release.items, start=1) if each.id == item.id)
    reference = release.request.reference
    return f"recording-{reference}-{position}.{item.recording.extension}"
