"""Crash safety, for real: `zoo run --once` killed with SIGKILL, then run again until idle."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

from tests.conftest import open_zoo
from zoo import tasks
from zoo.home import Home
from zoo.journal import verify
from zoo.router import dispatch


def _runner(home: Home) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", "--home", str(home.root), "run", "--once"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _lines(home: Home) -> int:
    try:
        with home.journal_path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def test_killed_runs_lose_no_brief_and_leave_every_file_whole(home: Home) -> None:
    zoo = open_zoo(home)
    ids = {dispatch(zoo, f"Fix bug number {i}")[0].id for i in range(30)}
    rng = random.Random(1234)
    interrupted = 0
    for _ in range(8):
        # kill when the journal has grown by a (seeded) random number of events: mid-work
        target = _lines(home) + rng.randint(1, 120)
        proc = _runner(home)
        while proc.poll() is None and _lines(home) < target:
            time.sleep(0.0005)
        interrupted += proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert interrupted >= 6
    for _ in range(5):  # then run until idle
        if _runner(home).wait(timeout=120) == 0:
            break
    done = [tasks.read(p) for p in tasks.task_files(home.workspace("done"))]
    assert sorted(t.id for t in done) == sorted(ids)  # every brief done, exactly once
    assert all(t.meta["status"] == "done" and t.meta["agent"] == "lark" for t in done)
    assert all(t.body.count("\n## lark · ") >= 1 for t in done)
    leftovers = [p for p in home.workspaces.rglob("*") if p.is_file() and p.parent.name != "done"]
    assert leftovers == []
    assert verify(home.journal_path)[1] is None


def test_zoo_run_keeps_working_until_interrupted(home: Home) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "--home", str(home.root), "run", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        task, _ = dispatch(open_zoo(home), "Write a blog post")
        deadline = time.monotonic() + 30
        while f"{task.id} lark finished: done\n" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (home.workspace("done") / task.path.name).exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert proc.returncode == 130 and proc.stderr.read() == ""
    assert seen[-1] == "zoo runner stopped\n"
    assert f"{task.id} lark finished: done\n" in seen
