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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.secrets import redact_all
from zoo.state.fs import append_unsynced, fsync_dir, sync_and_close
from zoo.state.home import Home
from zoo.state.locks import lock

GENESIS = "0" * 64
_TAIL = 64 * 1024


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(event: dict[str, Any]) -> str:
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class Journal:
    """Appends events to one home's journal; safe across threads and processes."""

    def __init__(self, home: Home) -> None:
        self.path = home.journal_path
        self._lock = lock(home.state / "journal.lock")
        self._known: tuple[int, str] | None = None  # (file size, hash of its last line)

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
            prev, dropped = self._last_hash()
            written: list[dict[str, Any]] = []
            lines: list[str] = []
            if dropped:
                events = [("journal.repaired", {"dropped_bytes": dropped}), *events]
            for kind, fields in events:
                event = {"ts": now_iso(), "event": kind}
                event.update({k: redact_all(v) for k, v in fields.items() if v is not None})
                event["prev"] = prev
                event["hash"] = prev = _digest(event)
                written.append(event)
                lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            if not lines:
                return written
            created = not self.path.exists()
            fd, size = append_unsynced(self.path, "\n".join(lines) + "\n")
            self._known = (size, prev)
        if durable:
            sync_and_close(fd)  # outside the locks: concurrent writers share fsyncs
        else:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return written

    def _last_hash(self) -> tuple[str, int]:
        """(hash of the last line, bytes of a torn last line dropped just now).

        A writer killed in the middle of its `write` can leave half a line at the end.
        That event never finished; it is cut off, so that the chain goes on verifying,
        and the next batch starts with a `journal.repaired` event saying so.
        """
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return GENESIS, 0
        if self._known is not None and self._known[0] == size:
            return self._known[1], 0
        dropped = _cut_torn_tail(self.path, size)
        last = _last_line(self.path, size - dropped)
        if last is None:
            return GENESIS, dropped
        try:
            return str(json.loads(last)["hash"]), dropped
        except (ValueError, KeyError, TypeError):
            return hashlib.sha256(last).hexdigest(), dropped  # a damaged line still chains on


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
    import time

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
