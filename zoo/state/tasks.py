"""Task files: YAML front matter + a markdown body, one file per task (DESIGN §3).

The folder a task file is in says who has it; the front matter says its state; the body
is the brief and every agent's section. Files are rewritten atomically and keep their
name (`<id>-<slug>.md`) as they move between workspace folders. A person may edit one
by hand: change `agent:` or move it to another folder, and the runner follows.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import NotFound, TaskFileError
from zoo.secrets import redact, redact_all
from zoo.state.fs import TMP_SUFFIX, atomic_move, atomic_write, create_exclusive
from zoo.state.home import DONE, ESCALATIONS, INBOX, Home
from zoo.state.locks import lock

STATUSES = ("queued", "working", "waiting-approval", "done", "escalated")
FIELDS = (
    "id", "title", "status", "agent", "workspace", "created", "updated", "source",
    "route", "steps", "handoffs", "tokens", "approval", "escalation",
)  # fmt: skip
"""Front matter keys in the order Zoo writes them; keys a person adds are kept after them."""
_SLUG_CHAR = r"[^\s/\\\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
TASK_NAME = re.compile(rf"^(T-\d{{4,}})(?:-{_SLUG_CHAR}*)?\.md$")
"""`<id>-<slug>.md`; a slug keeps the letters of any script (`T-0042-ログイン.md`)."""
TASK_ID = re.compile(r"^T-\d{4,}$")
CLOSED = (ESCALATIONS, DONE)
"""The folders of finished tasks, never due: escalated (for a person), done."""
ID_COUNTER = "last-id"
"""`.zoo/last-id`: the last task number handed out (see `count_on`)."""
_TIMESTAMP = re.compile(r"^(\w+): '(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)'$", re.MULTILINE)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Task:
    """One task file as read from disk."""

    path: Path
    meta: dict[str, Any]
    body: str
    mtime_ns: int = field(default=0, compare=False)
    base: Snapshot | None = field(default=None, compare=False, repr=False)
    """The file as Zoo last read or wrote it: a person's edit since is told apart from it."""

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or self.id)

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "queued"))

    @property
    def agent(self) -> str | None:
        agent = self.meta.get("agent")
        return str(agent) if agent else None

    @property
    def folder(self) -> str:
        """The workspace folder the file is in: who has it."""
        return self.path.parent.name

    @property
    def steps(self) -> int:
        return int(self.meta.get("steps") or 0)

    def render(self) -> str:
        """The file's text. No key is ever written to a task file: the values are redacted
        before they are dumped, so YAML quotes what the redaction leaves (`[redacted] ...`)."""
        meta = _clean(self.meta)
        ordered = {k: meta[k] for k in FIELDS if meta.get(k) is not None}
        ordered.update({k: v for k, v in meta.items() if k not in ordered})
        front = _TIMESTAMP.sub(r"\1: \2", _dump_front(ordered))
        body = _clean(self.body if self.body.endswith("\n") else self.body + "\n")
        return f"---\n{front}---\n{body}"

    def append_section(self, heading: str, text: str) -> None:
        self.body = self.body.rstrip("\n") + f"\n\n## {heading}\n\n{text.strip()}\n"


@dataclass(frozen=True)
class Snapshot:
    """A task file as Zoo last read or wrote it."""

    signature: tuple[int, int, int]
    """(inode, size, mtime): any write since, in place or by rename, changes it."""
    meta: dict[str, Any]
    body: str


FLOW = frozenset({"id", "status", "agent", "workspace", "created", "updated", "route", "steps",
                  "handoffs", "tokens", "approval", "escalation"})  # fmt: skip
"""Front matter that says where the task is in its flow: a save sets these itself."""


@dataclass(frozen=True)
class HandEdit:
    """A person's edit of a task file made while Zoo worked on it, kept by the save."""

    kept: tuple[str, ...]
    """Front matter keys whose edit was kept."""
    overridden: tuple[str, ...]
    """Flow keys the person changed and the save set anyway (the step decides the flow)."""
    body: bool
    """The person edited the body; what Zoo appended follows their text."""
    moved_from: str | None = None
    """The folder the person moved the file to, which the save moved it from."""
    problem: str | None = None
    """Why the edit could not be kept (it did not parse); the save's version stands."""

    def fields(self) -> dict[str, Any]:
        return {"kept": list(self.kept) or None, "overridden": list(self.overridden) or None,
                "body": self.body or None, "moved_from": self.moved_from,
                "problem": self.problem}  # fmt: skip


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _snapshot(task: Task, st: os.stat_result) -> None:
    task.mtime_ns = st.st_mtime_ns
    task.base = Snapshot(_signature(st), copy.deepcopy(task.meta), task.body)


def _clean(value: Any) -> Any:
    """`value` as Zoo writes it: every secret redacted (keys too), no NUL character."""
    if isinstance(value, str):
        return redact(value).replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return redact_all(value)


def _dump_front(meta: dict[str, Any]) -> str:
    """Block style at the top, flow style for nested values (`route: {by: rules, ...}`).

    Each key is dumped on its own (a block mapping's entries do not depend on each
    other), and what a key and value dump to is remembered: most of a task's front
    matter is the same from save to save, and YAML's emitter is slow."""
    return "".join(_entry(key, value) for key, value in meta.items())


_NESTED: dict[tuple[str, str], str] = {}
"""What nested values dumped to, by key and the value's repr."""


def _entry(key: str, value: Any) -> str:
    if not _plain_data(value):
        return _dump({key: value}, flow=None)
    if isinstance(value, dict | list):
        shown = (key, repr(value))  # a repr tells 1 from True and "1"
        found = _NESTED.get(shown)
        if found is None:
            if len(_NESTED) >= 1024:
                _NESTED.clear()
            found = _NESTED[shown] = _dump({key: value}, flow=None)
        return found
    return _scalar_entry(key, value)


@functools.lru_cache(maxsize=4096, typed=True)
def _scalar_entry(key: str, value: str | int | float | bool | None) -> str:
    return _dump({key: value}, flow=False)


def _plain_data(value: Any) -> bool:
    """Only str, int, float, bool and None inside: what a repr tells apart exactly."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_data(v) for v in value)
    return value is None or isinstance(value, str | int | float)


def _dump(data: dict[str, Any], flow: bool | None) -> str:
    return yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, default_flow_style=flow,
        allow_unicode=True, width=100_000,
    )  # fmt: skip


_FOLDS = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th"}


def slugify(title: str, limit: int = 48) -> str:
    """`title` as the name part of a task file: lower-case words joined by `-`, at most
    `limit` bytes. Latin letters lose their accents (`über café` -> `uber-cafe`), other
    scripts keep theirs; nothing else (no `/`, no control character) gets in. It is made
    of the redacted title, and never spells anything `redact` would take out."""
    slug = _slug(redact(title), limit)
    for _ in range(3):  # words that join into something shaped like a key
        if redact(slug) == slug:
            return slug or "task"
        slug = _slug(redact(slug), limit)
    return "task"


def _slug(text: str, limit: int) -> str:
    slug = ""
    for word in _words(text):
        joined = f"{slug}-{word}" if slug else word
        if len(joined.encode("utf-8")) > limit:
            if not slug:  # one long word (a script without spaces): cut it
                slug = word.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
            break
        slug = joined
    return slug


def _words(text: str) -> list[str]:
    """The words of `text` (letters, marks and digits of any script), folded."""
    words: list[str] = []
    word: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        for c in _fold(char):
            if unicodedata.category(c)[0] in "LMN":
                word.append(c)
            elif word:
                words.append("".join(word))
                word = []
    if word:
        words.append("".join(word))
    return words


def _fold(char: str) -> str:
    """A Latin letter without its accent (`é` -> `e`, `Ａ` -> `a`); other letters lower-cased."""
    if char.isascii():
        return char.lower()
    parts = unicodedata.normalize("NFKD", char)
    if parts[0].isascii():
        return "".join(p for p in parts if p.isascii()).lower()
    low = char.lower()
    return _FOLDS.get(low, low)


def from_brief(meta: dict[str, Any], body: str, fallback: str) -> tuple[str, dict[str, Any]]:
    """(title, a person's own keys) of a brief written as a file, dropped in the inbox or
    given to `zoo dispatch --file`: the title from its front matter, else its first heading
    or line; the keys that are not Zoo's own are kept (Zoo's own it sets itself)."""
    title = meta.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else ""
    return title or title_of(body, fallback), {k: v for k, v in meta.items() if k not in FIELDS}


def title_of(body: str, fallback: str) -> str:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
        if line.strip():
            text = line.strip()
            return text if len(text) <= 72 else text[:69].rstrip() + "..."
    return fallback


def parse(path: Path, text: str, *, strict_id: bool = True) -> tuple[dict[str, Any], str]:
    """(front matter, body); a file without front matter has an empty one.

    `strict_id=False` (a brief in the inbox, `zoo dispatch --file`): an `id:` that is not
    an id is no error; the brief gets a fresh one."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---\n") and not text.startswith("---\r\n"):
        return {}, text
    end = re.search(r"^---[ \t]*\r?$\n?", text[4:], re.MULTILINE)
    if end is None:
        raise TaskFileError(path, 1, None, "front matter is not closed (no second '---' line)")
    front = text[4 : 4 + end.start()]
    body = text[4 + end.end() :]
    try:
        meta = yaml.load(front, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        raise TaskFileError(path, line, None, f"invalid YAML: {getattr(e, 'problem', e)}") from None
    if meta is None:
        return {}, body
    if not isinstance(meta, dict):
        raise TaskFileError(path, 2, None, "front matter must be a mapping of keys")
    meta = {str(k): _plain(v) for k, v in meta.items()}
    _check_meta(path, meta, front, strict_id)
    return meta, body


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _check_meta(path: Path, meta: dict[str, Any], front: str, strict_id: bool) -> None:
    def fail(key: str, problem: str) -> None:
        match = re.search(rf"^{re.escape(key)}\s*:", front, re.MULTILINE)
        line = front.count("\n", 0, match.start()) + 2 if match else 2
        raise TaskFileError(path, line, key, problem)

    if strict_id and "id" in meta and not is_id(meta["id"]):
        fail("id", f"expected an id like T-0042, got {meta['id']!r}")
    for key, value in meta.items():
        if _has_nul(value):
            fail(key, "not text: a NUL character (remove it)")
    if "status" in meta and meta["status"] not in STATUSES:
        fail("status", f"expected one of {', '.join(STATUSES)}, got {meta['status']!r}")
    for key in ("agent", "title", "workspace"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            fail(key, f"expected text, got {meta[key]!r}")
    for key in ("steps", "handoffs"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            fail(key, f"expected a whole number, got {value!r}")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def read(path: Path) -> Task:
    try:
        with path.open("rb") as f:
            raw = f.read()
            st = os.fstat(f.fileno())
            mtime, signature = st.st_mtime_ns, _signature(st)
    except FileNotFoundError:
        raise NotFound(f"task file {path} has gone (moved while Zoo read it?)") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise TaskFileError(path, line, None, f"not text: a NUL byte (byte {nul})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaskFileError(path, None, None, f"not UTF-8 text (byte {e.start})") from None
    inbox = path.parent.name == INBOX
    meta, body = parse(path, text, strict_id=not inbox)
    if "id" not in meta and not inbox:
        raise TaskFileError(path, 1, "id", "missing: a task file needs an id in its front matter")
    task = Task(path, meta, body, mtime)
    task.base = Snapshot(signature, copy.deepcopy(meta), body)
    return task


def is_id(value: Any) -> bool:
    return isinstance(value, str) and TASK_ID.match(value) is not None


def keeps_id(home: Home, task: Task) -> bool:
    """Whether a task file in the inbox keeps the id of its front matter: it must be an id,
    the file named for it (`T-0042-...md`, as Zoo names them) and no other task file have
    it. An id Zoo has not handed out yet (a person named the file) is taken from the counter.
    Else the brief gets a fresh id: two tasks never share one."""
    task_id = task.meta.get("id")
    named = TASK_NAME.match(task.path.name)
    if not is_id(task_id) or named is None or named.group(1) != task_id:
        return False
    for folder in task_folders(home):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:  # `startswith` first: done/ may hold thousands
            if name.startswith(task_id) and name != task.path.name and id_of(name) == task_id:
                return False
    _claim(home, int(task_id[2:]))
    return True


def id_of(name: str) -> str | None:
    """The task id a file name says (`T-0042-fix-login.md` -> `T-0042`)."""
    match = TASK_NAME.match(name)
    return match.group(1) if match else None


def _claim(home: Home, number: int) -> None:
    """Make sure the counter never hands out `number` again."""
    count_on(home, ID_COUNTER, lambda: _highest_id(home), claim=number)


def save(task: Task, folder: Path | None = None) -> HandEdit | None:
    """Write the task atomically, into `folder` when it moves; `task.path` follows.

    A person may have edited the file since Zoo read it (while a step ran): their edit
    is kept (`keep_hand_edit`) and returned, for the journal.
    """
    edit = keep_hand_edit(task)
    target = task.path if folder is None else folder / task.path.name
    task.meta["updated"] = utc_now()
    if target != task.path:
        st = atomic_move(task.path, target, task.render())
        task.path = target
    else:
        st = atomic_write(target, task.render())
    _snapshot(task, st)
    return edit


def keep_hand_edit(task: Task) -> HandEdit | None:
    """Fold into `task` what a person changed in its file since Zoo last read or wrote it.

    Their body is kept with what Zoo appended after it, and their front matter edits are
    kept, but for the flow keys (`FLOW`), which the save sets. A file the person moved to
    another folder is found there and moved on from it. None when nobody touched it.
    """
    base = task.base
    if base is None:
        return None
    path: Path | None = task.path
    moved_from: str | None = None
    try:
        unchanged = _signature(os.stat(task.path)) == base.signature
    except FileNotFoundError:  # moved by a person?
        unchanged = False
        path, moved_from = _current_path(task)
    if unchanged or path is None:
        return None
    try:
        now = read(path)
    except NotFound:
        return None
    except TaskFileError as e:
        return HandEdit((), (), False, problem=e.problem)
    task.path = path
    kept, overridden = [], []
    for key in sorted(set(base.meta) | set(now.meta)):
        if now.meta.get(key) == base.meta.get(key):
            continue
        if key in FLOW:
            if key != "workspace" and task.meta.get(key) != now.meta.get(key):
                overridden.append(key)
        elif key in now.meta:
            task.meta[key] = now.meta[key]
            kept.append(key)
        else:
            task.meta.pop(key, None)
            kept.append(key)
    head = base.body.rstrip("\n")
    edited = now.body != base.body and task.body.startswith(head)
    if edited:
        task.body = now.body.rstrip("\n") + task.body[len(head) :]
    if not (kept or overridden or edited or moved_from):
        return None
    return HandEdit(tuple(kept), tuple(overridden), edited, moved_from)


def _current_path(task: Task) -> tuple[Path | None, str | None]:
    """Where the task's file is now: where Zoo left it, or the folder a person moved it to."""
    if task.path.exists():
        return task.path, None
    try:
        folders = os.listdir(task.path.parent.parent)
    except FileNotFoundError:
        return None, None
    for name in sorted(folders):
        other = task.path.parent.parent / name / task.path.name
        if other.exists():
            return other, name
    return None, None


def task_files(folder: Path) -> Iterator[Path]:
    """Task-looking files of a folder (`T-0042-...md`), skipping temporary files."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(names):
        if TASK_NAME.match(name) and not name.endswith(TMP_SUFFIX):
            yield folder / name


def count(folder: Path) -> int:
    """How many task files a folder holds (cheap: `zoo status` counts done/ this way)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if TASK_NAME.match(e.name))
    except FileNotFoundError:
        return 0


def briefs(inbox: Path) -> Iterator[Path]:
    """Every markdown file in the inbox, task-named or dropped there by a person."""
    try:
        names = os.listdir(inbox)
    except FileNotFoundError:
        return
    for name in sorted(names):
        if name.endswith(".md") and not name.startswith("."):
            yield inbox / name


def active_folders(home: Home) -> list[Path]:
    """Workspace folders that may hold work due: all but done/ and escalations/."""
    try:
        entries = sorted(os.scandir(home.workspaces), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [
        Path(e.path)
        for e in entries
        if e.is_dir() and e.name not in CLOSED and not e.name.startswith(".")
    ]


def task_folders(home: Home) -> list[Path]:
    """Every folder a task file can be in: the active ones, then escalations/, then done/
    (last: it may hold thousands, and a search stops at the first folder holding the id)."""
    return [*active_folders(home), *(home.workspace(name) for name in CLOSED)]


def find(home: Home, task_id: str) -> Task:
    """The task with this id, wherever it is; `NotFound` names the id."""
    wanted = task_id.strip().upper()
    if re.fullmatch(r"\d+", wanted):
        wanted = f"T-{int(wanted):04d}"
    if not TASK_ID.match(wanted):
        raise NotFound(f"no task {task_id!r}: ids look like T-0042")
    for folder in task_folders(home):
        for path in task_files(folder):
            match = TASK_NAME.match(path.name)
            if match and match.group(1) == wanted:
                return read(path)
    raise NotFound(f"no task {wanted} in {home.relative(home.workspaces)}/")


def allocate_id(home: Home) -> str:
    """The next free task id; unique even when several processes dispatch at once."""
    return f"T-{count_on(home, ID_COUNTER, lambda: _highest_id(home)):04d}"


def count_on(
    home: Home, counter: str, in_use: Callable[[], int], *, claim: int | None = None
) -> int:
    """The next number of the counter `.zoo/<counter>`, written there under the ids lock
    before it is returned, so no two callers (threads or processes) get the same one. With
    `claim`, the counter only moves up to `claim` (never down): it never hands that number
    out. A lost or unreadable counter goes on from `in_use()`, the highest number in use."""
    state = home.ensure_state()
    path = state / counter
    with lock(state / "ids.lock"):
        try:
            last = int(path.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            last = in_use()
        number = last + 1 if claim is None else max(last, claim)
        if number != last:
            atomic_write(path, f"{number}\n")
    return number


def _highest_id(home: Home) -> int:
    """The highest id in use in any folder: the counter's value when `.zoo/` was lost."""
    highest = 0
    for folder in task_folders(home):
        for path in task_files(folder):
            match = TASK_NAME.match(path.name)
            if match:
                highest = max(highest, int(match.group(1)[2:]))
    return highest


def create(
    home: Home,
    title: str,
    body: str,
    *,
    source: str,
    extra: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> Task:
    """A new task in the inbox, queued for the router (its title and brief redacted)."""
    title, body = _clean(title), _clean(body)
    inbox = home.workspace(INBOX)
    inbox.mkdir(parents=True, exist_ok=True)
    task_id = task_id or allocate_id(home)
    now = utc_now()
    meta: dict[str, Any] = {
        "id": task_id, "title": title, "status": "queued", "workspace": INBOX,
        "created": now, "source": source, "steps": 0,
    }  # fmt: skip
    meta.update(extra or {})
    if body.lstrip().startswith("# "):
        text = body
    elif body.strip() == title:
        text = f"# {title}\n"
    else:
        text = f"# {title}\n\n{body.strip()}\n"
    task = Task(inbox / f"{task_id}-{slugify(title)}.md", meta, text)
    task.meta["updated"] = now
    if not create_exclusive(task.path, task.render()):
        raise FileExistsError(task.path)
    _snapshot(task, os.stat(task.path))
    return task
