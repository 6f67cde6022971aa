"""Passwords: the policy a new password must meet, and argon2id hashing.

Hashing uses argon2-cffi's argon2id with the cost from configuration (ARGON2_*), so a stronger setting later
upgrades each stored hash at its owner's next sign-in (`verify_password` returns the new hash).
Passwords are Unicode-normalised (NFKC) the same way when set and when checked, so "é" typed as one
character or as "e" plus an accent is the same password.

The policy (SECURITY B1-B7) follows NCSC and NIST SP 800-63B: a length range and a block list, and no
composition rules. `password_problems` lists what is wrong with a new password, in the NHS.UK design
system's words; forms show the first problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from core.services.settings import practice_settings

NORMAL_FORM = "NFKC"

# Counted in characters after normalisation. 12 because the portal holds health data (B1); 128 bounds the
# work a single sign-in can cost while leaving room for long passphrases (B2).
MIN_LENGTH = 12
MAX_LENGTH = 128

EMPTY = "Enter a password"
TOO_SHORT = f"Password must be {MIN_LENGTH} characters or more"
TOO_LONG = f"Password must be {MAX_LENGTH} characters or fewer"
TOO_COMMON = "Choose a password that is harder to guess. This one is used by a lot of people"
TOO_SIMPLE = "Choose a password that is harder to guess. Avoid repeated characters and simple sequences like abcdef"
TOO_PERSONAL = (
    "Your password must not include your email address, your name, the practice's name or words like surgery and NHS"
)

# zxcvbn's 30,000 most used passwords, all lower case (B6). A frozenset, built once, so a look-up is cheap.
COMMON_PASSWORDS: frozenset[str] = frozenset(FREQUENCY_LISTS["passwords"])

# Words an attacker tries first against any practice, whatever it is called (B7).
PRACTICE_WORDS = ("surgery", "nhs", "practice")

# A password that is a unit this short said again and again ("aaaa…", "abcabc…") is trivial to guess.
_LONGEST_TRIVIAL_UNIT = 4
# Shorter than these, a name or a word of the practice's name would match too many innocent passwords.
_SHORTEST_NAME = 3
_SHORTEST_PRACTICE_WORD = 4
# Runs along these (forwards or backwards, wrapping round) are the first patterns guessed after repeats.
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789")
_LETTERS = re.compile(r"[^\W\d_]+")

# A valid hash of a random password, verified against when an account does not exist, so that the answer
# takes as long for an unknown email address as for a known one (SECURITY A2, C3).
_DUMMY_PASSWORD = "not-a-real-password-used-only-to-spend-time"  # noqa: S105


def normalise_password(raw: str) -> str:
    return unicodedata.normalize(NORMAL_FORM, raw)


def password_problems(
    password: str,
    *,
    email: str | None = None,
    names: Iterable[str] = (),
    practice_name: str | None = None,
) -> list[str]:
    """What is wrong with `password` as a new password, most important first; an empty list if nothing.

    The password is normalised (NFKC) and compared case-insensitively. It is rejected when:

    - it is empty, shorter than MIN_LENGTH or longer than MAX_LENGTH characters (B1, B2). A password that is
      too long is checked no further, so the work stays small however much was sent;
    - it is in zxcvbn's list of common passwords, or is one said more than once ("iloveyouiloveyou") (B6).
      The same goes for its "core": the password with the characters other than letters cut from its start,
      its end or both ("password2024!", "!!qwertyuiop", "2024iloveyou"). Adding digits or punctuation to a
      common password is the first thing a guesser tries. A core counts only when it is at least half the
      password: otherwise the characters around it, not the core, carry the strength;
    - it, or such a core, is one character or a unit of up to four said again and again ("aaaaaaaaaaaa",
      "abcabcabcabc"), or a run such as "abcdefghijkl" or "123456789012";
    - it contains the user's email address, its local part (3 characters or more) or a word of 3 letters or
      more from the local part or from one of `names`; a word of 4 letters or more from the practice's name
      (`practice_name`, by default the one in the practice settings, so this needs an application context); or
      "surgery", "nhs" or "practice" (B7).

    There are no composition rules: digits, symbols and capitals are never demanded (B3).
    """
    if not password:
        return [EMPTY]
    normalised = normalise_password(password)
    if len(normalised) > MAX_LENGTH:
        return [TOO_LONG]
    problems = []
    if len(normalised) < MIN_LENGTH:
        problems.append(TOO_SHORT)
    folded = normalised.casefold()
    cores = _cores(folded)
    if any(_is_common(core) for core in cores):
        problems.append(TOO_COMMON)
    elif any(_is_trivial(core) for core in cores):
        problems.append(TOO_SIMPLE)
    if practice_name is None:
        practice_name = practice_settings().practice_name
    if any(term in folded for term in _personal_terms(email=email, names=names, practice_name=practice_name)):
        problems.append(TOO_PERSONAL)
    return problems


def _cores(folded: str) -> set[str]:
    """The password, and the password without the non-letters at its start, its end and both ends; a core
    shorter than half the password is left out."""
    start = 0
    while start < len(folded) and not folded[start].isalpha():
        start += 1
    end = len(folded)
    while end > start and not folded[end - 1].isalpha():
        end -= 1
    candidates = {folded, folded[start:], folded[:end], folded[start:end]}
    return {core for core in candidates if core and 2 * len(core) >= len(folded)}


def _periods(text: str) -> Iterable[int]:
    """Each length p such that `text` is its first p characters said at least twice (the last time perhaps
    cut short). At most len/2 comparisons of len characters: nothing for a password of MAX_LENGTH."""
    return (p for p in range(1, len(text) // 2 + 1) if text[p:] == text[:-p])


def _is_common(core: str) -> bool:
    return core in COMMON_PASSWORDS or any(core[:p] in COMMON_PASSWORDS for p in _periods(core))


def _is_trivial(core: str) -> bool:
    if any(p <= _LONGEST_TRIVIAL_UNIT for p in _periods(core)):
        return True
    if len(core) < 3:  # two characters are not yet a run
        return False
    for sequence in _SEQUENCES:
        cycled = sequence * (len(core) // len(sequence) + 2)
        if core in cycled or core in cycled[::-1]:
            return True
    return False


def _personal_terms(*, email: str | None, names: Iterable[str], practice_name: str) -> set[str]:
    """The case-folded words a password must not contain (B7)."""
    terms = set(PRACTICE_WORDS)
    if email and email.strip():
        address = _fold(email.strip())
        terms.add(address)
        local_part = address.rpartition("@")[0] or address
        if len(local_part) >= _SHORTEST_NAME:
            terms.add(local_part)
        # Local parts are often names ("jane.smith"), so their words count as names.
        terms.update(_words(local_part, shortest=_SHORTEST_NAME))
    for name in names:
        if name:
            terms.update(_words(_fold(name), shortest=_SHORTEST_NAME))
    if practice_name:
        terms.update(_words(_fold(practice_name), shortest=_SHORTEST_PRACTICE_WORD))
    return terms


def _words(text: str, *, shortest: int) -> list[str]:
    return [word for word in _LETTERS.findall(text) if len(word) >= shortest]


def _fold(text: str) -> str:
    return normalise_password(text).casefold()


def hasher() -> PasswordHasher:
    """The argon2id hasher with the configured cost (cheap only in the test configuration)."""
    config = current_app.config
    key = (config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_COST_KIB"], config["ARGON2_PARALLELISM"])
    cache = current_app.extensions.setdefault("password_hashers", {})
    if key not in cache:
        cache[key] = PasswordHasher(time_cost=key[0], memory_cost=key[1], parallelism=key[2], type=Type.ID)
    return cache[key]


def hash_password(password: str) -> str:
    return hasher().hash(normalise_password(password))


def hash_secret(secret: str) -> str:
    """argon2id of a generated secret, without password normalisation: how recovery codes were stored before
    `keyed_digest` (kept so those codes still work, and for the benchmark that compares the two)."""
    return hasher().hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    """Check a secret against an argon2id hash from `hash_secret` (about a second at production cost)."""
    try:
        return hasher().verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def keyed_digest(secret: str, *, purpose: str) -> str:
    """The hex HMAC-SHA256 of a generated, high-entropy secret (a recovery code, a registration key) under
    RECOVERY_CODE_HMAC_KEY, with `purpose` mixed in so a value of one kind never matches a digest of another.

    A slow hash protects guessable secrets such as passwords; these are 80 random bits, which nobody can
    search even at HMAC speed, and without the key (kept outside the database) a stolen digest cannot be
    tested at all. Compare digests with `hmac.compare_digest` or look them up by an index, never with `==`
    on secret-dependent data in Python."""
    key = current_app.config.get("RECOVERY_CODE_HMAC_KEY")
    if not key:
        raise RuntimeError("RECOVERY_CODE_HMAC_KEY is not set.")
    message = f"{purpose}\0{secret}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Check `password` against `stored_hash`. Returns (matches, new hash to store or None).

    An account without a password (an invitation not yet accepted), or no account at all, still costs one
    full verification, so timing does not tell the caller which it was.
    """
    candidate = normalise_password(password)
    if stored_hash is None:
        _spend_the_same_time(candidate)
        return False, None
    try:
        hasher().verify(stored_hash, candidate)
    except (VerificationError, InvalidHashError):
        return False, None
    if hasher().check_needs_rehash(stored_hash):
        return True, hasher().hash(candidate)
    return True, None


def _spend_the_same_time(candidate: str) -> None:
    cache = current_app.extensions.setdefault("password_hashers", {})
    dummy = cache.get("dummy")
    if dummy is None or hasher().check_needs_rehash(dummy):
        dummy = cache["dummy"] = hasher().hash(_DUMMY_PASSWORD)
    with contextlib.suppress(VerificationError):
        hasher().verify(dummy, candidate)
