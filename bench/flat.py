"""Does the cost of `zoo status` and `zoo dispatch` stay flat as done/ grows?

Two copies of the repository's example zoo, one with 10 and one with 10,000 finished
tasks in workspaces/done/. In each, `zoo status` and then `zoo dispatch "Fix the login
bug"` run as subprocesses (warmed up, then ~10 runs each, the two homes interleaved,
median kept); dispatch routes by the roster's `routes` words at once, so each run adds
one queued task to dev/, alike in both homes. The same two operations are also timed
in-process (`zoo.engine.reports.status`, `zoo.engine.router.dispatch`), where the share that could
grow with done/ is not hidden by interpreter start-up. Reported: both figures and the
ratio big/small; "flat" means a ratio of at most 1.10.

Run:  /work/venv/bin/python bench/flat.py [--json]
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import (
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
    time_once,
)

from zoo.engine.reports import status
from zoo.engine.router import dispatch
from zoo.engine.zoo import Zoo
from zoo.state.home import Home

SIZES = (10, 10_000)
RUNS = 10
WARMUP = 2
IN_PROCESS_RUNS = 30
FLAT = 1.10
BRIEF = "Fix the login bug"


def subprocess_times(homes: dict[int, Home], env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per run of `zoo status`, then `zoo dispatch`, the homes interleaved."""
    times: dict[str, list[float]] = {}
    for command, extra in (("status", []), ("dispatch", [BRIEF])):
        argvs = {size: [str(ZOO), command, *extra, "--home", str(home.root)]
                 for size, home in homes.items()}  # fmt: skip
        for _ in range(WARMUP):
            for argv in argvs.values():
                run_checked(argv, env)
        for _ in range(RUNS):
            for size, argv in argvs.items():
                times.setdefault(f"{command}@{size}", []).append(time_once(argv, env))
    return times


def in_process_times(homes: dict[int, Home]) -> dict[str, list[float]]:
    """Seconds per call of reports.status and router.dispatch, the homes interleaved."""
    times: dict[str, list[float]] = {}
    zoos = {size: Zoo.open(home, env={}) for size, home in homes.items()}
    ops: dict[str, Callable[[int], object]] = {
        "status": lambda size: status(homes[size]),
        "dispatch": lambda size: dispatch(zoos[size], BRIEF),
    }
    for command, op in ops.items():
        for size in homes:
            op(size)  # warm-up
        for _ in range(IN_PROCESS_RUNS):
            for size in homes:
                started = time.perf_counter()
                op(size)
                times.setdefault(f"{command}@{size}", []).append(time.perf_counter() - started)
    return times


def main() -> None:
    args = parse_args(__doc__)
    env = child_env()
    with temp_folder() as root:
        homes: dict[int, Home] = {}
        for size in SIZES:
            home = example_home(root / f"home-{size}")
            add_done_tasks(home, size)
            homes[size] = home
        sub = subprocess_times(homes, env)
        inproc = in_process_times(homes)
    rows, doc = summarise({"subprocess": sub, "in-process": inproc})
    if args.json:
        print(json.dumps({"sizes": SIZES, "flat_ratio": FLAT, "zoo": install_note(), **doc},
                         indent=2))  # fmt: skip
        return
    small, big = SIZES
    print(install_note() + "\n")
    print(
        table(
            f"cost as done/ grows: {small:,} vs {big:,} done tasks (median ms; subprocess "
            f"n={RUNS}, in-process n={IN_PROCESS_RUNS}); flat = ratio <= {FLAT}",
            [
                "operation",
                f"{small:,} done",
                "p25-p75",
                f"{big:,} done",
                "p25-p75",
                "ratio",
                "verdict",
            ],
            rows,
        )  # fmt: skip
    )


def summarise(
    groups: dict[str, dict[str, list[float]]],
) -> tuple[list[list[object]], dict[str, Any]]:
    small, big = SIZES
    rows: list[list[object]] = []
    doc: dict[str, Any] = {}
    for group, times in groups.items():
        for command in ("status", "dispatch"):
            a, b = times[f"{command}@{small}"], times[f"{command}@{big}"]
            ratio = statistics.median(b) / statistics.median(a)
            label = f"zoo {command}" if group == "subprocess" else _in_process_name(command)
            rows.append([label, f"{median_ms(a):.2f}", spread_ms(a), f"{median_ms(b):.2f}",
                         spread_ms(b), f"{ratio:.2f}x",
                         "flat" if ratio <= FLAT else "GROWS"])  # fmt: skip
            doc.setdefault(group, {})[command] = {
                "small_ms": round(median_ms(a), 3),
                "big_ms": round(median_ms(b), 3),
                "ratio": round(ratio, 3),
                "flat": ratio <= FLAT,
            }
    return rows, doc


def _in_process_name(command: str) -> str:
    return "reports.status()" if command == "status" else "router.dispatch()"


if __name__ == "__main__":
    main()
