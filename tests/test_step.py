"""A step's result is a value: its next step stated once (a table), applied the same way
wherever the turn was computed."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict
from typing import Any

import pytest

from tests.conftest import open_zoo
from zoo.engine.result import (
    Escalate,
    Finish,
    Handoff,
    NextStep,
    StepResult,
    Wait,
    next_step,
    section,
)
from zoo.engine.router import dispatch
from zoo.engine.runreport import RunReport
from zoo.engine.step import apply
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.steplog import StepLogs

LIMIT = "handed off 4 times, more than max_handoffs (3)"

# (what the turn decided, the agent's handoff targets, handoffs so far) -> its next step;
# max_handoffs is 3 and the agent is beaver.
PRECEDENCE: list[tuple[dict[str, Any], list[str], int, NextStep]] = [
    ({}, ["owl"], 0, Handoff("owl")),
    ({}, [], 0, Finish()),
    ({}, ["owl", "lark"], 0, Handoff("owl")),
    ({"handoff_to": "lark", "handoff_note": "notes"}, ["owl", "lark"], 0, Handoff("lark", "notes")),
    ({"escalation": "needs legal"}, ["owl"], 0, Escalate("needs legal", by="beaver")),
    ({"escalation": "needs legal", "handoff_to": "owl"}, ["owl"], 0,
     Escalate("needs legal", by="beaver")),
    ({"waiting": "A-0001"}, ["owl"], 0, Wait("A-0001")),
    ({"waiting": "A-0001"}, [], 0, Wait("A-0001")),
    ({"waiting": "A-0001", "escalation": "stuck"}, ["owl"], 0, Escalate("stuck", by="beaver")),
    ({"error": "HTTP 500"}, [], 0, Escalate("HTTP 500", by="beaver", failed=True)),
    ({"error": "HTTP 500", "escalation": "stuck", "waiting": "A-0001", "handoff_to": "owl"},
     ["owl"], 3, Escalate("HTTP 500", by="beaver", failed=True)),
    ({}, ["owl"], 2, Handoff("owl")),
    ({}, ["owl"], 3, Escalate(LIMIT, by="runner")),
    ({"handoff_to": "owl", "handoff_note": "again"}, ["owl"], 3, Escalate(LIMIT, by="runner")),
    ({}, [], 3, Finish()),
    ({"escalation": "stuck"}, ["owl"], 3, Escalate("stuck", by="beaver")),
    ({"waiting": "A-0001"}, ["owl"], 3, Wait("A-0001")),
]  # fmt: skip


@pytest.mark.parametrize(("decided", "targets", "handoffs", "expected"), PRECEDENCE)
def test_the_next_step_follows_one_order(
    decided: dict[str, Any], targets: list[str], handoffs: int, expected: NextStep
) -> None:
    fields = {"handoff_to": None, "handoff_note": "", "escalation": None, "waiting": None,
              "error": None, **decided}  # fmt: skip
    got = next_step("beaver", **fields, targets=targets, handoffs=handoffs, max_handoffs=3)
    assert got == expected


def _result(nxt: NextStep, **fields: Any) -> StepResult:
    return StepResult(
        agent="beaver",
        texts=("Fixed the login bug.", "Tests pass."),
        effects=("wrote dev:fix.md", "handoff to owl: please test"),
        next=nxt,
        events=(("tool.call", {"task": "T-0001", "agent": "beaver", "tool": "write_file"}),),
        tokens=120,
        **fields,
    )


def test_a_result_is_plain_data_that_travels() -> None:
    result = _result(Handoff("owl", "please test"))
    assert pickle.loads(pickle.dumps(result)) == result
    doc = json.loads(json.dumps(asdict(result)))
    assert doc["next"] == {"to": "owl", "note": "please test"} and doc["tokens"] == 120


def test_the_section_is_what_was_said_then_the_effects() -> None:
    assert section(_result(Handoff("owl"))) == (
        "Fixed the login bug.\n\nTests pass.\n\n- wrote dev:fix.md\n- handoff to owl: please test"
    )
    failed = StepResult("beaver", (), (), Escalate("HTTP 500", "beaver"), (), error="HTTP 500")
    assert section(failed) == "*(no text)*\n\n- failed: HTTP 500"


def test_a_result_computed_elsewhere_is_applied_to_its_task(home: Home) -> None:
    """Sent to a worker and back (pickled), the result lands in one save and journal write."""
    zoo = open_zoo(home)
    task, _ = dispatch(zoo, "Fix the login bug", to="beaver")
    result = pickle.loads(pickle.dumps(_result(Handoff("owl", "please test"))))
    report = RunReport()
    logs = StepLogs(home)
    log = logs.open(task.id, 1, "beaver")
    nxt = apply(zoo, task, result, report, log, "2026-01-05T10:00:00Z")
    log.close(done=True)
    logs.close()
    assert nxt is task and (report.steps, report.handoffs) == (1, 1)
    assert report.lines == [f"{task.id} beaver -> owl"]
    saved = tasks.read(home.workspace("qa") / task.path.name)
    assert (saved.status, saved.agent, saved.steps, saved.meta["handoffs"]) == ("queued", "owl",
                                                                               1, 1)  # fmt: skip
    assert saved.meta["tokens"] == 120
    assert saved.body.endswith(f"## beaver · 2026-01-05T10:00:00Z\n\n{section(result)}\n")
    events = [(e["event"], e.get("tool"), e.get("note")) for e in read_events(home.journal_path)]
    assert events[-3:] == [("tool.call", "write_file", None), ("step.finished", None, None),
                           ("task.handoff", None, "please test")]  # fmt: skip


@pytest.mark.parametrize(
    ("nxt", "counter", "line", "folder", "failed"),
    [
        (Finish(), "done", "T-0001 beaver finished: done", "done", []),
        (Wait("A-0001"), "waiting", "T-0001 beaver waits for approval A-0001", "dev", []),
        (Escalate("needs legal", "beaver"), "escalated", "T-0001 beaver escalated: needs legal",
         "escalations", []),
        (Escalate(LIMIT, "runner"), "escalated", f"T-0001 escalated: {LIMIT}", "escalations", []),
        (Escalate("HTTP 500", "beaver", failed=True), "escalated",
         "T-0001 beaver failed: HTTP 500", "escalations", ["T-0001 beaver: HTTP 500"]),
    ],
)  # fmt: skip
def test_each_next_step_moves_the_task_and_says_so(
    home: Home, nxt: NextStep, counter: str, line: str, folder: str, failed: list[str]
) -> None:
    zoo = open_zoo(home)
    task, _ = dispatch(zoo, "Fix the login bug", to="beaver")
    report = RunReport()
    logs = StepLogs(home)
    log = logs.open(task.id, 1, "beaver")
    assert apply(zoo, task, _result(nxt), report, log, "2026-01-05T10:00:00Z") is None
    logs.close()
    assert getattr(report, counter) == 1 and report.lines == [line] and report.failed == failed
    assert (home.workspace(folder) / task.path.name).is_file()
    last = list(read_events(home.journal_path))[-1]
    kind = {"done": "task.done", "waiting": "task.waiting", "escalated": "task.escalated"}
    assert last["event"] == kind[counter]
    if isinstance(nxt, Escalate):
        assert (last["by"], last["reason"], last.get("failed")) == (nxt.by, nxt.reason,
                                                                   nxt.failed or None)  # fmt: skip
