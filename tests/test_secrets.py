"""Secrets: canary keys in the environment, runs that fail with --debug, then every
file of the home, its git history and everything printed searched: zero hits."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from llmock.scenarios import Fail, Match, Reply
from llmock.testing import LLMockServer

from tests.conftest import ZooCli
from zoo.secrets import redact

ANTHROPIC = Match(provider="anthropic")
COMPLETIONS = Match(path="*/chat/completions")


def test_canary_keys_appear_nowhere(
    tmp_path: Path, llm: LLMockServer, zoo_cli: ZooCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "ANTHROPIC_API_KEY": f"sk-ant-canary-{secrets.token_hex(12)}",
        "ZOO_TEAM_CRED": f"canary-custom-{secrets.token_hex(12)}",  # shaped like no known key
        "GITHUB_TOKEN": f"ghp_{secrets.token_hex(18)}",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "zoo"
    assert zoo_cli("init", str(home)).code == 0
    (home / "zoo.yaml").write_text(f"""\
version: 1
name: canary
lead: roo
models:
  claude: {{provider: anthropic, model: claude-haiku-4-5, base_url: "{llm.url}/anthropic",
            fallback: gpt}}
  gpt: {{provider: openai, model: gpt-4o-mini, base_url: "{llm.base_url("openai")}",
         api_key_env: ZOO_TEAM_CRED}}
defaults: {{model: claude, retries: 1, backoff_s: 0.01}}
agents:
  roo: {{role: Lead}}
  beaver: {{role: Developer, workspace: dev, tools: [remember, escalate]}}
""", encoding="utf-8")  # fmt: skip
    for agent in ("roo", "beaver"):  # `zoo run` refuses a home whose playbooks are missing
        (home / "agents" / f"{agent}.md").write_text(f"# {agent}\n", encoding="utf-8")
    a_key, o_key = canaries["ANTHROPIC_API_KEY"], canaries["ZOO_TEAM_CRED"]
    llm.state.scenarios.add(  # providers that echo the key back, as some do
        Fail(401, message=f"invalid x-api-key: {a_key}", times=None, match=ANTHROPIC),
        Fail(500, message=f"upstream rejected key {o_key}", times=3, match=COMPLETIONS),
        Reply(text=f"Done. For the record the keys are {a_key} and {o_key} and "
              f"{canaries['GITHUB_TOKEN']}.", match=COMPLETIONS),
    )  # fmt: skip
    h = ("--home", str(home))
    outputs = [
        zoo_cli("--debug", *h, "dispatch", "Please have a look at this"),  # routed by a model
        zoo_cli("--debug", *h, "dispatch", "--to", "beaver", "Fix it"),
        zoo_cli("--debug", *h, "run", "--once"),
        zoo_cli("--debug", *h, "run", "--once"),
        zoo_cli("--debug", *h, "show", a_key),  # a key typed where an id goes
        zoo_cli("--debug", *h, "log"),
        zoo_cli("--debug", *h, "status", "--json"),
    ]
    assert outputs[4].code == 1 and "Traceback" in outputs[4].err  # it did fail, with --debug
    done = list((home / "workspaces" / "done").glob("T-*.md"))
    assert len(done) == 1 and "keys are [redacted] and [redacted]" in done[0].read_text("utf-8")
    subprocess.run(["git", "add", "-A"], cwd=home, check=True, capture_output=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "all"],
                   cwd=home, check=True, capture_output=True)  # fmt: skip
    history = subprocess.run(["git", "log", "-p", "--all"], cwd=home, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    files = [p.read_bytes().decode("utf-8", errors="replace")
             for p in home.rglob("*") if p.is_file() and ".git" not in p.parts]  # fmt: skip
    printed = [r.out + r.err for r in outputs]
    haystack = "\n".join([history, *files, *printed])
    assert "[redacted]" in haystack  # the keys did reach Zoo, and were caught
    for name, value in canaries.items():
        assert value not in haystack, f"{name} leaked"


def test_redact_catches_known_shapes_and_leaves_text_alone() -> None:
    text = "key sk-proj-abcdefghijklmnopqrstu and Bearer abcdefghijklmnopqrstuvwxyz, no sk-ok"
    assert redact(text) == "key [redacted] and [redacted], no sk-ok"


SHAPES = [
    "sk-ant-api03-abcdefghijklmnopqrstuv",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "Bearer abcdefghijklmnopqrstuvwxyz012345",
    "canary-custom-0123456789abcdef",  # shaped like no key: known from the environment
]


@pytest.mark.parametrize("key", SHAPES)
def test_a_key_in_a_brief_never_reaches_a_file_name_or_git_and_the_task_stays_valid(
    tmp_path: Path, zoo_cli: ZooCli, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ZOO_TEAM_TOKEN", "canary-custom-0123456789abcdef")
    home = tmp_path / "zoo"
    assert zoo_cli("init", str(home)).code == 0
    h = ("--home", str(home))
    sent = zoo_cli(*h, "dispatch", f"{key} please draft a post")
    assert sent.code == 0, sent.err
    printed = sent.out.splitlines()[1].strip()
    assert printed == "workspaces/writer/T-0001-redacted-please-draft-a-post.md"
    task = home / printed
    assert task.is_file()  # the path printed is the path written
    doc = json.loads(zoo_cli(*h, "show", "T-0001", "--json").out)
    assert doc["path"] == printed
    assert doc["front_matter"]["title"] == "[redacted] please draft a post"
    for _ in range(2):  # the task file stays valid for every later run
        ran = zoo_cli(*h, "run", "--once")
        assert ran.code == 0, ran.err
    assert (home / "workspaces" / "done" / task.name).is_file()
    names = [p.name for p in home.rglob("*")]
    history = subprocess.run(["git", "log", "--all", "-p", "--name-only"], cwd=home,
                             capture_output=True, text=True).stdout  # fmt: skip
    for text in ("\n".join(names), history, *(p.read_text("utf-8", errors="replace")
                 for p in home.rglob("*") if p.is_file() and ".git" not in p.parts)):  # fmt: skip
        assert key not in text and key.split()[-1] not in text
    assert "T-0001 writer: [redacted] please draft a post" in history  # it was committed
