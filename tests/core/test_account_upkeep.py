"""Looking after account data: rotating the key that encrypts authenticator secrets, purging old sessions, and
the audit record of a session that timed out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select

from core.extensions import db
from core.models.accounts import WebSession
from core.models.audit import AuditEvent
from core.services import totp
from core.sessions import hash_session_id
from tests.accounts_support import forget_last_code, make_patient, post_form, sign_in_password, signed_in_browser
from tests.conftest import new_browser


def test_rotating_the_totp_key_re_encrypts_every_secret_so_the_old_key_can_go_d10(app, monkeypatch):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", old_key)
    patient = make_patient()
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", f"{new_key},{old_key}")

    result = app.test_cli_runner().invoke(args=["accounts", "rotate-totp-key"])

    assert result.exit_code == 0, result.output
    assert result.output == "Re-encrypted 1 authenticator secrets with the first configured key.\n"
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", new_key)
    db.session.expire_all()
    stored = db.session.get(type(patient.account), patient.account.id)
    assert totp.decrypt_secret(stored.totp_secret_encrypted) == patient.secret
    actions = db.session.execute(select(AuditEvent.action)).scalars().all()
    assert "totp_key_rotated" in actions


def _session_row(name: str, *, kind: str | None, last_seen: datetime, created: datetime) -> None:
    db.session.execute(
        insert(WebSession.__table__).values(
            id_hash=hash_session_id(name),
            account_kind=kind,
            account_id=1 if kind else None,
            stage="full" if kind else "anonymous",
            data="{}",
            created_at=created,
            last_seen_at=last_seen,
        )
    )


def test_purge_sessions_removes_only_sessions_that_can_no_longer_be_used_n2(app):
    now = datetime.now(UTC)
    _session_row("fresh", kind="patient", last_seen=now - timedelta(minutes=5), created=now - timedelta(hours=1))
    _session_row("idle", kind=None, last_seen=now - timedelta(minutes=31), created=now - timedelta(minutes=40))
    _session_row("too-old", kind="patient", last_seen=now, created=now - timedelta(hours=12, minutes=1))
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["accounts", "purge-sessions"])

    assert result.exit_code == 0, result.output
    assert result.output == "Removed 2 expired sessions.\n"
    left = db.session.execute(select(WebSession.id_hash)).scalars().all()
    assert left == [hash_session_id("fresh")]
    assert db.session.execute(select(func.count()).select_from(WebSession)).scalar_one() == 1


def test_a_session_that_times_out_is_recorded_in_the_audit_trail_e4_l1(app):
    """The idle timeout ends the session on the server, and the audit trail says so (without the session id)."""
    patient = make_patient()
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        browser = signed_in_browser(app, patient)
        assert browser.get("/account").status_code == 200
        traveller.shift(timedelta(minutes=31))
        assert browser.get("/account").status_code == 302
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "session_ended")).scalars().all()
    assert [(event.object_id, event.details) for event in events] == [
        (patient.account.public_id, '{"reason":"timed_out"}')
    ]


def test_an_old_password_is_never_forced_to_change_b10(app):
    """NCSC and NIST: no password expiry. A password set 400 days ago still signs straight in to the account."""
    patient = make_patient()
    patient.account.password_changed_at = datetime.now(UTC) - timedelta(days=400)
    db.session.commit()
    browser = new_browser(app)
    forget_last_code(patient)
    sign_in_password(browser, patient)
    response = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert response.headers["Location"] == "/account"
    assert browser.get("/account").status_code == 200


def test_account_addresses_in_pages_use_random_identifiers_g11(app):
    """Staff pages name accounts by a random 128-bit identifier, never the counting database id (defence in
    depth: the guard is what protects them)."""
    first, second = make_patient(), make_patient(email="second@example.org", nhs_number="4010232137")
    for account in (first.account, second.account):
        assert re.fullmatch(r"[0-9a-f]{32}", account.public_id)
    assert first.account.public_id != second.account.public_id
    patient_rules = [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin/patients/<")]
    assert patient_rules and all(rule.startswith("/admin/patients/<public_id>") for rule in patient_rules)
