"""The journal: `.zoo/events.jsonl`, append-only and hash-chained.

Each line is one JSON event carrying `prev`, the hash of the line before it, and `hash`,
the hash of its own content (everything but `hash`). Editing a line breaks its own
hash; removing or reordering lines breaks the next line's `prev`. `verify` names the
first line that does not check out.

Appends hold the journal's lock (`locks.py`: threads and processes alike, so `zoo
dispatch` and the runner can write at once), and every batch of events is one write and
one fsync, made after the lock is let go so that concurrent writers share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.secrets import redact_all
from zoo.state.fs import fsync_dir, wait_synced, write_all
from zoo.state.home import Home
from zoo.state.locks import lock

GENESIS = "0" * 64
_TAIL = 64 * 1024


_second: tuple[int, str] = (-1, "")
"""The last whole second `now_iso` formatted (formatting a datetime cost more than the rest)."""


def now_iso() -> str:
    """UTC now to the microsecond, `2026-01-05T10:00:00.123456Z`."""
    global _second
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if sec != cached[0]:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{ns // 1000:06d}Z"


def _digest(event: dict[str, Any]) -> str:
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class Journal:
    """Appends events to one home's journal; safe across threads and processes.

    The journal is kept open between writes (a file opened per write cost more than the
    write); it is opened anew if the file is replaced or removed meanwhile.
    """

    def __init__(self, home: Home) -> None:
        self.path = home.journal_path
        self._lock = lock(home.state / "journal.lock")
        self._known: tuple[int, str] | None = None  # (file size, hash of its last line)
        self._fd: int | None = None
        self._ino = 0
        self._fds: list[int] = []
        """Every descriptor this journal opened, closed when it is collected: one left
        for a replaced file may still be in an fsync of another thread."""
        weakref.finalize(self, _close_all, self._fds)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        return self.write_many([(kind, fields)])[-1]

    def write_many(
        self, events: Iterable[tuple[str, dict[str, Any]]], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Append events in order, as one write; returns once they are on disk.

        `durable=False` skips the fsync: the events survive a crash of this process (they
        are in the kernel's page cache) but not a power cut until the next durable write.
        """
        with self._lock:
            fd, size, created = self._open()
            prev, dropped = self._last_hash(size)
            written: list[dict[str, Any]] = []
            lines: list[str] = []
            if dropped:
                events = [("journal.repaired", {"dropped_bytes": dropped}), *events]
            now = now_iso()
            for kind, fields in events:
                event = {"ts": now, "event": kind}
                event.update({k: redact_all(v) for k, v in fields.items() if v is not None})
                event["prev"] = prev
                event["hash"] = prev = _digest(event)
                written.append(event)
                lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            if not lines:
                return written
            data = ("\n".join(lines) + "\n").encode()
            write_all(fd, data)
            self._known = (size - dropped + len(data), prev)
        if durable:
            os.fsync(fd)  # outside the lock: concurrent writers share fsyncs
            wait_synced()
        if created:
            fsync_dir(self.path.parent)
        return written

    def _open(self) -> tuple[int, int, bool]:
        """(descriptor, size of the file, whether it was created just now)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            st = None
        if self._fd is not None and st is not None and st.st_ino == self._ino:
            return self._fd, st.st_size, False
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        self._fds.append(fd)
        opened = os.fstat(fd)
        self._fd, self._ino, self._known = fd, opened.st_ino, None
        return fd, opened.st_size, st is None

    def _last_hash(self, size: int) -> tuple[str, int]:
        """(hash of the last line, bytes of a torn last line dropped just now).

        A writer killed in the middle of its `write` can leave half a line at the end.
        That event never finished; it is cut off, so that the chain goes on verifying,
        and the next batch starts with a `journal.repaired` event saying so.
        """
        if self._known is not None and self._known[0] == size:
            return self._known[1], 0
        if size == 0:
            return GENESIS, 0
        dropped = _cut_torn_tail(self.path, size)
        last = _last_line(self.path, size - dropped)
        if last is None:
            return GENESIS, dropped
        try:
            return str(json.loads(last)["hash"]), dropped
        except (ValueError, KeyError, TypeError):
            return hashlib.sha256(last).hexdigest(), dropped  # a damaged line still chains on


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _cut_torn_tail(path: Path, size: int) -> int:
    """Truncate a last line that has no newline; returns how many bytes went."""
    if size == 0:
        return 0
    with path.open("r+b") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        end = size
        while end > 0:
            start = max(0, end - _TAIL)
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        os.fsync(f.fileno())
    return size - keep


def _last_line(path: Path, size: int) -> bytes | None:
    with path.open("rb") as f:
        f.seek(max(0, size - _TAIL))
        chunk = f.read()
    lines = [line for line in chunk.split(b"\n") if line.strip()]
    return lines[-1] if lines else None


@dataclass(frozen=True)
class BadLine:
    """The first line of the journal that does not check out."""

    line: int
    problem: str


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every parseable event, in order; unreadable lines are skipped (see `verify`)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            if raw.strip():
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def verify(path: Path) -> tuple[int, BadLine | None]:
    """(lines checked, the first bad line or None)."""
    prev = GENESIS
    count = 0
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return 0, None
    with f:
        for number, raw in enumerate(f, start=1):
            count = number
            try:
                event = json.loads(raw)
                claimed = event.pop("hash")
            except (ValueError, KeyError, AttributeError):
                return count, BadLine(number, "not a journal event (unreadable JSON)")
            if event.get("prev") != prev:
                return count, BadLine(number, "chain broken: 'prev' is not the hash of line before")
            if _digest(event) != claimed:
                return count, BadLine(number, "content changed: its hash does not match")
            prev = claimed
    return count, None


def follow(path: Path, poll_s: float = 0.2) -> Iterator[dict[str, Any]]:
    """New events as they are appended (for `zoo log -f`); runs until interrupted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        pending = b""
        while True:
            chunk = f.read()
            if not chunk:
                time.sleep(poll_s)
                continue
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                if raw.strip():
                    yield json.loads(raw)
