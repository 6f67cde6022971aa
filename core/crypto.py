"""Symmetric encryption of short values, with a separate key list for each purpose.

Every short value the portal keeps encrypted goes through `encrypt` and `decrypt` here, named by its purpose:

| Purpose                  | Setting                          | Kept in                               |
|--------------------------|----------------------------------|---------------------------------------|
| `AUTHENTICATOR_SECRETS`  | `TOTP_ENCRYPTION_KEYS`           | the account tables                    |
| `RECOVERY_CODES`         | `RECOVERY_CODES_ENCRYPTION_KEYS` | the session, for the download button  |
| `LINK_TOKENS`            | `LINK_TOKEN_ENCRYPTION_KEYS`     | the session, after an emailed link    |
| `REQUEST_DRAFTS`         | `DRAFT_ENCRYPTION_KEYS`          | the session, between form and check   |

Each setting is a comma-separated list of Fernet keys (AES-128-CBC with HMAC-SHA256, from `cryptography`):
the first encrypts, every one decrypts, so a key is rotated by putting a new one first and removing the old
one once nothing encrypted under it is kept (authenticator secrets: `flask accounts rotate-totp-key`;
session values: once the sessions that hold them have timed out). A value encrypted for one purpose cannot be
read as another's, because no two purposes share a key (production refuses to start if they do).

`decrypt` raises `DecryptionError` for a value that was changed, or was encrypted under a key no longer
configured; callers reading from the session treat that as "absent". `EncryptionKeyError` is a configuration
fault: the purpose has no keys, or a key is not a Fernet key.

The one other place that encrypts is `core.services.recording_crypto`: recordings are large and streamed, so
they have envelope encryption of their own (AES-256-GCM chunks under per-recording data keys wrapped by
`RECORDING_KEYS`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


@dataclass(frozen=True)
class Purpose:
    """What a value is (for messages) and the setting that holds its keys."""

    label: str
    setting: str


AUTHENTICATOR_SECRETS = Purpose("authenticator secret", "TOTP_ENCRYPTION_KEYS")
RECOVERY_CODES = Purpose("recovery codes kept for download", "RECOVERY_CODES_ENCRYPTION_KEYS")
LINK_TOKENS = Purpose("emailed link's token", "LINK_TOKEN_ENCRYPTION_KEYS")
REQUEST_DRAFTS = Purpose("request form's draft", "DRAFT_ENCRYPTION_KEYS")
PURPOSES = (AUTHENTICATOR_SECRETS, RECOVERY_CODES, LINK_TOKENS, REQUEST_DRAFTS)


class CryptoError(RuntimeError):
    """Something encrypted cannot be handled: see the two kinds below."""


class EncryptionKeyError(CryptoError):
    """A purpose's setting is empty, or holds something that is not a Fernet key (a configuration fault)."""


class DecryptionError(CryptoError):
    """A value cannot be decrypted with its purpose's keys: it was changed, or its key is no longer configured."""


def split_keys(value: str | None) -> list[str]:
    """A comma-separated key list, as a list, with blanks left out."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def keyring(setting: str, value: str | None) -> MultiFernet:
    """The MultiFernet for a setting's value. Raises EncryptionKeyError naming the setting (never the key)."""
    keys = split_keys(value)
    if not keys:
        raise EncryptionKeyError(f"{setting} is not set.")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, binascii.Error) as exc:
            raise EncryptionKeyError(
                f"Key {position} of {setting} is not a Fernet key (32 bytes in URL-safe base64)."
            ) from exc
    return MultiFernet(fernets)


def _keyring(purpose: Purpose) -> MultiFernet:
    """The purpose's MultiFernet from the app's configuration, built once per distinct key list."""
    value = current_app.config.get(purpose.setting) or ""
    cache = current_app.extensions.setdefault("crypto_keyrings", {})
    if (purpose.setting, value) not in cache:
        cache[(purpose.setting, value)] = keyring(purpose.setting, value)
    return cache[(purpose.setting, value)]


def encrypt(purpose: Purpose, text: str) -> str:
    """`text` encrypted with the first of the purpose's keys, as ASCII (a Fernet token)."""
    return _keyring(purpose).encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(purpose: Purpose, token: str) -> str:
    """The text `encrypt` was given, read with any of the purpose's keys; DecryptionError if none fits."""
    try:
        return _keyring(purpose).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as exc:
        raise DecryptionError(
            f"A stored {purpose.label} cannot be decrypted with {purpose.setting}:"
            " it was changed, or encrypted under a key that is no longer configured."
        ) from exc


def reencrypt(purpose: Purpose, token: str) -> str:
    """`token` decrypted with any of the purpose's keys and encrypted again with the first (for rotation)."""
    try:
        return _keyring(purpose).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise DecryptionError(f"A stored {purpose.label} cannot be decrypted with {purpose.setting}.") from exc


def check_keys(config: dict) -> None:
    """For the production check: every purpose has keys, each a Fernet key, and no key serves two purposes.
    Raises EncryptionKeyError naming the setting."""
    owner: dict[str, str] = {}
    for purpose in PURPOSES:
        keyring(purpose.setting, config.get(purpose.setting))
        for key in split_keys(config.get(purpose.setting)):
            if owner.setdefault(key, purpose.setting) != purpose.setting:
                raise EncryptionKeyError(
                    f"{purpose.setting} and {owner[key]} share a key: each purpose must have keys of its own."
                )
