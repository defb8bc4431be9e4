"""Durable file operations: every state change is atomic and survives `kill -9`.

A file is replaced by writing a temporary file beside it, fsyncing it, renaming it
over the old one and fsyncing the folder, so a reader sees the old file or the new
one, never half of one. Appends (journal, memory) are one `write` of whole lines
followed by an fsync.
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".zoo-tmp"
"""Temporary files carry this suffix; scanners skip them and `sweep_tmp` removes them."""


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tmp(target: Path, data: bytes, durable: bool) -> Path:
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def atomic_write(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically; `durable` also survives power loss."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = _write_tmp(path, raw, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_move(src: Path, dst: Path, data: str | bytes) -> None:
    """Write `data` as `dst` and remove `src`, so the file moves and changes in one step.

    The new file is complete and durable before the old one goes. A crash between
    the two leaves both; the runner keeps the one with more steps (see runner.py). For
    the same reason the old folder is not fsynced: an unlink lost to a power cut only
    brings back an older copy, which that rule removes.
    """
    if src == dst:
        atomic_write(dst, data)
        return
    raw = data.encode() if isinstance(data, str) else data
    tmp = _write_tmp(dst, raw, durable=True)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)
    src.unlink(missing_ok=True)


def create_exclusive(path: Path, data: str | bytes) -> bool:
    """Create `path` with `data` only if it does not exist yet; False if it did."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = _write_tmp(path, raw, durable=True)
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
        os.fsync(fd)
    finally:
        os.close(fd)


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
