"""Autocommit in real runs: only what Zoo wrote is committed; a person's files stay theirs;
work that could not be committed fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SMALL_ROSTER, ZooCli, make_home, open_zoo
from tests.test_autocommit import git, hook, init_repo, set_identity
from tests.test_autocommit import user_home as user_home  # autouse: git sees no machine config
from zoo.engine import approvals
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.runreport import RunReport
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state.home import Home
from zoo.state.runnerlock import runner_lock
from zoo.state.written import record as record_written
from zoo.state.written import release as _release_written
from zoo.state.written import take as _take_written

ROSTER = SMALL_ROSTER.rstrip("\n") + "\ngit: {autocommit: true}\n"
KEY = "sk-ant-api03-" + "k3y" * 12


@pytest.fixture
def repo(tmp_path: Path, user_home: Path) -> Home:
    """The small home with autocommit on, in a git repository with a first commit."""
    set_identity(user_home)
    home = make_home(tmp_path / "zoo", ROSTER)
    init_repo(home.root)
    return home


def run(home: Home, model: ScriptedModel | None = None) -> RunReport:
    with runner_lock(home):
        report = run_once(open_zoo(home, model))
    assert report.failed == [], report.failed
    return report


def commits(cwd: Path) -> list[str]:
    return git(cwd, "rev-list", "--all").split()


def files_of(cwd: Path, commit: str) -> list[str]:
    return git(cwd, "ls-tree", "-r", "--name-only", commit).split("\n")


def changed_by_zoo(cwd: Path) -> set[str]:
    """Every path a commit after the first one touched."""
    first = commits(cwd)[-1]
    return set(git(cwd, "log", "--format=", "--name-only", f"{first}..HEAD").split())


def test_an_untracked_env_with_a_key_never_enters_any_commit(repo: Home) -> None:
    (repo.root / ".env").write_text(f"ANTHROPIC_API_KEY={KEY}\n", encoding="utf-8")
    (repo.root / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    zoo = open_zoo(repo)
    for brief in ("Fix the login bug", "Write a blog post"):
        dispatch(zoo, brief)
    run(repo)
    assert len(commits(repo.root)) >= 2  # the work was committed
    history = git(repo.root, "log", "--all", "-p")
    assert KEY not in history and "BEGIN PRIVATE KEY" not in history
    for commit in commits(repo.root):
        assert not {".env", "deploy.pem"} & set(files_of(repo.root, commit)), commit
    status = git(repo.root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert {"?? .env", "?? deploy.pem"} <= set(status)  # untracked, unstaged: the person's
    assert not git(repo.root, "diff", "--cached", "--name-only")


def test_hand_edits_to_the_roster_and_playbooks_stay_the_persons(repo: Home) -> None:
    with repo.roster_path.open("a", encoding="utf-8") as f:
        f.write("# a person's note\n")
    with repo.playbook("beaver").open("a", encoding="utf-8") as f:
        f.write("3. Be brief.\n")
    with repo.playbook("owl").open("a", encoding="utf-8") as f:
        f.write("3. Staged by hand.\n")
    git(repo.root, "add", "agents/owl.md")
    (repo.root / "notes.txt").write_text("mine\n", encoding="utf-8")
    dispatch(open_zoo(repo), "Fix the login bug")
    run(repo)
    assert len(commits(repo.root)) >= 2
    touched = changed_by_zoo(repo.root)
    assert touched and not touched & {"zoo.yaml", "agents/beaver.md", "agents/owl.md",
                                      "notes.txt"}  # fmt: skip
    assert {"agents/beaver.memory.md", ".zoo/events.jsonl"} <= touched  # the offline notes
    assert {path for path in touched if path.startswith("workspaces/")} == {
        "workspaces/done/T-0001-fix-the-login-bug.md",
        "workspaces/dev/drafts/fix-the-login-bug.md",  # beaver's write_file
    }
    status = git(repo.root, "status", "--porcelain").splitlines()
    assert [line for line in status if not line.startswith("?? .zoo/")] == [
        " M agents/beaver.md", "M  agents/owl.md", " M zoo.yaml", "?? notes.txt",
    ]  # fmt: skip


def test_a_moved_tasks_old_copy_is_removed_in_the_commit(repo: Home) -> None:
    dispatch(open_zoo(repo), "Fix the login bug")
    git(repo.root, "add", "workspaces/dev")
    git(repo.root, "commit", "-q", "-m", "the brief, by hand")
    run(repo)
    tracked = git(repo.root, "ls-files", "workspaces").split()
    assert "workspaces/dev/T-0001-fix-the-login-bug.md" not in tracked
    assert "workspaces/done/T-0001-fix-the-login-bug.md" in tracked
    assert not git(repo.root, "status", "--porcelain", "workspaces")


def test_a_file_an_agent_wrote_is_committed_and_the_persons_beside_it_is_not(
    repo: Home, scripted: ScriptedModel
) -> None:
    dev = repo.workspace("dev")
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "scratch.md").write_text("the person's scratch\n", encoding="utf-8")
    dispatch(open_zoo(repo, scripted), "Fix the login bug", to="beaver")
    scripted.add(
        says("Wrote it.", call("write_file", path="fix.md", content="# The fix\n")),
        says("Fixed."), says("Tested."), says("Noted."),
    )  # fmt: skip
    run(repo, scripted)
    assert (dev / "fix.md").read_text(encoding="utf-8") == "# The fix\n"
    tracked = git(repo.root, "ls-files", "workspaces/dev").split()
    assert "workspaces/dev/fix.md" in tracked and "workspaces/dev/scratch.md" not in tracked
    assert git(repo.root, "status", "--porcelain", "workspaces").splitlines() == [
        "?? workspaces/dev/scratch.md"
    ]
    assert not (repo.state / "written.jsonl").exists()  # committed: nothing left to hold
    assert not (repo.state / "written.taken.jsonl").exists()


def test_a_file_an_agent_wrote_and_a_person_edited_is_still_the_agents(
    repo: Home, scripted: ScriptedModel
) -> None:
    zoo = open_zoo(repo, scripted)
    dispatch(zoo, "Fix the login bug", to="beaver")
    record_written(repo, "workspaces/dev/fix.md")  # as if beaver's write_file had just run
    dev = repo.workspace("dev")
    (dev / "fix.md").write_text("# The fix, edited by a person\n", encoding="utf-8")
    scripted.add(says("Fixed."), says("Tested."), says("Noted."))
    run(repo, scripted)
    assert git(repo.root, "show", "HEAD:workspaces/dev/fix.md") == (
        "# The fix, edited by a person\n"
    )


def test_an_approved_write_is_committed_by_the_next_run(
    tmp_path: Path, user_home: Path, scripted: ScriptedModel
) -> None:
    set_identity(user_home)
    roster = ROSTER.replace("tools: [remember, escalate]\n",
                            "tools: [write_file, remember, escalate]\n"
                            "    approval: [write_file]\n")  # fmt: skip
    home = make_home(tmp_path / "zoo", roster)
    init_repo(home.root)
    task, _ = dispatch(open_zoo(home, scripted), "Write a blog post", to="lark")
    scripted.add(says("Draft ready.", call("write_file", path="post.md", content="# Hello\n")))
    assert run(home, scripted).waiting == 1
    approvals.approve(open_zoo(home), "A-0001", by="ada")  # `zoo approve`: another process
    assert "workspaces/lark/post.md" not in git(home.root, "ls-files").split()
    scripted.add(says("Posted."))
    run(home, scripted)
    assert git(home.root, "show", "HEAD:workspaces/lark/post.md") == "# Hello\n"
    assert f"workspaces/done/{task.path.name}" in git(home.root, "ls-files").split()


def test_a_record_made_while_a_commit_is_under_way_waits_for_the_next(home: Home) -> None:
    record_written(home, "workspaces/dev/a.md")
    record_written(home, "workspaces/dev/a.md")
    assert _take_written(home) == {"workspaces/dev/a.md"}
    record_written(home, "workspaces/dev/b.md")  # while that commit runs
    assert _take_written(home) == {"workspaces/dev/a.md", "workspaces/dev/b.md"}  # it failed
    record_written(home, "workspaces/dev/a.md")  # written again meanwhile: kept
    _release_written(home)  # the commit of a.md and b.md is made
    assert _take_written(home) == {"workspaces/dev/a.md"}
    _release_written(home)
    assert _take_written(home) == set()


def test_a_commit_failing_at_the_end_of_run_once_fails_the_run(repo: Home, zoo_cli: ZooCli) -> None:
    hook(repo, "echo 'lint: line too long' >&2; exit 1")
    dispatch(open_zoo(repo), "Fix the login bug")
    result = zoo_cli("--home", str(repo.root), "run", "--once")
    assert result.code == 1
    assert result.err == (
        "zoo: autocommit: git commit failed (exit 1): lint: line too long; 3 noted steps not "
        "committed (the work is in its files: commit it with git)\n"
    )
    assert "finished: done" in result.out
    assert len(commits(repo.root)) == 1
