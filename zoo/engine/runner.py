"""The runner: due work -> agent turn -> append -> handoff, done or escalate (DESIGN §5).

`run_once` does all work that is due now, including handoffs made meanwhile, and
returns; a watcher (later) only has to call it again. One runner per home at a time:
`runner_lock` says whether this process may be it. Independent tasks run in parallel
threads; one task is only ever in one thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engine.router import route_task
from zoo.engine.step import step
from zoo.engine.zoo import Zoo, edited
from zoo.errors import ModelUnavailable, NotFound, RunStopped, TaskFileError, UserError
from zoo.state import leases, tasks
from zoo.state.fs import atomic_move, sweep_tmp
from zoo.state.home import DONE, ESCALATIONS, INBOX, Home
from zoo.state.runnerlock import RunnerBusy as RunnerBusy  # re-exported: callers take both here
from zoo.state.runnerlock import runner_lock as runner_lock
from zoo.state.steplog import Leftover, StepLogs
from zoo.state.tasks import Task, utc_now

if TYPE_CHECKING:
    from zoo.engine.autocommit import AutoCommitter
    from zoo.engine.watcher import Watcher


@dataclass
class RunReport:
    """What one `run_once` did; `failed` makes the process exit non-zero."""

    steps: int = 0
    routed: int = 0
    handoffs: int = 0
    done: int = 0
    escalated: int = 0
    waiting: int = 0
    """Tasks now waiting for a person's approval."""
    budget_spent: bool = False
    """Today's budget is spent: no more steps start in this run."""
    stopped: str | None = None
    """Why no more steps start: something every task needs is missing (`RunStopped`)."""
    uncommitted: str | None = None
    """Why the run's work could not be committed to git at its end (autocommit)."""
    failed: list[str] = field(default_factory=list)
    """One line per failure: model errors, broken task files, max_turns."""
    lines: list[str] = field(default_factory=list)
    """One line per thing that happened, for people watching."""
    seconds: float = 0.0
    on_line: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with each line as it happens (a person watching `zoo run`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def halted(self) -> bool:
        """No more steps start in this run."""
        return self.budget_spent or self.stopped is not None

    def halt(self, why: RunStopped) -> None:
        """Start no more steps, once, saying why: a failure (exit 1), or a pause."""
        with self._lock:
            if self.halted:
                return
            if why.failure:
                self.stopped = str(why)
            else:
                self.budget_spent = True
        line = f"{why}: queued tasks wait" + (" (fix it, then run again)" if why.failure else "")
        self.add(None, line, line if why.failure else None)

    def add(self, counter: str | None, line: str | None = None, failure: str | None = None) -> None:
        """Count one thing that happened (from any worker thread)."""
        with self._lock:
            if counter is not None:
                setattr(self, counter, getattr(self, counter) + 1)
            if line is not None:
                self.lines.append(line)
                if self.on_line is not None:
                    self.on_line(line)
            if failure is not None:
                self.failed.append(failure)


def run_once(
    zoo: Zoo, *, concurrency: int | None = None, on_line: Callable[[str], None] | None = None
) -> RunReport:
    """Do all work due now (due schedules included), then return. The caller holds
    `runner_lock`."""
    started = time.perf_counter()
    report = RunReport(on_line=on_line)
    workers = max(1, concurrency or zoo.roster.defaults.concurrency)
    seen_broken: set[tuple[str, int]] = set()
    shift = Shift.begin(zoo, report)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-step") as pool:
            while not report.halted:
                fire_schedules(zoo, report)
                due = collect_due(zoo, report, seen_broken)
                if not due or not preflight(zoo, due, report):
                    break
                running = {pool.submit(shift.step, task) for task in due}
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        nxt = future.result()
                        if nxt is not None:
                            running.add(pool.submit(shift.step, nxt))
    finally:
        shift.end()
    report.seconds = time.perf_counter() - started
    return report


SPEND_FLUSH_S = 1.0


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
        """Clean up after a runner that died, then hold this one's leases."""
        for folder in (*tasks.active_folders(zoo.home), zoo.home.workspace(DONE),
                       zoo.home.workspace(ESCALATIONS), zoo.home.root):  # fmt: skip
            sweep_tmp(folder)
        for pid, interrupted in leases.reclaim(zoo.home).items():
            zoo.journal.write("runner.reclaimed", pid=pid, tasks=interrupted)
            if interrupted:
                report.add(None, f"runner pid {pid} died working on {', '.join(interrupted)}: "
                                 "resuming")  # fmt: skip
        logs = StepLogs(zoo.home)
        _sweep_step_logs(zoo, logs)
        committer = None
        if zoo.roster.git.autocommit:
            from zoo.engine.autocommit import AutoCommitter

            committer = AutoCommitter.start(zoo.home, on_line=lambda line: report.add(None, line))
        return cls(zoo, report, leases.RunnerLeases(zoo.home), logs, committer)

    def step(self, task: Task) -> Task | None:
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


class Live:
    """`zoo run`: the long-running runner (DESIGN §4-§5).

    The main thread waits on the file watcher (or the next schedule), reads only the task
    files that changed, and hands each task that is due to a worker thread, which works
    it and follows its handoffs. A full look at every folder happens at the start, when
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
        self._inflight: set[str] = set()
        self._guard = threading.Lock()
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
        from zoo.roster.check import require_ok

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
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="zoo-step")
        try:
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
                    due = self._due_among(paths)
                if due and not preflight(self.zoo, due, self.report):
                    break
                for task in due:
                    self._start(pool, task)
                paths = self.watcher.wait(self._sleep_s(rescan_at))
                if paths is not None and self._deferred:
                    paths |= self._deferred
                    self._deferred = set()
        finally:
            self.stopping.set()
            pool.shutdown(wait=True)
            self.shift.end()
        self.report.seconds = time.perf_counter() - started
        return self.report

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

    def _due_among(self, paths: set[Path]) -> list[Task]:
        """The due tasks among the files that changed (those not being worked already)."""
        due = []
        everywhere = _everywhere(self.zoo.home)
        for path in sorted(paths):
            match = tasks.TASK_NAME.match(path.name)
            if match and match.group(1) in self._inflight:
                continue  # its worker wrote it (or will find the change when it saves)
            if match and leases.held_by_other(self.zoo.home, match.group(1)):
                self._deferred.add(path)  # `zoo dispatch` is routing it: look again soon
                continue
            task = _due(self.zoo, path, self.report, self._broken, everywhere, leased=False)
            if task is not None:
                due.append(task)
        return due

    def _start(self, pool: ThreadPoolExecutor, task: Task) -> None:
        with self._guard:
            if task.id in self._inflight:
                return
            self._inflight.add(task.id)
        pool.submit(self._work, task)

    def _work(self, task: Task) -> None:
        """Work `task` and follow its handoffs until it rests (or the runner stops)."""
        assert self.shift is not None
        task_id = task.id
        try:
            nxt: Task | None = task
            while nxt is not None and not self.stopping.is_set():
                nxt = self.shift.step(nxt)
        finally:
            with self._guard:
                self._inflight.discard(task_id)
            self.zoo.ledger.flush()  # the task rests: its spend shows in `zoo status` now


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


def fire_schedules(zoo: Zoo, report: RunReport) -> None:
    """Queue a task for every schedule whose time has come (schedules.py)."""
    if not zoo.roster.schedules:
        return
    from zoo.engine import schedules

    for fired in schedules.fire_due(zoo):
        missed = f", catching up {fired.missed} missed run(s)" if fired.missed else ""
        report.add(None, f"schedule {fired.name} fired for {fired.slot}{missed}: "
                         f"{fired.task} queued for {fired.agent}")  # fmt: skip


def _sweep_step_logs(zoo: Zoo, logs: StepLogs) -> None:
    """Drop the logs dead runners left that no step will resume: they died after the
    step's save.

    A task cut off mid-move has two copies; the one with more steps is the task (see
    `_settle_copies`), so a log is kept only if that copy still waits for the step.
    """
    if not logs.left:
        return
    copies: dict[str, list[Task]] = {}
    for folder in _everywhere(zoo.home):
        for path in tasks.task_files(folder):
            match = tasks.TASK_NAME.match(path.name)
            if match and match.group(1) in logs.left:
                try:
                    copies.setdefault(match.group(1), []).append(tasks.read(path))
                except (NotFound, TaskFileError):
                    continue
    for task_id, left in list(logs.left.items()):
        found = copies.get(task_id)
        task = max(found, key=lambda t: t.steps) if found else None
        if task is None or (task.status, task.agent, task.steps + 1) != (
            "queued", left.agent, left.step):  # fmt: skip
            if task is not None and task.steps >= left.step:
                _journal_saved_step(zoo, task, left)
            logs.drop(task_id)


def _journal_saved_step(zoo: Zoo, task: Task, left: Leftover) -> None:
    """A runner died between saving a step and journaling it: journal it now."""
    from zoo.state.journal import read_events

    events = left.committed
    if events is None:
        return
    for event in read_events(zoo.home.journal_path):  # a crash's cost only
        if event.get("event") == "step.finished" and event.get("task") == task.id and (
            event.get("step") == left.step):  # fmt: skip
            return
    recovered = {"task": task.id, "step": left.step, "status": task.status, "agent": task.agent,
                 "workspace": task.folder}  # fmt: skip
    zoo.journal.write_many([*events, ("step.recovered", recovered)])


def collect_due(zoo: Zoo, report: RunReport, seen_broken: set[tuple[str, int]]) -> list[Task]:
    """Route the inbox, follow hand edits, and return every task queued for an agent."""
    due: dict[str, Task] = {}
    everywhere = _everywhere(zoo.home)
    for folder in tasks.active_folders(zoo.home):
        paths = tasks.briefs(folder) if folder.name == INBOX else tasks.task_files(folder)
        for path in paths:
            match = tasks.TASK_NAME.match(path.name)
            if match and match.group(1) in due:
                continue  # routed from the inbox into this folder a moment ago
            task = _due(zoo, path, report, seen_broken, everywhere)
            if task is not None:
                due.setdefault(task.id, task)
    return list(due.values())


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


def _everywhere(home: Home) -> list[Path]:
    return [*tasks.active_folders(home), home.workspace(DONE), home.workspace(ESCALATIONS)]


def _due(
    zoo: Zoo,
    path: Path,
    report: RunReport,
    seen_broken: set[tuple[str, int]],
    everywhere: list[Path],
    *,
    leased: bool = True,
) -> Task | None:
    """The task at `path` if it is due for an agent now, routing it if it is a brief.

    `leased=False`: the caller has checked that no other process holds the task.
    """
    task = _read(zoo, path, report, seen_broken)
    if task is not None and "id" in task.meta:
        if leased and leases.held_by_other(zoo.home, task.id):
            return None  # `zoo dispatch` is routing it right now
        task = _settle_copies(zoo, task, everywhere)
    if task is None or task.path.parent != path.parent:
        return None
    if task.status in ("done", "escalated"):  # a person moved it back into a workspace
        _requeue(zoo, task, report)
    if task.status != "queued":
        return None
    if path.parent.name == INBOX:
        return _route_inbox(zoo, task, report)
    return task if _follow_hand_edit(zoo, task, report) else None


def _settle_copies(zoo: Zoo, task: Task, folders: list[Path]) -> Task | None:
    """After a crash mid-move a task can be in two folders: keep the newer copy only.

    A move writes the new file before it removes the old one, and a copy only ever
    grows, so the copy with more steps (then the later `updated`) holds everything.
    """
    copies = [task]
    for folder in folders:
        other = folder / task.path.name
        if folder != task.path.parent and other.exists():
            try:
                copies.append(tasks.read(other))
            except (NotFound, TaskFileError):
                continue
    if len(copies) == 1:
        return task
    keep = max(copies, key=lambda t: (t.steps, str(t.meta.get("updated", "")), t.mtime_ns))
    for copy in copies:
        if copy is not keep:
            copy.path.unlink(missing_ok=True)
            zoo.journal.write("task.copy_removed", task=task.id, path=zoo.home.relative(copy.path),
                              kept=zoo.home.relative(keep.path))  # fmt: skip
    return keep


def _read(zoo: Zoo, path: Any, report: RunReport, seen_broken: set[tuple[str, int]]) -> Task | None:
    """The task at `path` (a broken file is reported once); an inbox id not its own is renewed."""
    try:
        task = tasks.read(path)
    except NotFound:
        return None  # moved away since the folder was listed
    except TaskFileError as e:
        key = (str(path), path.stat().st_mtime_ns if path.exists() else 0)
        if key not in seen_broken:
            seen_broken.add(key)
            report.add(None, failure=str(e))
            zoo.journal.write("task.invalid", path=zoo.home.relative(path), error=e.problem,
                              line=e.line, key=e.key)  # fmt: skip
        return None
    if path.parent.name == INBOX and "id" in task.meta and not tasks.keeps_id(zoo.home, task):
        return _adopt(zoo, task)
    return task


def _requeue(zoo: Zoo, task: Task, report: RunReport) -> None:
    """A done or escalated task a person moved into a workspace folder is work again:
    for that folder's agent (or, in the inbox, to be routed anew), with a fresh count
    of handoffs, as `zoo retry` gives."""
    was, reason = task.status, task.meta.get("escalation")
    task.meta.update(status="queued", handoffs=0)
    task.meta.pop("escalation", None)
    if task.folder == INBOX:
        task.meta.update(agent=zoo.roster.lead, workspace=INBOX)
    events = [*edited(task, tasks.save(task)),
              ("task.requeued", {"task": task.id, "was": was, "folder": task.folder,
                                 "escalation": reason, "by": "person"})]  # fmt: skip
    zoo.journal.write_many(events)
    report.add(None, f"{task.id} ({was}) moved by hand to {task.folder}/: queued again")


def _route_inbox(zoo: Zoo, task: Task, report: RunReport) -> Task | None:
    """Route a brief; the task if it is now queued for an agent."""
    if "id" not in task.meta:
        task = _adopt(zoo, task)
    try:
        route = route_task(zoo, task)
    except RunStopped as stopped:  # the brief waits in the inbox
        zoo.journal.write_many([*stopped.events, ("run.stopped", {"task": task.id,
                                "agent": zoo.roster.lead, "reason": str(stopped)})])  # fmt: skip
        report.halt(stopped)
        return None
    where = route.agent or "escalations"
    report.add("routed", f"{task.id} routed to {where} ({route.by}: {route.reason})")
    if route.agent is None:
        report.add("escalated")
    return task if route.agent is not None else None


def _adopt(zoo: Zoo, dropped: Task) -> Task:
    """Give a brief in the inbox a fresh id and Zoo's front matter (its own keys stay)."""
    title, extra = tasks.from_brief(dropped.meta, dropped.body, dropped.path.stem)
    task_id = tasks.allocate_id(zoo.home)
    meta = {**extra, "id": task_id, "title": title, "status": "queued", "workspace": INBOX,
            "created": utc_now(), "source": "file", "steps": 0}  # fmt: skip
    body = (
        dropped.body if dropped.body.lstrip().startswith("# ") else f"# {title}\n\n{dropped.body}"
    )
    task = Task(dropped.path.with_name(f"{task_id}-{tasks.slugify(title)}.md"), meta, body)
    task.meta["updated"] = utc_now()
    atomic_move(dropped.path, task.path, task.render())
    events = [("task.created", {"task": task_id, "source": "file", "title": title,
                                "file": dropped.path.name})]  # fmt: skip
    if dropped.meta.get("id") is not None:  # it said an id it cannot keep
        events.append(("task.renumbered", {"task": task_id, "from": str(dropped.meta["id"]),
                                           "file": dropped.path.name}))  # fmt: skip
    zoo.journal.write_many(events)
    return task


def _follow_hand_edit(zoo: Zoo, task: Task, report: RunReport) -> bool:
    """Make folder and front matter agree after a person's edit; True if the task is due."""
    roster = zoo.roster
    folder = task.folder
    if task.meta.get("workspace") != folder:  # the person moved the file: the folder wins
        owners = roster.agents_in(folder)
        if task.agent in owners:
            task.meta["workspace"] = folder
            zoo.journal.write_many(edited(task, tasks.save(task)))
            return True
        if len(owners) != 1:
            reason = f"moved to '{folder}/', which no single agent works in"
            zoo.escalate(task, reason, by="runner")
            report.add("escalated", f"{task.id} escalated: {reason}")
            return False
        zoo.assign(task, owners[0], event="task.moved", extra={"folder": folder})
        report.add(None, f"{task.id} moved by hand to {folder}/: now {owners[0]}'s")
        return True
    if task.agent not in roster.agents:
        reason = f"unknown agent '{task.agent}' in its front matter"
        zoo.escalate(task, reason, by="runner")
        report.add("escalated", f"{task.id} escalated: {reason}")
        return False
    if roster.workspace_of(task.agent) != folder:  # the person changed `agent:`
        zoo.assign(task, task.agent, event="task.reassigned", extra={"folder": folder})
        report.add(None, f"{task.id} reassigned by hand to {task.agent}")
    return True
