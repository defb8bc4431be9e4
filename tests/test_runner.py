"""The runner: agent turns, tool calls, handoff / done / escalate, hand edits, one runner."""

from __future__ import annotations

import json
import threading

import pytest

from tests.conftest import ZooCli, make_home, open_zoo
from tests.waiting import wait_for
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.errors import ModelError, ScriptError
from zoo.models.base import Model, Reply, Request
from zoo.models.offline import OfflineModel
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events, verify
from zoo.state.memory import parse
from zoo.state.runnerlock import RunnerBusy, runner_lock


def run(home: Home, model: ScriptedModel | None = None):  # type: ignore[no-untyped-def]
    with runner_lock(home):
        return run_once(open_zoo(home, model))


def test_offline_brief_travels_the_chain_into_done(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Fix the login bug")
    report = run(home)
    assert (report.steps, report.handoffs, report.done, report.failed) == (3, 2, 1, [])
    done = tasks.read(home.workspace("done") / task.path.name)
    assert done.meta["status"] == "done" and done.meta["agent"] == "lark"
    assert done.meta["steps"] == 3 and done.meta["handoffs"] == 2
    headings = [line for line in done.body.splitlines() if line.startswith("## ")]
    assert [h.split(" · ")[0] for h in headings] == ["## beaver", "## owl", "## lark"]
    assert "Offline draft" in done.body
    assert not home.memory_path.exists()  # the offline model's notes are the agents' own
    for step, agent in enumerate(("beaver", "owl", "lark"), start=1):
        notes = parse(home.agent_memory(agent).read_text(encoding="utf-8"))
        assert [(e.agent, e.task, e.step) for e in notes] == [(agent, task.id, step)]
    assert (home.workspace("dev") / "drafts" / f"{task.path.name[7:]}").exists()  # beaver wrote
    kinds = [e["event"] for e in read_events(home.journal_path)]
    assert kinds.count("step.finished") == 3 and kinds[-1] == "task.done"
    assert verify(home.journal_path)[1] is None


def test_agent_chooses_a_handoff_target_with_the_tool(home: Home, scripted: ScriptedModel) -> None:
    roster = (home.roster_path.read_text(encoding="utf-8")
              .replace("handoff: [owl]", "handoff: [owl, lark]"))  # fmt: skip
    home.roster_path.write_text(roster, encoding="utf-8")
    scripted.add(
        says("Fixed it.", call("handoff", to="lark", note="release note please")),
        says("Handed to lark."),
        says("Release note written."),
    )
    task, _ = dispatch(open_zoo(home, scripted), "Fix the bug", to="beaver")
    report = run(home, scripted)
    assert report.done == 1 and report.handoffs == 1
    body = tasks.read(home.workspace("done") / task.path.name).body
    assert "Fixed it.\n\nHanded to lark.\n\n- handoff to lark: release note please" in body
    assert scripted.requests[2].meta["agent"] == "lark"


def test_a_refused_tool_is_a_tool_error_for_the_model(home: Home, scripted: ScriptedModel) -> None:
    scripted.add(says("", call("run", command=["rm", "-rf", "/"])), says("Done without it."))
    task, _ = dispatch(open_zoo(home, scripted), "Write a blog post", to="lark")
    run(home, scripted)
    tool_reply = scripted.requests[1].messages[-1]
    assert tool_reply.role == "tool" and tool_reply.is_error
    assert tool_reply.content == "error: tool 'run' is not available to lark"
    refused = [e for e in read_events(home.journal_path) if e["event"] == "tool.refused"]
    assert refused[0]["tool"] == "run" and refused[0]["agent"] == "lark"


def test_handoff_to_an_agent_not_listed_is_refused(home: Home, scripted: ScriptedModel) -> None:
    scripted.add(says("", call("handoff", to="lark", note="skip QA")), says("ok"), says("tested"),
                 says("noted"))  # fmt: skip
    dispatch(open_zoo(home, scripted), "Fix the bug", to="beaver")
    report = run(home, scripted)
    assert scripted.requests[1].messages[-1].content == (
        "error: cannot hand off to 'lark': choose one of owl"
    )
    assert report.handoffs == 2  # beaver -> owl (its default), owl -> lark


def test_model_error_escalates_with_the_error_and_fails_the_run(
    home: Home, scripted: ScriptedModel
) -> None:
    scripted.add(says("Starting.", call("remember", note="half way")), ModelError("HTTP 500"))
    task, _ = dispatch(open_zoo(home, scripted), "Fix the bug", to="beaver")
    report = run(home, scripted)
    assert not report.ok and report.failed == [f"{task.id} beaver: HTTP 500"]
    esc = tasks.read(home.workspace("escalations") / task.path.name)
    assert esc.meta["status"] == "escalated" and esc.meta["escalation"] == "HTTP 500"
    assert "Starting." in esc.body and "- failed: HTTP 500" in esc.body


def test_max_turns_bounds_a_turn(home: Home, scripted: ScriptedModel) -> None:
    roster = home.roster_path.read_text(encoding="utf-8") + "defaults: {max_turns: 2}\n"
    home.roster_path.write_text(roster, encoding="utf-8")
    scripted.add(says("", call("remember", note="a")), says("", call("remember", note="b")))
    task, _ = dispatch(open_zoo(home, scripted), "Write a blog post", to="lark")
    report = run(home, scripted)
    reason = "lark made 2 model calls without finishing (max_turns)"
    assert report.failed == [f"{task.id} lark: {reason}"]
    assert tasks.read(home.workspace("escalations") / task.path.name).meta["escalation"] == reason


def test_escalate_tool_sends_the_task_to_a_person(home: Home, scripted: ScriptedModel) -> None:
    scripted.add(says("", call("escalate", reason="needs legal review")), says("Waiting."))
    task, _ = dispatch(open_zoo(home, scripted), "Write a blog post", to="lark")
    report = run(home, scripted)
    assert report.ok and report.escalated == 1
    esc = tasks.read(home.workspace("escalations") / task.path.name)
    assert esc.meta["escalation"] == "needs legal review"


def test_a_cycle_is_cut_by_max_handoffs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = make_home(tmp_path / "z", """\
        version: 1
        name: loop
        lead: roo
        defaults: {max_handoffs: 3}
        agents:
          roo: {role: Lead}
          ping: {role: Ping, routes: [ping], handoff: [pong]}
          pong: {role: Pong, handoff: [ping]}
        """)  # fmt: skip
    task, _ = dispatch(open_zoo(home), "ping")
    report = run(home)
    assert report.steps == 4 and report.escalated == 1
    esc = tasks.read(home.workspace("escalations") / task.path.name)
    assert esc.meta["escalation"] == "handed off 4 times, more than max_handoffs (3)"


def test_a_changed_agent_field_is_followed(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Fix the bug", to="beaver")
    text = task.path.read_text(encoding="utf-8").replace("agent: beaver", "agent: lark")
    task.path.write_text(text, encoding="utf-8")
    report = run(home)
    done = tasks.read(home.workspace("done") / task.path.name)
    assert done.meta["steps"] == 1 and done.meta["agent"] == "lark"
    assert "reassigned by hand to lark" in " ".join(report.lines)


def test_a_file_moved_to_another_folder_is_followed(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Fix the bug", to="beaver")
    home.workspace("qa").mkdir()
    task.path.rename(home.workspace("qa") / task.path.name)
    run(home)
    done = tasks.read(home.workspace("done") / task.path.name)
    assert [line.split(" · ")[0] for line in done.body.splitlines() if line.startswith("## ")] == [
        "## owl", "## lark",
    ]  # fmt: skip


def test_a_brief_dropped_in_the_inbox_is_adopted_routed_and_worked(home: Home) -> None:
    inbox = home.workspace("inbox")
    inbox.mkdir(parents=True)
    (inbox / "my idea.md").write_text("Write a blog post about our launch.\n", encoding="utf-8")
    report = run(home)
    assert report.routed == 1 and report.done == 1
    assert list(inbox.iterdir()) == []
    (done,) = list(tasks.task_files(home.workspace("done")))
    task = tasks.read(done)
    assert task.meta["source"] == "file" and task.meta["agent"] == "lark"
    assert task.body.startswith("# Write a blog post about our launch.\n")


def test_a_broken_task_file_is_left_alone_reported_and_others_go_on(home: Home) -> None:
    dev = home.workspace("dev")
    dev.mkdir(parents=True)
    broken = dev / "T-0100-broken.md"
    broken.write_text("---\nid: T-0100\nstatus: [oops\n---\n# Broken\n", encoding="utf-8")
    before = broken.read_bytes()
    dispatch(open_zoo(home), "Write a blog post")
    report = run(home)
    assert report.done == 1
    assert len(report.failed) == 1 and report.failed[0].startswith(f"{broken}:3: invalid YAML")
    assert broken.read_bytes() == before


def test_one_runner_per_home(home: Home) -> None:
    with runner_lock(home), pytest.raises(RunnerBusy), runner_lock(home):
        pass
    with runner_lock(home):  # released: free again
        pass


def test_system_prompt_carries_playbook_and_memory(home: Home, scripted: ScriptedModel) -> None:
    home.memory_path.write_text(
        "# MEMORY\n\n## 2026-11-20T09:00:00Z · roo · T-0000\nLogin sessions last 60 seconds.\n",
        encoding="utf-8",
    )
    home.agent_memory("beaver").write_text(
        "# beaver · memory\n\n## 2026-11-20T09:00:00Z · beaver · T-0000\nUse pytest.\n",
        encoding="utf-8",
    )
    scripted.add(says("done"), says("tested"), says("written"))
    dispatch(open_zoo(home, scripted), "Fix the login bug", to="beaver")
    run(home, scripted)
    system = scripted.requests[0].system
    assert system.startswith("# Beaver · Agent\n\n## How you work")
    assert "# Your memory\n- Use pytest. (beaver, T-0000, 2026-11-20T09:00:00Z)" in system
    assert "- Login sessions last 60 seconds. (roo, T-0000" in system
    assert "the task goes to owl" in system
    assert scripted.requests[0].messages[0].content.startswith("Task T-0001: Fix the login bug")


def test_strict_script_fails_on_an_unexpected_call(home: Home) -> None:
    model = ScriptedModel()
    dispatch(open_zoo(home, model), "Fix the bug", to="beaver")
    with pytest.raises(ScriptError, match="unexpected model call #1"):
        run(home, model)


def test_strict_script_fails_on_unused_steps() -> None:
    model = ScriptedModel([says("never used")])
    with pytest.raises(ScriptError, match="1 scripted step"):
        model.assert_done()


class Together(Model):
    """The offline model's answers, but none before `n` calls have been under way at once
    (after that, none waits): a runner that works one step at a time never gets a reply."""

    name = "together"

    def __init__(self, n: int) -> None:
        self.n = n
        self.offline = OfflineModel()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        """The most calls under way at once so far."""
        self.gave_up = False

    def complete(self, request: Request) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            wait_for(lambda: self.most >= self.n or self.gave_up, 10,
                     lambda: f"{self.most} calls at once, never {self.n}")  # fmt: skip
            return self.offline.complete(request)
        except AssertionError:
            self.gave_up = True  # the rest need not wait out the deadline too
            raise
        finally:
            with self.lock:
                self.in_flight -= 1


def test_many_tasks_in_parallel_all_finish(home: Home) -> None:
    zoo = open_zoo(home)
    for i in range(30):
        dispatch(zoo, f"Fix bug {i}")
    model = Together(4)
    with runner_lock(home):
        report = run_once(Zoo.open(home, env={}, model=model), concurrency=4)
    assert (model.most, model.gave_up) == (4, False)  # four steps at once, never more
    assert (report.steps, report.done, report.failed) == (90, 30, [])
    agents = ("beaver", "owl", "lark")
    notes = [parse(home.agent_memory(a).read_text(encoding="utf-8")) for a in agents]
    assert [len(n) for n in notes] == [30, 30, 30]  # one note per step, none lost to a race
    assert verify(home.journal_path)[1] is None


def test_a_brief_dropped_in_the_inbox_is_worked_once(home: Home) -> None:
    """The inbox is read before the folder the brief is routed into: that folder's listing
    must not hand the same task to a second worker."""
    (home.workspace("inbox")).mkdir(parents=True, exist_ok=True)
    (home.workspace("inbox") / "post.md").write_text("# Write a blog post\n", encoding="utf-8")
    report = run(home)
    assert (report.routed, report.steps, report.done) == (1, 1, 1)
    kinds = [e["event"] for e in read_events(home.journal_path)]
    assert kinds.count("step.started") == 1 and kinds.count("task.done") == 1


def _steps_in_order(home: Home) -> list[tuple[str, int]]:
    return [(e["task"], e["step"]) for e in read_events(home.journal_path)
            if e["event"] == "step.finished"]  # fmt: skip


def test_a_worker_follows_its_task_to_rest_before_it_takes_another(home: Home) -> None:
    zoo = open_zoo(home)
    ids = [dispatch(zoo, f"Fix bug {i}")[0].id for i in range(4)]
    with runner_lock(home):
        run_once(open_zoo(home), concurrency=1)
    assert _steps_in_order(home) == [(task_id, step) for task_id in ids for step in (1, 2, 3)]


def test_no_more_tasks_are_under_way_than_there_are_workers(home: Home) -> None:
    """12 tasks, 2 workers: at no moment are more than 2 begun and not yet done (a run
    that started every due task at once had all 12 under way)."""
    zoo = open_zoo(home)
    for i in range(12):
        dispatch(zoo, f"Fix bug {i}")
    with runner_lock(home):
        report = run_once(open_zoo(home), concurrency=2)
    assert (report.steps, report.done, report.failed) == (36, 12, [])
    begun: set[str] = set()
    most = 0
    for event in read_events(home.journal_path):
        if event["event"] == "step.started":
            begun.add(event["task"])
        elif event["event"] == "task.done":
            begun.discard(event["task"])
        most = max(most, len(begun))
    assert 1 <= most <= 2


def test_a_step_that_raises_stops_the_run_and_the_error_surfaces(home: Home) -> None:
    """A bug (not a model's error) in a step: no further step starts, and run_once raises it."""
    model = ScriptedModel([says("Fixed."), RuntimeError("a bug in a tool")])
    zoo = open_zoo(home, model)
    for i in range(5):
        dispatch(zoo, f"Fix bug {i}")
    with runner_lock(home), pytest.raises(RuntimeError, match="a bug in a tool"):
        run_once(open_zoo(home, model), concurrency=1)
    assert len(model.requests) == 2  # T-0001 beaver, then T-0001 owl raised: nothing after
    assert _steps_in_order(home) == [("T-0001", 1)]


def test_the_report_is_the_document_zoo_run_json_prints(home: Home, zoo_cli: ZooCli) -> None:
    dispatch(open_zoo(home), "Fix the login bug")
    printed = json.loads(zoo_cli("run", "--once", "--json", "--home", str(home.root)).out)
    dispatch(open_zoo(home), "Fix the logout bug")  # the same work again, in-process
    report = run(home)
    assert report.document() == {"ok": True, "steps": 3, "routed": 0, "handoffs": 2, "done": 1,
                                 "escalated": 0, "failed": [],
                                 "seconds": round(report.seconds, 3)}  # fmt: skip
    assert {**printed, "seconds": None} == {**report.document(), "seconds": None}
