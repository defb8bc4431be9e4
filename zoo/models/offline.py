"""The built-in offline model: deterministic, no network, no key.

It reads the request the way a model would (system prompt, task, tools) and works the
task with the tools its agent is offered, over the model calls of one turn:

1. look: with `run`, it runs the first of its allowed commands (the system prompt lists
   them) that only looks (`HARMLESS`: `ls`, `git status`, ...), and nothing else;
2. work: it writes a clearly marked offline draft that follows the agent's playbook,
   keeps a note in its own memory (`remember`, never shared) and writes the draft with
   `write_file` to `drafts/<slug>.md` in its workspace, last, since it may wait for a
   person's approval (which ends the turn);
3. pass on: it hands off to its first handoff target, if it has one. When the brief asks
   for a person (`ASKS_FOR_PERSON`: it says "escalate" or "needs a person") and no agent
   has escalated the task before, it escalates instead of writing and passing on;
4. it ends with a short text that says what came of its calls.

A task given back after a person decided on its approval goes on after the write. Each
reply depends only on the request: the same request always gets the same reply (a
resumed step replays the replies of its step log and asks for the rest again). The
router's `route` call is answered from the roster's descriptions.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from typing import Any

from zoo.models.base import Message, Model, Reply, Request, ToolCall, ToolSpec, Usage
from zoo.state.memory import words
from zoo.state.tasks import slugify

MARK = "*Offline draft: written by Zoo's built-in offline model, not by a language model.*"
HARMLESS = ("ls", "pwd", "git status", "git diff")
"""Commands that only look, locally, in the order tried: the offline model runs nothing
else (not `pip list`, which may ask the network whether pip is up to date)."""
ASKS_FOR_PERSON = re.compile(r"\b(escalate|needs? a person)\b", re.IGNORECASE)
"""What in a brief makes the offline model escalate (the brief, not agents' sections)."""

_ROSTER_LINE = re.compile(r"^- ([a-z][\w-]*): (.+)$", re.MULTILINE)
_SECTION = re.compile(r"^## (.+?) · \d{4}-\d\d-\d\dT[\d:.]+Z[ \t]*$", re.MULTILINE)
_COMMANDS = re.compile(r"^Commands you may run without approval: (.+)$", re.MULTILINE)
_AGENT = re.compile(r"^You are ([\w-]+), the ", re.MULTILINE)
_WORKSPACE = re.compile(r"^Your workspace is '([^']+)'", re.MULTILINE)
_APPROVAL = re.compile(r"^approval (A-\d+)$")

Call = tuple[str, dict[str, Any]]
Round = tuple[str, tuple[Call, ...]]
"""One reply of the plan: its text and its tool calls."""


class OfflineModel(Model):
    name = "offline"

    def complete(self, request: Request) -> Reply:
        if request.require_tool == "route":
            return self._route(request)
        return _answer(request)

    def _route(self, request: Request) -> Reply:
        brief = _user(request.messages)
        wanted = words(brief)
        best, best_score = "", 0
        for name, line in _ROSTER_LINE.findall(request.system):
            score = len(wanted & words(line))
            if score > best_score:
                best, best_score = name, score
        if best:
            confidence = min(0.95, 0.4 + 0.2 * best_score)
            shared = sorted(wanted & words(dict(_ROSTER_LINE.findall(request.system))[best]))
            reason = f"offline match on {', '.join(repr(w) for w in shared[:4])}"
        else:
            confidence, reason = 0.0, "offline model found no agent whose role fits"
        args = {"agent": best or "none", "reason": reason, "confidence": round(confidence, 2)}
        return _reply(request, "", (ToolCall(_call_id(request, "route", 0), "route", args),))


@dataclass(frozen=True)
class _Seen:
    """What the request says about the agent and its task."""

    agent: str
    role: str
    workspace: str
    title: str
    brief: str
    """The task as it came in, without the sections agents and people appended."""
    sections: tuple[tuple[str, str], ...]
    """(heading, text) of each appended section, in order."""
    tools: dict[str, ToolSpec]
    commands: tuple[str, ...]
    steps: tuple[str, ...]

    @property
    def draft_path(self) -> str:
        return f"drafts/{slugify(self.title)}.md"

    def decided(self) -> tuple[str, str] | None:
        """(approval id, what the person decided) when the task came back after one."""
        if self.sections:
            match = _APPROVAL.match(self.sections[-1][0])
            if match:
                return match.group(1), self.sections[-1][1]
        return None


def _seen(request: Request) -> _Seen:
    user = _user(request.messages)
    found = list(_SECTION.finditer(user))
    sections = tuple(
        (m.group(1), user[m.end() : found[i + 1].start() if i + 1 < len(found) else len(user)])
        for i, m in enumerate(found)
    )
    commands = _COMMANDS.search(request.system)
    agent = _AGENT.search(request.system)
    workspace = _WORKSPACE.search(request.system)
    return _Seen(
        agent=agent.group(1) if agent else "",
        role=_first_heading(request.system),
        workspace=workspace.group(1) if workspace else "",
        title=_title(user),
        brief=_strip_task_line(user[: found[0].start()] if found else user),
        sections=sections,
        tools={spec.name: spec for spec in request.tools},
        commands=tuple(re.findall(r"`([^`]+)`", commands.group(1))) if commands else (),
        steps=tuple(_playbook_steps(request.system)),
    )


def _answer(request: Request) -> Reply:
    """The reply at this point of the turn: the next planned round, else the last word."""
    seen = _seen(request)
    made = sum(1 for m in request.messages if m.role == "assistant")
    rounds: list[Round] = []
    carried: list[str] = []
    for text, calls in _plan(seen, request.messages):
        if calls:
            rounds.append(("\n\n".join([*carried, text]).strip(), calls))
            carried = []
        elif text:
            carried.append(text)
    if made < len(rounds):
        text, calls = rounds[made]
        made_calls = tuple(ToolCall(_call_id(request, name, made * 10 + i), name, args)
                           for i, (name, args) in enumerate(calls))  # fmt: skip
        return _reply(request, text, made_calls)
    closing = _closing(seen, request.messages) if rounds or seen.decided() else ""
    return _reply(request, "\n\n".join(t for t in [*carried, closing] if t), ())


def _plan(seen: _Seen, messages: tuple[Message, ...]) -> list[Round]:
    if seen.decided() is not None:  # it looked and worked before a person decided
        return [_pass_on(seen, messages)]
    escalation = _escalation(seen)
    if escalation is not None:  # a person must decide: say what it would do, and stop
        draft, calls = _work(seen, write=False)
        return [_look(seen), (draft, (*calls, escalation))]
    return [_look(seen), _work(seen, write=True), _pass_on(seen, messages)]


def _look(seen: _Seen) -> Round:
    if "run" not in seen.tools:
        return "", ()
    for command in seen.commands:
        try:
            allowed = shlex.split(command)
        except ValueError:
            continue
        for harmless in HARMLESS:
            argv = harmless.split()
            if allowed and argv[: len(allowed)] == allowed:
                return "", (("run", {"command": argv}),)
    return "", ()


def _work(seen: _Seen, *, write: bool) -> Round:
    lines = [MARK, "", f'{seen.role} on "{seen.title}": what I would do, following my playbook:']
    lines += [""] + [f"{i}. {step}" for i, step in enumerate(seen.steps or ["Read the brief."], 1)]
    draft = "\n".join(lines)
    calls: list[Call] = []
    write = write and "write_file" in seen.tools
    if "remember" in seen.tools:
        where = f", in {seen.workspace}:{seen.draft_path}" if write else ""
        note = f'"{seen.title}": drafted offline{where}.'
        calls.append(("remember", {"note": note, "shared": False}))
    if write:  # last: a write may wait for a person's approval
        content = f"# {seen.title}\n\n{draft}\n"
        calls.append(("write_file", {"path": seen.draft_path, "content": content}))
    return draft, tuple(calls)


def _escalation(seen: _Seen) -> Call | None:
    """An `escalate` call if the brief asks for a person and no agent has asked one yet."""
    if "escalate" not in seen.tools or _escalated_before(seen):
        return None
    line = next((ln for ln in seen.brief.splitlines() if ASKS_FOR_PERSON.search(ln)), "")
    if not line.strip():
        return None
    line = line.strip().removeprefix("# ")
    quoted = line if len(line) <= 160 else line[:157] + "..."
    return "escalate", {"reason": f'the brief asks for a person: "{quoted}"'}


def _pass_on(seen: _Seen, messages: tuple[Message, ...]) -> Round:
    handoff = seen.tools.get("handoff")
    targets = handoff.parameters["properties"]["to"].get("enum") if handoff else None
    if not targets:
        return "", ()
    note = f'Offline draft of "{seen.title}" is ready for you'
    if _wrote(seen, messages):
        note += f" in `{seen.workspace}:{seen.draft_path}`"
    return "", (("handoff", {"to": targets[0], "note": note + "."}),)


def _escalated_before(seen: _Seen) -> bool:
    """True if an agent has asked a person about this task already (it was retried since)."""
    return any("\n- escalated: " in text for _, text in seen.sections)


def _wrote(seen: _Seen, messages: tuple[Message, ...]) -> bool:
    """True if the draft is written: by this turn's call, or by an approved one."""
    decided = seen.decided()
    if decided is not None:
        return decided[1].lstrip().startswith("Approved") and "\nerror: " not in decided[1]
    return any(name == "write_file" and not error for name, error in _results(messages))


def _results(messages: tuple[Message, ...]) -> list[tuple[str, str]]:
    """(tool, error or '') of each tool result in the conversation, in order."""
    names = {c.id: c.name for m in messages if m.role == "assistant" for c in m.tool_calls}
    return [(names.get(m.tool_call_id or "", "?"), m.content if m.is_error else "")
            for m in messages if m.role == "tool"]  # fmt: skip


def _closing(seen: _Seen, messages: tuple[Message, ...]) -> str:
    """The last word of a turn that made calls: where the draft is, what failed."""
    decided = seen.decided()
    where = f"`{seen.workspace}:{seen.draft_path}`"
    if decided is not None and not _wrote(seen, messages):
        parts = [f"{decided[0]} was not approved, so my draft was not written."]
    elif decided is not None:
        parts = [f"{decided[0]} was approved: my draft is in {where}."]
    elif any(name == "escalate" and not error for name, error in _results(messages)):
        parts = [
            "I stopped here: the brief asks for a person, so a person decides what comes next."
        ]
    else:
        parts = [f"Done: my draft is in {where}." if _wrote(seen, messages) else "Done."]
    failed = [(name, error) for name, error in _results(messages) if error]
    if failed:
        name, error = failed[0]
        first = error.strip().splitlines()[0][:160]
        parts.append(f"{len(failed)} of my tool calls did not work ({name}: {first}).")
    return " ".join(parts)


def _reply(request: Request, text: str, calls: tuple[ToolCall, ...]) -> Reply:
    prompt = len(request.system) + sum(len(m.content) for m in request.messages)
    return Reply(
        text=text,
        tool_calls=calls,
        stop_reason="tool_use" if calls else "end",
        usage=Usage(input_tokens=prompt // 4, output_tokens=len(text) // 4 + 10 * len(calls)),
        model="offline",
    )


def _title(user: str) -> str:
    """The task's `# heading`, else the title on the `Task T-0001: title` line."""
    heading = next((ln[2:].strip() for ln in user.splitlines() if ln.startswith("# ")), "")
    task_line = re.match(r"^Task T-\d+: (.+)$", user.partition("\n")[0])
    return heading or (task_line.group(1).strip() if task_line else "") or "the task"


def _strip_task_line(text: str) -> str:
    """The brief without the `Task T-0001: title` line the turn puts first."""
    first, _, rest = text.partition("\n")
    return rest if re.match(r"^Task T-\d+: ", first) else text


def _user(messages: tuple[Message, ...]) -> str:
    return next((m.content for m in messages if m.role == "user"), "")


def _first_heading(system: str) -> str:
    match = re.search(r"^# (.+)$", system, re.MULTILINE)
    return match.group(1).strip() if match else "Agent"


def _playbook_steps(system: str, limit: int = 6) -> list[str]:
    """The numbered list under the playbook's `## How you work` heading."""
    match = re.search(r"^## How you work\s*$(.*?)(?=^#{1,2} |\Z)", system, re.MULTILINE | re.DOTALL)
    if not match:
        return []
    return re.findall(r"^\s*\d+\.\s+(.+)$", match.group(1), re.MULTILINE)[:limit]


def _call_id(request: Request, name: str, n: int) -> str:
    seed = f"{name}:{n}:{request.system[:200]}:{_user(request.messages)[:500]}"
    return f"offline-{name}-{hashlib.sha256(seed.encode()).hexdigest()[:12]}"
