"""What an agent may call: the tools of DESIGN §2, each checked before it acts.

An agent gets only the tools its roster entry lists. A refused or failed call is a
`ToolRefused`: its message goes back to the model as a tool error and into the journal;
it never crashes the runner. Nothing the model sends is trusted: arguments are checked
here, and paths are confined to the workspaces the roster grants.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.fs import atomic_write
from zoo.home import Home
from zoo.memory import Entry, Memory
from zoo.models.base import ToolCall, ToolSpec
from zoo.roster import Roster
from zoo.tasks import TASK_NAME, utc_now

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_NAME = 255


class ToolRefused(Exception):
    """A tool call that did not run; the message is what the model is told."""


@dataclass
class Outcome:
    """What an agent's tool calls decided for its task, and what they did."""

    handoff_to: str | None = None
    handoff_note: str = ""
    escalation: str | None = None
    notes: list[str] = field(default_factory=list)
    """One line per effect, for the task's section."""


@dataclass
class ToolContext:
    home: Home
    roster: Roster
    agent: str
    task_id: str
    memory: Memory
    outcome: Outcome = field(default_factory=Outcome)


def specs(roster: Roster, agent: str) -> tuple[ToolSpec, ...]:
    """The tools `agent` may call, with their argument schemas."""
    listed = roster.agents[agent].tools
    targets = list(roster.agents[agent].handoff)
    all_specs = {
        "read_file": ToolSpec("read_file", "Read a text file of a workspace you may read.",
                              _obj(path=_str("'file.md' in your workspace or 'ws:file.md'"))),
        "write_file": ToolSpec("write_file", "Create or replace a text file in a workspace "
                               "you may write.", _obj(path=_str("where"), content=_str("text"))),
        "list_files": ToolSpec("list_files", "List the files of a workspace folder.",
                               _obj(required=(), path=_str("folder; your workspace if omitted"))),
        "remember": ToolSpec("remember", "Keep a note for later sessions: your own memory, or "
                             "the team's MEMORY.md with shared=true.",
                             _obj(required=("note",), note=_str("one fact worth keeping"),
                                  shared={"type": "boolean"})),
        "handoff": ToolSpec("handoff", "Hand the task to the next agent when your part is done.",
                            _obj(to={"type": "string", "enum": targets},
                                 note=_str("what they need to know"))),
        "escalate": ToolSpec("escalate", "Stop and ask a person: the task waits in escalations.",
                             _obj(reason=_str("what a person must decide or do"))),
    }  # fmt: skip
    return tuple(all_specs[name] for name in listed if name != "handoff" or targets)


def _str(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _obj(required: tuple[str, ...] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else list(required),
        "additionalProperties": False,
    }


def execute(ctx: ToolContext, call: ToolCall) -> str:
    """Run one tool call for `ctx.agent`; raises `ToolRefused` with the model's message."""
    if call.name not in ctx.roster.agents[ctx.agent].tools:
        raise ToolRefused(f"tool '{call.name}' is not available to {ctx.agent}")
    handler = _HANDLERS.get(call.name)
    if handler is None:
        raise ToolRefused(f"unknown tool '{call.name}'")
    if not isinstance(call.arguments, dict):
        raise ToolRefused("arguments must be a JSON object")
    return handler(ctx, call.arguments)


def _arg(args: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = args.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ToolRefused(f"argument '{key}' must be a non-empty string")
    return value


def _remember(ctx: ToolContext, args: dict[str, Any]) -> str:
    note = _arg(args, "note").strip()
    shared = args.get("shared", False)
    if not isinstance(shared, bool):
        raise ToolRefused("argument 'shared' must be true or false")
    entry = Entry(utc_now(), ctx.agent, ctx.task_id, note)
    path = ctx.memory.remember(entry, shared=shared)
    where = "MEMORY.md" if shared else f"agents/{path.name}"
    ctx.outcome.notes.append(f"remembered in {where}: {_first_line(note)}")
    return f"noted in {where}"


def _handoff(ctx: ToolContext, args: dict[str, Any]) -> str:
    target = _arg(args, "to")
    allowed = ctx.roster.agents[ctx.agent].handoff
    if target not in allowed:
        raise ToolRefused(f"cannot hand off to '{target}': choose one of {', '.join(allowed)}")
    ctx.outcome.handoff_to = target
    ctx.outcome.handoff_note = _arg(args, "note", required=False).strip()
    return f"the task goes to {target} when you finish"


def _escalate(ctx: ToolContext, args: dict[str, Any]) -> str:
    ctx.outcome.escalation = _arg(args, "reason").strip()
    return "a person will take it from here; finish your turn"


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- files: confined to the workspaces the roster grants -----------------------------


def resolve(ctx: ToolContext, spec: str, *, write: bool) -> tuple[Path, Path]:
    """(workspace root, real path) for `spec` ('file.md' or 'ws:file.md'), if allowed."""
    if "\x00" in spec:
        raise ToolRefused("path contains a NUL byte")
    ws, _, rel = spec.partition(":") if re.match(r"^[a-z][a-z0-9_-]*:", spec) else ("", "", spec)
    ws = ws or ctx.roster.workspace_of(ctx.agent)
    allowed = ctx.roster.writable(ctx.agent) if write else ctx.roster.readable(ctx.agent)
    if ws not in allowed:
        verb = "write" if write else "read"
        raise ToolRefused(f"{ctx.agent} may not {verb} workspace '{ws}'")
    rel = rel.strip() or "."
    parts = Path(rel).parts
    if rel.startswith(("/", "~")) or ".." in parts or any(len(p) > MAX_NAME for p in parts):
        raise ToolRefused(f"path '{spec}' must stay inside workspace '{ws}'")
    root = ctx.home.workspace(ws).resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ToolRefused(f"path '{spec}' leads outside workspace '{ws}'")
    return root, target


def _read_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    _, path = resolve(ctx, _arg(args, "path"), write=False)
    if TASK_NAME.match(path.name):
        raise ToolRefused("task files are not read with read_file; yours is in the prompt")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_READ_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ToolRefused(f"no file '{args['path']}'") from None
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    return text + ("\n[truncated]" if len(data) > MAX_READ_BYTES else "")


def _write_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    spec = _arg(args, "path")
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolRefused("argument 'content' must be a string")
    if len(content.encode()) > MAX_WRITE_BYTES:
        raise ToolRefused(f"content is larger than {MAX_WRITE_BYTES} bytes")
    root, path = resolve(ctx, spec, write=True)
    if TASK_NAME.match(path.name) or path.name.startswith("."):
        raise ToolRefused(f"'{path.name}' is a reserved name; choose another")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.resolve().is_relative_to(root):
        raise ToolRefused(f"path '{spec}' leads outside its workspace")
    atomic_write(path, content)
    ctx.outcome.notes.append(f"wrote {ctx.home.relative(path)} ({len(content)} chars)")
    return f"wrote {len(content)} characters to {spec}"


def _list_files(ctx: ToolContext, args: dict[str, Any]) -> str:
    _, path = resolve(ctx, _arg(args, "path", required=False) or ".", write=False)
    if not path.is_dir():
        raise ToolRefused(f"no folder '{args.get('path', '.')}'")
    names = sorted(
        name + ("/" if (path / name).is_dir() else "")
        for name in os.listdir(path)
        if not name.startswith(".") and not TASK_NAME.match(name)
    )
    return "\n".join(names) if names else "(empty)"


_HANDLERS: dict[str, Callable[[ToolContext, dict[str, Any]], str]] = {
    "read_file": _read_file,
    "write_file": _write_file,
    "list_files": _list_files,
    "remember": _remember,
    "handoff": _handoff,
    "escalate": _escalate,
}
