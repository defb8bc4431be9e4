"""What git autocommit costs a step: `run_once` with autocommit off vs on.

200 briefs go through the 3-agent chain of tests/conftest.py (beaver -> owl -> lark,
offline model) in a temporary home that is a git repository: the roster, playbooks,
the `zoo init` .gitignore and the 200 dispatched briefs are its first commit. Then
`run_once` is timed in-process under the runner lock, at the roster's concurrency,
with zoo.yaml as is (autocommit off) and with `git: {autocommit: true}` (the runner
notes each step to a zoo.engine.autocommit.AutoCommitter and closes it before returning),
each run in a fresh home, the two interleaved over ROUNDS rounds (median kept).

Reported: ms/step of each, the ratio on/off (target <= 1.2), the commits each run made
(`git rev-list --count HEAD`, less the first commit; about one a second of the run,
plus the final one) and the lines the committer reported (none expected). For scale,
one autocommit (git status, update-index, diff, commit of one step's changes, timed
through `AutoCommitter.close()`) in a finished home is timed apart.

Run:  /work/venv/bin/python bench/autocommit.py [--json]
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    SMALL_ROSTER,
    emit,
    install_note,
    parse_args,
    small_home,
    table,
    temp_folder,
)

from zoo.engine.autocommit import AutoCommitter
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.state.home import Home
from zoo.state.runnerlock import runner_lock

BRIEFS = 200
CHAIN = 3
ROUNDS = 3
TARGET_RATIO = 1.2
COMMIT_RUNS = 20
MODES = ("off", "on")
AUTOCOMMIT_ROSTER = SMALL_ROSTER.rstrip("\n") + "\ngit: {autocommit: true}\n"
GITIGNORE = (REPO / "zoo" / "templates" / "init" / "gitignore").read_text(encoding="utf-8")
SETUP_IDENTITY = ("-c", "user.name=zoo-bench", "-c", "user.email=zoo-bench@localhost")


def git(home: Home, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=home.root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark: git {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def commit_count(home: Home) -> int:
    return int(git(home, "rev-list", "--count", "HEAD").strip())


def fresh_home(root: Path, autocommit: bool) -> Home:
    """A small home with BRIEFS dispatched, all of it in a first commit."""
    home = small_home(root)
    if autocommit:
        home.roster_path.write_text(AUTOCOMMIT_ROSTER, encoding="utf-8")
    (home.root / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    opened = Zoo.open(home, env={})
    for i in range(BRIEFS):
        dispatch(opened, f"Fix bug {i} in the login code: users are logged out after a minute.")
    git(home, "init", "-q")
    git(home, "add", "-A")
    git(home, *SETUP_IDENTITY, "commit", "-q", "-m", "benchmark: the briefs")
    return home


def run_mode(root: Path, mode: str) -> dict[str, Any]:
    home = fresh_home(root, autocommit=mode == "on")
    before = commit_count(home)
    with runner_lock(home):
        opened = Zoo.open(home, env={})
        started = time.perf_counter()
        report = run_once(opened)
        wall = time.perf_counter() - started
    if report.failed or report.done != BRIEFS:
        raise SystemExit(f"benchmark: run_once did not finish every task: {report.failed[:3]}")
    return {
        "mode": mode,
        "steps": report.steps,
        "wall_s": wall,
        "ms_per_step": wall * 1000 / report.steps,
        "commits": commit_count(home) - before,
        "committer_lines": [line for line in report.lines if line.startswith("autocommit:")],
        "home": home,
    }


def per_commit_ms(home: Home) -> list[float]:
    """Seconds*1000 of single autocommits (one changed task file and the journal each)."""
    task = next(home.workspace("done").glob("T-*.md"))
    times = []
    for i in range(COMMIT_RUNS):
        committer = AutoCommitter.start(home, on_line=print)
        assert committer is not None
        with task.open("a", encoding="utf-8") as f:
            f.write(f"\nedit {i}\n")
        with home.journal_path.open("a", encoding="utf-8") as f:
            f.write("{}\n")
        committer.note("T-0001", "beaver", "Fix bug 0 in the login code")
        started = time.perf_counter()
        committer.close()
        times.append((time.perf_counter() - started) * 1000)
        if committer.commits != 1:
            raise SystemExit("benchmark: an autocommit made no commit")
    return times


def main() -> None:
    args = parse_args(__doc__)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with temp_folder("zoo-bench-autocommit-") as root:
        for round_ in range(ROUNDS):
            for mode in MODES:
                runs[mode].append(run_mode(root / f"{mode}-{round_}", mode))
        last = runs["on"][-1]["home"]
        tracked = len(git(last, "ls-files").splitlines())
        commit_ms = per_commit_ms(last)
    summary = {mode: summarise(results) for mode, results in runs.items()}
    off = summary["off"]["ms_per_step"]
    ratios = {"on": summary["on"]["ms_per_step"] / off}
    doc = {
        "briefs": BRIEFS, "chain": CHAIN, "rounds": ROUNDS, "target_ratio": TARGET_RATIO,
        "modes": summary, "ratio": ratios,
        "ok": {mode: ratio <= TARGET_RATIO for mode, ratio in ratios.items()},
        "per_commit_ms": {"median": statistics.median(commit_ms), "min": min(commit_ms),
                          "max": max(commit_ms), "runs": COMMIT_RUNS, "tracked_files": tracked},
        "zoo": install_note(),
    }  # fmt: skip
    emit(args.json, doc, render(doc))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "steps": results[0]["steps"],
        "ms_per_step": statistics.median(r["ms_per_step"] for r in results),
        "ms_per_step_runs": [round(r["ms_per_step"], 3) for r in results],
        "commits": [r["commits"] for r in results],
        "committer_lines": [line for r in results for line in r["committer_lines"]],
    }


def render(doc: dict[str, Any]) -> str:
    rows = []
    for mode, result in doc["modes"].items():
        ratio = doc["ratio"].get(mode)
        verdict = "" if ratio is None else ("ok" if ratio <= TARGET_RATIO else "MISSED")
        rows.append([
            mode, result["steps"], f"{result['ms_per_step']:.3f}",
            " ".join(f"{v:.2f}" for v in result["ms_per_step_runs"]),
            "-" if ratio is None else f"{ratio:.2f}x",
            " ".join(str(c) for c in result["commits"]), verdict,
        ])  # fmt: skip
    commit = doc["per_commit_ms"]
    return "\n".join([
        install_note(),
        "",
        table(
            f"run_once: {BRIEFS} briefs x {CHAIN} agents, offline model, git autocommit off vs "
            f"on (median of {ROUNDS} rounds); target ratio <= {TARGET_RATIO}",
            ["mode", "steps", "ms/step", "each round", "vs off", "commits", "target"],
            rows,
        ),
        "on = zoo.yaml has git: {autocommit: true}; commits = made by each round's run;"
        f"\nlines the committer reported: {doc['modes']['on']['committer_lines'] or 'none'}",
        "",
        f"one autocommit (git status, update-index, diff, commit; {commit['tracked_files']} "
        "tracked files): "
        f"median {commit['median']:.1f} ms, min {commit['min']:.1f}, max {commit['max']:.1f} "
        f"(n={commit['runs']})",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
