"""Leases: `.zoo/leases/*.json` say who is working on which task, since when.

The runner keeps one lease file for itself, rewritten in place as its agents start and
finish tasks (no new file per step: creating files is the slow part of a step), and
`zoo dispatch` holds one while it routes a new brief, so the runner never picks up a
task another live process is in the middle of. A lease whose process is gone is stale
and ignored; `zoo status` shows live leases as work in progress.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.fs import atomic_write, pid_alive
from zoo.home import Home


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
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
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

    def _write(self) -> None:
        data = json.dumps({"pid": os.getpid(), "tasks": self._tasks}).encode()
        # padded, never truncated (truncating costs more than the write); no fsync:
        # a lease never outlives its process
        self._size = max(self._size, len(data))
        os.pwrite(self._fd, data.ljust(self._size), 0)

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


@contextmanager
def hold(home: Home, task_id: str, agent: str, since: str) -> Iterator[None]:
    """A one-task lease in a file of its own (for `zoo dispatch`)."""
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task_id}.json"
    doc = {"pid": os.getpid(), "tasks": {task_id: {"agent": agent, "since": since}}}
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
        if pid_alive(doc["pid"]):
            for task_id, lease in doc["tasks"].items():
                found[task_id] = {"task": task_id, **lease, "pid": doc["pid"]}
    return found


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
