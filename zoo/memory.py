"""Memory: the central MEMORY.md every agent reads, and each agent's own notes.

An entry is a `## <time> · <agent> · <task>` heading and the note below it, appended
in one durable write under a lock, so two writers never interleave and a crash never
leaves half an entry. Agents read the part of MEMORY.md that bears on their task.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from zoo.fs import append_durable
from zoo.home import Home

HEADING = re.compile(r"^## (\S+) · ([\w-]+) · (\S+)[ \t]*$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset(
    "the and for with that this from are was were you your our have has not but all any can "
    "into out about what when who how its it's will would should could them they their there "
    "then than also just more most some such only one two".split()
)
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One attributed note."""

    time: str
    agent: str
    task: str
    text: str

    def render(self) -> str:
        return f"## {self.time} · {self.agent} · {self.task}\n{self.text.strip()}\n"


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def parse(text: str) -> list[Entry]:
    found = list(HEADING.finditer(text))
    entries = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        note = text[match.end() : end].strip()
        entries.append(Entry(match.group(1), match.group(2), match.group(3), note))
    return entries


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def append(path: Path, entry: Entry, title: str, lock: Path) -> None:
    """Append `entry` durably under the file lock `lock`; a new file starts with `# title`."""
    from filelock import FileLock

    with _lock_for(path), FileLock(lock):
        try:
            with path.open("rb") as f:
                f.seek(-1, 2)
                prefix = "" if f.read(1) == b"\n" else "\n"
        except FileNotFoundError:
            prefix = f"# {title}\n"
        except OSError:  # empty file: seek before its start
            prefix = ""
        append_durable(path, f"{prefix}\n{entry.render()}")


class Memory:
    """One home's memory files, with MEMORY.md parsed once per change."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._cache: dict[Path, tuple[tuple[int, int], list[Entry]]] = {}
        self._guard = threading.Lock()

    def remember(self, entry: Entry, shared: bool) -> Path:
        path = self.home.memory_path if shared else self.home.agent_memory(entry.agent)
        title = "MEMORY" if shared else f"{entry.agent} · memory"
        append(path, entry, title, self.home.ensure_state() / f"{path.name}.lock")
        return path

    def entries(self, path: Path) -> list[Entry]:
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        key = (st.st_mtime_ns, st.st_size)
        with self._guard:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == key:
                return hit[1]
        parsed = parse(path.read_text(encoding="utf-8"))
        with self._guard:
            self._cache[path] = (key, parsed)
        return parsed

    def relevant(self, text: str, limit: int = 8, budget_chars: int = 4000) -> list[Entry]:
        """The MEMORY.md entries that share the most words with `text`, newest first on ties.

        Entries sharing no word are left out, except the newest few, which give context.
        """
        entries = self.entries(self.home.memory_path)
        wanted = words(text)
        scored = []
        for age, entry in enumerate(reversed(entries)):
            overlap = len(wanted & words(entry.text))
            if overlap or age < 2:
                scored.append((-overlap, age, entry))
        picked: list[Entry] = []
        used = 0
        for _, _, entry in sorted(scored, key=lambda s: (s[0], s[1])):
            if len(picked) >= limit or used + len(entry.text) > budget_chars:
                break
            picked.append(entry)
            used += len(entry.text)
        return picked

    def own(self, agent: str, budget_chars: int = 4000) -> list[Entry]:
        """The agent's own notes, the newest that fit in the budget, oldest first."""
        picked: list[Entry] = []
        used = 0
        for entry in reversed(self.entries(self.home.agent_memory(agent))):
            if used + len(entry.text) > budget_chars:
                break
            picked.append(entry)
            used += len(entry.text)
        return picked[::-1]


def search(entries: list[Entry], query: str) -> list[Entry]:
    """Entries matching every word of `query` (case-insensitive), in file order."""
    terms = [t.lower() for t in query.split()]
    hay = [(e, f"{e.agent} {e.task} {e.text}".lower()) for e in entries]
    return [e for e, text in hay if all(t in text for t in terms)]
