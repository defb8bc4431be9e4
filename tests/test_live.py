"""`zoo run`, the long-running runner, as a real process: the watcher wakes it, signals
stop it, and one runner at a time holds a home. Tests wait on what a user would see (a
line of output, a file in done/), never on a sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from llmock.scenarios import Delay, Reply
from llmock.testing import LLMockServer

from tests.conftest import make_home, open_zoo
from tests.test_providers import KEYS
from tests.test_providers import roster as wire_roster
from tests.waiting import wait_for
from zoo.engine.live import Live
from zoo.engine.router import dispatch
from zoo.engine.watcher import Watcher
from zoo.engine.zoo import Zoo
from zoo.models.scripted import ScriptedModel
from zoo.state import leases, tasks
from zoo.state.home import Home
from zoo.state.journal import read_events

TIMEOUT = 30.0


class Runner:
    """A `zoo run` process and the lines it has printed so far."""

    def __init__(self, home: Home, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo", "--home", str(home.root), "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, wanted: str, timeout: float = TIMEOUT) -> str:
        """The first printed line containing `wanted`, once it is printed."""
        never = f"zoo run never printed {wanted!r}; it printed {{}}"

        def printed() -> str | None:
            ended = self.proc.poll() is not None and not self._reader.is_alive()
            found = next((line for line in list(self.lines) if wanted in line), None)
            if found is None and ended:
                raise AssertionError(never.format(self.lines))
            return found

        return wait_for(printed, timeout, lambda: never.format(self.lines))

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        return code


@contextmanager
def running(home: Home, *args: str, env: dict[str, str] | None = None) -> Iterator[Runner]:
    runner = Runner(home, *args, env=env)
    try:
        runner.wait_for("watching workspaces/")
        yield runner
    finally:
        if runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait(timeout=TIMEOUT)


def test_a_brief_dropped_in_the_inbox_is_worked_at_once(home: Home) -> None:
    with running(home) as runner:
        assert "(inotify)" in runner.lines[-1]
        inbox = home.workspace("inbox")
        (inbox / "login.md").write_text("# Fix the login bug\n\nUsers are logged out.\n",
                                        encoding="utf-8")  # fmt: skip
        runner.wait_for("T-0001 lark finished: done")
        spend = _spend_shown(home)  # while the runner still runs
        assert spend["input_tokens"] > 0 and set(spend["by_agent"]) == {"beaver", "owl", "lark"}
        assert runner.stop() == 130
    done = tasks.read(home.workspace("done") / "T-0001-fix-the-login-bug.md")
    assert (done.meta["source"], done.meta["steps"]) == ("file", 3)
    assert (
        runner.lines[-1]
        == "zoo runner stopped: 3 steps, 1 routed, 1 done, 0 escalated in "
        + (runner.lines[-1].rsplit(" in ", 1)[1])
    )
    assert runner.proc.stderr is not None and runner.proc.stderr.read() == ""


def test_a_task_moved_by_hand_between_folders_is_picked_up(home: Home) -> None:
    zoo = open_zoo(home)
    task, _ = dispatch(zoo, "Fix the login bug")
    zoo.escalate(task, "needs a person", by="beaver")
    with running(home) as runner:
        text = task.path.read_text(encoding="utf-8").replace("status: escalated", "status: queued")
        staged = home.root / "staged.md"  # a person's editor writes elsewhere, then moves it in
        staged.write_text(text, encoding="utf-8")
        task.path.unlink()
        staged.rename(home.workspace("qa") / task.path.name)
        runner.wait_for(f"{task.id} moved by hand to qa/: now owl's")
        runner.wait_for(f"{task.id} lark finished: done")
        assert runner.stop(signal.SIGTERM) == 0  # SIGTERM: a clean stop, exit 0
    done = tasks.read(home.workspace("done") / task.path.name)
    assert [done.body.count(f"\n## {a} · ") for a in ("beaver", "owl", "lark")] == [0, 1, 1]


def test_the_polling_fallback_says_so_and_works(home: Home) -> None:
    with running(home, "--poll") as runner:
        assert "(polling every 1s (asked for))" in runner.lines[-1]
        dispatch(open_zoo(home), "Write a blog post")
        runner.wait_for("T-0001 lark finished: done")
        assert runner.stop() == 130


def test_a_schedule_fires_in_the_running_runner(home: Home) -> None:
    roster = home.roster_path.read_text(encoding="utf-8")
    home.roster_path.write_text(roster + "schedules:\n  minutely: {cron: '* * * * *', "
                                "agent: lark, brief: Write the minute's blog post.}\n",
                                encoding="utf-8")  # fmt: skip
    state = home.ensure_state() / "schedules.json"
    # as if a runner had last seen this schedule two minutes ago: one catch-up is due
    doc = (
        '{"version": 1, "schedules": {"minutely": {"cron": "* * * * *", '
        '"after": "2026-01-01T00:00:00Z", "next": "2026-01-01T00:01:00Z", "pending": null}}}'
    )
    state.write_text(doc, encoding="utf-8")
    with running(home) as runner:
        line = runner.wait_for("schedule minutely fired for ")
        assert "catching up" in line and "T-0001 queued for lark" in line
        runner.wait_for("T-0001 lark finished: done")
        runner.stop()
    fired = [e for e in read_events(home.journal_path) if e["event"] == "schedule.fired"]
    assert len(fired) == 1 and fired[0]["missed"] > 1000 - 1


def test_a_second_runner_once_exits_0_live_exits_1_and_a_dead_ones_lock_is_reclaimed(
    home: Home,
) -> None:
    with running(home) as first:
        pid = first.proc.pid
        second = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root), "run",
                                 "--once"], capture_output=True, text=True)  # fmt: skip
        assert second.returncode == 0
        up = json.loads(zoo_json(home, "status"))["runner"]
        assert up["pid"] == pid and up["mode"] == "live"
        assert second.stderr == (
            f"zoo: another runner (pid {pid}, since {up['since']}) holds {home.root}; "
            "nothing to do\n"
        )
        live = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root), "run"],
                              capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
        assert (live.returncode, live.stdout) == (1, "")
        assert live.stderr == (
            f"zoo: another runner (pid {pid}, since {up['since']}) holds {home.root}: "
            "stop it first (zoo status shows it)\n"
        )
        assert set(leases.live(home).keys()) == set()  # idle: no task leased
        os.kill(pid, signal.SIGKILL)
        first.proc.wait(timeout=TIMEOUT)
    lease = home.state / "leases" / f"runner-{pid}.json"
    assert lease.exists()  # left behind by the dead runner
    task, _ = dispatch(open_zoo(home), "Write a blog post")
    third = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root), "run",
                            "--once"], capture_output=True, text=True)  # fmt: skip
    assert third.returncode == 0, third.stderr
    assert f"{task.id} lark finished: done" in third.stdout
    assert not lease.exists()
    assert json.loads(zoo_json(home, "status"))["runner"] is None  # its pid file names the dead
    reclaimed = [e for e in read_events(home.journal_path) if e["event"] == "runner.reclaimed"]
    assert [(e["pid"], e["tasks"]) for e in reclaimed] == [(pid, [])]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_lets_the_step_under_way_finish(
    tmp_path: Path, llm: LLMockServer, signum: int
) -> None:
    home = make_home(tmp_path / "zoo", wire_roster(llm))
    llm.state.scenarios.add(Delay(1.0), Reply(text="Done: the notes are written."))
    env = {**os.environ, **KEYS}
    with running(home, env=env) as runner:
        task, _ = dispatch(Zoo.open(home, env=KEYS), "Write the notes", to="beaver")
        wait_for(lambda: llm.state.journal.in_flight > 0, TIMEOUT, "no model call began")
        code = runner.stop(signum)  # while beaver's model call is under way
    assert code == (130 if signum == signal.SIGINT else 0)
    assert f"{task.id} beaver finished: done" in runner.lines
    assert runner.lines[-1].startswith("zoo runner stopped: 1 step, 0 routed, 1 done")
    done = tasks.read(home.workspace("done") / task.path.name)
    assert "Done: the notes are written." in done.body


def test_a_brief_dispatched_while_the_runner_watches_is_worked(home: Home) -> None:
    """`zoo dispatch` holds a lease while it routes; the runner looks again once it is gone."""
    with running(home) as runner:
        for i in range(3):
            done = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root),
                                   "dispatch", f"Fix bug {i} in the login code"],
                                  capture_output=True, text=True)  # fmt: skip
            assert done.returncode == 0, done.stderr
        for i in range(1, 4):  # long before the runner's 30 s look at every folder
            runner.wait_for(f"T-000{i} lark finished: done", timeout=Live.RESCAN_S / 3)
        runner.stop()
    assert tasks.count(home.workspace("done")) == 3


def _spend_shown(home: Home) -> dict[str, Any]:
    """Today's spend as `zoo status --json` shows it, once it shows any."""

    def shown() -> dict[str, Any] | None:
        status = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root), "status",
                                 "--json"], capture_output=True, text=True, check=True)  # fmt: skip
        spend: dict[str, Any] = json.loads(status.stdout)["spend"]
        return spend if spend["input_tokens"] else None

    return wait_for(shown, TIMEOUT, "zoo status never showed the running runner's spend",
                    every=0.05)  # fmt: skip


def zoo_json(home: Home, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "zoo", "--home", str(home.root), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    ).stdout


def test_a_running_runner_takes_up_an_edited_roster_between_steps(home: Home) -> None:
    original = home.roster_path.read_text(encoding="utf-8")
    with running(home) as runner:
        broken = original.replace("lead: roo", "lead: rooo")
        home.roster_path.write_text(broken, encoding="utf-8")
        line = runner.wait_for("zoo.yaml changed but is invalid")
        assert "lead: unknown agent 'rooo' (did you mean 'roo'?)" in line
        added = original + "  jay:\n    role: Designer\n    tools: [remember]\n"
        home.playbook("jay").write_text("# Jay · Designer\n", encoding="utf-8")
        tmp = home.root / "zoo.yaml.new"
        tmp.write_text(added, encoding="utf-8")
        tmp.replace(home.roster_path)  # as editors save: a new file renamed into place
        runner.wait_for("zoo.yaml reloaded: 5 agents, 0 schedules")
        task, _ = dispatch(open_zoo(home), "Draw the logo", to="jay")
        runner.wait_for(f"{task.id} jay finished: done")
        assert runner.stop() == 130
    kinds = [e["event"] for e in read_events(home.journal_path)]
    assert kinds.count("roster.invalid") == 1 and kinds.count("roster.reloaded") == 1
    assert "task.escalated" not in kinds


def test_sighup_makes_the_runner_read_zoo_yaml_again(home: Home) -> None:
    with running(home, "--poll") as runner:  # polling: no watch of zoo.yaml to rely on
        runner.proc.send_signal(signal.SIGHUP)
        runner.wait_for("zoo.yaml reloaded: 4 agents, 0 schedules")
        assert runner.stop(signal.SIGTERM) == 0


def test_a_step_that_raises_stops_the_live_runner_and_surfaces(home: Home) -> None:
    """A bug in a step is not lost in its worker thread: the runner stops and raises it."""
    dispatch(open_zoo(home), "Write a blog post", to="lark")
    live = Live(open_zoo(home, ScriptedModel([RuntimeError("a bug in a tool")])),
                Watcher(home.workspaces))  # fmt: skip
    raised: list[BaseException] = []

    def run() -> None:
        try:
            live.run()
        except RuntimeError as e:
            raised.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():  # it swallowed the error and kept watching
        live.stop()
        thread.join(TIMEOUT)
    assert [str(e) for e in raised] == ["a bug in a tool"]
    assert tasks.find(home, "T-0001").meta["status"] == "queued"  # it waits for the next run
