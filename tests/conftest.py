"""Shared fixtures: every test gets its own zoo home; models are strict and offline."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from zoo.cli import app as cli
from zoo.engine.zoo import Zoo
from zoo.models.scripted import ScriptedModel
from zoo.state.home import Home

if TYPE_CHECKING:
    from llmock.testing import LLMockServer

REPO = Path(__file__).resolve().parent.parent

SMALL_ROSTER = (REPO / "tests" / "small-roster.yaml").read_text(encoding="utf-8")
"""The test team, shared with bench/: roo routes, beaver -> owl -> lark."""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads a real key or a home from the environment."""
    for name in ("ZOO_HOME", "ZOO_DEBUG", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def make_home(root: Path, roster: str = SMALL_ROSTER, playbooks: bool = True) -> Home:
    """A zoo home at `root` with `roster` as zoo.yaml and a playbook per agent."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zoo.yaml").write_text(textwrap.dedent(roster), encoding="utf-8")
    home = Home(root.resolve())
    if playbooks:
        home.agents_dir.mkdir(exist_ok=True)
        for name in _agent_names(roster):
            home.playbook(name).write_text(
                f"# {name.title()} · Agent\n\n## How you work\n"
                "1. Read the brief.\n2. Do the work.\n",
                encoding="utf-8",
            )
    return home


def _agent_names(roster: str) -> list[str]:
    import yaml

    return list((yaml.safe_load(textwrap.dedent(roster)) or {}).get("agents", {}) or {})


def isolate_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """git sees no config of this machine (a fresh HOME, no system config, no identity) and
    no repository above tmp_path; returns the fresh HOME."""
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_CONFIG_GLOBAL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "EMAIL",
                 "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return user


SECRET = "SENTINEL-SECRET-5b1e"
"""What the sentinel folder outside the home holds: no agent may ever read it."""


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A folder next to the home, outside it, with a secret file in it."""
    folder = tmp_path / "sentinel"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET, encoding="utf-8")
    return folder


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A small zoo home: roo routes, beaver -> owl -> lark."""
    return make_home(tmp_path / "zoo")


@pytest.fixture
def example_home(tmp_path: Path) -> Home:
    """A copy of the repository's example zoo."""
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "zoo.yaml", root / "zoo.yaml")
    mine = shutil.ignore_patterns("*.memory.md")  # agents' notes from trying it: untracked
    shutil.copytree(REPO / "agents", root / "agents", ignore=mine)
    shutil.copy(REPO / "MEMORY.md", root / "MEMORY.md")
    return Home(root.resolve())


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    """A strict scripted model; steps left unconsumed fail the test."""
    model = ScriptedModel()
    yield model
    model.assert_done()


def open_zoo(home: Home, model: ScriptedModel | None = None) -> Zoo:
    return Zoo.open(home, env={}, model=model)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMockServer]:
    """llmock on 127.0.0.1: the Anthropic and OpenAI wire formats, scripted."""
    from llmock.testing import LLMockServer

    with LLMockServer(host="127.0.0.1") as running:
        yield running


@pytest.fixture
def llm(llm_server: LLMockServer) -> Iterator[LLMockServer]:
    """The loopback fake, with no scripted behaviour and an empty request journal."""
    llm_server.state.reset()
    yield llm_server
    llm_server.state.reset()


@dataclass
class Result:
    code: int
    out: str
    err: str


ZooCli = Callable[..., Result]


@pytest.fixture
def zoo_cli(capsys: pytest.CaptureFixture[str]) -> ZooCli:
    """Run `zoo ARGS...` in-process, as main() does; returns exit code and output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = cli._invoke(list(args))
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err)

    return run
