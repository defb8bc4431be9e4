"""`zoo init`: a home named after its folder, only its own files committed, never a
repository inside a repository, a `next:` hint that works from where the user is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ZooCli, isolate_git

NEXT = 'zoo dispatch "Write a short post about our launch" && zoo run --once'


@pytest.fixture(autouse=True)
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user is in tmp_path/work; git sees no config of this machine and no repository
    above tmp_path."""
    isolate_git(tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def roster_name(home: Path) -> str:
    doc = yaml.safe_load((home / "zoo.yaml").read_text(encoding="utf-8"))
    return str(doc["name"])


def test_a_new_folder_gets_a_repository_with_the_files_init_wrote(
    where: Path, zoo_cli: ZooCli
) -> None:
    result = zoo_cli("init", "team")
    assert (result.code, result.err) == (0, "")
    home = where / "team"
    committed = git(home, "ls-files").split()
    assert {"zoo.yaml", "MEMORY.md", ".gitignore", "agents/writer.md",
            "workspaces/inbox/.gitkeep"} <= set(committed)  # fmt: skip
    assert result.out == (
        f"created a zoo home in {home} (team 'team', {len(committed)} files)\n"
        "  git repository with a first commit of those files (autocommit is on in zoo.yaml)\n"
        f"next: cd team && {NEXT}\n"
    )
    assert git(home, "status", "--porcelain") == ""


def test_inside_a_repository_no_nested_one_is_made(where: Path, zoo_cli: ZooCli) -> None:
    git(where, "init", "-q")
    (where / "README.md").write_text("# Project\n", encoding="utf-8")
    result = zoo_cli("init", "ops/zoo")
    assert result.code == 0, result.err
    home = where / "ops" / "zoo"
    assert not (home / ".git").exists()
    assert (
        f"  inside the git repository at {where}: no new repository, the home is part of that "
        "one (commit its files there when you like; autocommit adds Zoo's work)\n"
    ) in result.out
    assert git(home, "rev-parse", "--show-toplevel").strip() == str(where)
    assert git(where, "rev-list", "--all") == ""  # nothing committed in the person's repository
    assert git(where, "status", "--porcelain") == "?? README.md\n?? ops/\n"


def test_in_a_folder_with_files_only_what_init_wrote_is_committed(
    where: Path, zoo_cli: ZooCli
) -> None:
    home = where / "existing"
    (home / "agents").mkdir(parents=True)
    (home / "notes.txt").write_text("mine\n", encoding="utf-8")
    (home / "agents" / "writer.md").write_text("# My own writer\n", encoding="utf-8")
    (home / "data").mkdir()
    (home / "data" / "big.csv").write_text("a,b\n", encoding="utf-8")
    result = zoo_cli("init", "existing")
    assert result.code == 0, result.err
    assert "  kept your agents/writer.md (not overwritten)\n" in result.out
    committed = set(git(home, "ls-files").split())
    assert "zoo.yaml" in committed and "agents/editor.md" in committed
    assert not committed & {"notes.txt", "data/big.csv", "agents/writer.md"}
    assert git(home, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "?? agents/writer.md", "?? data/big.csv", "?? notes.txt",
    ]  # fmt: skip
    assert (home / "agents" / "writer.md").read_text(encoding="utf-8") == "# My own writer\n"


@pytest.mark.parametrize(
    ("folder", "name"),
    [("Acme Ops", "acme-ops"), ("Équipe_7", "équipe-7"), ("__--__", "my-team"),
     ("2024", "2024"), ("yes", "yes")],
    ids=["words", "non-ascii", "no-letters", "digits", "yaml-word"],
)  # fmt: skip
def test_the_home_is_named_after_its_folder(
    where: Path, zoo_cli: ZooCli, folder: str, name: str
) -> None:
    result = zoo_cli("init", folder)
    assert result.code == 0, result.err
    assert roster_name(where / folder) == name
    assert f"(team {name!r}, " in result.out
    check = zoo_cli("check", "--home", folder)
    assert check.code == 0, check.err


def test_the_name_option_names_the_team(where: Path, zoo_cli: ZooCli) -> None:
    result = zoo_cli("init", "team", "--name", "Acme: Ops #1")
    assert result.code == 0, result.err
    assert roster_name(where / "team") == "Acme: Ops #1"
    status = zoo_cli("status", "--home", "team")
    assert status.code == 0 and status.out.startswith(f"Acme: Ops #1 · {where / 'team'} · ")


@pytest.mark.parametrize("bad", ["", "   ", "two\nlines", "x" * 65])
def test_a_bad_name_is_a_usage_error_and_writes_nothing(
    where: Path, zoo_cli: ZooCli, bad: str
) -> None:
    result = zoo_cli("init", "team", "--name", bad)
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        f"zoo: --name {bad!r}: a team's name is one line of printable text, 1 to 64 "
        "characters (e.g. --name acme)\n"
    )
    assert not (where / "team").exists()


def test_the_next_hint_works_from_where_the_user_is(where: Path, zoo_cli: ZooCli) -> None:
    result = zoo_cli("init", "my zoo")
    hint = result.out.splitlines()[-1]
    assert hint == f"next: cd 'my zoo' && {NEXT}"
    bin_dir = str(Path(sys.executable).parent)  # where the `zoo` script is installed
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", hint.removeprefix("next: ")], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "finished: done" in done.stdout


def test_in_the_current_folder_the_hint_needs_no_cd(where: Path, zoo_cli: ZooCli) -> None:
    result = zoo_cli("init")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == f"next: {NEXT}"
    assert roster_name(where) == "work"


def test_no_git_makes_no_repository_and_turns_autocommit_off(where: Path, zoo_cli: ZooCli) -> None:
    result = zoo_cli("init", "team", "--no-git")
    assert result.code == 0, result.err
    home = where / "team"
    assert not (home / ".git").exists()
    assert "  no git repository (--no-git): autocommit is off in zoo.yaml\n" in result.out
    doc = yaml.safe_load((home / "zoo.yaml").read_text(encoding="utf-8"))
    assert doc["git"] == {"autocommit": False}
    zoo_cli("dispatch", "Draft a post about our launch", "--home", "team")
    run = zoo_cli("run", "--once", "--home", "team")
    assert run.code == 0 and "autocommit" not in run.out + run.err


def test_the_gitignore_keeps_secrets_and_runtime_state_out(where: Path, zoo_cli: ZooCli) -> None:
    assert zoo_cli("init", "team").code == 0
    home = where / "team"
    names = [".env", ".env.local", "deploy.pem", "certs/tls.key", ".zoo/runner.lock",
             "x.zoo-tmp", ".env.example", ".zoo/events.jsonl", "zoo.yaml"]  # fmt: skip
    found = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=home,
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    assert found == names[:6]
