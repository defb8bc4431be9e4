"""`zoo check`: the roster and what it points at on disk; the one verdict on a home.

Loading validates zoo.yaml itself (shape, numbers and the names of its own parts). This
adds what needs the tool registry, the disk or a library: every tool an agent is given
exists, and `approval:` names only tools that can wait for a person (policy/registry.py);
every playbook loads (with the loader the runner uses), cron expressions parse, workspace
folders exist (they are created), and the handoff graph's cycles (warnings: QA may send
work back to dev). `require_ok` is the same verdict for the runner: it does not start on
a home `zoo check` rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoo.errors import ConfigError, UserError, did_you_mean
from zoo.roster import Roster, load_roster, playbooks
from zoo.state.home import SPECIAL_FOLDERS, Home

if TYPE_CHECKING:
    from zoo.policy.registry import Registry

Loc = tuple[str | int, ...]


@dataclass
class CheckReport:
    roster: Roster | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    """Workspace folders this check created."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def document(self) -> dict[str, object]:
        return {"ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "created": self.created}  # fmt: skip


class CheckFailed(UserError):
    """`zoo check` rejects the home; the message is its first error, `errors` all of them."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors[0])
        self.errors = errors


def check(home: Home, registry: Registry | None = None) -> CheckReport:
    """`zoo check`: the verdict, and the workspace folders created when it loads."""
    report = verdict(home, registry)
    if report.roster is None:
        return report
    folders = {report.roster.workspace_of(a) for a in report.roster.agents}
    for folder in sorted(folders | set(SPECIAL_FOLDERS)):
        path = home.workspace(folder)
        if not path.is_dir():
            path.mkdir(parents=True)
            report.created.append(home.relative(path))
    return report


def require_ok(home: Home, registry: Registry | None = None) -> Roster:
    """The home's roster if `zoo check` accepts the home; else `CheckFailed`."""
    report = verdict(home, registry)
    if report.roster is None or report.errors:
        raise CheckFailed(report.errors)
    return report.roster


def verdict(home: Home, registry: Registry | None = None) -> CheckReport:
    """What `zoo check` finds wrong with the home, changing nothing. Tool names are
    checked against `registry`, the built-in tools when None."""
    roster, problems = _roster(home, registry)
    if roster is None:
        return CheckReport(None, errors=[str(p) for p in problems])
    found: list[tuple[Loc, str]] = []
    for name in roster.agents:
        try:
            playbooks.read(home, name)
        except playbooks.PlaybookError as e:
            found.append((("agents", name), str(e)))
    for name, sched in roster.schedules.items():
        if not valid_cron(sched.cron):
            problem = f"'{sched.cron}' is not a cron expression (like \"0 9 * * MON\")"
            found.append((("schedules", name, "cron"), problem))
    warnings = [f"handoff cycle: {' -> '.join(c)}" for c in cycles(roster)]
    errors = [str(p) for p in _located(home, found)]
    return CheckReport(roster, errors=errors, warnings=warnings)


def _roster(home: Home, registry: Registry | None) -> tuple[Roster | None, list[ConfigError]]:
    """The roster if zoo.yaml is right, its tool names too; else None and its problems.
    Tool names are checked once the roster's shape is right, and reported in line order
    with the problems of names that point at its other parts."""
    try:
        roster: Roster | None = load_roster(home)
        problems: list[ConfigError] = []
    except ConfigError as e:  # only references wrong: the roster comes with its problems
        roster, problems = getattr(e, "roster", None), list(getattr(e, "problems", [e]))
    if roster is None:
        return None, problems
    if registry is None:
        from zoo.policy.tools import BUILTINS  # here: `zoo status` imports this module

        registry = BUILTINS
    named = _located(home, list(tool_problems(roster, registry)))
    if not named and not problems:
        return roster, []
    return None, sorted([*problems, *named], key=lambda p: p.line or 0)


def tool_problems(roster: Roster, registry: Registry) -> Iterator[tuple[Loc, str]]:
    """Tools the roster gives that the registry lacks, and `approval:` lists that name a
    tool no person can be asked about, or one the agent is not given."""
    gateable = registry.gateable
    for name, agent in roster.agents.items():
        for i, tool in enumerate(agent.tools):
            if tool not in registry:
                hint = did_you_mean(tool, registry.names)
                yield ("agents", name, "tools", i), f"unknown tool '{tool}'{hint}"
        for i, tool in enumerate(agent.approval):
            if tool not in gateable:
                problem = f"'{tool}' cannot wait for approval (one of {', '.join(gateable)})"
                yield ("agents", name, "approval", i), problem
            elif tool not in agent.tools:
                yield ("agents", name, "approval", i), f"'{tool}' is not in this agent's tools"


def valid_cron(cron: str) -> bool:
    """Five fields that croniter accepts (the rule `zoo check` applies)."""
    from croniter import croniter

    return len(cron.split()) == 5 and bool(croniter.is_valid(cron))


def _located(home: Home, found: list[tuple[Loc, str]]) -> list[ConfigError]:
    """`zoo.yaml:LINE: key: problem` errors (zoo.yaml is parsed for lines only when needed)."""
    if not found:
        return []
    from zoo.roster.validate import key_of, line_map, line_of, shown

    where = shown(home.roster_path)
    lines = line_map(home.roster_path.read_text(encoding="utf-8"), where)
    return [ConfigError(where, line_of(loc, lines), key_of(loc), problem) for loc, problem in found]


def cycles(roster: Roster) -> list[list[str]]:
    """Every elementary handoff cycle once, starting at its first agent in roster order."""
    order = {name: i for i, name in enumerate(roster.agents)}
    found: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in roster.agents[node].handoff:
            if nxt == start:
                found.append([*path, start])
            elif nxt not in path and order[nxt] > order[start]:
                walk(start, nxt, [*path, nxt])

    for name in roster.agents:
        walk(name, name, [name])
    return found
