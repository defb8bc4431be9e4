"""`zoo cron`: the crontab entry that does a home's due work every few minutes.

The entry runs `zoo run --once` (a run still busy makes the next one exit at once) and
appends its output to `.zoo/cron.log`. Keys never go in it: the comment names the
variables the real models read from cron's environment.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo.models.wire import KEY_ENV
from zoo.roster import Roster, load_roster
from zoo.state.home import Home


@dataclass(frozen=True)
class CronLine:
    """What to add with `crontab -e`, and why each part is there."""

    team: str
    """The roster's name."""
    every: int
    """Minutes between runs (1-59)."""
    command: str
    """The shell command: `zoo --home HOME run --once`, quoted for sh."""
    log: Path
    """Where the runs' output is appended."""
    keys: list[str]
    """The variables the roster's real models read their keys from (sorted)."""

    @property
    def schedule(self) -> str:
        """The five cron fields."""
        return "* * * * *" if self.every == 1 else f"*/{self.every} * * * *"

    @property
    def entry(self) -> str:
        """The crontab line itself."""
        return f"{self.schedule} {self.command} >> {shlex.quote(str(self.log))} 2>&1"

    @property
    def lines(self) -> list[str]:
        """Comments for the person, then the entry: what `zoo cron` prints."""
        said = [f"# zoo '{self.team}': do the work that is due, every {self.every} min "
                "(a run still busy makes the next one exit at once)"]  # fmt: skip
        if self.keys:
            names = ", ".join(self.keys)
            said.append(
                f"# real models read {names} from cron's environment; keep keys out of here"
            )
        return [*said, self.entry]

    def document(self) -> dict[str, Any]:
        return {"team": self.team, "every": self.every, "entry": self.entry,
                "command": self.command, "log": str(self.log), "keys": self.keys}  # fmt: skip


def crontab(home: Home, every: int, executable: str) -> CronLine:
    """The entry that runs `executable` (the zoo program) on `home` every `every` minutes."""
    if not 1 <= every <= 59:
        raise UsageError(f"every {every} minutes: expected 1 to 59 (a cron minute step)")
    roster = load_roster(home)
    command = f"{shlex.quote(executable)} --home {shlex.quote(str(home.root))} run --once"
    return CronLine(roster.name, every, command, home.state / "cron.log", key_names(roster))


def key_names(roster: Roster) -> list[str]:
    """The environment variables the roster's tiers read their keys from."""
    keys: set[str] = set()
    for tier in roster.models.values():
        if tier.api_key_env:
            keys.add(tier.api_key_env)
        elif tier.provider == "auto":
            keys.update(KEY_ENV.values())
        elif tier.provider in KEY_ENV:
            keys.add(KEY_ENV[tier.provider])
    return sorted(keys)


def executable(argv0: str) -> str:
    """The zoo program to name in the entry: this one when run as `zoo` (`argv0`), else the
    `zoo` on PATH, else plain `zoo`."""
    script = Path(argv0).resolve() if Path(argv0).name == "zoo" else None
    if script is not None and script.is_file():
        return str(script)
    return shutil.which("zoo") or "zoo"
