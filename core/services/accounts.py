"""Patient and staff accounts: registration, email proof, sign-in steps, passwords, authenticators and
identity decisions.

Each public function is one unit of work: it writes the change, its audit event and any email in one
transaction (`transactional`), so an auditor never sees a change without its event, and a patient never gets
an email about something that did not happen. Functions return plain outcomes; the blueprints turn them
into pages. Nothing here ever logs or audits a password, code, token or NHS number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update

from core.extensions import db
from core.jinja import render_email
from core.models.accounts import (
    AUTOMATIC_IDENTITY_METHODS,
    IDENTITY_METHODS,
    STAFF_ROLES,
    Patient,
    RegisterEntry,
    RegistrationKey,
    StaffUser,
)
from core.services import totp
from core.services.audit import record_event
from core.services.db import transactional
from core.services.email import normalise_email, queue_email
from core.services.errors import ServiceError
from core.services.passwords import hash_password, verify_password
from core.services.register import find_register_match
from core.services.registration_keys import find_key
from core.services.releases import revoke_patient_releases
from core.services.requests import start_clocks_for_verified_patient
from core.services.settings import practice_settings
from core.services.tokens import (
    RESET_PASSWORD,
    SET_UP_AGAIN,
    STAFF_INVITATION,
    VERIFY_EMAIL,
    absolute_url_for,
    has_unused_token,
    issue_token,
    peek_token,
    redeem_token,
    void_tokens,
)
from core.sessions import end_account_sessions, enforce_session_limit

ACCOUNT_MODELS = {"patient": Patient, "staff": StaffUser}


class AccountError(ServiceError):
    """A request that cannot be carried out, with a message to show the person who made it."""


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(account) -> dict:
    return {"actor_type": account.kind, "actor_id": account.public_id}


def _subject(account) -> dict:
    return {"object_type": account.kind, "object_id": account.public_id}


def find_account(kind: str, email: str, *, lock: bool = False):
    """The account with this sign-in address, or None. `lock` holds its row (PostgreSQL) until commit, so a
    registration and a confirmation of the same account happen one after the other."""
    model = ACCOUNT_MODELS[kind]
    statement = select(model).where(model.email == normalise_email(email))
    return db.session.execute(statement.with_for_update() if lock else statement).scalar_one_or_none()


def account_by_public_id(kind: str, public_id: str):
    """The account a staff page names in its address (a random id, never the database's counter), or None."""
    model = ACCOUNT_MODELS[kind]
    return db.session.execute(select(model).where(model.public_id == public_id)).scalar_one_or_none()


def get_account(kind: str | None, account_id: int | None):
    if kind not in ACCOUNT_MODELS or account_id is None:
        return None
    return db.session.get(ACCOUNT_MODELS[kind], account_id)


def _greeting(account) -> str:
    """By name only once the address is proved (a patient's) or was chosen by an admin (staff): an email to an
    unproved address must not carry words typed by whoever registered it."""
    if account.kind == "staff":
        return f"Dear {account.name},"
    return f"Dear {account.given_name}," if account.email_verified_at is not None else "Hello,"


def _email(account, template: str, **context) -> None:
    """Queue the email `template` (under templates/emails/) to `account`. Its text says that something
    happened and where to sign in, never what is in a request (no health information in email)."""
    settings = practice_settings()
    subject, body = render_email(
        template,
        greeting=_greeting(account),
        practice_name=settings.practice_name,
        practice_phone=settings.practice_phone,
        **context,
    )
    queue_email(to=account.email, subject=subject, body=body)


# ---------------------------------------------------------------------------------------------------------
# Patients: registration and email proof
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    given_name: str
    family_name: str
    date_of_birth: date
    nhs_number: str  # ten digits, already checked
    postcode: str  # already normalised
    email: str
    mobile: str | None
    password: str


@transactional
def register_patient(details: Registration) -> None:
    """Create the account and email a link to prove the address. Never reveals whether the address was taken:
    the caller shows the same "check your email" page either way (SECURITY A2).

    - The address belongs to a confirmed account: its owner is emailed that someone tried to register.
    - It belongs to an account nobody has confirmed yet: that account takes the new details and password, and
      the old links stop working. Confirming also needs the password, so whoever registered first with
      someone else's address cannot take over the account when its owner registers and confirms.
    """
    email = normalise_email(details.email)
    password_hash = hash_password(details.password)  # spent in every branch, so timing matches too
    existing = find_account("patient", email, lock=True)
    if existing is not None and (existing.email_verified_at is not None or not existing.is_active):
        _email(
            existing,
            "accounts/registration-attempt.txt",
            forgot_password_link=absolute_url_for("portal.forgot_password"),
        )
        record_event(action="registration_duplicate_email", **_subject(existing), outcome="failure")
        return

    patient = existing or Patient(email=email)
    patient.given_name = details.given_name.strip()
    patient.family_name = details.family_name.strip()
    patient.date_of_birth = details.date_of_birth
    patient.nhs_number = details.nhs_number
    patient.postcode = details.postcode
    patient.mobile = (details.mobile or "").strip() or None
    patient.password_hash = password_hash
    patient.password_changed_at = patient.terms_accepted_at = _now()
    if existing is None:
        db.session.add(patient)
        db.session.flush()
        record_event(action="account_registered", actor_type="patient", actor_id=patient.public_id, **_subject(patient))
    else:
        # New identity details: any check made of the earlier ones no longer applies.
        patient.identity_status = "unverified"
        patient.identity_method = patient.identity_note = None
        patient.identity_decided_by_id = patient.identity_decided_at = None
        void_tokens(VERIFY_EMAIL, patient)
        record_event(action="registration_replaced_unconfirmed", **_subject(patient))
    _send_email_proof(patient)


def other_claims(patient: Patient) -> list[Patient]:
    """Other accounts that claim this patient's NHS number: active, with a proved email address, and not
    turned down by staff. While there is one, neither account is verified automatically (SECURITY A6): both
    wait for staff, whose pages flag them. Registering is never refused because of another claim, so a
    stranger's earlier claim cannot lock the real patient out."""
    return list(
        db.session.execute(
            select(Patient)
            .where(
                Patient.nhs_number == patient.nhs_number,
                Patient.id != patient.id,
                Patient.is_active.is_(True),
                Patient.email_verified_at.is_not(None),
                Patient.identity_status != "rejected",
            )
            .order_by(Patient.created_at)
        ).scalars()
    )


def duplicate_claim_counts(patients: list[Patient]) -> dict[int, int]:
    """For a page listing patients: how many other accounts claim each one's NHS number (see `other_claims`),
    by patient id, for the patients that have any. One query for the whole list."""
    numbers = {patient.nhs_number for patient in patients}
    if not numbers:
        return {}
    claimants = db.session.execute(
        select(Patient.id, Patient.nhs_number).where(
            Patient.nhs_number.in_(numbers),
            Patient.is_active.is_(True),
            Patient.email_verified_at.is_not(None),
            Patient.identity_status != "rejected",
        )
    ).all()
    by_number: dict[str, set[int]] = {}
    for patient_id, number in claimants:
        by_number.setdefault(number, set()).add(patient_id)
    counts = {patient.id: len(by_number.get(patient.nhs_number, set()) - {patient.id}) for patient in patients}
    return {patient_id: count for patient_id, count in counts.items() if count}


def _register_entry_for(patient: Patient, *, lock: bool = False):
    """The register entry matching the patient's four details, held (PostgreSQL) until commit with `lock`, so
    two accounts claiming one entry are decided one after the other and each sees the other's claim."""
    entry = find_register_match(
        nhs_number=patient.nhs_number,
        date_of_birth=patient.date_of_birth,
        family_name=patient.family_name,
        postcode=patient.postcode,
    )
    if entry is not None and lock:
        db.session.execute(select(RegisterEntry.id).where(RegisterEntry.id == entry.id).with_for_update()).one()
    return entry


def _flag_duplicate_claim(patient: Patient, claims: list[Patient], *, actor: Patient | None = None) -> None:
    record_event(
        action="identity_duplicate_claim",
        **(_actor(actor) if actor else {"actor_type": "system"}),
        **_subject(patient),
        outcome="failure",
        details={"other_accounts": [other.public_id for other in claims]},
    )


def _verify_automatically(patient: Patient, *, method: str, actor: Patient | None = None) -> None:
    """Mark the patient verified by an automatic method (the register's email address or a registration key),
    start the legal clock of any request waiting for it, and audit it, in the caller's transaction."""
    patient.identity_status = "verified"
    patient.identity_method = method
    patient.identity_note = None
    patient.identity_decided_by_id = None
    patient.identity_decided_at = _now()
    record_event(
        action="identity_verified",
        **(_actor(actor) if actor else {"actor_type": "system"}),
        **_subject(patient),
        details={"method": method},
    )
    start_clocks_for_verified_patient(patient, actor)


def _match_register(patient: Patient) -> None:
    """Run once the email address is proved by the emailed link (with the password). The patient is verified
    at once only when the practice register holds their NHS number, date of birth, family name and postcode
    *and the email address they just proved*: the four facts are not secret (SECURITY A6), the address on the
    practice's own record is something only the patient holds. Without it, or when another account claims the
    same NHS number, the account waits for staff (or a registration key from the practice)."""
    entry = _register_entry_for(patient, lock=True)
    if entry is None:
        return
    if not entry.email:
        reason = "no email on the register"
    elif normalise_email(entry.email) != patient.email:
        reason = "email differs"
    else:
        claims = other_claims(patient)
        if not claims:
            _verify_automatically(patient, method="register_match")
            return
        _flag_duplicate_claim(patient, claims)
        reason = "number claimed by another account"
    record_event(action="identity_register_match_refused", **_subject(patient), details={"reason": reason})


# What `redeem_registration_key` can answer (the portal words each for the patient).
KEY_VERIFIED = "verified"
KEY_WRONG = "wrong"
KEY_USED = "used"
KEY_REPLACED = "replaced"
KEY_EXPIRED = "expired"
KEY_NOT_FOR_THIS_ACCOUNT = "not_for_this_account"
KEY_DUPLICATE_CLAIM = "duplicate_claim"
KEY_NOT_NEEDED = "not_needed"
KEY_DECIDED_BY_STAFF = "decided_by_staff"


@transactional
def redeem_registration_key(patient: Patient, raw_key: object) -> str:
    """A signed-in patient enters a registration key the practice gave them (SECURITY A7).

    Verified at once (`KEY_VERIFIED`) when the key exists, is unused, not replaced and not expired, was issued
    for the register entry that matches this account's NHS number, date of birth, family name and postcode, and
    no other account claims that NHS number. The key is then spent by one conditional UPDATE, so it works once
    however many requests race with it. Anything else changes nothing (the key stays usable, except that a
    duplicate claim sends both accounts to staff) and is audited with its reason; the caller words the outcome.
    """
    patient = db.session.execute(select(Patient).where(Patient.id == patient.id).with_for_update()).scalar_one()
    if patient.identity_status == "verified":
        return KEY_NOT_NEEDED
    key = find_key(raw_key, lock=True)
    now = _now()
    outcome = _key_refusal(patient, key, now)
    if outcome:
        _key_failed(patient, key if outcome != KEY_WRONG else None, outcome)
        return outcome
    spent = db.session.execute(
        update(RegistrationKey)
        .where(RegistrationKey.id == key.id, RegistrationKey.used_at.is_(None), RegistrationKey.voided_at.is_(None))
        .values(used_at=now, used_by_patient_id=patient.id)
    )
    if spent.rowcount != 1:  # only possible without row locks (SQLite): another request spent it just now
        _key_failed(patient, key, KEY_USED)
        return KEY_USED
    record_event(
        action="registration_key_used",
        **_actor(patient),
        object_type="registration_key",
        object_id=key.public_id,
        details={"patient": patient.public_id},
    )
    _verify_automatically(patient, method="registration_key", actor=patient)
    _email(patient, "accounts/identity-confirmed-by-key.txt")
    return KEY_VERIFIED


def _key_refusal(patient: Patient, key: RegistrationKey | None, now: datetime) -> str:
    """Why this key cannot verify this patient ("" when it can). A duplicate claim on the NHS number is flagged
    for staff here, on both accounts."""
    if patient.identity_status == "rejected":
        return KEY_DECIDED_BY_STAFF
    if key is None:
        return KEY_WRONG
    if key.used_at is not None:
        return KEY_USED
    if key.voided_at is not None:
        return KEY_REPLACED
    if key.expires_at <= now:
        return KEY_EXPIRED
    entry = _register_entry_for(patient, lock=True)
    if entry is None or entry.id != key.register_entry_id:
        return KEY_NOT_FOR_THIS_ACCOUNT
    claims = other_claims(patient)
    if claims:
        _flag_duplicate_claim(patient, claims, actor=patient)
        return KEY_DUPLICATE_CLAIM
    return ""


def _key_failed(patient: Patient, key: RegistrationKey | None, reason: str) -> None:
    record_event(
        action="registration_key_failed",
        **_actor(patient),
        object_type="registration_key",
        object_id=key.public_id if key is not None else None,
        outcome="failure",
        details={"reason": reason, "patient": patient.public_id},
    )


PROOF_RESEND_AFTER = timedelta(minutes=15)


def _send_email_proof(patient: Patient, *, unless_recent: bool = False) -> None:
    """Email a new confirmation link (cancelling older ones). With `unless_recent`, not if one went out in the
    last 15 minutes: signing in to an unconfirmed account must not become a way to flood its inbox."""
    if unless_recent and has_unused_token(VERIFY_EMAIL, patient, since=_now() - PROOF_RESEND_AFTER):
        return
    void_tokens(VERIFY_EMAIL, patient)
    link = absolute_url_for("portal.confirm_email", token=issue_token(VERIFY_EMAIL, patient))
    _email(patient, "accounts/confirm-email-address.txt", link=link)


@transactional
def confirm_email(token: str, password: str) -> Patient | None:
    """Prove the email address with the emailed link and the account's password (see `register_patient`);
    then look for the patient on the practice register. None if the link or the password is wrong."""
    row = peek_token(VERIFY_EMAIL, token)
    patient = (
        db.session.execute(select(Patient).where(Patient.id == row.account_id).with_for_update()).scalar_one_or_none()
        if row
        else None
    )
    matches, _ = verify_password(patient.password_hash if patient else None, password or "")
    if patient is None or not patient.is_active or not matches or redeem_token(VERIFY_EMAIL, token) is None:
        record_event(
            action="email_verification_failed",
            actor_type="anonymous",
            **(_subject(patient) if patient else {"object_type": "patient"}),
            outcome="failure",
            details={"reason": "password" if patient is not None and not matches else "link"},
        )
        return None
    first_time = patient.email_verified_at is None
    patient.email_verified_at = patient.email_verified_at or _now()
    void_tokens(VERIFY_EMAIL, patient)
    record_event(action="email_verified", **_actor(patient), **_subject(patient))
    if first_time and patient.identity_status == "unverified":
        _match_register(patient)
    return patient


# ---------------------------------------------------------------------------------------------------------
# Sign-in (both kinds of account)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordOutcome:
    """`account` is set only when the password was right and the account may continue to the next step."""

    account: Patient | StaffUser | None = None
    email_unconfirmed: bool = False


@transactional
def check_password(kind: str, email: str, password: str) -> PasswordOutcome:
    account = find_account(kind, email) if email else None
    matches, new_hash = verify_password(account.password_hash if account else None, password or "")
    if account is None or not matches:
        record_event(
            action="authn_login_fail",
            actor_type="anonymous",
            **(_subject(account) if account else {"object_type": kind}),
            outcome="failure",
            details={"step": "password", "reason": "unknown account" if account is None else "wrong password"},
        )
        return PasswordOutcome()
    if new_hash:
        account.password_hash = new_hash
        record_event(action="password_rehashed", **_subject(account))
    if not account.is_active:
        record_event(
            action="authn_login_fail", **_subject(account), outcome="failure", details={"reason": "deactivated"}
        )
        return PasswordOutcome()
    if kind == "patient" and account.email_verified_at is None:
        _send_email_proof(account, unless_recent=True)
        record_event(action="authn_login_fail", **_subject(account), outcome="failure", details={"reason": "email"})
        return PasswordOutcome(email_unconfirmed=True)
    record_event(action="authn_password_accepted", **_actor(account), **_subject(account))
    return PasswordOutcome(account=account)


@transactional
def check_second_factor(
    account, *, code: str | None = None, recovery_code: str | None = None, purpose: str = "sign_in"
) -> str:
    """Check a code from the authenticator app or a recovery code, for signing in or (purpose
    "reauthentication") to confirm it is still the same person before a sensitive action.

    Returns "accepted", "recovery" (a recovery code was used), "invalid" or "replay".
    """
    success_action = "authn_login_success" if purpose == "sign_in" else "reauthentication"
    if recovery_code is not None:
        if totp.use_recovery_code(account, recovery_code):
            account.last_signed_in_at = _now()
            left = totp.remaining_recovery_codes(account)
            record_event(
                action=success_action,
                **_actor(account),
                **_subject(account),
                details={"factor": "recovery_code", "recovery_codes_left": left},
            )
            _email(account, "accounts/recovery-code-used.txt", codes_left=left)
            return "recovery"
        record_event(action="authn_mfa_fail", **_subject(account), outcome="failure", details={"factor": "recovery"})
        return "invalid"

    result = totp.verify_code(account, code)
    if result == "accepted":
        if purpose == "sign_in":
            account.last_signed_in_at = _now()
        record_event(action=success_action, **_actor(account), **_subject(account), details={"factor": "totp"})
    elif result == "replay":
        record_event(action="authn_token_reuse", **_subject(account), outcome="failure")
        _email(account, "accounts/sign-in-code-reused.txt")
    else:
        record_event(action="authn_mfa_fail", **_subject(account), outcome="failure", details={"factor": "totp"})
    return result


@transactional
def limit_sessions(account, *, limit: int) -> int:
    """At most `limit` signed-in devices per account: sign the oldest others out (SECURITY E14). Called as
    a sign-in completes, before its own new session is stored."""
    ended = enforce_session_limit(account, keep_session_id=None, limit=limit)
    if ended:
        record_event(action="sessions_ended", **_subject(account), details={"reason": "session_limit", "count": ended})
    return ended


@transactional
def record_refusal(account, *, endpoint: str | None, method: str, reason: str) -> None:
    """SECURITY G10: every refused access by a signed-in person is in the audit trail."""
    record_event(
        action="authz_fail",
        **_actor(account),
        object_type="endpoint",
        object_id=endpoint,
        outcome="failure",
        details={"reason": reason, "method": method},
    )


@transactional
def record_pending_sign_in_abandoned(account) -> None:
    """Too many wrong codes in one sign-in: the password must be entered again (SECURITY D7)."""
    record_event(action="authn_login_fail_max", **_subject(account), outcome="failure", details={"step": "code"})


@transactional
def record_sign_out(account, *, reason: str) -> None:
    record_event(action="session_ended", **_actor(account), **_subject(account), details={"reason": reason})


# ---------------------------------------------------------------------------------------------------------
# Authenticator enrolment and recovery codes
# ---------------------------------------------------------------------------------------------------------


@transactional
def begin_enrolment(account) -> str:
    return totp.start_enrolment(account)


def set_up_link_needed(account) -> bool:
    """After staff removed a lost authenticator, a new one can only be set up with the link they emailed
    (as well as the password): the password alone is not enough (SECURITY R7)."""
    return not account.has_authenticator and has_unused_token(SET_UP_AGAIN, account)


def set_up_link_matches(account, token: str) -> bool:
    row = peek_token(SET_UP_AGAIN, token)
    return row is not None and row.account_kind == account.kind and row.account_id == account.id


@transactional
def finish_enrolment(
    account, code: str, *, keep_session_id: str | None, set_up_link: str | None = None
) -> list[str] | None:
    """Confirm the new authenticator with a code. Returns the new recovery codes (shown once), or None.

    When `set_up_link_needed`, the emailed link (`set_up_link`) is used up in the same transaction."""
    replacing = account.has_authenticator
    link_needed = set_up_link_needed(account)
    if link_needed and not set_up_link_matches(account, set_up_link or ""):
        record_event(action="mfa_enrolment_failed", **_subject(account), outcome="failure", details={"reason": "link"})
        return None
    if not totp.confirm_enrolment(account, code):
        record_event(action="mfa_enrolment_failed", **_subject(account), outcome="failure")
        return None
    if link_needed and redeem_token(SET_UP_AGAIN, set_up_link) is None:
        raise AccountError("This link has already been used.")
    codes = totp.generate_recovery_codes(account)
    record_event(
        action="mfa_replaced" if replacing else "mfa_enrolled",
        **_actor(account),
        **_subject(account),
        details={"recovery_codes": len(codes)},
    )
    if replacing:
        ended = end_account_sessions(account, except_session_id=keep_session_id)
        record_event(action="sessions_ended", **_subject(account), details={"reason": "mfa_replaced", "count": ended})
        _email(account, "accounts/authenticator-changed.txt")
    return codes


@transactional
def regenerate_recovery_codes(account) -> list[str]:
    codes = totp.generate_recovery_codes(account)
    record_event(action="recovery_codes_regenerated", **_actor(account), **_subject(account))
    _email(account, "accounts/new-recovery-codes.txt")
    return codes


# ---------------------------------------------------------------------------------------------------------
# Passwords: change and reset
# ---------------------------------------------------------------------------------------------------------


def _set_password(account, password: str) -> None:
    account.password_hash = hash_password(password)
    account.password_changed_at = _now()
    void_tokens(RESET_PASSWORD, account)


def change_password(account, current: str, new: str, *, keep_session_id: str | None) -> None:
    """Change a signed-in account's password, ending its other sessions. A wrong current password is refused
    (AccountError naming the `current-password` field) once the failed attempt is in the audit trail."""
    if not _change_password(account, current, new, keep_session_id=keep_session_id):
        raise AccountError("Your current password is not correct", field="current-password")


@transactional
def _change_password(account, current: str, new: str, *, keep_session_id: str | None) -> bool:
    matches, _ = verify_password(account.password_hash, current or "")
    if not matches:
        record_event(action="password_change_failed", **_actor(account), **_subject(account), outcome="failure")
        return False
    _set_password(account, new)
    ended = end_account_sessions(account, except_session_id=keep_session_id)
    record_event(action="password_changed", **_actor(account), **_subject(account), details={"sessions_ended": ended})
    _email(account, "accounts/password-changed.txt")
    return True


@transactional
def request_password_reset(kind: str, email: str) -> None:
    """Email a reset link if the account exists. The caller says the same thing whatever happened."""
    account = find_account(kind, email) if email else None
    if account is None or not account.is_active or account.password_hash is None:
        record_event(action="password_reset_requested", actor_type="anonymous", object_type=kind, outcome="failure")
        return
    endpoint = "portal.reset_password" if kind == "patient" else "admin.reset_password"
    link = absolute_url_for(endpoint, token=issue_token(RESET_PASSWORD, account))
    _email(account, "accounts/reset-password.txt", link=link)
    record_event(action="password_reset_requested", actor_type="anonymous", **_subject(account))


@transactional
def reset_password(kind: str, token: str, new: str):
    """Set a new password from a reset link. Ends every session; the next sign-in still needs a code."""
    row = redeem_token(RESET_PASSWORD, token)
    account = get_account(row.account_kind, row.account_id) if row else None
    if account is None or account.kind != kind or not account.is_active:
        record_event(action="password_reset_failed", actor_type="anonymous", object_type=kind, outcome="failure")
        return None
    _set_password(account, new)
    ended = end_account_sessions(account)
    record_event(action="password_reset", **_actor(account), **_subject(account), details={"sessions_ended": ended})
    _email(account, "accounts/password-reset.txt")
    return account


@transactional
def sign_out_other_devices(account, password: str, *, keep_session_id: str) -> int | None:
    """End every other session of the account after the password is entered again (SECURITY E8)."""
    matches, _ = verify_password(account.password_hash, password or "")
    if not matches:
        record_event(action="sessions_end_failed", **_actor(account), **_subject(account), outcome="failure")
        return None
    ended = end_account_sessions(account, except_session_id=keep_session_id)
    record_event(
        action="sessions_ended", **_actor(account), **_subject(account), details={"reason": "user", "count": ended}
    )
    return ended


@transactional
def record_reauthentication_failure(account) -> None:
    record_event(action="reauthentication_failed", **_actor(account), **_subject(account), outcome="failure")


# ---------------------------------------------------------------------------------------------------------
# Staff accounts
# ---------------------------------------------------------------------------------------------------------


def _invitation_link(staff: StaffUser) -> str:
    return absolute_url_for("admin.accept_invitation", token=issue_token(STAFF_INVITATION, staff))


@transactional
def create_first_admin(email: str, name: str) -> str:
    """`flask staff create-admin`: an admin with no password yet, and a one-time invitation link."""
    email = normalise_email(email)
    if not email or "@" not in email or not name.strip():
        raise AccountError("Give an email address and a name.")
    if find_account("staff", email) is not None:
        raise AccountError(f"A staff account for {email} already exists.")
    staff = StaffUser(email=email, name=name.strip(), role="admin")
    db.session.add(staff)
    db.session.flush()
    record_event(action="staff_created", actor_type="system", **_subject(staff), details={"role": "admin"})
    return _invitation_link(staff)


@transactional
def invite_staff(actor: StaffUser, *, email: str, name: str, role: str, is_clinician: bool = False) -> StaffUser:
    email = normalise_email(email)
    if role not in STAFF_ROLES:
        raise AccountError("Choose a role.")
    if find_account("staff", email) is not None:
        raise AccountError("A staff account with this email address already exists.")
    staff = StaffUser(email=email, name=name.strip(), role=role, is_clinician=is_clinician, invited_by_id=actor.id)
    db.session.add(staff)
    db.session.flush()
    link = _invitation_link(staff)
    record_event(action="staff_invited", **_actor(actor), **_subject(staff), details={"role": role})
    _email(staff, "accounts/staff-invitation.txt", inviter_name=actor.name, link=link)
    return staff


@transactional
def resend_invitation(actor: StaffUser, staff: StaffUser) -> None:
    if staff.password_hash is not None:
        raise AccountError("This person has already accepted their invitation.")
    void_tokens(STAFF_INVITATION, staff)
    link = _invitation_link(staff)
    record_event(action="staff_invitation_resent", **_actor(actor), **_subject(staff))
    _email(staff, "accounts/staff-invitation-resent.txt", link=link)


@transactional
def accept_invitation(token: str, password: str) -> StaffUser | None:
    row = redeem_token(STAFF_INVITATION, token)
    staff = get_account("staff", row.account_id) if row and row.account_kind == "staff" else None
    if staff is None or not staff.is_active or staff.password_hash is not None:
        record_event(action="staff_invitation_failed", actor_type="anonymous", object_type="staff", outcome="failure")
        return None
    staff.password_hash = hash_password(password)
    staff.password_changed_at = _now()
    record_event(action="staff_invitation_accepted", **_actor(staff), **_subject(staff))
    return staff


def _count_active_admins() -> int:
    """Admins who can actually sign in: active, with a password and an authenticator."""
    return db.session.execute(
        select(func.count())
        .select_from(StaffUser)
        .where(
            StaffUser.role == "admin",
            StaffUser.is_active.is_(True),
            StaffUser.password_hash.is_not(None),
            StaffUser.totp_secret_encrypted.is_not(None),
        )
    ).scalar_one()


def _lock_admins() -> None:
    """Lock the admin rows (PostgreSQL) so that concurrent changes to admins happen one after the other."""
    db.session.execute(select(StaffUser.id).where(StaffUser.role == "admin").with_for_update()).all()


def _ensure_an_admin_remains() -> None:
    """Checked again after the change, inside the transaction: two admins demoting each other at once cannot
    both succeed (on PostgreSQL the second waits for the first's row lock and then sees its change)."""
    db.session.flush()
    if _count_active_admins() < 1:
        raise AccountError("There must always be at least one active admin who can sign in.")


@transactional
def set_staff_role(actor: StaffUser, staff: StaffUser, role: str) -> None:
    if role not in STAFF_ROLES:
        raise AccountError("Choose a role.")
    if staff.role == role:
        return
    _lock_admins()
    before, staff.role = staff.role, role
    _ensure_an_admin_remains()
    record_event(action="staff_role_changed", **_actor(actor), **_subject(staff), details={"from": before, "to": role})


@transactional
def set_account_active(actor: StaffUser, account, active: bool) -> None:
    """Deactivate (ending every session at once) or reactivate a patient or staff account (SECURITY E6)."""
    if account.is_active == active:
        return
    if not active and account.kind == "staff":
        if account.id == actor.id:
            raise AccountError("You cannot deactivate your own account.")
        _lock_admins()
    account.is_active = active
    account.deactivated_at = None if active else _now()
    if account.kind == "staff" and not active:
        _ensure_an_admin_remains()
    ended = 0 if active else end_account_sessions(account)
    if account.kind == "patient" and not active:
        revoke_patient_releases(account, actor, "The patient's account was deactivated.")
    record_event(
        action=f"{account.kind}_{'reactivated' if active else 'deactivated'}",
        **_actor(actor),
        **_subject(account),
        details={"sessions_ended": ended},
    )


@transactional
def end_sessions_for(actor: StaffUser, account) -> int:
    ended = end_account_sessions(account)
    record_event(
        action="sessions_ended", **_actor(actor), **_subject(account), details={"reason": "staff", "count": ended}
    )
    return ended


@transactional
def reset_authenticator(actor: StaffUser, account, *, identity_check: str = "photo_id_in_person") -> None:
    """Staff reset a lost authenticator after checking photo ID in person (SECURITY R7).

    The staff member never sees or sets a password: the old authenticator and recovery codes stop working,
    every session ends, and the owner is emailed a link to sign in and set up a new authenticator.
    """
    if account.kind == "staff" and account.id == actor.id:
        raise AccountError("You cannot reset your own authenticator here. Set up a new one from your account.")
    totp.clear_authenticator(account)
    ended = end_account_sessions(account)
    record_event(
        action="mfa_reset_by_staff",
        **_actor(actor),
        **_subject(account),
        details={"sessions_ended": ended, "identity_checked": identity_check},
    )
    void_tokens(SET_UP_AGAIN, account)
    endpoint = "portal.set_up_link" if account.kind == "patient" else "admin.set_up_link"
    link = absolute_url_for(endpoint, token=issue_token(SET_UP_AGAIN, account))
    _email(account, "accounts/authenticator-removed.txt", link=link)


# ---------------------------------------------------------------------------------------------------------
# Identity decisions (staff)
# ---------------------------------------------------------------------------------------------------------

STAFF_IDENTITY_METHODS = tuple(method for method in IDENTITY_METHODS if method not in AUTOMATIC_IDENTITY_METHODS)


@transactional
def verify_identity(actor: StaffUser, patient: Patient, *, method: str, note: str) -> None:
    if patient.email_verified_at is None:
        raise AccountError("The patient has not confirmed their email address yet.")
    if method not in STAFF_IDENTITY_METHODS:
        raise AccountError("Select how you checked the patient's identity.", field="method")
    note = (note or "").strip()
    if method == "other" and not note:
        raise AccountError("Describe how you checked the patient's identity.", field="note")
    if patient.identity_status == "verified":
        raise AccountError("This patient's identity has already been verified.")
    patient.identity_status = "verified"
    patient.identity_method = method
    patient.identity_note = note[:500] or None
    patient.identity_decided_by_id = actor.id
    patient.identity_decided_at = _now()
    record_event(action="identity_verified", **_actor(actor), **_subject(patient), details={"method": method})
    start_clocks_for_verified_patient(patient, actor)
    _email(patient, "accounts/identity-confirmed.txt")


@transactional
def reject_identity(actor: StaffUser, patient: Patient, *, reason: str) -> None:
    if patient.email_verified_at is None:
        raise AccountError("The patient has not confirmed their email address yet.")
    reason = (reason or "").strip()
    if not reason:
        raise AccountError("Enter the reason, in words the patient will understand.", field="reason")
    if patient.identity_status == "verified":
        raise AccountError("This patient's identity has already been verified.")
    patient.identity_status = "rejected"
    patient.identity_method = None
    patient.identity_note = reason[:500]
    patient.identity_decided_by_id = actor.id
    patient.identity_decided_at = _now()
    record_event(action="identity_rejected", **_actor(actor), **_subject(patient))
    _email(patient, "accounts/identity-not-confirmed.txt")


def patients_awaiting_verification(limit: int = 200) -> list[Patient]:
    return list(
        db.session.execute(
            select(Patient)
            .where(Patient.identity_status == "unverified", Patient.email_verified_at.is_not(None))
            .order_by(Patient.created_at)
            .limit(limit)
        ).scalars()
    )
