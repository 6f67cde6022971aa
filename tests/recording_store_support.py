"""Reading a stored recording back in tests: its plain audio (through its decryption), and a check that the
stored copy is ciphertext."""

from __future__ import annotations

from pathlib import Path

from core.models.requests import Recording
from core.services.recordings import open_recording


def plain_bytes(recording: Recording) -> bytes:
    """The recording's audio, decrypted from its store (every chunk checked)."""
    reader = open_recording(recording)
    assert reader is not None, "the recording is not stored"
    with reader:
        return reader.read()


def assert_encrypted(path: Path, plain: bytes) -> None:
    """The stored file holds no piece of the plain audio and is larger by the nonces and tags."""
    stored = path.read_bytes()
    assert len(stored) > len(plain)
    for start in range(0, len(plain) - 32, max(len(plain) // 16, 1)):
        assert plain[start : start + 32] not in stored
