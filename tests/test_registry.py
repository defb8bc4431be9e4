"""The tool registry: each tool declared once, and every part of Zoo reads that one entry.

The model's tool list (`specs`), the checking and running of calls, `zoo check`'s verdict,
the approval preview and the redo after a crash agree on which tools there are, because
they all read the registry; a tool added at run time (as MCP tools will be) is met by all
of them at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, ZooCli, make_home, open_zoo
from zoo.engine import approvals
from zoo.engine.check import verdict
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.models.scripted import ScriptedModel, call, says
from zoo.policy import tools
from zoo.policy.registry import Registry, Tool, UnknownTool
from zoo.policy.tools import BUILTINS, ToolContext, specs
from zoo.roster import load_roster
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock

ROSTER = """\
version: 1
name: reg
lead: roo
agents:
  roo: {{role: Lead}}
  beaver:
    role: Developer
    workspace: dev
    handoff: [owl]
    tools: [{tools}]
    approval: [{approval}]
  owl: {{role: QA}}
"""
"""beaver's `tools:` is line 10, its `approval:` line 11."""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the home's root: errors read `zoo.yaml:LINE`


def _home(tmp_path: Path, given: list[str], approval: tuple[str, ...] = ()) -> Home:
    text = ROSTER.format(tools=", ".join(given), approval=", ".join(approval))
    return make_home(tmp_path, text)


def _arguments(tool: Tool) -> dict[str, Any]:
    """A value for every argument the tool declares, from its schema alone."""
    value = {"string": "notes.md", "array": ["echo", "hi"], "boolean": True}
    return {key: value[p["type"]] for key, p in tool.parameters["properties"].items()}


# --- one set of tools, read by every part ----------------------------------------------------


def test_the_check_the_model_and_the_preview_agree_on_every_tool(tmp_path: Path) -> None:
    home = _home(tmp_path, list(BUILTINS.names), BUILTINS.gateable)
    assert verdict(home).errors == []  # every tool may be given, every gateable one gated
    roster = load_roster(home)
    assert [s.name for s in specs(roster, "beaver")] == list(BUILTINS.names)
    for tool in BUILTINS:
        shown = approvals.preview(tool.name, _arguments(tool))
        assert shown == tool.preview(_arguments(tool))
        assert shown.strip() and "\n" not in shown, tool.name  # one line a person reads


def test_a_name_the_registry_lacks_is_refused_by_every_part(tmp_path: Path) -> None:
    home = _home(tmp_path, ["read_file", "raed_file"])
    assert verdict(home).errors == [
        "zoo.yaml:10: agents.beaver.tools: unknown tool 'raed_file' (did you mean 'read_file'?)"
    ]
    roster = load_roster(home)  # the roster's shape is right: only the verdict knows tools
    with pytest.raises(UnknownTool, match="^unknown tool 'raed_file'$"):
        specs(roster, "beaver")
    with pytest.raises(UnknownTool, match="^unknown tool 'raed_file'$"):
        approvals.preview("raed_file", {"path": "notes.md"})


def test_an_unknown_tool_has_no_preview_not_another_tools_wording() -> None:
    with pytest.raises(UnknownTool, match="^unknown tool 'forget'$"):
        approvals.preview("forget", {"note": "the deploy key is in vault", "shared": True})


@pytest.mark.parametrize("tool", [t.name for t in BUILTINS])
def test_approval_may_name_exactly_the_gateable_tools(tmp_path: Path, tool: str) -> None:
    home = _home(tmp_path, [tool], (tool,))
    gateable = ", ".join(BUILTINS.gateable)
    expected = [] if BUILTINS[tool].gateable else [
        f"zoo.yaml:11: agents.beaver.approval: '{tool}' cannot wait for approval "
        f"(one of {gateable})"
    ]  # fmt: skip
    assert verdict(home).errors == expected


def test_what_may_be_gated_and_redone_is_declared_with_each_tool() -> None:
    assert BUILTINS.gateable == ("read_file", "write_file", "list_files", "run", "remember")
    assert [t.name for t in BUILTINS if not t.redo] == ["run"]  # a command may have half run


# --- a registry grows at run time, never in place ---------------------------------------------


def _tally(ctx: ToolContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Counts its calls in dev/tally.txt; hangs once dev/hang exists (to be killed there)."""
    folder = ctx.home.workspace("dev")
    with (folder / "tally.txt").open("a", encoding="utf-8") as f:
        f.write(f"{args['word']} redo={ctx.redo}\n")
    if (folder / "hang").exists():
        (folder / "ready").touch()
        time.sleep(60)
    return f"counted {args['word']}", {"word": args["word"]}


def tally(*, redo: bool = True) -> Registry:
    """The built-in tools and `tally`, a tool found at run time (as an MCP server's are)."""
    schema = {"type": "object", "properties": {"word": {"type": "string"}},
              "required": ["word"], "additionalProperties": False}  # fmt: skip
    tool = Tool("tally", "Count a word.", schema, _tally, lambda a: f"tally {a['word']}",
                redo=redo)  # fmt: skip
    return BUILTINS.with_tools([tool])


def test_a_registry_is_extended_into_a_new_one() -> None:
    grown = tally()
    assert grown.names == (*BUILTINS.names, "tally") and "tally" not in BUILTINS
    with pytest.raises(ValueError, match="^tool 'tally' is declared twice$"):
        grown.with_tools([grown["tally"]])


def test_a_tool_added_at_run_time_is_checked_offered_run_and_gated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    """The one registry, swapped for a larger one (until issue 14 gives a Zoo its own): the
    verdict, the model's tool list, the call and the approval all meet the new tool."""
    home = _home(tmp_path, ["tally", "escalate"])
    assert verdict(home).errors == ["zoo.yaml:10: agents.beaver.tools: unknown tool 'tally'"]
    assert verdict(home, tally()).errors == []
    monkeypatch.setattr(tools, "BUILTINS", tally())
    assert verdict(home).errors == []
    model = ScriptedModel([says("Counting.", call("tally", word="one")), says("Done."),
                           says("Checked.")])  # fmt: skip
    dispatch(open_zoo(home, model), "Count one word", to="beaver")
    with runner_lock(home):
        run_once(open_zoo(home, model))
    model.assert_done()
    assert [s.name for s in model.requests[0].tools] == ["tally", "escalate"]
    assert model.requests[1].messages[-1].content == "counted one"
    assert (home.workspace("dev") / "tally.txt").read_text(encoding="utf-8") == "one redo=False\n"

    home.roster_path.write_text(ROSTER.format(tools="tally", approval="tally"), encoding="utf-8")
    model.add(says("Counting.", call("tally", word="two")))
    dispatch(open_zoo(home, model), "Count another word", to="beaver")
    with runner_lock(home):
        run_once(open_zoo(home, model))
    listed = zoo_cli("approvals", "--home", str(home.root))
    assert "A-0001  T-0002  beaver  tally two" in listed.out


# --- the redo after a crash is the entry's to decide ------------------------------------------

_KILLED_RUNNER = """
import sys
from pathlib import Path
from tests.test_registry import tally
from zoo.policy import tools
tools.BUILTINS = tally(redo=sys.argv[2] == "redo")
from zoo.engine.runner import run_once
from zoo.state.runnerlock import runner_lock
from zoo.engine.zoo import Zoo
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state.home import Home

home = Home(Path(sys.argv[1]))
model = ScriptedModel([says("Counting.", call("tally", word="one"))])
with runner_lock(home):
    run_once(Zoo.open(home, env={}, model=model))
"""


@pytest.mark.parametrize("redo", [True, False], ids=["safe-to-redo", "not-safe-to-redo"])
def test_a_call_cut_short_by_a_kill_is_redone_only_if_its_entry_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redo: bool
) -> None:
    home = _home(tmp_path, ["tally"])
    task, _ = dispatch(open_zoo(home), "Count one word", to="beaver")
    dev = home.workspace("dev")
    (dev / "hang").touch()
    how = "redo" if redo else "once"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUNNER, str(home.root), how],
                            cwd=REPO)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (dev / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert (dev / "ready").exists(), "the runner never got into the call"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (dev / "hang").unlink()

    monkeypatch.setattr(tools, "BUILTINS", tally(redo=redo))
    model = ScriptedModel([says("Done."), says("Checked.")])  # beaver's first: from its step log
    with runner_lock(home):
        run_once(open_zoo(home, model))
    model.assert_done()
    told = model.requests[0].messages[-1]
    counted = (dev / "tally.txt").read_text(encoding="utf-8").splitlines()
    interrupted = [e for e in read_events(home.journal_path) if e["event"] == "tool.interrupted"]
    if redo:
        assert counted == ["one redo=False", "one redo=True"]
        assert (told.is_error, told.content) == (False, "counted one")
        assert interrupted == []
    else:
        assert counted == ["one redo=False"]  # made once, never again
        assert told.is_error and told.content.startswith(
            "interrupted: Zoo stopped while this call ran, so it may or may not have finished."
        )
        assert [(e["tool"], e["arguments"]) for e in interrupted] == [("tally", {"word": "one"})]
    assert tasks.find(home, task.id).meta["status"] == "done"
