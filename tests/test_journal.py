"""The journal: append-only, one line per event, hash-chained, tamper-evident."""

from __future__ import annotations

import json
import subprocess
import sys

from zoo.state.home import Home
from zoo.state.journal import GENESIS, Journal, read_events, verify


def test_events_chain_by_hash(home: Home) -> None:
    journal = Journal(home)
    first = journal.write("task.created", task="T-0001")
    second = journal.write("task.routed", task="T-0001", agent="beaver")
    assert first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    lines = home.journal_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["task.created", "task.routed"]
    assert verify(home.journal_path) == (2, None)


def test_none_fields_are_left_out(home: Home) -> None:
    event = Journal(home).write("x", task="T-0001", note=None)
    assert "note" not in event


def test_a_changed_line_is_named(home: Home) -> None:
    journal = Journal(home)
    for i in range(5):
        journal.write("step", task=f"T-000{i}")
    lines = home.journal_path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("T-0002", "T-0009")
    home.journal_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    count, bad = verify(home.journal_path)
    assert bad is not None and bad.line == 3
    assert bad.problem == "content changed: its hash does not match"


def test_a_removed_line_breaks_the_chain_at_the_next(home: Home) -> None:
    journal = Journal(home)
    for i in range(4):
        journal.write("step", task=f"T-000{i}")
    lines = home.journal_path.read_text(encoding="utf-8").splitlines()
    del lines[1]
    home.journal_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, bad = verify(home.journal_path)
    assert bad is not None and bad.line == 2 and bad.problem.startswith("chain broken")


def test_a_rehashed_forgery_is_still_caught(home: Home) -> None:
    """Editing a line and fixing its own hash breaks the next line's `prev`."""
    import hashlib

    journal = Journal(home)
    for i in range(3):
        journal.write("step", task=f"T-000{i}")
    lines = home.journal_path.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[0])
    event.pop("hash")
    event["task"] = "T-0666"
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    event["hash"] = hashlib.sha256(body.encode()).hexdigest()
    lines[0] = json.dumps(event)
    home.journal_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, bad = verify(home.journal_path)
    assert bad is not None and bad.line == 2


def test_garbage_line_is_named(home: Home) -> None:
    Journal(home).write("a")
    with home.journal_path.open("a", encoding="utf-8") as f:
        f.write("not json\n")
    _, bad = verify(home.journal_path)
    assert bad is not None and bad.line == 2 and "unreadable" in bad.problem


def test_two_processes_appending_keep_one_chain(home: Home) -> None:
    script = (
        "import sys; from pathlib import Path; from zoo.state.home import Home\n"
        "from zoo.state.journal import Journal\n"
        "j = Journal(Home(Path(sys.argv[1])))\n"
        "for i in range(100): j.write('tick', n=i)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home.root)]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert verify(home.journal_path) == (300, None)
    assert len(list(read_events(home.journal_path))) == 300


def test_cached_tail_is_refreshed_when_another_writer_appended(home: Home) -> None:
    mine, theirs = Journal(home), Journal(home)
    mine.write("a")
    theirs.write("b")
    mine.write("c")
    assert verify(home.journal_path) == (3, None)


def test_a_torn_last_line_is_cut_and_the_chain_goes_on(home: Home) -> None:
    journal = Journal(home)
    journal.write("one")
    torn = b'{"ts":"2026-11-24T00:00:00Z","event":"half of a li'  # a writer killed mid-write
    with home.journal_path.open("ab") as f:
        f.write(torn)
    Journal(home).write("two")
    events = list(read_events(home.journal_path))
    assert [e["event"] for e in events] == ["one", "journal.repaired", "two"]
    assert events[1]["dropped_bytes"] == len(torn)
    assert verify(home.journal_path)[1] is None
