"""Context windows: a tier's `context_tokens` (set, asked of its server, or a default), and
prompts fitted to it: memory first, then older sections, never the brief or the playbook;
a call that cannot fit is not sent and its task is escalated with the figures.

The model calls go through the real OpenAI SDK to llmock, which refuses, as a small server
does, a prompt over its context window; the servers asked for their window are a loopback
HTTP server of this file's own."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llmock.ratelimit import LimitSettings
from llmock.scenarios import Match, Reply, ToolCall
from llmock.testing import LLMockServer

from tests.conftest import ZooCli, make_home
from zoo.engine.context import Fitted, Prompt, fit
from zoo.engine.doctor import diagnose
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.models.base import Message, Request
from zoo.models.window import UNSAID, Unreachable, Window, ask
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock

CHAT = Match(path="*/chat/completions")


def roster(base_url: str, *, tokens: int | None = 2048, model: str = "gpt-4o-mini") -> str:
    context = f"\n    context_tokens: {tokens}" if tokens is not None else ""
    return f"""\
version: 1
name: small
lead: roo
models:
  local:
    provider: openai
    model: {model}
    base_url: "{base_url}"{context}
defaults: {{model: local, retries: 0, timeout_s: 5, backoff_s: 0.01}}
agents:
  roo: {{role: Lead, description: Routes briefs.}}
  beaver:
    role: Developer
    description: Writes code.
    workspace: dev
    routes: [login]
    tools: [read_file, write_file, remember, escalate]
"""


@pytest.fixture
def window(llm: LLMockServer) -> Iterator[LLMockServer]:
    """llmock refusing, like a small server, a prompt over 2,048 tokens."""
    llm.state.limiter.configure(LimitSettings(context_window=2048))
    try:
        yield llm
    finally:
        llm.state.limiter.configure(LimitSettings())


def events(home: Home, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(home.journal_path) if e["event"] == kind]


def chats(llm: LLMockServer) -> list[Any]:
    return [r for r in llm.state.journal.records() if r.path.endswith("/chat/completions")]


def run(home: Home) -> Any:
    with runner_lock(home):
        return run_once(Zoo.open(home, env={}))


def note(time: str, agent: str, text: str) -> str:
    return f"\n## {time} · {agent} · T-0000\n{text}\n"


BRIEF = "Fix the login timeout: sessions end after one minute."


def crowded(home: Home, *, sections: int = 3, section_chars: int = 1500) -> Path:
    """A task for beaver with `sections` earlier sections, and memory that bears on it."""
    team = "".join(note(f"2026-11-2{i}T09:00:00Z", "owl", f"Login note {i}: " + "t" * 480)
                   for i in range(3))  # fmt: skip
    home.memory_path.write_text("# MEMORY\n" + team, encoding="utf-8")
    own = "".join(note(f"2026-11-2{i}T10:00:00Z", "beaver", f"My note {i}: " + "o" * 480)
                  for i in range(3))  # fmt: skip
    home.agent_memory("beaver").write_text("# beaver · memory\n" + own, encoding="utf-8")
    task, _ = dispatch(Zoo.open(home, env={}), BRIEF, to="beaver")
    for i in range(sections):
        task.append_section(f"owl · 2026-11-2{i}T11:00:00Z", f"Section {i}: " + "s" * section_chars)
    tasks.save(task)
    return task.path


def sent_tokens(body: dict[str, Any]) -> int:
    """The request's size as context.py guesses it: 4 characters a token, over the messages
    and the tools' schemas."""
    chars = sum(len(m.get("content") or "") for m in body["messages"])
    chars += sum(len(c["function"]["name"]) + len(c["function"]["arguments"])
                 for m in body["messages"] for c in m.get("tool_calls") or [])  # fmt: skip
    for tool in body.get("tools") or []:
        f = tool["function"]
        chars += len(f["name"]) + len(f["description"]) + len(json.dumps(f["parameters"]))
    return chars // 4


# --- fitting a turn's prompt -----------------------------------------------------------------


def test_a_prompt_over_the_window_loses_memory_then_older_sections_and_fits(
    tmp_path: Path, window: LLMockServer
) -> None:
    home = make_home(tmp_path / "zoo", roster(window.base_url("openai")))
    crowded(home)
    window.state.scenarios.add(Reply(text="Done: the timeout is fixed.", match=CHAT))
    report = run(home)
    assert (report.done, report.escalated) == (1, 0)
    [call] = chats(window)
    assert call.status == 200
    system, user = (m["content"] for m in call.body["messages"])
    assert system.startswith("# Beaver · Agent\n\n## How you work\n1. Read the brief.")
    assert "You are beaver, the Developer of the small team." in system
    assert ("# Your memory\n[3 older notes left out to fit the model's 2,048-token context]"
            in system)  # fmt: skip
    assert ("# Team memory (MEMORY.md, the entries relevant to this task)\n[3 less relevant "
            "entries left out to fit the model's 2,048-token context]") in system  # fmt: skip
    assert "note 0" not in system and "note 2" not in system
    assert user.startswith(f"Task T-0001: {BRIEF}\n\n# {BRIEF}\n\n"
                           "[1 older section left out to fit the model's 2,048-token context]"
                           "\n\n## owl · 2026-11-21T11:00:00Z\n\nSection 1: ")  # fmt: skip
    assert "Section 0" not in user and "Section 2: " in user
    assert sent_tokens(call.body) + call.body["max_tokens"] <= 2048 - 128
    [fitted] = events(home, "prompt.fitted")
    assert fitted["left_out"] == {"team_memory": 3, "own_memory": 3, "sections": 1}
    assert (fitted["task"], fitted["agent"], fitted["tier"]) == ("T-0001", "beaver", "local")
    assert (fitted["context_tokens"], fitted["source"], fitted["room"]) == (
        2048, "set in zoo.yaml", 2048 - 512 - 128)  # fmt: skip
    assert fitted["tokens_before"] > 2048 - 640 >= fitted["tokens_after"] == sent_tokens(call.body)
    assert fitted["max_tokens"] == call.body["max_tokens"]
    done = tasks.read(next(home.workspace("done").iterdir()))
    assert "Section 0: " in done.body  # the task file keeps all: only the prompt left it out


def test_without_fitting_the_server_refuses_the_same_prompt(
    tmp_path: Path, window: LLMockServer
) -> None:
    """What happened before: the whole prompt went out and the small server refused it (or,
    as Ollama does, silently cut it); here it is sent to a tier said to hold far more."""
    home = make_home(tmp_path / "zoo", roster(window.base_url("openai"), tokens=200_000))
    crowded(home)
    report = run(home)
    assert report.escalated == 1 and [c.status for c in chats(window)] == [400]
    assert events(home, "prompt.fitted") == []


def test_the_fitting_holds_for_the_later_calls_of_a_turn(
    tmp_path: Path, window: LLMockServer
) -> None:
    home = make_home(tmp_path / "zoo", roster(window.base_url("openai")))
    crowded(home, sections=2, section_chars=600)
    (home.workspace("dev") / "log.txt").write_text("x" * 2800, encoding="utf-8")
    window.state.scenarios.add(
        Reply(tool_calls=(ToolCall("read_file", {"path": "log.txt"}),), match=CHAT),
        Reply(text="Read it: done.", match=CHAT),
    )
    report = run(home)
    assert report.done == 1
    calls = chats(window)
    assert [c.status for c in calls] == [200, 200]
    assert all(sent_tokens(c.body) + c.body["max_tokens"] <= 2048 - 128 for c in calls)
    first, later = events(home, "prompt.fitted")
    assert first["left_out"] == {"team_memory": 2}
    assert later["left_out"] == {"team_memory": 3, "own_memory": 3, "sections": 1}
    assert later["tokens_after"] == sent_tokens(calls[1].body) > first["tokens_after"]
    user = calls[1].body["messages"][1]["content"]
    assert "[1 older section left out" in user and "Section 1: " in user
    tool = calls[1].body["messages"][-1]
    assert tool["role"] == "tool" and tool["content"] == "x" * 2800  # the turn's own: kept


def test_a_turn_that_outgrows_the_window_is_not_sent_and_escalates(
    tmp_path: Path, window: LLMockServer
) -> None:
    home = make_home(tmp_path / "zoo", roster(window.base_url("openai")))
    path = crowded(home, sections=1)
    (home.workspace("dev") / "big.txt").write_text("x" * 9000, encoding="utf-8")
    window.state.scenarios.add(
        Reply(tool_calls=(ToolCall("read_file", {"path": "big.txt"}),), match=CHAT)
    )
    report = run(home)
    assert report.escalated == 1 and not report.halted
    assert len(chats(window)) == 1  # the second call was never sent
    task = tasks.read(home.workspace("escalations") / path.name)
    [too_large] = events(home, "prompt.too_large")
    need = too_large["tokens"]
    assert need > too_large["room"] == 1408 and need > 9000 // 4
    assert task.meta["escalation"] == (
        f"the prompt needs about {need:,} tokens with memory and older sections left out, over "
        "the 1,408 that tier local's context of 2,048 tokens (set in zoo.yaml) leaves it after "
        "512 for the answer and 128 of margin"
    )
    [refused] = events(home, "step.refused")
    assert (refused["kind"], refused["error"]) == ("ContextExceeded", task.meta["escalation"])
    assert too_large["error"] == task.meta["escalation"] and too_large["context_tokens"] == 2048


def test_a_brief_too_big_for_the_window_is_escalated_and_others_go_on(
    tmp_path: Path, window: LLMockServer
) -> None:
    home = make_home(tmp_path / "zoo", roster(window.base_url("openai")))
    zoo = Zoo.open(home, env={})
    big, _ = dispatch(zoo, "Fix the login page. " + "Details. " * 1200, to="beaver")
    dispatch(zoo, "Fix the login button.", to="beaver")
    window.state.scenarios.add(Reply(text="Fixed.", match=CHAT))
    report = run(home)
    assert (report.done, report.escalated, report.halted) == (1, 1, False)
    [call] = chats(window)
    assert "Fix the login button." in call.body["messages"][1]["content"]
    task = tasks.read(home.workspace("escalations") / big.path.name)
    assert task.status == "escalated"
    [too_large] = events(home, "prompt.too_large")
    assert too_large["task"] == big.id and too_large["tokens"] > 9600 // 4
    assert task.meta["escalation"].startswith(f"the prompt needs about {too_large['tokens']:,} ")


def test_the_routers_prompt_that_cannot_fit_sends_the_brief_to_a_person(
    tmp_path: Path, llm: LLMockServer
) -> None:
    home = make_home(tmp_path / "zoo", roster(llm.base_url("openai"), tokens=512))
    task, route = dispatch(Zoo.open(home, env={}), "Please look at this. " + "Words. " * 400)
    assert route.agent is None
    assert chats(llm) == []
    assert re.fullmatch(
        r"not routed: the prompt needs about [\d,]+ tokens, over the 352 that tier local's "
        r"context of 512 tokens \(set in zoo\.yaml\) leaves it after 128 for the answer and 32 "
        r"of margin", route.reason)  # fmt: skip
    escalated = tasks.read(home.workspace("escalations") / task.path.name)
    assert escalated.meta["escalation"] == f"could not route: {route.reason}"


# --- fit, the pure function --------------------------------------------------------------------


def _prompt(team: int = 3, own: int = 3, sections: int = 3) -> Prompt:
    return Prompt(
        head="H" * 1000,
        own=tuple(f"- own {i} " + "o" * 392 for i in range(own)),
        team=tuple(f"- team {i} " + "t" * 391 for i in range(team)),
        brief="Task T-1: brief\n\n" + "b" * 384,
        sections=tuple(
            f"## owl · 2026-11-2{i}T11:00:00Z\n\n" + "s" * 366 + "\n\n" for i in range(sections)
        ),
    )


def _fits(prompt: Prompt, tokens: int) -> Fitted:
    request = Request(prompt.system(), (Message("user", prompt.task()),), max_tokens=100)
    return fit(request, Window(tokens, "test"), "t", prompt)


def test_fit_leaves_out_only_what_it_must_least_relevant_memory_first() -> None:
    prompt = _prompt()
    full = _fits(prompt, 100_000)
    assert not full.left and full.request.system == prompt.system() and full.before == full.after
    # room: 1,000 - 100 (answer) - 62 (margin) = 838 tokens, 3,352 characters
    fitted = _fits(prompt, 1000)
    assert (fitted.left.team, fitted.left.own, fitted.left.sections) == (3, 2, 0)
    assert fitted.after <= fitted.room == 838 < _fits(prompt, 10**6).before
    system = fitted.request.system
    assert "- own 2 " in system and "- own 1 " not in system and "- team 0" not in system
    assert fitted.request.messages[0].content == prompt.task()  # the sections all kept
    some = _fits(_prompt(own=0, sections=0), 650)  # room: 650 - 100 - 40 = 510 tokens
    kept = some.request.system
    assert "- team 0 " in kept and "- team 1 " not in kept and "- team 2 " not in kept
    assert "[2 less relevant entries left out to fit the model's 650-token context]" in kept


def test_fit_keeps_the_brief_and_the_latest_sections() -> None:
    prompt = _prompt(team=0, own=0, sections=3)
    fitted = _fits(prompt, 700)  # room: 700 - 100 - 43 = 557 tokens
    assert fitted.left.sections == 2
    task = fitted.request.messages[0].content
    note = "[2 older sections left out to fit the model's 700-token context]"
    assert task.startswith(f"{prompt.brief.rstrip()}\n\n{note}\n\n## owl · 2026-11-22T11:00:00Z")
    assert fitted.request.max_tokens == 100  # room enough for the whole answer


def test_a_brief_of_its_own_headings_is_all_brief() -> None:
    task = "Task T-1: x\n\n# x\n\n## Steps\n\n1. do\n\n## owl · 2026-11-20T11:00:00Z\n\nok\n"
    prompt = Prompt.of("head", (), (), task)
    assert prompt.brief == "Task T-1: x\n\n# x\n\n## Steps\n\n1. do\n\n"
    assert prompt.sections == ("## owl · 2026-11-20T11:00:00Z\n\nok\n",)
    assert prompt.task() == task and prompt.system() == "head"


def test_the_answer_is_lowered_to_what_the_window_leaves() -> None:
    request = Request("s" * 8000, (), max_tokens=4096)  # 2,000 tokens of prompt
    fitted = fit(request, Window(4096, "test"), "t")
    assert fitted.request.max_tokens == 4096 - 256 - 2000
    assert fit(request, Window(None, "no limit"), "t").request is request


# --- the window: the roster's, the server's word, or a default --------------------------------


@dataclass
class Fake:
    """A loopback server answering JSON at the paths it is given, 404 elsewhere."""

    answers: dict[tuple[str, str], Any] = field(default_factory=dict)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""


def serve(state: Fake, listen: bool = True) -> ThreadingHTTPServer:
    """A server for `state` on a free port of 127.0.0.1; bound but not listening (so
    refusing connections) until `listen` (or `started(server)`)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.seen.append((method, self.path, body))
            answer = state.answers.get((method, self.path))
            data = json.dumps(answer).encode()
            self.send_response(404 if answer is None else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.server_bind()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return started(server) if listen else server


def started(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    server.server_activate()
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return server


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = Fake()
    server = serve(state)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


MODELS = {"object": "list", "data": [{"id": "qwen", "object": "model", "created": 0,
                                      "owned_by": "me"}]}  # fmt: skip
OLLAMA = {("GET", "/api/version"): {"version": "0.12.0"}, ("GET", "/api/ps"): {"models": []}}
BIG = "Ollama's default: /api/show says the model holds 131,072, but it is loaded with less "
LOADED = "unless told more; set context_tokens to use more"


@pytest.mark.parametrize(("answers", "expected"), [
    ({("GET", "/props"): {"default_generation_settings": {"n_ctx": 8192}, "total_slots": 1}},
     Window(8192, "from /props")),
    ({("GET", "/v1/models"): {"data": [{"id": "qwen", "max_model_len": 32768}]}},
     Window(32768, "from /v1/models")),
    ({**OLLAMA, ("GET", "/api/ps"): {"models": [{"name": "qwen:latest", "model": "qwen:latest",
                                                 "context_length": 16384}]}},
     Window(16384, "from /api/ps, as loaded")),
    ({**OLLAMA, ("POST", "/api/show"): {"parameters": "num_ctx                        8192\n"
                                                      'stop                           "<|im_end|>"',
                                        "model_info": {"general.architecture": "qwen2",
                                                       "qwen2.context_length": 32768}}},
     Window(8192, "from /api/show, num_ctx")),
    ({**OLLAMA, ("POST", "/api/show"): {"model_info": {"general.architecture": "llama",
                                                       "llama.context_length": 2048}}},
     Window(2048, "from /api/show")),
    ({**OLLAMA, ("POST", "/api/show"): {"model_info": {"general.architecture": "llama",
                                                       "llama.context_length": 131072}}},
     Window(4096, BIG + LOADED)),
    ({("GET", "/api/v0/models"): {"data": [{"id": "qwen", "state": "loaded",
                                            "max_context_length": 32768,
                                            "loaded_context_length": 8192}]}},
     Window(8192, "from /api/v0/models, as loaded")),
    ({("GET", "/api/v0/models"): {"data": [{"id": "qwen", "state": "not-loaded",
                                            "max_context_length": 32768}]}},
     Window(4096, "LM Studio's default: /api/v0/models says the model holds 32,768, but it is "
                  "loaded with less " + LOADED)),
    ({("GET", "/v1/models"): MODELS}, Window(4096, UNSAID)),
])  # fmt: skip
def test_the_window_is_asked_of_the_server_once(
    tmp_path: Path, fake: Fake, answers: dict[tuple[str, str], Any], expected: Window
) -> None:
    fake.answers = answers
    home = make_home(tmp_path / "zoo", roster(f"{fake.url}/v1", tokens=None, model="qwen"))
    models = Zoo.open(home, env={}).models
    assert models.window("local") == expected
    asked = len(fake.seen)
    assert models.window("local") == expected and len(fake.seen) == asked  # once per tier
    posted = [(path, body) for method, path, body in fake.seen if method == "POST"]
    assert all(p == ("/api/show", {"model": "qwen"}) for p in posted)
    assert posted == [] or ("GET", "/api/version") in answers  # only Ollama gets a POST


def test_the_rosters_context_tokens_wins_and_the_server_is_not_asked(
    tmp_path: Path, fake: Fake
) -> None:
    fake.answers = {("GET", "/props"): {"default_generation_settings": {"n_ctx": 8192}}}
    home = make_home(tmp_path / "zoo", roster(f"{fake.url}/v1", tokens=6000, model="qwen"))
    assert Zoo.open(home, env={}).models.window("local") == Window(6000, "set in zoo.yaml")
    assert fake.seen == []


def test_a_server_that_does_not_answer_gets_the_default_and_is_asked_again(
    tmp_path: Path,
) -> None:
    state = Fake({("GET", "/props"): {"default_generation_settings": {"n_ctx": 8192}}})
    server = serve(state, listen=False)  # bound, not listening: connections are refused
    try:
        base = f"{state.url}/v1"
        models = Zoo.open(make_home(tmp_path / "zoo", roster(base, tokens=None, model="qwen")),
                          env={}).models  # fmt: skip
        assert models.window("local") == Window(4096, f"a default: {base} did not answer")
        started(server)
        assert models.window("local") == Window(8192, "from /props")
        assert models.window("local") == Window(8192, "from /props")
        assert [p for _, p, _ in state.seen].count("/props") == 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_never_answers_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # connections wait in the backlog: never accepted, never answered
    try:
        with pytest.raises(Unreachable):
            ask(f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "qwen", None, timeout=0.2)
    finally:
        silent.close()


def test_hosted_and_offline_tiers(tmp_path: Path) -> None:
    text = roster("http://127.0.0.1:9/v1").replace(
        "defaults:", "  claude: {provider: anthropic, model: claude-haiku-4-5}\n"
                     "  gpt: {provider: openai, model: gpt-4o-mini}\n"
                     "  quiet: {provider: offline}\ndefaults:")  # fmt: skip
    models = Zoo.open(make_home(tmp_path / "zoo", text), env={}).models
    assert models.window("claude").tokens == 200_000
    assert models.window("gpt") == Window(
        128_000, "openai's default; set context_tokens for a model that holds more"
    )
    assert models.window("quiet") == Window(None, "no limit")


def test_context_tokens_below_512_is_refused(tmp_path: Path, zoo_cli: ZooCli) -> None:
    home = make_home(tmp_path / "zoo", roster("http://127.0.0.1:9/v1", tokens=100))
    r = zoo_cli("check", "--home", str(home.root))
    assert (r.code, r.err) == (1, f"zoo: {home.roster_path}:9: models.local.context_tokens: "
                                  "expected a whole number of 512 or more, got 100\n")  # fmt: skip


def test_doctor_says_the_servers_window_and_where_it_comes_from(tmp_path: Path, fake: Fake) -> None:
    props = {"default_generation_settings": {"n_ctx": 8192}}
    fake.answers = {("GET", "/v1/models"): MODELS, ("GET", "/props"): props}
    home = make_home(tmp_path / "zoo", roster(f"{fake.url}/v1", tokens=None, model="qwen"))
    [server] = [c for c in diagnose(home, env={}).checks if c.name == "server"]
    assert (server.verdict, server.detail) == ("ok", f"tier local: {fake.url}/v1 answers and "
                                               "serves 'qwen', context 8,192 tokens (from "
                                               "/props)")  # fmt: skip
