"""A refused tool call's journal event says what was attempted: the arguments the model
sent, redacted and cut to size (issue 11, point 22)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_home, open_zoo
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.turn import ARGUMENTS_CHARS, attempted
from zoo.models.base import ToolCall
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock

ROSTER = """\
version: 1
name: audit
lead: roo
agents:
  roo: {role: Lead}
  beaver:
    role: Developer
    workspace: dev
    tools: [read_file, write_file, run]
    commands: [ls]
  owl: {role: QA, workspace: qa, tools: [read_file]}
"""
KEY = "sk-ant-api03-" + "k" * 40


def refused_events(
    home: Home, scripted: ScriptedModel, agent: str, *calls: ToolCall
) -> list[dict[str, object]]:
    dispatch(open_zoo(home), "Look around", to=agent)
    scripted.add(says("", *calls), says("Done."))
    with runner_lock(home):
        run_once(open_zoo(home, scripted))
    return [e for e in read_events(home.journal_path) if e["event"] == "tool.refused"]


def test_a_refused_path_is_journaled_with_the_path(tmp_path: Path, scripted: ScriptedModel) -> None:
    home = make_home(tmp_path / "zoo", ROSTER)
    refused = refused_events(
        home, scripted, "beaver",
        call("read_file", "c1", path="../../../etc/passwd"),
        call("write_file", "c2", path="qa:report.md", content=f"key {KEY} " + "x" * 500),
    )  # fmt: skip
    assert [(e["tool"], e["arguments"]) for e in refused] == [
        ("read_file", {"path": "../../../etc/passwd"}),
        ("write_file", {"path": "qa:report.md",
                        "content": "key [redacted] " + "x" * 185 + "... (515 characters)"}),
    ]  # fmt: skip
    assert KEY not in home.journal_path.read_text(encoding="utf-8")


def test_a_refused_command_is_journaled_with_its_argv(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    home = make_home(tmp_path / "zoo", ROSTER)
    refused = refused_events(
        home, scripted, "beaver",
        call("run", "c1", command=["ls", "/root/.ssh\x00"]),
        call("run", "c2", command=["ls", f"--token={KEY}", *[f"f{i}" for i in range(300)]]),
    )  # fmt: skip
    first, second = (e["arguments"] for e in refused)
    assert first == {"command": ["ls", "/root/.ssh\x00"]}
    assert [e["error"] for e in refused] == [
        "a command argument contains a NUL byte", "a command may have at most 256 arguments"
    ]  # fmt: skip
    assert second == {"command": ["ls", "--token=[redacted]", *[f"f{i}" for i in range(18)],
                                  "... 282 more"]}  # fmt: skip


def test_a_tool_the_agent_lacks_is_journaled_with_what_it_tried(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    home = make_home(tmp_path / "zoo", ROSTER)
    [refused] = refused_events(home, scripted, "owl", call("run", command=["ls", "/root/.ssh"]))
    assert refused["error"] == "tool 'run' is not available to owl"
    assert refused["arguments"] == {"command": ["ls", "/root/.ssh"]}


def test_the_arguments_kept_are_bounded_whatever_the_model_sends() -> None:
    huge = {f"k{i}": [["y" * 5000] * 50] * 50 for i in range(50)}
    kept = attempted(huge)
    assert isinstance(kept, str) and len(kept) == ARGUMENTS_CHARS and kept.endswith("...")
    assert len(json.dumps(attempted({"path": "z" * 10_000}))) < 300
