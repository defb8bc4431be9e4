"""Durable file operations: every state change is atomic and survives `kill -9`.

A file is replaced by writing a temporary file beside it, fsyncing it, renaming it
over the old one and fsyncing the folder, so a reader sees the old file or the new
one, never half of one. Appends (journal, memory) are one `write` of whole lines
followed by an fsync.

An append may leave its fsync to a helper thread (`sync_soon`: MEMORY.md's note, kept
in the middle of a step): the step goes on meanwhile, and the next durable write of the
same thread (the step's task file) waits for it, so the two fsyncs overlap instead of
following each other. Durability keeps each thread's order: a durable write returns
only once everything the thread wrote before it is on disk too.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

TMP_SUFFIX = ".zoo-tmp"
"""Temporary files carry this suffix; scanners skip them and `sweep_tmp` removes them."""


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tmp(target: Path, data: bytes, durable: bool) -> tuple[Path, os.stat_result]:
    """(the temporary file, its stat: the target's once it is renamed)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
            wait_synced()  # overlapped with this file's fsync
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return tmp, st


def atomic_write(path: Path, data: str | bytes, *, durable: bool = True) -> os.stat_result:
    """Replace `path` with `data` atomically; `durable` also survives power loss.
    Returns the new file's stat."""
    raw = data.encode() if isinstance(data, str) else data
    tmp, st = _write_tmp(path, raw, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return st


def atomic_move(src: Path, dst: Path, data: str | bytes) -> os.stat_result:
    """Write `data` as `dst` and remove `src`, so the file moves and changes in one step;
    `dst`'s folder is made if it does not exist. Returns the new file's stat.

    The new file is complete and durable before the old one goes. A crash between
    the two leaves both; the runner keeps the one with more steps (see runner.py). For
    the same reason the old folder is not fsynced: an unlink lost to a power cut only
    brings back an older copy, which that rule removes.
    """
    if src == dst:
        return atomic_write(dst, data)
    raw = data.encode() if isinstance(data, str) else data
    try:
        tmp, st = _write_tmp(dst, raw, durable=True)
    except FileNotFoundError:  # a new folder (tried first: it exists nearly always)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp, st = _write_tmp(dst, raw, durable=True)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)
    src.unlink(missing_ok=True)
    return st


def create_exclusive(path: Path, data: str | bytes) -> bool:
    """Create `path` with `data` only if it does not exist yet; False if it did."""
    raw = data.encode() if isinstance(data, str) else data
    tmp, _ = _write_tmp(path, raw, durable=True)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def append_durable(path: Path, data: str | bytes) -> int:
    """Append whole lines with one write and an fsync; returns the file's new size."""
    fd, size = append_unsynced(path, data)
    sync_and_close(fd)
    return size


def append_unsynced(path: Path, data: str | bytes) -> tuple[int, int]:
    """Append with one write; returns (open fd, new size) for `sync_and_close`.

    Writers append under a lock and fsync after releasing it, so that concurrent
    writers share fsyncs (group commit) instead of queueing behind each other's.
    """
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        write_all(fd, raw)
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sync_and_close(fd: int) -> None:
    try:
        _sync_and_close(fd)
    finally:
        wait_synced()


def _sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Pending(threading.local):
    syncs: list[Future[None]]

    def __init__(self) -> None:
        self.syncs = []


_pending = _Pending()
_syncer: ThreadPoolExecutor | None = None
"""Made on first use (importing concurrent.futures would slow down every command)."""
_syncer_guard = threading.Lock()


def sync_soon(fd: int) -> None:
    """fsync and close `fd` on a helper thread; the calling thread's next durable write
    (or `wait_synced`) waits for it. The helper threads finish their work before the
    interpreter exits; a `kill -9` loses nothing either (the data is in the kernel)."""
    global _syncer
    if _syncer is None:
        from concurrent.futures import ThreadPoolExecutor

        with _syncer_guard:
            if _syncer is None:
                _syncer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="zoo-fsync")
    _pending.syncs.append(_syncer.submit(_sync_and_close, fd))


def wait_synced() -> None:
    """Return once every `sync_soon` of this thread is done; raise the first that failed."""
    syncs = _pending.syncs
    if syncs:
        _pending.syncs = []
        for sync in syncs:
            sync.result()


def _after_fork() -> None:
    global _syncer
    _syncer = None
    _pending.syncs = []


os.register_at_fork(after_in_child=_after_fork)


def sweep_tmp(folder: Path) -> int:
    """Remove temporary files left by processes that died mid-write; returns how many."""
    removed = 0
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in names:
        if not name.endswith(TMP_SUFFIX):
            continue
        pid = name[: -len(TMP_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        (folder / name).unlink(missing_ok=True)
        removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
