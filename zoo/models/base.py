"""The `Model` interface: one request in, one reply out, provider-neutral.

A provider (offline, scripted, and later Anthropic and OpenAI) turns a `Request` into
its own wire format and its answer back into a `Reply`. Tool calls travel as
`ToolCall`s; their results go back as `tool` messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call, with a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    """As the model sent them; tools validate them before use."""
    error: str | None = None
    """Why the arguments could not be read (not JSON, not an object): a tool error."""
    written: bool = False
    """The model wrote this call in its text (a local model without native tool calls)."""


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """For `assistant` messages: the calls the model made."""
    tool_call_id: str | None = None
    """For `tool` messages: which call this is the result of."""
    is_error: bool = False
    """For `tool` messages: the call was refused or failed."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Request:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    require_tool: str | None = None
    """Force this tool to be called (structured answers, e.g. the router's `route`)."""
    max_tokens: int = 4096
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    """Who asks (agent, task, purpose); providers ignore it, test models may check it."""


@dataclass(frozen=True)
class Attempt:
    """A try of a model call that failed, before a retry, a fallback or giving up."""

    tier: str
    model: str
    error: str
    kind: str
    """The error's type, e.g. ModelHTTPError."""
    wait_s: float = 0.0
    """How long Zoo waited before the next try."""
    then: str = ""
    """What came next: retry, fallback to TIER, or give up."""


@dataclass(frozen=True)
class Reply:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: Literal["end", "tool_use", "max_tokens"] = "end"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    tier: str = ""
    """The tier that answered (a fallback's, when the agent's own tier failed)."""
    attempts: tuple[Attempt, ...] = ()
    """Tries that failed before this answer, in order (each is a journal event)."""
    written: str | None = None
    """When the calls were written in the text: the model's whole text (`text` holds the
    words around the calls), so the conversation goes on as the model wrote it."""
    usage_estimated: bool = False
    """The server reported no usage: `usage` is counted from the text (4 characters a token)."""


class Model(ABC):
    """Something that answers requests: a provider's model, or a local stand-in."""

    name: str = "model"

    @abstractmethod
    def complete(self, request: Request) -> Reply:
        """Answer one request; raise `ModelError` (or a subclass) on failure."""

    def ready(self) -> None:
        """Raise `ModelUnavailable` if this model cannot be called as configured (no key,
        no server); cheap, and checked once before a run's first step needs it."""
        return None


def estimate_tokens(request: Request) -> tuple[int, int]:
    """(input, output) tokens of a call, guessed before it is made: about 4 characters a
    token for the prompt, and a quarter of `max_tokens` for the answer."""
    chars = len(request.system) + sum(len(m.content) for m in request.messages)
    return chars // 4, request.max_tokens // 4
