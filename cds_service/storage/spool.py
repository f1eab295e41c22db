"""The on-disk spool: append-only files of records waiting for the database.

One file per process (``spool-<pid>-<random>.jsonl``), held under an exclusive ``flock`` for the
life of the process, so a file whose lock can be taken belongs to a process that has exited (a
crash, a SIGKILL, a restart) and may be claimed and flushed by any live process.

Each line is ``<crc32 hex> <json>\\n`` and is written with one ``write`` followed by ``fsync``
before the caller acknowledges anything. A line cut short by a crash has no newline and is never
read (it was never acknowledged); a line whose checksum does not match is set aside, not applied.
Records are plain JSON; datetimes travel as ``{"$dt": "<ISO 8601>"}`` so rows come back with the
same types they were built with, whatever columns the table has.

Beside each file, ``<file>.pos`` holds how many bytes have been flushed (written after the
database commit, not synced): it keeps the depth shown by ``/readyz`` honest and spares a
re-flush after a restart. It is only a hint: the flush itself is idempotent.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

PREFIX = "spool-"
SUFFIX = ".jsonl"
REJECTED = "rejected.jsonl"
READ_CHUNK = 1 << 20


class SpoolFull(Exception):
    """The process's spool file has reached its size bound; the newest record is refused."""


class SpoolWriteFailed(Exception):
    """The spool could not be written durably (full disk, read-only folder, I/O error)."""


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$dt": datetime(value.year, value.month, value.day).isoformat()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _hook(item: dict[str, Any]) -> Any:
    if len(item) == 1 and "$dt" in item and isinstance(item["$dt"], str):
        return datetime.fromisoformat(item["$dt"])
    return item


def encode(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, default=_default, separators=(",", ":"), allow_nan=False).encode()
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The record of one complete line (without its newline), or None when it is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload, object_hook=_hook)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class Line:
    end: int  # file offset just after this line's newline
    record: dict[str, Any] | None  # None: damaged
    raw: bytes


def read_lines(fd: int, offset: int) -> Iterator[Line]:
    """Complete lines from ``offset`` on; a trailing piece without newline is left unread."""
    position = offset
    pending = b""
    while True:
        chunk = os.pread(fd, READ_CHUNK, position + len(pending))
        if not chunk:
            return
        pending += chunk
        start = 0
        while True:
            newline = pending.find(b"\n", start)
            if newline < 0:
                break
            raw = pending[start:newline]
            yield Line(position + newline + 1, decode(raw), raw)
            start = newline + 1
        position += start
        pending = pending[start:]


def count_lines(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(READ_CHUNK), b""))
    except FileNotFoundError:
        return 0


def read_position(path: Path) -> int:
    try:
        return int(Path(str(path) + ".pos").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_position(path: Path, offset: int) -> None:
    marker = Path(str(path) + ".pos")
    temporary = Path(str(path) + ".pos.tmp")
    temporary.write_text(str(offset))
    os.replace(temporary, marker)


def remove_position(path: Path) -> None:
    for name in (str(path) + ".pos", str(path) + ".pos.tmp"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def spool_files(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(directory / name for name in names if name.startswith(PREFIX) and name.endswith(SUFFIX))


# path -> (inode, offset counted from, size counted to, lines in between): /readyz asks often
# during an outage, and a spool file only grows, so only the new bytes are counted each time.
_counted: dict[Path, tuple[int, int, int, int]] = {}


def depth_of(directory: Path) -> tuple[int, int]:
    """(records waiting, bytes waiting) over every spool file in ``directory``."""
    records = waiting = 0
    paths = spool_files(directory)
    for path in paths:
        offset = read_position(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_size <= offset:
            _counted.pop(path, None)
            continue
        waiting += stat.st_size - offset
        known = _counted.get(path)
        if known and known[0] == stat.st_ino and known[1] == offset and known[2] <= stat.st_size:
            lines = known[3] + _count_range(path, known[2], stat.st_size)
        else:
            lines = _count_range(path, offset, stat.st_size)
        _counted[path] = (stat.st_ino, offset, stat.st_size, lines)
        records += lines
    for gone in set(_counted) - set(paths):
        if gone.parent == directory:
            del _counted[gone]
    return records, waiting


def _count_range(path: Path, start: int, end: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining, lines = end - start, 0
            while remaining > 0:
                chunk = handle.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                remaining -= len(chunk)
            return lines
    except FileNotFoundError:
        return 0


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolFile:
    """An open, locked spool file: this process's own, or one claimed from a dead process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.offset = read_position(path)  # bytes already flushed
        self.pending = count_lines(path, self.offset)

    @classmethod
    def create(cls, directory: Path) -> "SpoolFile":
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fsync_directory(directory)  # the new name survives a crash too
        return cls(path, fd)

    @classmethod
    def claim(cls, path: Path) -> "SpoolFile | None":
        """Lock the file of a process that has exited; None while its owner lives (or it is gone)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:  # another claimer may have drained and removed it between our open and our lock
            if os.fstat(fd).st_nlink == 0 or os.stat(path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                return None
        except FileNotFoundError:
            os.close(fd)
            return None
        return cls(path, fd)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def append(self, data: bytes, max_bytes: int) -> None:
        """Write one encoded record and fsync it; on any failure the file is cut back to before it."""
        before = self.size()
        if before + len(data) > max_bytes:
            raise SpoolFull(f"spool file {self.path.name} would exceed {max_bytes} bytes")
        try:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            os.fsync(self.fd)
        except OSError as error:
            try:
                os.ftruncate(self.fd, before)
            except OSError:
                pass
            raise SpoolWriteFailed(f"{error.strerror or error}") from None
        self.pending += 1

    def mark_flushed(self, offset: int, records: int) -> None:
        self.offset = offset
        self.pending = max(0, self.pending - records)
        try:
            write_position(self.path, offset)
        except OSError:
            pass  # only a hint; the flush is idempotent

    def reset(self) -> None:
        """Everything was flushed: empty the file so it does not grow across outages."""
        os.ftruncate(self.fd, 0)
        self.offset = 0
        self.pending = 0
        remove_position(self.path)

    def remove(self) -> None:
        for name in (self.path,):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        remove_position(self.path)
        self.close()

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
