"""Where an uploaded file waits while the request is parsed: never as plain bytes on disk (SECURITY H15).

Werkzeug's form parser writes each uploaded file to a temporary file (in memory up to 500 KB, then on disk in
the system's temporary folder) before the view reads it. For a recording that copy would be plain audio on
disk. `PortalRequest` gives the parser an `EncryptedSpool` instead: small files stay in memory, larger ones go
to an unnamed temporary file encrypted with AES-256-CTR under a key that exists only in this object, so the
bytes on disk are unreadable once the request ends (the file itself is deleted when it is closed, and has no
name meanwhile).
"""

from __future__ import annotations

import io
import os
import tempfile

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Request

IN_MEMORY_LIMIT = 500 * 1024
BLOCK = 16


class EncryptedSpool(io.RawIOBase):
    """A temporary file written once from the start, then read (from anywhere): encrypted on disk with AES-CTR
    under a random key held only in memory."""

    def __init__(self) -> None:
        super().__init__()
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._key = os.urandom(32)
        self._nonce = int.from_bytes(os.urandom(16), "big")
        self._encryptor = self._cipher_at(0)
        self._decryptor = None
        self._position = 0
        self._size = 0

    def _cipher_at(self, offset: int):
        counter = (self._nonce + offset // BLOCK) % (1 << 128)
        context = Cipher(algorithms.AES(self._key), modes.CTR(counter.to_bytes(16, "big"))).encryptor()
        context.update(bytes(offset % BLOCK))  # move into the block
        return context

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._decryptor is None

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._decryptor is not None:
            raise io.UnsupportedOperation("the upload is written once, from the start")
        self._file.write(self._encryptor.update(bytes(data)))
        self._size += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        self._file.flush()
        self._file.seek(self._position)
        self._decryptor = self._cipher_at(self._position)
        return self._position

    def tell(self) -> int:
        return self._position if self._decryptor is not None else self._size

    def readinto(self, buffer) -> int:
        if self._decryptor is None:
            self.seek(0)
        data = self._file.read(len(buffer))
        plain = self._decryptor.update(data)
        buffer[: len(plain)] = plain
        self._position += len(plain)
        return len(plain)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._key = b""
        super().close()


class PortalRequest(Request):
    """The application's request class: uploads spool through EncryptedSpool."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ):
        if total_content_length is not None and total_content_length <= IN_MEMORY_LIMIT:
            return io.BytesIO()
        return EncryptedSpool()
