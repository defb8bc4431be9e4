"""The tool registry: every tool an agent may be given, each declared once.

A `Tool` is all Zoo knows of one tool: the name an agent's `tools:` grants, what the model
reads of it (a description and the JSON schema of its arguments), the check made before a
call may wait for a person, what a call does, the line a person reads before approving one,
whether `approval:` may gate it, and whether a call under way when the runner died may be
made again. The model's tool list (`tools.specs`), the checking and running of calls
(`tools.execute`, `tools.perform`), the approval preview, the redo after a crash and
`zoo check`'s verdict all read one `Registry`. The built-in tools are declared in tools.py
(`BUILTINS`); tools found at run time (an MCP server's) join them with `with_tools`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.models.base import ToolSpec
    from zoo.policy.tools import ToolContext
    from zoo.roster import Roster

__all__ = ["Registry", "Tool", "UnknownTool"]

Arguments = dict[str, Any]
Handler = Callable[["ToolContext", Arguments], tuple[str, dict[str, Any]]]
"""Runs a checked call: (what the model is told, the fields its journal event records)."""
Precheck = Callable[["ToolContext", Arguments], object]
Preview = Callable[[Arguments], str]
Asks = Callable[["ToolContext", Arguments], str | None]
Offer = Callable[["Roster", str], dict[str, Any] | None]


class UnknownTool(LookupError):
    """A tool name the registry does not hold."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown tool '{name}'")
        self.name = name


@dataclass(frozen=True)
class Tool:
    """One tool, declared once: what every part of Zoo that meets the tool reads."""

    name: str
    """What an agent's `tools:` and `approval:` name (an MCP tool: `server.tool`)."""
    description: str
    """What the model reads of the tool."""
    parameters: dict[str, Any]
    """The JSON schema of its arguments: an object; a call may send only its properties."""
    handler: Handler
    """Runs a call that was checked (and, where the roster says so, approved)."""
    preview: Preview
    """The one line a person reads before approving a call, made from the very arguments
    the approval hashed (the approval file holds all of them)."""
    precheck: Precheck | None = None
    """Checks that touch nothing, made before a call may wait for approval: a call that
    would be refused anyway is refused now, not previewed to a person."""
    needs_person: Asks | None = None
    """Why a person must approve this call though `approval:` does not name the tool, or
    None to let it run (run: a command outside the agent's `commands`)."""
    gateable: bool = True
    """`approval:` may name it, so that a person decides each call. The tools that steer
    the task rather than act (handoff, escalate) may not."""
    redo: bool = True
    """Safe to make again when the runner died while a call was under way (its effect is
    made once either way). If not, the call is not made again and the model is told so."""
    offer: Offer | None = None
    """The arguments' schema as one agent of a roster is offered it, or None for not at all
    (handoff names the agent's targets); unset: `parameters`, to every agent granted it."""

    def spec_for(self, roster: Roster, agent: str) -> ToolSpec | None:
        """What the model of `agent` is told of the tool; None: it is not offered."""
        from zoo.models.base import ToolSpec

        parameters = self.parameters if self.offer is None else self.offer(roster, agent)
        return None if parameters is None else ToolSpec(self.name, self.description, parameters)


class Registry:
    """Tools by name, in the order they were declared (`zoo check` suggests them so).

    A registry does not change once made: `with_tools` makes a larger one, so a tool
    found at run time is added without touching what other runs are using.
    """

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"tool '{tool.name}' is declared twice")
            self._tools[tool.name] = tool

    def with_tools(self, tools: Iterable[Tool]) -> Registry:
        """This registry and `tools`; a name already declared is a `ValueError`."""
        return Registry([*self, *tools])

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name) from None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    @property
    def gateable(self) -> tuple[str, ...]:
        """The tools `approval:` may name."""
        return tuple(name for name, tool in self._tools.items() if tool.gateable)

    def preview(self, name: str, arguments: Arguments) -> str:
        """The line a person reads before approving a call; `UnknownTool` for a tool the
        registry does not hold, never another tool's wording."""
        return self[name].preview(arguments)
