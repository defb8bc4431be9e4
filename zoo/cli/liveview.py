"""What `zoo run` shows on a terminal: each agent's current work, kept up to date.

Lines about what happened (routed, handed off, done) scroll above a small table of
the agents and what each works on now. Only used when stdout is a terminal; otherwise
`zoo run` prints the lines alone, one per event, for logs and pipes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import TracebackType

from rich.live import Live as RichLive
from rich.table import Table

from zoo.cli.render import out, safe_markup
from zoo.engine.live import Live
from zoo.roster import Roster


class View:
    """A live table of the runner's agents, for as long as the `with` block runs."""

    def __init__(self, live: Live, roster: Roster) -> None:
        self.live = live
        self.roster = roster
        self.started = time.monotonic()
        self._rich = RichLive(get_renderable=self._table, console=out, refresh_per_second=4,
                              transient=True)  # fmt: skip

    def __enter__(self) -> View:
        self._rich.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._rich.stop()

    def _table(self) -> Table:
        working: dict[str, list[str]] = {}
        now = datetime.now(UTC)
        for task, lease in sorted(self.live.working().items()):
            since = datetime.strptime(lease["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            seconds = max(0, int((now - since).total_seconds()))
            working.setdefault(lease["agent"], []).append(f"{task} ({seconds}s)")
        report = self.live.report
        uptime = int(time.monotonic() - self.started)
        state = "stopping: finishing the steps under way" if self.live.stopping.is_set() else (
            f"up {uptime}s · {report.steps} steps, {report.done} done, "
            f"{report.escalated} escalated, {report.waiting} waiting"
        )  # fmt: skip
        table = Table(title=state, title_justify="left", box=None, pad_edge=False)
        table.add_column("agent")
        table.add_column("role")
        table.add_column("working on")
        for name, agent in self.roster.agents.items():
            doing = safe_markup(", ".join(working[name])) if name in working else "[dim]idle[/]"
            table.add_row(safe_markup(name), safe_markup(agent.role), doing)
        return table
