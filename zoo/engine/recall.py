"""`zoo memory`: what MEMORY.md (or one agent's own memory) holds, searched, newest last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.errors import NotFound, UsageError, did_you_mean
from zoo.roster import load_roster
from zoo.state.home import Home
from zoo.state.memory import Entry, Memory, search


@dataclass(frozen=True)
class Recalled:
    """The entries of one memory file that were asked for, in file order."""

    where: str
    """The memory file, relative to the home (`MEMORY.md`, `agents/owl.memory.md`)."""
    entries: list[Entry]
    """At most `limit` of them: the newest that match."""
    query: str | None = None
    """Only entries with all these words (case-insensitive)."""
    limit: int = 20

    def document(self) -> list[dict[str, Any]]:
        return [dict(vars(e)) for e in self.entries]


def recall(
    home: Home, query: str | None = None, *, agent: str | None = None, limit: int = 20
) -> Recalled:
    """The newest `limit` entries of the home's MEMORY.md, or of `agent`'s own memory, that
    hold every word of `query`."""
    if limit < 0:
        raise UsageError(f"limit {limit}: expected 0 or more entries")
    if agent is not None and agent not in (names := load_roster(home).agents):
        raise NotFound(f"no agent '{agent}' in zoo.yaml{did_you_mean(agent, names)}")
    path = home.agent_memory(agent) if agent else home.memory_path
    entries = Memory(home).entries(path)
    if query:
        entries = search(entries, query)
    entries = entries[len(entries) - limit :] if limit < len(entries) else entries
    return Recalled(home.relative(path), entries, query, limit)
