"""The files agents wrote through their tools, kept until a commit holds them.

`record` (from any thread or process: `zoo approve` records too) appends a path to
`.zoo/written.jsonl`, durably, once; autocommit `take`s the record before it commits
(what is recorded meanwhile starts a fresh file) and `release`s it once the commit is
made, so a failed commit or a `kill -9` loses none: at worst a path is looked at twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo.state.fs import append_durable, atomic_write
from zoo.state.home import Home
from zoo.state.locks import lock

WRITTEN = "written.jsonl"
"""`.zoo/written.jsonl`: the files agents wrote that no commit holds yet, a JSON string
(the path relative to the home) a line."""
TAKEN = "written.taken.jsonl"
"""`.zoo/written.taken.jsonl`: those the commit under way holds; removed once it is made."""
_WRITTEN_LOCK = "written.lock"


def record(home: Home, path: str) -> None:
    """An agent wrote `path` (relative to the home) through a tool: the next commit holds
    it. Durable, and safe from any thread or process (`zoo approve` records too)."""
    state = home.state
    with lock(state / _WRITTEN_LOCK):
        if path not in _read_paths(state / WRITTEN):
            append_durable(state / WRITTEN, json.dumps(path) + "\n")


def _read_paths(file: Path) -> set[str]:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return set()
    found = set()
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line cut short by a power cut
        if isinstance(value, str):
            found.add(value)
    return found


def take(home: Home) -> set[str]:
    """Every file agents wrote that no commit holds yet. What is recorded from now on goes
    to a fresh `written.jsonl`, so `release` after the commit loses none of it."""
    state = home.state
    with lock(state / _WRITTEN_LOCK):
        fresh = _read_paths(state / WRITTEN)
        taken = _read_paths(state / TAKEN)
        if fresh:
            taken |= fresh
            lines = "".join(json.dumps(path) + "\n" for path in sorted(taken))
            atomic_write(state / TAKEN, lines)
            (state / WRITTEN).unlink()
    return taken


def release(home: Home) -> None:
    """The commit holding the taken files is made (or they had nothing to commit)."""
    (home.state / TAKEN).unlink(missing_ok=True)
