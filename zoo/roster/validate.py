"""Validate zoo.yaml: YAML, then pydantic, then the references between its parts.

Every problem is a `ConfigError` reading `zoo.yaml:LINE: key.path: what is wrong`, with
"did you mean" for near-miss names. Imported only when zoo.yaml changed (see model.py).
Tool names are not checked here: the tools there are belong to a layer above the roster
(policy/registry.py), and `zoo check`'s verdict (engine/check.py) checks them.
"""

from __future__ import annotations

import re
import shlex
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic_core import PydanticCustomError, core_schema

from zoo.errors import ConfigError, did_you_mean
from zoo.roster import OFFLINE_TIER, Agent, Range, Roster
from zoo.state.home import SPECIAL_FOLDERS

Loc = tuple[str | int, ...]
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PROVIDERS = ("anthropic", "openai", "offline", "auto")


class RosterInvalid(ConfigError):
    """zoo.yaml has one or more problems; the message names the first, `problems` all."""

    def __init__(self, problems: list[ConfigError], roster: Roster | None = None) -> None:
        first = problems[0]
        super().__init__(first.path, first.line, first.key, first.problem)
        self.problems = problems
        self.roster = roster
        """The roster as written when only its references are wrong (its shape is right),
        so that `zoo check` can report what else it finds in it; else None."""


def validate_roster(raw: bytes, path: Path) -> Roster:
    where = shown(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(where, None, None, f"not UTF-8 text (byte {e.start})") from None
    lines = line_map(text, where)
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise ConfigError(where, 1, None, "expected a mapping of keys (version, name, agents, ...)")
    try:
        roster = pydantic.TypeAdapter(Roster).validate_python(data)
    except pydantic.ValidationError as e:
        # an unknown key first: a misspelt key is also a "missing" one, and the cause
        errors = sorted(e.errors(), key=lambda err: err["type"] != "unexpected_keyword_argument")
        problems = [_from_pydantic(err, lines, where) for err in errors]
        missing = [p.problem == "required key is missing" for p in problems]
        order = sorted(range(len(problems)), key=lambda i: (missing[i], problems[i].line or 0))
        raise RosterInvalid([problems[i] for i in order]) from None
    problems = [
        ConfigError(where, line_of(loc, lines), key_of(loc), msg)
        for loc, msg in _reference_problems(roster)
    ]
    if problems:
        raise RosterInvalid(sorted(problems, key=lambda p: p.line or 0), roster)
    return roster


def shown(path: Path) -> str:
    """A path as a person typed it: relative to the current folder when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def line_map(text: str, shown: str) -> dict[Loc, int]:
    """1-based line of every key and list item, by its path; duplicate keys are errors."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(shown, line, None, f"invalid YAML: {problem}") from None
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, loc: Loc) -> None:
        lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(shown, line, key_of((*loc, key)), "duplicate key")
                seen.add(key)
                walk(value_node, (*loc, key))
                lines[(*loc, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))

    if root is not None:
        walk(root, ())
    return lines


def line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of `loc`, or of the nearest key above it that zoo.yaml has."""
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


def key_of(loc: Loc) -> str:
    """`agents.beaver.tools`: the key path of `loc`, without list positions."""
    return ".".join(str(part) for part in loc if not isinstance(part, int)) or "(top)"


def _from_pydantic(err: Any, lines: dict[Loc, int], shown: str) -> ConfigError:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "unexpected_keyword_argument":
        hint = did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
        problem = f"unknown key{hint}"
    elif kind in ("missing", "missing_argument"):
        problem = "required key is missing"
    elif kind == OUT_OF_RANGE:
        problem = f"expected {err['ctx']['expected']}, got {_shown_value(err['input'])}"
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        problem = (
            f"expected {expected}, got {err['input']!r}{did_you_mean(str(err['input']), choices)}"
        )
    else:
        msg = err["msg"]
        msg = msg[len("Input should be ") :] if msg.startswith("Input should be ") else msg
        msg = re.sub(r",? or (an )?instance of \w+", "", msg).replace("valid dictionary", "mapping")
        problem = f"expected {msg}, got {err['input']!r}"
    return ConfigError(shown, line_of(loc, lines), key_of(loc), problem)


def range_schema(limits: Range, *, whole: bool) -> core_schema.CoreSchema:
    """How pydantic checks a number declared with `Range` (see roster.py)."""

    def check(value: Any) -> Any:
        if not limits.allows(value, whole):
            raise PydanticCustomError(OUT_OF_RANGE, "{expected}", {"expected": limits.words(whole)})
        return value if whole else float(value)

    return core_schema.no_info_plain_validator_function(check)


OUT_OF_RANGE = "out_of_range"


def _shown_value(value: Any) -> str:
    """A value as zoo.yaml spells it where that differs from Python's repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else repr(value)


def _fields_at(loc: Loc) -> list[str]:
    """The field names of the dataclass that `loc` points into, for "did you mean"."""
    tp: Any = Roster
    for part in loc:
        if isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            tp = typing.get_type_hints(tp).get(part, None)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is not dict and len(args) == 1:
            tp = args[0]
    return list(typing.get_type_hints(tp)) if hasattr(tp, "__dataclass_fields__") else []


def _reference_problems(r: Roster) -> Iterator[tuple[Loc, str]]:
    """What pydantic cannot see: names that must point at other parts of the roster."""
    agents = list(r.agents)
    tiers = [*r.models, OFFLINE_TIER]
    if not r.name.strip():
        yield ("name",), "must not be empty"
    if r.lead not in r.agents:
        yield ("lead",), f"unknown agent '{r.lead}'{did_you_mean(r.lead, agents)}"
    elif r.agents[r.lead].workspace is not None:
        yield ("agents", r.lead, "workspace"), "the lead works in inbox/: remove this key"
    if r.defaults.model is not None and r.defaults.model not in tiers:
        yield ("defaults", "model"), _unknown("model tier", r.defaults.model, tiers)
    for name, tier in r.models.items():
        if tier.fallback is not None and tier.fallback not in tiers:
            yield ("models", name, "fallback"), _unknown("model tier", tier.fallback, tiers)
        elif tier.fallback == name:
            yield ("models", name, "fallback"), "a tier cannot fall back to itself"
        if tier.tool_format is not None and tier.provider not in ("openai", "auto"):
            yield (("models", name, "tool_format"),
                   "tool_format is for OpenAI-compatible servers (provider: openai)")  # fmt: skip
    for provider in r.limits:
        if provider not in PROVIDERS:
            yield ("limits", provider), _unknown("provider", provider, PROVIDERS)
    yield from _agent_problems(r, tiers)
    for name, sched in r.schedules.items():
        if sched.agent not in r.agents:
            yield ("schedules", name, "agent"), _unknown("agent", sched.agent, agents)
        if not sched.brief.strip():
            yield ("schedules", name, "brief"), "must not be empty"


def _agent_problems(r: Roster, tiers: list[str]) -> Iterator[tuple[Loc, str]]:
    agents = list(r.agents)
    workspaces = sorted({r.workspace_of(a) for a in agents})
    for name, agent in r.agents.items():
        at: Loc = ("agents", name)
        if not NAME.match(name):
            yield at, "an agent's name is lower-case letters, digits, '-' or '_' (max 32)"
        if agent.model is not None and agent.model not in tiers:
            yield (*at, "model"), _unknown("model tier", agent.model, tiers)
        ws = agent.workspace
        if ws is not None and (not NAME.match(ws) or ws in SPECIAL_FOLDERS):
            yield (
                (*at, "workspace"),
                (
                    f"'{ws}' cannot be a workspace "
                    "(a lower-case name other than inbox, done, escalations)"
                ),
            )
        for i, target in enumerate(agent.handoff):
            if target not in r.agents:
                yield (*at, "handoff", i), _unknown("agent", target, agents)
            elif target == name:
                yield (*at, "handoff", i), "an agent cannot hand off to itself"
        yield from _permission_problems(name, agent)
        for key in ("can_read", "can_write"):
            for i, ws_name in enumerate(getattr(agent, key)):
                if ws_name not in workspaces:
                    yield (*at, key, i), _unknown("workspace", ws_name, workspaces)
        for i, word in enumerate(agent.routes):
            if not word.strip():
                yield (*at, "routes", i), "a route must not be empty"


def _permission_problems(name: str, agent: Agent) -> Iterator[tuple[Loc, str]]:
    at: Loc = ("agents", name)
    if agent.commands and "run" not in agent.tools:
        yield (*at, "commands"), "commands are for the run tool, which is not in tools"
    for i, command in enumerate(agent.commands):
        try:
            words = shlex.split(command)
        except ValueError as e:
            yield (*at, "commands", i), f"cannot split {command!r}: {e}"
            continue
        if not words:
            yield (*at, "commands", i), "a command must not be empty"


def _unknown(what: str, value: str, choices: typing.Iterable[str]) -> str:
    return f"unknown {what} '{value}'{did_you_mean(value, choices)}"
