"""One agent's turn on one task: the model/tool loop of DESIGN §5, step 3.

The agent gets its playbook, its memory, the relevant part of MEMORY.md and the task,
with the tools its roster entry allows; each tool call is checked (tools.py) and
journaled as it happens. The turn returns what the agent decided and wrote as a
`StepResult` (result.py); the runner applies it (step.py). What the step log
(steplog.py) holds from an interrupted run of the same step is replayed, so a resumed
step neither asks the model again nor repeats an effect.
"""

from __future__ import annotations

import json
from typing import Any

from zoo.engine import approvals
from zoo.engine.context import Fitting, Prompt
from zoo.engine.result import StepResult, next_step
from zoo.engine.zoo import Event, Zoo, attempt_events, reply_fields
from zoo.errors import BudgetExceeded, MaxTurnsExceeded, ModelError, stops_run
from zoo.models.base import Message, Reply, Request, ToolCall
from zoo.policy.tools import (
    NeedsApproval,
    Outcome,
    ToolContext,
    ToolRefused,
    execute,
    specs,
    waits_for_person,
)
from zoo.roster import playbooks
from zoo.secrets import redact_all
from zoo.state.files import ConfinementError
from zoo.state.memory import Entry
from zoo.state.steplog import StepLog, call_key
from zoo.state.tasks import Task


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


def turn(zoo: Zoo, task: Task, agent: str, log: StepLog) -> StepResult:
    """The model/tool loop of one turn, and what it decided: nothing of it is saved to the
    task yet (step.py applies it). `RunStopped` when the run must stop first.

    What `log` holds from an interrupted run of this step is replayed, not redone.
    """
    roster = zoo.roster
    ctx = ToolContext(zoo.home, roster, agent, task.id, zoo.memory, env=dict(zoo.models.env),
                      step=task.steps + 1)  # fmt: skip
    tier = roster.tier_name(agent)
    events = _Events(zoo)
    resumed = log.resumed
    started: dict[str, Any] = {"task": task.id, "agent": agent, "tier": tier}
    if resumed:
        started["resumed"] = {"replies": len(resumed.replies), "results": len(resumed.results)}
    events.add("step.started", started)
    texts: list[str] = []
    tokens: int | None = None
    limit = roster.max_turns(agent)
    try:
        prompt = task_prompt(zoo, agent, task)
        base = Request(
            system=prompt.system(),
            messages=(),
            tools=specs(roster, agent),
            meta={"agent": agent, "task": task.id, "purpose": "turn"},
        )
        messages = [Message("user", prompt.task())]
        fitting = Fitting(prompt, zoo.models.window(tier),
                          {"task": task.id, "agent": agent, "tier": tier}, events.add)  # fmt: skip
        for turn in range(limit):
            if turn < len(resumed.replies):
                reply = resumed.replies[turn]
            else:
                used = int(task.meta.get("tokens") or 0) + (tokens or 0)
                request = fitting.request(_with(base, messages))
                reply = _ask(zoo, task, agent, tier, request, events, used)
                log.reply(reply)
            tokens = (tokens or 0) + reply.usage.input_tokens + reply.usage.output_tokens
            if reply.text.strip():
                texts.append(reply.text.strip())
            said = reply.written if reply.written is not None else reply.text
            messages.append(Message("assistant", said, reply.tool_calls))
            if not reply.tool_calls:
                return _result(zoo, task, agent, ctx.outcome, texts, events, tokens)
            for i, call in enumerate(reply.tool_calls):
                messages.append(_call(ctx, call, call_key(turn, i), events, log))
            if ctx.outcome.waiting is not None:
                return _result(zoo, task, agent, ctx.outcome, texts, events, tokens)
        if ctx.outcome.handoff_to or ctx.outcome.escalation:
            return _result(zoo, task, agent, ctx.outcome, texts, events, tokens)
        raise MaxTurnsExceeded(f"{agent} made {limit} model calls without finishing (max_turns)")
    except (ModelError, ConfinementError, BudgetExceeded, playbooks.PlaybookError) as e:
        stopped = stops_run(e)
        if stopped is not None:  # not this task's fault: it stays queued, its log resumes
            stopped.events = events.pending
            raise stopped from e
        events.add("model.error" if isinstance(e, ModelError) else "step.refused",
                   {"task": task.id, "agent": agent, "tier": tier, "error": str(e),
                    "kind": type(e).__name__})  # fmt: skip
        return _result(zoo, task, agent, ctx.outcome, texts, events, tokens, str(e))


def _result(
    zoo: Zoo,
    task: Task,
    agent: str,
    outcome: Outcome,
    texts: list[str],
    events: _Events,
    tokens: int | None,
    error: str | None = None,
) -> StepResult:
    """The turn as a value: what the tool calls decided becomes the explicit next step."""
    nxt = next_step(agent, handoff_to=outcome.handoff_to, handoff_note=outcome.handoff_note,
                    escalation=outcome.escalation, waiting=outcome.waiting, error=error,
                    targets=zoo.roster.agents[agent].handoff,
                    handoffs=int(task.meta.get("handoffs") or 0),
                    max_handoffs=zoo.roster.defaults.max_handoffs)  # fmt: skip
    effects = list(outcome.notes)
    if outcome.handoff_to:
        note = f": {outcome.handoff_note}" if outcome.handoff_note else ""
        effects.append(f"handoff to {outcome.handoff_to}{note}")
    if outcome.escalation:
        effects.append(f"escalated: {outcome.escalation}")
    return StepResult(agent, tuple(texts), tuple(effects), nxt, tuple(events.pending), tokens,
                      error)  # fmt: skip


def _ask(
    zoo: Zoo, task: Task, agent: str, tier: str, request: Request, events: _Events, used: int
) -> Reply:
    """One model call within the budget (its estimate reserved before it starts, settled
    after), paid for and journaled before the step log records its reply. `used`: the
    tokens the task has used so far."""
    try:
        reply, usd = zoo.paid_call(agent, tier, request, task=task.id, task_tokens=used)
    except ModelError as e:
        events.pending += attempt_events(e.attempts, task.id, agent)
        raise
    events.pending += attempt_events(reply.attempts, task.id, agent)
    events.add("model.reply", {**_reply_fields(task, agent, reply.tier or tier, reply), "usd": usd})
    events.flush()
    return reply


def _call(ctx: ToolContext, call: ToolCall, key: str, events: _Events, log: StepLog) -> Message:
    """One tool call of the step: replayed from the log, redone with care, or run."""
    logged = log.resumed.results.get(key)
    if logged is not None:
        ctx.outcome = Outcome(**{**logged.outcome, "notes": list(logged.outcome["notes"])})
        return Message("tool", logged.text, tool_call_id=call.id, is_error=logged.is_error)
    if key in log.resumed.interrupted:
        message = _redo(ctx, call, events)
    else:
        log.intent(key)
        message = _run_tool(ctx, call, events)
    log.result(key, message.content, message.is_error, ctx.outcome)
    return message


def _redo(ctx: ToolContext, call: ToolCall, events: _Events) -> Message:
    """A call that was under way when the runner died: it may have had its effect.

    A tool the registry marks safe to redo is called again (`remember` skips a note
    already kept for this step; an approval request finds the one already made). Any
    other (a command may have half run) is not, and the model is told so.
    """
    tool = ctx.registry.get(call.name)
    if tool is not None and not tool.redo and not waits_for_person(ctx, call):
        events.add("tool.interrupted", {"task": ctx.task_id, "agent": ctx.agent,
                                        "tool": call.name,
                                        "arguments": attempted(call.arguments)})  # fmt: skip
        events.flush()
        text = ("interrupted: Zoo stopped while this call ran, so it may or may not have "
                "finished. It was not run again; check its effects before you go on.")  # fmt: skip
        return Message("tool", text, tool_call_id=call.id, is_error=True)
    ctx.redo = True
    try:
        return _run_tool(ctx, call, events)
    finally:
        ctx.redo = False


def _with(base: Request, messages: list[Message]) -> Request:
    return Request(base.system, tuple(messages), base.tools, base.require_tool,
                   base.max_tokens, base.meta)  # fmt: skip


def _reply_fields(task: Task, agent: str, tier: str, reply: Reply) -> dict[str, Any]:
    return {"task": task.id, "agent": agent, "tier": tier, **reply_fields(reply)}


def _run_tool(ctx: ToolContext, call: ToolCall, events: _Events) -> Message:
    """Check and run one call; its event is written before the model hears back."""
    fields: dict[str, Any] = {"task": ctx.task_id, "agent": ctx.agent, "tool": call.name}
    if call.written:
        fields["format"] = "text"  # the model wrote the call in its reply's text
    if ctx.redo:
        fields["redo"] = True
    try:
        done = execute(ctx, call)
    except ToolRefused as e:
        events.add("tool.refused", {**fields, "error": str(e),
                                    "arguments": attempted(call.arguments)})  # fmt: skip
        events.flush()
        return Message("tool", f"error: {e}", tool_call_id=call.id, is_error=True)
    except NeedsApproval as gate:
        approval = approvals.request(ctx.home, ctx.task_id, ctx.agent, gate.tool,
                                     gate.arguments, gate.why, once=ctx.redo)  # fmt: skip
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


ARGUMENT_CHARS = 200
"""A refused call's journaled arguments: each string cut to this many characters..."""
ARGUMENT_ITEMS = 20
"""...each list or object to this many items, three levels deep..."""
ARGUMENTS_CHARS = 2000
"""...and the whole, as JSON, to this many characters."""


def attempted(arguments: dict[str, Any]) -> dict[str, Any] | str:
    """What the model sent in a refused call, for the audit trail: redacted first (so no
    cut can split a secret out of its shape), then cut to size."""
    kept = _cut(redact_all(arguments), 0)
    text = json.dumps(kept, ensure_ascii=False)
    if len(text) <= ARGUMENTS_CHARS:
        return kept
    return text[: ARGUMENTS_CHARS - 3] + "..."


def _cut(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= ARGUMENT_CHARS:
            return value
        return f"{value[:ARGUMENT_CHARS]}... ({len(value):,} characters)"
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= 3:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        kept = {_cut(str(k), depth): _cut(v, depth + 1) for k, v in items[:ARGUMENT_ITEMS]}
        if len(items) > ARGUMENT_ITEMS:
            kept["..."] = f"{len(items) - ARGUMENT_ITEMS} more"
        return kept
    if isinstance(value, list | tuple):
        more = [f"... {len(value) - ARGUMENT_ITEMS} more"] if len(value) > ARGUMENT_ITEMS else []
        return [_cut(v, depth + 1) for v in value[:ARGUMENT_ITEMS]] + more
    return _cut(str(value), depth)


def system_prompt(zoo: Zoo, agent: str, task: Task) -> str:
    """Playbook + the agent's memory + the relevant part of MEMORY.md + how to work here.

    `PlaybookError` when the playbook cannot be used (the step fails: no turn without one).
    """
    return task_prompt(zoo, agent, task).system()


def task_prompt(zoo: Zoo, agent: str, task: Task) -> Prompt:
    """The system prompt and the task message, in the parts that context.py may leave out
    to fit the model's window; `PlaybookError` as `system_prompt`."""
    roster = zoo.roster
    spec = roster.agents[agent]
    text = playbooks.read(zoo.home, agent)
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
    if spec.commands and "run" in spec.tools and "run" not in spec.approval:
        lines.append(f"Commands you may run without approval: `{'`, `'.join(spec.commands)}`.")
    own = [_entry_line(e) for e in zoo.memory.own(agent)]
    shared = [_entry_line(e) for e in zoo.memory.relevant(f"{task.title}\n{task.body}")]
    body = f"Task {task.id}: {task.title}\n\n{task.body}"
    return Prompt.of("\n".join(lines), own, shared, body)


def _entry_line(entry: Entry) -> str:
    return f"- {entry.text} ({entry.agent}, {entry.task}, {entry.time})"
