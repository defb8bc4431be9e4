"""The roster: zoo.yaml as frozen dataclasses, declared once, validated by pydantic.

The dataclasses below are the one declaration of zoo.yaml's shape. pydantic validates
them (`extra="forbid"` through `__pydantic_config__`, so a typo is an error, never a
silently dropped permission) whenever zoo.yaml changes; every number carries the range
it allows (`Range`). The validated roster is then cached in `.zoo/roster.json` under a
checksum of zoo.yaml's bytes, zoo's version and the checks' code, so `zoo status` starts
without importing pydantic. `validate.py` does the validation and its messages.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from zoo import __version__
from zoo.errors import ConfigError
from zoo.state.fs import atomic_write
from zoo.state.home import INBOX, Home

Provider = Literal["anthropic", "openai", "offline", "auto"]
OFFLINE_TIER = "offline"
"""A tier every roster has, even when `models:` does not name it: the built-in offline model."""

_FORBID = {"extra": "forbid"}


@dataclass(frozen=True)
class Range:
    """The numbers a field allows, declared on the field: `Annotated[int, Range(1, 1000)]`.

    An `int` field takes whole numbers only, a `float` field any finite number; neither
    takes `true` or `false`. pydantic applies it when zoo.yaml is validated (through
    `__get_pydantic_core_schema__`, which imports validate.py), so importing this module
    imports no pydantic.
    """

    low: float
    high: float | None = None
    """The largest number allowed; None: no upper bound."""
    above: bool = False
    """`low` itself is not allowed, only numbers above it."""

    def allows(self, value: object, whole: bool) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if (whole and not isinstance(value, int)) or not math.isfinite(value):
            return False
        if value < self.low or (self.above and value == self.low):
            return False
        return self.high is None or value <= self.high

    def words(self, whole: bool) -> str:
        """The range as a person reads it: `a whole number from 1 to 1000`."""
        kind = "a whole number" if whole else "a number"
        low = _number(self.low)
        if self.above:
            at_most = f" and at most {_number(self.high)}" if self.high is not None else ""
            return f"{kind} above {low}{at_most}"
        if self.high is None:
            return f"{kind} of {low} or more"
        return f"{kind} from {low} to {_number(self.high)}"

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from zoo.roster.validate import range_schema

        return range_schema(self, whole=source is int)


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


Count = Annotated[int, Range(1)]
"""A whole number of 1 or more."""
Money = Annotated[float, Range(0)]
"""USD (or USD per million tokens): 0 or more."""
Turns = Annotated[int, Range(1, 1000)]
"""Model calls of one agent turn."""


@dataclass(frozen=True)
class Price:
    __pydantic_config__ = _FORBID
    input_per_mtok: Money = 0.0
    """USD per million input tokens."""
    output_per_mtok: Money = 0.0
    """USD per million output tokens."""


@dataclass(frozen=True)
class Tier:
    """A named model tier that agents refer to."""

    __pydantic_config__ = _FORBID
    provider: Provider
    """anthropic | openai (any OpenAI-compatible server via base_url) | offline | auto."""
    model: str = ""
    """The provider's model name; the offline model ignores it."""
    base_url: str | None = None
    """An OpenAI-compatible server, e.g. a local Ollama."""
    api_key_env: str | None = None
    """The environment variable holding the key; keys are never written to files."""
    fallback: str | None = None
    """The tier to try when this one keeps failing; only where declared."""
    price: Price = field(default_factory=Price)
    """For cost accounting."""
    context_tokens: Annotated[int, Range(512)] | None = None
    """The tokens the model holds, prompt and answer together; prompts are fitted to it.
    Unset: what a `base_url` server says, else 4,096; a hosted API's known window."""
    tool_format: Literal["native", "text", "auto"] | None = None
    """How the model calls tools (provider openai): `native` (the API's tool calls), `text`
    (tools described in the prompt, calls read from the reply's text: a server with no tool
    support), `auto` (native, and a reply whose text is a call is taken as one). Unset:
    `auto` for a `base_url` server, else `native`."""

    def tools_as(self) -> Literal["native", "text", "auto"]:
        """`tool_format`, or its default for this tier."""
        if self.tool_format is not None:
            return self.tool_format
        return "auto" if self.base_url is not None else "native"


@dataclass(frozen=True)
class Limit:
    """Shared limits of one provider, for the whole team."""

    __pydantic_config__ = _FORBID
    concurrency: Count | None = None
    """Calls to the provider at once."""
    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None


@dataclass(frozen=True)
class Budget:
    __pydantic_config__ = _FORBID
    daily_usd: Money | None = None
    """No model call is made that could take today's spend (UTC) above this."""
    task_tokens: Count | None = None
    """No model call is made that could take one task's tokens (in + out) above this."""


@dataclass(frozen=True)
class Defaults:
    __pydantic_config__ = _FORBID
    model: str | None = None
    """The tier of agents that name none; the built-in offline tier when unset."""
    max_turns: Turns = 8
    """Model calls one agent turn may make."""
    timeout_s: Annotated[float, Range(0, 86400, above=True)] = 120.0
    """Seconds a model call (or a `run` command) may take; at most a day."""
    retries: Annotated[int, Range(0, 100)] = 3
    """Tries of a failed model call after the first, before its tier's fallback."""
    backoff_s: Annotated[float, Range(0, 30)] = 0.5
    """The first pause before a retry when the provider gives no retry-after; it doubles,
    up to 30 seconds."""
    max_handoffs: Annotated[int, Range(0)] = 10
    """A task handed off more often than this is escalated."""
    min_confidence: Annotated[float, Range(0, 1)] = 0.6
    """The router escalates a brief when its model is less sure than this (0 to 1)."""
    concurrency: Annotated[int, Range(1, 100)] = 4
    """Tasks the runner works on at once (each in a thread), unless a provider's limit
    says less."""


@dataclass(frozen=True)
class Agent:
    """One specialist of the team; its playbook is agents/<name>.md."""

    __pydantic_config__ = _FORBID
    role: str
    description: str = ""
    model: str | None = None
    """A tier name; `defaults.model` when unset."""
    workspace: str | None = None
    """Its workspace folder; its own name when unset (the lead works in inbox/)."""
    routes: tuple[str, ...] = ()
    """Words that route a brief here without a model call (whole words, any case)."""
    handoff: tuple[str, ...] = ()
    """Who gets the task next; empty means the task is done after this agent."""
    tools: tuple[str, ...] = ()
    """The tools it may call; none unless listed. Names are checked against the tool
    registry (policy/registry.py) by `zoo check`, and so before every run."""
    can_read: tuple[str, ...] = ()
    """Other workspaces it may read; its own is always readable."""
    can_write: tuple[str, ...] = ()
    """Workspaces it may write; its own only when unset."""
    commands: tuple[str, ...] = ()
    """What `run` may start without asking: a program (`pytest`) or a program and its first
    arguments (`git status`). Any other command waits for a person's approval."""
    approval: tuple[str, ...] = ()
    """Tools whose every call waits for a person's approval (checked with `tools`)."""
    max_turns: Turns | None = None
    """Its own `defaults.max_turns`."""


@dataclass(frozen=True)
class Schedule:
    __pydantic_config__ = _FORBID
    cron: str
    """A five-field cron expression, in UTC."""
    agent: str
    brief: str


@dataclass(frozen=True)
class GitSettings:
    __pydantic_config__ = _FORBID
    autocommit: bool = False


@dataclass(frozen=True)
class SandboxSettings:
    """How the commands `run` starts are confined (Linux Landlock; see sandbox.py)."""

    __pydantic_config__ = _FORBID
    confine: Literal["required", "best-effort", "never"] = "required"
    """required: a command runs only confined, and is refused where the kernel cannot
    confine it; best-effort: there it runs unconfined, journaled; never: not confined."""
    network: bool = False
    """Let commands connect and listen over TCP (denied by default, where the kernel can)."""


@dataclass(frozen=True)
class Roster:
    """zoo.yaml, version 1 (DESIGN §2)."""

    __pydantic_config__ = _FORBID
    version: Literal[1]
    name: str
    lead: str
    agents: dict[str, Agent]
    models: dict[str, Tier] = field(default_factory=dict)
    limits: dict[str, Limit] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    defaults: Defaults = field(default_factory=Defaults)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    git: GitSettings = field(default_factory=GitSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)

    def workspace_of(self, agent: str) -> str:
        if agent == self.lead:
            return INBOX
        return self.agents[agent].workspace or agent

    def agents_in(self, workspace: str) -> list[str]:
        return [name for name in self.agents if self.workspace_of(name) == workspace]

    def tier_name(self, agent: str) -> str:
        return self.agents[agent].model or self.defaults.model or OFFLINE_TIER

    def tier(self, name: str) -> Tier:
        if name in self.models:
            return self.models[name]
        if name == OFFLINE_TIER:
            return Tier(provider="offline", model="offline")
        raise KeyError(name)

    def max_turns(self, agent: str) -> int:
        own = self.agents[agent].max_turns
        return own if own is not None else self.defaults.max_turns

    def readable(self, agent: str) -> tuple[str, ...]:
        own = self.workspace_of(agent)
        return (own, *(w for w in self.agents[agent].can_read if w != own))

    def writable(self, agent: str) -> tuple[str, ...]:
        return self.agents[agent].can_write or (self.workspace_of(agent),)

    def chain(self, agent: str) -> list[str]:
        """The default handoff chain from `agent` (first targets), stopping at a repeat."""
        seen = [agent]
        while self.agents[seen[-1]].handoff:
            nxt = self.agents[seen[-1]].handoff[0]
            if nxt in seen:
                return [*seen, nxt]
            seen.append(nxt)
        return seen


def load_roster(home: Home) -> Roster:
    """The home's roster, validated; from the cache when zoo.yaml has not changed."""
    try:
        raw = home.roster_path.read_bytes()
    except OSError as e:
        raise ConfigError(home.roster_path, None, None, f"cannot read: {e.strerror}") from None
    digest = _digest(raw)
    cache = home.state / "roster.json"
    cached = _read_cache(cache, digest)
    if cached is not None:
        return cached
    from zoo.roster.validate import validate_roster

    roster = validate_roster(raw, home.roster_path)
    _write_cache(cache, digest, roster)
    return roster


CHECKS = (Path(__file__), Path(__file__).with_name("validate.py"))
"""The code that decides whether a roster is valid. The cache key includes it, so a
roster that was cached as valid is validated again once the checks change, even when
zoo's version number did not (an editable install, a patched module)."""


def _digest(raw: bytes) -> str:
    """The cache key: zoo.yaml's bytes, zoo's version and the code of the checks.

    Two checksums (CRC-32 and Adler-32) and the length, not a cryptographic hash: the
    key tells an edited zoo.yaml from the cached one, and guards against nobody (whoever
    can write `.zoo/roster.json` can compute any key). zlib is imported already by
    `zoo status`'s own imports; hashlib would add ~3 ms to its start.
    """
    parts = [raw, __version__.encode()]
    for path in CHECKS:
        try:
            parts.append(path.read_bytes())
        except OSError:
            parts.append(b"?")  # no source (a bytecode-only install): the version decides
    data = b"\0".join(parts)
    return f"{len(data):x}-{zlib.crc32(data):08x}-{zlib.adler32(data):08x}"


def _read_cache(cache: Path, digest: str) -> Roster | None:
    try:
        doc = json.loads(cache.read_bytes())
        if not isinstance(doc, dict) or doc.get("key") != digest:
            return None
        return typing.cast(Roster, _build(Roster, doc["roster"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_cache(cache: Path, digest: str, roster: Roster) -> None:
    doc = {"key": digest, "roster": dataclasses.asdict(roster)}
    try:
        cache.parent.mkdir(exist_ok=True)
        atomic_write(cache, json.dumps(doc), durable=False)
    except OSError:
        pass  # a read-only home works, it just validates every time


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a value of type `tp` from its `dataclasses.asdict` form (the cache)."""
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        factory: Any = tp
        return factory(**{k: _build(hints[k], v) for k, v in value.items()})
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict:
        return {k: _build(args[1], v) for k, v in value.items()}
    if origin is tuple:
        return tuple(_build(args[0], v) for v in value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _build(next(a for a in args if a is not type(None)), value)
    return value
