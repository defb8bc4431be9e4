"""Crash safety, for real: `zoo run --once` killed with SIGKILL, then run again until idle."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from llmock.scenarios import Delay, Reply, ToolCall
from llmock.testing import LLMockServer

from tests.conftest import ZooCli, make_home, open_zoo
from tests.test_providers import KEYS, posts
from tests.test_providers import roster as wire_roster
from tests.waiting import wait_for
from zoo.engine.router import dispatch
from zoo.engine.zoo import Zoo
from zoo.policy.tools import ToolContext, perform
from zoo.state import memory, tasks
from zoo.state.home import Home
from zoo.state.journal import read_events


def _runner(home: Home) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", "--home", str(home.root), "run", "--once"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _lines(home: Home) -> int:
    try:
        with home.journal_path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def _ended_or_grown(proc: subprocess.Popen[bytes], home: Home, target: int) -> Callable[[], bool]:
    """Whether the runner has ended, or the journal has grown to `target` lines."""
    return lambda: proc.poll() is not None or _lines(home) >= target


def test_killed_runs_lose_no_brief_and_repeat_no_effect(home: Home, zoo_cli: ZooCli) -> None:
    """40 briefs; `run --once` SIGKILLed at 15 seeded moments, then run until idle."""
    zoo = open_zoo(home)
    ids = {dispatch(zoo, f"Fix bug number {i}")[0].id for i in range(40)}
    rng = random.Random(1234)
    interrupted = 0
    for _ in range(15):
        # kill when the journal has grown by a (seeded) random number of events: mid-work
        target = _lines(home) + rng.randint(1, 60)
        proc = _runner(home)
        wait_for(_ended_or_grown(proc, home, target), 120,
                 "the runner neither ended nor wrote to the journal", every=0.0005)  # fmt: skip
        interrupted += proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert interrupted >= 12
    for _ in range(5):  # then run until idle
        if _runner(home).wait(timeout=120) == 0:
            break
    done = [tasks.read(p) for p in tasks.task_files(home.workspace("done"))]
    assert sorted(t.id for t in done) == sorted(ids)  # every brief done, exactly once
    assert all(t.meta["status"] == "done" and t.meta["agent"] == "lark" for t in done)
    for task in done:  # one section per step, and a step is never counted twice
        assert [task.body.count(f"\n## {a} · ") for a in ("beaver", "owl", "lark")] == [1, 1, 1]
        assert task.meta["steps"] == 3
    keys = []  # the offline model keeps a note in its agent's own memory each step
    for step, agent in enumerate(("beaver", "owl", "lark"), start=1):
        entries = memory.parse(home.agent_memory(agent).read_text(encoding="utf-8"))
        assert {(e.agent, e.step) for e in entries} == {(agent, step)}
        keys += [(e.task, e.step) for e in entries]
    assert sorted(keys) == sorted((i, s) for i in ids for s in (1, 2, 3))  # no duplicate notes
    assert not home.memory_path.exists()
    drafts = home.workspace("dev") / "drafts"  # beaver's write_file, redone safely after a kill
    assert sorted(p.name for p in drafts.iterdir()) == sorted(
        f"fix-bug-number-{i}.md" for i in range(40)
    )
    leftovers = [p for p in home.workspaces.rglob("*")
                 if p.is_file() and p.parent not in (home.workspace("done"), drafts)]  # fmt: skip
    assert leftovers == []
    assert list((home.state / "steps").iterdir()) == []
    finished = sorted((e["task"], e["step"]) for e in read_events(home.journal_path)
                      if e["event"] == "step.finished")  # fmt: skip
    assert finished == sorted((i, s) for i in ids for s in (1, 2, 3))  # each step journaled once
    assert zoo_cli("log", "--verify", "--home", str(home.root)).code == 0


def test_a_kill_between_model_reply_and_commit_repeats_nothing(
    tmp_path: Path, llm: LLMockServer
) -> None:
    """The runner dies while the model works on its second answer: the first answer's
    note is kept, and on rerun the step resumes: one section, one note, no repeat call."""
    home = make_home(tmp_path / "zoo", wire_roster(llm))
    task, _ = dispatch(Zoo.open(home, env=KEYS), "Write the notes", to="beaver")
    remember = ToolCall("remember", {"note": "the notes live in notes.md", "shared": True})
    llm.state.scenarios.add(
        Reply(text="Noting.", tool_calls=(remember,)), Reply(text="Never heard."),
        Delay(0), Delay(10),  # the second call hangs: the runner is killed while it waits
    )  # fmt: skip
    env = {**os.environ, **KEYS}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "--home", str(home.root), "run",
                             "--once"], env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    never = "the runner never made its second call"
    wait_for(lambda: _second_call_waiting(llm) or proc.poll() is not None, 30, never)
    assert _second_call_waiting(llm), never
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(memory.parse(home.memory_path.read_text(encoding="utf-8"))) == 1
    assert tasks.find(home, task.id).meta["status"] == "queued"  # nothing committed yet

    llm.state.scenarios.clear()
    llm.state.scenarios.add(Reply(text="Done: noted where the notes live."))
    done = subprocess.run([sys.executable, "-m", "zoo", "--home", str(home.root), "run",
                           "--once"], env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{task.id} beaver resumed step 1 after an interruption" in done.stdout
    finished = tasks.find(home, task.id)
    assert finished.meta["status"] == "done" and finished.meta["steps"] == 1
    assert finished.body.count("\n## beaver · ") == 1
    assert "Noting.\n\nDone: noted where the notes live." in finished.body
    notes = memory.parse(home.memory_path.read_text(encoding="utf-8"))
    assert [(n.task, n.step, n.text) for n in notes] == [(task.id, 1, "the notes live in notes.md")]
    # the first answer was replayed from the step log, not asked for again
    asked = [len(r.body["messages"]) for r in posts(llm)]
    assert asked.count(1) == 1 and asked[-1] == 3  # (the killed call may show up as a 3)
    started = [e for e in read_events(home.journal_path) if e["event"] == "step.started"]
    assert started[-1]["resumed"] == {"replies": 1, "results": 1}


def _second_call_waiting(llm: LLMockServer) -> bool:
    return len(posts(llm)) == 1 and llm.state.journal.in_flight == 1


_STUCK_WRITER = """
import os, sys, time
from pathlib import Path
from zoo.engine.zoo import Zoo
from zoo.state.home import Home
from zoo.policy.tools import ToolContext, perform

def stuck(*args, **kwargs):  # the temp file is written: stop right before the rename
    Path(sys.argv[2]).touch()
    time.sleep(60)

zoo = Zoo.open(Home(Path(sys.argv[1])), env={})
ctx = ToolContext(zoo.home, zoo.roster, "beaver", "T-0001", zoo.memory)
os.rename = stuck
perform(ctx, "write_file", {"path": "drafts/plan.md", "content": "half of a plan"})
"""


def test_a_write_killed_before_its_rename_leaves_no_temp_file(home: Home, tmp_path: Path) -> None:
    """An agent's write_file killed between its temp file and the rename: the next write to
    that folder (the step's redo) removes the dead writer's temp file, never a live one's."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _STUCK_WRITER, str(home.root), str(ready)])
    never = "the writer never reached its rename"
    wait_for(lambda: ready.exists() or proc.poll() is not None, 30, never)
    assert ready.exists(), never
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    drafts = home.workspace("dev") / "drafts"
    [left] = [p.name for p in drafts.iterdir()]
    assert left.endswith(f".{proc.pid}.zoo-tmp") and not (drafts / "plan.md").exists()
    live = drafts / f".0badf00d.{os.getpid()}.zoo-tmp"  # a write under way in a live process
    live.write_text("in flight", encoding="utf-8")
    zoo = open_zoo(home)
    ctx = ToolContext(zoo.home, zoo.roster, "beaver", "T-0001", zoo.memory)
    perform(ctx, "write_file", {"path": "drafts/plan.md", "content": "the whole plan"})
    assert sorted(p.name for p in drafts.iterdir()) == [live.name, "plan.md"]
    assert (drafts / "plan.md").read_text(encoding="utf-8") == "the whole plan"
