"""What an agent may call: the tools of DESIGN §2, each checked before it acts.

An agent gets only the tools its roster entry lists, with only the arguments each tool
declares. A checked call either runs (`perform`) or, when the roster says a person must
decide (`approval:`, or a `run` command outside `commands`), raises `NeedsApproval`: the
runner then queues it for a person (approvals.py) and never runs it itself. A refused
call is a `ToolRefused`: its message goes back to the model as a tool error and into the
journal; it never crashes the runner. Nothing the model sends is trusted: arguments are
checked here, and paths are confined to the workspaces the roster grants (confine.py).
Each tool is declared once, as an entry of the registry (registry.py): `BUILTINS`, at the
end of this module, holds the built-in tools.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ToolRefused
from zoo.models.base import ToolCall, ToolSpec
from zoo.policy import commands, confine
from zoo.policy.registry import Registry, Tool
from zoo.roster import Roster
from zoo.state import files, written
from zoo.state.home import Home
from zoo.state.memory import Entry, Memory
from zoo.state.tasks import TASK_NAME, utc_now

__all__ = [
    "BUILTINS",
    "NeedsApproval",
    "Outcome",
    "ToolContext",
    "ToolRefused",
    "execute",
    "perform",
    "specs",
]

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_OUTPUT_BYTES = 64 * 1024
"""Output of a `run` command kept for the model; the rest is counted, not kept."""


class NeedsApproval(Exception):
    """A checked call that only a person may allow; it has not run."""

    def __init__(self, tool: str, arguments: dict[str, Any], why: str) -> None:
        super().__init__(why)
        self.tool = tool
        self.arguments = arguments
        self.why = why


@dataclass
class Outcome:
    """What an agent's tool calls decided for its task, and what they did."""

    handoff_to: str | None = None
    handoff_note: str = ""
    escalation: str | None = None
    waiting: str | None = None
    """The approval the task now waits on; the turn ends."""
    notes: list[str] = field(default_factory=list)
    """One line per effect, for the task's section."""


@dataclass
class ToolContext:
    home: Home
    roster: Roster
    agent: str
    task_id: str
    memory: Memory
    env: dict[str, str] = field(default_factory=dict)
    """The environment commands start from (secrets are taken out)."""
    step: int | None = None
    """The task's step these calls belong to: with the task, the key of their effects."""
    redo: bool = False
    """The call being made may already have had its effect (a step resumed after a crash)."""
    outcome: Outcome = field(default_factory=Outcome)
    registry: Registry = field(default_factory=lambda: BUILTINS)
    """The tools there are: the built-in ones, and any found at run time."""


@dataclass(frozen=True)
class Performed:
    """A call that ran: what the model is told, and what the journal records."""

    text: str
    fields: dict[str, Any]


def _str(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _obj(required: tuple[str, ...] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else list(required),
        "additionalProperties": False,
    }


def specs(roster: Roster, agent: str, registry: Registry | None = None) -> tuple[ToolSpec, ...]:
    """The tools `agent` may call, with their argument schemas, as the model is told them."""
    tools = BUILTINS if registry is None else registry
    offered = (tools[name].spec_for(roster, agent) for name in roster.agents[agent].tools)
    return tuple(spec for spec in offered if spec is not None)


def execute(ctx: ToolContext, call: ToolCall) -> Performed:
    """Check one call of `ctx.agent` and run it.

    Raises `ToolRefused` (the model's message) or `NeedsApproval` (a person decides).
    """
    if call.error is not None:
        raise ToolRefused(f"{call.name}: {call.error}")
    args = _checked(ctx, call.name, call.arguments)
    if ctx.outcome.waiting is not None:
        raise ToolRefused(f"the task waits for approval {ctx.outcome.waiting}: end your turn")
    why = _needs_person(ctx, call.name, args)
    if why is not None:
        if ctx.outcome.escalation is not None:
            raise ToolRefused("you escalated the task: end your turn")
        raise NeedsApproval(call.name, args, why)
    return perform(ctx, call.name, args)


def waits_for_person(ctx: ToolContext, call: ToolCall) -> bool:
    """True if this call would wait for approval rather than run (or be refused)."""
    if call.error is not None:
        return False
    try:
        args = _checked(ctx, call.name, call.arguments)
    except ToolRefused:
        return False
    return _needs_person(ctx, call.name, args) is not None


def perform(ctx: ToolContext, tool: str, args: dict[str, Any]) -> Performed:
    """Run a call, checked again here; also how `zoo approve` runs an approved action."""
    args = _checked(ctx, tool, args)
    text, fields = ctx.registry[tool].handler(ctx, args)
    return Performed(text, {"tool": tool, **fields})


def _checked(ctx: ToolContext, tool: str, arguments: Any) -> dict[str, Any]:
    """`arguments` if `tool` is the agent's and they are only what the tool declares."""
    entry = ctx.registry.get(tool)
    if entry is None:
        raise ToolRefused(f"unknown tool '{tool}'")
    if tool not in ctx.roster.agents[ctx.agent].tools:
        raise ToolRefused(f"tool '{tool}' is not available to {ctx.agent}")
    if not isinstance(arguments, dict):
        raise ToolRefused("arguments must be a JSON object")
    declared = entry.parameters["properties"]
    for key in arguments:
        if key not in declared:
            takes = ", ".join(declared) or "nothing"
            raise ToolRefused(f"unknown argument '{key}' for {tool} (it takes {takes})")
    if entry.precheck is not None:
        entry.precheck(ctx, arguments)
    return arguments


def _needs_person(ctx: ToolContext, tool: str, args: dict[str, Any]) -> str | None:
    """Why a person must approve this call, or None when the roster allows it outright."""
    if tool in ctx.roster.agents[ctx.agent].approval:
        return f"{tool} is in {ctx.agent}'s approval list"
    asks = ctx.registry[tool].needs_person
    return None if asks is None else asks(ctx, args)


def _arg(args: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = args.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ToolRefused(f"argument '{key}' must be a non-empty string")
    return value


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- the task's flow and memory --------------------------------------------------------


def _remember(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    note, shared = _note(ctx, args)
    entry = Entry(utc_now(), ctx.agent, ctx.task_id, note, ctx.step)
    try:
        path = ctx.memory.remember(entry, shared=shared, once=ctx.redo)
    except files.ConfinementError as e:
        raise ToolRefused(str(e)) from None
    where = "MEMORY.md" if shared else f"agents/{path.name}"
    ctx.outcome.notes.append(f"remembered in {where}: {_first_line(note)}")
    return f"noted in {where}", {"shared": shared or None, "chars": len(note)}


def _note(_ctx: ToolContext, args: dict[str, Any]) -> tuple[str, bool]:
    note = _arg(args, "note").strip()
    shared = args.get("shared", False)
    if not isinstance(shared, bool):
        raise ToolRefused("argument 'shared' must be true or false")
    return note, shared


def _handoff(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    target = _arg(args, "to")
    allowed = ctx.roster.agents[ctx.agent].handoff
    if target not in allowed:
        choose = f"choose one of {', '.join(allowed)}" if allowed else "you hand off to no one"
        raise ToolRefused(f"cannot hand off to '{target}': {choose}")
    ctx.outcome.handoff_to = target
    ctx.outcome.handoff_note = _arg(args, "note", required=False).strip()
    return f"the task goes to {target} when you finish", {"to": target}


def _escalate(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ctx.outcome.escalation = _arg(args, "reason").strip()
    return "a person will take it from here; finish your turn", {}


# --- files: confined to the workspaces the roster grants -------------------------------


def place(ctx: ToolContext, spec: str, *, write: bool) -> files.Place:
    """`spec` ('file.md' or 'ws:file.md') as a place the agent may read (or write)."""
    roster = ctx.roster
    where = confine.place(
        spec,
        own=roster.workspace_of(ctx.agent),
        allowed=roster.writable(ctx.agent) if write else roster.readable(ctx.agent),
        who=ctx.agent,
        verb="write" if write else "read",
    )
    if where.names and TASK_NAME.match(where.names[-1]):
        raise ToolRefused("task files are not used with file tools; yours is in the prompt")
    return where


def _read_place(ctx: ToolContext, args: dict[str, Any]) -> files.Place:
    return place(ctx, _arg(args, "path"), write=False)


def _write_place(ctx: ToolContext, args: dict[str, Any]) -> files.Place:
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolRefused("argument 'content' must be a string")
    if len(content.encode("utf-8", errors="surrogatepass")) > MAX_WRITE_BYTES:
        raise ToolRefused(f"content is larger than {MAX_WRITE_BYTES} bytes")
    return place(ctx, _arg(args, "path"), write=True)


def _list_place(ctx: ToolContext, args: dict[str, Any]) -> files.Place:
    return place(ctx, _arg(args, "path", required=False), write=False)


def _read_file(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    where = _read_place(ctx, args)
    data = files.read_file(ctx.home.root, where, MAX_READ_BYTES)
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    more = "\n[truncated]" if len(data) > MAX_READ_BYTES else ""
    return text + more, {"path": where.shown, "bytes": min(len(data), MAX_READ_BYTES)}


def _write_file(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    where = _write_place(ctx, args)
    try:
        data = args["content"].encode("utf-8")
    except UnicodeEncodeError:
        raise ToolRefused("content is not valid Unicode text") from None
    files.write_file(ctx.home.root, where, data)
    shown = f"workspaces/{where.workspace}/{'/'.join(where.names)}"
    if ctx.roster.git.autocommit:  # the agent's file: autocommit commits it with its work
        written.record(ctx.home, shown)
    ctx.outcome.notes.append(f"wrote {shown} ({len(args['content'])} chars)")
    return f"wrote {len(args['content'])} characters to {where.shown}", {
        "path": where.shown,
        "bytes": len(data),
    }


def _list_files(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    where = _list_place(ctx, args)
    suffix = {"folder": "/", "link": "@", "file": ""}
    names = [
        name + suffix[kind]
        for name, kind in files.list_folder(ctx.home.root, where)
        if not TASK_NAME.match(name)
    ]
    return ("\n".join(names) if names else "(empty)"), {"path": where.shown}


# --- commands --------------------------------------------------------------------------


def _run(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    argv = commands.argv_of(args.get("command"))
    workspace = ctx.roster.workspace_of(ctx.agent)
    cwd = files.workspace_folder(ctx.home.root, workspace)
    keys = [t.api_key_env for t in ctx.roster.models.values() if t.api_key_env]
    jail, warning = commands.jail_of(ctx.home, ctx.roster, ctx.agent)
    done = commands.run(
        argv, cwd, timeout=ctx.roster.defaults.timeout_s, cap=MAX_OUTPUT_BYTES,
        env=commands.child_env(ctx.env, keys), jail=jail,
    )  # fmt: skip
    how = f" ({warning})" if warning else ""
    ctx.outcome.notes.append(
        f"ran `{commands.shown(argv)}` in {workspace}/{how}: {done.text().splitlines()[0]}"
    )
    fields = {"command": argv, "exit": done.code, "seconds": round(done.seconds, 3),
              "timed_out": done.timed_out or None, "sandbox": warning}  # fmt: skip
    return done.text(), fields


def _check_run(ctx: ToolContext, args: dict[str, Any]) -> None:
    commands.argv_of(args.get("command"))
    commands.refuse_unconfinable(ctx.roster)  # refused now, not after a person approved it


def _needs_run_approval(ctx: ToolContext, args: dict[str, Any]) -> str | None:
    if commands.allowed(args["command"], ctx.roster.agents[ctx.agent].commands):
        return None
    return f"'{args['command'][0]}' is not in {ctx.agent}'s commands"


# --- what a person reads before approving a call ---------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _preview_write(args: dict[str, Any]) -> str:
    content = args["content"]
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return f"write {args['path']} ({_plural(len(content), 'char')}, {_plural(lines, 'line')})"


def _preview_remember(args: dict[str, Any]) -> str:
    where = "MEMORY.md" if args.get("shared") else "its own memory"
    return f"remember in {where}: {args['note'].strip().splitlines()[0][:80]}"


def _offer_handoff(roster: Roster, agent: str) -> dict[str, Any] | None:
    """Handoff names the agent's own targets; an agent that hands off to no one lacks it."""
    targets = list(roster.agents[agent].handoff)
    if not targets:
        return None
    return _obj(to={"type": "string", "enum": targets}, note=_str("what they need"))


# --- the built-in tools (DESIGN §2), each declared once ---------------------------------

BUILTINS: Registry = Registry([
    Tool("read_file", "Read a text file of a workspace you may read.",
         _obj(path=_str("'file.md' in your workspace or 'ws:file.md'")),
         _read_file, lambda args: f"read {args['path']}", precheck=_read_place),
    Tool("write_file", "Create or replace a text file in a workspace you may write.",
         _obj(path=_str("where"), content=_str("text")),
         _write_file, _preview_write, precheck=_write_place),
    Tool("list_files", "List the files of a workspace folder.",
         _obj(required=(), path=_str("folder; your workspace if omitted")),
         _list_files, lambda args: f"list {args.get('path') or 'its workspace'}",
         precheck=_list_place),
    Tool("run", "Run a command (no shell) in your workspace folder and get its exit status "
         "and output. Commands your roster entry does not allow wait for a person's approval.",
         _obj(command={"type": "array", "items": {"type": "string"},
                       "description": "argv, e.g. [\"pytest\", \"-q\"]"}),
         _run, lambda args: f"run `{shlex.join(args['command'])}`", precheck=_check_run,
         needs_person=_needs_run_approval,
         redo=False),  # a command may have half run: it is never run twice
    Tool("remember", "Keep a note for later sessions: your own memory, or the team's "
         "MEMORY.md with shared=true.",
         _obj(required=("note",), note=_str("one fact worth keeping"), shared={"type": "boolean"}),
         _remember, _preview_remember, precheck=_note),  # a redo skips a note already kept
    Tool("handoff", "Hand the task to the next agent when your part is done.",
         _obj(to={"type": "string"}, note=_str("what they need to know")),
         _handoff, lambda args: f"hand the task to {args['to']}", gateable=False,
         offer=_offer_handoff),
    Tool("escalate", "Stop and ask a person: the task waits in escalations.",
         _obj(reason=_str("what a person must decide or do")),
         _escalate, lambda args: f"escalate: {_first_line(args['reason'])}", gateable=False),
])  # fmt: skip
