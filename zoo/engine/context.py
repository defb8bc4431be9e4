"""A prompt fitted to its model's context window, or not sent.

Small local servers hold 4,096 or 8,192 tokens. Before each model call its size is guessed
the way the budget guesses it, `CHARS_PER_TOKEN` characters a token, but over all that
takes room in the window: the system prompt, every message with its tool calls'
arguments, and the tools' schemas. The prompt may fill the window less the room kept for
the answer (the request's `max_tokens`, at most a quarter of the window) and a sixteenth
kept back for what the guess misses (the chat template's markup, text denser than four
characters a token); the `max_tokens` sent is lowered to what the window leaves, so that
prompt and answer fit together.

A turn's prompt that does not fit loses its optional parts, in this order, until it fits:
the MEMORY.md entries, least relevant first; the agent's own notes, oldest first; the
agents' sections of the task, oldest first. A note stands where they were left out, and a
`prompt.fitted` event says what was. The playbook, the brief and the turn's own messages
are never left out: a call that cannot fit with them alone is not sent (`ContextExceeded`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from zoo.errors import BudgetExceeded
from zoo.models.base import Message, Request, ToolSpec
from zoo.models.window import Window

CHARS_PER_TOKEN = 4
"""The budget's guess (models/base.py `estimate_tokens`)."""
ANSWER_SHARE = 4
"""The answer's room is `max_tokens`, but at most 1/ANSWER_SHARE of the window."""
MARGIN_SHARE = 16
"""1/MARGIN_SHARE of the window is kept back for what the guess misses."""
MEMORY_HEADING = "# Your memory"
TEAM_HEADING = "# Team memory (MEMORY.md, the entries relevant to this task)"
SECTION = re.compile(r"^## [\w-]+ · \d{4}-\d\d-\d\dT[\d:]+Z[ \t]*$", re.MULTILINE)
"""An agent's section of a task (`## beaver · 2026-11-22T14:05:10Z`); a heading of the
person's brief is part of the brief."""


class ContextExceeded(BudgetExceeded):
    """A model call was not made: its prompt cannot fit the tier's context window, even with
    everything optional left out. Only its task fails: it is escalated with the figures."""

    def __init__(self, message: str, *, tokens: int, room: int) -> None:
        super().__init__(message)
        self.tokens = tokens
        """The prompt's tokens (guessed) with everything optional left out."""
        self.room = room
        """The tokens the window leaves the prompt."""


@dataclass(frozen=True)
class Left:
    """How many of each optional part of a prompt are left out."""

    team: int = 0
    """MEMORY.md entries, the least relevant."""
    own: int = 0
    """The agent's own notes, the oldest."""
    sections: int = 0
    """The agents' sections of the task, the oldest."""

    def __bool__(self) -> bool:
        return bool(self.team or self.own or self.sections)

    def fields(self) -> dict[str, int]:
        named = {"team_memory": self.team, "own_memory": self.own, "sections": self.sections}
        return {k: v for k, v in named.items() if v}


@dataclass(frozen=True)
class Prompt:
    """A turn's system prompt and task message, in parts, so that some can be left out."""

    head: str
    """The playbook and how to work here: never left out."""
    own: tuple[str, ...] = ()
    """The agent's own notes, oldest first, a line each."""
    team: tuple[str, ...] = ()
    """The MEMORY.md entries, the most relevant first, a line each."""
    brief: str = ""
    """The task message up to the agents' sections: never left out."""
    sections: tuple[str, ...] = ()
    """The agents' sections of the task, oldest first, each from its heading on."""

    @classmethod
    def of(cls, head: str, own: Sequence[str], team: Sequence[str], task: str) -> Prompt:
        """`task` (the whole task message) cut into its brief and its agents' sections."""
        bounds = [m.start() for m in SECTION.finditer(task)]
        brief = task[: bounds[0]] if bounds else task
        sections = tuple(task[a:b] for a, b in pairwise([*bounds, len(task)]))
        return cls(head, tuple(own), tuple(team), brief, sections)

    def system(self, left: Left = Left(), tokens: int = 0) -> str:
        lines = [self.head]
        own = self.own[left.own :]
        team = self.team[: len(self.team) - left.team]
        if own or left.own:
            lines += ["", MEMORY_HEADING, *own, *_note(left.own, "older note", "older notes",
                                                       tokens)]  # fmt: skip
        if team or left.team:
            lines += ["", TEAM_HEADING, *team, *_note(left.team, "less relevant entry",
                                                      "less relevant entries", tokens)]  # fmt: skip
        return "\n".join(lines)

    def task(self, left: Left = Left(), tokens: int = 0) -> str:
        kept = "".join(self.sections[left.sections :])
        if not left.sections:
            return self.brief + kept
        [note] = _note(left.sections, "older section", "older sections", tokens)
        return f"{self.brief.rstrip()}\n\n{note}\n\n{kept}".rstrip() + "\n"

    def more(self, left: Left) -> Left | None:
        """What to leave out next, or None when only what is never left out remains."""
        if left.team < len(self.team):
            return replace(left, team=left.team + 1)
        if left.own < len(self.own):
            return replace(left, own=left.own + 1)
        if left.sections < len(self.sections):
            return replace(left, sections=left.sections + 1)
        return None


def _note(count: int, one: str, many: str, tokens: int) -> list[str]:
    """The line that stands where `count` parts were left out (none if none were)."""
    if not count:
        return []
    return [f"[{count} {one if count == 1 else many} left out to fit the model's "
            f"{tokens:,}-token context]"]  # fmt: skip


@dataclass(frozen=True)
class Fitted:
    request: Request
    """What to send: within the window, its `max_tokens` lowered if need be."""
    left: Left
    before: int
    """The prompt's tokens (guessed) with nothing left out."""
    after: int
    """...and as sent."""
    room: int
    """The tokens the window leaves the prompt."""


def fit(request: Request, window: Window, tier: str, prompt: Prompt | None = None) -> Fitted:
    """`request` fitted to `window`: with `prompt`, the request's system prompt and first
    message are rebuilt from it, leaving out what must be; the other messages are kept.

    `ContextExceeded`, with the figures, when it cannot fit."""
    tokens = window.tokens
    rest = request.messages[1:] if prompt is not None else request.messages
    fixed = _chars(request.tools, rest)
    left = Left()

    def size(left: Left) -> int:
        if prompt is None:
            return (fixed + len(request.system)) // CHARS_PER_TOKEN
        system, task = prompt.system(left, tokens or 0), prompt.task(left, tokens or 0)
        return (fixed + len(system) + len(task)) // CHARS_PER_TOKEN

    before = after = size(left)
    if tokens is None:
        return Fitted(request, left, before, after, before)
    answer, margin = min(request.max_tokens, tokens // ANSWER_SHARE), tokens // MARGIN_SHARE
    room = tokens - answer - margin
    while after > room:
        more = prompt.more(left) if prompt is not None else None
        if more is None:
            message = _too_large(after, room, tier, window, answer, margin, prompt)
            raise ContextExceeded(message, tokens=after, room=room)
        left = more
        after = size(left)
    sent = replace(request, max_tokens=min(request.max_tokens, tokens - margin - after))
    if prompt is not None:
        first = Message("user", prompt.task(left, tokens))
        sent = replace(sent, system=prompt.system(left, tokens), messages=(first, *rest))
    return Fitted(sent, left, before, after, room)


def _chars(tools: Sequence[ToolSpec], messages: Sequence[Message]) -> int:
    chars = sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in tools)
    for m in messages:
        chars += len(m.content)
        chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in m.tool_calls)
    return chars


def _too_large(
    need: int, room: int, tier: str, window: Window, answer: int, margin: int,
    prompt: Prompt | None,
) -> str:  # fmt: skip
    least = " with memory and older sections left out" if prompt is not None else ""
    return (f"the prompt needs about {need:,} tokens{least}, over the {room:,} that tier "
            f"{tier}'s context of {window.tokens:,} tokens ({window.source}) leaves it after "
            f"{answer:,} for the answer and {margin:,} of margin")  # fmt: skip


class Fitting:
    """The calls of one turn, each fitted to the window; an event each time what is left
    out changes (the turn's messages grow with tool results), and one when a call cannot
    fit."""

    def __init__(
        self,
        prompt: Prompt,
        window: Window,
        fields: dict[str, Any],
        note: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.prompt = prompt
        self.window = window
        self.fields = fields
        """Who asks: task, agent and tier (the events' first fields)."""
        self.note = note
        self.left = Left()

    def request(self, request: Request) -> Request:
        """What to send for `request` (its system prompt and first message are the prompt's)."""
        figures = {**self.fields, "context_tokens": self.window.tokens,
                   "source": self.window.source}  # fmt: skip
        try:
            fitted = fit(request, self.window, self.fields["tier"], self.prompt)
        except ContextExceeded as e:
            self.note("prompt.too_large", {**figures, "room": e.room, "tokens": e.tokens,
                                           "error": str(e)})  # fmt: skip
            raise
        if fitted.left != self.left:
            self.left = fitted.left
            self.note("prompt.fitted", {**figures, "room": fitted.room,
                                        "tokens_before": fitted.before,
                                        "tokens_after": fitted.after,
                                        "left_out": fitted.left.fields(),
                                        "max_tokens": fitted.request.max_tokens})  # fmt: skip
        return fitted.request
