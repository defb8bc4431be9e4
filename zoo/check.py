"""`zoo check`: the roster and what it points at on disk.

Loading validates zoo.yaml itself (shape and names). This adds what needs the disk or
a library: playbooks exist, cron expressions parse, workspace folders exist (they are
created), and the handoff graph's cycles (warnings: QA may send work back to dev).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.errors import ConfigError
from zoo.home import SPECIAL_FOLDERS, Home
from zoo.roster import Roster, load_roster


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


def check(home: Home) -> CheckReport:
    try:
        roster = load_roster(home)
    except ConfigError as e:
        problems = getattr(e, "problems", [e])
        return CheckReport(None, errors=[str(p) for p in problems])
    from zoo.rostercheck import line_map, shown

    report = CheckReport(roster)
    where = shown(home.roster_path)
    lines = line_map(home.roster_path.read_text(encoding="utf-8"), where)
    for name in roster.agents:
        if not home.playbook(name).is_file():
            report.errors.append(
                f"{where}:{lines[('agents', name)]}: agents.{name}: playbook "
                f"agents/{name}.md does not exist (write the agent's instructions there)"
            )
    report.errors += cron_problems(roster, lines, where)
    report.warnings += [f"handoff cycle: {' -> '.join(c)}" for c in cycles(roster)]
    folders = {roster.workspace_of(a) for a in roster.agents} | set(SPECIAL_FOLDERS)
    for folder in sorted(folders):
        path = home.workspace(folder)
        if not path.is_dir():
            path.mkdir(parents=True)
            report.created.append(home.relative(path))
    return report


def cron_problems(roster: Roster, lines: dict[tuple[str | int, ...], int], where: str) -> list[str]:
    from croniter import croniter

    problems = []
    for name, sched in roster.schedules.items():
        if len(sched.cron.split()) != 5 or not croniter.is_valid(sched.cron):
            problems.append(
                f"{where}:{lines[('schedules', name, 'cron')]}: schedules.{name}.cron: "
                f"'{sched.cron}' is not a cron expression (like \"0 9 * * MON\")"
            )
    return problems


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
