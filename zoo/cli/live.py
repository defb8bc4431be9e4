"""`zoo run` in the foreground: the tiers it will call, the watcher, the signals and the
live view, until a person stops it; its exit status.

The runner works in a thread of its own, so that a signal (handled in the main thread)
wakes the work instead of interrupting it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from zoo.errors import ExitStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from zoo.engine.runreport import RunReport
    from zoo.engine.zoo import Zoo


def _announce_models(zoo: Zoo) -> None:
    from zoo.cli import render

    for tier in sorted({zoo.roster.tier_name(a) for a in zoo.roster.agents}):
        resolved = zoo.models.resolved(tier)
        render.line(f"tier {tier}: {resolved.provider} ({resolved.why})")


def _in_thread(work: Callable[[], RunReport]) -> RunReport:
    """`work()` in a thread of its own; the main thread only waits, so that a signal
    handler (which runs in the main thread) can wake the work instead of interrupting it."""
    import threading

    done: list[RunReport] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(work())
        except BaseException as e:  # handed to the main thread, raised there
            failed.append(e)

    thread = threading.Thread(target=target, name="zoo-runner")
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
    if failed:
        raise failed[0]
    return done[0]


def run_live(zoo: Zoo, poll: bool) -> int:
    """`zoo run`: say which model each tier calls, then watch and work until SIGINT or
    SIGTERM; the exit status.

    The first signal stops cleanly: no new step starts and the steps under way finish.
    A second one exits at once; the steps it cuts short resume on the next run.
    """
    import contextlib
    import signal

    from zoo.cli import liveview, render
    from zoo.engine.live import Live
    from zoo.engine.watcher import Watcher

    _announce_models(zoo)
    watcher = Watcher(zoo.home.workspaces, polling=poll, roster=zoo.home.roster_path)
    live = Live(zoo, watcher, on_line=render.line)
    mode = watcher.start()
    tty = sys.stdout.isatty()
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if got:
            render.error("stopped at once: the steps cut short resume on the next run")
            os._exit(ExitStatus.INTERRUPTED)
        got.append(signum)
        live.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: live.reload())
    render.line(f"zoo runner on {zoo.home.root}: watching workspaces/ ({mode}); Ctrl-C stops")
    try:
        with liveview.View(live, zoo.roster) if tty else contextlib.nullcontext():
            report = _in_thread(live.run)
    finally:
        watcher.stop()
    for failure in report.failed:
        render.error(failure)
    render.line(f"zoo runner stopped: {render.run_summary(report)}")
    if report.stopped is not None or report.uncommitted is not None:
        return ExitStatus.ERROR  # it stopped for a fault a person must fix
    return ExitStatus.INTERRUPTED if got == [signal.SIGINT] else ExitStatus.OK
