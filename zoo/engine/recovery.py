"""Crash recovery, before a runner starts work: what a runner that died left behind.

Temporary files of writes it never renamed are removed; its leases are reclaimed (the
tasks it was working on are queued still, and resume); the step logs it left are kept
only for steps that will resume, and a step it saved but never journaled is journaled
now (DESIGN §7: no work lost, none repeated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.engine.zoo import Zoo
from zoo.errors import NotFound, TaskFileError
from zoo.state import leases, tasks
from zoo.state.fs import sweep_tmp
from zoo.state.steplog import Leftover, StepLogs
from zoo.state.tasks import Task

if TYPE_CHECKING:
    from zoo.engine.runreport import RunReport


def recover(zoo: Zoo, report: RunReport) -> StepLogs:
    """Clean up after runners that died; the step logs this runner works with."""
    for folder in (*tasks.task_folders(zoo.home), zoo.home.root):
        sweep_tmp(folder)
    for pid, interrupted in leases.reclaim(zoo.home).items():
        zoo.journal.write("runner.reclaimed", pid=pid, tasks=interrupted)
        if interrupted:
            report.add(None, f"runner pid {pid} died working on {', '.join(interrupted)}: "
                             "resuming")  # fmt: skip
    logs = StepLogs(zoo.home)
    _sweep_step_logs(zoo, logs)
    return logs


def _sweep_step_logs(zoo: Zoo, logs: StepLogs) -> None:
    """Drop the logs dead runners left that no step will resume: they died after the
    step's save.

    A task cut off mid-move has two copies; the one with more steps is the task (see
    `intake.settle_copies`), so a log is kept only if that copy still waits for the step.
    """
    if not logs.left:
        return
    copies: dict[str, list[Task]] = {}
    for folder in tasks.task_folders(zoo.home):
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
