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
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import approvals, leases, tasks
from zoo.confine import ConfinementError, read_in_home
from zoo.core import Event, Zoo, attempt_events
from zoo.errors import BudgetExceeded, MaxTurnsExceeded, ModelError, NotFound, TaskFileError
from zoo.fs import atomic_move, atomic_write, sweep_tmp
from zoo.home import DONE, ESCALATIONS, INBOX, Home
from zoo.memory import Entry
from zoo.models.base import Message, Reply, Request, ToolCall
from zoo.router import route_task
from zoo.tasks import Task, utc_now
from zoo.tools import NeedsApproval, Outcome, ToolContext, ToolRefused, execute, specs


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


class RunnerBusy(Exception):
    """Another runner holds this home."""


@contextmanager
def runner_lock(home: Home) -> Iterator[None]:
    """Hold the home's runner lock, or raise `RunnerBusy` at once (never wait)."""
    from filelock import FileLock, Timeout

    state = home.ensure_state()
    lock = FileLock(state / "runner.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunnerBusy(_holder(state)) from None
    try:
        atomic_write(state / "runner.pid", f"{os.getpid()}\n", durable=False)
        yield
    finally:
        (state / "runner.pid").unlink(missing_ok=True)
        lock.release()


def _holder(state: Any) -> str:
    try:
        return f"pid {int((state / 'runner.pid').read_text(encoding='utf-8'))}"
    except (OSError, ValueError):
        return "another process"


def run_once(
    zoo: Zoo, *, concurrency: int | None = None, on_line: Callable[[str], None] | None = None
) -> RunReport:
    """Do all work due now, then return. The caller holds `runner_lock`."""
    started = time.perf_counter()
    report = RunReport(on_line=on_line)
    workers = max(1, concurrency or zoo.roster.defaults.concurrency)
    for folder in (*tasks.active_folders(zoo.home), zoo.home.workspace(DONE),
                   zoo.home.workspace(ESCALATIONS), zoo.home.root):  # fmt: skip
        sweep_tmp(folder)
    seen_broken: set[tuple[str, int]] = set()
    held = leases.RunnerLeases(zoo.home)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-step") as pool:
            while not report.budget_spent:
                due = collect_due(zoo, report, seen_broken)
                if not due:
                    break
                running = {pool.submit(step, zoo, task, report, held) for task in due}
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        nxt = future.result()
                        if nxt is not None:
                            running.add(pool.submit(step, zoo, nxt, report, held))
    finally:
        held.close()
    zoo.ledger.flush()
    report.seconds = time.perf_counter() - started
    return report


def collect_due(zoo: Zoo, report: RunReport, seen_broken: set[tuple[str, int]]) -> list[Task]:
    """Route the inbox, follow hand edits, and return every task queued for an agent."""
    due: list[Task] = []
    active = tasks.active_folders(zoo.home)
    everywhere = [*active, zoo.home.workspace(DONE), zoo.home.workspace(ESCALATIONS)]
    for folder in active:
        paths = tasks.briefs(folder) if folder.name == INBOX else tasks.task_files(folder)
        for path in paths:
            task = _read(zoo, path, report, seen_broken)
            if task is not None and "id" in task.meta:
                if leases.held_by_other(zoo.home, task.id):
                    continue  # `zoo dispatch` is routing it right now
                task = _settle_copies(zoo, task, everywhere)
            if task is None or task.status != "queued" or task.path.parent != folder:
                continue
            if folder.name == INBOX:
                routed = _route_inbox(zoo, task, report)
                if routed is not None:
                    due.append(routed)
            elif _follow_hand_edit(zoo, task, report):
                due.append(task)
    return due


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
    try:
        return tasks.read(path)
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


def _route_inbox(zoo: Zoo, task: Task, report: RunReport) -> Task | None:
    """Route a brief; the task if it is now queued for an agent."""
    if "id" not in task.meta:
        task = _adopt(zoo, task)
    route = route_task(zoo, task)
    where = route.agent or "escalations"
    report.add("routed", f"{task.id} routed to {where} ({route.by}: {route.reason})")
    if route.agent is None:
        report.add("escalated")
    return task if route.agent is not None else None


def _adopt(zoo: Zoo, dropped: Task) -> Task:
    """Give a brief a person dropped in the inbox an id and front matter."""
    title = str(dropped.meta.get("title") or tasks.title_of(dropped.body, dropped.path.stem))
    task_id = tasks.allocate_id(zoo.home)
    meta = {**dropped.meta, "id": task_id, "title": title, "status": "queued",
            "workspace": INBOX, "created": utc_now(), "source": "file", "steps": 0}  # fmt: skip
    body = (
        dropped.body if dropped.body.lstrip().startswith("# ") else f"# {title}\n\n{dropped.body}"
    )
    task = Task(dropped.path.with_name(f"{task_id}-{tasks.slugify(title)}.md"), meta, body)
    task.meta["updated"] = utc_now()
    atomic_move(dropped.path, task.path, task.render())
    zoo.journal.write("task.created", task=task_id, source="file", title=title,
                      file=dropped.path.name)  # fmt: skip
    return task


def _follow_hand_edit(zoo: Zoo, task: Task, report: RunReport) -> bool:
    """Make folder and front matter agree after a person's edit; True if the task is due."""
    roster = zoo.roster
    folder = task.folder
    if task.meta.get("workspace") != folder:  # the person moved the file: the folder wins
        owners = roster.agents_in(folder)
        if task.agent in owners:
            task.meta["workspace"] = folder
            tasks.save(task)
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


# --- one agent turn -------------------------------------------------------------------


def step(zoo: Zoo, task: Task, report: RunReport, held: leases.RunnerLeases) -> Task | None:
    """One agent turn on `task`; the task if it is now queued for another agent."""
    agent = task.agent
    assert agent is not None
    if zoo.daily_budget_spent():  # the task stays queued for tomorrow (or a higher budget)
        if not report.budget_spent:
            spent = f"${zoo.ledger.today_usd():.2f} of ${zoo.roster.budget.daily_usd:.2f}"
            report.add(None, f"daily budget spent ({spent}): queued tasks wait")
            zoo.journal.write("budget.spent", usd=round(zoo.ledger.today_usd(), 4),
                              daily_usd=zoo.roster.budget.daily_usd)  # fmt: skip
        report.budget_spent = True
        return None
    started = utc_now()
    with held.hold(task.id, agent, started):
        outcome, texts, events, error = _turn(zoo, task, agent)
    report.add("steps")
    task.meta["steps"] = task.steps + 1
    task.append_section(f"{agent} · {started}", _section(texts, outcome, error))
    events.append(("step.finished", {"task": task.id, "agent": agent, "step": task.steps}))
    if error is not None:
        zoo.escalate(task, error, by=agent, failed=True, before=events)
        report.add("escalated", f"{task.id} {agent} failed: {error}", f"{task.id} {agent}: {error}")
        return None
    return _after_turn(zoo, task, agent, outcome, events, report)


def _after_turn(
    zoo: Zoo, task: Task, agent: str, outcome: Outcome, events: list[Event], report: RunReport
) -> Task | None:
    if outcome.waiting is not None and outcome.escalation is None:
        zoo.wait(task, outcome.waiting, before=events)
        report.add("waiting", f"{task.id} {agent} waits for approval {outcome.waiting}")
        return None
    if outcome.escalation is not None:
        zoo.escalate(task, outcome.escalation, by=agent, before=events)
        report.add("escalated", f"{task.id} {agent} escalated: {outcome.escalation}")
        return None
    targets = zoo.roster.agents[agent].handoff
    target = outcome.handoff_to or (targets[0] if targets else None)
    if target is None:
        zoo.finish(task, before=events)
        report.add("done", f"{task.id} {agent} finished: done")
        return None
    handoffs = int(task.meta.get("handoffs") or 0) + 1
    limit = zoo.roster.defaults.max_handoffs
    if handoffs > limit:
        reason = f"handed off {handoffs} times, more than max_handoffs ({limit})"
        zoo.escalate(task, reason, by="runner", before=events)
        report.add("escalated", f"{task.id} escalated: {reason}")
        return None
    task.meta["handoffs"] = handoffs
    extra = {"from": agent, "note": outcome.handoff_note or None}
    zoo.assign(task, target, event="task.handoff", extra=extra, before=events)
    report.add("handoffs", f"{task.id} {agent} -> {target}")
    return task


class _Events:
    """The events of one step, in order. Those up to each tool call are written as the call
    happens (so every tool execution has its event even if the step dies), the rest with
    the step's final move, durably."""

    def __init__(self, zoo: Zoo) -> None:
        self.journal = zoo.journal
        self.pending: list[Event] = []

    def add(self, kind: str, fields: dict[str, Any]) -> None:
        self.pending.append((kind, fields))

    def flush(self) -> None:
        """Write what is pending now, without waiting for the disk (the step's end does)."""
        if self.pending:
            self.journal.write_many(self.pending, durable=False)
            self.pending = []


def _turn(zoo: Zoo, task: Task, agent: str) -> tuple[Outcome, list[str], list[Event], str | None]:
    """The model/tool loop of one turn: (outcome, texts, events not yet written, error)."""
    roster = zoo.roster
    ctx = ToolContext(zoo.home, roster, agent, task.id, zoo.memory, env=dict(zoo.models.env))
    tier = roster.tier_name(agent)
    events = _Events(zoo)
    events.add("step.started", {"task": task.id, "agent": agent, "tier": tier})
    texts: list[str] = []
    limit = roster.max_turns(agent)
    try:
        base = Request(
            system=system_prompt(zoo, agent, task),
            messages=(),
            tools=specs(roster, agent),
            meta={"agent": agent, "task": task.id, "purpose": "turn"},
        )
        messages = [Message("user", f"Task {task.id}: {task.title}\n\n{task.body}")]
        model = zoo.models.for_tier(tier)
        for _ in range(limit):
            request = _with(base, messages)
            zoo.check_budget(tier, request, int(task.meta.get("tokens") or 0))
            try:
                reply = model.complete(request)
            except ModelError as e:
                events.pending += attempt_events(e.attempts, task.id, agent)
                raise
            events.pending += attempt_events(reply.attempts, task.id, agent)
            usage = reply.usage
            used = usage.input_tokens + usage.output_tokens
            task.meta["tokens"] = int(task.meta.get("tokens") or 0) + used
            usd = zoo.spent(agent, reply.tier or tier, usage)
            fields = _reply_fields(task, agent, reply.tier or tier, reply)
            events.add("model.reply", {**fields, "usd": usd})
            if reply.text.strip():
                texts.append(reply.text.strip())
            messages.append(Message("assistant", reply.text, reply.tool_calls))
            if not reply.tool_calls:
                return ctx.outcome, texts, events.pending, None
            for call in reply.tool_calls:
                messages.append(_run_tool(ctx, call, events))
            if ctx.outcome.waiting is not None:
                return ctx.outcome, texts, events.pending, None
        if ctx.outcome.handoff_to or ctx.outcome.escalation:
            return ctx.outcome, texts, events.pending, None
        raise MaxTurnsExceeded(f"{agent} made {limit} model calls without finishing (max_turns)")
    except (ModelError, ConfinementError, BudgetExceeded) as e:
        events.add("model.error" if isinstance(e, ModelError) else "step.refused",
                   {"task": task.id, "agent": agent, "tier": tier, "error": str(e),
                    "kind": type(e).__name__})  # fmt: skip
        return ctx.outcome, texts, events.pending, str(e)


def _with(base: Request, messages: list[Message]) -> Request:
    return Request(base.system, tuple(messages), base.tools, base.require_tool,
                   base.max_tokens, base.meta)  # fmt: skip


def _reply_fields(task: Task, agent: str, tier: str, reply: Reply) -> dict[str, Any]:
    return {
        "task": task.id, "agent": agent, "tier": tier, "model": reply.model or None,
        "input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens,
        "tool_calls": len(reply.tool_calls) or None,
    }  # fmt: skip


def _run_tool(ctx: ToolContext, call: ToolCall, events: _Events) -> Message:
    """Check and run one call; its event is written before the model hears back."""
    fields: dict[str, Any] = {"task": ctx.task_id, "agent": ctx.agent, "tool": call.name}
    try:
        done = execute(ctx, call)
    except ToolRefused as e:
        events.add("tool.refused", {**fields, "error": str(e)})
        events.flush()
        return Message("tool", f"error: {e}", tool_call_id=call.id, is_error=True)
    except NeedsApproval as gate:
        approval = approvals.request(ctx.home, ctx.task_id, ctx.agent, gate.tool,
                                     gate.arguments, gate.why)  # fmt: skip
        ctx.outcome.waiting = approval.id
        ctx.outcome.handoff_to = None
        ctx.outcome.notes.append(f"waiting for approval {approval.id}: {approval.preview}")
        events.add("approval.requested", {**fields, "approval": approval.id,
                   "action_hash": approval.hash, "preview": approval.preview,
                   "why": gate.why})  # fmt: skip
        events.flush()
        text = (f"{approval.id}: this action waits for a person's approval ({gate.why}). "
                "End your turn now; you continue once a person has decided.")  # fmt: skip
        return Message("tool", text, tool_call_id=call.id)
    events.add("tool.call", {**fields, **done.fields})
    events.flush()
    return Message("tool", done.text, tool_call_id=call.id)


def _section(texts: list[str], outcome: Outcome, error: str | None) -> str:
    parts = ["\n\n".join(texts) if texts else "*(no text)*"]
    effects = [f"- {note}" for note in outcome.notes]
    if outcome.handoff_to:
        note = f": {outcome.handoff_note}" if outcome.handoff_note else ""
        effects.append(f"- handoff to {outcome.handoff_to}{note}")
    if outcome.escalation:
        effects.append(f"- escalated: {outcome.escalation}")
    if error:
        effects.append(f"- failed: {error}")
    if effects:
        parts.append("\n".join(effects))
    return "\n\n".join(parts)


def system_prompt(zoo: Zoo, agent: str, task: Task) -> str:
    """Playbook + the agent's memory + the relevant part of MEMORY.md + how to work here."""
    roster = zoo.roster
    spec = roster.agents[agent]
    raw = read_in_home(zoo.home.root, f"agents/{agent}.md")
    text = raw.decode("utf-8", errors="replace") if raw is not None else f"# {spec.role}\n"
    targets = ", ".join(spec.handoff)
    lines = [
        text.rstrip(),
        "",
        "---",
        f"You are {agent}, the {spec.role} of the {roster.name} team. {spec.description}",
        f"You are working on task {task.id}. Your reply is appended to the task file as your "
        "section: write what you did and what you produced.",
        f"Your workspace is '{roster.workspace_of(agent)}'; you may read "
        f"{', '.join(roster.readable(agent))} and write {', '.join(roster.writable(agent))}.",
        f"When your part is done the task goes to {targets} (use handoff to choose)."
        if targets
        else "When your part is done, the task is done.",
        "If a person must decide or act, call escalate with the reason.",
    ]
    own = zoo.memory.own(agent)
    if own:
        lines += ["", "# Your memory", *(_entry_line(e) for e in own)]
    shared = zoo.memory.relevant(f"{task.title}\n{task.body}")
    if shared:
        lines += ["", "# Team memory (MEMORY.md, the entries relevant to this task)"]
        lines += [_entry_line(e) for e in shared]
    return "\n".join(lines)


def _entry_line(entry: Entry) -> str:
    return f"- {entry.text} ({entry.agent}, {entry.task}, {entry.time})"
