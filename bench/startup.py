"""Start-up time of `zoo --help` and `zoo status` against the floor of their imports.

The floor is `python -c "import typer, rich.console, yaml"`, timed in the same run. The
zoo home is a copy of the repository's example zoo holding 1,000 finished tasks in
workspaces/done/. Each command is warmed up, then run ~20 times, interleaved, and the
median kept; child processes cache bytecode (PYTHONDONTWRITEBYTECODE unset) as users
do. Target: each zoo command at most 1.3x the floor, and `zoo status` importing none of
anthropic, openai, git, watchdog, pydantic. Also shows the first `zoo status` after
zoo.yaml changed (the roster is then validated with pydantic, then cached) and the
biggest imports of `zoo status` from `python -X importtime`.

Run:  /work/venv/bin/python bench/startup.py [--json]
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    ZOO,
    add_done_tasks,
    child_env,
    example_home,
    install_note,
    median_ms,
    parse_args,
    run_checked,
    spread_ms,
    table,
    temp_folder,
    time_commands,
    time_once,
)

RUNS = 20
WARMUP = 3
DONE_TASKS = 1_000
TARGET = 1.3
HEAVY = ("anthropic", "openai", "git", "watchdog", "pydantic")
FLOOR = "import typer, rich.console, yaml"

_PROBE = """\
import sys
sys.argv = ["zoo", *{args!r}]
from zoo.cli import app as cli
try:
    cli.main()
except SystemExit:
    pass
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write("\\nHEAVY=" + ",".join(heavy) + "\\n")
"""


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    """Which of HEAVY are in sys.modules after running `zoo ARGS` in one process."""
    code = _PROBE.format(args=args, heavy=HEAVY)
    err = run_checked([str(PYTHON), "-c", code], env)
    line = next(x for x in err.splitlines() if x.startswith("HEAVY="))
    return [m for m in line[len("HEAVY=") :].split(",") if m]


def top_imports(args: list[str], env: dict[str, str], limit: int = 8) -> list[tuple[str, float]]:
    """The top-level imports of `python -m zoo ARGS` by cumulative ms (-X importtime)."""
    err = run_checked([str(PYTHON), "-X", "importtime", "-m", "zoo", *args], env)
    found: dict[str, float] = {}
    for raw in err.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", raw)
        if match and match.group(2) == "":  # imported by no other module: top level
            name = match.group(3)
            found[name] = found.get(name, 0.0) + int(match.group(1)) / 1000
    return sorted(found.items(), key=lambda kv: -kv[1])[:limit]


_PHASES = """\
import json, os, sys, time
from pathlib import Path
marks = [("start", time.perf_counter())]
import typer, rich.console, yaml
marks.append(("floor imports (typer, rich.console, yaml)", time.perf_counter()))
from zoo.cli import app as cli
marks.append(("import zoo.cli.app", time.perf_counter()))
from zoo.cli import render
from zoo.engine import reports
marks.append(("import zoo.engine.reports, zoo.cli.render", time.perf_counter()))
from zoo.state.home import Home
doc = reports.status(Home(Path({home!r})))
marks.append(("reports.status()", time.perf_counter()))
real, sys.stdout = sys.stdout, open(os.devnull, "w", encoding="utf-8")
render.status(doc)
marks.append(("render.status()", time.perf_counter()))
cli._invoke(["status", "--home", {home!r}])
marks.append(("cli._invoke again (typer + status + render)", time.perf_counter()))
sys.stdout = real
out = {{name: (t - marks[i][1]) * 1000 for i, (name, t) in enumerate(marks[1:])}}
sys.stderr.write("\\nPHASES=" + json.dumps(out) + "\\n")
"""


def status_phases(home: Path, env: dict[str, str], runs: int = 7) -> dict[str, float]:
    """Median ms of each phase of `zoo status`, measured inside one process."""
    found: dict[str, list[float]] = {}
    for _ in range(runs):
        err = run_checked([str(PYTHON), "-c", _PHASES.format(home=str(home))], env)
        line = next(x for x in err.splitlines() if x.startswith("PHASES="))
        for name, ms in json.loads(line[len("PHASES=") :]).items():
            found.setdefault(name, []).append(ms)
    phases = {name: statistics.median(v) for name, v in found.items()}
    again = "cli._invoke again (typer + status + render)"
    phases["typer: build the click app, parse (derived)"] = max(
        0.0, phases.pop(again) - phases["reports.status()"] - phases["render.status()"]
    )
    return phases


def cold_status_ms(home: Path, env: dict[str, str], runs: int = 3) -> float:
    """`zoo status` right after zoo.yaml changed: no valid roster cache."""
    times = []
    for _ in range(runs):
        (home / ".zoo" / "roster.json").unlink(missing_ok=True)
        times.append(time_once([str(ZOO), "status", "--home", str(home)], env))
    return median_ms(times)


def main() -> None:
    args = parse_args(__doc__)
    env = child_env()
    with temp_folder() as root:
        home = example_home(root / "home")
        add_done_tasks(home, DONE_TASKS)
        status_args = ["status", "--home", str(home.root)]
        commands = {
            "python -c pass": [str(PYTHON), "-c", "pass"],
            f"floor: python -c '{FLOOR}'": [str(PYTHON), "-c", FLOOR],
            "python -c 'import zoo.cli.app'": [str(PYTHON), "-c", "import zoo.cli.app"],
            "zoo --help": [str(ZOO), "--help"],
            "zoo status": [str(ZOO), *status_args],
        }
        times = time_commands(commands, runs=RUNS, warmup=WARMUP, env=env, cwd=root)
        heavy = {
            "zoo --help": heavy_imports(["--help"], env),
            "zoo status": heavy_imports(status_args, env),
        }
        top = top_imports(status_args, env)
        phases = status_phases(home.root, env)
        cold = cold_status_ms(home.root, env)
        (home.root / ".zoo" / "roster.json").unlink(missing_ok=True)
        cold_heavy = heavy_imports(status_args, env)
    report(args.json, times, heavy, top, phases, cold, cold_heavy)


def report(
    as_json: bool,
    times: dict[str, list[float]],
    heavy: dict[str, list[str]],
    top: list[tuple[str, float]],
    phases: dict[str, float],
    cold: float,
    cold_heavy: list[str],
) -> None:
    floor_name = next(name for name in times if name.startswith("floor"))
    floor = median_ms(times[floor_name])
    rows: list[list[object]] = []
    doc: dict[str, Any] = {"runs": RUNS, "done_tasks": DONE_TASKS, "target_ratio": TARGET,
                           "commands": {}}  # fmt: skip
    for name, seconds in times.items():
        ms = median_ms(seconds)
        ratio = ms / floor
        zoo_cmd = name in heavy
        verdict = ""
        if zoo_cmd:
            ok = ratio <= TARGET and not heavy[name]
            verdict = "ok" if ok else "MISSED"
        imports = (",".join(heavy[name]) or "none") if zoo_cmd else ""
        rows.append([name, f"{ms:.1f}", spread_ms(seconds), f"{ratio:.2f}x", imports, verdict])
        doc["commands"][name] = {"median_ms": round(ms, 2), "ratio_to_floor": round(ratio, 3),
                                 "heavy_imports": heavy.get(name), "ok": verdict == "ok"
                                 if zoo_cmd else None}  # fmt: skip
    doc["status_after_roster_change_ms"] = round(cold, 1)
    doc["status_after_roster_change_heavy_imports"] = cold_heavy
    doc["zoo"] = install_note()
    doc["status_top_imports_ms"] = {name: round(ms, 1) for name, ms in top}
    doc["status_phases_ms"] = {name: round(ms, 2) for name, ms in phases.items()}
    text = (
        install_note()
        + "\n\n"
        + table(
            f"start-up, median of {RUNS} runs (after {WARMUP} warm-ups), home with "
            f"{DONE_TASKS:,} done tasks; target <= {TARGET}x floor",
            ["command", "median ms", "p25-p75 ms", "x floor", "heavy imports", "target"],
            rows,
        )
    )
    text += (
        f"\n\nzoo status right after zoo.yaml changed (validates with pydantic, then caches): "
        f"{cold:.1f} ms, imports {','.join(cold_heavy) or 'none'}\n\n"
    )
    text += table(
        "zoo status: top-level imports by cumulative time (one -X importtime run)",
        ["module", "ms"],
        [[name, f"{ms:.1f}"] for name, ms in top],
    )
    text += "\n\n" + table(
        "zoo status in one process, by phase (median of 7; the floor is the first row)",
        ["phase", "ms"],
        [[name, f"{ms:.1f}"] for name, ms in phases.items()],
    )
    print(json.dumps(doc, indent=2) if as_json else text)


if __name__ == "__main__":
    main()
