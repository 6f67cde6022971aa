"""The authenticator second factor and recovery codes (SECURITY.md D and E), tested at the service level.

Codes are computed with pyotp for explicit server times, so no test depends on when it runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
import segno
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from core.extensions import db
from core.models.accounts import Patient, RecoveryCode, StaffUser
from core.services import totp
from core.services.passwords import hash_secret

# Fifteen seconds into a 30-second step, so the steps either side are unambiguous.
NOW = datetime(2026, 3, 9, 10, 0, 15, tzinfo=UTC)
STEP = timedelta(seconds=30)
NHS_NUMBER = "9434765919"


def create_staff(*, email: str = "a@example.org") -> StaffUser:
    staff = StaffUser(email=email, name="A Staff", role="staff")
    db.session.add(staff)
    db.session.commit()
    return staff


def create_patient(*, email: str = "p@example.org") -> Patient:
    patient = Patient(
        given_name="Pat",
        family_name="Jones",
        date_of_birth=date(1950, 1, 2),
        nhs_number=NHS_NUMBER,
        postcode="SE28 8BE",
        email=email,
    )
    db.session.add(patient)
    db.session.commit()
    return patient


def enrol(account, *, now: datetime = NOW) -> str:
    """Give the account an active authenticator, confirmed with a code from a minute before `now`."""
    secret = totp.start_enrolment(account, now=now - 2 * STEP)
    assert totp.confirm_enrolment(account, pyotp.TOTP(secret).at(now - 2 * STEP), now=now - 2 * STEP)
    db.session.commit()
    return secret


def code_at(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment)


def stored_last_step(account) -> int | None:
    model = type(account)
    return db.session.execute(select(model.totp_last_step).where(model.id == account.id)).scalar_one()


# --- D8: what counts as a code ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "12345 6",
        "１２３４５６",  # full-width digits  # noqa: RUF001
        "١٢٣٤٥٦",  # Arabic-Indic digits, which a \d pattern would accept
        "1234567",
        "12345",
        "",
        "   ",
        "12345a",
        "123456\x00",
        None,
        123456,
        ["123456"],
        {"code": "123456"},
    ],
)
def test_malformed_codes_are_refused_without_error_d8(raw):
    assert totp.normalise_code(raw) is None


@pytest.mark.parametrize("raw", ["123456", " 123456 ", "\t123456\n", "\u3000012345\u3000"])
def test_six_ascii_digits_with_surrounding_whitespace_are_a_code_d8(raw):
    assert totp.normalise_code(raw) == raw.strip()


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")  # noqa: RUF001


@pytest.mark.parametrize(
    "malform",
    [
        lambda code: [code],
        lambda code: {"code": code},
        lambda code: code + "0",
        lambda code: f"{code[:3]} {code[3:]}",
        lambda code: code.translate(FULL_WIDTH),
    ],
    ids=["list", "dict", "seven-digits", "inner-space", "full-width"],
)
def test_malformed_forms_of_a_valid_code_are_invalid_and_change_nothing_d8(app, malform):
    staff = create_staff()
    secret = enrol(staff)
    last = stored_last_step(staff)
    code = code_at(secret, NOW)
    assert totp.verify_code(staff, malform(code), now=NOW) == "invalid"
    assert stored_last_step(staff) == last
    # The same code, properly typed, is still good: the malformed attempt did not use it up.
    assert totp.verify_code(staff, f" {code}\n", now=NOW) == "accepted"


# --- D2, D3, D4, D6: verifying codes ------------------------------------------------------------------------


def test_a_valid_code_is_accepted_and_its_step_recorded_d2(app):
    staff = create_staff()
    secret = enrol(staff)
    assert totp.verify_code(staff, code_at(secret, NOW), now=NOW) == "accepted"
    db.session.commit()
    assert stored_last_step(staff) == pyotp.TOTP(secret).timecode(NOW)
    assert staff.totp_last_step == pyotp.TOTP(secret).timecode(NOW)


def test_a_wrong_code_is_invalid(app):
    staff = create_staff()
    secret = enrol(staff)
    last = stored_last_step(staff)
    wrong = f"{(int(code_at(secret, NOW)) + 1) % 1_000_000:06d}"
    assert totp.verify_code(staff, wrong, now=NOW) == "invalid"
    assert stored_last_step(staff) == last


def test_reused_totp_code_is_rejected_as_a_replay_d3(app):
    staff = create_staff()
    secret = enrol(staff)
    code = code_at(secret, NOW)
    assert totp.verify_code(staff, code, now=NOW) == "accepted"
    db.session.commit()
    # Again a few seconds later, still within the same 30-second step.
    assert totp.verify_code(staff, code, now=NOW + timedelta(seconds=10)) == "replay"


def test_reused_totp_code_is_rejected_in_a_second_sign_in_d3(app):
    staff = create_staff()
    secret = enrol(staff)
    code = code_at(secret, NOW)
    assert totp.verify_code(staff, code, now=NOW) == "accepted"
    db.session.commit()
    staff_id = staff.id
    db.session.remove()  # a different request: nothing carried over in memory
    again = db.session.get(StaffUser, staff_id)
    assert totp.verify_code(again, code, now=NOW) == "replay"


def test_the_code_that_confirmed_enrolment_cannot_then_sign_in_d3(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    code = code_at(secret, NOW)
    assert totp.confirm_enrolment(staff, code, now=NOW)
    db.session.commit()
    assert totp.verify_code(staff, code, now=NOW) == "replay"


def test_an_older_code_inside_the_window_is_rejected_after_a_newer_one_d4(app):
    staff = create_staff()
    secret = enrol(staff)
    assert totp.verify_code(staff, code_at(secret, NOW), now=NOW) == "accepted"
    db.session.commit()
    assert totp.verify_code(staff, code_at(secret, NOW - STEP), now=NOW) == "replay"
    # A code from a step ahead (drift) moves the stored step on, after which the current step is old too.
    assert totp.verify_code(staff, code_at(secret, NOW + STEP), now=NOW) == "accepted"
    assert totp.verify_code(staff, code_at(secret, NOW + STEP), now=NOW + STEP) == "replay"
    assert totp.verify_code(staff, code_at(secret, NOW + 2 * STEP), now=NOW + 2 * STEP) == "accepted"
    assert stored_last_step(staff) == pyotp.TOTP(secret).timecode(NOW + 2 * STEP)


@pytest.mark.parametrize(
    ("offset", "expected"), [(-2, "invalid"), (-1, "accepted"), (0, "accepted"), (1, "accepted"), (2, "invalid")]
)
def test_codes_one_step_either_side_are_accepted_and_no_further_d6(app, offset, expected):
    staff = create_staff()
    secret = enrol(staff, now=NOW - 5 * STEP)
    assert totp.verify_code(staff, code_at(secret, NOW + offset * STEP), now=NOW) == expected
    if expected == "accepted":
        assert stored_last_step(staff) == pyotp.TOTP(secret).timecode(NOW) + offset


def test_only_the_server_clock_decides_d11(app):
    staff = create_staff()
    secret = enrol(staff, now=datetime.now(UTC) - timedelta(hours=2))
    # Without `now`, the server's clock is used: an hour-old code fails, a current one passes.
    assert totp.verify_code(staff, code_at(secret, datetime.now(UTC) - timedelta(hours=1))) == "invalid"
    assert totp.verify_code(staff, pyotp.TOTP(secret).now()) == "accepted"
    # A time as a request would carry it (a string or a number) is never taken, nor an ambiguous naive time.
    with pytest.raises(TypeError):
        totp.verify_code(staff, "123456", now="1773050415")
    with pytest.raises(TypeError):
        totp.verify_code(staff, "123456", now=1773050415)
    with pytest.raises(ValueError, match="timezone"):
        totp.verify_code(staff, "123456", now=NOW.replace(tzinfo=None))


def test_an_account_without_an_authenticator_accepts_no_code(app):
    staff = create_staff()
    assert totp.verify_code(staff, "123456", now=NOW) == "invalid"


# --- D5: racing requests -------------------------------------------------------------------------------------


def race(app, attempts: int, action: Callable[[StaffUser], object], *, staff_id: int) -> list[object]:
    """Run `action` in `attempts` threads at once, each a request of its own (app context, session, commit).

    Returns each thread's result, or "locked" where SQLite gave up waiting for the write lock: that request
    fails, which is also safe. Any other error fails the test.
    """
    barrier = threading.Barrier(attempts)
    outcomes: list[object] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            with app.app_context():
                account = db.session.get(StaffUser, staff_id)
                barrier.wait(timeout=30)
                try:
                    outcome = action(account)
                    db.session.commit()
                except OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    db.session.rollback()
                    outcome = "locked"
                outcomes.append(outcome)
        except BaseException as exc:  # report failures from the threads to the test
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(outcomes) == attempts
    return outcomes


def test_concurrent_uses_of_the_same_code_let_exactly_one_through_d5(app):
    staff = create_staff()
    secret = enrol(staff)
    staff_id = staff.id
    db.session.remove()  # the test's own session must hold no locks while the threads run

    # Several rounds, each with the next step's code, so that a check-then-write race shows reliably.
    for round_number in range(5):
        moment = NOW + 3 * round_number * STEP
        code = code_at(secret, moment)
        outcomes = race(
            app, 4, lambda account, c=code, t=moment: totp.verify_code(account, c, now=t), staff_id=staff_id
        )
        assert outcomes.count("accepted") == 1, (round_number, outcomes)
        assert set(outcomes) <= {"accepted", "replay", "locked"}
        assert stored_last_step(db.session.get(StaffUser, staff_id)) == pyotp.TOTP(secret).timecode(moment)
        db.session.remove()


# --- D9, D10: the secret ------------------------------------------------------------------------------------


def test_enrolment_secret_is_160_random_bits_d9(app):
    first, second = create_staff(email="one@example.org"), create_staff(email="two@example.org")
    secrets_made = [totp.start_enrolment(first, now=NOW), totp.start_enrolment(second, now=NOW)]
    for secret in secrets_made:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20
    assert secrets_made[0] != secrets_made[1]


def test_stored_secret_is_ciphertext_readable_only_with_the_key_d10(app):
    staff = create_staff()
    secret = enrol(staff)
    totp.start_enrolment(staff, now=NOW)  # a pending one too
    db.session.commit()
    row = db.session.execute(
        text("SELECT totp_secret_encrypted, pending_totp_secret_encrypted FROM staff_user WHERE id = :id"),
        {"id": staff.id},
    ).one()
    for column in row:
        assert secret not in column
        assert base64.b32encode(base64.b32decode(secret)).decode() not in column
        with pytest.raises(InvalidToken):
            Fernet(Fernet.generate_key()).decrypt(column.encode())
    assert Fernet(app.config["TOTP_ENCRYPTION_KEYS"].encode()).decrypt(row[0].encode()).decode() == secret
    assert totp.decrypt_secret(row[0]) == secret


def test_a_secret_cannot_be_read_without_its_key_d10(app, monkeypatch):
    staff = create_staff()
    enrol(staff)
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    with pytest.raises(totp.TotpKeyError):
        totp.decrypt_secret(staff.totp_secret_encrypted)
    with pytest.raises(totp.TotpKeyError):
        totp.verify_code(staff, "123456", now=NOW)
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", "")
    with pytest.raises(totp.TotpKeyError, match="not set"):
        totp.encrypt_secret("JBSWY3DPEHPK3PXP")


def test_rotating_keys_re_encrypts_every_secret_with_the_new_key_d10(app, monkeypatch):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", key_a)
    staff, patient = create_staff(), create_patient()
    staff_secret = enrol(staff)
    patient_secret = enrol(patient)
    pending_secret = totp.start_enrolment(patient, now=NOW)
    untouched = create_staff(email="no-authenticator@example.org")
    db.session.commit()
    before = {staff.totp_secret_encrypted, patient.totp_secret_encrypted, patient.pending_totp_secret_encrypted}

    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", f"{key_b}, {key_a}")
    assert totp.rotate_encrypted_secrets() == 3
    db.session.commit()

    monkeypatch.setitem(app.config, "TOTP_ENCRYPTION_KEYS", key_b)
    db.session.expire_all()
    after = {staff.totp_secret_encrypted, patient.totp_secret_encrypted, patient.pending_totp_secret_encrypted}
    assert before.isdisjoint(after)
    assert totp.decrypt_secret(staff.totp_secret_encrypted) == staff_secret
    assert totp.decrypt_secret(patient.totp_secret_encrypted) == patient_secret
    assert totp.decrypt_secret(patient.pending_totp_secret_encrypted) == pending_secret
    assert untouched.totp_secret_encrypted is None
    assert totp.verify_code(patient, code_at(patient_secret, NOW), now=NOW) == "accepted"


# --- D12: enrolment -----------------------------------------------------------------------------------------


def test_a_pending_secret_signs_nobody_in_until_confirmed_d12(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    db.session.commit()
    assert not staff.has_authenticator
    assert totp.verify_code(staff, code_at(secret, NOW), now=NOW) == "invalid"

    assert totp.confirm_enrolment(staff, code_at(secret, NOW), now=NOW)
    db.session.commit()
    assert staff.has_authenticator
    assert totp.decrypt_secret(staff.totp_secret_encrypted) == secret
    assert staff.totp_enrolled_at == NOW
    assert staff.totp_last_step == pyotp.TOTP(secret).timecode(NOW)
    assert staff.pending_totp_secret_encrypted is None
    assert staff.pending_totp_created_at is None


def test_a_wrong_code_does_not_confirm_and_keeps_the_pending_secret_d12(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    wrong = f"{(int(code_at(secret, NOW)) + 1) % 1_000_000:06d}"
    assert not totp.confirm_enrolment(staff, wrong, now=NOW)
    assert not totp.confirm_enrolment(staff, {"code": code_at(secret, NOW)}, now=NOW)
    assert not totp.confirm_enrolment(staff, code_at(secret, NOW + 2 * STEP), now=NOW)
    assert not staff.has_authenticator
    assert totp.start_enrolment(staff, now=NOW + timedelta(minutes=1)) == secret


def test_a_pending_secret_expires_after_thirty_minutes_d12(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    db.session.commit()
    late = NOW + totp.ENROLMENT_LIFETIME
    assert timedelta(minutes=30) >= totp.ENROLMENT_LIFETIME  # SECURITY D12's upper limit
    assert not totp.confirm_enrolment(staff, code_at(secret, late), now=late)
    db.session.commit()
    assert not staff.has_authenticator
    assert staff.pending_totp_secret_encrypted is None


def test_a_pending_secret_just_inside_its_lifetime_still_confirms_d12(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    db.session.commit()  # so the creation time makes a round trip through the database
    nearly = NOW + totp.ENROLMENT_LIFETIME - timedelta(seconds=1)
    assert totp.confirm_enrolment(staff, code_at(secret, nearly), now=nearly)


def test_starting_again_shows_the_same_secret_until_it_expires_d12(app):
    staff = create_staff()
    secret = totp.start_enrolment(staff, now=NOW)
    db.session.commit()
    assert totp.start_enrolment(staff, now=NOW + timedelta(minutes=29)) == secret
    assert totp.start_enrolment(staff, now=NOW + timedelta(minutes=30)) != secret


def test_confirming_with_nothing_pending_fails(app):
    staff = create_staff()
    assert not totp.confirm_enrolment(staff, "123456", now=NOW)


def test_re_enrolment_makes_the_old_secret_stop_working_d14(app):
    staff = create_staff()
    old = enrol(staff)
    new = totp.start_enrolment(staff, now=NOW)
    # Until the new one is confirmed, the old one still works (the person may abandon the change).
    assert totp.verify_code(staff, code_at(old, NOW - STEP), now=NOW) == "accepted"
    assert totp.confirm_enrolment(staff, code_at(new, NOW + STEP), now=NOW + STEP)
    db.session.commit()
    later = NOW + 4 * STEP
    assert totp.verify_code(staff, code_at(old, later), now=later) == "invalid"
    assert totp.verify_code(staff, code_at(new, later), now=later) == "accepted"


def test_clearing_the_authenticator_removes_secrets_and_recovery_codes(app):
    staff = create_staff()
    secret = enrol(staff)
    totp.start_enrolment(staff, now=NOW)
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    totp.clear_authenticator(staff)
    db.session.commit()
    assert staff.totp_secret_encrypted is None
    assert staff.pending_totp_secret_encrypted is None
    assert staff.pending_totp_created_at is None
    assert staff.totp_last_step is None
    assert staff.totp_enrolled_at is None
    assert totp.remaining_recovery_codes(staff) == 0
    assert not totp.use_recovery_code(staff, codes[0])
    assert totp.verify_code(staff, code_at(secret, NOW), now=NOW) == "invalid"


# --- D13: provisioning --------------------------------------------------------------------------------------


def test_provisioning_uri_names_the_practice_and_the_email_address_never_the_nhs_number_d13(app):
    patient = create_patient(email="pat.jones@example.org")
    secret = totp.start_enrolment(patient, now=NOW)
    uri = totp.provisioning_uri(secret, patient.email)
    assert uri.startswith("otpauth://totp/Call%20recordings:pat.jones%40example.org?")
    assert f"secret={secret}" in uri
    assert "issuer=Call%20recordings" in uri
    assert NHS_NUMBER not in uri
    with pytest.raises(ValueError, match="email"):
        totp.provisioning_uri(secret, patient.nhs_number)


def test_provisioning_uri_falls_back_to_the_practice_name_d13(app, monkeypatch):
    monkeypatch.setitem(app.config, "TOTP_ISSUER", "")
    monkeypatch.setitem(app.config, "PRACTICE_NAME", "Example Surgery")
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "a@example.org")
    assert "issuer=Example%20Surgery" in uri


def test_qr_code_is_drawn_locally_as_a_path_that_decodes_to_the_uri_d13(app):
    """The drawing holds only path commands (nothing to escape, nothing pointing elsewhere: pyotp's README
    sends the secret to a chart service, we must not), is about 200 px across, and is the QR code of the URI."""
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "someone.with.a.long.address@example.org")
    drawing = totp.qr_code(uri)
    assert re.fullmatch(r"(M\d+,\d+h\d+v1h-\d+z)+", drawing.path)
    assert 160 <= drawing.pixels <= 240
    expected = segno.make(uri, error="m")
    assert drawing.size == len(expected.matrix) + 2 * totp.QR_QUIET_ZONE
    dark = set()
    for command in re.finditer(r"M(\d+),(\d+)h(\d+)", drawing.path):
        x, y, run = (int(value) for value in command.groups())
        dark |= {(x + step - totp.QR_QUIET_ZONE, y - totp.QR_QUIET_ZONE) for step in range(run)}
    assert dark == {(x, y) for y, row in enumerate(expected.matrix) for x, bit in enumerate(row) if bit}


# --- R1, R2, R3, R5: recovery codes -------------------------------------------------------------------------


def test_recovery_codes_are_ten_80_bit_codes_r1(app):
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    assert len(codes) == totp.RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", code)
    assert len(totp.RECOVERY_CODE_ALPHABET) ** totp.RECOVERY_CODE_LENGTH >= 2**80
    assert totp.remaining_recovery_codes(staff) == 10


def test_only_keyed_hmacs_of_recovery_codes_are_stored_r2(app):
    """Issue 11: HMAC-SHA256 under RECOVERY_CODE_HMAC_KEY (a key outside the database), not argon2id."""
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    stored = db.session.execute(text("SELECT * FROM recovery_code")).mappings().all()
    assert len(stored) == 10
    dump = repr(stored)
    for code in codes:
        canonical = code.replace("-", "")
        assert canonical not in dump and code not in dump and canonical.lower() not in dump
    hashes = [row["code_hash"] for row in stored]
    key = app.config["RECOVERY_CODE_HMAC_KEY"].encode()
    expected = hmac.new(key, b"recovery-code\0" + codes[0].replace("-", "").encode(), hashlib.sha256).hexdigest()
    assert hashes.count("hmac-sha256$" + expected) == 1
    assert all(re.fullmatch(r"hmac-sha256\$[0-9a-f]{64}", value) for value in hashes)


def legacy_codes(account, count: int = 3) -> list[str]:
    """Recovery codes stored the way main stored them before issue 11: argon2id hashes."""
    codes = ["".join(secrets.choice(totp.RECOVERY_CODE_ALPHABET) for _ in range(16)) for _ in range(count)]
    db.session.add_all(
        RecoveryCode(account_kind=account.kind, account_id=account.id, code_hash=hash_secret(code)) for code in codes
    )
    db.session.commit()
    return codes


def test_recovery_codes_stored_as_argon2id_before_the_change_still_work_once_r3(app):
    staff = create_staff()
    codes = legacy_codes(staff)
    assert totp.has_legacy_recovery_codes(staff)
    assert not totp.use_recovery_code(staff, "ABCD-EFGH-JKLM-NPQR", now=NOW)
    assert totp.use_recovery_code(staff, codes[1].lower(), now=NOW)
    db.session.commit()
    assert not totp.use_recovery_code(staff, codes[1], now=NOW)
    assert totp.remaining_recovery_codes(staff) == 2


def test_new_recovery_codes_replace_argon2id_ones_so_a_wrong_code_costs_no_argon2_r5(app, monkeypatch):
    """Re-issue migrates an account: after it no argon2 verification runs for any code, right or wrong."""
    staff = create_staff()
    old = legacy_codes(staff)
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    assert not totp.has_legacy_recovery_codes(staff)
    argon2_checks = []
    monkeypatch.setattr(totp, "verify_secret", lambda *args: argon2_checks.append(args) or False)
    assert not totp.use_recovery_code(staff, old[0], now=NOW)
    assert not totp.use_recovery_code(staff, "ABCD-EFGH-JKLM-NPQR", now=NOW)
    assert totp.use_recovery_code(staff, codes[9], now=NOW)
    assert argon2_checks == []


def test_recovery_codes_are_compared_with_compare_digest_all_of_them_r2(app, monkeypatch):
    """Constant time: every stored digest is compared with hmac.compare_digest, whether or not one matched."""
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(totp.hmac, "compare_digest", lambda a, b: compared.append(a) or real(a, b))
    assert totp.use_recovery_code(staff, codes[0], now=NOW)
    assert len(compared) == 10
    compared.clear()
    assert not totp.use_recovery_code(staff, "ABCD-EFGH-JKLM-NPQR", now=NOW)
    assert len(compared) == 9


def test_a_recovery_code_works_once_r3(app):
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    assert totp.use_recovery_code(staff, codes[3], now=NOW)
    db.session.commit()
    assert totp.remaining_recovery_codes(staff) == 9
    assert not totp.use_recovery_code(staff, codes[3], now=NOW)
    used = db.session.execute(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None))).scalars().all()
    assert len(used) == 1 and used[0].used_at == NOW


def test_recovery_codes_ignore_case_spaces_and_dashes_r3(app):
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    assert totp.use_recovery_code(staff, f"  {codes[0].lower()}  ")
    assert totp.use_recovery_code(staff, codes[1].replace("-", " "))
    assert totp.use_recovery_code(staff, codes[2].replace("-", ""))
    assert totp.remaining_recovery_codes(staff) == 7


@pytest.mark.parametrize(
    "raw", ["", "ABCD-EFGH-IJKL", "ABCD-EFGH-IJKL-MNO0", "ABCD-EFGH-IJKL-MNOPQ", None, ["x"], {"a": 1}]
)
def test_malformed_recovery_codes_are_refused_r3(app, raw):
    staff = create_staff()
    totp.generate_recovery_codes(staff)
    assert not totp.use_recovery_code(staff, raw)
    assert totp.remaining_recovery_codes(staff) == 10


def test_concurrent_uses_of_one_recovery_code_let_exactly_one_through_r3(app):
    staff = create_staff()
    codes = totp.generate_recovery_codes(staff)
    db.session.commit()
    staff_id = staff.id
    db.session.remove()

    for round_number, code in enumerate(codes[:3]):
        outcomes = race(app, 3, lambda account, c=code: totp.use_recovery_code(account, c), staff_id=staff_id)
        assert outcomes.count(True) == 1, (round_number, outcomes)
        assert set(outcomes) <= {True, False, "locked"}
    assert totp.remaining_recovery_codes(db.session.get(StaffUser, staff_id)) == 7


def test_regenerating_recovery_codes_voids_the_old_ones_r5(app):
    staff = create_staff()
    old = totp.generate_recovery_codes(staff)
    assert totp.use_recovery_code(staff, old[0])
    new = totp.generate_recovery_codes(staff)
    db.session.commit()
    assert set(old).isdisjoint(new)
    assert totp.remaining_recovery_codes(staff) == 10
    assert not any(totp.use_recovery_code(staff, code) for code in old)
    assert totp.use_recovery_code(staff, new[0])


def test_recovery_codes_belong_to_one_account_of_one_kind(app):
    staff, patient = create_staff(), create_patient()
    assert staff.id == patient.id  # same number in different tables: the kind must keep them apart
    staff_codes = totp.generate_recovery_codes(staff)
    patient_codes = totp.generate_recovery_codes(patient)
    other_staff = create_staff(email="b@example.org")
    assert not totp.use_recovery_code(patient, staff_codes[0])
    assert not totp.use_recovery_code(other_staff, staff_codes[0])
    assert totp.remaining_recovery_codes(staff) == 10
    assert totp.use_recovery_code(patient, patient_codes[0])
    # Regenerating one account's codes leaves the other's alone.
    totp.generate_recovery_codes(staff)
    assert totp.remaining_recovery_codes(patient) == 9
