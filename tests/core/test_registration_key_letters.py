"""Issue 11, SECURITY A7: `flask register issue-keys` issues a batch of one-time registration keys for letters.

Keys are printed once (CSV for a mail merge, spreadsheet-safe), stored only as keyed hashes, cancel the
patient's older keys, and are audited without the key or the NHS number. A file with any bad line issues
nothing.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy import func, select, text

from core.extensions import db
from core.models.accounts import RegisterEntry, RegistrationKey
from core.models.audit import AuditEvent
from core.services import registration_keys, settings

ADA = {"nhs_number": "9434765919", "date_of_birth": date(1955, 12, 10), "given_name": "Ada", "family_name": "Lovelace"}
BOB = {"nhs_number": "4010232137", "date_of_birth": date(1975, 12, 1), "given_name": None, "family_name": "=Smith"}


def add_entries() -> None:
    db.session.add_all([RegisterEntry(postcode="SE28 8BE", **ADA), RegisterEntry(postcode="M1 1AE", **BOB)])
    db.session.commit()


def key_count() -> int:
    return db.session.execute(select(func.count()).select_from(RegistrationKey)).scalar_one()


def issue(app, tmp_path, lines: str, *extra: str):
    numbers = tmp_path / "numbers.txt"
    numbers.write_text(lines, encoding="utf-8")
    return app.test_cli_runner().invoke(args=["register", "issue-keys", str(numbers), *extra])


def test_issue_keys_prints_one_key_per_patient_once_as_safe_csv_and_audits_each_a7(app, tmp_path):
    add_entries()
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        result = issue(app, tmp_path, "nhs_number\n943 476 5919\n\n4010232137\n")

    assert result.exit_code == 0, result.output
    assert result.stderr == "Issued 2 registration keys.\n"
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["nhs_number", "given_name", "family_name", "postcode", "registration_key", "expires"]
    assert [row[:4] for row in rows[1:]] == [
        ["9434765919", "Ada", "Lovelace", "SE28 8BE"],
        ["4010232137", "", "'=Smith", "M1 1AE"],
    ]
    keys = [row[4] for row in rows[1:]]
    assert all(registration_keys.canonical_key(key) for key in keys) and len(set(keys)) == 2
    assert [row[5] for row in rows[1:]] == ["3 January 2027 at 10:00am"] * 2  # 30 days, in London time
    stored = repr(db.session.execute(text("SELECT * FROM registration_key")).all())
    assert not any(key.replace("-", "") in stored for key in keys)
    events = list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == "registration_key_issued")).scalars()
    )
    assert [(event.actor_type, json.loads(event.details)["via"]) for event in events] == [("system", "cli")] * 2
    trail = repr(db.session.execute(text("SELECT * FROM audit_event")).all())
    assert "9434765919" not in trail and not any(key.replace("-", "") in trail for key in keys)


def test_issue_keys_lists_every_problem_and_issues_nothing(app, tmp_path):
    add_entries()
    result = issue(app, tmp_path, "9434765919\n9434765918\n9876543210\n943 476 5919\n")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: not a valid NHS number",
        "line 3: not on the practice register",
        "line 4: the same NHS number as line 1",
        "No keys were issued.",
    ]
    assert "9434765919" not in result.output
    assert key_count() == 0


def test_issue_keys_writes_an_owner_only_file_and_never_over_an_existing_one(app, tmp_path):
    add_entries()
    letters = tmp_path / "letters.csv"
    assert issue(app, tmp_path, "9434765919\n", "--output", str(letters)).exit_code == 0
    assert stat.S_IMODE(letters.stat().st_mode) == 0o600
    assert len(list(csv.reader(io.StringIO(letters.read_text())))) == 2

    again = issue(app, tmp_path, "4010232137\n", "--output", str(letters))
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert key_count() == 1


def test_a_new_batch_cancels_the_patients_older_keys_and_uses_the_practice_setting_a7(app, tmp_path, monkeypatch):
    add_entries()
    [first] = registration_keys.issue_keys_for_numbers(["9434765919"])
    monkeypatch.setitem(app.config, "REGISTRATION_KEY_DAYS", 10)
    assert settings.practice_settings().registration_key_days == 10
    [second] = registration_keys.issue_keys_for_numbers(["9434765919"])

    rows = {row.public_id: row for row in db.session.execute(select(RegistrationKey)).scalars()}
    assert rows[first.public_id].voided_at is not None and rows[second.public_id].voided_at is None
    assert second.expires_at - rows[second.public_id].issued_at.replace(tzinfo=UTC) == timedelta(days=10)


def test_an_empty_file_issues_nothing(app, tmp_path):
    result = issue(app, tmp_path, "nhs_number\n\n")
    assert result.exit_code == 1
    assert "the file has no NHS numbers" in result.stderr
