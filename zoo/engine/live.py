"""`zoo run`: the long-running runner, the loop (loop.py) fed by the file watcher, and
zoo.yaml taken up again between steps when it changes (or on SIGHUP)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.engine.intake import collect_due, due_at, fire_schedules
from zoo.engine.loop import Loop, Shift
from zoo.engine.runreport import RunReport
from zoo.engine.zoo import Zoo
from zoo.errors import UserError
from zoo.state import leases, tasks
from zoo.state.home import INBOX
from zoo.state.tasks import Task

if TYPE_CHECKING:
    from zoo.engine.watcher import Watcher


class Live:
    """`zoo run`: the long-running runner (DESIGN §4-§5).

    The main thread waits on the file watcher (or the next schedule), reads only the task
    files that changed, and adds each task that is due to the loop, whose workers work
    it and follow its handoffs. A full look at every folder happens at the start, when
    the watcher asks for one, and every `RESCAN_S` as a safety net. `stop()` (SIGINT,
    SIGTERM) starts no new step; steps under way finish and are saved.
    """

    RESCAN_S = 30.0
    DEFER_S = 0.02
    """How soon a file another process holds a lease on (`zoo dispatch` routing it) is
    looked at again."""

    def __init__(
        self,
        zoo: Zoo,
        watcher: Watcher,
        *,
        concurrency: int | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.zoo = zoo
        self.watcher = watcher
        self.report = RunReport(on_line=on_line)
        self.workers = max(1, concurrency or zoo.roster.defaults.concurrency)
        self.stopping = threading.Event()
        self.shift: Shift | None = None
        self._broken: set[tuple[str, int]] = set()
        self._deferred: set[Path] = set()
        """Changed files another process was busy with: looked at again shortly."""
        self._fire_at = datetime.now(UTC) if zoo.roster.schedules else None
        """When the next schedule is due (None: no schedules)."""
        self._roster_seen = _signature(zoo.home.roster_path)
        """zoo.yaml as the roster in use was read from it (inode, size, mtime)."""
        self._reload_asked = threading.Event()
        _make_folders(zoo)  # the folders a person may drop files into, before the watch

    def stop(self) -> None:
        self.stopping.set()
        self.watcher.poke()

    def reload(self) -> None:
        """Read zoo.yaml again before the next step (SIGHUP), changed or not."""
        self._reload_asked.set()
        self.watcher.poke()

    def _reload_roster(self) -> bool:
        """Between steps: switch to zoo.yaml as it is now if it changed and is valid (an
        invalid edit is reported once and the roster in use kept). True if switched."""
        seen = _signature(self.zoo.home.roster_path)
        if seen == self._roster_seen and not self._reload_asked.is_set():
            return False
        self._reload_asked.clear()
        self._roster_seen = seen
        from zoo.engine.check import require_ok

        try:
            zoo = self.zoo.with_roster(require_ok(self.zoo.home))
        except UserError as e:  # zoo.yaml does not validate, or `zoo check` rejects the home
            self.zoo.journal.write("roster.invalid", error=str(e))
            self.report.add(None, f"zoo.yaml changed but is invalid, so the runner keeps the "
                                  f"roster it has: {e}")  # fmt: skip
            return False
        assert self.shift is not None
        self.zoo = self.shift.zoo = zoo  # steps under way finish with the roster they began
        _make_folders(zoo)
        self._fire_at = datetime.now(UTC) if zoo.roster.schedules else None
        agents, schedules = len(zoo.roster.agents), len(zoo.roster.schedules)
        zoo.journal.write("roster.reloaded", agents=list(zoo.roster.agents),
                          schedules=list(zoo.roster.schedules))  # fmt: skip
        self.report.add(None, f"zoo.yaml reloaded: {agents} agent{'s' * (agents != 1)}, "
                              f"{schedules} schedule{'s' * (schedules != 1)}")  # fmt: skip
        return True

    def working(self) -> dict[str, dict[str, str]]:
        """What each worker is doing now: {task: {agent, since}}."""
        return self.shift.held.snapshot() if self.shift is not None else {}

    def run(self) -> RunReport:
        """Work until `stop()`; the caller holds `runner_lock` and started the watcher."""
        started = time.perf_counter()
        self.shift = Shift.begin(self.zoo, self.report)
        try:
            with Loop(self.shift, self.workers, stopping=self.stopping,
                      wake=self.watcher.poke) as loop:  # fmt: skip
                self._watch(loop)
        finally:
            self.shift.end()
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _watch(self, loop: Loop) -> None:
        """Feed the loop what is due, as the watcher sees files change, until stopped."""
        paths: set[Path] | None = None
        rescan_at = 0.0
        while not self.stopping.is_set() and self.report.stopped is None:
            if self._reload_roster():
                paths = None  # tasks for new agents, and their folders: look everywhere
            self._fire_schedules()
            if paths is None or time.monotonic() >= rescan_at:
                due = collect_due(self.zoo, self.report, self._broken)
                rescan_at = time.monotonic() + self.RESCAN_S
            else:
                due = self._due_among(paths, loop)
            if not loop.add(due):
                return
            paths = self.watcher.wait(self._sleep_s(rescan_at))
            if paths is not None and self._deferred:
                paths |= self._deferred
                self._deferred = set()

    def _fire_schedules(self) -> None:
        """Fire the schedules due, then note when the next one is (no file read until)."""
        if self._fire_at is None or datetime.now(UTC) < self._fire_at:
            return
        from zoo.engine import schedules

        fire_schedules(self.zoo, self.report)
        self._fire_at = schedules.next_due(self.zoo.roster, self.zoo.home)

    def _sleep_s(self, rescan_at: float) -> float:
        wake = rescan_at - time.monotonic()
        if self._deferred:
            wake = min(wake, self.DEFER_S)
        if self._fire_at is not None:
            wake = min(wake, (self._fire_at - datetime.now(UTC)).total_seconds() + 0.001)
        return max(0.0, wake)

    def _due_among(self, paths: set[Path], loop: Loop) -> list[Task]:
        """The due tasks among the files that changed (those not being worked already)."""
        due = []
        folders = tasks.task_folders(self.zoo.home)
        for path in sorted(paths):
            match = tasks.TASK_NAME.match(path.name)
            if match and loop.busy(match.group(1)):
                continue  # its worker wrote it (or will find the change when it saves)
            if match and leases.held_by_other(self.zoo.home, match.group(1)):
                self._deferred.add(path)  # `zoo dispatch` is routing it: look again soon
                continue
            task = due_at(self.zoo, path, self.report, self._broken, folders, leased=False)
            if task is not None:
                due.append(task)
        return due


def _make_folders(zoo: Zoo) -> None:
    roster = zoo.roster
    for folder in sorted({INBOX, *(roster.workspace_of(agent) for agent in roster.agents)}):
        zoo.home.workspace(folder).mkdir(parents=True, exist_ok=True)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
