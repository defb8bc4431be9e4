"""Leases: `.zoo/leases/*.json` say who is working on which task, since when.

The runner keeps one lease file for itself, rewritten in place as its agents start and
finish tasks (no new file per step: creating files is the slow part of a step) and every
few seconds as a heartbeat. `zoo dispatch`, `zoo approve` and `zoo retry` hold one while
they move a task, so the runner never picks up a task another live process is in the
middle of. A lease is stale once its process is gone or its heartbeat stops (a process
on another machine sharing the folder, or a pid reused since); a stale lease is ignored,
and the next runner removes it (`reclaim`). `zoo status` shows live leases as work in
progress, with their heartbeat.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.state.fs import atomic_write, pid_alive
from zoo.state.home import Home

HEARTBEAT_S = 5.0
"""How often a runner rewrites its lease file."""
STALE_S = 60.0
"""A runner lease whose heartbeat is older than this is stale even if its pid lives."""


def _folder(home: Home) -> Path:
    return home.state / "leases"


class RunnerLeases:
    """The tasks this runner's agents are working on, kept in one file."""

    def __init__(self, home: Home) -> None:
        folder = _folder(home)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"runner-{os.getpid()}.json"
        self._tasks: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._size = 0
        self._head = {"pid": os.getpid(), "host": _host(), "started": _now()}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._write()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beating, name="zoo-heartbeat", daemon=True)
        self._beat.start()

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                self._write()

    @contextmanager
    def hold(self, task_id: str, agent: str, since: str) -> Iterator[None]:
        with self._lock:
            self._tasks[task_id] = {"agent": agent, "since": since}
            self._write()
        try:
            yield
        finally:
            with self._lock:
                self._tasks.pop(task_id, None)
                self._write()

    def snapshot(self) -> dict[str, dict[str, str]]:
        """The tasks held now: {task: {agent, since}}."""
        with self._lock:
            return {task: dict(lease) for task, lease in self._tasks.items()}

    def _write(self) -> None:
        doc = {**self._head, "heartbeat": _now(), "tasks": self._tasks}
        data = json.dumps(doc).encode()
        # padded, never truncated (truncating costs more than the write); no fsync:
        # a lease never outlives its process
        self._size = max(self._size, len(data))
        os.pwrite(self._fd, data.ljust(self._size), 0)

    def close(self) -> None:
        self._stop.set()
        self._beat.join()
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


@contextmanager
def hold(home: Home, task_id: str, agent: str, since: str) -> Iterator[None]:
    """A one-task lease in a file of its own (for `zoo dispatch`)."""
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task_id}.json"
    doc = {"pid": os.getpid(), "host": _host(), "heartbeat": _now(),
           "tasks": {task_id: {"agent": agent, "since": since}}}  # fmt: skip
    atomic_write(path, json.dumps(doc), durable=False)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def held_by_other(home: Home, task_id: str) -> bool:
    """True if another live process holds a lease on the task."""
    return task_id in live(home, others_only=True)


def live(home: Home, *, others_only: bool = False) -> dict[str, dict[str, Any]]:
    """Every task leased by a live process: {task id: {task, agent, since, pid}}."""
    try:
        names = os.listdir(_folder(home))
    except FileNotFoundError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        doc = _read(_folder(home) / name)
        if doc is None or (others_only and doc["pid"] == os.getpid()):
            continue
        if not _stale(doc):
            for task_id, lease in doc["tasks"].items():
                beat = doc.get("heartbeat")
                found[task_id] = {"task": task_id, **lease, "pid": doc["pid"], "heartbeat": beat}
    return found


def reclaim(home: Home) -> dict[int, list[str]]:
    """Remove the lease files of dead processes: {pid: the tasks they held}.

    Their tasks are still queued in their folders (a step saves only when it ends), so
    the runner that calls this resumes or redoes them.
    """
    try:
        names = os.listdir(_folder(home))
    except FileNotFoundError:
        return {}
    dead: dict[int, list[str]] = {}
    for name in names:
        path = _folder(home) / name
        doc = _read(path)
        if doc is not None and doc["pid"] != os.getpid() and _stale(doc):
            path.unlink(missing_ok=True)
            dead[doc["pid"]] = sorted(doc["tasks"])
    return dead


def _stale(doc: dict[str, Any]) -> bool:
    if doc.get("host", _host()) != _host():
        beat = doc.get("heartbeat")
        return not isinstance(beat, float | int) or time.time() - beat > STALE_S
    if not pid_alive(doc["pid"]):
        return True
    beat = doc.get("heartbeat")
    runner = doc.get("started") is not None  # only runners keep beating
    return runner and isinstance(beat, float | int) and time.time() - beat > STALE_S


def _host() -> str:
    """This machine's name (what `socket.gethostname` says, without importing socket)."""
    return os.uname().nodename


def _now() -> float:
    return round(time.time(), 3)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # gone, or being rewritten this instant
    if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
        return None
    if not isinstance(doc.get("tasks"), dict):
        return None
    return doc
