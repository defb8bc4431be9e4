"""The runner: due work -> agent turn -> append -> handoff, done or escalate (DESIGN §5).

`run_once` (`zoo run --once`, the cron entry point) does all work that is due now,
handoffs made meanwhile included, and returns; `Live` (live.py) is `zoo run`, which
watches the folders. Both feed the same loop (loop.py). The runner's parts, each in
its module: what is due (intake.py), one step and its result applied (step.py, turn.py,
result.py), cleaning up after a runner that died (recovery.py). One runner per home at a
time: the caller holds `zoo.state.runnerlock.runner_lock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from zoo.engine.intake import collect_due, fire_schedules
from zoo.engine.loop import Loop, Shift
from zoo.engine.runreport import RunReport
from zoo.engine.zoo import Zoo


def run_once(
    zoo: Zoo, *, concurrency: int | None = None, on_line: Callable[[str], None] | None = None
) -> RunReport:
    """Do all work due now (due schedules included), then return: the loop, fed a full
    look at every folder each time it has nothing left to do, until that finds nothing
    due. The caller holds `runner_lock`."""
    started = time.perf_counter()
    report = RunReport(on_line=on_line)
    seen_broken: set[tuple[str, int]] = set()
    shift = Shift.begin(zoo, report)
    try:
        with Loop(shift, concurrency or zoo.roster.defaults.concurrency) as loop:
            while not loop.halted:
                fire_schedules(zoo, report)
                due = collect_due(zoo, report, seen_broken)
                if not due or not loop.add(due):
                    break
                loop.wait_idle()
    finally:
        shift.end()
    report.seconds = time.perf_counter() - started
    return report
