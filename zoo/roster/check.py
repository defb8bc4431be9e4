"""`zoo check`: the roster and what it points at on disk; the one verdict on a home.

Loading validates zoo.yaml itself (shape, numbers and names). This adds what needs the
disk or a library: every playbook loads (with the loader the runner uses), cron
expressions parse, workspace folders exist (they are created), and the handoff graph's
cycles (warnings: QA may send work back to dev). `require_ok` is the same verdict for
the runner: it does not start on a home `zoo check` rejects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.errors import ConfigError, UserError
from zoo.roster import Roster, load_roster, playbooks
from zoo.state.home import SPECIAL_FOLDERS, Home

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


def check(home: Home) -> CheckReport:
    """`zoo check`: the verdict, and the workspace folders created when it loads."""
    report = verdict(home)
    if report.roster is None:
        return report
    folders = {report.roster.workspace_of(a) for a in report.roster.agents}
    for folder in sorted(folders | set(SPECIAL_FOLDERS)):
        path = home.workspace(folder)
        if not path.is_dir():
            path.mkdir(parents=True)
            report.created.append(home.relative(path))
    return report


def require_ok(home: Home) -> Roster:
    """The home's roster if `zoo check` accepts the home; else `CheckFailed`."""
    report = verdict(home)
    if report.roster is None or report.errors:
        raise CheckFailed(report.errors)
    return report.roster


def verdict(home: Home) -> CheckReport:
    """What `zoo check` finds wrong with the home, changing nothing."""
    try:
        roster = load_roster(home)
    except ConfigError as e:
        problems = getattr(e, "problems", [e])
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
    return CheckReport(roster, errors=_located(home, found), warnings=warnings)


def valid_cron(cron: str) -> bool:
    """Five fields that croniter accepts (the rule `zoo check` applies)."""
    from croniter import croniter

    return len(cron.split()) == 5 and bool(croniter.is_valid(cron))


def _located(home: Home, found: list[tuple[Loc, str]]) -> list[str]:
    """`zoo.yaml:LINE: key: problem` lines (zoo.yaml is parsed for lines only when needed)."""
    if not found:
        return []
    from zoo.roster.validate import line_map, shown

    where = shown(home.roster_path)
    lines = line_map(home.roster_path.read_text(encoding="utf-8"), where)
    return [
        str(ConfigError(where, lines.get(loc), ".".join(map(str, loc)), problem))
        for loc, problem in found
    ]


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
