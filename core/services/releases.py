"""Releasing recordings to the patient (DESIGN §6): prepare, approve (four eyes, clinical review), the
download link, revoking and re-issuing, counting downloads, and purging release copies.

The link is `/downloads/<token>`. The token is itsdangerous-signed with DOWNLOAD_SIGNING_KEYS (not the
session key) under its own salt, and carries only the release's random public id; `max_age` is always
passed. The `Release` row decides everything else: approval, expiry, revocation, and (per recording) the
download count, which is taken by one conditional UPDATE so that two parallel downloads of the last allowed
one cannot both succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from core.extensions import db
from core.jinja import render_email
from core.models.accounts import Patient, StaffUser
from core.models.requests import Recording, RecordingRequest, Release, ReleaseItem, Status
from core.services.audit import record_event
from core.services.db import transactional
from core.services.email import queue_email
from core.services.recording_store import sweep_orphans
from core.services.recordings import attached_recordings, delete_stored, name_for_audit
from core.services.redaction import copy_state
from core.services.requests.lifecycle import RequestError, add_timeline_entry, audit, audit_object, lock, move, now_utc
from core.services.settings import MAX_LINK_DAYS, practice_settings
from core.services.tokens import absolute_url_for

DOWNLOAD_SALT = "portal-recording-download.v1"
# What a token may name: a release's random public id (32 hex digits), never a path or anything else.
PUBLIC_ID = re.compile(r"[0-9a-f]{32}")


def _serializer() -> URLSafeTimedSerializer:
    keys = [key.strip() for key in current_app.config["DOWNLOAD_SIGNING_KEYS"].split(",") if key.strip()]
    return URLSafeTimedSerializer(keys, salt=DOWNLOAD_SALT)


def make_token(release: Release) -> str:
    return _serializer().dumps({"r": release.public_id})


@dataclass(frozen=True)
class TokenCheck:
    release: Release | None
    reason: str  # "ok", or why the link does not work: the audit records the exact reason


def check_token(token: str, *, now: datetime | None = None) -> TokenCheck:
    """Decide whether a link works. Never changes anything (a GET by a mail scanner must not use it up)."""
    now = now or now_utc()
    try:
        payload = _serializer().loads(token, max_age=timedelta(days=MAX_LINK_DAYS + 1).total_seconds())
    except SignatureExpired:
        return TokenCheck(None, "signature_expired")
    except BadSignature:
        return TokenCheck(None, "bad_signature")
    public_id = payload.get("r") if isinstance(payload, dict) else None
    if not isinstance(public_id, str) or not PUBLIC_ID.fullmatch(public_id):
        return TokenCheck(None, "bad_payload")
    release = db.session.execute(select(Release).where(Release.public_id == public_id)).scalar_one_or_none()
    if release is None:
        return TokenCheck(None, "unknown_release")
    if release.approved_at is None:
        return TokenCheck(release, "not_approved")
    if release.revoked_at is not None:
        return TokenCheck(release, "revoked")
    if release.expires_at <= now:
        return TokenCheck(release, "expired")
    patient = db.session.get(Patient, release.patient_id)
    if patient is None or not patient.is_active:
        return TokenCheck(release, "account_inactive")
    # Read from the database, not the session's copy: the status may have changed since it was loaded.
    status = db.session.execute(
        select(RecordingRequest.status).where(RecordingRequest.id == release.request_id)
    ).scalar_one()
    if status not in (Status.RELEASED, Status.COMPLETED):
        return TokenCheck(release, "request_not_released")
    if all(item.download_count >= release.max_downloads for item in release.items):
        return TokenCheck(release, "exhausted")
    return TokenCheck(release, "ok")


@transactional
def record_link_refused(token_check: TokenCheck, account) -> None:
    """Audit a link that did not work, with the exact reason (the page shown is the same for every reason)."""
    with_actor = {"actor_type": account.kind, "actor_id": account.public_id} if account else {"actor_type": "anonymous"}
    record_event(
        action="download_link_refused",
        **with_actor,
        object_type="release",
        object_id=token_check.release.public_id if token_check.release else None,
        outcome="failure",
        details={"reason": token_check.reason},
    )


# ---------------------------------------------------------------------------------------------------------
# Preparing and approving
# ---------------------------------------------------------------------------------------------------------


def pending_release(req: RecordingRequest) -> Release | None:
    """The release waiting for approval, if any."""
    return db.session.execute(
        select(Release).where(
            Release.request_id == req.id, Release.approved_at.is_(None), Release.declined_at.is_(None)
        )
    ).scalar_one_or_none()


def releases_for(req: RecordingRequest) -> list[Release]:
    return list(db.session.execute(select(Release).where(Release.request_id == req.id).order_by(Release.id)).scalars())


def live_release(req: RecordingRequest, now: datetime | None = None) -> Release | None:
    now = now or now_utc()
    for release in reversed(releases_for(req)):
        if release.is_live(now):
            return release
    return None


@transactional
def prepare_release(actor: StaffUser, req: RecordingRequest) -> Release:
    """Put the attached recordings forward for approval."""
    req = lock(req)
    if req.patient is None:
        raise RequestError(
            "This request is not linked to a patient account, so a download link cannot be sent. "
            "Arrange for the patient to listen at the practice or to register."
        )
    if not req.patient.is_verified:
        raise RequestError("The patient's identity has not been confirmed.")
    if not req.patient.is_active:
        raise RequestError("The patient's account is deactivated, so a download link cannot be sent.")
    recordings = _release_copies(attached_recordings(req))
    if not recordings:
        raise RequestError("Attach at least one recording before preparing a release.")
    move(req, Status.READY_FOR_APPROVAL, actor, summary="Recordings are being checked before release")
    release = Release(
        request_id=req.id,
        patient_id=req.patient_id,
        prepared_by_id=actor.id,
        prepared_at=now_utc(),
        max_downloads=practice_settings().release_max_downloads,
    )
    db.session.add(release)
    db.session.flush()
    for recording in recordings:
        db.session.add(ReleaseItem(release_id=release.id, recording_id=recording.id))
    audit_object(
        actor,
        "release_prepared",
        release,
        details={"request": req.reference, "recordings": [r.public_id for r in recordings]},
    )
    return release


def _release_copies(originals: list[Recording]) -> list[Recording]:
    """What goes to the patient: each original, or its redacted copy where parts are marked to withhold. A
    recording with marked parts and no copy made from exactly those parts stops the release."""
    released = []
    for original in originals:
        state = copy_state(original)
        if not state.ranges:
            released.append(original)
        elif state.current is None:
            raise RequestError(
                f"Parts of {original.original_name} are marked to withhold, but its redacted copy has not been "
                "made from them yet. Produce the redacted copy first."
            )
        else:
            released.append(state.current.copy)
    return released


@dataclass(frozen=True)
class ClinicalReview:
    reviewer: StaffUser | None
    outcome: str


def clinical_review_needed(release: Release) -> bool:
    return not release.prepared_by.is_clinician


@transactional
def approve_release(actor: StaffUser, req: RecordingRequest, review: ClinicalReview | None = None) -> str:
    """Approve the prepared release: the link goes live and the patient is emailed. Returns the link."""
    req = lock(req)
    release = pending_release(req)
    if release is None or req.status != Status.READY_FOR_APPROVAL:
        raise RequestError("There is no release waiting for approval on this request.")
    if not actor.is_admin:
        raise RequestError("Only an admin can approve a release.")
    if not req.patient.is_active:
        raise RequestError("The patient's account is deactivated, so a download link cannot be sent.")
    if practice_settings().release_four_eyes and release.prepared_by_id == actor.id:
        raise RequestError("Another admin must approve this release: you prepared it.")
    if clinical_review_needed(release):
        reviewer = review.reviewer if review is not None else None
        if reviewer is None or not reviewer.is_clinician or not reviewer.is_active:
            raise RequestError("Select the clinician who reviewed the recordings.")
        if not review.outcome.strip():
            raise RequestError("Enter the outcome of the clinical review.")
        release.clinical_review_by_id = review.reviewer.id
        release.clinical_review_at = now_utc()
        release.clinical_review_outcome = review.outcome.strip()[:2000]
    now = now_utc()
    release.approved_by_id = actor.id
    release.approved_at = now
    release.expires_at = now + timedelta(days=practice_settings().release_link_days)
    move(req, Status.RELEASED, actor, summary="Recordings released: a download link was emailed")
    audit_object(
        actor,
        "release_approved",
        release,
        details={
            "request": req.reference,
            "prepared_by": release.prepared_by.public_id,
            "clinical_review_by": review.reviewer.public_id if release.clinical_review_by_id else None,
            "expires_at": release.expires_at,
            "max_downloads": release.max_downloads,
        },
    )
    return _send_link(req, release)


def _send_link(req: RecordingRequest, release: Release) -> str:
    link = absolute_url_for("portal.download_link", token=make_token(release))
    settings = practice_settings()
    subject, body = render_email(
        "releases/recordings-ready.txt",
        greeting=f"Dear {req.patient.given_name},",
        practice_name=settings.practice_name,
        practice_phone=settings.practice_phone,
        reference=req.reference,
        link=link,
        expires_at=release.expires_at,
        max_downloads=release.max_downloads,
    )
    queue_email(to=req.patient.email, subject=subject, body=body)
    return link


@transactional
def decline_release(actor: StaffUser, req: RecordingRequest, reason: str) -> None:
    """Send a prepared release back to be corrected."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("Enter what needs to change before the release can be approved.")
    req = lock(req)
    release = pending_release(req)
    if release is None:
        raise RequestError("There is no release waiting for approval on this request.")
    release.declined_at = now_utc()
    move(req, Status.IN_PROGRESS, actor, summary="The practice is still working on your request")
    add_timeline_entry(req, kind="note", actor=actor, summary="Release sent back", body=reason[:5000], visible=False)
    audit(req, "release_declined", actor, release=release.public_id)


@transactional
def revoke_release(actor: StaffUser, req: RecordingRequest, reason: str, *, reissue: bool) -> str | None:
    """Stop the live link at once. With `reissue`, a new link (same recordings, fresh lifetime and download
    allowance) is emailed; without, the request goes back to being processed (e.g. a wrong file)."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("Enter the reason for revoking the link.")
    req = lock(req)
    if req.status != Status.RELEASED:
        raise RequestError("This request has no released link.")
    now = now_utc()
    current = [r for r in releases_for(req) if r.approved_at is not None and r.revoked_at is None]
    for release in current:
        release.revoked_at = now
        release.revoked_by_id = actor.id
        release.revoke_reason = reason[:2000]
        audit_object(
            actor,
            "release_revoked",
            release,
            details={"request": req.reference, "reissue": reissue},
        )
    add_timeline_entry(
        req, kind="release", actor=actor, summary="Download link revoked", body=reason[:2000], visible=False
    )
    if not reissue:
        move(
            req,
            Status.IN_PROGRESS,
            actor,
            summary="The download link was withdrawn; the practice is working on your request",
        )
        return None
    if not current:
        raise RequestError("There is no link to re-issue.")
    if req.patient is None or not req.patient.is_active:
        raise RequestError("The patient's account is not active, so a new link cannot be sent.")
    return _reissue(actor, req, current[-1], now)


def _reissue(actor: StaffUser, req: RecordingRequest, previous: Release, now: datetime) -> str:
    """A new approved release of the recordings on `previous` (just revoked), emailed; returns the link."""
    settings = practice_settings()
    if settings.release_four_eyes and previous.prepared_by_id == actor.id:
        raise RequestError("Another admin must send the new link: you prepared these recordings for release.")
    release = Release(
        request_id=req.id,
        patient_id=req.patient_id,
        prepared_by_id=previous.prepared_by_id,
        prepared_at=previous.prepared_at,
        clinical_review_by_id=previous.clinical_review_by_id,
        clinical_review_at=previous.clinical_review_at,
        clinical_review_outcome=previous.clinical_review_outcome,
        approved_by_id=actor.id,
        approved_at=now,
        expires_at=now + timedelta(days=settings.release_link_days),
        max_downloads=settings.release_max_downloads,
    )
    db.session.add(release)
    db.session.flush()
    for item in previous.items:
        db.session.add(ReleaseItem(release_id=release.id, recording_id=item.recording_id))
    db.session.flush()
    db.session.refresh(release)
    add_timeline_entry(req, kind="release", actor=actor, summary="A new download link was emailed")
    audit_object(
        actor,
        "release_reissued",
        release,
        details={"request": req.reference, "replaces": previous.public_id, "expires_at": release.expires_at},
    )
    return _send_link(req, release)


@transactional
def ask_for_new_link(patient: Patient, req: RecordingRequest) -> None:
    """The patient's link has expired or is used up: tell staff (a timeline note); staff re-issue."""
    if req.status != Status.RELEASED or req.patient_id != patient.id:
        raise RequestError("There is no download link on this request.")
    add_timeline_entry(req, kind="message", actor=patient, summary="The patient asked for a new download link")
    audit(req, "new_link_requested", patient)


def revoke_patient_releases(patient: Patient, actor, reason: str) -> None:
    """Called inside the transaction that deactivates a patient: every live link stops (SECURITY H6)."""
    now = now_utc()
    live = db.session.execute(
        select(Release).where(
            Release.patient_id == patient.id, Release.approved_at.is_not(None), Release.revoked_at.is_(None)
        )
    ).scalars()
    for release in live:
        release.revoked_at = now
        release.revoked_by_id = actor.id if actor is not None and actor.kind == "staff" else None
        release.revoke_reason = reason
        req = release.request
        add_timeline_entry(
            req, kind="release", actor=actor, summary="Download link revoked", body=reason, visible=False
        )
        audit_object(
            actor,
            "release_revoked",
            release,
            details={"request": req.reference, "reissue": False, "reason": "account_deactivated"},
        )


# ---------------------------------------------------------------------------------------------------------
# The patient's side
# ---------------------------------------------------------------------------------------------------------


def release_item(release: Release, recording_public_id: str) -> ReleaseItem | None:
    """A recording on this release; a recording on any other release is None (SECURITY G3/H11)."""
    for item in release.items:
        if item.recording.public_id == recording_public_id:
            return item
    return None


@transactional
def take_download(release: Release, item: ReleaseItem, patient: Patient, *, now: datetime | None = None) -> bool:
    """Count one download, atomically: only if the link is still live and this recording has downloads left.
    Returns False if not (the last allowed download was just taken by a parallel request, say). Commits."""
    now = now or now_utc()
    taken = db.session.execute(
        update(ReleaseItem)
        .where(
            ReleaseItem.id == item.id,
            ReleaseItem.download_count < release.max_downloads,
            ReleaseItem.release_id.in_(
                select(Release.id).where(
                    Release.id == release.id,
                    Release.revoked_at.is_(None),
                    Release.approved_at.is_not(None),
                    Release.expires_at > now,
                )
            ),
        )
        .values(download_count=ReleaseItem.download_count + 1)
    ).rowcount
    audit_object(
        patient,
        "recording_downloaded",
        item.recording,
        outcome="success" if taken == 1 else "failure",
        details={
            "release": release.public_id,
            "request": release.request.reference,
            "bytes": item.recording.size_bytes,
            "sha256": item.recording.sha256,
            **({} if taken == 1 else {"reason": "no_downloads_left"}),
        },
    )
    return taken == 1


@transactional
def record_patient_access(
    action: str, release: Release, patient: Patient, recording: Recording | None = None, *, byte_range: str = ""
) -> None:
    """Audit a view of the download page or a play of a recording (the link itself is not changed). A play is
    audited for every part of the file sent, with the byte range asked for, so no read goes unrecorded."""
    audit_object(
        patient,
        action,
        recording or release,
        details={"release": release.public_id, **({"range": byte_range[:100]} if byte_range else {})},
    )


# ---------------------------------------------------------------------------------------------------------
# Purging release copies
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    purged: int
    bytes_freed: int


@transactional
def remove_orphan_copies(*, now: datetime | None = None) -> tuple[int, int]:
    """Remove stored copies left by uploads that never finished (core.services.recording_store.sweep_orphans),
    audited as one event when there were any."""
    copies, freed = sweep_orphans(now=now)
    if copies:
        record_event(action="orphan_recording_copies_removed", details={"copies": copies, "bytes": freed})
    return copies, freed


@transactional
def purge_release_copies(*, now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
    """Delete the files of recordings whose request closed, or whose last link expired or was revoked, more
    than the purge delay ago (a practice setting: PURGE_AFTER_DAYS unless an admin changed it). The rows stay
    (name, size, hash) and the audit records each deletion."""
    now = now or now_utc()
    cutoff = now - timedelta(days=practice_settings().purge_after_days)
    candidates = db.session.execute(
        select(Recording, RecordingRequest)
        .join(RecordingRequest, Recording.request_id == RecordingRequest.id)
        .where(Recording.purged_at.is_(None))
    ).all()
    purged = freed = 0
    for recording, req in candidates:
        if not _past_keeping(req, cutoff, now):
            continue
        purged += 1
        freed += recording.size_bytes
        if dry_run:
            continue
        delete_stored(recording)
        recording.purged_at = now
        audit_object(
            None,
            "recording_purged",
            recording,
            details={
                "request": req.reference,
                "name": name_for_audit(recording.original_name),
                "size": recording.size_bytes,
                "sha256": recording.sha256,
            },
        )
    return PurgeReport(purged, freed)


def _past_keeping(req: RecordingRequest, cutoff: datetime, now: datetime) -> bool:
    if req.closed_at is not None and req.closed_at <= cutoff:
        return True
    if req.status != Status.RELEASED:
        return False
    releases = [r for r in releases_for(req) if r.approved_at is not None]
    if not releases or any(r.is_live(now) for r in releases):
        return False
    ended = [r.revoked_at or r.expires_at for r in releases]
    return max(ended) <= cutoff
