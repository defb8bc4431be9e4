"""The runner lock: one runner per home at a time (DESIGN §7), and who holds it.

`runner_lock` is taken without waiting: a second `zoo run --once` from cron exits at
once. `runner_up` tells `zoo status` whether a runner is up, without the lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zoo.state.fs import atomic_write, pid_alive
from zoo.state.home import Home
from zoo.state.locks import lock
from zoo.state.tasks import utc_now

__all__ = ["RunnerBusy", "runner_lock", "runner_up"]


class RunnerBusy(Exception):
    """Another runner holds this home."""


@contextmanager
def runner_lock(home: Home, mode: str = "once") -> Iterator[None]:
    """Hold the home's runner lock, or raise `RunnerBusy` at once (never wait).

    `.zoo/runner.pid` says who holds it (`zoo status` shows it): the pid on its first
    line, then when it started and how (`once` or `live`).
    """
    state = home.ensure_state()
    held = lock(state / "runner.lock")
    if not held.acquire(blocking=False):
        raise RunnerBusy(_holder(home))
    try:
        atomic_write(state / "runner.pid", f"{os.getpid()}\n{utc_now()}\n{mode}\n",
                     durable=False)  # fmt: skip
        yield
    finally:
        (state / "runner.pid").unlink(missing_ok=True)
        held.release()


def runner_up(home: Home) -> dict[str, Any] | None:
    """The runner holding the home now, {pid, since, mode}, or None when none is up.

    Read from `.zoo/runner.pid` without touching the lock (a cron run starting now must
    not find it held); a pid file left by a killed runner names a dead process.
    """
    try:
        words = (home.state / "runner.pid").read_text(encoding="utf-8").split()
        pid = int(words[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    return {"pid": pid, "since": words[1] if len(words) > 1 else None,
            "mode": words[2] if len(words) > 2 else None}  # fmt: skip


def _holder(home: Home) -> str:
    up = runner_up(home)
    if up is None:
        return "another process"
    since = f", since {up['since']}" if up["since"] else ""
    return f"pid {up['pid']}{since}"
