"""Envelope encryption of recordings at rest (SECURITY H15): AES-256-GCM from `cryptography`.

Each recording gets a random 256-bit data key. The data key is stored only wrapped (encrypted) by a
key-encryption key from RECORDING_KEYS, with the key's id beside it. RECORDING_KEYS is a comma-separated list
of `id:base64-key` pairs: the first wraps new data keys, all unwrap, so a new key can be put first, `flask
recordings rewrap` run, and the old key removed.

The audio is encrypted in chunks of CHUNK_SIZE bytes. Each chunk is stored as a random 12-byte nonce followed
by its ciphertext and 16-byte tag, and is authenticated with associated data naming the recording, the chunk's
index and whether it is the last one: a chunk moved to another place, to another recording, or a recording cut
short, fails its check (RecordingIntegrityError) like any changed byte. A Range request decrypts only the
chunks it covers.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK_SIZE = 64 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
RECORD_SIZE = CHUNK_SIZE + OVERHEAD
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class RecordingKeyError(ValueError):
    """RECORDING_KEYS is missing or malformed."""


class UnknownRecordingKeyError(RuntimeError):
    """A recording's data key is wrapped by a key that is not in RECORDING_KEYS."""

    def __init__(self, key_id: str):
        super().__init__(f"the recording's data key is wrapped by key {key_id!r}, which is not in RECORDING_KEYS")
        self.key_id = key_id


class RecordingIntegrityError(RuntimeError):
    """A stored chunk (or the wrapped data key) failed its authentication check: the stored copy was changed."""

    def __init__(self, message: str, *, chunk: int | None = None):
        super().__init__(message)
        self.chunk = chunk


@dataclass(frozen=True)
class Keyring:
    """The key-encryption keys by id, in the configured order: the first is the current one."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    def key(self, key_id: str) -> bytes:
        for each_id, key in self.keys:
            if each_id == key_id:
                return key
        raise UnknownRecordingKeyError(key_id)


def parse_recording_keys(value: str | None) -> Keyring:
    """`id:base64,id:base64` → Keyring. Raises RecordingKeyError naming what is wrong (never the key)."""
    pairs = [item.strip() for item in (value or "").split(",") if item.strip()]
    if not pairs:
        raise RecordingKeyError("RECORDING_KEYS must list at least one key, as id:base64-key.")
    keys: list[tuple[str, bytes]] = []
    for position, pair in enumerate(pairs, start=1):
        key_id, separator, encoded = pair.partition(":")
        key_id = key_id.strip()
        if not separator or not KEY_ID.fullmatch(key_id):
            raise RecordingKeyError(
                f"RECORDING_KEYS entry {position} must be id:base64-key, the id being 1-32 letters, digits, - or _."
            )
        try:
            key = base64.b64decode(encoded.strip().replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RecordingKeyError(f"RECORDING_KEYS key {key_id!r} is not valid base64.") from exc
        if len(key) != 32:
            raise RecordingKeyError(f"RECORDING_KEYS key {key_id!r} must be 32 bytes (256 bits), not {len(key)}.")
        if any(each_id == key_id for each_id, _ in keys):
            raise RecordingKeyError(f"RECORDING_KEYS names key {key_id!r} twice.")
        keys.append((key_id, key))
    return Keyring(tuple(keys))


def new_recording_key(key_id: str) -> str:
    """A new `id:base64-key` entry for RECORDING_KEYS."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def _key_aad(key_id: str, recording_id: str) -> bytes:
    return f"recording-data-key|v1|{key_id}|{recording_id}".encode()


def _chunk_aad(recording_id: str, index: int, last: bool) -> bytes:
    return f"recording-chunk|v1|{recording_id}|".encode() + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def wrap_data_key(keyring: Keyring, recording_id: str, data_key: bytes) -> tuple[str, bytes]:
    """The data key wrapped under the current key: (key id, nonce + ciphertext)."""
    key_id = keyring.current_id
    nonce = os.urandom(NONCE_BYTES)
    return key_id, nonce + AESGCM(keyring.key(key_id)).encrypt(nonce, data_key, _key_aad(key_id, recording_id))


def unwrap_data_key(keyring: Keyring, recording_id: str, key_id: str, wrapped: bytes) -> bytes:
    """The data key, or UnknownRecordingKeyError / RecordingIntegrityError."""
    kek = keyring.key(key_id)
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _key_aad(key_id, recording_id))
    except (InvalidTag, ValueError) as exc:
        raise RecordingIntegrityError("the recording's wrapped data key failed its check") from exc


class ChunkCipher:
    """Seals and opens one recording's chunks with its data key."""

    def __init__(self, recording_id: str, data_key: bytes):
        self.recording_id = recording_id
        self._aead = AESGCM(data_key)

    @classmethod
    def new(cls, recording_id: str) -> tuple[ChunkCipher, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        return cls(recording_id, data_key), data_key

    def seal(self, index: int, plain: bytes, *, last: bool) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _chunk_aad(self.recording_id, index, last))

    def open(self, index: int, record: bytes, *, last: bool, expected_length: int) -> bytes:
        if len(record) != expected_length + OVERHEAD:
            raise RecordingIntegrityError(f"chunk {index} is missing or the wrong length", chunk=index)
        sealed = memoryview(record)  # slices of a view: the record is not copied
        try:
            return self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _chunk_aad(self.recording_id, index, last)
            )
        except InvalidTag as exc:
            raise RecordingIntegrityError(f"chunk {index} failed its check", chunk=index) from exc

    def open_into(self, index: int, record: bytes, *, last: bool, out: memoryview) -> None:
        """`open`, decrypting straight into `out` (exactly the chunk's plain length), which saves allocating each
        chunk's bytes when a stream copies them onward anyway. AES-GCM learns whether a chunk is genuine only at
        its end, so on a failure `out` may hold unchecked bytes: they are wiped before the error is raised, and a
        caller must not use `out` then."""
        if len(record) != len(out) + OVERHEAD:
            raise RecordingIntegrityError(f"chunk {index} is missing or the wrong length", chunk=index)
        sealed = memoryview(record)
        try:
            self._aead.decrypt_into(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _chunk_aad(self.recording_id, index, last), out
            )
        except InvalidTag as exc:
            out[:] = bytes(len(out))
            raise RecordingIntegrityError(f"chunk {index} failed its check", chunk=index) from exc


def chunk_count(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    return max((size + chunk_size - 1) // chunk_size, 1)


def plain_length(index: int, size: int, chunk_size: int = CHUNK_SIZE) -> int:
    """How many bytes of audio chunk `index` holds in a recording of `size` bytes."""
    return max(min(chunk_size, size - index * chunk_size), 0)
