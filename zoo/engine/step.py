"""One step: an agent's turn on a task, and its result applied to the task (DESIGN §5).

A step is keyed by (task, step number): its log (steplog.py) lets a run after a crash
resume it where it stopped. The turn (turn.py) returns a `StepResult`; `apply` lands it
in one atomic task save and one durable journal write, whatever its next step is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.engine.result import Escalate, Finish, Handoff, NextStep, StepResult, Wait, section
from zoo.engine.turn import turn
from zoo.engine.zoo import Event, Zoo
from zoo.errors import RunStopped
from zoo.state import leases
from zoo.state.steplog import StepLog, StepLogs
from zoo.state.tasks import Task, utc_now

if TYPE_CHECKING:
    from zoo.engine.runreport import RunReport


def step(
    zoo: Zoo, task: Task, report: RunReport, held: leases.RunnerLeases, logs: StepLogs
) -> Task | None:
    """One agent turn on `task`; the task if it is now queued for another agent."""
    agent = task.agent
    assert agent is not None
    if report.halted:
        return None
    if zoo.daily_budget_spent():  # the task stays queued for tomorrow (or a higher budget)
        spent = f"${zoo.ledger.today_usd():.2f} of ${zoo.roster.budget.daily_usd:.2f}"
        zoo.journal.write("budget.spent", usd=round(zoo.ledger.today_usd(), 4),
                          daily_usd=zoo.roster.budget.daily_usd)  # fmt: skip
        report.halt(RunStopped(f"daily budget spent ({spent})", failure=False))
        return None
    started = utc_now()
    number = task.steps + 1
    with held.hold(task.id, agent, started):
        log = logs.open(task.id, number, agent)
        saved = False
        try:
            try:
                result = turn(zoo, task, agent, log)
            except RunStopped as stopped:  # the task stays queued; its log resumes the step
                paused = {"task": task.id, "agent": agent, "step": number, "reason": str(stopped)}
                zoo.journal.write_many([*stopped.events, ("step.paused", paused)])
                report.halt(stopped)
                return None
            if log.resumed:
                report.add(None, f"{task.id} {agent} resumed step {number} after an interruption")
            nxt = apply(zoo, task, result, report, log, started)
            saved = True
            return nxt
        finally:
            log.close(done=saved)


def apply(
    zoo: Zoo, task: Task, result: StepResult, report: RunReport, log: StepLog, started: str
) -> Task | None:
    """Apply one turn's result to its task: the agent's section (headed with when the step
    `started`), the step count and tokens, then its next step, which moves the task and
    journals the step's events with the move. The task if it is now another agent's."""
    agent, number = result.agent, task.steps + 1
    report.add("steps")
    task.meta["steps"] = number
    if result.tokens is not None:
        task.meta["tokens"] = int(task.meta.get("tokens") or 0) + result.tokens
    task.append_section(f"{agent} · {started}", section(result))
    events = [*result.events, ("step.finished", {"task": task.id, "agent": agent, "step": number})]
    log.commit(events)  # should the runner die after the save, the next one journals them
    return _move(zoo, task, agent, result.next, events, report)


def _move(
    zoo: Zoo, task: Task, agent: str, nxt: NextStep, events: list[Event], report: RunReport
) -> Task | None:
    match nxt:
        case Wait(approval=approval):
            zoo.wait(task, approval, before=events)
            report.add("waiting", f"{task.id} {agent} waits for approval {approval}")
        case Escalate(reason=reason, by=by, failed=failed):
            zoo.escalate(task, reason, by=by, failed=failed, before=events)
            if failed:
                report.add("escalated", f"{task.id} {agent} failed: {reason}",
                           f"{task.id} {agent}: {reason}")  # fmt: skip
            else:
                who = f"{agent} " if by == agent else ""
                report.add("escalated", f"{task.id} {who}escalated: {reason}")
        case Finish():
            zoo.finish(task, before=events)
            report.add("done", f"{task.id} {agent} finished: done")
        case Handoff(to=target, note=note):
            task.meta["handoffs"] = int(task.meta.get("handoffs") or 0) + 1
            zoo.assign(task, target, event="task.handoff",
                       extra={"from": agent, "note": note or None}, before=events)  # fmt: skip
            report.add("handoffs", f"{task.id} {agent} -> {target}")
            return task
    return None
