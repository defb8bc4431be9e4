"""Briefs that arrive as files: dropped in workspaces/inbox/ or given to `zoo dispatch
--file`. Ids stay unique, a NUL byte is refused, front matter is read the same way."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from tests.conftest import ZooCli, open_zoo
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.runreport import RunReport
from zoo.engine.zoo import Zoo
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock


def run(home: Home) -> RunReport:
    with runner_lock(home):
        return run_once(open_zoo(home))


def ids_everywhere(home: Home) -> list[str]:
    return sorted(
        str(tasks.id_of(p.name)) for p in home.workspaces.rglob("T-*.md") if tasks.id_of(p.name)
    )


def events(home: Home, kind: str) -> list[dict[str, object]]:
    return [e for e in read_events(home.journal_path) if e["event"] == kind]


def drop(home: Home, name: str, text: str) -> Path:
    inbox = home.workspace("inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _t0001_in(home: Home, folder: str) -> None:
    """T-0001 rests in `folder`: dev/ (queued for beaver), done/ or escalations/."""
    zoo = open_zoo(home)
    task, _ = dispatch(zoo, "Fix the login bug")  # beaver's, in dev/
    if folder == "done":
        zoo.finish(task)
    elif folder == "escalations":
        zoo.escalate(task, "needs a person", by="beaver")


@pytest.mark.parametrize("where", ["dev", "done", "escalations"])
@pytest.mark.parametrize("name", ["brief.md", "T-0001-copied.md"])
def test_an_inbox_file_with_a_taken_id_gets_a_fresh_one(home: Home, where: str, name: str) -> None:
    _t0001_in(home, where)
    drop(home, name, "---\nid: T-0001\ntitle: Draft the launch post\n---\nAbout the launch.\n")
    report = run(home)
    assert report.failed == []
    assert ids_everywhere(home).count("T-0001") == 1
    (renumbered,) = events(home, "task.renumbered")
    assert (renumbered["task"], renumbered["from"], renumbered["file"]) == (
        "T-0002",
        "T-0001",
        name,
    )
    again = tasks.find(home, "T-0002")
    assert again.title == "Draft the launch post" and again.meta["source"] == "file"
    assert tasks.find(home, "T-0001").title == "Fix the login bug"  # the first is untouched


@pytest.mark.parametrize(("said", "shown"), [("42", "42"), ("banana", "banana"), ("[1]", "[1]")])
def test_an_inbox_file_with_a_malformed_id_is_renumbered_not_broken(
    home: Home, said: str, shown: str
) -> None:
    drop(home, "idea.md", f"---\nid: {said}\n---\nWrite a blog post about our launch.\n")
    report = run(home)
    assert (report.failed, report.done) == ([], 1)
    assert events(home, "task.invalid") == []
    (renumbered,) = events(home, "task.renumbered")
    assert (renumbered["task"], renumbered["from"]) == ("T-0001", shown)
    assert tasks.find(home, "T-0001").meta["status"] == "done"


def test_a_malformed_id_outside_the_inbox_is_still_a_broken_file(home: Home) -> None:
    dev = home.workspace("dev")
    dev.mkdir(parents=True)
    (dev / "T-0007-x.md").write_text("---\nid: banana\n---\n# X\n", encoding="utf-8")
    report = run(home)
    assert report.failed == [f"{dev}/T-0007-x.md:2: id: expected an id like T-0042, got 'banana'"]


def test_two_files_saying_one_id_end_as_two_tasks(home: Home) -> None:
    drop(home, "a.md", "---\nid: T-0007\n---\nWrite a blog post.\n")
    drop(home, "b.md", "---\nid: T-0007\n---\nWrite another blog post.\n")
    drop(home, "T-0009-c.md", "---\nid: T-0009\n---\nWrite a third blog post.\n")
    drop(home, "T-0009-d.md", "---\nid: T-0009\n---\nWrite a fourth blog post.\n")
    report = run(home)
    assert (report.failed, report.done) == ([], 4)
    ids = ids_everywhere(home)
    assert len(ids) == 4 and len(set(ids)) == 4
    assert [c for c, n in collections.Counter(ids).items() if n > 1] == []


def test_a_file_named_for_an_id_never_handed_out_keeps_it(home: Home) -> None:
    dispatch(open_zoo(home), "Fix the login bug")  # T-0001: the counter is at 1
    drop(home, "T-0050-by-hand.md", "---\nid: T-0050\n---\nWrite a blog post.\n")
    report = run(home)
    assert (report.failed, report.done) == ([], 2)
    assert events(home, "task.renumbered") == []
    assert tasks.find(home, "T-0050").meta["status"] == "done"
    task, _ = dispatch(open_zoo(home), "Fix the login bug again")
    assert task.id == "T-0051"  # the counter never hands T-0050 out again


def test_a_dropped_brief_keeps_its_own_keys_but_not_zoo_state(home: Home) -> None:
    drop(home, "idea.md", "---\npriority: high\ntokens: 999999\nhandoffs: 9\n---\n"
                          "Write a blog post.\n")  # fmt: skip
    run(home)
    task = tasks.find(home, "T-0001")
    assert task.meta["priority"] == "high"
    assert task.meta.get("handoffs") is None  # lark took it and finished it: no handoff
    assert task.meta["tokens"] < 999999


def test_an_inbox_file_with_a_nul_byte_is_reported_once_and_never_adopted(home: Home) -> None:
    path = drop(home, "binary.md", "Draft\x00x\n")
    before = path.read_bytes()
    dispatch(open_zoo(home), "Fix the login bug")  # work, so that the run looks again and again
    first = run(home)
    assert (first.done, first.failed) == (1, [f"{path}:1: not text: a NUL byte (byte 5)"])
    assert len(events(home, "task.invalid")) == 1
    second = run(home)  # each run says it once, like any broken file
    assert second.failed == [f"{path}:1: not text: a NUL byte (byte 5)"]
    assert path.read_bytes() == before and ids_everywhere(home) == ["T-0001"]


def test_a_nul_in_the_front_matter_is_refused_too(home: Home) -> None:
    path = drop(home, "esc.md", '---\ntitle: "Draft\\0x"\n---\nWrite a blog post.\n')
    report = run(home)
    assert report.failed == [f"{path}:2: title: not text: a NUL character (remove it)"]
    assert ids_everywhere(home) == []


# --- zoo dispatch: a NUL byte, and --file with front matter ------------------------------


@pytest.mark.parametrize("how", ["text", "file", "stdin"])
def test_dispatch_refuses_a_brief_with_a_nul_byte_and_writes_nothing(
    home: Home, zoo_cli: ZooCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import io

    brief = tmp_path / "brief.md"
    brief.write_bytes(b"Draft\x00x")
    args = {"text": ["Draft\x00x"], "file": ["--file", str(brief)], "stdin": ["--file", "-"]}
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Draft\x00x"), encoding="utf-8"))
    r = zoo_cli("--home", str(home.root), "dispatch", *args[how])
    said = {"text": "the brief", "file": f"--file {brief}", "stdin": "--file -"}[how]
    assert (r.code, r.out, r.err) == (2, "", f"zoo: {said} is not text: a NUL byte at byte 5\n")
    assert not home.workspaces.exists() or list(home.workspaces.rglob("*.md")) == []
    assert not home.journal_path.exists()


def test_dispatch_file_reads_front_matter_like_the_inbox(
    home: Home, zoo_cli: ZooCli, tmp_path: Path
) -> None:
    brief = tmp_path / "post.md"
    brief.write_text("---\ntitle: Launch post\npriority: high\nid: T-0099\nstatus: done\n---\n"
                     "Write a blog post about the launch.\n", encoding="utf-8")  # fmt: skip
    r = zoo_cli("--home", str(home.root), "dispatch", "--file", str(brief), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["id"] == "T-0001" and doc["agent"] == "lark"
    assert Path(doc["path"]).name == "T-0001-launch-post.md"
    task = tasks.read(Path(doc["path"]))
    assert task.title == "Launch post" and task.meta["priority"] == "high"
    assert task.meta["status"] == "queued" and task.meta["source"] == "file"
    assert task.body == "# Launch post\n\nWrite a blog post about the launch.\n"
    assert "---" not in task.body


def test_dispatch_file_takes_the_first_heading_under_front_matter(
    home: Home, zoo_cli: ZooCli, tmp_path: Path
) -> None:
    brief = tmp_path / "notes.md"
    brief.write_text("---\npriority: low\n---\n\n# Fix the login bug\n\nUsers log out.\n",
                     encoding="utf-8")  # fmt: skip
    r = zoo_cli("--home", str(home.root), "dispatch", "--file", str(brief))
    assert r.code == 0, r.err
    assert r.out.splitlines()[1] == "  workspaces/dev/T-0001-fix-the-login-bug.md"
    task = tasks.find(home, "T-0001")
    assert task.title == "Fix the login bug" and task.meta["priority"] == "low"


def test_dispatch_file_with_broken_front_matter_is_one_line(
    home: Home, zoo_cli: ZooCli, tmp_path: Path
) -> None:
    brief = tmp_path / "bad.md"
    brief.write_text("---\ntitle: [oops\n---\nx\n", encoding="utf-8")
    r = zoo_cli("--home", str(home.root), "dispatch", "--file", str(brief))
    assert r.code == 1
    assert r.err.startswith(f"zoo: {brief}:2: invalid YAML") and r.err.count("\n") == 1
    assert not home.journal_path.exists()


def test_a_zoo_that_is_not_the_runner_still_reads_adopted_files(home: Home) -> None:
    """`zoo status` reads an inbox file with a malformed id without calling it broken."""
    from zoo.engine import reports

    drop(home, "idea.md", "---\nid: banana\n---\nWrite a blog post.\n")
    doc = reports.status(home)
    assert doc["broken"] == [] and doc["tasks"]["queued"] == 1
    assert Zoo.open(home).roster.lead == "roo"
