"""Marking parts of a recording to withhold (core.services.redaction.ranges): what staff may mark, when, what
the audit keeps, and how a release treats a recording with marked parts."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.redaction import CopyStatus, RedactedCopy, RedactionRange, format_timestamp
from core.models.requests import RequestEvent
from core.services import recordings, redaction, releases
from core.services import requests as requests_service
from core.services.audit import verify_chain
from core.services.requests import RequestError
from tests.accounts_support import make_patient, make_staff
from tests.release_support import SAMPLE_WAV


@pytest.fixture
def attached(app, tmp_path, monkeypatch):
    """A verified patient's request with the sample attached by a clerk: (clerk, request, recording)."""
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    patient = make_patient(verified=True)
    clerk = make_staff(email="clerk@practice.example", name="Sam Clerk", role="staff").account
    today = requests_service.practice_today()
    details = requests_service.CallDetails(
        calls_from=today - timedelta(days=10), calls_to=today - timedelta(days=3), description="A call about results"
    )
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    with SAMPLE_WAV.open("rb") as stream:
        recording = recordings.attach_recording(clerk, req, stream, recordings.RecordingDetails(original_name="c.wav"))
    return clerk, req, recording


def add(clerk, req, recording, start_ms=1000, end_ms=2500, reason="other-person", note="Her sister's name"):
    return redaction.add_range(clerk, req, recording, start_ms=start_ms, end_ms=end_ms, reason=reason, note=note)


def events(action: str) -> list[dict]:
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
    return [json.loads(row.details) for row in rows.scalars()]


def test_times_are_shown_as_staff_type_them():
    assert format_timestamp(0) == "00:00.0"
    assert format_timestamp(83_500) == "01:23.5"
    assert format_timestamp(3_723_400) == "1:02:03.4"


def test_a_marked_part_is_kept_audited_without_its_note_and_on_the_timeline_for_staff_only(attached):
    clerk, req, recording = attached

    row = add(clerk, req, recording)

    assert (row.start_label, row.end_label, row.reason_label) == ("00:01.0", "00:02.5", "Another person's information")
    [added] = events("redaction_range_added")
    assert added == {
        "request": req.reference,
        "recording": recording.public_id,
        "start_ms": 1000,
        "end_ms": 2500,
        "reason": "other-person",
        "note_given": True,
    }
    assert "sister" not in json.dumps(added)
    entry = db.session.execute(select(RequestEvent).where(RequestEvent.kind == "redaction")).scalar_one()
    assert entry.visible_to_patient is False
    assert verify_chain().ok


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "reason", "note", "field", "message"),
    [
        (-100, 1000, "other-person", "", "start", "The start must be 00:00.0 or later."),
        (2000, 2000, "other-person", "", "end", "The end must be after the start."),
        (2000, 1000, "other-person", "", "end", "The end must be after the start."),
        (2000, 2050, "other-person", "", "end", "A part to withhold must be at least 0.1 seconds long."),
        (1000, 99_000_000, "other-person", "", "end", "The end must be within the recording"),
        (1000, 2000, "because", "", "reason", "Select why this part is withheld."),
        (1000, 2000, "other-person", "x" * 501, "note", "Enter no more than 500 characters."),
    ],
)
def test_a_part_that_cannot_be_withheld_is_refused_naming_the_field_and_nothing_is_kept(
    attached, start_ms, end_ms, reason, note, field, message
):
    clerk, req, recording = attached

    with pytest.raises(redaction.RedactionError) as refused:
        add(clerk, req, recording, start_ms=start_ms, end_ms=end_ms, reason=reason, note=note)

    assert refused.value.field == field
    assert str(refused.value).startswith(message)
    assert db.session.execute(select(RedactionRange)).first() is None
    assert events("redaction_range_added") == []


def test_changing_and_removing_a_part_are_audited_with_before_and_after(attached):
    clerk, req, recording = attached
    row = add(clerk, req, recording)

    redaction.change_range(
        clerk, req, recording, row.public_id, start_ms=1200, end_ms=3000, reason="staff-details", note=""
    )
    redaction.remove_range(clerk, req, recording, row.public_id)

    [changed] = events("redaction_range_changed")
    assert changed["before"] == {"start_ms": 1000, "end_ms": 2500, "reason": "other-person", "note_given": True}
    assert (changed["start_ms"], changed["end_ms"], changed["reason"]) == (1200, 3000, "staff-details")
    [removed] = events("redaction_range_removed")
    assert (removed["start_ms"], removed["end_ms"]) == (1200, 3000)
    assert redaction.ranges_for(recording) == []
    with pytest.raises(redaction.RedactionError, match="no longer marked"):
        redaction.remove_range(clerk, req, recording, row.public_id)


def test_another_recordings_part_cannot_be_reached_through_this_one(app, attached):
    clerk, req, recording = attached
    row = add(clerk, req, recording)
    with SAMPLE_WAV.open("rb") as stream:
        other = recordings.attach_recording(clerk, req, stream, recordings.RecordingDetails(original_name="d.wav"))

    assert redaction.range_on(other, row.public_id) is None
    with pytest.raises(redaction.RedactionError, match="no longer marked"):
        redaction.change_range(clerk, req, other, row.public_id, start_ms=0, end_ms=900, reason="other-person", note="")


def test_a_copy_is_asked_for_once_per_set_of_parts_with_the_practices_fill(attached):
    clerk, req, recording = attached
    with pytest.raises(redaction.RedactionError, match="Mark at least one part"):
        redaction.request_copy(clerk, req, recording)
    add(clerk, req, recording)

    copy = redaction.request_copy(clerk, req, recording)

    assert (copy.status, copy.fill, copy.ranges[0]["start_ms"]) == (CopyStatus.QUEUED, "silence", 1000)
    with pytest.raises(redaction.RedactionError, match="already being made"):
        redaction.request_copy(clerk, req, recording)
    [asked] = events("redacted_copy_requested")
    assert asked["original_sha256"] == recording.sha256
    assert asked["ranges"] == [{"start_ms": 1000, "end_ms": 2500, "reason": "other-person"}]
    assert redaction.status_json(recording) == {"status": "queued", "progress": 0, "message": "", "ready": False}


def test_changing_the_parts_makes_an_earlier_copy_out_of_date_but_a_note_alone_does_not(attached):
    clerk, req, recording = attached
    row = add(clerk, req, recording)
    copy = redaction.request_copy(clerk, req, recording)

    redaction.change_range(
        clerk, req, recording, row.public_id, start_ms=1000, end_ms=2500, reason="other-person", note="Another note"
    )
    assert db.session.get(RedactedCopy, copy.id).status == CopyStatus.QUEUED

    redaction.change_range(
        clerk, req, recording, row.public_id, start_ms=1000, end_ms=2600, reason="other-person", note=""
    )
    assert db.session.get(RedactedCopy, copy.id).status == CopyStatus.SUPERSEDED
    assert (
        redaction.redaction_summary(recording) == "1 part marked to withhold; the redacted copy has not been produced"
    )


def test_a_release_cannot_be_prepared_while_marked_parts_have_no_copy(attached):
    clerk, req, recording = attached
    add(clerk, req, recording)

    with pytest.raises(RequestError, match="Produce the redacted copy first"):
        releases.prepare_release(clerk, req)

    assert releases.pending_release(req) is None
    assert db.session.get(type(req), req.id).status == "in_progress"


def test_a_recording_with_no_marked_parts_is_released_as_it_is(attached):
    clerk, req, recording = attached

    release = releases.prepare_release(clerk, req)

    assert [item.recording_id for item in release.items] == [recording.id]
    assert redaction.redaction_summary(recording) == "No parts marked to withhold"


def test_parts_cannot_change_once_a_release_is_being_approved(attached):
    clerk, req, recording = attached
    releases.prepare_release(clerk, req)

    assert redaction.can_edit(req) is False
    with pytest.raises(redaction.RedactionError, match="before a release is prepared"):
        add(clerk, req, recording)
    with pytest.raises(redaction.RedactionError, match="before a release is prepared"):
        redaction.request_copy(clerk, req, recording)
