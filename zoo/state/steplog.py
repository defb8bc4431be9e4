"""Step logs: what a step has done so far, so a step cut short is resumed, not repeated.

A step (one agent's turn on one task) is keyed by (task, step number). While it runs,
its log records, in order: each model reply as it arrives, the intent to run each tool
call, and each call's result with the task's outcome after it. The task file itself
changes only once, at the step's end, atomically; then the log is emptied.

A runner keeps one log file per worker thread in `.zoo/steps/`, emptied and reused from
step to step (creating and removing a file per step would cost more than the rest of
the log). After a `kill -9`, the next runner finds the logs the dead one left, and
replays the one of a step it is about to run: logged replies are not asked for again
(nor paid for twice), logged tool results are not run again. Only a call whose intent
is logged but whose result is not may have half happened; `Resumed.interrupted` names
those calls, and the runner redoes them only where that cannot repeat an effect (see
turn.py).

Records are single `write()`s of one JSON line, not fsync'd: a log has to outlive its
process, not the machine (a step redone after a power cut repeats what was lost with
it). A torn last line is ignored.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.models.base import Reply, ToolCall, Usage
from zoo.state.home import Home


@dataclass
class Logged:
    """One tool call's result as the model heard it, and the task's outcome after it."""

    text: str
    is_error: bool
    outcome: dict[str, Any]


@dataclass
class Resumed:
    """What an interrupted step had done: replies and results to replay."""

    replies: list[Reply] = field(default_factory=list)
    results: dict[str, Logged] = field(default_factory=dict)
    """By call key (`<reply>.<call>`)."""
    interrupted: set[str] = field(default_factory=set)
    """Calls that started and never logged a result."""

    def __bool__(self) -> bool:
        return bool(self.replies)


@dataclass
class Leftover:
    """A log a dead runner left: the step it was in, and its records."""

    task: str
    step: int
    agent: str
    lines: list[bytes]
    path: Path

    @property
    def committed(self) -> list[tuple[str, dict[str, Any]]] | None:
        """The events the step was saving with its result, if it got that far."""
        for line in reversed(self.lines):
            record = json.loads(line)
            if "commit" in record:
                return [(kind, fields) for kind, fields in record["commit"]]
        return None


class StepLogs:
    """A runner's step logs: a reusable file per worker thread, and the dead ones' logs."""

    def __init__(self, home: Home) -> None:
        self.folder = home.state / "steps"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.left: dict[str, Leftover] = _leftovers(self.folder)
        """By task: logs left by runners that died mid-step."""
        self._slots: dict[int, tuple[int, Path]] = {}
        self._lock = threading.Lock()
        self._name = f"runner-{os.getpid()}-{os.urandom(3).hex()}"
        """Of this runner's files (a pid alone may be a dead runner's too, reused)."""

    def open(self, task_id: str, step: int, agent: str) -> StepLog:
        """The log of this step, holding what an interrupted run of it did."""
        with self._lock:
            left = self.left.pop(task_id, None)
            fd, path = self._slot()
        os.ftruncate(fd, 0)
        lines: list[bytes] = []
        if left is not None and (left.step, left.agent) == (step, agent):
            lines = left.lines  # carried over, so a second crash still finds them
        head = json.dumps({"task": task_id, "step": step, "agent": agent}).encode()
        os.write(fd, b"\n".join([head, *lines]) + b"\n")
        if left is not None:
            left.path.unlink(missing_ok=True)
        return StepLog(self, fd, path, _replay(lines))

    def drop(self, task_id: str) -> None:
        """Forget a dead runner's log that no step will resume."""
        with self._lock:
            left = self.left.pop(task_id, None)
        if left is not None:
            left.path.unlink(missing_ok=True)

    def _slot(self) -> tuple[int, Path]:
        key = threading.get_ident()
        if key not in self._slots:
            path = self.folder / f"{self._name}-{len(self._slots) + 1}.jsonl"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._slots[key] = (os.open(path, flags, 0o644), path)
        return self._slots[key]

    def _abandon(self, fd: int) -> None:
        """Keep a slot's records for the next runner: this thread gets a new file."""
        with self._lock:
            for key, (slot, _path) in list(self._slots.items()):
                if slot == fd:
                    del self._slots[key]
        os.close(fd)

    def close(self) -> None:
        """Remove the (empty) slot files; logs of unfinished steps stay for the next run."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for fd, path in slots:
            if os.fstat(fd).st_size == 0:
                path.unlink(missing_ok=True)
            os.close(fd)


class StepLog:
    """The log of one running step; `resumed` holds what an earlier run of it did."""

    def __init__(self, logs: StepLogs, fd: int, path: Path, resumed: Resumed) -> None:
        self._logs = logs
        self._fd = fd
        self.path = path
        self.resumed = resumed

    def reply(self, reply: Reply) -> None:
        self._write({"reply": _reply_doc(reply)})

    def intent(self, key: str) -> None:
        self._write({"intent": key})

    def result(self, key: str, text: str, is_error: bool, outcome: Any) -> None:
        self._write({"result": key, "text": text, "is_error": is_error, "outcome": asdict(outcome)})

    def commit(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """The step's result is about to be saved with these events: should the runner
        die between the save and the journal write, the next one writes them."""
        self._write({"commit": [[kind, fields] for kind, fields in events]})

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(record, ensure_ascii=False).encode() + b"\n")

    def close(self, *, done: bool) -> None:
        """`done`: the step's result is saved, so the log is emptied for the next step;
        else it is kept as it is, for a later run to resume."""
        if done:
            os.ftruncate(self._fd, 0)
        else:
            self._logs._abandon(self._fd)


def call_key(reply_index: int, call_index: int) -> str:
    return f"{reply_index}.{call_index}"


def _leftovers(folder: Path) -> dict[str, Leftover]:
    """The logs in `folder` of steps that never reached their end, by task."""
    found: dict[str, Leftover] = {}
    for path in sorted(folder.iterdir()):
        try:
            lines = _records(path.read_bytes())
            head = json.loads(lines[0])
            left = Leftover(head["task"], int(head["step"]), str(head["agent"]), lines[1:], path)
        except (OSError, IndexError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # empty, or not even a header: no step began
            continue
        found[left.task] = left
    return found


def _records(data: bytes) -> list[bytes]:
    """The whole JSON lines of a log; a torn last line never happened."""
    lines = []
    for line in data.splitlines():
        try:
            json.loads(line)
        except ValueError:
            break
        lines.append(line)
    return lines


def _replay(lines: list[bytes]) -> Resumed:
    resumed = Resumed()
    for line in lines:
        record = json.loads(line)
        if "reply" in record:
            resumed.replies.append(_reply_of(record["reply"]))
        elif "intent" in record:
            resumed.interrupted.add(record["intent"])
        elif "result" in record:
            key = record["result"]
            resumed.interrupted.discard(key)
            resumed.results[key] = Logged(record["text"], record["is_error"], record["outcome"])
    return resumed


def _reply_doc(reply: Reply) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "text": reply.text,
        "calls": [[c.id, c.name, c.arguments, c.error, *([True] if c.written else [])]
                  for c in reply.tool_calls],
        "stop": reply.stop_reason,
        "usage": [reply.usage.input_tokens, reply.usage.output_tokens],
        "model": reply.model,
        "tier": reply.tier,
    }  # fmt: skip
    if reply.written is not None:
        doc["written"] = reply.written
    if reply.usage_estimated:
        doc["estimated"] = True
    return doc


def _reply_of(doc: dict[str, Any]) -> Reply:
    calls = tuple(ToolCall(i, name, args, error, *written)
                  for i, name, args, error, *written in doc["calls"])  # fmt: skip
    return Reply(
        text=doc["text"],
        tool_calls=calls,
        stop_reason=doc["stop"],
        usage=Usage(*doc["usage"]),
        model=doc["model"],
        tier=doc["tier"],
        written=doc.get("written"),
        usage_estimated=bool(doc.get("estimated")),
    )
