"""Locks on files in `.zoo/`: one holder at a time, among threads and processes alike.

A lock is `fcntl.flock` on a descriptor the process opens once and keeps (opening a file
per acquisition, as filelock does, cost a quarter of a millisecond; this costs about two
microseconds), together with a `threading.Lock`. Both are needed: flock excludes other
open file descriptions, so other processes, but two threads sharing the one descriptor
would both get it. The kernel drops a flock when its process dies, so a `kill -9` never
leaves a lock held. The descriptor is not inherited by commands the process starts
(`O_CLOEXEC`), and a child made by `os.fork` opens its own.

`lock(path)` is the lock of that file for the whole process, made on first use:

    with lock(home.state / "ids.lock"):
        ...
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["FileLock", "lock"]


class FileLock:
    """An exclusive, non-reentrant lock on `path`, across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.Lock()
        self._owner: int | None = None
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for its holder unless `blocking` is False (then False
        if it is held). Waiting for it in the thread holding it is a `RuntimeError`."""
        if self._owner == threading.get_ident():
            if not blocking:
                return False
            raise RuntimeError(f"{self.path}: lock taken twice by one thread")
        if not self._thread.acquire(blocking):
            return False
        try:
            if not self._flock(blocking):
                self._thread.release()
                return False
        except BaseException:
            self._thread.release()
            raise
        self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        fd, self._owner = self._fd, None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _flock(self, blocking: bool) -> bool:
        """flock the file; the caller holds the thread lock. A lock file removed meanwhile
        (someone deleted `.zoo/`) is opened anew: a lock on a file nobody else can open
        any more would exclude no one."""
        while True:
            fd = self._descriptor()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if os.fstat(fd).st_nlink > 0:  # still has its name (an fstat: no path lookup)
                return True
            self._forget()

    def _descriptor(self) -> int:
        if self._fd is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
            _opened(self)
        return self._fd

    def _forget(self) -> None:
        """Close the descriptor (which drops its flock); the next use opens the file anew."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as e:  # pragma: no cover - a descriptor closed behind our back
                if e.errno != errno.EBADF:
                    raise

    def _after_fork(self) -> None:
        """In a child of `os.fork`: the inherited descriptor shares the parent's flock, and
        the thread lock may be held by a thread that does not exist here."""
        self._thread = threading.Lock()
        self._owner = None
        self._forget()


MAX_OPEN = 64
"""Descriptors kept open at most: past that, those of the locks used longest ago are
closed (a process working many homes, as the test suite does, stays within its limit)."""
_locks: dict[str, FileLock] = {}
_open: dict[int, FileLock] = {}
"""The locks whose descriptor is open, oldest first (by `id`)."""
_guard = threading.Lock()


def lock(path: Path) -> FileLock:
    """This process's lock of the file `path` (made, not taken, on first use)."""
    key = os.fspath(path)
    found = _locks.get(key)
    if found is None:
        with _guard:
            found = _locks.setdefault(key, FileLock(Path(key)))
    return found


def _opened(new: FileLock) -> None:
    """`new` opened its descriptor (holding its thread lock): close the oldest idle ones
    past MAX_OPEN. One in use is skipped: its thread lock is held."""
    with _guard:
        _open.pop(id(new), None)
        _open[id(new)] = new
        for key, old in list(_open.items()):
            if len(_open) <= MAX_OPEN:
                break
            if old is not new and old._thread.acquire(blocking=False):
                try:
                    old._forget()
                finally:
                    old._thread.release()
                del _open[key]


def _reset_after_fork() -> None:
    global _guard
    _guard = threading.Lock()
    _open.clear()
    for each in _locks.values():
        each._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
