"""The worker's side of redaction (core.services.redaction.copies and waveforms), in both recording stores: a
copy made from the marked parts, proved silent, stored encrypted as a recording of its own, released in place
of its original; and what happens when it cannot be made."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import audio
from core.extensions import db
from core.models.audit import AuditEvent
from core.models.redaction import CopyStatus, RedactedCopy
from core.models.requests import Recording
from core.services import recordings, redaction, releases
from core.services import requests as requests_service
from core.services.audit import verify_chain
from core.services.recording_store import store_named
from tests.accounts_support import make_patient, make_staff
from tests.audio_support import decode_mono, peak_dbfs
from tests.release_support import AUDIO

WORKER = "test-host:1"
# The sample is loud from start to end (about -3 dBFS every second), so any sound left in a range shows.
PARTS = ((2000, 4000, "other-person"), (7500, 9000, "staff-details"))


@pytest.fixture
def clerk():
    return make_staff(email="clerk@practice.example", name="Sam Clerk", role="staff").account


def attach(clerk, sample: str = "call-sample.wav"):
    patient = make_patient(verified=True)
    today = requests_service.practice_today()
    details = requests_service.CallDetails(
        calls_from=today - timedelta(days=10), calls_to=today - timedelta(days=3), description="A call about results"
    )
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    with (AUDIO / sample).open("rb") as stream:
        recording = recordings.attach_recording(clerk, req, stream, recordings.RecordingDetails(original_name=sample))
    return req, recording


def mark_and_ask(clerk, req, recording, parts=PARTS) -> RedactedCopy:
    for start_ms, end_ms, reason in parts:
        redaction.add_range(clerk, req, recording, start_ms=start_ms, end_ms=end_ms, reason=reason, note="")
    return redaction.request_copy(clerk, req, recording)


def plain_audio(recording: Recording) -> bytes:
    with recordings.open_recording(recording) as reader:
        return reader.read()


def audit_details(action: str) -> list[dict]:
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
    return [json.loads(row.details) for row in rows.scalars()]


@pytest.mark.parametrize("sample", ["call-sample.wav", "call-sample.mp3", "call-sample.ogg", "call-sample.m4a"])
def test_the_worker_makes_a_copy_whose_marked_parts_are_silent_and_keeps_the_original(store_kind, clerk, sample):
    req, original = attach(clerk, sample)
    before = plain_audio(original)
    asked = mark_and_ask(clerk, req, original)

    assert redaction.process_next_copy(WORKER) is True
    assert redaction.process_next_copy(WORKER) is False  # nothing else to make

    copy = db.session.get(RedactedCopy, asked.id)
    assert (copy.status, copy.progress, copy.message) == (CopyStatus.READY, 100, None)
    made = copy.copy
    assert (made.redacted_from_id, made.request_id, made.storage) == (original.id, req.id, store_kind)
    assert (made.media_type, made.extension) == (audio.OUTPUT_MEDIA_TYPE, audio.OUTPUT_EXTENSION)
    data = plain_audio(made)
    assert hashlib.sha256(data).hexdigest() == made.sha256 != original.sha256
    samples, rate = decode_mono(data)
    for start_ms, end_ms, _ in PARTS:
        assert peak_dbfs(samples, rate, start_ms / 1000, end_ms / 1000) <= audio.SILENCE_THRESHOLD_DBFS
    assert peak_dbfs(samples, rate, 5.0, 6.5) > -20  # the rest of the call is still there
    assert abs(len(samples) / rate - original.duration_seconds) < 0.2
    assert plain_audio(original) == before
    assert recordings.attached_recordings(req) == [original]  # the copy is shown with its original

    [produced] = audit_details("redacted_copy_produced")
    assert (produced["original_sha256"], produced["copy_sha256"]) == (original.sha256, made.sha256)
    assert produced["requested_by"] == clerk.public_id  # the worker made it; the audit says who asked for it
    assert [(r["start_ms"], r["end_ms"], r["reason"]) for r in produced["ranges"]] == list(PARTS)
    assert produced["proof"]["ok"] is True and len(produced["proof"]["ranges"]) == 2
    assert verify_chain().ok


def test_the_redacted_copy_is_released_in_place_of_its_original_and_says_what_was_withheld(store_kind, clerk):
    req, original = attach(clerk)
    mark_and_ask(clerk, req, original)
    redaction.process_next_copy(WORKER)
    made = redaction.copy_state(original).current.copy

    release = releases.prepare_release(clerk, req)

    assert [item.recording_id for item in release.items] == [made.id]
    parts = redaction.withheld_parts(made)
    assert [(p.start_label, p.end_label) for p in parts] == [("00:02.0", "00:04.0"), ("00:07.5", "00:09.0")]
    assert parts[0].patient_wording == "it was information about another person"
    assert redaction.withheld_parts(original) == []
    assert redaction.redaction_summary(original) == "2 parts marked to withhold; redacted copy ready"


def test_a_copy_that_fails_its_proof_is_refused_kept_nowhere_and_staff_are_told(app, clerk, tmp_path, monkeypatch):
    """The proof's own behaviour is tested in test_redaction_audio; here, what the worker does with a failure."""
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    req, original = attach(clerk)
    asked = mark_and_ask(clerk, req, original)
    real_prove = audio.prove

    def prove_finding_sound(*args, **kwargs):
        proof = real_prove(*args, **kwargs)
        loud = [audio.RangeLevel(r.start, r.end, -3.0, False) for r in proof.ranges]
        reason = "Sound was found in a withheld part (00:02.0 to 00:04.0)."
        return audio.Proof(False, loud, proof.original_duration, proof.copy_duration, proof.duration_ok, reason)

    monkeypatch.setattr(audio, "prove", prove_finding_sound)
    stored_before = db.session.execute(select(Recording.id)).scalars().all()

    redaction.process_next_copy(WORKER)

    copy = db.session.get(RedactedCopy, asked.id)
    assert (copy.status, copy.copy_id) == (CopyStatus.REFUSED, None)
    assert copy.message == "Sound was found in a withheld part (00:02.0 to 00:04.0)."
    assert db.session.execute(select(Recording.id)).scalars().all() == stored_before
    [refused] = audit_details("redacted_copy_refused")
    assert refused["proof"]["ok"] is False
    assert redaction.status_json(original)["message"] == copy.message
    assert redaction.redaction_summary(original).endswith("the last copy could not be used: produce it again")


def test_an_original_no_longer_stored_fails_with_a_message_not_a_crash(store_kind, clerk):
    req, original = attach(clerk)
    asked = mark_and_ask(clerk, req, original)
    store_named(original.storage).delete(original.stored_name)
    db.session.commit()

    assert redaction.process_next_copy(WORKER) is True

    copy = db.session.get(RedactedCopy, asked.id)
    assert copy.status == CopyStatus.FAILED
    assert "no longer stored" in copy.message
    assert audit_details("redacted_copy_failed")[0]["original"] == original.public_id


def test_a_copy_whose_parts_changed_before_the_worker_reached_it_is_not_made(store_kind, clerk):
    req, original = attach(clerk)
    asked = mark_and_ask(clerk, req, original)
    [first, _] = redaction.ranges_for(original)
    redaction.remove_range(clerk, req, original, first.public_id)

    assert redaction.process_next_copy(WORKER) is False
    assert db.session.get(RedactedCopy, asked.id).status == CopyStatus.SUPERSEDED


def test_a_copy_whose_parts_change_while_it_is_made_is_dropped(app, clerk, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    req, original = attach(clerk)
    asked = mark_and_ask(clerk, req, original)
    real_redact = audio.redact

    def redact_while_staff_change_the_parts(source, spans, out, *, fill, progress=None):
        [first, _] = redaction.ranges_for(original)
        redaction.remove_range(clerk, req, original, first.public_id)
        return real_redact(source, spans, out, fill=fill, progress=progress)

    monkeypatch.setattr(audio, "redact", redact_while_staff_change_the_parts)
    stored_before = db.session.execute(select(Recording.id)).scalars().all()

    assert redaction.process_next_copy(WORKER) is True

    assert db.session.get(RedactedCopy, asked.id).status == CopyStatus.SUPERSEDED
    assert db.session.execute(select(Recording.id)).scalars().all() == stored_before
    assert audit_details("redacted_copy_produced") == []


def test_the_worker_draws_each_recordings_waveform_once(store_kind, clerk):
    _, original = attach(clerk)

    assert redaction.draw_next_waveform(WORKER) is True
    assert redaction.draw_next_waveform(WORKER) is False

    waveform = redaction.waveform_for(original)
    assert (waveform.status, waveform.per_second) == ("ready", audio.PEAKS_PER_SECOND)
    assert abs(waveform.duration_seconds - original.duration_seconds) < 0.2
    assert len(waveform.values) >= int(original.duration_seconds * waveform.per_second)
    assert max(waveform.values) > 50  # the sample is loud
    assert audit_details("recording_waveform_drawn")[0]["points"] == len(waveform.values)


def test_removing_an_original_removes_its_redacted_copies(store_kind, clerk):
    req, original = attach(clerk)
    mark_and_ask(clerk, req, original)
    redaction.process_next_copy(WORKER)
    made = redaction.copy_state(original).current.copy

    recordings.remove_recording(clerk, req, original, "Attached to the wrong request")

    db.session.refresh(made)
    assert made.removed_at is not None and made.purged_at is not None
    assert not store_named(made.storage).exists(made.stored_name)
