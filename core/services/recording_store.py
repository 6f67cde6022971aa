"""Where encrypted recordings are kept: one small interface, two stores (RECORDING_STORE).

- `filesystem` (the development default): one file per recording in RECORDINGS_DIR, named by the recording's
  `stored_name`, holding its sealed chunks one after another. Every chunk but the last is RECORD_SIZE bytes,
  so chunk `i` starts at `i * RECORD_SIZE` and a Range request reads only what it needs.
- `database`: one row per chunk in `recording_chunk`, so two web hosts need nothing but their database.

A store only keeps sealed chunks (core.services.recording_crypto); it never sees plain audio. `write` is all
or nothing: a failure part-way (a dropped upload, a full disk) leaves no file and no row. Reading is through
`RecordingReader`, a seekable file object that decrypts one chunk at a time, so memory stays bounded whatever
the recording's size.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from werkzeug.security import safe_join

from core.extensions import db
from core.models.requests import Recording, RecordingChunk
from core.services.recording_crypto import (
    CHUNK_SIZE,
    OVERHEAD,
    RECORD_SIZE,
    ChunkCipher,
    RecordingIntegrityError,
    chunk_count,
    plain_length,
)

STORES = ("filesystem", "database")
# A stored copy with no recording row is only an orphan once no upload can still be finishing with it.
ORPHAN_AGE = timedelta(hours=6)
# Chunks written to or read from the database in one statement (1 MiB of audio).
DATABASE_BATCH = 16


class RecordingStore(ABC):
    """The interface both stores implement."""

    name = ""

    @abstractmethod
    def write(self, object_name: str, records: Iterable[bytes]) -> None:
        """Store the sealed chunks in order, all or nothing (its own transaction or file)."""

    @abstractmethod
    def read(self, object_name: str, first_index: int, lengths: list[int]) -> list[bytes]:
        """The sealed chunks from `first_index`, one per expected length (b"" where a chunk is missing)."""

    @abstractmethod
    def exists(self, object_name: str) -> bool:
        """Whether any chunk of the object is stored."""

    @abstractmethod
    def delete(self, object_name: str) -> None:
        """Remove the chunks as part of the caller's unit of work (a purge, a removal)."""

    @abstractmethod
    def discard(self, object_name: str) -> None:
        """Remove the chunks at once, in a transaction of its own (an upload that was refused)."""

    @abstractmethod
    def source(self, object_name: str) -> ChunkSource:
        """What a reader reads the chunks from (a connection or a file kept open while it reads)."""


class ChunkSource(ABC):
    # Whether two reads may run at once (from a reader's prefetch thread and the reader itself).
    concurrent_reads = True

    @abstractmethod
    def read(self, first_index: int, lengths: list[int]) -> list[bytes]:
        """The sealed chunks from `first_index`, one per expected length (b"" where a chunk is missing)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of what the source holds open."""


class _OpenFileSource(ChunkSource):
    """A file kept open from the moment a reader is made: a purge while a download streams cannot cut it short.

    Each read fills the same buffer, and the records it returns are views of it: they hold until the next read
    (a reader opens a batch's records before it reads the next). Reading into a fresh megabyte each time cost
    more than decrypting it (scripts/bench_recording_download.py)."""

    concurrent_reads = False  # one handle, one position

    def __init__(self, path: Path | None):
        self.handle = path.open("rb") if path is not None else None
        self._buffer = bytearray()

    def read(self, first_index: int, lengths: list[int]) -> list[bytes]:
        if self.handle is None:
            return [b""] * len(lengths)
        self.handle.seek(first_index * RECORD_SIZE)
        wanted = sum(lengths)
        if len(self._buffer) < wanted:
            self._buffer = bytearray(wanted)
        view = memoryview(self._buffer)[:wanted]
        got = self.handle.readinto(view)
        return _split(view[:got], lengths)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _split(data: memoryview, lengths: list[int]) -> list[memoryview]:
    """The records in one read, as views of it (no copies); short where the read was."""
    view, records, offset = data, [], 0
    for length in lengths:
        records.append(view[offset : offset + length])
        offset += length
    return records


class FilesystemStore(RecordingStore):
    name = "filesystem"

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, object_name: str) -> Path | None:
        joined = safe_join(str(self.directory), object_name)
        return Path(joined) if joined is not None else None

    def path(self, object_name: str) -> Path | None:
        """The file, found only by its server-made name inside RECORDINGS_DIR; None if there is none."""
        path = self._path(object_name)
        return path if path is not None and path.is_file() else None

    def write(self, object_name: str, records: Iterable[bytes]) -> None:
        target = self._path(object_name)
        if target is None:
            raise ValueError("not a stored name")
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                for record in records:
                    out.write(record)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, object_name: str, first_index: int, lengths: list[int]) -> list[bytes]:
        source = _OpenFileSource(self.path(object_name))
        try:
            return source.read(first_index, lengths)
        finally:
            source.close()

    def source(self, object_name: str) -> ChunkSource:
        return _OpenFileSource(self.path(object_name))

    def exists(self, object_name: str) -> bool:
        return self.path(object_name) is not None

    def delete(self, object_name: str) -> None:
        path = self._path(object_name)
        if path is not None:
            path.unlink(missing_ok=True)

    discard = delete


class DatabaseStore(RecordingStore):
    name = "database"

    def __init__(self, engine: Engine):
        self.engine = engine

    def write(self, object_name: str, records: Iterable[bytes]) -> None:
        table = RecordingChunk.__table__
        batch: list[dict] = []
        with self.engine.begin() as connection:  # one transaction: a failure part-way leaves no row
            for index, record in enumerate(records):
                batch.append({"object_name": object_name, "chunk_index": index, "data": record})
                if len(batch) == DATABASE_BATCH:
                    connection.execute(insert(table), batch)
                    batch = []
            if batch:
                connection.execute(insert(table), batch)

    def read(self, object_name: str, first_index: int, lengths: list[int]) -> list[bytes]:
        with self.engine.connect() as connection:
            return self.read_on(connection, object_name, first_index, lengths)

    def source(self, object_name: str) -> ChunkSource:
        return _DatabaseSource(self, object_name)

    @staticmethod
    def read_on(connection, object_name: str, first_index: int, lengths: list[int]) -> list[bytes]:
        last_index = first_index + len(lengths) - 1
        driver = connection.connection.driver_connection
        if connection.dialect.name == "postgresql":
            rows = _read_binary(driver, object_name, first_index, last_index)
        else:
            # Straight through the driver: a download reads thousands of these batches.
            rows = driver.execute(_READ_CHUNKS_SQLITE, (object_name, first_index, last_index)).fetchall()
        found = {index: data for index, data in rows}
        return [found.get(first_index + offset, b"") for offset in range(len(lengths))]

    def exists(self, object_name: str) -> bool:
        return (
            db.session.execute(
                select(RecordingChunk.chunk_index).where(RecordingChunk.object_name == object_name).limit(1)
            ).first()
            is not None
        )

    def delete(self, object_name: str) -> None:
        db.session.execute(delete(RecordingChunk).where(RecordingChunk.object_name == object_name))

    def discard(self, object_name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(RecordingChunk).where(RecordingChunk.object_name == object_name))


class _DatabaseSource(ChunkSource):
    """One connection (autocommit: no transaction left open) for all of a reader's reads, opened at the first.
    Reads take turns: the reader's prefetch thread (PostgreSQL) and the reader itself may both ask."""

    def __init__(self, store: DatabaseStore, object_name: str):
        self.store, self.object_name = store, object_name
        self._connection = None
        self._lock = threading.Lock()
        # PostgreSQL's backend reads the next batch while this process sends the last, so it is fetched ahead in a
        # thread. SQLite reads from a local file at several GB/s in this process: handing each batch over from a
        # thread cost more than it overlapped (bench_recording_download: a third more worker CPU per MB).
        self.concurrent_reads = store.engine.dialect.name != "sqlite"

    def read(self, first_index: int, lengths: list[int]) -> list[bytes]:
        with self._lock:
            if self._connection is None:
                self._connection = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return self.store.read_on(self._connection, self.object_name, first_index, lengths)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


_READ_CHUNKS = (
    "SELECT chunk_index, data FROM recording_chunk"
    " WHERE object_name = %s AND chunk_index >= %s AND chunk_index <= %s ORDER BY chunk_index"
)
_READ_CHUNKS_SQLITE = _READ_CHUNKS.replace("%s", "?")


def _read_binary(driver, object_name: str, first_index: int, last_index: int) -> list[tuple[int, bytes]]:
    """PostgreSQL: the chunks in binary result format. The default text format sends bytea as hex, twice the
    bytes, and decoding it costs more than decrypting them."""
    cursor = driver.cursor(binary=True)
    try:
        cursor.execute(_READ_CHUNKS, (object_name, first_index, last_index))
        return cursor.fetchall()
    finally:
        cursor.close()


def recordings_dir() -> Path:
    path = Path(current_app.config["RECORDINGS_DIR"])
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def sweep_orphans(*, now: datetime | None = None, older_than: timedelta = ORPHAN_AGE) -> tuple[int, int]:
    """Remove what an upload left when its process was killed between storing the sealed copy and committing the
    recording's row (or part-way through writing a file): database chunks and files in RECORDINGS_DIR that no
    recording names, older than `older_than`. Returns (copies, bytes) removed; the caller audits and commits.

    Only sealed chunks are ever stored, so an orphan holds nothing readable without its (never committed) data
    key; removing it frees the space and keeps the store and the rows agreeing."""
    cutoff = (now or datetime.now(UTC)) - older_than
    named = select(Recording.stored_name)
    orphans = db.session.execute(
        select(RecordingChunk.object_name, func.sum(func.length(RecordingChunk.data)))
        .where(RecordingChunk.object_name.not_in(named))
        .group_by(RecordingChunk.object_name)
        .having(func.max(RecordingChunk.written_at) < cutoff)
    ).all()
    copies, freed = len(orphans), sum(size or 0 for _, size in orphans)
    for object_name, _ in orphans:
        db.session.execute(delete(RecordingChunk).where(RecordingChunk.object_name == object_name))
    directory = recordings_dir()
    if directory.is_dir():
        kept = set(db.session.scalars(named))
        for path in directory.iterdir():
            try:  # an upload may rename or discard its part file at any moment
                stat = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file() or path.name in kept or datetime.fromtimestamp(stat.st_mtime, UTC) >= cutoff:
                continue
            path.unlink(missing_ok=True)
            copies, freed = copies + 1, freed + stat.st_size
    return copies, freed


def store_named(name: str) -> RecordingStore:
    if name == "filesystem":
        return FilesystemStore(recordings_dir())
    if name == "database":
        return DatabaseStore(db.engine)
    raise ValueError(f"unknown recording store {name!r}")


def current_store() -> RecordingStore:
    """The store new recordings go to (RECORDING_STORE)."""
    return store_named(current_app.config["RECORDING_STORE"])


class RecordingReader(io.RawIOBase):
    """A recording's plain audio as a read-only, seekable file: each read decrypts only the chunks it covers.

    Holds at most `read_ahead` sealed chunks and one decrypted chunk. A chunk that fails its check raises
    RecordingIntegrityError (after calling `on_failure`, once); no byte of that chunk is ever returned.
    """

    def __init__(
        self,
        store: RecordingStore,
        object_name: str,
        cipher: ChunkCipher,
        size: int,
        *,
        chunk_size: int = CHUNK_SIZE,
        read_ahead: int = 1,
        on_failure: Callable[[RecordingIntegrityError], None] | None = None,
    ):
        super().__init__()
        self.source = store.source(object_name)
        self.cipher = cipher
        self.size = size
        self.chunk_size = chunk_size
        self.read_ahead = max(read_ahead, 1)
        self.on_failure = on_failure
        self.count = chunk_count(size, chunk_size)
        self._position = 0
        self._sealed: dict[int, bytes] = {}
        self._plain_index = -1
        self._plain = b""
        self._failed = False
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def _expected(self, index: int) -> int:
        return plain_length(index, self.size, self.chunk_size)

    def chunk(self, index: int) -> bytes:
        """The plain bytes of chunk `index` (checked)."""
        if index == self._plain_index:
            return self._plain
        if index not in self._sealed:
            self._sealed = self._fetch(index)
        record = self._sealed.pop(index)
        try:
            plain = self.cipher.open(index, record, last=index == self.count - 1, expected_length=self._expected(index))
        except RecordingIntegrityError as exc:
            self._failed_at(exc)
            raise
        self._plain_index, self._plain = index, plain
        return plain

    def fill(self, out: memoryview) -> tuple[int, RecordingIntegrityError | None]:
        """Fill `out` from the position with checked plain bytes, as far as it or the recording goes. Returns how
        many bytes were filled and, if a chunk failed its check, the failure: the bytes filled are all from chunks
        before it, and none of the failing chunk counts among them. A whole chunk is decrypted straight into
        `out`."""
        filled = 0
        while filled < len(out) and self._position < self.size:
            index, offset = divmod(self._position, self.chunk_size)
            length = self._expected(index)
            try:
                if offset == 0 and length <= len(out) - filled and index != self._plain_index:
                    if index not in self._sealed:
                        self._sealed = self._fetch(index)
                    record = self._sealed.pop(index)
                    last = index == self.count - 1
                    self.cipher.open_into(index, record, last=last, out=out[filled : filled + length])
                    self._position += length
                    got = length
                else:  # part of a chunk (a range's edges, or the end of `out`)
                    piece = self.read_piece(len(out) - filled)
                    got = len(piece)
                    out[filled : filled + got] = piece
            except RecordingIntegrityError as exc:
                self._failed_at(exc)
                return filled, exc
            filled += got
        return filled, None

    def _failed_at(self, exc: RecordingIntegrityError) -> None:
        """Forget what was fetched, and report the first failure (once)."""
        self._sealed.clear()
        if not self._failed and self.on_failure is not None:
            self._failed = True
            self.on_failure(exc)

    def _batch(self, index: int) -> tuple[int, list[int]]:
        last = min(index + self.read_ahead, self.count)
        return last, [self._expected(each) + OVERHEAD for each in range(index, last)]

    def _fetch(self, index: int) -> dict[int, bytes]:
        """The sealed chunks from `index` (read_ahead of them). Reading a database store in order, the next
        batch is fetched in the background while this one is decrypted and sent (at most two batches held)."""
        last, lengths = self._batch(index)
        ahead, self._ahead = self._ahead, None
        in_hand = ahead is not None and ahead[0] == index
        records = ahead[1].result() if in_hand else self.source.read(index, lengths)
        if self.read_ahead > 1 and self.source.concurrent_reads and last < self.count:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recording-read-ahead")
            _, following = self._batch(last)
            self._ahead = (last, self._pool.submit(self.source.read, last, following))
        return dict(zip(range(index, last), records, strict=True))

    def read_piece(self, limit: int | None = None) -> bytes:
        """From the position to the end of its chunk (at most `limit` bytes); b"" at the end."""
        if self._position >= self.size:
            return b""
        index, offset = divmod(self._position, self.chunk_size)
        plain = self.chunk(index)
        end = len(plain) if limit is None else min(len(plain), offset + limit)
        piece = plain[offset:end] if offset or end != len(plain) else plain
        self._position += len(piece)
        return piece

    def readinto(self, buffer) -> int:
        piece = self.read_piece(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead = None
        self.source.close()
        super().close()

    def verify(self) -> str:
        """Decrypt every chunk and return the SHA-256 of the plain audio."""
        digest = hashlib.sha256()
        self.seek(0)
        while piece := self.read_piece():
            digest.update(piece)
        return digest.hexdigest()


class RecordingBody:
    """A response body over a RecordingReader: pieces of up to one chunk, seekable for werkzeug's Range
    handling. The first chunk a response needs is decrypted before any header is sent (`prime`), so a changed
    chunk there is a clean refusal; a later one ends the stream (the server drops the connection), never
    sending a byte that failed its check."""

    # The most a response hands the server at once: fewer, larger writes to the socket.
    BLOCK = 16 * CHUNK_SIZE

    def __init__(self, reader: RecordingReader):
        self.reader = reader
        self.end = reader.size  # where the response's range ends: nothing after it is read or checked
        self._failure: RecordingIntegrityError | None = None
        self._buffer: bytearray | None = None

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.reader.seek(offset, whence)

    def tell(self) -> int:
        return self.reader.tell()

    def prime(self, position: int, end: int) -> None:
        """Check the first chunk the response needs before it starts, and read nothing past `end`."""
        self.end = end
        if position < self.reader.size:
            self.reader.chunk(position // self.reader.chunk_size)

    def __iter__(self) -> RecordingBody:
        return self

    def __next__(self) -> bytes:
        """Up to BLOCK bytes, every one from a chunk that passed its check. A chunk that fails ends the stream:
        the checked bytes before it are handed over first, then the failure is raised. The chunks are decrypted
        into one buffer kept for the response and copied out once (a server takes only `bytes`)."""
        if self._failure is not None:
            raise self._failure
        wanted = min(self.BLOCK, self.end - self.reader.tell())
        if wanted <= 0:
            raise StopIteration
        if self._buffer is None:
            self._buffer = bytearray(self.BLOCK)
        out = memoryview(self._buffer)[:wanted]
        got, failure = self.reader.fill(out)
        if failure is not None:
            if not got:
                raise failure
            self._failure = failure
        if not got:
            raise StopIteration
        return bytes(out[:got])

    def close(self) -> None:
        self.reader.close()
