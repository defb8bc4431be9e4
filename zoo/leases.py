"""Leases: `.zoo/leases/<task id>.json` says who is working on a task, since when.

The runner holds one per task while an agent works it, and `zoo dispatch` holds one
while it routes a new brief, so the runner never picks up a task another live process
is in the middle of. A lease whose process is gone is stale and ignored; `zoo status`
shows live leases as work in progress.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zoo.fs import atomic_write, pid_alive
from zoo.home import Home


def _folder(home: Home) -> Any:
    return home.state / "leases"


@contextmanager
def hold(home: Home, task_id: str, agent: str, since: str) -> Iterator[None]:
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task_id}.json"
    doc = {"task": task_id, "agent": agent, "since": since, "pid": os.getpid()}
    atomic_write(path, json.dumps(doc), durable=False)  # a lease does not outlive a crash
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def held_by_other(home: Home, task_id: str) -> bool:
    """True if another live process holds a lease on the task."""
    doc = _read(_folder(home) / f"{task_id}.json")
    return doc is not None and doc.get("pid") != os.getpid() and pid_alive(int(doc["pid"]))


def live(home: Home) -> dict[str, dict[str, Any]]:
    """Every lease whose process is alive, by task id."""
    try:
        names = os.listdir(_folder(home))
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        doc = _read(_folder(home) / name)
        if doc is not None and pid_alive(int(doc["pid"])):
            found[str(doc["task"])] = doc
    return found


def _read(path: Any) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
        int(doc["pid"])
        str(doc["task"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None
