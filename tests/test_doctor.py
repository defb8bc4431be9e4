"""`zoo doctor`: one line per check, exit 1 when one fails; real SDKs against llmock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llmock.scenarios import Reply, ToolCall
from llmock.testing import LLMockServer

from tests.conftest import SMALL_ROSTER, ZooCli, make_home
from tests.test_providers import COMPLETIONS, KEYS
from tests.test_providers import roster as wire_roster
from zoo.engine.doctor import diagnose
from zoo.state.home import Home
from zoo.state.journal import read_events


def _home(tmp_path: Path, llm: LLMockServer, **replace: str) -> Home:
    text = wire_roster(llm, model="gpt")
    for old, new in replace.items():
        text = text.replace(old, new)
    return make_home(tmp_path / "zoo", text)


def _verdicts(home: Home, **kwargs: object) -> dict[str, tuple[str, str]]:
    report = diagnose(home, env=KEYS, **kwargs)  # type: ignore[arg-type]
    return {c.name: (c.verdict, c.detail) for c in report.checks}


def test_a_zoo_that_can_work_passes_every_check(
    tmp_path: Path, llm: LLMockServer, zoo_cli: ZooCli, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    home = _home(tmp_path, llm)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    r = zoo_cli("doctor", "--home", str(home.root))
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    assert lines[0] == "ok   roster: zoo.yaml and the playbooks: 2 agents, 0 schedules"
    assert (
        f"ok   server: tier gpt: {llm.base_url('openai')} answers and serves 'gpt-4o-mini', "
        "context 4,096 tokens (a default: the server does not say; set context_tokens to what it "
        "holds)" in lines
    )
    assert all(line.split()[0] in ("ok", "warn") for line in lines)
    doc = json.loads(zoo_cli("doctor", "--json", "--home", str(home.root)).out)
    assert doc["ok"] is True and {c["check"] for c in doc["checks"]} >= {
        "roster", "key", "server", "memory", "git", "watches", "disk", "runner"}  # fmt: skip


def test_a_server_that_is_down_or_lacks_the_model_fails(tmp_path: Path, llm: LLMockServer) -> None:
    down = _home(tmp_path / "a", llm, **{llm.base_url("openai"): "http://127.0.0.1:9/v1"})
    verdict, detail = _verdicts(down)["server"]
    assert verdict == "fail" and detail.startswith("tier gpt: cannot use http://127.0.0.1:9/v1:")
    lacking = _home(tmp_path / "b", llm, **{"model: gpt-4o-mini": "model: llama3.2"})
    verdict, detail = _verdicts(lacking)["server"]
    assert verdict == "fail" and "does not serve model 'llama3.2'" in detail
    assert diagnose(lacking, env=KEYS).ok is False


def test_a_missing_key_fails_naming_the_variable(tmp_path: Path, llm: LLMockServer) -> None:
    home = _home(tmp_path, llm)
    report = diagnose(home, env={})
    [key] = [c for c in report.checks if c.name == "key"]
    assert (key.verdict, key.detail) == ("fail", "tier gpt: OPENAI_API_KEY is not set (export it "
                                         "in the environment zoo runs in; keys are never read "
                                         "from files)")  # fmt: skip
    assert not report.ok


def test_call_says_how_the_model_calls_tools(tmp_path: Path, llm: LLMockServer) -> None:
    home = _home(tmp_path, llm)
    llm.state.scenarios.add(Reply(tool_calls=(ToolCall("ping", {}),), match=COMPLETIONS, times=1))
    verdict, detail = _verdicts(home, call=True)["call"]
    assert verdict == "ok" and detail.endswith("tool calls: native")
    written = '<tool_call>{"name": "ping", "arguments": {}}</tool_call>'
    llm.state.scenarios.add(Reply(text=written, match=COMPLETIONS, times=1))
    verdict, detail = _verdicts(home, call=True)["call"]
    assert verdict == "ok" and "tool calls: written as text" in detail
    llm.state.scenarios.add(Reply(text="Pong!", match=COMPLETIONS, times=1))
    verdict, detail = _verdicts(home, call=True)["call"]
    assert verdict == "warn" and detail.endswith(
        "tool calls: none seen (the model answered in prose)"
    )
    replies = [e for e in read_events(home.journal_path) if e["event"] == "model.reply"]
    assert len(replies) == 3 and {e["purpose"] for e in replies} == {"doctor"}


def test_a_missing_playbook_and_a_broken_roster_fail(tmp_path: Path, zoo_cli: ZooCli) -> None:
    home = make_home(tmp_path / "zoo")
    home.playbook("owl").unlink()
    r = zoo_cli("doctor", "--home", str(home.root))
    assert r.code == 1
    assert (f"fail roster: {home.roster_path}:13: agents.owl: playbook agents/owl.md does not "
            "exist (write the agent's instructions there)") in r.out.splitlines()  # fmt: skip
    home.roster_path.write_text("version: 1\nname: x\nlead: roo\n", encoding="utf-8")
    r = zoo_cli("doctor", "--home", str(home.root))
    assert (r.code, r.out) == (1, f"fail roster: {home.roster_path}:1: agents: required key is "
                                  "missing\n")  # fmt: skip


def test_doctor_says_whether_commands_can_be_confined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.policy import sandbox

    tools = "tools: [read_file, write_file, list_files, remember, handoff, escalate]"
    runs = tools.replace("list_files,", "list_files, run,")
    home = make_home(tmp_path / "zoo", SMALL_ROSTER.replace(tools, runs))
    why = "this kernel has no Landlock, or it is not enabled at boot"
    monkeypatch.setattr(sandbox, "abi", lambda: (0, why))
    [check] = [c for c in diagnose(home, env={}).checks if c.name == "sandbox"]
    assert check.verdict == "fail" and check.detail == (
        f"commands cannot be confined here: {why}; agents' run is refused "
        "(sandbox: {confine: best-effort} runs them unconfined)"
    )
    monkeypatch.setattr(sandbox, "abi", lambda: (7, ""))
    [check] = [c for c in diagnose(home, env={}).checks if c.name == "sandbox"]
    assert (check.verdict, check.detail) == ("ok", "commands run confined (Landlock ABI 7, no "
                                             "network)")  # fmt: skip
