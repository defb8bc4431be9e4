"""Orchestration cost per agent step, with the offline model, everything durable.

200 briefs go through a 3-agent chain (beaver -> owl -> lark, the roster of
tests/conftest.py) in a temporary home: they are dispatched first (timed apart, per
brief), then `run_once` is timed in-process under the runner lock, at concurrency 1
and at the roster default (4), each in a fresh home. Reported per step: the wall time,
the share of the offline model itself (its recorded requests replayed in a loop), the
runner overhead (wall - model), how many fsyncs and new files a step makes and the
time spent in them, and the ms/step of the first and last 100 steps (from the
journal's `step.finished` times, to show drift as MEMORY.md grows). A third run at
concurrency 1 times the parts of a step (system prompt, task save, journal, memory,
lease). For scale, the raw cost of one `zoo.state.fs.atomic_write` and one
`zoo.state.fs.append_durable` on this disk is measured in the same run.
Target: runner overhead <= 1 ms a step.

Run:  /work/venv/bin/python bench/steps.py [--json] [--profile]
      (--profile adds a cProfile of a concurrency-1 run: the top functions)
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import install_note, parse_args, small_home, table, temp_folder

from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.models.base import Reply, Request
from zoo.models.offline import OfflineModel
from zoo.state import fs
from zoo.state.home import Home
from zoo.state.runnerlock import runner_lock

BRIEFS = 200
CHAIN = 3
TARGET_MS = 1.0
RAW_OPS = 200


MODEL = "OfflineModel.complete (the model itself)"
FSYNC = "os.fsync (inside the rows above)"
CREATE = "os.open creating a new file (inside the rows above)"
PARTS: dict[str, tuple[str, ...]] = {
    "system_prompt (playbook, memories)": ("zoo.engine.turn:system_prompt",),
    "tasks.save (task file write/move)": ("zoo.state.tasks:save",),
    "Journal.write_many (events)": ("zoo.state.journal:Journal.write_many",),
    "Memory.remember (remember tool)": ("zoo.state.memory:Memory.remember",),
    "lease file write/remove": ("zoo.state.leases:hold", "zoo.engine.runner:_lease"),
}
"""Parts of a step timed in the breakdown run: label -> `module:attribute` candidates
(the first that exists is timed; a part whose code has moved elsewhere shows n/a)."""
CONTEXTS = ("hold", "_lease")
"""Attributes above that are context managers: their enter and exit are timed."""


@dataclass
class Probe:
    """Seconds spent in each timed part, one entry per call; and the model's requests."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def add(self, part: str, seconds: float) -> None:
        self.seconds.setdefault(part, []).append(seconds)

    def calls(self, part: str) -> int:
        return len(self.seconds.get(part, []))

    def total(self, part: str) -> float:
        return sum(self.seconds.get(part, []))


class _TimedContext:
    """Times entering and leaving a context manager (for `_lease`)."""

    def __init__(self, inner: Any, probe: Probe, part: str) -> None:
        self.inner, self.probe, self.part = inner, probe, part

    def __enter__(self) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.__enter__()
        finally:
            self.probe.add(self.part, time.perf_counter() - started)

    def __exit__(self, *exc: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.__exit__(*exc)
        finally:
            self.probe.add(self.part, time.perf_counter() - started)


def _timed(probe: Probe, part: str, real: Callable[..., Any], context: bool) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if context:
            return _TimedContext(real(*args, **kwargs), probe, part)
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            probe.add(part, time.perf_counter() - started)

    return wrapper


@contextmanager
def probed(parts: bool = False) -> Iterator[Probe]:
    """Time every os.fsync and offline model call (and, with `parts`, each of PARTS)."""
    probe = Probe()
    real_complete = OfflineModel.complete

    def complete(self: OfflineModel, request: Request) -> Reply:
        started = time.perf_counter()
        reply = real_complete(self, request)
        probe.add(MODEL, time.perf_counter() - started)
        probe.requests.append(request)
        return reply

    probe.seconds = {MODEL: [], FSYNC: [], CREATE: []}
    real_open = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if not flags & os.O_CREAT or os.path.lexists(path):
            return real_open(path, flags, *args, **kwargs)
        started = time.perf_counter()
        try:
            return real_open(path, flags, *args, **kwargs)
        finally:
            probe.add(CREATE, time.perf_counter() - started)

    patched: list[tuple[Any, str, Any]] = [(os, "fsync", os.fsync), (os, "open", real_open)]
    os.fsync = _timed(probe, FSYNC, os.fsync, context=False)
    os.open = open_
    patched.append((OfflineModel, "complete", real_complete))
    OfflineModel.complete = complete
    for part, candidates in PARTS.items() if parts else ():
        found = _find(candidates)
        if found is not None:
            owner, attr = found
            real = getattr(owner, attr)
            patched.append((owner, attr, real))
            setattr(owner, attr, _timed(probe, part, real, context=attr in CONTEXTS))
            probe.seconds[part] = []
    try:
        yield probe
    finally:
        for owner, attr, real in reversed(patched):
            setattr(owner, attr, real)


def _find(candidates: tuple[str, ...]) -> tuple[Any, str] | None:
    """The (owner, attribute) of the first `module:attr` or `module:Class.attr` that exists."""
    import importlib

    for candidate in candidates:
        module, _, path = candidate.partition(":")
        try:
            owner: Any = importlib.import_module(module)
        except ImportError:
            continue
        *classes, attr = path.split(".")
        for cls in classes:
            owner = getattr(owner, cls, None)
        if owner is not None and hasattr(owner, attr):
            return owner, attr
    return None


def raw_costs(root: Path) -> dict[str, float]:
    """Median ms of one atomic write / durable append of typical sizes on this disk."""
    root.mkdir()
    task_text = "---\nid: T-0001\n---\n# A task\n\n" + "x" * 2000 + "\n"
    line = json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "x", "pad": "y" * 250}) + "\n"
    ops: dict[str, Callable[[int], None]] = {
        "fs.atomic_write (2 KB task, fsync file + dir)": lambda i: fs.atomic_write(
            root / "task.md", task_text
        ),
        "fs.atomic_write durable=False (no fsync)": lambda i: fs.atomic_write(
            root / "lease.json", task_text, durable=False
        ),
        "fs.append_durable (300 B journal line)": lambda i: fs.append_durable(
            root / "events.jsonl", line
        ),
        "fs.atomic_write to a new name each time": lambda i: fs.atomic_write(
            root / f"new-{i}.md", task_text
        ),
        "os.fsync of a 2 KB file": lambda i: _fsync_file(root / "f.md", task_text),
        "os.open(O_CREAT) of a never-used name": lambda i: _create(root / f"c-{i}"),
    }
    out = {}
    for name, op in ops.items():
        times = []
        for i in range(RAW_OPS):
            started = time.perf_counter()
            op(i)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times) * 1000
    return out


def _create(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def _fsync_file(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def fresh_home(root: Path) -> tuple[Home, float, int, int]:
    """A small home with BRIEFS dispatched: (home, seconds dispatching, fsyncs, files made)."""
    home = small_home(root)
    zoo = Zoo.open(home, env={})
    with probed() as probe:
        started = time.perf_counter()
        for i in range(BRIEFS):
            dispatch(zoo, f"Fix bug {i} in the login code: users are logged out after a minute.")
        seconds = time.perf_counter() - started
    return home, seconds, probe.calls(FSYNC), probe.calls(CREATE)


def drift(home: Home) -> tuple[float, float]:
    """ms/step of the first and the last 100 steps, from `step.finished` journal times."""
    stamps = []
    with home.journal_path.open("rb") as f:
        for raw in f:
            event = json.loads(raw)
            if event["event"] == "step.finished":
                stamps.append(datetime.fromisoformat(event["ts"]))
    if len(stamps) < 202:
        return float("nan"), float("nan")
    first = (stamps[100] - stamps[0]).total_seconds() * 10
    last = (stamps[-1] - stamps[-101]).total_seconds() * 10
    return first, last


def replay_ms(requests: list[Request]) -> float:
    """Single-threaded seconds*1000 the offline model needs for these requests."""
    model = OfflineModel()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for request in requests:
            model.complete(request)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def run_bench(root: Path, concurrency: int, parts: bool = False) -> dict[str, Any]:
    home, dispatch_s, dispatch_fsyncs, dispatch_creates = fresh_home(root)
    with runner_lock(home), probed(parts) as probe:
        zoo = Zoo.open(home, env={})
        started = time.perf_counter()
        report = run_once(zoo, concurrency=concurrency)
        wall = time.perf_counter() - started
    if report.failed or report.done != BRIEFS:
        raise SystemExit(f"benchmark: run_once did not finish every task: {report.failed[:3]}")
    steps = report.steps
    model_ms = replay_ms(probe.requests) / steps
    first, last = drift(home)
    timed = [part for part in (MODEL, *PARTS, FSYNC, CREATE) if part in probe.seconds]
    breakdown = {part: probe.total(part) * 1000 / steps for part in timed}
    if parts:
        inside = sum(v for k, v in breakdown.items() if k not in (FSYNC, CREATE))
        breakdown["the rest: loop, task read/render, tools, threads"] = wall * 1000 / steps - inside
    return {
        "concurrency": concurrency,
        "steps": steps,
        "model_calls": probe.calls(MODEL),
        "wall_s": wall,
        "ms_per_step": wall * 1000 / steps,
        "model_ms_per_step": model_ms,
        "model_in_run_ms_per_step": breakdown[MODEL],
        "overhead_ms_per_step": wall * 1000 / steps - model_ms,
        "fsyncs_per_step": probe.calls(FSYNC) / steps,
        "fsync_ms_per_step": breakdown[FSYNC],
        "creates_per_step": probe.calls(CREATE) / steps,
        "create_ms_per_step": breakdown[CREATE],
        "breakdown_ms_per_step": breakdown if parts else None,
        "first_100_ms_per_step": first,
        "last_100_ms_per_step": last,
        "dispatch_ms_per_brief": dispatch_s * 1000 / BRIEFS,
        "dispatch_fsyncs_per_brief": dispatch_fsyncs / BRIEFS,
        "dispatch_creates_per_brief": dispatch_creates / BRIEFS,
        "ok": wall * 1000 / steps - model_ms <= TARGET_MS,
    }


def profile_run(root: Path, limit: int = 25) -> str:
    """cProfile of a concurrency-1 run_once (main thread and the worker's steps), top costs."""
    import zoo.engine.loop

    home, _, _, _ = fresh_home(root)
    main_profile, step_profile = cProfile.Profile(), cProfile.Profile()
    real_step = zoo.engine.loop.step

    def step(*args: Any) -> Any:
        step_profile.enable()  # profiles the calling (worker) thread
        try:
            return real_step(*args)
        finally:
            step_profile.disable()

    zoo.engine.loop.step = step
    try:
        with runner_lock(home):
            opened = Zoo.open(home, env={})
            main_profile.enable()
            run_once(opened, concurrency=1)
            main_profile.disable()
    finally:
        zoo.engine.loop.step = real_step
    out = io.StringIO()
    stats = pstats.Stats(step_profile, stream=out)
    stats.add(main_profile)
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def main() -> None:
    args = parse_args(__doc__)
    with temp_folder() as root:
        raw = raw_costs(root / "raw")
        runs = [run_bench(root / f"c{n}", n) for n in (1, 4)]
        parts = run_bench(root / "parts", 1, parts=True)
        profile = profile_run(root / "profile") if args.profile else ""
    if args.json:
        doc = {"briefs": BRIEFS, "target_ms": TARGET_MS, "raw_ms": raw, "runs": runs,
               "breakdown_c1": parts, "cpus": os.cpu_count(), "zoo": install_note()}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    print(render(raw, runs, parts))
    if profile:
        print(
            "\ncProfile of run_once, concurrency 1, main + worker thread (the main thread mostly"
            " waits on futures; profiling slows the run down)\n" + profile
        )


def render(raw: dict[str, float], runs: list[dict[str, Any]], parts: dict[str, Any]) -> str:
    out = [install_note(), ""]
    out.append(table(f"raw disk costs (median of {RAW_OPS})", ["operation", "ms"],
                     [[name, f"{ms:.3f}"] for name, ms in raw.items()]))  # fmt: skip
    out.append("")
    out.append(table(
        f"dispatch, in-process zoo.engine.router.dispatch ({BRIEFS} briefs, routed by words)",
        ["home", "ms/brief", "fsyncs/brief", "new files/brief"],
        [[f"c{r['concurrency']} home", f"{r['dispatch_ms_per_brief']:.2f}",
          f"{r['dispatch_fsyncs_per_brief']:.1f}", f"{r['dispatch_creates_per_brief']:.1f}"]
         for r in runs],
    ))  # fmt: skip
    out.append("")
    out.append(table(
        f"run_once: {BRIEFS} briefs x {CHAIN} agents, offline model; target overhead "
        f"<= {TARGET_MS:g} ms/step",
        ["concurrency", "steps", "wall s", "ms/step", "model ms", "overhead ms", "fsyncs",
         "fsync ms", "new files", "create ms", "first100", "last100", "target"],
        [[r["concurrency"], r["steps"], f"{r['wall_s']:.2f}", f"{r['ms_per_step']:.2f}",
          f"{r['model_ms_per_step']:.3f}", f"{r['overhead_ms_per_step']:.2f}",
          f"{r['fsyncs_per_step']:.1f}", f"{r['fsync_ms_per_step']:.2f}",
          f"{r['creates_per_step']:.1f}", f"{r['create_ms_per_step']:.2f}",
          f"{r['first_100_ms_per_step']:.2f}", f"{r['last_100_ms_per_step']:.2f}",
          "ok" if r["ok"] else "MISSED"] for r in runs],
    ))  # fmt: skip
    out.append(
        "per step: model ms = the offline model's own time (its requests replayed, one thread);"
        "\noverhead = ms/step - model ms; fsync ms = time inside os.fsync (summed over threads);"
        "\nnew files, create ms = os.open calls that create a file (tmp, lease, lock files)"
        " and their time;"
        "\nfirst100/last100 = ms/step of the first and last 100 steps (journal step.finished)."
    )
    out.append("")
    wall = parts["ms_per_step"]
    rows = [[name, f"{ms:.3f}", f"{100 * ms / wall:.0f}%"]
            for name, ms in parts["breakdown_ms_per_step"].items()]  # fmt: skip
    rows += [[f"{name}: code not found", "n/a", ""] for name in PARTS
             if name not in parts["breakdown_ms_per_step"]]  # fmt: skip
    rows.append(["total (wall / steps)", f"{wall:.3f}", "100%"])
    out.append(table(
        f"where a step's time goes, concurrency 1 (a separate run with timers, "
        f"{parts['steps']} steps)",
        ["part (inclusive)", "ms/step", "share"],
        rows,
    ))  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    main()
