"""Zoo's file lock (zoo/state/locks.py), with real threads, processes and kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zoo.state import locks
from zoo.state.home import Home
from zoo.state.journal import Journal

# Each process adds 1 to the counter file 100 times from each of 3 threads, under the lock:
# an increment lost to two holders at once shows as a total short of 100 x threads x procs.
_COUNTER = """\
import sys, threading
from pathlib import Path
from zoo.state.locks import lock
path, lock_path = Path(sys.argv[1]), Path(sys.argv[2])
def work():
    for _ in range(100):
        with lock(lock_path):
            value = int(path.read_text() or 0)
            path.write_text(str(value + 1))
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
"""

_HOLDER = """\
import sys, time
from pathlib import Path
from zoo.state.locks import lock
held = lock(Path(sys.argv[1]))
held.acquire()
Path(sys.argv[2]).write_text("held")
while True:
    time.sleep(60)
"""


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until `path` exists (the child says it holds the lock); fails if the child died."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the child exited before it took the lock"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.001)


def _holder(tmp_path: Path, lock_path: Path) -> subprocess.Popen[bytes]:
    marker = tmp_path / f"held-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock_path), str(marker)])
    _wait_for(marker, proc)
    return proc


def test_processes_and_their_threads_exclude_each_other(tmp_path: Path) -> None:
    counter, lock_path = tmp_path / "counter", tmp_path / "state" / "counter.lock"
    counter.write_text("0")
    args = [sys.executable, "-c", _COUNTER, str(counter), str(lock_path)]
    procs = [subprocess.Popen(args) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert counter.read_text() == str(3 * 3 * 100)


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    held = locks.lock(tmp_path / "x.lock")
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        for _ in range(200):
            with held:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.0001)  # another thread runs while this one holds the lock
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == []


def test_a_lock_held_elsewhere_is_not_taken_without_waiting(tmp_path: Path) -> None:
    lock_path = tmp_path / "runner.lock"
    held = locks.lock(lock_path)
    proc = _holder(tmp_path, lock_path)
    try:
        assert held.acquire(blocking=False) is False  # another process holds it
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert held.acquire(blocking=False) is True
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(held.acquire(blocking=False)))
    other.start()
    other.join(30)
    assert got == [False]  # another thread of this process holds it
    held.release()


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    lock_path = tmp_path / "journal.lock"
    proc = _holder(tmp_path, lock_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    held = locks.lock(lock_path)
    assert held.acquire(blocking=False) is True
    held.release()


def test_waiting_in_the_thread_that_holds_it_is_an_error(tmp_path: Path) -> None:
    held = locks.lock(tmp_path / "x.lock")
    with held:
        assert held.acquire(blocking=False) is False
        with pytest.raises(RuntimeError, match=r"x\.lock: lock taken twice by one thread$"):
            held.acquire()
    assert held.acquire(blocking=False) is True
    held.release()


def test_a_removed_lock_file_is_opened_anew(tmp_path: Path) -> None:
    """`.zoo/` deleted between two uses: the lock must be the new file's, which another
    process may hold, not the old file's, which nobody else can open any more."""
    lock_path = tmp_path / ".zoo" / "ids.lock"
    held = locks.lock(lock_path)
    with held:
        pass
    lock_path.unlink()
    lock_path.parent.rmdir()
    proc = _holder(tmp_path, lock_path)
    try:
        assert held.acquire(blocking=False) is False
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork only")
def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: Path) -> None:
    """The child inherits the descriptor, and with it the parent's flock: it must open
    its own, or it would take the lock the parent holds."""
    held = locks.lock(tmp_path / "x.lock")
    with held:
        pass  # the descriptor is open now, and inherited by the child below
    holding, took = tmp_path / "holding", tmp_path / "took"
    pid = os.fork()
    if pid == 0:  # the child: once the parent holds the lock, try it
        try:
            deadline = time.monotonic() + 30
            while not holding.exists() and time.monotonic() < deadline:
                time.sleep(0.001)
            took.write_text(str(locks.lock(tmp_path / "x.lock").acquire(blocking=False)))
        finally:
            os._exit(0)
    with held:
        holding.write_text("")
        os.waitpid(pid, 0)
    assert took.read_text() == "False"


def test_descriptors_stay_few_however_many_locks_are_used(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    for i in range(3 * locks.MAX_OPEN):
        with locks.lock(tmp_path / f"{i}.lock"):
            pass
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before + locks.MAX_OPEN


def test_journal_writes_open_the_lock_file_once(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock's descriptor is kept: opening a lock file per write cost ~0.3 ms a write."""
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: object, *args: object, **kwargs: object) -> int:
        fd = real_open(path, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(os.fsdecode(path))  # type: ignore[arg-type]
        return fd

    monkeypatch.setattr(os, "open", counting_open)
    journal = Journal(home)
    for i in range(50):
        journal.write("tick", n=i)
    assert sum(1 for p in opened if p.endswith("journal.lock")) == 1
