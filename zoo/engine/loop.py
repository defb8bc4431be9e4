"""The runner's one loop: a pool of workers that works due tasks (DESIGN §5).

`run_once` (runner.py) feeds it full scans of the folders until nothing is due; `zoo
run` (live.py) feeds it what the watcher saw change. Either way at most as many tasks
are under way as there are workers, each worker following its task's handoffs, and a
task is only ever in one thread. `Shift` is what a runner holds while it works (leases,
step logs, the committer); `RunReport` counts what it did.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from zoo.engine.recovery import recover
from zoo.engine.runreport import RunReport
from zoo.engine.step import step
from zoo.engine.zoo import Zoo
from zoo.errors import ModelUnavailable, RunStopped
from zoo.state import leases
from zoo.state.steplog import StepLogs
from zoo.state.tasks import Task

if TYPE_CHECKING:
    from zoo.engine.autocommit import AutoCommitter


SPEND_FLUSH_S = 1.0
"""How often a busy runner writes its spend to `.zoo/spend.json` (for `zoo status`)."""


@dataclass
class Shift:
    """What a runner holds while it works: its leases, and the committer of its work."""

    zoo: Zoo
    report: RunReport
    held: leases.RunnerLeases
    logs: StepLogs
    committer: AutoCommitter | None = None
    flushed_at: float = field(default_factory=time.monotonic)
    """When spend was last written to `.zoo/spend.json` (at most once a second)."""

    @classmethod
    def begin(cls, zoo: Zoo, report: RunReport) -> Shift:
        """Clean up after a runner that died (recovery.py), then hold this one's leases."""
        logs = recover(zoo, report)
        committer = None
        if zoo.roster.git.autocommit:
            from zoo.engine.autocommit import AutoCommitter

            committer = AutoCommitter.start(zoo.home, on_line=lambda line: report.add(None, line))
        return cls(zoo, report, leases.RunnerLeases(zoo.home), logs, committer)

    def step(self, task: Task) -> Task | None:
        """One step (step.py), noted for autocommit; spend flushed at most once a second."""
        title, agent, steps = task.title, task.agent, task.steps
        nxt = step(self.zoo, task, self.report, self.held, self.logs)
        if self.committer is not None and agent is not None and task.steps > steps:
            self.committer.note(task.id, agent, title)
        if time.monotonic() - self.flushed_at >= SPEND_FLUSH_S:  # for zoo status, and so
            self.flushed_at = time.monotonic()  # that a kill -9 loses a second of it at most
            self.zoo.ledger.flush()
        return nxt

    def end(self) -> None:
        """Let go of the leases and logs; commit what is noted. Work that could not be
        committed fails the run (one line), though it is safe in its files."""
        self.held.close()
        self.logs.close()
        self.zoo.ledger.flush()
        if self.committer is not None:
            unsaved = self.committer.close()
            if unsaved is not None:
                self.report.uncommitted = unsaved
                self.report.add(None, failure=unsaved)


class Loop:
    """The one scheduler of steps, for `run_once` and `zoo run` alike (DESIGN §5).

    Due tasks wait in a queue; at most `workers` are worked at a time, each by a worker
    thread that follows the task's handoffs until it rests (done, escalated, waiting for
    a person, or the run halted), then takes the next. A task is in one thread only: one
    queued or under way is not queued again. Once `stopping` is set or the run halts, no
    new step starts (queued tasks stay queued in their files) and the steps under way
    finish and are saved. A step that raises (a bug) stops the loop: leaving the `with`
    block raises it again.
    """

    def __init__(
        self,
        shift: Shift,
        workers: int,
        *,
        stopping: threading.Event | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.shift = shift
        self.workers = max(1, workers)
        self.stopping = stopping if stopping is not None else threading.Event()
        self.error: BaseException | None = None
        self._wake = wake
        """Called when a step raised: the thread feeding the loop should look."""
        self._queue: deque[Task] = deque()
        self._ids: set[str] = set()
        """Of the tasks queued or under way."""
        self._threads = 0
        """Worker threads taking tasks from the queue now."""
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="zoo-step")

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.stopping.set()
        self._pool.shutdown(wait=True)
        if self.error is not None and error is None:
            raise self.error

    def add(self, due: list[Task]) -> bool:
        """Queue the due tasks (those not queued or under way already), once every tier
        they need can be called; if one cannot, the run halts and this says False."""
        if not due:
            return True
        if not preflight(self.shift.zoo, due, self.shift.report):
            return False
        with self._changed:
            for task in due:
                if task.id not in self._ids:
                    self._ids.add(task.id)
                    self._queue.append(task)
            while self._threads < min(self.workers, len(self._ids)):  # a thread per task
                self._threads += 1
                self._pool.submit(self._work)
        return True

    def busy(self, task_id: str) -> bool:
        """The task is queued or under way."""
        with self._changed:
            return task_id in self._ids

    def wait_idle(self) -> None:
        """Until nothing is queued or under way."""
        with self._changed:
            while self._threads:
                self._changed.wait()

    @property
    def halted(self) -> bool:
        """No new step starts: the loop is stopping (or a step raised), or the run halted."""
        return self.stopping.is_set() or self.shift.report.halted

    def _work(self) -> None:
        """A worker: take tasks from the queue until it is empty (or the loop stops)."""
        while (task := self._take()) is not None:
            try:
                nxt: Task | None = task
                while nxt is not None and not self.halted:  # its handoffs, in this thread
                    nxt = self.shift.step(nxt)
                if self._rest(task):  # nothing waits: its spend shows in `zoo status` now
                    self.shift.zoo.ledger.flush()
            except BaseException as e:
                self._rest(task)
                with self._changed:
                    self.error = self.error or e
                self.stopping.set()
                if self._wake is not None:
                    self._wake()

    def _take(self) -> Task | None:
        """The next task to work, or None: this worker ends (what is queued stays queued
        in its file if the loop has halted)."""
        with self._changed:
            if self._queue and not self.halted:
                return self._queue.popleft()
            self._ids.difference_update(task.id for task in self._queue)
            self._queue.clear()
            self._threads -= 1
            self._changed.notify_all()
            return None

    def _rest(self, task: Task) -> bool:
        """`task` is no longer under way; True if no other task waits for a worker."""
        with self._changed:
            self._ids.discard(task.id)
            return not self._queue


def preflight(zoo: Zoo, due: list[Task], report: RunReport) -> bool:
    """Before steps start: can every tier these tasks need be called (a key, a server that
    answers and serves the model)? If not, halt the run with the reason and say False:
    every task stays queued, none is escalated for what is not its fault."""
    tiers = sorted({zoo.roster.tier_name(t.agent) for t in due if t.agent in zoo.roster.agents})
    for tier in tiers:
        try:
            zoo.models.ready(tier)
        except ModelUnavailable as e:
            zoo.journal.write("run.stopped", tier=tier, reason=str(e),
                              tasks=[t.id for t in due])  # fmt: skip
            report.halt(RunStopped(str(e)))
            return False
    return True
