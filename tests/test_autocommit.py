"""Autocommit (DESIGN §6): batched commits of the home, confined to it, never in the way."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, isolate_git, make_home
from tests.waiting import wait_for
from zoo.engine.autocommit import AutoCommitter, Noted, commit_message, committable
from zoo.state.home import Home

TEMPLATE_GITIGNORE = (REPO / "zoo" / "templates" / "init" / "gitignore").read_text(encoding="utf-8")
SETUP_IDENTITY = ("-c", "user.name=Setup", "-c", "user.email=setup@example.com")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def commit_count(cwd: Path) -> int:
    return int(git(cwd, "rev-list", "--count", "HEAD").strip())


def last_message(cwd: Path) -> str:
    return git(cwd, "log", "-1", "--format=%B").strip()


def last_files(cwd: Path) -> list[str]:
    return git(cwd, "show", "--name-only", "--format=", "HEAD").split()


def write(home: Home, rel: str, text: str = "work\n") -> None:
    path = home.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(autouse=True)
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """git sees no config of this machine: a fresh HOME, no system config, no identity."""
    return isolate_git(tmp_path, monkeypatch)


def set_identity(user: Path) -> None:
    (user / ".gitconfig").write_text(
        "[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n", encoding="utf-8"
    )


def init_repo(root: Path, *, commit: bool = True) -> None:
    git(root, "init", "-q")
    if commit:
        git(root, "add", "-A")
        git(root, *SETUP_IDENTITY, "commit", "-q", "-m", "first")


@pytest.fixture
def repo(home: Home, user_home: Path) -> Home:
    """The small home as a git repository with a first commit; the user has an identity."""
    set_identity(user_home)
    init_repo(home.root)
    return home


def start(home: Home, lines: list[str], **options: float) -> AutoCommitter:
    committer = AutoCommitter.start(home, on_line=lines.append, **options)
    assert committer is not None, lines
    return committer


# --- messages ---------------------------------------------------------------------------


def test_message_of_one_step() -> None:
    assert commit_message([Noted("T-0042", "beaver", "Fix login bug")]) == (
        "T-0042 beaver: Fix login bug"
    )


def test_message_of_a_batch_lists_every_step_in_order_once() -> None:
    notes = [
        Noted("T-0042", "beaver", "Fix login bug"),
        Noted("T-0043", "lark", "Blog post"),
        Noted("T-0042", "owl", "Fix login bug"),
        Noted("T-0043", "lark", "Blog post"),
    ]
    assert commit_message(notes) == (
        "T-0042 beaver: Fix login bug (+2 more)\n\n"
        "T-0042 beaver: Fix login bug\nT-0043 lark: Blog post\nT-0042 owl: Fix login bug"
    )


def test_message_holds_no_secret_and_one_line_per_step() -> None:
    note = Noted("T-0001", "beaver", "Use sk-ant-abcdefghijklmnop1234\nnow")
    assert commit_message([note]) == "T-0001 beaver: Use [redacted] now"


def test_runtime_and_temporary_files_are_not_committable() -> None:
    paths = [".zoo/events.jsonl", ".zoo/runner.lock", ".zoo/leases/T-0001.json",
             "workspaces/dev/.T-0001-x.md.123.zoo-tmp", "MEMORY.md", "workspaces/dev/clone/",
             ""]  # fmt: skip
    written = {".zoo/runner.lock", "workspaces/dev/.T-0001-x.md.123.zoo-tmp",
               "workspaces/dev/clone/"}  # fmt: skip
    assert committable(paths, written) == [".zoo/events.jsonl", "MEMORY.md"]


def test_only_what_zoo_wrote_is_committable() -> None:
    paths = ["workspaces/dev/T-0001-fix.md", "workspaces/done/T-12345.md", "MEMORY.md",
             "agents/owl.memory.md", ".zoo/events.jsonl", "workspaces/dev/notes.md",
             "zoo.yaml", "agents/owl.md", ".env", ".gitignore", "agents/.memory.md",
             "workspaces/dev/sub/T-0002.md", "workspaces/T-0003.md", "docs/MEMORY.md",
             "workspaces/dev/T-draft.md", "workspaces/dev/report.md"]  # fmt: skip
    assert committable(paths, {"workspaces/dev/notes.md"}) == [
        "workspaces/dev/T-0001-fix.md", "workspaces/done/T-12345.md", "MEMORY.md",
        "agents/owl.memory.md", ".zoo/events.jsonl", "workspaces/dev/notes.md",
    ]  # fmt: skip


def test_importing_the_module_does_not_import_git() -> None:
    code = "import sys, zoo.engine.autocommit; print('git' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- commits ----------------------------------------------------------------------------


def test_one_step_makes_one_commit_with_its_message_and_files(repo: Home) -> None:
    lines: list[str] = []
    committer = start(repo, lines, interval=0.05)
    write(repo, "workspaces/dev/T-0042-fix-login-bug.md")
    committer.note("T-0042", "beaver", "Fix login bug")
    wait_for(lambda: committer.commits == 1, 5)
    committer.close()
    assert commit_count(repo.root) == 2
    assert last_message(repo.root) == "T-0042 beaver: Fix login bug"
    assert last_files(repo.root) == ["workspaces/dev/T-0042-fix-login-bug.md"]
    assert git(repo.root, "log", "-1", "--format=%an <%ae>").strip() == (
        "Ada Lovelace <ada@example.com>"
    )
    assert lines == []


def test_steps_within_the_interval_make_one_commit(repo: Home) -> None:
    lines: list[str] = []
    committer = start(repo, lines, interval=0.3)
    for number, agent in ((1, "beaver"), (2, "beaver"), (1, "owl")):
        write(repo, f"workspaces/dev/T-000{number}.md", f"{agent}\n")
        committer.note(f"T-000{number}", agent, f"Task {number}")
    wait_for(lambda: committer.commits == 1, 5)
    committer.close()
    assert committer.commits == 1
    assert last_message(repo.root) == (
        "T-0001 beaver: Task 1 (+2 more)\n\n"
        "T-0001 beaver: Task 1\nT-0002 beaver: Task 2\nT-0001 owl: Task 1"
    )
    assert last_files(repo.root) == ["workspaces/dev/T-0001.md", "workspaces/dev/T-0002.md"]


def test_at_most_one_commit_a_second(repo: Home) -> None:
    lines: list[str] = []
    committer = start(repo, lines)
    first = time.monotonic()
    for number in range(1, 11):
        write(repo, f"workspaces/dev/T-{number:04d}.md")
        committer.note(f"T-{number:04d}", "beaver", f"Task {number}")
        time.sleep(0.03)  # spreads the notes over 0.3 s
    wait_for(lambda: committer.commits == 1, 5)
    assert time.monotonic() - first >= 0.95
    committer.close()
    assert committer.commits == 1
    assert commit_count(repo.root) == 2
    assert last_message(repo.root).startswith("T-0001 beaver: Task 1 (+9 more)\n")


def test_steady_work_is_committed_once_an_interval(
    repo: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits come while the work goes on (not all at close), each batch one interval
    after the previous commit: never two `git commit`s within an interval."""
    interval = 0.2
    committer = start(repo, [], interval=interval)
    began: list[float] = []  # when each `git commit` started
    run = committer._git.run

    def timed(*args: str, **options: object) -> str:
        if "commit" in args:
            began.append(time.monotonic())
        return run(*args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(committer._git, "run", timed)
    noted = 0

    def one_more_step() -> bool:  # a step every 10 ms, until three commits are made
        nonlocal noted
        noted += 1
        write(repo, f"workspaces/dev/T-{noted:04d}.md")
        committer.note(f"T-{noted:04d}", "beaver", "Steady")
        return committer.commits >= 3

    wait_for(one_more_step, 10, "no three commits while the work went on", every=0.01)
    during = list(began)  # a commit under way now counts too: it began during the work
    committer.close()
    gaps = [later - earlier for earlier, later in zip(during, during[1:], strict=False)]
    assert len(during) >= 3 and min(gaps) >= interval, gaps
    assert noted > len(during)  # steps are batched
    assert not git(repo.root, "status", "--porcelain", "workspaces")


def test_close_commits_what_is_pending_at_once(repo: Home) -> None:
    committer = start(repo, [], interval=60)
    write(repo, "MEMORY.md", "# Memory\n\n- a note\n")
    committer.note("T-0007", "owl", "Review")
    committer.close()
    assert committer.commits == 1
    assert last_files(repo.root) == ["MEMORY.md"]


def test_close_with_nothing_to_commit_makes_no_commit(repo: Home) -> None:
    lines: list[str] = []
    idle = start(repo, lines)
    idle.close()
    idle.close()
    noted = start(repo, lines, interval=60)
    noted.note("T-0001", "beaver", "Nothing changed on disk")
    noted.close()
    assert (idle.commits, noted.commits, commit_count(repo.root)) == (0, 0, 1)
    assert lines == []


def test_a_repository_without_commits_gets_its_first(home: Home, user_home: Path) -> None:
    set_identity(user_home)
    init_repo(home.root, commit=False)
    write(home, "workspaces/dev/T-0001-first.md")
    committer = start(home, [])
    committer.note("T-0001", "beaver", "First")
    committer.close()
    assert commit_count(home.root) == 1
    assert last_files(home.root) == ["workspaces/dev/T-0001-first.md"]  # not the person's zoo.yaml


# --- what is committed ------------------------------------------------------------------

RUNTIME = [".zoo/runner.lock", ".zoo/runner.pid", ".zoo/roster.json", ".zoo/ids.lock",
           ".zoo/leases/T-0001.json", ".zoo/approvals/A-0001.json",
           "workspaces/dev/.T-0001-fix.md.4242.zoo-tmp", ".MEMORY.md.4242.zoo-tmp"]  # fmt: skip


@pytest.mark.parametrize(
    ("gitignore", "journal"),
    [(None, True), (TEMPLATE_GITIGNORE, True), (".zoo/\n", False)],
    ids=["no-gitignore", "zoo-init-gitignore", "gitignore-ignores-.zoo"],
)
def test_runtime_files_are_never_committed(
    repo: Home, gitignore: str | None, journal: bool
) -> None:
    if gitignore is not None:
        write(repo, ".gitignore", gitignore)
    for rel in [*RUNTIME, ".zoo/events.jsonl", "workspaces/dev/T-0001-fix.md"]:
        write(repo, rel)
    lines: list[str] = []
    committer = start(repo, lines)
    committer.note("T-0001", "beaver", "Fix")
    committer.close()
    tracked = git(repo.root, "ls-files").split()
    assert "workspaces/dev/T-0001-fix.md" in tracked
    assert (".zoo/events.jsonl" in tracked) is journal
    assert not set(RUNTIME) & set(tracked)
    assert not git(repo.root, "diff", "--cached", "--name-only")  # nothing left staged
    assert lines == []


def test_a_home_inside_a_bigger_repository_commits_only_the_home(
    tmp_path: Path, user_home: Path
) -> None:
    set_identity(user_home)
    outer = tmp_path / "project"
    outer.mkdir()
    (outer / "README.md").write_text("# Project\n", encoding="utf-8")
    home = make_home(outer / "zoo")
    init_repo(outer)
    (outer / "README.md").write_text("# Project, edited\n", encoding="utf-8")
    (outer / "staged.txt").write_text("the user's staged work\n", encoding="utf-8")
    git(outer, "add", "staged.txt")
    (outer / "untracked.txt").write_text("scratch\n", encoding="utf-8")
    write(home, "workspaces/dev/T-0001-fix.md")
    write(home, ".zoo/runner.lock")
    committer = start(home, [])
    committer.note("T-0001", "beaver", "Fix")
    committer.close()
    assert last_files(outer) == ["zoo/workspaces/dev/T-0001-fix.md"]
    assert git(outer, "diff", "--cached", "--name-only").split() == ["staged.txt"]
    assert git(outer, "status", "--porcelain").splitlines() == [
        " M README.md", "A  staged.txt", "?? untracked.txt", "?? zoo/.zoo/",
    ]  # fmt: skip


# --- identity, git missing, failures ------------------------------------------------------


def test_without_an_identity_commits_as_zoo(home: Home) -> None:
    init_repo(home.root, commit=False)
    write(home, "workspaces/dev/T-0001-fix.md")
    committer = start(home, [])
    committer.note("T-0001", "beaver", "Fix")
    committer.close()
    assert git(home.root, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
        "zoo <zoo@localhost>|zoo <zoo@localhost>"
    )


def test_not_a_repository_runs_without_commits(home: Home) -> None:
    lines: list[str] = []
    assert AutoCommitter.start(home, on_line=lines.append) is None
    assert lines == [
        f"autocommit: off: {home.root} is not in a git repository, so nothing is committed "
        "(run 'git init' there to keep a history)"
    ]


def test_a_held_index_lock_is_reported_once_then_the_work_is_committed(repo: Home) -> None:
    lock = repo.root / ".git" / "index.lock"
    lock.touch()
    lines: list[str] = []
    committer = start(repo, lines, interval=0.02)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    wait_for(lambda: committer.failures >= 3, 5)
    assert lines == [
        "autocommit: git update-index failed (exit 128): fatal: Unable to create "
        f"'{lock}': File exists; will retry (the work is safe in its files)"
    ]
    lock.unlink()
    wait_for(lambda: committer.commits == 1, 5)
    committer.close()
    assert lines[1:] == ["autocommit: committing again"]
    assert last_message(repo.root) == "T-0001 beaver: Fix"


def hook(repo: Home, script: str) -> None:
    path = repo.root / ".git" / "hooks" / "pre-commit"
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(0o755)


def test_a_failing_hook_is_honoured_and_retried(repo: Home) -> None:
    hook(repo, "echo 'lint: line too long' >&2; exit 1")
    lines: list[str] = []
    committer = start(repo, lines, interval=0.02)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    wait_for(lambda: committer.failures >= 2, 5)
    assert lines == [
        "autocommit: git commit failed (exit 1): lint: line too long; will retry "
        "(the work is safe in its files)"
    ]
    hook(repo, "exit 0")
    wait_for(lambda: committer.commits == 1, 5)
    committer.close()
    assert commit_count(repo.root) == 2


def test_a_stuck_hook_is_stopped_and_leaves_no_lock(repo: Home) -> None:
    hook(repo, "sleep 30")
    lines: list[str] = []
    committer = start(repo, lines, interval=0.02, timeout=0.3)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    wait_for(lambda: committer.failures >= 1, 5)
    assert lines == [
        "autocommit: git commit took over 0.3 s and was stopped (a slow hook?); will retry "
        "(the work is safe in its files)"
    ]
    hook(repo, "exit 0")
    wait_for(lambda: committer.commits == 1, 5)
    committer.close()
    assert not (repo.root / ".git" / "index.lock").exists()
    assert last_message(repo.root) == "T-0001 beaver: Fix"


def test_a_final_failure_at_close_is_reported(repo: Home) -> None:
    lock = repo.root / ".git" / "index.lock"
    lock.touch()
    lines: list[str] = []
    committer = start(repo, lines, interval=60)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    assert (
        committer.close()
        == committer.unsaved
        == (
            "autocommit: git update-index failed (exit 128): fatal: Unable to create "
            f"'{lock}': File exists; 1 noted step not committed (the work is in its files: "
            "commit it with git)"
        )
    )
    assert lines == []  # said once, by close(): no "will retry" when nothing will
    assert os.path.exists(lock)


def test_without_git_on_the_path_runs_without_commits(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_repo(home.root, commit=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    lines: list[str] = []
    assert AutoCommitter.start(home, on_line=lines.append) is None
    assert len(lines) == 1
    assert lines[0].startswith("autocommit: off: git is not available (cannot run 'git': ")
    assert lines[0].endswith("); the zoo runs the same, without commits")


@pytest.mark.parametrize(
    ("title", "subject"),
    [
        ("Draft\0x", "Draft x"),
        ("Caf\udce9 \ud800", "Caf? ?"),
        ("\x1b]0;pwned\x07Hi", "]0;pwned Hi"),
    ],
    ids=["nul", "unencodable", "terminal-escape"],
)
def test_a_title_git_cannot_take_is_committed_cleaned(repo: Home, title: str, subject: str) -> None:
    lines: list[str] = []
    committer = start(repo, lines, interval=0.02)
    write(repo, "workspaces/dev/T-0001-draft-x.md")
    committer.note("T-0001", "writer", title)
    wait_for(lambda: committer.commits == 1, 5)
    assert committer.close() is None
    assert last_message(repo.root) == f"T-0001 writer: {subject}"
    assert lines == []


def test_any_error_is_reported_once_and_the_committer_keeps_committing(
    repo: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    committer = start(repo, lines, interval=0.02)
    run = committer._git.run
    broken = [ValueError("embedded null byte"), RuntimeError(f"boom {'sk-ant-' + 'x' * 24}")]

    def failing_twice(*args: str, **options: object) -> str:
        if broken:
            raise broken.pop(0)
        return run(*args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(committer._git, "run", failing_twice)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    wait_for(lambda: committer.commits == 1, 5)
    assert committer.failures == 2
    assert lines == [
        "autocommit: ValueError: embedded null byte; will retry (the work is safe in its files)",
        "autocommit: committing again",
    ]
    write(repo, "workspaces/dev/T-0002-next.md")  # a later batch is committed too
    committer.note("T-0002", "beaver", "Next")
    wait_for(lambda: committer.commits == 2, 5)
    assert committer.close() is None
    assert last_message(repo.root) == "T-0002 beaver: Next"


def test_an_error_at_close_is_one_redacted_line(
    repo: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer = start(repo, [], interval=60)

    def broken(*_args: str, **_options: object) -> str:
        raise RuntimeError(f"bad token {'sk-ant-' + 'x' * 24}\nsecond line")

    monkeypatch.setattr(committer._git, "run", broken)
    write(repo, "workspaces/dev/T-0001-fix.md")
    committer.note("T-0001", "beaver", "Fix")
    committer.note("T-0002", "beaver", "More")
    assert committer.close() == (
        "autocommit: RuntimeError: bad token [redacted]; 2 noted steps not committed (the work "
        "is in its files: commit it with git)"
    )
