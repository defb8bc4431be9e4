"""What a step's writes cost in system calls, and that cutting them kept the guarantees:
the journal kept open, the front matter dumped once per change, no folder made twice,
the memory note's fsync overlapped with the task file's."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from zoo.state import fs, tasks
from zoo.state.home import Home
from zoo.state.journal import Journal, read_events, verify
from zoo.state.memory import Entry, Memory


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Iterator[list[Any]]:
    """The first argument of every call of `owner.name` while the block runs."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    yield calls
    monkeypatch.setattr(owner, name, real)


def test_the_journal_is_opened_once_for_many_writes(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(home)
    with counting(monkeypatch, os, "open") as opened:
        for i in range(50):
            journal.write("tick", n=i)
    assert [p for p in opened if str(p).endswith("events.jsonl")] == [home.journal_path]
    assert verify(home.journal_path) == (50, None)


def test_a_journal_moved_away_is_started_anew(home: Home) -> None:
    journal = Journal(home)
    for i in range(3):
        journal.write("tick", n=i)
    home.journal_path.rename(home.state / "old.jsonl")
    journal.write("tick", n=3)
    journal.write("tick", n=4)
    assert verify(home.journal_path) == (2, None)
    assert [e["n"] for e in read_events(home.journal_path)] == [3, 4]
    assert verify(home.state / "old.jsonl") == (3, None)


def _routed(home: Home) -> tasks.Task:
    task = tasks.create(home, "Fix login bug", "Users are logged out.", source="cli")
    task.meta.update(route={"by": "rules", "reason": "matched 'bug'"}, agent="beaver")
    tasks.save(task, home.workspace("dev"))
    return task


def test_a_save_dumps_only_the_front_matter_that_changed(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _routed(home)
    task.meta["steps"] = 1
    with counting(monkeypatch, yaml, "dump") as dumps:
        tasks.save(task, home.workspace("qa"))
    assert {key for d in dumps for key in d} <= {"steps", "updated"}  # what is new, if new
    assert all(len(d) == 1 for d in dumps)
    text = task.path.read_text(encoding="utf-8")
    assert "\nroute: {by: rules, reason: matched 'bug'}\nsteps: 1\n" in text
    assert tasks.read(task.path).meta["route"] == {"by": "rules", "reason": "matched 'bug'"}


def test_a_save_into_a_folder_that_exists_makes_none(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _routed(home)
    home.workspace("qa").mkdir()
    with counting(monkeypatch, os, "mkdir") as made:
        tasks.save(task, home.workspace("qa"))
    assert made == []
    tasks.save(task, home.workspace("new") / "deeper")  # a folder that does not exist yet
    assert task.path.parent == home.workspace("new") / "deeper" and task.path.exists()


def _in(thread: threading.Thread, function: str) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.001)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_a_notes_fsync_overlaps_the_step_and_the_next_durable_write_waits_for_it(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`remember` returns before MEMORY.md's fsync is done; the task file's durable write
    that follows in the same thread does not return before it is."""
    release, order = threading.Event(), []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("MEMORY.md"):
            assert release.wait(30)
            order.append("memory")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    step = threading.Thread(target=_step, args=(home, order))
    step.start()
    _until(lambda: "remembered" in order, "remember returned while its fsync waited")
    _until(lambda: _in(step, "wait_synced"), "the task file's write waits for the note")
    assert order == ["remembered"]
    release.set()
    step.join(30)
    assert order == ["remembered", "memory", "saved"]


def _step(home: Home, order: list[str]) -> None:
    Memory(home).remember(Entry("t", "beaver", "T-0001", "The login bug is fixed."), shared=True)
    order.append("remembered")
    fs.atomic_write(home.root / "task.md", "the step's result\n")
    order.append("saved")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_a_failed_fsync_of_a_note_fails_the_next_durable_write(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("MEMORY.md"):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    Memory(home).remember(Entry("t", "beaver", "T-0001", "A note."), shared=True)
    with pytest.raises(OSError, match="Input/output error"):
        fs.atomic_write(home.root / "task.md", "the step's result\n")
    fs.atomic_write(home.root / "task.md", "the next one\n")  # reported once
