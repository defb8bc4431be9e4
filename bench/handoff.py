"""Handoff latency in `zoo run`: from the rename of a task file into a workspace to the
start of the next agent's model call.

A live runner (`runner.Live` with the inotify watcher, as `zoo run` builds it) works a
temporary home with the 3-agent roster of tests/conftest.py. For each sample, a task
queued for owl is written to a temporary name in qa/ and renamed into place, as an
atomic save by another process (or a person's `mv`) does; the model, the offline one
wrapped to note the time of its first call for the task, stops the clock. Each task then
finishes (owl -> lark -> done) before the next sample starts. The same is measured, fewer
times, with the polling fallback (`zoo run --poll`), for scale; and the raw inotify
delivery of a rename through watchdog, the floor under the first figure.
Target: median <= 2 ms with inotify.

Run:  /work/venv/bin/python bench/handoff.py [--json]
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from _common import emit, install_note, parse_args, small_home, table, temp_folder

from zoo.engine.live import Live
from zoo.engine.watcher import POLL_S, Watcher
from zoo.engine.zoo import Zoo
from zoo.models.base import Model, Reply, Request
from zoo.models.offline import OfflineModel
from zoo.state.home import DONE
from zoo.state.tasks import Task, slugify, utc_now

SAMPLES = 200
POLL_SAMPLES = 10
TARGET_MS = 2.0


class Clocked(Model):
    """The offline model, noting when the first call for each task came in."""

    name = "clocked"

    def __init__(self) -> None:
        self.inner = OfflineModel()
        self.first_call: dict[str, float] = {}
        self.called = threading.Condition()

    def complete(self, request: Request) -> Reply:
        task = str(request.meta.get("task"))
        with self.called:
            self.first_call.setdefault(task, time.perf_counter())
            self.called.notify_all()
        return self.inner.complete(request)

    def wait_for(self, task: str, timeout: float = 10.0) -> float:
        with self.called:
            if not self.called.wait_for(lambda: task in self.first_call, timeout):
                raise SystemExit(f"benchmark: the runner never started {task}")
            return self.first_call[task]


def _queued_for_owl(home_root: Path, number: int) -> Task:
    task_id = f"T-{number:04d}"
    title = f"Test the fix for bug {number}"
    meta: dict[str, Any] = {
        "id": task_id, "title": title, "status": "queued", "agent": "owl", "workspace": "qa",
        "created": utc_now(), "source": "cli", "steps": 1,
    }  # fmt: skip
    path = home_root / "workspaces" / "qa" / f"{task_id}-{slugify(title)}.md"
    return Task(path, meta, f"# {title}\n\nBeaver fixed it; please test.\n")


def _wait_done(done: Path, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (done / name).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: {name} never reached done/")
        time.sleep(0.0005)


def measure(samples: int, *, polling: bool) -> tuple[list[float], str]:
    """Latencies in seconds of `samples` handoffs into a live runner."""
    with temp_folder() as root:
        home = small_home(root / "zoo")
        model = Clocked()
        zoo = Zoo.open(home, env={}, model=model)
        watcher = Watcher(home.workspaces, polling=polling)
        live = Live(zoo, watcher)
        mode = watcher.start()
        runner = threading.Thread(target=live.run, name="zoo-live")
        runner.start()
        latencies = []
        phase = random.Random(42)
        try:
            for number in range(1, samples + 1):
                task = _queued_for_owl(home.root, number)
                tmp = task.path.with_name(f".{task.path.name}.{os.getpid()}.zoo-tmp")  # as fs does
                tmp.write_text(task.render(), encoding="utf-8")
                if polling:  # land anywhere in the polling cycle, not just after a look
                    time.sleep(phase.uniform(0, POLL_S))
                started = time.perf_counter()
                os.rename(tmp, task.path)
                latencies.append(model.wait_for(task.id) - started)
                _wait_done(home.workspace(DONE), task.path.name)
        finally:
            live.stop()
            runner.join()
            watcher.stop()
    return latencies, mode


def raw_inotify(samples: int) -> list[float]:
    """watchdog's delivery of a rename, with nothing behind it."""
    from watchdog.events import FileMovedEvent
    from watchdog.observers.inotify import InotifyObserver

    seen = threading.Event()
    stamp = [0.0]

    class Handler:
        def dispatch(self, event: Any) -> None:
            stamp[0] = time.perf_counter()
            seen.set()

    with temp_folder() as root:
        observer = InotifyObserver(generate_full_events=True)
        observer.schedule(Handler(), str(root), recursive=True,  # type: ignore[arg-type]
                          event_filter=[FileMovedEvent])  # fmt: skip
        observer.start()
        out = []
        try:
            for i in range(samples):
                tmp = root / f".{i}.tmp"
                tmp.write_bytes(b"x")
                seen.clear()
                started = time.perf_counter()
                os.rename(tmp, root / f"{i}.md")
                seen.wait(5)
                out.append(stamp[0] - started)
        finally:
            observer.stop()
            observer.join()
    return out


def _row(label: str, seconds: list[float]) -> list[object]:
    ms = sorted(s * 1000 for s in seconds)
    return [label, len(ms), statistics.median(ms), ms[int(len(ms) * 0.9)], ms[-1]]


def main() -> None:
    args = parse_args(__doc__)
    floor = raw_inotify(SAMPLES)
    inotify, mode = measure(SAMPLES, polling=False)
    polled, poll_mode = measure(POLL_SAMPLES, polling=True)
    rows = [
        _row("watchdog delivery of a rename (floor)", floor),
        _row(f"zoo run, {mode}", inotify),
        _row(f"zoo run, {poll_mode}", polled),
    ]
    median = statistics.median(inotify) * 1000
    verdict = f"median {median:.2f} ms: target <= {TARGET_MS:g} ms " + (
        "met" if median <= TARGET_MS else "MISSED"
    )
    text = "\n".join([
        table("Handoff latency: rename into qa/ -> owl's model call starts (ms)",
              ["", "samples", "median", "p90", "max"], rows),
        verdict,
        install_note(),
    ])  # fmt: skip
    doc = {"rows": [dict(zip(("what", "samples", "median_ms", "p90_ms", "max_ms"), r,
                             strict=True)) for r in rows], "target_ms": TARGET_MS,
           "met": median <= TARGET_MS}  # fmt: skip
    emit(args.json, doc, text)


if __name__ == "__main__":
    main()
