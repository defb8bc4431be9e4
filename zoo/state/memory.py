"""Memory: the central MEMORY.md every agent reads, and each agent's own notes.

An entry is a `## <time> · <agent> · <task>` heading and the note below it, appended
in one durable write under the file's lock (threads and processes alike), so two
writers never interleave and a crash never leaves half an entry. Agents read the part
of MEMORY.md that bears on their task. Memory files are opened without following
links: they load only from inside the home.
"""

from __future__ import annotations

import heapq
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from zoo.secrets import redact
from zoo.state.files import open_in_home
from zoo.state.fs import sync_soon, write_all
from zoo.state.home import Home
from zoo.state.locks import lock as file_lock

HEADING = re.compile(r"^## (\S+) · ([\w-]+) · (\S+)(?: · step (\d+))?[ \t]*$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset(
    "the and for with that this from are was were you your our have has not but all any can "
    "into out about what when who how its it's will would should could them they their there "
    "then than also just more most some such only one two".split()
)


@dataclass(frozen=True)
class Entry:
    """One attributed note."""

    time: str
    agent: str
    task: str
    text: str
    step: int | None = None
    """The task's step that kept the note: with the task, the note's key."""

    def render(self) -> str:
        step = f" · step {self.step}" if self.step is not None else ""
        return redact(f"## {self.time} · {self.agent} · {self.task}{step}\n{self.text.strip()}\n")


def _same_note(kept: Entry, new: Entry) -> bool:
    return (kept.task, kept.step, kept.agent) == (new.task, new.step, new.agent) and (
        kept.text == redact(new.text.strip())
    )


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def parse(text: str) -> list[Entry]:
    found = list(HEADING.finditer(text))
    entries = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        note = text[match.end() : end].strip()
        step = int(match.group(4)) if match.group(4) else None
        entries.append(Entry(match.group(1), match.group(2), match.group(3), note, step))
    return entries


def append(root: Path, rel: str, entry: Entry, title: str, lock: Path) -> None:
    """Append `entry` to `root/rel` under the file lock `lock`, fsynced by a helper
    thread: it is on disk before this thread's next durable write (a step's task file)
    returns, or the process exits (`fs.sync_soon`).

    A new file starts with `# title`. The file is opened without following links, so a
    memory file that is a link out of the home is refused (`ConfinementError`).
    """
    with file_lock(lock):
        fd = open_in_home(root, rel, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                prefix = f"# {title}\n"
            else:
                prefix = "" if os.pread(fd, 1, size - 1) == b"\n" else "\n"
            write_all(fd, f"{prefix}\n{entry.render()}".encode())
        except BaseException:
            os.close(fd)
            raise
    sync_soon(fd)  # outside the lock, and overlapped with the rest of the step


@dataclass
class _Parsed:
    """One memory file's entries and a word index, as of `size` bytes of inode `ino`."""

    ino: int
    size: int
    tail: bytes
    entries: list[Entry]
    index: dict[str, list[int]]

    def add(self, entries: list[Entry]) -> None:
        for entry in entries:
            for word in words(entry.text):
                self.index.setdefault(word, []).append(len(self.entries))
            self.entries.append(entry)


class Memory:
    """One home's memory files, each parsed once and then read on as it grows.

    Memory files are append-only in practice, so when a file has only grown the new
    bytes are parsed and added; any other change (a person's edit) parses it anew.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self._cache: dict[Path, _Parsed] = {}
        self._guard = threading.Lock()

    def remember(self, entry: Entry, shared: bool, *, once: bool = False) -> Path:
        """Append `entry`; with `once`, not if this step of the task already kept it."""
        path = self.home.memory_path if shared else self.home.agent_memory(entry.agent)
        if once and any(_same_note(e, entry) for e in self.entries(path)):
            return path
        title = "MEMORY" if shared else f"{entry.agent} · memory"
        rel = self.home.relative(path)
        append(self.home.root, rel, entry, title, self.home.state / f"{path.name}.lock")
        return path

    def entries(self, path: Path) -> list[Entry]:
        parsed = self._parsed(path)
        with self._guard:
            return list(parsed.entries)

    def _parsed(self, path: Path) -> _Parsed:
        with self._guard:
            try:
                fd = open_in_home(self.home.root, self.home.relative(path))
            except FileNotFoundError:
                return _Parsed(0, 0, b"", [], {})
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                hit = self._cache.get(path)
                if hit is not None and hit.ino == st.st_ino and hit.size == st.st_size:
                    return hit
                if hit is not None and hit.ino == st.st_ino and hit.size < st.st_size:
                    f.seek(max(0, hit.size - len(hit.tail)))
                    data = f.read(st.st_size - hit.size + len(hit.tail))
                    if _grow(hit, data):
                        return hit
                f.seek(0)
                data = f.read(st.st_size)
            parsed = _Parsed(st.st_ino, len(data), data[-64:], [], {})
            parsed.add(parse(data.decode("utf-8", errors="replace")))
            self._cache[path] = parsed
            return parsed

    def relevant(self, text: str, limit: int = 8, budget_chars: int = 4000) -> list[Entry]:
        """The MEMORY.md entries that share the most words with `text`, newest first on ties.

        Entries sharing no word are left out, except the newest two, which give context.
        """
        parsed = self._parsed(self.home.memory_path)
        with self._guard:
            entries = list(parsed.entries)
            count = len(entries)
            overlap: dict[int, int] = dict.fromkeys(range(max(0, count - 2), count), 0)
            common = max(20, count // 4)  # a word in most entries tells none apart
            for word in words(text):
                postings = parsed.index.get(word, ())
                if len(postings) <= common:
                    for i in postings:
                        overlap[i] = overlap.get(i, 0) + 1
        best = heapq.nsmallest(limit, overlap, key=lambda i: (-overlap[i], -i))
        picked: list[Entry] = []
        used = 0
        for i in best:
            entry = entries[i]
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


def _grow(parsed: _Parsed, data: bytes) -> bool:
    """Add the entries appended after `parsed`; False if the file changed otherwise."""
    if not data.startswith(parsed.tail):
        return False
    added = data[len(parsed.tail) :].decode("utf-8", errors="replace")
    first = HEADING.search(added)
    if first is None or added[: first.start()].strip():
        return False  # text outside an entry: parse the whole file
    parsed.size += len(data) - len(parsed.tail)
    parsed.tail = data[-64:]
    parsed.add(parse(added))
    return True


def search(entries: list[Entry], query: str) -> list[Entry]:
    """Entries matching every word of `query` (case-insensitive), in file order."""
    terms = [t.lower() for t in query.split()]
    hay = [(e, f"{e.agent} {e.task} {e.text}".lower()) for e in entries]
    return [e for e, text in hay if all(t in text for t in terms)]
