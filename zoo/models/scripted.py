"""A strict scripted model for tests: it answers only what its script says.

Each step is a `Reply`, an exception to raise, or a function of the request returning
a `Reply`. A call beyond the script fails the test (`ScriptError`), and so do steps left
unconsumed when `assert_done` runs: a test cannot pass by accident.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from zoo.errors import ScriptError
from zoo.models.base import Model, Reply, Request, ToolCall

Step = Reply | BaseException | Callable[[Request], Reply]


class ScriptedModel(Model):
    name = "scripted"

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self._steps = list(steps)
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        """Every request received, in order, for the test to inspect."""

    def add(self, *steps: Step) -> ScriptedModel:
        with self._lock:
            self._steps.extend(steps)
        return self

    def complete(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self._steps:
                who = request.meta.get("agent") or request.meta.get("purpose") or "?"
                raise ScriptError(f"unexpected model call #{len(self.requests)} (for {who})")
            step = self._steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Reply):
            return step
        return step(request)

    def assert_done(self) -> None:
        with self._lock:
            if self._steps:
                raise ScriptError(f"{len(self._steps)} scripted step(s) were never used")


def call(name: str, call_id: str | None = None, **arguments: Any) -> ToolCall:
    """A tool call for a script: `call("handoff", to="owl", note="...")`."""
    return ToolCall(call_id or f"call-{name}", name, arguments)


def says(text: str = "", *calls: ToolCall) -> Reply:
    """A scripted reply: text, and tool calls if any."""
    return Reply(text=text, tool_calls=calls, stop_reason="tool_use" if calls else "end")
