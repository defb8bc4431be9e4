"""A person's edits and moves while Zoo works on a task: kept, requeued, journaled."""

from __future__ import annotations

import threading

from tests.conftest import open_zoo
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.models.base import Reply, Request
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock


def _edit_mid_step(edit: callable) -> ScriptedModel:  # type: ignore[valid-type]
    """A model whose first answer comes only after `edit()` changed the task file."""

    def answer(_request: Request) -> Reply:
        edit()
        return says("Drafted the post.")

    return ScriptedModel([answer])


def _run(home: Home, model: ScriptedModel) -> None:
    with runner_lock(home):
        report = run_once(open_zoo(home, model))
    assert report.failed == []


def test_an_edit_made_while_the_step_runs_is_kept(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Write a blog post", to="lark")
    path = task.path

    def edit() -> None:  # a person, in their editor, while lark's model thinks
        text = path.read_text(encoding="utf-8")
        text = text.replace("title: Write a blog post", "title: Write the launch post")
        text = text.replace("---\n# ", "priority: high\n---\n# ", 1)
        path.write_text(text + "\nAlso mention the beta.\n", encoding="utf-8")

    model = _edit_mid_step(edit)
    _run(home, model)
    model.assert_done()
    done = tasks.read(home.workspace("done") / path.name)
    assert done.meta["title"] == "Write the launch post" and done.meta["priority"] == "high"
    assert done.meta["status"] == "done" and done.meta["steps"] == 1
    assert "Also mention the beta.\n\n## lark · " in done.body
    assert done.body.rstrip().endswith("Drafted the post.")
    kept = [e for e in read_events(home.journal_path) if e["event"] == "task.edit_kept"]
    assert len(kept) == 1 and kept[0]["kept"] == ["priority", "title"] and kept[0]["body"]


def test_a_flow_key_the_person_changed_mid_step_is_set_by_the_step(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Write a blog post", to="lark")
    path = task.path

    def edit() -> None:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("steps: 0", "steps: 7"), encoding="utf-8")

    model = _edit_mid_step(edit)
    _run(home, model)
    done = tasks.read(home.workspace("done") / path.name)
    assert done.meta["steps"] == 1
    kept = [e for e in read_events(home.journal_path) if e["event"] == "task.edit_kept"]
    assert kept[0]["overridden"] == ["steps"] and kept[0].get("kept") is None


def test_a_file_moved_mid_step_is_not_left_behind_as_a_copy(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Write a blog post", to="lark")
    path = task.path
    moved = home.workspace("dev") / path.name
    moved.parent.mkdir(parents=True, exist_ok=True)
    done_moving = threading.Event()

    def edit() -> None:
        path.rename(moved)
        done_moving.set()

    _run(home, _edit_mid_step(edit))
    assert done_moving.is_set() and not moved.exists()
    assert (home.workspace("done") / path.name).is_file()
    kept = [e for e in read_events(home.journal_path) if e["event"] == "task.edit_kept"]
    assert kept[0]["moved_from"] == "dev"


def test_a_file_nobody_touched_makes_no_edit_event(home: Home) -> None:
    dispatch(open_zoo(home), "Fix the login bug")
    with runner_lock(home):
        run_once(open_zoo(home))
    assert not [e for e in read_events(home.journal_path) if e["event"] == "task.edit_kept"]


def _escalated(home: Home, scripted: ScriptedModel) -> tasks.Task:
    scripted.add(says("", call("escalate", reason="which product?")), says("Asked."))
    task, _ = dispatch(open_zoo(home, scripted), "Write a blog post", to="lark")
    _run(home, scripted)
    return tasks.read(home.workspace("escalations") / task.path.name)


def test_an_escalated_task_moved_into_a_workspace_is_queued_for_its_agent(
    home: Home, scripted: ScriptedModel
) -> None:
    task = _escalated(home, scripted)
    target = home.workspace("dev") / task.path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    task.path.rename(target)  # a person hands it to beaver by moving the file
    scripted.add(says("Fixed."), says("Tested."), says("Noted."))
    _run(home, scripted)
    done = tasks.read(home.workspace("done") / task.path.name)
    assert done.meta["status"] == "done" and "escalation" not in done.meta
    requeued = [e for e in read_events(home.journal_path) if e["event"] == "task.requeued"]
    assert [(e["was"], e["folder"], e["escalation"]) for e in requeued] == [
        ("escalated", "dev", "which product?")]  # fmt: skip
    assert scripted.requests[-3].meta["agent"] == "beaver"


def test_a_done_task_moved_into_the_inbox_is_routed_again(home: Home) -> None:
    task, _ = dispatch(open_zoo(home), "Write a blog post", to="lark")
    _run(home, ScriptedModel([says("Posted.")]))
    done = home.workspace("done") / task.path.name
    done.rename(home.workspace("inbox") / task.path.name)
    _run(home, ScriptedModel([says("Posted again.")]))  # routed by rules: 'blog'
    again = tasks.read(home.workspace("done") / task.path.name)
    assert again.body.count("## lark · ") == 2
    kinds = [e["event"] for e in read_events(home.journal_path)]
    assert kinds.count("task.requeued") == 1 and kinds.count("task.routed") == 2
