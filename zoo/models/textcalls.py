"""Tool calls a model wrote as text: what small local models do instead of native calls.

Servers behind Ollama, llama.cpp, vLLM or LM Studio often return no `tool_calls` and
write the call into the reply's text instead, in one of a few shapes:

- `<tool_call>{"name": "read_file", "arguments": {...}}</tool_call>` (Qwen, Hermes),
- a JSON object (or a list of them) in a code fence, with prose around it,
- the whole reply a bare JSON object or list.

`parse` finds such calls. A call is a JSON object that names a tool and gives its
arguments as an object (`name`/`arguments`, also the `parameters`, `args` and `input`
spellings, and OpenAI's nested `{"function": {...}}`; `{"name": ...}` alone only for a tool
that was offered); only those count, so prose that merely mentions a tool is never a
call. A call to a tool the agent was not offered is still returned: the tool layer
refuses it and the journal records the attempt. The model's words around the calls are
kept as its text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from zoo.models.base import Request, ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_FENCED = re.compile(r"```[ \t]*(?:json|tool_call|tool|javascript)?[ \t]*\n(.*?)\n?```", re.DOTALL)
_NAME_KEYS = ("name", "tool", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input")


@dataclass(frozen=True)
class Found:
    """The calls found in a reply's text, and the text without them."""

    calls: tuple[ToolCall, ...]
    text: str


def parse(text: str, offered: Collection[str] = ()) -> Found:
    """The tool calls written in `text` (none: `text` as it is); `offered`: the tools the
    model was given, which alone may be called without an `arguments` key. Each call's id
    is made of the text, so the same reply always gives the same ids."""
    calls: list[ToolCall] = []
    rest = text
    for pattern in (_TAGGED, _FENCED):
        kept: list[str] = []
        last = 0
        for match in pattern.finditer(rest):
            found = _calls_in(match.group(1), offered)
            if found is None:
                continue
            calls += found
            kept.append(rest[last : match.start()])
            last = match.end()
        rest = "".join([*kept, rest[last:]])
    if not calls:
        bare = _calls_in(rest.strip(), offered)
        if bare:
            calls, rest = bare, ""
    prefix = "text-" + hashlib.sha256(text.encode(errors="replace")).hexdigest()[:8]
    return Found(
        tuple(
            ToolCall(f"{prefix}-{i}", c.name, c.arguments, c.error, written=True)
            for i, c in enumerate(calls)
        ),
        rest.strip() if calls else text,
    )


def _calls_in(snippet: str, offered: Collection[str]) -> list[ToolCall] | None:
    """The calls a JSON snippet holds, or None if it is not one call or a list of calls."""
    try:
        value = json.loads(snippet)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call(item, offered) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _call(item: Any, offered: Collection[str]) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # {"type": "function", "function": {...}}
        item = item["function"]
    name = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
    if name is None or not name.strip():
        return None
    arg_key = next((k for k in _ARG_KEYS if k in item), None)
    if arg_key is None:
        bare = not set(item) - {"type", *_NAME_KEYS}
        return ToolCall("", name, {}) if bare and name in offered else None
    arguments = item[arg_key]
    if isinstance(arguments, str):  # OpenAI's own shape: the arguments as JSON text
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return ToolCall("", name, {}, error="arguments are not valid JSON")
    if not isinstance(arguments, dict):
        return ToolCall("", name, {}, error="arguments must be a JSON object")
    return ToolCall("", name, arguments)


def instructions(request: Request) -> str:
    """How to call the request's tools in text, for a server with no tool support: appended
    to the system prompt (`tool_format: text`)."""
    lines = [
        "",
        "",
        "# Tools",
        "To call a tool, write the call on its own, in this form, one block per call:",
        '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>',
        "Then stop and wait: the result comes back in the next message.",
    ]
    if request.require_tool:
        lines.append(f"Answer with a call of {request.require_tool}, and nothing else.")
    lines.append("The tools, with the JSON schema of their arguments:")
    for tool in request.tools:
        schema = json.dumps(tool.parameters, separators=(",", ":"))
        lines.append(f"- {tool.name}: {tool.description} Arguments: {schema}")
    return "\n".join(lines)
