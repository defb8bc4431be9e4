"""A zoo home: the folder holding zoo.yaml, found like git finds a repository."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import HomeNotFound

ROSTER_FILE = "zoo.yaml"
INBOX = "inbox"
DONE = "done"
ESCALATIONS = "escalations"
SPECIAL_FOLDERS = (INBOX, DONE, ESCALATIONS)
"""Workspace folders with a fixed meaning: the router's queue, finished work, needs a person."""


@dataclass(frozen=True)
class Home:
    """Paths of one zoo home (DESIGN §1); `root` is absolute and resolved."""

    root: Path

    @property
    def roster_path(self) -> Path:
        return self.root / ROSTER_FILE

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def memory_path(self) -> Path:
        return self.root / "MEMORY.md"

    @property
    def state(self) -> Path:
        """`.zoo/`: runtime state that people do not edit."""
        return self.root / ".zoo"

    @property
    def approvals(self) -> Path:
        """`.zoo/approvals/`: pending approvals, and the decided ones in `decided/`."""
        return self.state / "approvals"

    @property
    def journal_path(self) -> Path:
        return self.state / "events.jsonl"

    def workspace(self, name: str) -> Path:
        return self.workspaces / name

    def playbook(self, agent: str) -> Path:
        return self.agents_dir / f"{agent}.md"

    def agent_memory(self, agent: str) -> Path:
        return self.agents_dir / f"{agent}.memory.md"

    def ensure_state(self) -> Path:
        self.state.mkdir(exist_ok=True)
        return self.state

    def relative(self, path: Path) -> str:
        """`path` as shown to people: relative to the home when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def find_home(
    explicit: Path | None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Home:
    """`--home`, else `$ZOO_HOME`, else the nearest folder upward holding zoo.yaml."""
    env = os.environ if env is None else env
    if explicit is not None:
        return _home_at(explicit, "--home")
    if env.get("ZOO_HOME"):
        return _home_at(Path(env["ZOO_HOME"]), "$ZOO_HOME")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ROSTER_FILE).is_file():
            return Home(folder)
    raise HomeNotFound(
        f"no zoo home: no {ROSTER_FILE} in {start} or any folder above it "
        "(run 'zoo init DIR', pass --home DIR or set ZOO_HOME)"
    )


def _home_at(path: Path, origin: str) -> Home:
    root = path.expanduser().resolve()
    if not (root / ROSTER_FILE).is_file():
        raise HomeNotFound(f"no zoo home at {path} ({origin}): it has no {ROSTER_FILE}")
    return Home(root)
