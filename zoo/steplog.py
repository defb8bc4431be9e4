"""Step logs: what a step has done so far, so a step cut short is resumed, not repeated.

A step (one agent's turn on one task) is keyed by (task, step number). While it runs,
`.zoo/steps/<task>.jsonl` records, in order: each model reply as it arrives, the intent
to run each tool call, and each call's result with the task's outcome after it. The
task file itself changes only once, at the step's end, atomically; then the log goes.

After a `kill -9`, the next runner finds the log of the step it is about to run and
replays it: logged replies are not asked for again (nor paid for twice), logged tool
results are not run again. Only a call whose intent is logged but whose result is not
may have half happened; `Resumed.interrupted` names those calls, and the runner redoes
them only where that cannot repeat an effect (see runner.py).

Records are single `write()`s of one JSON line, not fsync'd: a log has to outlive its
process, not the machine (a step redone after a power cut repeats what was lost with
it). A torn last line is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.home import Home
from zoo.models.base import Reply, ToolCall, Usage


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


class StepLog:
    """The log of one running step; `resumed` holds what an earlier run of it did."""

    def __init__(self, home: Home, task_id: str, step: int, agent: str) -> None:
        folder = home.state / "steps"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{task_id}.jsonl"
        self.resumed = _load(self.path, step, agent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if not self.resumed:
            flags |= os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o644)
        if not self.resumed:
            self._write({"step": step, "agent": agent})

    def reply(self, reply: Reply) -> None:
        self._write({"reply": _reply_doc(reply)})

    def intent(self, key: str) -> None:
        self._write({"intent": key})

    def result(self, key: str, text: str, is_error: bool, outcome: Any) -> None:
        self._write({"result": key, "text": text, "is_error": is_error, "outcome": asdict(outcome)})

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(record, ensure_ascii=False).encode() + b"\n")

    def close(self, *, done: bool) -> None:
        """Stop logging; `done` (the step's result is saved) removes the log."""
        os.close(self._fd)
        if done:
            self.path.unlink(missing_ok=True)


def leftovers(home: Home) -> list[tuple[str, int, str, Path]]:
    """The step logs left by steps that never reached their end: (task, step, agent, path)."""
    folder = home.state / "steps"
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = folder / name
        try:
            with path.open("rb") as f:
                head = json.loads(f.readline())
            found.append((name.removesuffix(".jsonl"), int(head["step"]), str(head["agent"]), path))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # not even a header: the step never began
    return found


def call_key(reply_index: int, call_index: int) -> str:
    return f"{reply_index}.{call_index}"


def _load(path: Path, step: int, agent: str) -> Resumed:
    """What the log at `path` holds for this very step; empty if it is of another."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return Resumed()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            break  # a torn last line: the record never happened
    if not records or records[0] != {"step": step, "agent": agent}:
        return Resumed()  # a finished step's leftover, or the task changed hands since
    resumed = Resumed()
    for record in records[1:]:
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
    return {
        "text": reply.text,
        "calls": [[c.id, c.name, c.arguments, c.error] for c in reply.tool_calls],
        "stop": reply.stop_reason,
        "usage": [reply.usage.input_tokens, reply.usage.output_tokens],
        "model": reply.model,
        "tier": reply.tier,
    }


def _reply_of(doc: dict[str, Any]) -> Reply:
    calls = tuple(ToolCall(i, name, args, error) for i, name, args, error in doc["calls"])
    return Reply(
        text=doc["text"],
        tool_calls=calls,
        stop_reason=doc["stop"],
        usage=Usage(*doc["usage"]),
        model=doc["model"],
        tier=doc["tier"],
    )
