"""Registration keys: one-time keys the practice issues so that a patient can prove who they are online.

The pattern of GP online services registration letters. The practice checks a patient's ID in person, or
posts a letter to the address on its own records, with a key tied to the patient's entry on the practice
register. A patient whose identity the portal could not confirm automatically enters the key on their account
page, and is verified at once (`core.services.accounts.redeem_registration_key`).

- A key is 80 random bits, written as four groups of four letters and digits (ABCD-EFGH-JKLM-NPQR). It is shown
  (or printed) once; the database keeps only its keyed HMAC-SHA256 (`passwords.keyed_digest`), found by an
  indexed lookup on that digest.
- It works once, until it expires (the practice setting `registration_key_days`, 30 days by default), and only
  for the patient on the register entry it was issued for. Issuing a new key for the same entry cancels the
  older ones.
- Staff issue a key from a patient's page (`issue_key_for_patient`); a batch for letters comes from
  `flask register issue-keys` (`issue_keys_for_numbers`). Every issue is audited, without the key or the NHS
  number.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from core.extensions import db
from core.models.accounts import Patient, RegisterEntry, RegistrationKey, StaffUser
from core.services.audit import record_event
from core.services.db import transactional
from core.services.passwords import keyed_digest
from core.services.register import LOOKUP_BATCH_SIZE, find_register_match, parse_nhs_number
from core.services.settings import practice_settings

KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: no 0/O or 1/I/L to confuse on a letter
KEY_LENGTH = 16  # 80 bits
KEY_GROUP = 4
# What a key may look like once spaces and dashes are removed, before upper-casing.
KEY_PATTERN = re.compile(rf"[A-Za-z2-7]{{{KEY_LENGTH}}}")
DIGEST_PURPOSE = "registration-key"
# More NHS numbers than a practice would post letters to in one go is probably the wrong file.
MAX_BATCH = 5_000


class RegistrationKeyError(ValueError):
    """Keys cannot be issued. `problems` lists every reason, each fit to show to staff."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued. `key` is the only copy of it anywhere: show or print it once, then let it go."""

    key: str
    public_id: str
    expires_at: datetime
    entry: RegisterEntry


def _now() -> datetime:
    return datetime.now(UTC)


def canonical_key(raw: object) -> str | None:
    """A key as its digest is made (upper case, no spaces or dashes), or None if it cannot be one."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    compact = re.sub(r"[\s-]+", "", raw)
    return compact.upper() if KEY_PATTERN.fullmatch(compact) else None


def key_digest(canonical: str) -> str:
    return keyed_digest(canonical, purpose=DIGEST_PURPOSE)


def find_key(raw: object, *, lock: bool = False) -> RegistrationKey | None:
    """The key row for what the patient typed, by one indexed lookup on its digest, or None. `lock` holds the
    row (PostgreSQL) until commit, so two uses of one key happen one after the other."""
    canonical = canonical_key(raw)
    if canonical is None:
        return None
    statement = select(RegistrationKey).where(RegistrationKey.key_digest == key_digest(canonical))
    return db.session.execute(statement.with_for_update() if lock else statement).scalar_one_or_none()


def _display_form(canonical: str) -> str:
    return "-".join(canonical[i : i + KEY_GROUP] for i in range(0, len(canonical), KEY_GROUP))


def _issue(entry: RegisterEntry, *, actor: StaffUser | None, patient: Patient | None = None) -> IssuedKey:
    """Make one key for `entry`, cancelling its older unused keys, and audit it (in the caller's transaction)."""
    now = _now()
    replaced = db.session.execute(
        update(RegistrationKey)
        .where(
            RegistrationKey.register_entry_id == entry.id,
            RegistrationKey.used_at.is_(None),
            RegistrationKey.voided_at.is_(None),
        )
        .values(voided_at=now)
    ).rowcount
    canonical = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
    row = RegistrationKey(
        key_digest=key_digest(canonical),
        register_entry_id=entry.id,
        issued_by_id=actor.id if actor else None,
        issued_at=now,
        expires_at=now + timedelta(days=practice_settings().registration_key_days),
    )
    db.session.add(row)
    db.session.flush()
    details = {"expires_at": row.expires_at.isoformat(), "replaced": replaced, "via": "admin" if actor else "cli"}
    if patient is not None:
        details["patient"] = patient.public_id
    record_event(
        action="registration_key_issued",
        **({"actor_type": "staff", "actor_id": actor.public_id} if actor else {"actor_type": "system"}),
        object_type="registration_key",
        object_id=row.public_id,
        details=details,
    )
    return IssuedKey(key=_display_form(canonical), public_id=row.public_id, expires_at=row.expires_at, entry=entry)


@transactional
def issue_key_for_patient(actor: StaffUser, patient: Patient) -> IssuedKey:
    """A member of staff issues a key from a patient's page (after checking ID, or to post to the address on
    the practice's records). Refused when the patient is already verified, or when their account's details do
    not match the register (the key would not work for them)."""
    if patient.identity_status == "verified":
        raise RegistrationKeyError(["This patient's identity is already confirmed, so they do not need a key."])
    entry = find_register_match(
        nhs_number=patient.nhs_number,
        date_of_birth=patient.date_of_birth,
        family_name=patient.family_name,
        postcode=patient.postcode,
    )
    if entry is None:
        raise RegistrationKeyError(
            [
                "The NHS number, date of birth, last name and postcode on this account do not all match the "
                "practice register, so a registration key would not work. Check who they are another way."
            ]
        )
    return _issue(entry, actor=actor, patient=patient)


@transactional
def issue_keys_for_numbers(lines: list[str]) -> list[IssuedKey]:
    """`flask register issue-keys`: one key for each NHS number in `lines` (one a line; blank lines and a
    header line `nhs_number` are skipped), for a batch of letters.

    Every line is checked first; if any number is not valid, not on the register, or repeated, nothing is
    issued and RegistrationKeyError lists every problem by line number (never showing the number itself).
    """
    problems: list[tuple[int, str]] = []
    wanted: list[tuple[int, str]] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        raw = line.strip().lstrip("\ufeff")
        if not raw or (number == 1 and raw.lower() == "nhs_number"):
            continue
        digits = parse_nhs_number(raw)
        if digits is None:
            problems.append((number, "not a valid NHS number"))
        elif digits in first_line_of:
            problems.append((number, f"the same NHS number as line {first_line_of[digits]}"))
        else:
            first_line_of[digits] = number
            wanted.append((number, digits))
    if len(wanted) > MAX_BATCH:
        raise RegistrationKeyError([f"the file has more than {MAX_BATCH:,} NHS numbers; split it into smaller files"])
    entries: dict[str, RegisterEntry] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH_SIZE):
        batch = [digits for _, digits in wanted[start : start + LOOKUP_BATCH_SIZE]]
        query = select(RegisterEntry).where(RegisterEntry.nhs_number.in_(batch))
        entries.update((entry.nhs_number, entry) for entry in db.session.execute(query).scalars())
    problems.extend((number, "not on the practice register") for number, digits in wanted if digits not in entries)
    if problems:
        raise RegistrationKeyError([f"line {number}: {message}" for number, message in sorted(problems)])
    if not wanted:
        raise RegistrationKeyError(["the file has no NHS numbers"])
    return [_issue(entries[digits], actor=None) for _, digits in wanted]
