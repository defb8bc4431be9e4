"""The built-in offline model uses its agent's tools as a real model would, deterministically,
and the README's quick start and the example zoo's approval path work offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SMALL_ROSTER, ZooCli, open_zoo
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.turn import system_prompt
from zoo.engine.zoo import Zoo
from zoo.models.base import Message, Model, Reply, Request
from zoo.models.offline import MARK, OfflineModel
from zoo.policy.tools import specs
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.memory import parse
from zoo.state.runnerlock import runner_lock

QUICK_START = "Fix the login bug: users are logged out after a minute"


class Recording(Model):
    """The offline model, with every request and reply kept for the test to read."""

    name = "offline"

    def __init__(self) -> None:
        self.inner = OfflineModel()
        self.calls: list[tuple[Request, Reply]] = []

    def complete(self, request: Request) -> Reply:
        reply = self.inner.complete(request)
        self.calls.append((request, reply))
        return reply

    def plan(self, agent: str) -> list[list[str]]:
        """The tools each of `agent`'s replies called, in order."""
        turns = [reply for request, reply in self.calls if request.meta.get("agent") == agent]
        return [[c.name for c in reply.tool_calls] for reply in turns]


def _with_beaver(home: Home, extra: str) -> Home:
    """The small roster with beaver given `run` and `extra` (e.g. its commands)."""
    roster = SMALL_ROSTER.replace(
        "    tools: [read_file, write_file, list_files, remember, handoff, escalate]\n",
        "    tools: [read_file, write_file, list_files, run, remember, handoff, escalate]\n"
        + extra,
    )
    home.roster_path.write_text(roster, encoding="utf-8")
    return home


def _run(home: Home, model: Model | None = None) -> None:
    with runner_lock(home):
        report = run_once(Zoo.open(home, env={}, model=model))
    assert report.failed == []


def _first_request(home: Home, brief: str, agent: str = "beaver") -> Request:
    zoo = open_zoo(home)
    task, _ = dispatch(zoo, brief, to=agent)
    task = tasks.find(home, task.id)
    return Request(
        system=system_prompt(zoo, agent, task),
        messages=(Message("user", f"Task {task.id}: {task.title}\n\n{task.body}"),),
        tools=specs(zoo.roster, agent),
        meta={"agent": agent, "task": task.id, "purpose": "turn"},
    )


def test_a_turn_looks_works_passes_on_and_ends_with_a_short_text(home: Home) -> None:
    _with_beaver(home, "    commands: [pytest, ls]\n")
    model = Recording()
    task, _ = dispatch(open_zoo(home), "Fix the login bug")
    _run(home, model)
    assert model.plan("beaver") == [["run"], ["remember", "write_file"], ["handoff"], []]
    assert model.plan("owl") == [["remember"], ["handoff"], []]
    assert model.plan("lark") == [["remember"], []]
    events = read_events(home.journal_path)
    runs = [e for e in events if e["event"] == "tool.call" and e["tool"] == "run"]
    assert [(e["command"], e["exit"]) for e in runs] == [(["ls"], 0)]  # the harmless one
    assert not [e for e in events if e["event"].startswith("approval.")]
    draft = home.workspace("dev") / "drafts" / "fix-the-login-bug.md"
    assert draft.read_text(encoding="utf-8").startswith(f"# Fix the login bug\n\n{MARK}\n")
    body = tasks.read(home.workspace("done") / task.path.name).body
    assert "Done: my draft is in `dev:drafts/fix-the-login-bug.md`.\n\n- ran `ls` in dev/" in body
    assert "in `dev:drafts/fix-the-login-bug.md`." in body  # the handoff note names the draft
    notes = parse(home.agent_memory("beaver").read_text(encoding="utf-8"))
    assert [(n.task, n.text) for n in notes] == [
        (task.id, '"Fix the login bug": drafted offline, in dev:drafts/fix-the-login-bug.md.')
    ]
    assert not home.memory_path.exists()  # never shared: MEMORY.md stays as the team keeps it


def test_the_same_request_always_gets_the_same_reply(home: Home) -> None:
    _with_beaver(home, "    commands: [ls]\n")
    request = _first_request(home, "Fix the login bug")
    first = OfflineModel().complete(request)
    assert OfflineModel().complete(request) == first
    calls = first.tool_calls
    result = Message("tool", "exit 0", tool_call_id=calls[0].id)
    later = Request(request.system, (*request.messages, Message("assistant", "", calls), result),
                    request.tools)  # fmt: skip
    assert OfflineModel().complete(later) == OfflineModel().complete(later)
    assert [c.name for c in OfflineModel().complete(later).tool_calls] == ["remember", "write_file"]


@pytest.mark.parametrize(
    ("extra", "argv"),
    [
        ("    commands: [pytest, git status]\n", ["git", "status"]),
        ("    commands: [git]\n", ["git", "status"]),  # 'git' allows 'git status'
        ("    commands: [pytest, make deploy]\n", None),  # nothing harmless: nothing run
        ("    commands: [ls]\n    approval: [run]\n", None),  # every run would wait
        ("", None),  # no commands: every run would wait for approval
    ],
)
def test_it_runs_only_a_harmless_allowed_command(
    home: Home, extra: str, argv: list[str] | None
) -> None:
    _with_beaver(home, extra)
    request = _first_request(home, "Fix the login bug")
    first = OfflineModel().complete(request).tool_calls[0]
    assert (first.name, first.arguments) == (("run", {"command": argv}) if argv else (
        "remember", {"note": '"Fix the login bug": drafted offline, in '
                             'dev:drafts/fix-the-login-bug.md.', "shared": False}))  # fmt: skip


def test_the_system_prompt_names_the_commands_that_run_unasked(home: Home) -> None:
    _with_beaver(home, "    commands: [pytest, git status]\n")
    request = _first_request(home, "Fix the login bug")
    assert "\nCommands you may run without approval: `pytest`, `git status`." in request.system
    _with_beaver(home, "    commands: [pytest]\n    approval: [run]\n")
    assert "Commands you may run" not in _first_request(home, "Fix the bug").system


def test_after_a_failed_call_it_says_so_and_ends(home: Home) -> None:
    request = _first_request(home, "Fix the login bug")
    messages = list(request.messages)
    results = {"remember": "noted in agents/beaver.memory.md",
               "write_file": "error: dev: is not writable"}  # fmt: skip
    for _ in range(5):
        reply = OfflineModel().complete(Request(request.system, tuple(messages), request.tools))
        messages.append(Message("assistant", reply.text, reply.tool_calls))
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            text = results.get(call.name, "ok")
            messages.append(Message("tool", text, tool_call_id=call.id,
                                    is_error=text.startswith("error")))  # fmt: skip
    assert [m.tool_calls[0].name for m in messages if m.role == "assistant" and m.tool_calls] == [
        "remember", "handoff",
    ]  # fmt: skip
    handoff = next(m.tool_calls[0] for m in messages if m.tool_calls and m.tool_calls[0].name ==
                   "handoff")  # fmt: skip
    assert handoff.arguments["note"] == 'Offline draft of "Fix the login bug" is ready for you.'
    assert reply.text == (
        "Done. 1 of my tool calls did not work (write_file: error: dev: is not writable)."
    )


def test_it_escalates_only_when_the_brief_asks_for_a_person(home: Home) -> None:
    home.playbook("beaver").write_text(
        "# Beaver · Developer\n\n## How you work\n1. Fix it.\n2. If in doubt, escalate.\n",
        encoding="utf-8",
    )
    fine, _ = dispatch(open_zoo(home), "Fix the login bug")
    asks, _ = dispatch(open_zoo(home), "Fix the export bug; this needs a person to decide")
    _run(home)
    # beaver's draft says "escalate": owl reads it in the task, but only the brief counts
    assert tasks.find(home, fine.id).status == "done"
    escalated = tasks.find(home, asks.id)
    assert escalated.status == "escalated"
    assert escalated.meta["escalation"] == (
        'the brief asks for a person: "Fix the export bug; this needs a person to decide"'
    )
    assert not (home.workspace("dev") / "drafts" / f"{asks.path.name[7:]}").exists()
    open_zoo(home).retry(asks.id)  # a person answered: beaver goes on, without asking again
    _run(home)
    done = tasks.find(home, asks.id)
    assert done.status == "done" and done.body.count("\n- escalated: ") == 1
    assert (home.workspace("dev") / "drafts" / f"{asks.path.name[7:]}").exists()


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_example_zoo_s_approval_path_works_offline(
    example_home: Home, zoo_cli: ZooCli, decision: str
) -> None:
    h = ["--home", str(example_home.root)]
    brief = "Upgrade the dependencies with security advisories"
    routed = zoo_cli("dispatch", brief, *h)
    assert routed.out.startswith("T-0001 -> badger · rules: matched 'dependencies'\n")
    assert zoo_cli("run", "--once", *h).out.startswith("T-0001 badger waits for approval A-0001\n")
    pending = json.loads(zoo_cli("approvals", "--json", *h).out)
    assert [(a["id"], a["task"], a["agent"], a["tool"]) for a in pending] == [
        ("A-0001", "T-0001", "badger", "write_file")
    ]
    path, content = pending[0]["arguments"]["path"], pending[0]["arguments"]["content"]
    assert path == "drafts/upgrade-the-dependencies-with-security.md"
    assert content.startswith(f"# {brief}\n\n{MARK}\n\nBadger · DevOps engineer on ")
    draft = example_home.workspace("ops") / path
    assert not draft.exists()  # nothing written before a person decides
    if decision == "approve":
        assert zoo_cli("approve", "A-0001", *h).code == 0
        assert draft.read_text(encoding="utf-8") == content
        last = f"A-0001 was approved: my draft is in `ops:{path}`."
    else:
        assert zoo_cli("deny", "A-0001", "--reason", "not now", *h).code == 0
        assert not draft.exists()
        last = "A-0001 was not approved, so my draft was not written."
    assert zoo_cli("run", "--once", *h).out.startswith("T-0001 badger finished: done\n")
    done = tasks.find(example_home, "T-0001")
    assert done.body.rstrip().endswith(f"## badger · {done.meta['updated']}\n\n{last}")
    assert json.loads(zoo_cli("approvals", "--json", *h).out) == []


def _example_files() -> list[str]:
    """The example zoo as a clone has it: the files git tracks (or, outside a checkout,
    the roster, MEMORY.md, .gitignore, the playbooks and the workspaces' .gitkeep)."""
    wanted = ["zoo.yaml", "MEMORY.md", ".gitignore", "agents", "workspaces"]
    listed = subprocess.run(["git", "ls-files", "-z", "--", *wanted], cwd=REPO,
                            capture_output=True, text=True)  # fmt: skip
    if listed.returncode == 0 and listed.stdout:
        return [p for p in listed.stdout.split("\0") if p]
    playbooks = [f"agents/{p.name}" for p in (REPO / "agents").glob("*.md")
                 if not p.name.endswith(".memory.md")]  # fmt: skip
    keeps = [
        f"workspaces/{p.parent.name}/.gitkeep" for p in (REPO / "workspaces").glob("*/.gitkeep")
    ]
    return wanted[:3] + playbooks + keeps


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_quick_start_leaves_the_repository_clean(tmp_path: Path) -> None:
    """README's first command, in a git copy of the example zoo: no tracked file changes,
    and what the run makes (tasks, drafts, agents' notes, .zoo/) is ignored."""
    root = tmp_path / "clone"
    for path in _example_files():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, root / path)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    who = ["-c", "user.name=zoo", "-c", "user.email=zoo@localhost", "-c", "commit.gpgsign=false"]
    _git(root, *who, "commit", "-q", "--no-verify", "-m", "the example zoo")
    zoo = [sys.executable, "-m", "zoo"]
    for args in (["dispatch", QUICK_START], ["run", "--once"], ["status"]):
        done = subprocess.run([*zoo, *args], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if args[0] == "run":  # the chain README describes
            assert done.stdout.startswith(
                "T-0001 beaver -> owl\nT-0001 owl -> lark\nT-0001 lark finished: done\n"
            )
    made = ["agents/beaver.memory.md", "agents/owl.memory.md", "agents/lark.memory.md",
            "workspaces/dev/drafts/fix-the-login-bug-users-are-logged-out-after-a.md",
            "workspaces/done/T-0001-fix-the-login-bug-users-are-logged-out-after-a.md",
            ".zoo/events.jsonl"]  # fmt: skip
    assert all((root / path).is_file() for path in made)
    assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""
