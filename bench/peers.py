"""Zoo's agent step beside durable peers: plain durable files and LangGraph + SQLite.

The same work for each: 200 tasks, 3 steps each (beaver -> owl -> lark), an instant
fake model, every step durable. Each contender runs in a fresh process and folder, and
the contenders take turns, round after round (this machine's speed drifts over
minutes; the ratios of one round hold better than absolute figures). Reported: the
median ms a step of each, and the median over rounds of Zoo's ratio to each peer.

- plain durable files: the floor. Each step rewrites its task file into the next
  folder (temp file, fsync, rename, fsync of the folder) and appends a note to a
  memory file with an fsync. No JSON, no YAML, no journal, one thread.
- LangGraph + SQLite: a 3-node StateGraph whose nodes append their section to the
  task's text, compiled with `SqliteSaver` (WAL, synchronous=FULL: each commit
  fsyncs) and invoked with `durability="sync"`: a checkpoint is on disk before the
  next step starts. One thread (the saver serialises its connection anyway).
- LangGraph in memory: the same graph with `InMemorySaver`, for the framework's own
  cost without a disk.
- Zoo, as a user meets it: a copy of the repository's example zoo (its playbooks,
  MEMORY.md, concurrency 4, autocommit off), 200 briefs dropped in `inbox/`, one
  `zoo run --once --json`; its `seconds` (the run, not the start-up) over its steps.
  Its steps do more than the peers': a routing step per brief, the offline model's
  tool calls (`write_file`, `remember`, `handoff`, and one `run` of `ls` a task, in
  the Landlock sandbox), a hash-chained journal, step logs and leases.
- Zoo, 3-agent chain: tests/small-roster.yaml (no `run` tool), otherwise the same.

LangGraph's rows need the benchmark's extra: `pip install -e ".[bench]"`; without it
they are left out, said so.

Run:  .venv/bin/python bench/peers.py [--rounds N] [--baseline DIR] [--json]
      (--baseline DIR also times the Zoo of another checkout, e.g. the code before a
      change: `git archive HEAD~1 | tar -x -C DIR`, in the same rounds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    ZOO,
    child_env,
    example_home,
    install_note,
    small_home,
    table,
    temp_folder,
)

TASKS = 200
AGENTS = ("beaver", "owl", "lark")
ROUNDS = 5
WARMUP_TASKS = 5
"""LangGraph's first invocations compile and import lazily: run a few before timing."""
BRIEF = "# Fix bug {i} in the login code\n\nUsers are logged out after a minute.\n"
TARGET_PLAIN = 1.5
"""Issue 13: Zoo's step at most 1.5x plain durable files, and below LangGraph + SQLite."""

PLAIN = "plain durable files"
LG_SQLITE = "LangGraph + SQLite (durability=sync)"
LG_MEMORY = "LangGraph, in memory"
ZOO_EXAMPLE = "Zoo, example zoo"
ZOO_SMALL = "Zoo, 3-agent chain"


# --- the contenders, each run in a child process: `peers.py --child NAME FOLDER` ------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def plain(root: Path) -> tuple[float, int]:
    """(seconds, steps) of the floor: each step a durable rename into the next folder and
    a durable memory append."""
    folders = [root / name for name in ("inbox", *AGENTS)]
    for folder in folders:
        folder.mkdir(parents=True)
    for i in range(TASKS):
        (folders[0] / f"T-{i:04d}.md").write_text(BRIEF.format(i=i), encoding="utf-8")
    memory = root / "MEMORY.md"
    started = time.perf_counter()
    for i in range(TASKS):
        name = f"T-{i:04d}.md"
        src = folders[0] / name
        text = src.read_text(encoding="utf-8")
        for step, agent in enumerate(AGENTS, start=1):
            text += f"\n## {agent}\n\n{agent} did its part of T-{i:04d}.\n"
            dst = folders[step] / name
            tmp = dst.with_name(f".{name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, text.encode())
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, dst)
            _fsync_dir(dst.parent)
            src.unlink()
            src = dst
            fd = os.open(memory, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, f"## {agent} · T-{i:04d} · step {step}\nA note.\n\n".encode())
            os.fsync(fd)
            os.close(fd)
    return time.perf_counter() - started, TASKS * len(AGENTS)


def langgraph(root: Path, durable: bool) -> tuple[float, int]:
    """(seconds, steps) of the same chain as a LangGraph graph, checkpointed each step."""
    import sqlite3
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    class Task(TypedDict):
        id: str
        body: str
        steps: int

    def node(agent: str) -> Any:
        def work(task: Task) -> dict[str, Any]:  # the instant fake model's answer
            section = f"\n## {agent}\n\n{agent} did its part of {task['id']}.\n"
            return {"body": task["body"] + section, "steps": task["steps"] + 1}

        return work

    graph = StateGraph(Task)
    previous = START
    for agent in AGENTS:
        graph.add_node(agent, node(agent))
        graph.add_edge(previous, agent)
        previous = agent
    graph.add_edge(previous, END)
    root.mkdir(parents=True, exist_ok=True)
    if durable:
        conn = sqlite3.connect(root / "checkpoints.sqlite", check_same_thread=False)
        saver: Any = SqliteSaver(conn)
        saver.setup()
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        if synchronous < 2:  # FULL: every commit fsyncs
            raise SystemExit(f"benchmark: SQLite synchronous={synchronous}, not durable")
    else:
        saver = InMemorySaver()
    app = graph.compile(checkpointer=saver)

    def run(task_id: str, i: int) -> None:
        config: Any = {"configurable": {"thread_id": task_id}}
        done = app.invoke({"id": task_id, "body": BRIEF.format(i=i), "steps": 0}, config,
                          durability="sync")  # fmt: skip
        if done["steps"] != len(AGENTS):
            raise SystemExit(f"benchmark: LangGraph ran {done['steps']} steps, not 3")

    for i in range(WARMUP_TASKS):
        run(f"warm-{i}", i)
    started = time.perf_counter()
    for i in range(TASKS):
        run(f"T-{i:04d}", i)
    return time.perf_counter() - started, TASKS * len(AGENTS)


BASELINE = " (baseline)"


def zoo(root: Path, roster: str) -> tuple[float, int]:
    """(seconds, steps) `zoo run --once` reports for 200 briefs dropped in the inbox."""
    home = example_home(root) if roster == "example" else small_home(root)
    inbox = home.workspace("inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(TASKS):
        (inbox / f"bug-{i}.md").write_text(BRIEF.format(i=i), encoding="utf-8")
    argv = [str(ZOO), "run", "--once", "--json", "--home", str(home.root)]
    done = subprocess.run(argv, env=child_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark: zoo run --once failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    if report.get("done") != TASKS or not report.get("steps"):
        raise SystemExit(f"benchmark: zoo run --once did not finish every task: {report}")
    return float(report["seconds"]), int(report["steps"])


def child(name: str, root: Path) -> None:
    if name == PLAIN:
        seconds, steps = plain(root)
    elif name in (LG_SQLITE, LG_MEMORY):
        seconds, steps = langgraph(root, durable=name == LG_SQLITE)
    else:
        seconds, steps = zoo(root, "example" if name.startswith(ZOO_EXAMPLE) else "small")
    print(json.dumps({"seconds": seconds, "steps": steps}))


# --- the parent: rounds of every contender, then medians and ratios --------------------


def has_langgraph() -> bool:
    probe = "import langgraph.graph, langgraph.checkpoint.sqlite"
    return subprocess.run([str(PYTHON), "-c", probe], capture_output=True).returncode == 0


def run_child(name: str, root: Path, baseline: Path | None) -> float:
    """ms a step of one run of `name` in a fresh process."""
    argv = [str(PYTHON), __file__, "--child", name, str(root)]
    env = child_env({"PYTHONPATH": str(baseline)} if name.endswith(BASELINE) and baseline else {})
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark: {name} failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]) * 1000 / int(result["steps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="Rounds of every contender.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document instead.")
    parser.add_argument("--baseline", type=Path, help="Also time the Zoo of this checkout.")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    names = [PLAIN, *([LG_MEMORY, LG_SQLITE] if has_langgraph() else []), ZOO_SMALL, ZOO_EXAMPLE]
    if args.baseline:
        names += [ZOO_SMALL + BASELINE, ZOO_EXAMPLE + BASELINE]
    load_before = os.getloadavg()[0]
    ms: dict[str, list[float]] = {name: [] for name in names}
    with temp_folder() as root:
        for n in range(args.rounds):
            for i, name in enumerate(names):
                ms[name].append(run_child(name, root / f"r{n}-{i}", args.baseline))
    report(args.json, names, ms, load_before)


def report(as_json: bool, names: list[str], ms: dict[str, list[float]], load: float) -> None:
    med = {name: statistics.median(v) for name, v in ms.items()}
    ratios = {}
    zoos = [name for name in names if name.startswith("Zoo")]
    for peer in (PLAIN, LG_SQLITE):
        if peer in ms:
            for mine in zoos:
                per_round = [z / p for z, p in zip(ms[mine], ms[peer], strict=True)]
                ratios[f"{mine} / {peer}"] = statistics.median(per_round)
    rounds = len(next(iter(ms.values())))
    if as_json:
        doc = {
            "tasks": TASKS,
            "steps_per_task": len(AGENTS),
            "rounds": rounds,
            "ms_per_step": {k: round(v, 3) for k, v in med.items()},
            "runs_ms_per_step": {k: [round(x, 3) for x in v] for k, v in ms.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "load_average_before_after": [load, os.getloadavg()[0]],
            "zoo": install_note(),
        }
        print(json.dumps(doc, indent=2))  # fmt: skip
        return
    rows = [[name, f"{med[name]:.2f}", " ".join(f"{x:.2f}" for x in ms[name])] for name in names]
    out = [install_note(), f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after", ""]
    out.append(table(f"{TASKS} tasks x {len(AGENTS)} steps, instant fake model, {rounds} "
                     "interleaved rounds", ["contender", "median ms/step", "each round"],
                     rows))  # fmt: skip
    out.append("")
    target = {f"{m} / {PLAIN}": f"<= {TARGET_PLAIN}x" for m in zoos}
    target.update({f"{m} / {LG_SQLITE}": "< 1x" for m in zoos})
    out.append(table("ratios (median over rounds of each round's ratio)",
                     ["ratio", "x", "target"],
                     [[k, f"{v:.2f}x", target[k]] for k, v in ratios.items()]))  # fmt: skip
    print("\n".join(out))


if __name__ == "__main__":
    main()
