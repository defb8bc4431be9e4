"""Local models behind OpenAI-compatible servers: tool calls written as text, usage counted
when the server sends none, message shapes such servers accept. The real OpenAI SDK talks
HTTP to llmock (or, where llmock cannot play the part, a loopback server of the test's own)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llmock.scenarios import Reply
from llmock.testing import LLMockServer

from tests.conftest import make_home
from tests.test_providers import COMPLETIONS, KEYS, events, posts, run
from tests.test_providers import roster as wire_roster
from zoo.engine.router import dispatch
from zoo.engine.zoo import Zoo
from zoo.state import tasks
from zoo.state.home import Home

NOTE = "Initech wants a demo on Friday"
CALL = {"name": "remember", "arguments": {"note": NOTE}}


def _home(tmp_path: Path, llm: LLMockServer, tier_extra: str = "", extra: str = "") -> Home:
    text = wire_roster(llm, model="gpt", extra=extra)
    if tier_extra:
        text = text.replace("    api_key_env: OPENAI_API_KEY\n",
                            f"    api_key_env: OPENAI_API_KEY\n    {tier_extra}\n")  # fmt: skip
    return make_home(tmp_path / "zoo", text)


def _brief(home: Home, text: str = "Note what the lead said") -> str:
    task, _ = dispatch(Zoo.open(home, env=KEYS), text, to="beaver")
    return task.path.name


def _bodies(llm: LLMockServer) -> list[dict[str, Any]]:
    return [r.body for r in posts(llm) if r.path.endswith("/chat/completions")]


def _done(home: Home, name: str) -> tasks.Task:
    return tasks.read(home.workspace("done") / name)


@pytest.mark.parametrize(
    "written",
    [
        f"```json\n{json.dumps(CALL)}\n```",
        json.dumps(CALL),
        f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>",
        f"I will keep that in mind.\n\n<tool_call>{json.dumps(CALL)}</tool_call>",
    ],
    ids=["fenced", "bare", "tagged", "with-prose"],
)
def test_a_call_written_as_text_runs_like_a_native_one(
    tmp_path: Path, llm: LLMockServer, written: str
) -> None:
    home = _home(tmp_path, llm)
    name = _brief(home)
    llm.state.scenarios.add(
        Reply(text=written, match=COMPLETIONS), Reply(text="Noted.", match=COMPLETIONS)
    )
    report = run(home)
    assert report.done == 1 and report.failed == []
    assert NOTE in (home.agents_dir / "beaver.memory.md").read_text(encoding="utf-8")
    [call] = events(home, "tool.call")
    assert (call["tool"], call["format"]) == ("remember", "text")
    replies = events(home, "model.reply")
    assert [r.get("tool_format") for r in replies] == ["text", None]
    body = _done(home, name).body
    assert '"arguments"' not in body and "Noted." in body  # the call is not the section
    assert f"remembered in agents/beaver.memory.md: {NOTE}" in body
    second = _bodies(llm)[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": written}  # as the model wrote it
    assert second[-1]["role"] == "user" and second[-1]["content"].startswith(
        "[result of remember]\n"
    )
    assert "tools" in _bodies(llm)[0]  # auto: the tools are offered natively too


def test_a_call_to_a_tool_not_offered_is_refused_and_journaled(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = _home(tmp_path, llm)
    name = _brief(home)
    run_ls = {"name": "run", "arguments": {"command": ["ls", "/root"]}}
    llm.state.scenarios.add(
        Reply(text=json.dumps(run_ls), match=COMPLETIONS), Reply(text="OK.", match=COMPLETIONS)
    )
    assert run(home).done == 1
    [refused] = events(home, "tool.refused")
    assert refused["tool"] == "run" and refused["format"] == "text"
    assert refused["arguments"] == {"command": ["ls", "/root"]}
    assert events(home, "tool.call") == [] and "OK." in _done(home, name).body


@pytest.mark.parametrize(
    "text",
    [
        "I could call remember with the note, but the brief asks for nothing to keep.",
        'The lead wrote {"name": "Initech", "city": "Austin"} in the brief.',
    ],
)
def test_text_that_only_mentions_a_tool_is_not_executed(
    tmp_path: Path, llm: LLMockServer, text: str
) -> None:
    home = _home(tmp_path, llm)
    name = _brief(home)
    llm.state.scenarios.add(Reply(text=text, match=COMPLETIONS))
    assert run(home).done == 1
    assert events(home, "tool.call") == [] and events(home, "tool.refused") == []
    assert text in _done(home, name).body


def test_tool_format_native_takes_no_call_from_text(tmp_path: Path, llm: LLMockServer) -> None:
    home = _home(tmp_path, llm, tier_extra="tool_format: native")
    name = _brief(home)
    llm.state.scenarios.add(Reply(text=json.dumps(CALL), match=COMPLETIONS))
    assert run(home).done == 1
    assert events(home, "tool.call") == [] and NOTE in _done(home, name).body


def test_tool_format_text_describes_the_tools_in_the_prompt(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = _home(tmp_path, llm, tier_extra="tool_format: text")
    _brief(home)
    llm.state.scenarios.add(
        Reply(text=f"<tool_call>{json.dumps(CALL)}</tool_call>", match=COMPLETIONS),
        Reply(text="Noted.", match=COMPLETIONS),
    )
    assert run(home).done == 1
    first, second = _bodies(llm)
    assert "tools" not in first and "tool_choice" not in first  # a server with no tool support
    system = first["messages"][0]["content"]
    assert '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>' in system
    assert "- remember: Keep a note for later sessions" in system
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert [e["tool"] for e in events(home, "tool.call")] == ["remember"]


def test_the_routers_answer_written_as_text_routes(tmp_path: Path, llm: LLMockServer) -> None:
    home = _home(tmp_path, llm)
    route = {"name": "route", "arguments": {"agent": "beaver", "reason": "a note to keep",
                                            "confidence": 0.9}}  # fmt: skip
    llm.state.scenarios.add(Reply(text=f"<tool_call>{json.dumps(route)}</tool_call>",
                                  match=COMPLETIONS))  # fmt: skip
    task, routed = dispatch(Zoo.open(home, env=KEYS), "Something for the team")
    assert (routed.agent, routed.by, routed.reason) == ("beaver", "model", "a note to keep")
    [reply] = events(home, "model.reply")
    assert reply["purpose"] == "route" and reply["tool_format"] == "text"


def test_no_message_is_sent_with_null_content(tmp_path: Path, llm: LLMockServer) -> None:
    from llmock.scenarios import ToolCall

    home = _home(tmp_path, llm)
    _brief(home)
    llm.state.scenarios.add(
        Reply(tool_calls=(ToolCall("remember", {"note": NOTE}),), match=COMPLETIONS),
        Reply(text="Noted.", match=COMPLETIONS),
    )
    assert run(home).done == 1
    assistant = _bodies(llm)[1]["messages"][2]
    assert assistant["role"] == "assistant" and assistant["tool_calls"]
    assert assistant["content"] == ""  # never null: some servers answer 500 to it
    sent = [m for body in _bodies(llm) for m in body["messages"]]
    assert all(isinstance(m["content"], str) for m in sent)


# --- a server that sends no usage, even asked -------------------------------------------


class _NoUsage(BaseHTTPRequestHandler):
    """An OpenAI-compatible server of the kind that ignores `stream_options`."""

    answer = "Done."

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._send(
            "application/json",
            json.dumps(
                {
                    "object": "list",
                    "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "me"}],
                }
            ).encode(),
        )

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "tiny"}
        parts = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                        "content": self.answer}}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]  # fmt: skip
        data = "".join(f"data: {json.dumps(p)}\n\n" for p in parts) + "data: [DONE]\n\n"
        self._send("text/event-stream", data.encode())

    def _send(self, kind: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def no_usage() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoUsage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _tiny(tmp_path: Path, url: str, budget: str) -> Home:
    return make_home(
        tmp_path / "zoo",
        f"""\
version: 1
name: tiny
lead: roo
models:
  local:
    provider: openai
    model: tiny
    base_url: "{url}"
    price: {{input_per_mtok: 1000, output_per_mtok: 1000}}
defaults: {{model: local, retries: 0, timeout_s: 5}}
budget: {budget}
agents:
  roo: {{role: Lead}}
  beaver: {{role: Developer, workspace: dev, routes: [note]}}
""",
    )


def test_usage_the_server_does_not_send_is_estimated_and_counted(
    tmp_path: Path, no_usage: str
) -> None:
    home = _tiny(tmp_path, no_usage, "{daily_usd: 100}")
    task, _ = dispatch(Zoo.open(home, env={}), "Take a note of the launch date")
    assert run(home, env={}).done == 1
    [reply] = events(home, "model.reply")
    assert reply["estimated"] is True and reply["input_tokens"] > 0 and reply["output_tokens"] > 0
    assert float(str(reply["usd"])) > 0
    done = tasks.read(home.workspace("done") / task.path.name)
    assert done.meta["tokens"] == int(str(reply["input_tokens"])) + int(str(reply["output_tokens"]))


def test_budgets_hold_for_a_server_that_sends_no_usage(tmp_path: Path, no_usage: str) -> None:
    """Each call reserves about $1.14 and costs about $0.12 here: counted as 0, all eight
    would run; counted from the text, the budget stops the fifth."""
    home = _tiny(tmp_path, no_usage, "{daily_usd: 1.6}")
    for i in range(8):
        dispatch(Zoo.open(home, env={}), f"Take note {i} of the launch")
    report = run(home, env={})
    assert 0 < report.done < 8 and report.budget_spent
    spent = sum(float(str(e["usd"])) for e in events(home, "model.reply"))
    assert 0 < spent <= 1.6


def test_the_example_zoo_runs_on_a_small_local_model(example_home: Home) -> None:
    """The issue's setup: both tiers on a llama.cpp-like server that writes its tool calls
    as text and sends no usage. The calls are executed: drafts written, notes kept,
    handoffs chosen; tokens and spend are counted."""
    from tests.localserver import point_at, serving

    with serving() as (url, server):
        roster = example_home.roster_path.read_text(encoding="utf-8")
        example_home.roster_path.write_text(point_at(roster, url), encoding="utf-8")
        task, _ = dispatch(Zoo.open(example_home, env={}),
                           "Fix the login bug: users are logged out after a minute")  # fmt: skip
        report = run(example_home, env={})
        assert report.failed == [] and report.done == 1
    done = tasks.read(example_home.workspace("done") / task.path.name)
    agents = [line.split(" · ")[0] for line in done.body.splitlines() if line.startswith("## ")]
    assert agents == ["## beaver", "## owl", "## lark"]
    for agent in ("beaver", "owl", "lark"):
        workspace = Zoo.open(example_home, env={}).roster.workspace_of(agent)
        assert (example_home.workspace(workspace) / "drafts" / "local.md").is_file()
        memory = (example_home.agents_dir / f"{agent}.memory.md").read_text(encoding="utf-8")
        assert "The local model did this step." in memory
    calls = events(example_home, "tool.call")
    assert {c["format"] for c in calls} == {"text"} and len(calls) == 8  # lark: no handoff
    handoffs = events(example_home, "task.handoff")
    assert [h["agent"] for h in handoffs] == ["owl", "lark"]
    replies = events(example_home, "model.reply")
    assert all(r["estimated"] for r in replies) and done.meta["tokens"] > 0
    assert all(isinstance(m["content"], str) for b in server.requests for m in b["messages"])
