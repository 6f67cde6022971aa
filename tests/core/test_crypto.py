"""core.crypto: one place for symmetric encryption, with keys of its own for each purpose, rotated by putting a
new key first, and refusing a changed value with a message that names the purpose and its setting."""

from __future__ import annotations

import itertools

import pytest
from cryptography.fernet import Fernet

from core import crypto
from core.config import TestConfig
from core.services import totp

SECRET = "JBSWY3DPEHPK3PXP"


def tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize("purpose", crypto.PURPOSES, ids=lambda purpose: purpose.setting)
def test_each_purpose_reads_back_what_it_encrypted_and_never_keeps_it_in_clear(app, purpose):
    token = crypto.encrypt(purpose, '{"codes": ["ABCD-EFGH"], "said": "café"}')
    assert "ABCD" not in token and "caf" not in token
    assert crypto.decrypt(purpose, token) == '{"codes": ["ABCD-EFGH"], "said": "café"}'


@pytest.mark.parametrize(
    ("one", "other"),
    list(itertools.permutations(crypto.PURPOSES, 2)),
    ids=lambda purpose: purpose.setting,
)
def test_a_value_encrypted_for_one_purpose_cannot_be_read_as_anothers(app, one, other):
    token = crypto.encrypt(one, SECRET)
    with pytest.raises(crypto.DecryptionError, match=f"cannot be decrypted with {other.setting}"):
        crypto.decrypt(other, token)


def test_the_test_configuration_gives_every_purpose_a_key_of_its_own(app):
    keys = [key for purpose in crypto.PURPOSES for key in crypto.split_keys(app.config[purpose.setting])]
    assert len(keys) == len(set(keys)) == len(crypto.PURPOSES)
    crypto.check_keys(app.config)


@pytest.mark.parametrize("purpose", crypto.PURPOSES, ids=lambda purpose: purpose.setting)
def test_a_key_is_rotated_by_putting_a_new_one_first(app, monkeypatch, purpose):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, purpose.setting, old_key)
    under_old = crypto.encrypt(purpose, "kept before the rotation")

    monkeypatch.setitem(app.config, purpose.setting, f"{new_key}, {old_key}")
    assert crypto.decrypt(purpose, under_old) == "kept before the rotation"
    under_new = crypto.encrypt(purpose, "kept after the rotation")
    assert Fernet(new_key.encode()).decrypt(under_new.encode()) == b"kept after the rotation"
    rewritten = crypto.reencrypt(purpose, under_old)

    monkeypatch.setitem(app.config, purpose.setting, new_key)
    assert crypto.decrypt(purpose, under_new) == "kept after the rotation"
    assert crypto.decrypt(purpose, rewritten) == "kept before the rotation"
    with pytest.raises(crypto.DecryptionError, match="no longer configured"):
        crypto.decrypt(purpose, under_old)


@pytest.mark.parametrize("purpose", crypto.PURPOSES, ids=lambda purpose: purpose.setting)
def test_a_changed_value_is_refused_with_a_message_naming_what_it_was(app, purpose):
    token = crypto.encrypt(purpose, SECRET)
    for changed in (tampered(token), token[:-4], "not a token", "ü"):
        with pytest.raises(crypto.DecryptionError) as refused:
            crypto.decrypt(purpose, changed)
        assert str(refused.value) == (
            f"A stored {purpose.label} cannot be decrypted with {purpose.setting}:"
            " it was changed, or encrypted under a key that is no longer configured."
        )
        assert SECRET not in str(refused.value)


def test_authenticator_secrets_stored_before_core_crypto_still_decrypt(app):
    """Secrets already in databases were encrypted with a bare Fernet over TOTP_ENCRYPTION_KEYS."""
    stored = Fernet(TestConfig.TOTP_ENCRYPTION_KEYS.encode()).encrypt(SECRET.encode("ascii")).decode("ascii")
    assert crypto.decrypt(crypto.AUTHENTICATOR_SECRETS, stored) == SECRET
    assert totp.decrypt_secret(stored) == SECRET
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(crypto.REQUEST_DRAFTS, stored)


def test_a_purpose_without_keys_or_with_a_malformed_key_is_a_configuration_fault(app, monkeypatch):
    monkeypatch.setitem(app.config, "DRAFT_ENCRYPTION_KEYS", " , ")
    with pytest.raises(crypto.EncryptionKeyError, match="DRAFT_ENCRYPTION_KEYS is not set"):
        crypto.encrypt(crypto.REQUEST_DRAFTS, "{}")
    monkeypatch.setitem(app.config, "DRAFT_ENCRYPTION_KEYS", f"{Fernet.generate_key().decode()},too-short")
    with pytest.raises(crypto.EncryptionKeyError, match="Key 2 of DRAFT_ENCRYPTION_KEYS is not a Fernet key"):
        crypto.encrypt(crypto.REQUEST_DRAFTS, "{}")


def test_one_key_serving_two_purposes_is_refused(app):
    shared = Fernet.generate_key().decode()
    config = dict(app.config) | {"LINK_TOKEN_ENCRYPTION_KEYS": shared, "DRAFT_ENCRYPTION_KEYS": shared}
    with pytest.raises(crypto.EncryptionKeyError, match="DRAFT_ENCRYPTION_KEYS and LINK_TOKEN_ENCRYPTION_KEYS"):
        crypto.check_keys(config)
