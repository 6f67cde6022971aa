"""Passwords: the policy a new password must meet (SECURITY B1-B7) and how it is stored (B4, B5, B12, B13).

The policy functions are plain; the hashing functions read the argon2 cost from the application's
configuration, so those tests run inside `app.app_context()` and change the cost with `monkeypatch.setitem`.
"""

from __future__ import annotations

import time
import unicodedata

import pytest
from argon2 import Type, extract_parameters

from core.config import BaseConfig, ProductionConfig
from core.services.passwords import (
    COMMON_PASSWORDS,
    EMPTY,
    MAX_LENGTH,
    MIN_LENGTH,
    TOO_COMMON,
    TOO_LONG,
    TOO_PERSONAL,
    TOO_SHORT,
    TOO_SIMPLE,
    hash_password,
    password_problems,
    verify_password,
)

PRACTICE = "Thamesmead Medical Associates"
# Not a common password, no pattern, nothing personal: long enough to cut to 64 and 128 characters.
PASSPHRASE = (
    "whistling kettles wake lazy otters beside quiet amber lanterns while velvet moths drift over "
    "copper bridges toward distant orchards every evening"
)
LOWERCASE_ONLY = "mzqtrwplkvbnxs"


def problems(password: str, **kwargs) -> list[str]:
    """The policy's answer for a user with no email address or names given, at the test practice."""
    kwargs.setdefault("practice_name", PRACTICE)
    return password_problems(password, **kwargs)


def set_argon2_cost(monkeypatch, app, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
    monkeypatch.setitem(app.config, "ARGON2_TIME_COST", time_cost)
    monkeypatch.setitem(app.config, "ARGON2_MEMORY_COST_KIB", memory_kib)
    monkeypatch.setitem(app.config, "ARGON2_PARALLELISM", parallelism)


# B1, B2: length.


def test_an_empty_password_is_asked_for():
    assert problems("") == ["Enter a password"] == [EMPTY]


def test_a_password_one_character_shorter_than_the_minimum_is_rejected_b1():
    assert MIN_LENGTH == 12
    assert problems(LOWERCASE_ONLY[:11]) == ["Password must be 12 characters or more"] == [TOO_SHORT]


def test_a_password_of_exactly_the_minimum_length_is_accepted_b1():
    assert problems(LOWERCASE_ONLY[:12]) == []


def test_length_is_counted_after_normalisation_b1_b4():
    # "ﬁ" (one ligature character) becomes "fi"; "e" plus a combining accent becomes one "é".
    assert problems("mzqtrwplkv\ufb01") == []
    assert problems("mzqtrwplkve\u0301") == [TOO_SHORT]


@pytest.mark.parametrize("length", [64, 128])
def test_64_and_128_character_passwords_are_accepted_and_verify_b2(app, length):
    password = PASSPHRASE[:length]
    assert len(password) == length
    assert problems(password) == []
    with app.app_context():
        assert verify_password(hash_password(password), password) == (True, None)


def test_a_129_character_password_is_rejected_with_a_clear_message_b2():
    assert MAX_LENGTH == 128
    assert problems(PASSPHRASE[:129]) == ["Password must be 128 characters or fewer"] == [TOO_LONG]


@pytest.mark.parametrize("length", [1_024, 1_025, 1_000_000])
def test_a_huge_input_is_rejected_quickly_without_crashing_b2(length):
    started = time.perf_counter()
    assert problems("é" * length) == [TOO_LONG]
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "password",
    [
        PASSPHRASE[:MAX_LENGTH],
        "a" * (MAX_LENGTH - 1) + "b",
        "ab" * (MAX_LENGTH // 2 - 1) + "ac",
        "1" * MAX_LENGTH,
        "🐈" * MAX_LENGTH,
    ],
)
def test_the_policy_is_fast_on_a_password_of_the_maximum_length_b2(password):
    started = time.perf_counter()
    for _ in range(100):
        problems(password, email="jane.doe@example.com", names=["Jane", "Doe"])
    assert time.perf_counter() - started < 1


# B3: no composition rules.


@pytest.mark.parametrize("password", ["correct horse battery staple", LOWERCASE_ONLY])
def test_a_passphrase_and_lowercase_letters_only_are_accepted_b3(password):
    assert problems(password) == []


def test_no_message_asks_for_digits_symbols_or_capitals_b3():
    bad_passwords = ["", "short", "a" * 200, "password123", "aaaaaaaaaaaa", "thamesmead walks", "nhs garden gate"]
    messages = {message for password in bad_passwords for message in problems(password)}
    assert messages == {EMPTY, TOO_SHORT, TOO_LONG, TOO_COMMON, TOO_SIMPLE, TOO_PERSONAL}
    for message in messages:
        for demand in ("digit", "number", "symbol", "special", "upper", "capital", "lower case", "lowercase"):
            assert demand not in message.lower(), message


# B4, B5: what is compared.


@pytest.mark.parametrize(("set_form", "typed_form"), [("NFC", "NFD"), ("NFD", "NFC")])
def test_a_password_with_emoji_spaces_and_accents_verifies_in_either_normal_form_b4(app, set_form, typed_form):
    password = "café au lait 🐈 on a wet tuesday"
    assert "\u00e9" in password
    assert problems(password) == []
    stored = unicodedata.normalize(set_form, password)
    typed = unicodedata.normalize(typed_form, password)
    assert stored != typed
    with app.app_context():
        assert verify_password(hash_password(stored), typed) == (True, None)


@pytest.mark.parametrize(
    "attempt",
    [PASSPHRASE[:39], PASSPHRASE[:40] + "x", PASSPHRASE[:40].upper(), PASSPHRASE[:40] + " "],
    ids=["last-character-missing", "extra-x", "upper-cased", "trailing-space"],
)
def test_near_misses_of_the_password_do_not_verify_b5(app, attempt):
    with app.app_context():
        stored = hash_password(PASSPHRASE[:40])
        assert verify_password(stored, PASSPHRASE[:40]) == (True, None)
        assert verify_password(stored, attempt) == (False, None)


def test_passwords_sharing_their_first_72_bytes_are_different_passwords_b5(app):
    shared = "x" * 72
    with app.app_context():
        assert verify_password(hash_password(shared + "a"), shared + "b") == (False, None)


# B6: common passwords.


def test_the_common_password_list_is_zxcvbns_30000_b6():
    assert len(COMMON_PASSWORDS) == 30_000
    assert {"password", "qwertyuiop", "iloveyou"} <= COMMON_PASSWORDS


@pytest.mark.parametrize(
    "password",
    [
        "password123",
        "qwertyuiop",
        "iloveyou1",
        "password1234",
        "qwertyuiop12",
        "PassWord1234",
        "password2024!",
        "sunshine!!!!",
        "!!qwertyuiop",
        "2024iloveyou",
        "1234princess5678",
        "iloveyouiloveyou",
        "passwordpassword1",
        "dragondragondrag",
        "q1w2e3r4t5y6u7i8",
    ],
)
def test_common_passwords_and_their_padded_or_repeated_forms_are_rejected_b6(password):
    assert TOO_COMMON in problems(password)
    assert TOO_COMMON == "Choose a password that is harder to guess. This one is used by a lot of people"


@pytest.mark.parametrize("password", ["love83746291", "summer83746291"])
def test_a_common_word_carrying_less_than_half_the_password_is_accepted_b6(password):
    assert problems(password) == []


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaaaa",
        "abcabcabcabc",
        "abcdabcdabcda",
        "zzzzzzzzzzzz!!",
        " " * 12,
        "🐈" * 12,
        "abcdefghijkl",
        "zyxwvutsrqpo",
        "123456789012",
        "987654321098",
        "xyzabcdefghi",
    ],
)
def test_repeated_characters_and_simple_sequences_are_rejected_b6(password):
    assert problems(password) == [TOO_SIMPLE]


@pytest.mark.parametrize("password", ["111111111111", "123123123123", "qweqweqweqwe"])
def test_a_common_password_that_is_also_a_pattern_gets_one_harder_to_guess_message_b6(password):
    assert problems(password) == [TOO_COMMON]


# B7: personal and practice words.


@pytest.mark.parametrize(
    ("password", "about_the_user"),
    [
        ("thamesmead river walk", {}),
        ("THAMESMEAD river walk", {}),
        ("my medical kettle song", {}),
        ("the surgery kettle song", {}),
        ("quiet nhs garden gate", {}),
        ("quiet \uff4e\uff48\uff53 garden gate", {}),  # full-width letters: "nhs" once normalised
        ("practice kettle songs", {}),
        ("jane.doe walks far away", {"email": "jane.doe@example.com"}),
        ("xx jane.doe@example.com", {"email": "Jane.Doe@Example.com"}),
        ("kettle song jo@example.com", {"email": "jo@example.com"}),
        ("kettle smithers tune", {"email": "j.smithers@example.com"}),
        ("priya loves kayaking", {"names": ["Priya", "Shah"]}),
        ("kayaking with shah often", {"names": ["Priya", "Shah"]}),
        ("kayaking with mary often", {"names": ["Anne-Mary Jones"]}),
        ("tall tree kettle song", {"practice_name": "The Oak Tree Partnership"}),
    ],
)
def test_passwords_containing_the_practice_name_practice_words_or_the_users_details_are_rejected_b7(
    password, about_the_user
):
    assert problems(password, **about_the_user) == [TOO_PERSONAL]


@pytest.mark.parametrize(
    ("password", "about_the_user"),
    [
        ("jolly green kettle", {"email": "jo@example.com", "names": ["Jo", "Al"]}),
        ("always calm brook", {"names": ["Al"]}),
        ("associate kettle song", {}),
        ("the oak kettle songs", {"practice_name": "The Oak Tree Partnership"}),
        ("example kettle songs", {"email": "jane.doe@example.com"}),
    ],
)
def test_short_names_and_other_words_are_not_held_against_the_password_b7(password, about_the_user):
    assert problems(password, **about_the_user) == []


def test_the_practice_name_defaults_to_the_configured_one_b7(app, monkeypatch):
    monkeypatch.setitem(app.config, "PRACTICE_NAME", "Riverside Health Centre")
    with app.app_context():
        assert password_problems("riverside kettle song") == [TOO_PERSONAL]
        assert password_problems("thamesmead kettle song") == []
        assert password_problems("thamesmead kettle song", practice_name=PRACTICE) == [TOO_PERSONAL]


# B12, B13: storage.


def test_the_production_argon2_cost_is_argon2_cffis_default_b12():
    for config in (BaseConfig, ProductionConfig):
        assert (config.ARGON2_TIME_COST, config.ARGON2_MEMORY_COST_KIB, config.ARGON2_PARALLELISM) == (3, 65536, 4)


def test_a_hash_at_production_cost_is_argon2id_above_the_asvs_minimum_with_its_own_salt_b12(app, monkeypatch):
    set_argon2_cost(monkeypatch, app, time_cost=3, memory_kib=65536, parallelism=4)
    with app.app_context():
        first = hash_password(PASSPHRASE[:40])
        second = hash_password(PASSPHRASE[:40])
        assert verify_password(first, PASSPHRASE[:40]) == (True, None)
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    parameters = extract_parameters(first)
    assert parameters.type is Type.ID
    assert parameters.memory_cost >= 19_456 and parameters.time_cost >= 2
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]  # the salts


def test_a_stored_hash_is_upgraded_when_the_configured_cost_rises_b13(app, monkeypatch):
    with app.app_context():
        stored = hash_password(PASSPHRASE[:40])
        assert extract_parameters(stored).time_cost == 1
        set_argon2_cost(monkeypatch, app, time_cost=2, memory_kib=64, parallelism=1)
        matches, new_hash = verify_password(stored, PASSPHRASE[:40])
        assert matches is True
        assert new_hash is not None and new_hash.startswith("$argon2id$v=19$m=64,t=2,p=1$")
        assert verify_password(new_hash, PASSPHRASE[:40]) == (True, None)


def test_a_wrong_password_against_an_old_hash_is_not_upgraded_b13(app, monkeypatch):
    with app.app_context():
        stored = hash_password(PASSPHRASE[:40])
        set_argon2_cost(monkeypatch, app, time_cost=2, memory_kib=64, parallelism=1)
        assert verify_password(stored, PASSPHRASE[:39]) == (False, None)


def test_a_hash_at_the_configured_cost_is_not_rehashed_b13(app):
    with app.app_context():
        assert verify_password(hash_password(PASSPHRASE[:40]), PASSPHRASE[:40]) == (True, None)


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=8,t=1,p=1$broken"])
def test_a_missing_or_malformed_hash_never_verifies(app, stored):
    with app.app_context():
        assert verify_password(stored, "anything") == (False, None)
