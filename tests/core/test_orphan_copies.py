"""Stored copies no recording names: what an upload leaves when its process is killed between storing the sealed
copy and committing the recording's row, or part-way through writing a file. The nightly purge job removes them
once they are older than any upload could take (ORPHAN_AGE), in both stores, audits it, and never touches a
recording's own copy or a copy an upload may still be finishing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.requests import RecordingChunk
from core.services import worker
from core.services.recording_store import ORPHAN_AGE, recordings_dir, store_named
from tests.recording_store_support import plain_bytes
from tests.release_support import released_request


def leave_orphan(kind: str, name: str) -> None:
    """What a killed upload leaves: a sealed copy in the store, and no recording row naming it."""
    store_named(kind).write(name, [b"\x00" * 100, b"\x01" * 50])
    db.session.commit()


def chunk_names() -> set[str]:
    return set(db.session.scalars(select(RecordingChunk.object_name).distinct()))


def stored_files() -> set[str]:
    return {path.name for path in recordings_dir().iterdir()}


def removal_events() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "orphan_recording_copies_removed")))


def run_purge_at(monkeypatch, when: datetime) -> str:
    import core.services.recording_store as recording_store

    real_now = recording_store.datetime

    class Clock(real_now):
        @classmethod
        def now(cls, tz=None):
            return when

    monkeypatch.setattr(recording_store, "datetime", Clock)
    try:
        return worker._purge()
    finally:
        monkeypatch.setattr(recording_store, "datetime", real_now)


def test_an_orphan_copy_is_removed_by_the_purge_job_once_old_and_audited(app: Flask, tmp_path, monkeypatch, store_kind):
    _patient, _req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    recording = release.items[0].recording
    leave_orphan(store_kind, "orphan-of-a-killed-upload")
    if store_kind == "filesystem":
        part = recordings_dir() / ".upload-killed.part"
        part.write_bytes(b"half a file")
        hours_ago = (datetime.now(UTC) - ORPHAN_AGE - timedelta(minutes=1)).timestamp()
        for name in ("orphan-of-a-killed-upload", ".upload-killed.part"):
            os.utime(recordings_dir() / name, (hours_ago, hours_ago))

    # Fresh: an upload may still be finishing with it.
    if store_kind == "database":
        assert "orphan-of-a-killed-upload" not in run_purge_at(monkeypatch, datetime.now(UTC))
        assert "orphan-of-a-killed-upload" in chunk_names()
        assert removal_events() == []

    summary = run_purge_at(monkeypatch, datetime.now(UTC) + ORPHAN_AGE + timedelta(minutes=5))

    expected = 2 if store_kind == "filesystem" else 1  # the filesystem also had a half-written file
    assert f"removed {expected} stored copies" in summary
    assert "orphan-of-a-killed-upload" not in chunk_names() | stored_files()
    assert ".upload-killed.part" not in stored_files()
    [event] = removal_events()
    assert json.loads(event.details)["copies"] == expected
    # The released recording's own copy is untouched and still decrypts whole.
    assert len(plain_bytes(recording)) == recording.size_bytes


def test_a_fresh_file_without_a_row_is_left_for_the_upload_still_writing_it(app: Flask, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    leave_orphan("filesystem", "being-written")

    summary = run_purge_at(monkeypatch, datetime.now(UTC))

    assert "being-written" in stored_files()
    assert "stored copies" not in summary
    assert removal_events() == []
