"""The built-in offline model: deterministic, no network, no key.

It reads the request the way a model would (system prompt, task, tools) and answers
with a clearly marked offline draft that follows the agent's playbook, and it uses
the tools it is offered (remember, handoff, route), so every path of the loop runs on
a machine with no API key. The same request always gets the same reply.
"""

from __future__ import annotations

import hashlib
import re

from zoo.memory import words
from zoo.models.base import Message, Model, Reply, Request, ToolCall, Usage

MARK = "*Offline draft: written by Zoo's built-in offline model, not by a language model.*"
_ROSTER_LINE = re.compile(r"^- ([a-z][\w-]*): (.+)$", re.MULTILINE)


class OfflineModel(Model):
    name = "offline"

    def complete(self, request: Request) -> Reply:
        if request.require_tool == "route":
            return self._route(request)
        if any(m.role == "assistant" for m in request.messages):
            return _reply(request, "", ())
        return self._draft(request)

    def _route(self, request: Request) -> Reply:
        brief = _brief(request.messages)
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
        return _reply(request, "", (ToolCall(_call_id(request, "route"), "route", args),))

    def _draft(self, request: Request) -> Reply:
        brief = _brief(request.messages)
        title = next(
            (line[2:].strip() for line in brief.splitlines() if line.startswith("# ")), "the task"
        )
        role = _first_heading(request.system)
        steps = _playbook_steps(request.system)
        lines = [MARK, "", f'{role} on "{title}": what I would do, following my playbook:', ""]
        lines += [f"{i}. {step}" for i, step in enumerate(steps, start=1)] or ["1. Read the brief."]
        tools = {spec.name: spec for spec in request.tools}
        calls = []
        if "remember" in tools:
            note = f"{title}: {role} step drafted offline."
            calls.append(ToolCall(_call_id(request, "remember"), "remember",
                                  {"note": note, "shared": True}))  # fmt: skip
        if "handoff" in tools:
            targets = tools["handoff"].parameters["properties"]["to"].get("enum") or []
            if targets:
                args = {"to": targets[0], "note": f'Offline draft of "{title}" is ready for you.'}
                calls.append(ToolCall(_call_id(request, "handoff"), "handoff", args))
        return _reply(request, "\n".join(lines), tuple(calls))


def _reply(request: Request, text: str, calls: tuple[ToolCall, ...]) -> Reply:
    prompt = len(request.system) + sum(len(m.content) for m in request.messages)
    return Reply(
        text=text,
        tool_calls=calls,
        stop_reason="tool_use" if calls else "end",
        usage=Usage(input_tokens=prompt // 4, output_tokens=len(text) // 4 + 10 * len(calls)),
        model="offline",
    )


def _brief(messages: tuple[Message, ...]) -> str:
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


def _call_id(request: Request, name: str) -> str:
    seed = f"{name}:{request.system[:200]}:{_brief(request.messages)[:500]}"
    return f"offline-{name}-{hashlib.sha256(seed.encode()).hexdigest()[:12]}"
