"""The authenticator-app second factor (TOTP) and the recovery codes that stand in for it.

Design (SECURITY.md D and E, and pattern 5.2):

- **Secrets are encrypted at rest** by `core.crypto` with the authenticator purpose's keys,
  TOTP_ENCRYPTION_KEYS: the first key encrypts, every key decrypts, so a key is rotated by putting a new one
  first, running `rotate_encrypted_secrets`, and then removing the old one (D10).
- **Enrolment is two-step.** `start_enrolment` keeps a new secret in the account's *pending* columns; only
  `confirm_enrolment`, given a valid code within ENROLMENT_LIFETIME, makes it the active secret (D12). A
  pending secret never signs anyone in.
- **Codes are checked against the server's clock only**, with at most one 30-second step of drift either way
  (`valid_window=1`, D6, D11). Input must be exactly six ASCII digits once surrounding whitespace is
  stripped; anything else is simply "invalid" (D8).
- **No replays.** pyotp is stateless, so each account stores the last accepted time step, and a code is
  accepted only by an atomic compare-and-set that moves it strictly forward. Two requests racing with the
  same code cannot both win, whatever the database's isolation level (D3, D4, D5).
- **Recovery codes** are 80-bit random strings shown once and stored only as a keyed HMAC-SHA256
  (RECOVERY_CODE_HMAC_KEY, `passwords.keyed_digest`), compared in constant time; using one is an atomic "mark
  used if unused", so each works exactly once (R1, R2, R3, R5). Codes made before the HMAC were stored as
  argon2id hashes: they still work, but checking a wrong code against them costs about a second each, so
  the account page asks their owners to get new codes (`has_legacy_recovery_codes`).

Services here never commit: the caller's unit of work does (`core.services.db.transactional`). Nothing here
logs or audits a secret or a code; callers record the outcome (accepted, invalid, replay) without the value.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
import segno
from flask import current_app
from pyotp.exceptions import OTPVerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from core import crypto
from core.extensions import db
from core.models.accounts import CredentialsMixin, Patient, RecoveryCode, StaffUser
from core.services.passwords import keyed_digest, verify_secret
from core.services.settings import practice_settings

# An unconfirmed secret is discarded after this long (SECURITY D12: at most 30 minutes).
ENROLMENT_LIFETIME = timedelta(minutes=30)
# Codes one step either side of the server's are accepted, for clock drift and typing time (D6). No more.
VALID_WINDOW = 1
CODE_PATTERN = re.compile(r"[0-9]{6}")

RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: no 0/O or 1/I/L to confuse
RECOVERY_CODE_LENGTH = 16  # 16 characters of 5 bits each: 80 bits (R1 recommends at least 80)
RECOVERY_CODE_GROUP = 4
# What a recovery code may look like once spaces and dashes are removed, before upper-casing.
RECOVERY_CODE_PATTERN = re.compile(rf"[A-Za-z2-7]{{{RECOVERY_CODE_LENGTH}}}")

# How a recovery code is stored: this prefix and the hex HMAC-SHA256 of its canonical form. Anything else in
# `code_hash` is an argon2id hash from before (it starts "$argon2id$").
RECOVERY_DIGEST_PREFIX = "hmac-sha256$"
RECOVERY_DIGEST_PURPOSE = "recovery-code"

QR_TARGET_PIXELS = 200
QR_QUIET_ZONE = 4  # modules of light border, as the QR specification requires
QR_TITLE = "QR code to scan with your authenticator app"

ACCEPTED = "accepted"
INVALID = "invalid"
REPLAY = "replay"
# Why what was typed cannot be a code at all (`code_problem`, `recovery_code_problem`): each gets its own message.
EMPTY = "empty"
MALFORMED = "malformed"


# TOTP_ENCRYPTION_KEYS is missing or malformed, or none of its keys can decrypt a stored secret.
TotpKeyError = crypto.CryptoError


# --- Encryption of secrets at rest -------------------------------------------------------------------------


def encrypt_secret(secret: str) -> str:
    """Encrypt an authenticator secret with the first of TOTP_ENCRYPTION_KEYS."""
    return crypto.encrypt(crypto.AUTHENTICATOR_SECRETS, secret)


def decrypt_secret(token: str) -> str:
    """Decrypt a stored secret with any of TOTP_ENCRYPTION_KEYS; raises crypto.DecryptionError if none fits."""
    return crypto.decrypt(crypto.AUTHENTICATOR_SECRETS, token)


def rotate_encrypted_secrets() -> int:
    """Re-encrypt every active and pending secret, of patients and staff, with the first configured key.

    Run after putting a new key first in TOTP_ENCRYPTION_KEYS; once the caller has committed, the old keys
    can be removed. Returns the number of secrets re-encrypted.
    """
    count = 0
    for model in (Patient, StaffUser):
        accounts = (
            db.session.execute(
                select(model).where(
                    or_(model.totp_secret_encrypted.is_not(None), model.pending_totp_secret_encrypted.is_not(None))
                )
            )
            .scalars()
            .all()
        )
        for account in accounts:
            for column in ("totp_secret_encrypted", "pending_totp_secret_encrypted"):
                token = getattr(account, column)
                if token is not None:
                    try:
                        rotated = crypto.reencrypt(crypto.AUTHENTICATOR_SECRETS, token)
                    except crypto.DecryptionError as exc:
                        raise crypto.DecryptionError(f"{account!r}: {column} fits none of the keys.") from exc
                    setattr(account, column, rotated)
                    count += 1
    db.session.flush()
    return count


# --- Codes and enrolment -----------------------------------------------------------------------------------


def _server_now(now: datetime | None) -> datetime:
    """The time to check codes at: the server's clock, or a server-side time a caller or test passes in.

    Only a timezone-aware datetime is taken, so a value from a request (a string or a number) can never be
    used as the time (D11), and a naive datetime cannot be misread as local time by pyotp.
    """
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime from the server's clock.")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware.")
    return now


def normalise_code(raw: object) -> str | None:
    """The code if `raw`, stripped of surrounding whitespace, is exactly six ASCII digits; otherwise None.

    Inner spaces, other scripts' digits (full-width, Arabic-Indic), other lengths and non-strings (a JSON
    list or object) are all refused here, so no caller can crash on them (D8).
    """
    if not isinstance(raw, str):
        return None
    code = raw.strip()
    return code if CODE_PATTERN.fullmatch(code) else None


def code_problem(raw: object) -> str | None:
    """EMPTY if nothing was typed, MALFORMED if what was typed cannot be a code (see `normalise_code`), else
    None. Only the shape is looked at, never the secret: the answer says nothing about the account."""
    if not isinstance(raw, str) or not raw.strip():
        return EMPTY
    return None if normalise_code(raw) is not None else MALFORMED


def pending_has_expired(account: CredentialsMixin, *, now: datetime | None = None) -> bool:
    """Whether the key shown on the set-up page was left unconfirmed for longer than ENROLMENT_LIFETIME (the
    page then shows a new key, and says why)."""
    return account.pending_totp_secret_encrypted is not None and not _pending_is_live(account, _server_now(now))


def _pending_is_live(account: CredentialsMixin, now: datetime) -> bool:
    created = account.pending_totp_created_at
    return (
        account.pending_totp_secret_encrypted is not None and created is not None and now - created < ENROLMENT_LIFETIME
    )


def _clear_pending(account: CredentialsMixin) -> None:
    account.pending_totp_secret_encrypted = None
    account.pending_totp_created_at = None


def start_enrolment(account: CredentialsMixin, *, now: datetime | None = None) -> str:
    """Begin setting up an authenticator and return the secret to show (as a QR code and as text).

    The secret is kept encrypted in the pending columns and does nothing until `confirm_enrolment`. Showing
    the page again within ENROLMENT_LIFETIME shows the same secret, so a reload does not invalidate what the
    person has just scanned; after that a new secret is made. Any active secret keeps working meanwhile.
    """
    now = _server_now(now)
    if _pending_is_live(account, now):
        return decrypt_secret(account.pending_totp_secret_encrypted)
    secret = pyotp.random_base32()  # 160 bits from the secrets module; pyotp refuses fewer (D9)
    account.pending_totp_secret_encrypted = encrypt_secret(secret)
    account.pending_totp_created_at = now
    return secret


def provisioning_uri(secret: str, account_label: str) -> str:
    """The otpauth:// URI for an authenticator app: the issuer is the practice, the label the email address.

    The label must be an email address, never an NHS number or a name (D13): authenticator apps show it, and
    some back it up to the cloud.
    """
    if "@" not in account_label:
        raise ValueError("The authenticator label must be the account's email address.")
    issuer = current_app.config.get("TOTP_ISSUER") or practice_settings().practice_name
    return pyotp.TOTP(secret).provisioning_uri(name=account_label, issuer_name=issuer)


@dataclass(frozen=True)
class QrDrawing:
    """A QR code as one SVG path over a square of `size` modules (the quiet zone included). The template draws
    it, autoescaped like everything else: the path holds only "M", "h", "v", "z" and numbers."""

    size: int
    path: str
    pixels: int


def qr_code(uri: str) -> QrDrawing:
    """The QR code for `uri`, drawn here: nothing leaves the server (SECURITY D13). Dark on light with the
    specification's quiet zone, about QR_TARGET_PIXELS across. The page also shows the secret as text for
    people who cannot scan."""
    qr = segno.make(uri, error="m")
    runs: list[str] = []
    for y, row in enumerate(qr.matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append(f"M{start + QR_QUIET_ZONE},{y + QR_QUIET_ZONE}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    size = len(qr.matrix) + 2 * QR_QUIET_ZONE
    return QrDrawing(size=size, path="".join(runs), pixels=max(1, round(QR_TARGET_PIXELS / size)) * size)


def _matching_timecode(secret: str, code: str, now: datetime) -> int | None:
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=now, valid_window=VALID_WINDOW)
    except OTPVerificationError:
        return None


def confirm_enrolment(account: CredentialsMixin, code: object, *, now: datetime | None = None) -> bool:
    """Activate the pending secret if `code` is valid for it and it is younger than ENROLMENT_LIFETIME (D12).

    On success the pending secret replaces any active one (the old one stops working at once), and the
    code's time step is recorded so the same code cannot then be used to sign in. An expired pending secret
    is cleared. Returns False for a wrong, malformed or expired code, or when nothing is pending.
    """
    now = _server_now(now)
    if account.pending_totp_secret_encrypted is None:
        return False
    if not _pending_is_live(account, now):
        _clear_pending(account)
        return False
    normalised = normalise_code(code)
    if normalised is None:
        return False
    timecode = _matching_timecode(decrypt_secret(account.pending_totp_secret_encrypted), normalised, now)
    if timecode is None:
        return False
    account.totp_secret_encrypted = account.pending_totp_secret_encrypted
    account.totp_last_step = timecode
    account.totp_enrolled_at = now
    _clear_pending(account)
    return True


def verify_code(account: CredentialsMixin, raw_code: object, *, now: datetime | None = None) -> str:
    """Check a sign-in code against the account's active secret: "accepted", "invalid" or "replay".

    "replay" means the code was right but its time step is not later than the last one accepted (the same
    code again, or an older one still inside the drift window, or a concurrent request that lost the race):
    callers reject it, log it as token reuse and tell the account holder (D3-D5). An account without an
    active secret gets "invalid".
    """
    now = _server_now(now)
    code = normalise_code(raw_code)
    if code is None or account.totp_secret_encrypted is None:
        return INVALID
    timecode = _matching_timecode(decrypt_secret(account.totp_secret_encrypted), code, now)
    if timecode is None:
        return INVALID
    model = type(account)
    # The check and the write are one statement, so the database serialises racing requests: the loser
    # re-reads the winner's step and matches no row.
    result = db.session.execute(
        update(model)
        .where(
            model.id == account.id,
            or_(model.totp_last_step.is_(None), model.totp_last_step < timecode),
        )
        .values(totp_last_step=timecode)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.expire(account, ["totp_last_step"])
        return REPLAY
    set_committed_value(account, "totp_last_step", timecode)
    return ACCEPTED


def clear_authenticator(account: CredentialsMixin) -> None:
    """Remove the active and pending secrets and every recovery code (before re-enrolment, or a staff reset)."""
    account.totp_secret_encrypted = None
    account.totp_enrolled_at = None
    account.totp_last_step = None
    _clear_pending(account)
    _delete_recovery_codes(account)


# --- Recovery codes ----------------------------------------------------------------------------------------


def _delete_recovery_codes(account: CredentialsMixin) -> None:
    db.session.execute(
        delete(RecoveryCode).where(RecoveryCode.account_kind == account.kind, RecoveryCode.account_id == account.id)
    )


def _new_recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))


def _display_form(canonical: str) -> str:
    return "-".join(canonical[i : i + RECOVERY_CODE_GROUP] for i in range(0, len(canonical), RECOVERY_CODE_GROUP))


def canonical_recovery_code(raw: object) -> str | None:
    """A recovery code as stored (upper case, no spaces or dashes), or None if it cannot be one."""
    if not isinstance(raw, str):
        return None
    compact = re.sub(r"[\s-]+", "", raw)
    return compact.upper() if RECOVERY_CODE_PATTERN.fullmatch(compact) else None


def recovery_code_problem(raw: object) -> str | None:
    """EMPTY, MALFORMED (not 16 letters and digits once spaces and dashes are removed) or None."""
    if not isinstance(raw, str) or not raw.strip():
        return EMPTY
    return None if canonical_recovery_code(raw) is not None else MALFORMED


def recovery_code_digest(canonical: str) -> str:
    """What `code_hash` holds for a recovery code (in its canonical form): the prefix and its keyed HMAC."""
    return RECOVERY_DIGEST_PREFIX + keyed_digest(canonical, purpose=RECOVERY_DIGEST_PURPOSE)


def generate_recovery_codes(account: CredentialsMixin) -> list[str]:
    """Replace the account's recovery codes with RECOVERY_CODE_COUNT new ones and return them for display.

    Each is 80 random bits, shown as four groups of four characters (like ABCD-EFGH-JKLM-NPQR). Only a keyed
    HMAC-SHA256 of each is stored, so the codes can never be shown again (R1, R2, R4); every earlier code,
    argon2id ones included, stops working (R5).
    """
    _delete_recovery_codes(account)
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(
        RecoveryCode(account_kind=account.kind, account_id=account.id, code_hash=recovery_code_digest(code))
        for code in codes
    )
    db.session.flush()
    return [_display_form(code) for code in codes]


def _matching_code_id(unused: list, code: str) -> int | None:
    """The id of the unused code that `code` is, or None.

    Every HMAC-stored code is compared with `hmac.compare_digest`, all of them, whether or not one matched
    earlier, so the time taken does not depend on which code (if any) matched. Only when none does are older
    argon2id hashes tried, one by one (about a second each at production cost): a wrong code costs that only
    on an account that still has codes from before the HMAC.
    """
    wanted = recovery_code_digest(code)
    found = None
    legacy = []
    for code_id, code_hash in unused:
        if code_hash.startswith(RECOVERY_DIGEST_PREFIX):
            if hmac.compare_digest(code_hash, wanted) and found is None:
                found = code_id
        else:
            legacy.append((code_id, code_hash))
    if found is not None:
        return found
    for code_id, code_hash in legacy:
        if verify_secret(code_hash, code):
            return code_id
    return None


def use_recovery_code(account: CredentialsMixin, raw: object, *, now: datetime | None = None) -> bool:
    """Spend one of the account's unused recovery codes. True only for the request that marks it used (R3).

    Case, spaces and dashes do not matter. The "mark used" is one conditional UPDATE, so two requests with
    the same code cannot both succeed.
    """
    now = _server_now(now)
    code = canonical_recovery_code(raw)
    if code is None:
        return False
    unused = db.session.execute(
        select(RecoveryCode.id, RecoveryCode.code_hash).where(
            RecoveryCode.account_kind == account.kind,
            RecoveryCode.account_id == account.id,
            RecoveryCode.used_at.is_(None),
        )
    ).all()
    code_id = _matching_code_id(unused, code)
    if code_id is None:
        return False
    result = db.session.execute(
        update(RecoveryCode).where(RecoveryCode.id == code_id, RecoveryCode.used_at.is_(None)).values(used_at=now)
    )
    return result.rowcount == 1


def has_legacy_recovery_codes(account: CredentialsMixin) -> bool:
    """Whether the account still has unused recovery codes stored the old way (argon2id): its owner is asked
    to get new ones, which are stored as keyed HMACs and cost nothing to check."""
    return (
        db.session.execute(
            select(RecoveryCode.id)
            .where(
                RecoveryCode.account_kind == account.kind,
                RecoveryCode.account_id == account.id,
                RecoveryCode.used_at.is_(None),
                RecoveryCode.code_hash.not_like(RECOVERY_DIGEST_PREFIX + "%"),
            )
            .limit(1)
        ).first()
        is not None
    )


def remaining_recovery_codes(account: CredentialsMixin) -> int:
    """How many of the account's recovery codes are still unused."""
    return db.session.execute(
        select(func.count(RecoveryCode.id)).where(
            RecoveryCode.account_kind == account.kind,
            RecoveryCode.account_id == account.id,
            RecoveryCode.used_at.is_(None),
        )
    ).scalar_one()
