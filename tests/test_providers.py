"""The Anthropic and OpenAI providers, through the real SDK clients talking HTTP to a
loopback fake of both APIs (llmock), never by patching the SDKs."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from llmock.scenarios import Delay, Fail, Match, Reply, StreamFault, ToolCall, ToolFault
from llmock.testing import LLMockServer

from tests.conftest import make_home
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.runreport import RunReport
from zoo.engine.zoo import Zoo
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock

KEYS = {"ANTHROPIC_API_KEY": "sk-ant-test-key", "OPENAI_API_KEY": "sk-test-key"}
ANTHROPIC = Match(provider="anthropic")
COMPLETIONS = Match(path="*/chat/completions")
"""Replies for OpenAI calls only (not the `GET /models` check before the first one)."""


def roster(llm: LLMockServer, *, model: str = "claude", extra: str = "", fallback: str = "") -> str:
    return f"""\
version: 1
name: wire
lead: roo
models:
  claude:
    provider: anthropic
    model: claude-haiku-4-5
    base_url: "{llm.url}/anthropic"
    fallback: {fallback or "null"}
    price: {{input_per_mtok: 1.0, output_per_mtok: 5.0}}
  gpt:
    provider: openai
    model: gpt-4o-mini
    base_url: "{llm.base_url("openai")}"
    api_key_env: OPENAI_API_KEY
defaults: {{model: {model}, retries: 2, timeout_s: 5, backoff_s: 0.01, concurrency: 8}}
agents:
  roo: {{role: Lead}}
  beaver:
    role: Developer
    workspace: dev
    tools: [read_file, write_file, remember, escalate]
{extra}"""


def wired(tmp_path: Path, llm: LLMockServer, **kwargs: str) -> Home:
    return make_home(tmp_path / "zoo", roster(llm, **kwargs))


def run(home: Home, env: dict[str, str] | None = None) -> RunReport:
    with runner_lock(home):
        return run_once(Zoo.open(home, env=KEYS if env is None else env))


def brief(home: Home, text: str = "Write the notes", env: dict[str, str] | None = None) -> str:
    task, _ = dispatch(Zoo.open(home, env=env or KEYS), text, to="beaver")
    return task.path.name


def events(home: Home, kind: str) -> list[dict[str, object]]:
    return [e for e in read_events(home.journal_path) if e["event"] == kind]


def posts(llm: LLMockServer) -> list[Any]:
    return [r for r in llm.state.journal.records() if r.method == "POST"]


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_a_multi_step_tool_use_turn(tmp_path: Path, llm: LLMockServer, model: str) -> None:
    home = wired(tmp_path, llm, model=model)
    name = brief(home)
    chat = COMPLETIONS if model == "gpt" else ANTHROPIC
    llm.state.scenarios.add(
        Reply(text="Writing.", tool_calls=(ToolCall("write_file", {"path": "notes.md",
              "content": "# Notes\n"}),), match=chat),
        Reply(tool_calls=(ToolCall("read_file", {"path": "notes.md"}),), match=chat),
        Reply(text="Done: notes.md holds the notes.", match=chat),
    )  # fmt: skip
    report = run(home)
    assert (report.steps, report.done, report.failed) == (1, 1, [])
    assert (home.workspace("dev") / "notes.md").read_text(encoding="utf-8") == "# Notes\n"
    done = tasks.read(home.workspace("done") / name)
    assert "Writing.\n\nDone: notes.md holds the notes." in done.body
    assert [e["tool"] for e in events(home, "tool.call")] == ["write_file", "read_file"]
    assert len(posts(llm)) == 3
    replies = events(home, "model.reply")
    assert [e["tier"] for e in replies] == [model] * 3


def test_429_twice_with_retry_after_then_success(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm)
    brief(home)
    llm.state.scenarios.add(Fail(429, retry_after=0.3, times=2), Reply(text="Done."))
    report = run(home)
    assert report.done == 1
    calls = posts(llm)
    assert [r.status for r in calls] == [429, 429, 200]
    gaps = [b.started_at - a.ended_at for a, b in pairwise(calls)]
    assert all(gap >= 0.3 for gap in gaps), gaps
    tries = events(home, "model.attempt")
    assert [(e["then"], e["kind"]) for e in tries] == [("retry", "ModelHTTPError")] * 2
    assert all(float(e["wait_s"]) >= 0.3 for e in tries)  # type: ignore[arg-type]


def test_400_is_not_retried(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm)
    name = brief(home)
    llm.state.scenarios.add(Fail(400, message="max_tokens is too large"))
    report = run(home)
    assert report.escalated == 1 and len(posts(llm)) == 1
    task = tasks.read(home.workspace("escalations") / name)
    assert task.meta["escalation"] == "anthropic answered 400: max_tokens is too large"
    assert [e["then"] for e in events(home, "model.attempt")] == ["give up"]


def test_a_permanent_5xx_falls_back_then_escalates_and_loses_nothing(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, fallback="gpt")
    name = brief(home)
    llm.state.scenarios.add(Fail(503, retry_after=0.05, times=None, match=ANTHROPIC),
                            Fail(500, times=None, match=COMPLETIONS))  # fmt: skip
    report = run(home)
    assert report.escalated == 1 and len(report.failed) == 1
    thens = [(e["tier"], e["then"]) for e in events(home, "model.attempt")]
    assert thens == [("claude", "retry"), ("claude", "retry"), ("claude", "fallback to gpt"),
                     ("gpt", "retry"), ("gpt", "retry"), ("gpt", "give up")]  # fmt: skip
    task = tasks.read(home.workspace("escalations") / name)
    assert task.meta["escalation"].startswith("openai answered 500")
    assert "# Write the notes" in task.body


def test_a_fallback_that_answers_is_used_and_priced_as_itself(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, fallback="gpt")
    brief(home)
    llm.state.scenarios.add(Fail(529, retry_after=0.05, times=None, match=ANTHROPIC),
                            Reply(text="Done by GPT.", match=COMPLETIONS))  # fmt: skip
    report = run(home)
    assert report.done == 1
    [reply] = events(home, "model.reply")
    assert reply["tier"] == "gpt" and reply["usd"] == 0.0


@pytest.mark.parametrize(("model", "fault", "after"), [
    ("claude", "truncate", 2), ("gpt", "truncate", 2), ("claude", "disconnect", 2),
    ("gpt", "disconnect", 2), ("claude", "malformed", 3), ("gpt", "malformed", 2),
])  # fmt: skip
def test_a_broken_stream_is_a_failed_call_never_a_reply(
    tmp_path: Path, llm: LLMockServer, model: str, fault: str, after: int
) -> None:
    """Each break as the SDK really raises it (httpx2's RemoteProtocolError, the SDK's
    APIConnectionError, a JSONDecodeError from a chunk; the 3rd Anthropic chunk, as the
    SDK skips a broken `ping`) is a connection error, retried."""
    home = wired(tmp_path, llm, model=model)
    brief(home)
    chat = COMPLETIONS if model == "gpt" else ANTHROPIC
    llm.state.scenarios.add(
        StreamFault(fault, after_chunks=after),  # type: ignore[arg-type]
        Reply(text="The whole answer, first try, cut short.", match=chat),
        Reply(text="The whole answer.", match=chat),
    )
    report = run(home)
    assert report.done == 1
    [attempt] = events(home, "model.attempt")
    assert (attempt["kind"], attempt["then"]) == ("ModelConnectionError", "retry")
    done = tasks.read(next(home.workspace("done").iterdir()))
    assert "The whole answer." in done.body and "first try" not in done.body


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_a_bug_in_zoos_reading_code_is_a_bug_not_a_retried_connection_error(
    tmp_path: Path, llm: LLMockServer, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    home = wired(tmp_path, llm, model=model)
    brief(home)
    module = "anthropic" if model == "claude" else "openai"

    def broken(stream: object) -> object:
        for _ in stream:  # type: ignore[attr-defined]
            pass
        raise TypeError("a bug in Zoo's reading code")

    monkeypatch.setattr(f"zoo.models.{module}._read", broken)
    llm.state.scenarios.add(Reply(text="Fine.", times=None))
    with pytest.raises(TypeError, match="a bug in Zoo's reading code"):
        run(home)
    assert len(posts(llm)) == 1  # asked once: not retried, not a fallback
    assert events(home, "model.attempt") == []


def test_malformed_tool_arguments_are_a_tool_error(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm)
    brief(home)
    llm.state.scenarios.add(ToolFault("malformed_arguments"), Reply(text="Sorry, done."))
    report = run(home)
    assert report.done == 1
    [refused] = events(home, "tool.refused")
    assert "arguments are not valid JSON" in str(refused["error"])


def test_an_unknown_tool_is_a_tool_error(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm, model="gpt")
    brief(home)
    llm.state.scenarios.add(ToolFault("unknown_tool"), Reply(text="Done.", match=COMPLETIONS))
    assert run(home).done == 1
    [refused] = events(home, "tool.refused")
    assert str(refused["error"]).startswith("unknown tool")


def test_the_limiter_holds_8_concurrent_tasks_to_the_providers_concurrency(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, extra="limits:\n  anthropic: {concurrency: 2}\n")
    for i in range(8):
        brief(home, f"Write note {i}")
    llm.state.scenarios.add(Delay(0.1, times=None), Reply(text="Done.", times=None))
    report = run(home)
    assert report.done == 8 and report.failed == []
    calls = posts(llm)
    spans = [(r.started_at, r.ended_at) for r in calls]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2
    assert all(r.status == 200 for r in calls)


def test_a_call_over_the_daily_budget_is_not_made_and_the_tasks_stay_queued(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, extra="budget: {daily_usd: 0.001}\n")
    names = [brief(home, f"Write note {i}") for i in range(3)]
    report = run(home)
    assert posts(llm) == [] and (report.steps, report.escalated) == (0, 0)
    [line] = report.failed
    assert line.startswith("daily budget: $0.00 spent today (UTC) and the next call could cost $")
    assert line.endswith(
        "over budget.daily_usd ($0.00): queued tasks wait (fix it, then run again)"
    )
    for name in names:  # a budget smaller than one call is not the tasks' fault
        assert tasks.read(home.workspace("dev") / name).status == "queued"
    paused = events(home, "step.paused")  # the steps that had begun, before the first stopped
    assert 1 <= len(paused) <= 3
    assert {(p["step"], p["reason"]) for p in paused} == {(1, line.split(": queued tasks")[0])}


def test_a_task_over_its_token_budget_stops(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm, extra="budget: {task_tokens: 1500}\n")
    name = brief(home)
    llm.state.scenarios.add(
        Reply(tool_calls=(ToolCall("remember", {"note": "x" * 3000}),)), Reply(text="Done.")
    )
    report = run(home)
    assert report.escalated == 1
    reason = tasks.read(home.workspace("escalations") / name).meta["escalation"]
    assert reason.startswith("task token budget:") and "budget.task_tokens (1,500)" in reason


def test_a_missing_key_is_one_line_naming_the_variable(tmp_path: Path, llm: LLMockServer) -> None:
    home = wired(tmp_path, llm)
    names = [brief(home, f"Write note {i}", env={}) for i in range(3)]
    report = run(home, env={})
    assert report.failed == [
        "no API key for tier 'claude': set the environment variable ANTHROPIC_API_KEY (keys are "
        "read from the environment only): queued tasks wait (fix it, then run again)"
    ]
    assert report.steps == 0 and posts(llm) == []
    for name in names:  # checked before any step starts: nothing is escalated
        assert tasks.read(home.workspace("dev") / name).status == "queued"
    [stopped] = events(home, "run.stopped")
    assert stopped["tier"] == "claude" and stopped["tasks"] == ["T-0001", "T-0002", "T-0003"]


def test_a_local_server_that_is_down_or_lacks_the_model_is_found_first(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, model="gpt")
    text = home.roster_path.read_text(encoding="utf-8")
    home.roster_path.write_text(text.replace("model: gpt-4o-mini", "model: llama3.2"),
                                encoding="utf-8")  # fmt: skip
    brief(home)
    report = run(home)
    assert report.failed == [
        f"{llm.base_url('openai')} does not serve model 'llama3.2' (it serves: "
        "gpt-3.5-turbo, gpt-4-turbo, gpt-4o, gpt-4o-mini, gpt-image-1, text-embedding-3-large, "
        "text-embedding-3-small): queued tasks wait (fix it, then run again)"
    ]
    assert posts(llm) == []
    home.roster_path.write_text(text.replace(llm.base_url("openai"), "http://127.0.0.1:9/v1"),
                                encoding="utf-8")  # fmt: skip
    brief(home)
    report = run(home)
    assert report.failed[0].startswith("cannot use http://127.0.0.1:9/v1: openai:")
    assert report.steps == 0 and len(list(home.workspace("dev").glob("T-*.md"))) == 2


def test_a_brief_the_router_cannot_route_for_want_of_a_key_waits_in_the_inbox(
    tmp_path: Path, llm: LLMockServer
) -> None:
    from zoo.errors import RunStopped

    home = wired(tmp_path, llm)  # no routes words: the lead's model must route
    with pytest.raises(RunStopped) as stopped:
        dispatch(Zoo.open(home, env={}), "Something for the team")
    assert str(stopped.value) == (
        "no API key for tier 'claude': set the environment variable ANTHROPIC_API_KEY (keys are "
        "read from the environment only); T-0001 waits in the inbox, unrouted, until then "
        "(zoo run routes it)"
    )
    [waiting] = home.workspace("inbox").glob("T-0001-*.md")
    assert tasks.read(waiting).status == "queued" and not home.workspace("escalations").exists()
    report = run(home, env={})
    assert report.failed and report.routed == 0 and waiting.exists()
    llm.state.scenarios.add(
        Reply(
            tool_calls=(
                ToolCall("route", {"agent": "beaver", "reason": "dev work", "confidence": 0.9}),
            )
        ),  # fmt: skip
        Reply(text="Done."),
    )
    assert run(home).done == 1  # with the key set, the same brief is routed and worked


def test_a_step_paused_by_the_budget_resumes_where_it_stopped(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = wired(tmp_path, llm, extra="budget: {daily_usd: 1}\n")
    name = brief(home)
    text = home.roster_path.read_text(encoding="utf-8")
    llm.state.scenarios.add(
        Reply(tool_calls=(ToolCall("remember", {"note": "x" * 8000}),), times=1),
        Reply(text="Done."),
    )
    roster_small = text.replace("daily_usd: 1}", "daily_usd: 0.006}")  # one call, not two
    home.roster_path.write_text(roster_small, encoding="utf-8")
    first = run(home)
    assert first.steps == 0 and first.escalated == 0 and len(posts(llm)) == 1
    assert tasks.read(home.workspace("dev") / name).status == "queued"
    home.roster_path.write_text(text, encoding="utf-8")  # a person raises the budget
    second = run(home)
    assert second.done == 1 and len(posts(llm)) == 2  # the first reply is not asked again
    assert len(events(home, "tool.call")) == 1  # nor is its note written twice
