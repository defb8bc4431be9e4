"""Memory: attributed entries appended atomically; the relevant part is read back."""

from __future__ import annotations

import subprocess
import sys

from zoo.state.home import Home
from zoo.state.memory import Entry, Memory, parse, search


def test_shared_entries_are_appended_with_attribution(home: Home) -> None:
    memory = Memory(home)
    memory.remember(Entry("2026-11-24T10:00:00Z", "beaver", "T-0001", "Login uses JWT."), True)
    memory.remember(Entry("2026-11-24T10:01:00Z", "owl", "T-0002", "Tests run in CI."), True)
    text = home.memory_path.read_text(encoding="utf-8")
    assert text == (
        "# MEMORY\n\n## 2026-11-24T10:00:00Z · beaver · T-0001\nLogin uses JWT.\n"
        "\n## 2026-11-24T10:01:00Z · owl · T-0002\nTests run in CI.\n"
    )
    assert [e.agent for e in memory.entries(home.memory_path)] == ["beaver", "owl"]


def test_private_notes_go_to_the_agents_own_file(home: Home) -> None:
    path = Memory(home).remember(Entry("2026-11-24T10:00:00Z", "beaver", "T-0001", "mine"), False)
    assert path == home.agent_memory("beaver")
    assert not home.memory_path.exists()
    assert path.read_text(encoding="utf-8").startswith("# beaver · memory\n")


def test_appending_to_a_file_without_a_final_newline(home: Home) -> None:
    home.memory_path.write_text("# MEMORY\nhand-written line", encoding="utf-8")
    Memory(home).remember(Entry("2026-11-24T10:00:00Z", "owl", "T-0001", "note"), True)
    entries = parse(home.memory_path.read_text(encoding="utf-8"))
    assert [e.text for e in entries] == ["note"]


def test_relevant_entries_share_words_with_the_task(home: Home) -> None:
    memory = Memory(home)
    notes = ["Invoices are PDF.", "Login tokens expire after 60 seconds.", "Blog posts on Tuesday.",
             "The office dog is called Rex.", "Pricing page lists three plans."]  # fmt: skip
    for i, note in enumerate(notes):
        memory.remember(Entry(f"2026-11-2{i}T10:00:00Z", "roo", "T-0000", note), True)
    picked = [e.text for e in memory.relevant("Fix login: tokens expire too early", limit=3)]
    assert picked[0] == "Login tokens expire after 60 seconds."
    assert "Invoices are PDF." not in picked  # old and unrelated


def test_concurrent_writers_never_interleave(home: Home) -> None:
    script = (
        "import sys; from pathlib import Path; from zoo.state.home import Home\n"
        "from zoo.state.memory import Entry, Memory\n"
        "m = Memory(Home(Path(sys.argv[1])))\n"
        "for i in range(50): m.remember(Entry('2026-11-24T10:00:00Z', sys.argv[2], 'T-0001',"
        " f'note {i} ' + 'x' * 3000), True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(home.root), name])
        for name in ("beaver", "owl", "lark")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    entries = parse(home.memory_path.read_text(encoding="utf-8"))
    assert len(entries) == 150
    assert all(e.text.endswith("x" * 3000) for e in entries)


def test_search_matches_every_word_in_any_case() -> None:
    entries = [Entry("t", "beaver", "T-0001", "Login uses JWT"),
               Entry("t", "owl", "T-0002", "JWT tests are flaky")]  # fmt: skip
    assert [e.agent for e in search(entries, "jwt")] == ["beaver", "owl"]
    assert [e.agent for e in search(entries, "jwt flaky")] == ["owl"]
    assert [e.agent for e in search(entries, "beaver")] == ["beaver"]


def test_growth_is_read_incrementally_and_a_hand_edit_anew(home: Home) -> None:
    reader, writer = Memory(home), Memory(home)
    writer.remember(Entry("2026-11-24T10:00:00Z", "owl", "T-0001", "first note"), True)
    assert [e.text for e in reader.entries(home.memory_path)] == ["first note"]
    writer.remember(Entry("2026-11-24T10:01:00Z", "owl", "T-0002", "second note"), True)
    assert [e.text for e in reader.entries(home.memory_path)] == ["first note", "second note"]
    assert [e.text for e in reader.relevant("second")][0] == "second note"
    edited = home.memory_path.read_text(encoding="utf-8").replace("first note", "edited note")
    home.memory_path.write_text(edited, encoding="utf-8")
    assert [e.text for e in reader.entries(home.memory_path)] == ["edited note", "second note"]
    with home.memory_path.open("a", encoding="utf-8") as f:
        f.write("a line a person added outside any entry\n")
    assert reader.entries(home.memory_path)[-1].text.endswith("outside any entry")
