"""Accounts: patients and staff (separate tables), their sessions, single-use tokens and recovery codes,
and the practice register used to verify patients' identity.

Patients and staff share the credential columns (`CredentialsMixin`) so that one set of services handles
passwords, authenticators and sessions for both. Rows elsewhere name an account by `(account_kind,
account_id)`, where the kind is "patient" or "staff".
"""

from __future__ import annotations

import secrets
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models.content import utc_now
from core.models.types import UTCDateTime

ACCOUNT_KINDS = ("patient", "staff")
STAFF_ROLES = ("staff", "admin")
IDENTITY_STATUSES = ("unverified", "verified", "rejected")
# How a patient's identity was checked. "register_match" (the register's email address, proved by the emailed
# link) and "registration_key" (a one-time key the practice issued) are automatic; the others are recorded by staff.
AUTOMATIC_IDENTITY_METHODS = ("register_match", "registration_key")
IDENTITY_METHODS = (*AUTOMATIC_IDENTITY_METHODS, "photo_id", "call_back", "other")


def format_nhs_number(digits: str) -> str:
    """Ten digits shown the NHS way, in groups of 3, 3 and 4: "943 476 5919"."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def new_public_id() -> str:
    """A random 128-bit identifier for URLs, so that account numbers cannot be counted or guessed (G11)."""
    return secrets.token_hex(16)


class CredentialsMixin:
    """Columns every account has: sign-in email, password hash and authenticator."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    # Stored lower-cased and trimmed: the address is the sign-in name.
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The authenticator's secret, encrypted with TOTP_ENCRYPTION_KEYS (never stored in clear).
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last accepted 30-second time step: a code is accepted only for a later step (no replays).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A secret being set up but not yet confirmed with a code; it expires (SECURITY D12).
    pending_totp_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_totp_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    last_signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    kind: str  # "patient" or "staff", set on each class

    # What Flask-Login asks of `current_user`. An account is `current_user` only once both factors are done
    # in this session (core.auth), so any account it sees is signed in.
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def has_authenticator(self) -> bool:
        return self.totp_secret_encrypted is not None


class Patient(CredentialsMixin, db.Model):
    __tablename__ = "patient"
    __table_args__ = (Index("ix_patient_identity_status", "identity_status", "created_at"),)
    kind = "patient"

    given_name: Mapped[str] = mapped_column(String(100), nullable=False)
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    date_of_birth: Mapped[date] = mapped_column(Date, nullable=False)
    # Ten digits, no spaces; shown 3-3-4. Not unique: a second account claiming a number goes to staff.
    nhs_number: Mapped[str] = mapped_column(String(10), nullable=False, index=True)
    postcode: Mapped[str] = mapped_column(String(10), nullable=False)
    mobile: Mapped[str | None] = mapped_column(String(20), nullable=True)
    terms_accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identity_status: Mapped[str] = mapped_column(String(16), nullable=False, default="unverified")
    identity_method: Mapped[str | None] = mapped_column(String(20), nullable=True)
    identity_note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    identity_decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    identity_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def nhs_number_display(self) -> str:
        return format_nhs_number(self.nhs_number)

    @property
    def is_verified(self) -> bool:
        return self.identity_status == "verified"

    def __repr__(self) -> str:
        return f"<Patient {self.id}>"


class StaffUser(CredentialsMixin, db.Model):
    __tablename__ = "staff_user"
    kind = "staff"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="staff")
    # Used when releasing recordings: a release prepared by a non-clinician records a clinical review.
    is_clinician: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"<StaffUser {self.id} {self.role}>"


class RecoveryCode(db.Model):
    """One single-use recovery code, shown to its owner once and stored only as a keyed hash: "hmac-sha256$"
    and the hex HMAC-SHA256 under RECOVERY_CODE_HMAC_KEY, or (codes made before that) an argon2id hash."""

    __tablename__ = "recovery_code"
    __table_args__ = (Index("ix_recovery_code_account", "account_kind", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    account_id: Mapped[int] = mapped_column(Integer, nullable=False)
    code_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccountToken(db.Model):
    """The database side of an emailed link (email proof, password reset, staff invitation).

    The link carries only `id`, signed with itsdangerous under a salt per purpose. This row makes the link
    single use (`used_at`, set by an atomic update) and lets a password change void outstanding resets.
    """

    __tablename__ = "account_token"
    __table_args__ = (Index("ix_account_token_account", "account_kind", "account_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    account_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    account_id: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSession(db.Model):
    """A browser session, stored on the server. The cookie holds a random id; this row holds its SHA-256.

    Deleting the row ends the session everywhere, including in any copy of the cookie (SECURITY E3).
    `stage` is "anonymous", "password" (password accepted, second factor due), "enrol" (password accepted,
    authenticator must be set up) or "full".
    """

    __tablename__ = "web_session"
    __table_args__ = (
        Index("ix_web_session_account", "account_kind", "account_id"),
        Index("ix_web_session_last_seen", "last_seen_at"),
    )

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stage: Mapped[str] = mapped_column(String(16), nullable=False, default="anonymous")
    data: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    # When both factors were last proved in this session (for "sensitive actions need a fresh second factor").
    second_factor_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RegisterEntry(db.Model):
    """One patient on the practice's register, imported with `flask register import FILE.csv`."""

    __tablename__ = "register_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nhs_number: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    date_of_birth: Mapped[date] = mapped_column(Date, nullable=False)
    given_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    family_name: Mapped[str] = mapped_column(String(100), nullable=False)
    postcode: Mapped[str] = mapped_column(String(10), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class RegistrationKey(db.Model):
    """A one-time registration key the practice gives a patient (at the desk after checking ID, or in a letter
    to the address on its records), tied to that patient's entry on the practice register.

    Entering it verifies the patient's account automatically (`core.services.registration_keys`). The key itself
    is shown or printed once; this row keeps only its HMAC-SHA256 under RECOVERY_CODE_HMAC_KEY (`key_digest`,
    unique, so a key is found by one indexed lookup). It works once (`used_at`, set by a conditional UPDATE),
    until `expires_at`, and not after a newer key for the same entry replaced it (`voided_at`).
    """

    __tablename__ = "registration_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Names the key in the audit trail and on staff pages (never the key or the NHS number).
    public_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True, default=new_public_id)
    key_digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    register_entry_id: Mapped[int] = mapped_column(ForeignKey("register_entry.id"), nullable=False, index=True)
    # The member of staff who issued it; empty when it was issued by `flask register issue-keys`.
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by_patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
