"""Task files: front matter + body, atomic writes, ids, hand-editable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import NotFound, TaskFileError
from zoo.state import tasks
from zoo.state.home import Home


def test_create_writes_a_readable_task_in_the_inbox(home: Home) -> None:
    task = tasks.create(home, "Fix login bug", "Users are logged out.", source="cli")
    assert task.path == home.workspace("inbox") / "T-0001-fix-login-bug.md"
    text = task.path.read_text(encoding="utf-8")
    assert text.startswith("---\nid: T-0001\ntitle: Fix login bug\nstatus: queued\n")
    assert "\n---\n# Fix login bug\n\nUsers are logged out.\n" in text
    assert "created: 20" in text and "created: '" not in text  # timestamps stay unquoted


def test_round_trip_keeps_body_bytes_and_unknown_keys(home: Home) -> None:
    task = tasks.create(home, "Round trip", "Line one\n\n---\n\nA rule above.", source="cli")
    task.meta["priority"] = "high"  # a key a person added
    tasks.save(task)
    again = tasks.read(task.path)
    assert again.meta["priority"] == "high"
    assert again.body == task.body
    assert again.meta["created"] == task.meta["created"]


def test_ids_are_sequential_and_survive_a_lost_counter(home: Home) -> None:
    ids = [tasks.create(home, f"t{i}", "x", source="cli").id for i in range(3)]
    assert ids == ["T-0001", "T-0002", "T-0003"]
    (home.state / "last-id").unlink()
    assert tasks.allocate_id(home) == "T-0004"


def test_task_folders_are_the_active_ones_then_escalations_then_done(home: Home) -> None:
    for name in ("qa", "done", "inbox", "escalations", "dev", ".trash"):
        home.workspace(name).mkdir(parents=True)
    (home.workspaces / "notes.md").write_text("a file, not a folder\n", encoding="utf-8")
    assert [p.name for p in tasks.active_folders(home)] == ["dev", "inbox", "qa"]
    assert tasks.task_folders(home) == [
        home.workspace(name) for name in ("dev", "inbox", "qa", "escalations", "done")
    ]


def test_a_lost_counter_goes_on_after_the_highest_id_in_any_task_folder(home: Home) -> None:
    for folder, name in (("dev", "T-0003-a.md"), ("escalations", "T-0009-b.md"),
                         ("done", "T-0007-c.md"), (".trash", "T-0099-d.md")):  # fmt: skip
        home.workspace(folder).mkdir(parents=True)
        (home.workspace(folder) / name).write_text("---\n---\n", encoding="utf-8")
    assert tasks.allocate_id(home) == "T-0010"  # .trash/ holds no task: not a workspace
    assert (home.state / "last-id").read_text(encoding="utf-8") == "10\n"


def test_a_claimed_number_is_never_handed_out_and_the_counter_never_goes_back(
    home: Home,
) -> None:
    assert tasks.count_on(home, "last-thing", lambda: 2, claim=5) == 5
    assert tasks.count_on(home, "last-thing", lambda: 2, claim=3) == 5
    assert tasks.count_on(home, "last-thing", lambda: 2) == 6
    (home.state / "last-thing").write_text("garbage\n", encoding="utf-8")
    assert tasks.count_on(home, "last-thing", lambda: 2) == 3  # unreadable: from what is in use
    assert tasks.count_on(home, "last-thing", lambda: 2, claim=1) == 3


def test_two_processes_dispatching_at_once_never_share_an_id(home: Home) -> None:
    script = (
        "import sys; from pathlib import Path; from zoo.state.home import Home\n"
        "from zoo.state import tasks\n"
        "h = Home(Path(sys.argv[1]))\n"
        "for i in range(40): tasks.create(h, f'brief {i}', 'x', source='cli')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home.root)]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    names = [p.name for p in home.workspace("inbox").iterdir()]
    ids = {name[:6] for name in names}
    assert len(names) == 120 and len(ids) == 120


def test_save_into_another_folder_moves_the_file_atomically(home: Home) -> None:
    task = tasks.create(home, "Move me", "x", source="cli")
    old = task.path
    tasks.save(task, home.workspace("dev"))
    assert not old.exists()
    assert task.path == home.workspace("dev") / old.name
    assert tasks.read(task.path).body == task.body
    leftovers = [p for p in home.workspaces.rglob("*") if p.name.endswith(".zoo-tmp")]
    assert leftovers == []


def test_find_by_id_and_by_number(home: Home) -> None:
    task = tasks.create(home, "Find me", "x", source="cli")
    assert tasks.find(home, "T-0001").path == task.path
    assert tasks.find(home, "t-0001").path == task.path
    assert tasks.find(home, "1").path == task.path
    with pytest.raises(NotFound, match=r"^no task T-0002 in workspaces/$"):
        tasks.find(home, "T-0002")
    with pytest.raises(NotFound, match="ids look like T-0042"):
        tasks.find(home, "login")


@pytest.mark.parametrize(
    ("front", "line", "message"),
    [
        ("id: T-0001\nstatus: sleeping\n", 3, "status: expected one of queued, working, "
         "waiting-approval, done, escalated, got 'sleeping'"),
        ("id: 42\n", 2, "id: expected an id like T-0042, got 42"),
        ("id: T-0001\ntitle: [unclosed\n", 3, "invalid YAML"),
        ("id: T-0001\nsteps: -1\n", 3, "steps: expected a whole number, got -1"),
    ],
)  # fmt: skip
def test_broken_front_matter_names_file_line_and_key(
    home: Home, front: str, line: int, message: str
) -> None:
    path = home.workspace("dev") / "T-0001-broken.md"
    path.parent.mkdir(parents=True)
    path.write_text(f"---\n{front}---\n# Broken\n", encoding="utf-8")
    with pytest.raises(TaskFileError) as caught:
        tasks.read(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


def test_unclosed_front_matter_is_reported(home: Home) -> None:
    path = home.workspace("dev") / "T-0001-open.md"
    path.parent.mkdir(parents=True)
    path.write_text("---\nid: T-0001\n# no closing line\n", encoding="utf-8")
    with pytest.raises(TaskFileError, match=r":1: front matter is not closed"):
        tasks.read(path)


def test_a_brief_without_front_matter_is_read_in_the_inbox_only(home: Home) -> None:
    inbox = home.workspace("inbox")
    inbox.mkdir(parents=True)
    (inbox / "idea.md").write_text("# An idea\n\nWrite a blog post.\n", encoding="utf-8")
    dropped = tasks.read(inbox / "idea.md")
    assert dropped.meta == {} and dropped.body.startswith("# An idea")
    dev = home.workspace("dev")
    dev.mkdir()
    (dev / "T-0009-x.md").write_text("no front matter\n", encoding="utf-8")
    with pytest.raises(TaskFileError, match=r":1: id: missing"):
        tasks.read(dev / "T-0009-x.md")


def test_slug_and_title() -> None:
    assert tasks.slugify("Fix the login bug: users are logged out!") == (
        "fix-the-login-bug-users-are-logged-out"
    )
    assert tasks.slugify("!!!") == "task"
    assert tasks.title_of("\n# Heading\nbody", "x") == "Heading"
    assert tasks.title_of("first line\nsecond", "x") == "first line"
    assert tasks.title_of("", "fallback") == "fallback"


def test_task_files_skip_temporary_and_other_files(tmp_path: Path) -> None:
    for name in ("T-0001-a.md", ".T-0002-b.md.123.zoo-tmp", "notes.md", "T-0003-c.md"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert [p.name for p in tasks.task_files(tmp_path)] == ["T-0001-a.md", "T-0003-c.md"]


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("über café", "uber-cafe"),
        ("Crème brûlée: straße, Æsir", "creme-brulee-strasse-aesir"),
        ("ＦＵＬＬ width ﬁle", "full-width-file"),
        ("Привет, мир", "привет-мир"),
        ("ログインのバグを直す", "ログインのバグを直す"),
        ("a/b\\c\x1b[31md\u202ee\x00f", "a-b-c-31md-e-f"),
        ("ｱ" * 40, "ｱ" * 16),  # one long word: cut at 48 bytes, on a character
        ("sk-ant-api03-abcdefghijklmnop draft", "redacted-draft"),
        ("sk ant api03 abcdefghijklmnop", "redacted"),  # words that join into a key
    ],
)
def test_slugs_keep_letters_of_every_script_and_stay_safe(title: str, slug: str) -> None:
    made = tasks.slugify(title)
    assert made == slug
    assert len(made.encode("utf-8")) <= 48
    assert tasks.TASK_NAME.match(f"T-0001-{made}.md")


@pytest.mark.parametrize(
    "title",
    [
        "sk-ant-api03-abcdefghijklmnopqrstuv please draft",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "Bearer abcdefghijklmnopqrstuvwxyz012345: a post",
        "- [x] {a: b} # not a comment",
        "'quoted' and \"double\"",
        "yes",
        "2026-11-22T14:03:00Z",
        "über café ログ",
        "with a NUL\x00 and \x1b escape",
    ],
)
def test_front_matter_is_valid_yaml_whatever_the_title(home: Home, title: str) -> None:
    from zoo.secrets import redact

    task = tasks.create(home, title, "The brief.", source="cli")
    again = tasks.read(task.path)
    assert again.meta["title"] == redact(title).replace("\x00", "\ufffd")
    assert again.meta["title"] == task.title
    assert task.path.name == f"T-0001-{tasks.slugify(title)}.md"
    task.meta["note"] = f"{title} again"  # a person's key: redacted and quoted too
    tasks.save(task)
    assert tasks.read(task.path).meta["note"] == redact(f"{title} again").replace("\x00", "\ufffd")
