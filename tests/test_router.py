"""The router: routes words first (no model call), else the lead's model, else a person."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import ZooCli, make_home, open_zoo
from zoo.engine.router import by_rules, dispatch, plan
from zoo.errors import ModelError, NotFound
from zoo.models.base import Attempt, Usage
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events


def route(agent: str, confidence: float, reason: str = "fits") -> object:
    return says("", call("route", agent=agent, reason=reason, confidence=confidence))


@pytest.mark.parametrize(
    ("brief", "agent"),
    [("Fix the login bug", "beaver"), ("BUG: crash on save", "beaver"),
     ("Write a blog post", "lark"), ("please test the release", "owl")],
)  # fmt: skip
def test_routes_words_match_whole_words_in_any_case(home: Home, brief: str, agent: str) -> None:
    found = by_rules(open_zoo(home).roster, brief)
    assert found is not None and found.agent == agent and found.by == "rules"


@pytest.mark.parametrize("brief", ["debug the debugger", "codes of conduct", "nothing here"])
def test_partial_words_do_not_match(home: Home, brief: str) -> None:
    assert by_rules(open_zoo(home).roster, brief) is None


def test_more_matching_words_win_and_a_tie_goes_to_the_model(home: Home) -> None:
    roster = open_zoo(home).roster
    best = by_rules(roster, "bug in the code for the blog")
    assert best is not None and best.agent == "beaver" and best.reason == "matched 'bug', 'code'"
    assert by_rules(roster, "a bug in the blog") is None  # one word each: ask the model


def test_rules_route_without_a_model_call(home: Home, scripted: ScriptedModel) -> None:
    task, found = dispatch(open_zoo(home, scripted), "Fix the login bug")
    assert found.agent == "beaver" and scripted.requests == []
    assert task.path.parent == home.workspace("dev")
    meta = tasks.read(task.path).meta
    assert meta["route"] == {"by": "rules", "reason": "matched 'bug'"}
    assert meta["agent"] == "beaver" and meta["workspace"] == "dev"


def test_the_lead_model_routes_with_a_reason_and_confidence(
    home: Home, scripted: ScriptedModel
) -> None:
    scripted.add(route("lark", 0.9, "it is about writing"))
    task, found = dispatch(open_zoo(home, scripted), "Announce our new office")
    assert found.agent == "lark"
    assert tasks.read(task.path).meta["route"] == {
        "by": "model", "reason": "it is about writing", "confidence": 0.9,
    }  # fmt: skip
    request = scripted.requests[0]
    assert request.require_tool == "route" and request.meta["purpose"] == "route"
    assert "- beaver: Developer. Writes code. (routes: bug, code)" in request.system


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (route("lark", 0.3, "maybe"), "could not route: low confidence 0.3 < 0.6: maybe"),
        (route("wolf", 0.9, "a guess"), "could not route: router chose unknown agent 'wolf' "
         "(a guess)"),
        (route("roo", 0.9, "me"), "could not route: router chose unknown agent 'roo' (me)"),
        (route("none", 0.1, "no idea"), "could not route: no agent fits: no idea"),
        (says("I think lark"), "could not route: router model gave no route"),
        (ModelError("server said 500"), "could not route: router model failed: server said 500"),
    ],
)  # fmt: skip
def test_unsure_or_failed_routing_escalates_with_the_reason(
    home: Home, scripted: ScriptedModel, reply: object, reason: str
) -> None:
    scripted.add(reply)  # type: ignore[arg-type]
    task, found = dispatch(open_zoo(home, scripted), "Announce our new office")
    assert found.agent is None
    assert task.path.parent == home.workspace("escalations")
    meta = tasks.read(task.path).meta
    assert meta["status"] == "escalated" and meta["escalation"] == reason


def test_to_skips_routing_and_checks_the_name(home: Home, scripted: ScriptedModel) -> None:
    zoo = open_zoo(home, scripted)
    task, found = dispatch(zoo, "Anything at all", to="owl")
    assert found.by == "cli" and task.path.parent == home.workspace("qa")
    with pytest.raises(NotFound, match=r"^no agent 'owll' in zoo.yaml \(did you mean 'owl'\?\)$"):
        dispatch(zoo, "Anything", to="owll")


def test_plan_shows_the_chain_and_creates_nothing(home: Home) -> None:
    result = plan(open_zoo(home), "Fix the login bug")
    assert result.route.agent == "beaver" and result.chain == ["beaver", "owl", "lark"]
    assert not home.workspaces.exists() or not any(home.workspaces.rglob("T-*.md"))


PAID = """\
version: 1
name: plan
lead: roo
models:
  paid:
    provider: anthropic
    model: claude-haiku-4-5
    price: {input_per_mtok: 1.0, output_per_mtok: 5.0}
defaults: {model: paid}
agents:
  roo: {role: Lead, description: Routes briefs.}
  writer: {role: Writer, description: Writes posts., handoff: [editor]}
  editor: {role: Editor, description: Edits posts., routes: [edit], handoff: [writer]}
"""


def test_plans_model_call_is_journaled_and_counted_in_spend(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    home = make_home(tmp_path / "zoo", PAID)
    answer = says("", call("route", agent="writer", reason="a post", confidence=0.9))
    scripted.add(replace(answer, usage=Usage(1000, 100), model="m-1"))
    result = plan(open_zoo(home, scripted), "Announce our new office")
    assert result.route.agent == "writer" and result.asked_model
    assert scripted.requests[0].meta == {"agent": "roo", "task": None, "purpose": "plan"}
    [reply] = [e for e in read_events(home.journal_path) if e["event"] == "model.reply"]
    assert reply["purpose"] == "plan" and reply.get("task") is None and reply["agent"] == "roo"
    assert (reply["input_tokens"], reply["output_tokens"], reply["usd"]) == (1000, 100, 0.0015)
    day = next(iter(json.loads((home.state / "spend.json").read_text("utf-8")).values()))
    assert (day["usd"], day["by_agent"]["roo"]["input_tokens"]) == (0.0015, 1000)
    assert not any(home.workspaces.rglob("T-*.md")) if home.workspaces.exists() else True


def test_a_failed_plan_call_journals_its_attempts_with_the_purpose(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    home = make_home(tmp_path / "zoo", PAID)
    error = ModelError("server said 500")
    error.attempts = (Attempt("paid", "claude-haiku-4-5", "server said 500", "ModelError",
                              0.0, "give up"),)  # fmt: skip
    scripted.add(error)
    result = plan(open_zoo(home, scripted), "Announce our new office")
    assert result.asked_model and result.route.agent is None
    [attempt] = [e for e in read_events(home.journal_path) if e["event"] == "model.attempt"]
    assert attempt["purpose"] == "plan" and attempt["then"] == "give up"
    assert not (home.state / "spend.json").exists()  # it failed: nothing was spent


def test_zoo_plan_says_it_asked_the_leads_model(home: Home, zoo_cli: ZooCli) -> None:
    r = zoo_cli("plan", "Ponder the meaning of life", "--home", str(home.root))
    assert r.code == 0
    assert r.out.splitlines()[0] == ("no routes word matched: asked the lead's model (roo, "
                                     "tier offline; journaled, counted in spend)")  # fmt: skip
    doc = json.loads(zoo_cli("plan", "Ponder the meaning of life", "--home", str(home.root),
                             "--json").out)  # fmt: skip
    assert doc["asked_model"] is True
    kinds = [(e["event"], e["purpose"]) for e in read_events(home.journal_path)]
    assert kinds == [("model.reply", "plan")] * 2
    rules = zoo_cli("plan", "Fix the login bug", "--home", str(home.root))
    assert "asked the lead's model" not in rules.out


def test_zoo_plan_shows_a_handoff_cycle_as_a_cycle(tmp_path: Path, zoo_cli: ZooCli) -> None:
    home = make_home(tmp_path / "zoo", PAID)
    r = zoo_cli("plan", "Please edit the post", "--home", str(home.root))
    assert r.out == (
        "editor · rules: matched 'edit'\n"
        "chain: editor -> writer -> editor -> ... (a cycle: max_handoffs applies)\n"
    )
    doc = json.loads(zoo_cli("plan", "x", "--to", "writer", "--home", str(home.root),
                             "--json").out)  # fmt: skip
    assert (doc["chain"], doc["cycle"]) == (["writer", "editor", "writer"], True)
