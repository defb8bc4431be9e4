"""`zoo check`: the roster plus what it points at on disk: playbooks, cron, cycles, folders."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SMALL_ROSTER, Result, make_home
from zoo.engine.check import CheckFailed, require_ok
from zoo.state.home import Home

ZooCli = Callable[..., Result]

EXAMPLE_FOLDERS = [
    "content",
    "dev",
    "done",
    "escalations",
    "inbox",
    "ops",
    "qa",
    "sales",
    "success",
]
SMALL_FOLDERS = ["dev", "done", "escalations", "inbox", "lark", "qa"]
NIGHTLY = "schedules:\n  nightly:\n    cron: '{cron}'\n    agent: lark\n    brief: Go.\n"
"""Appended to SMALL_ROSTER: `schedules:` is line 26, the cron line 28."""


def edited(old: str, new: str) -> str:
    """SMALL_ROSTER with `old` (which occurs exactly once) replaced by `new`."""
    assert SMALL_ROSTER.count(old) == 1, old
    return SMALL_ROSTER.replace(old, new)


def home_here(root: Path, roster_text: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A home with playbooks; the current folder is its root, so paths read `zoo.yaml:`."""
    home = make_home(root, roster_text)
    monkeypatch.chdir(home.root)
    return home


def created_lines(folders: list[str]) -> list[str]:
    return [f"created workspaces/{f}/" for f in folders]


def test_the_example_home_is_valid_and_gets_its_folders(
    example_home: Home, zoo_cli: ZooCli
) -> None:
    result = zoo_cli("check", "--home", str(example_home.root))
    assert result.code == 0
    assert result.err == ""
    assert result.out.splitlines() == [
        *created_lines(EXAMPLE_FOLDERS),
        "zoo.yaml is valid: 7 agents, 2 schedules",
    ]
    assert sorted(p.name for p in example_home.workspaces.iterdir()) == EXAMPLE_FOLDERS


def test_a_second_check_creates_nothing(example_home: Home, zoo_cli: ZooCli) -> None:
    zoo_cli("check", "--home", str(example_home.root))
    result = zoo_cli("check", "--home", str(example_home.root))
    assert (result.code, result.out, result.err) == (
        0,
        "zoo.yaml is valid: 7 agents, 2 schedules\n",
        "",
    )


def test_only_missing_folders_are_created(home: Home, zoo_cli: ZooCli) -> None:
    home.workspace("dev").mkdir(parents=True)
    home.workspace("inbox").mkdir()
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 0
    assert result.out.splitlines() == [
        *created_lines(["done", "escalations", "lark", "qa"]),
        "zoo.yaml is valid: 4 agents, 0 schedules",
    ]


def test_a_missing_playbook_is_an_error_at_the_agents_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = home_here(tmp_path / "zoo", SMALL_ROSTER, monkeypatch)
    home.playbook("lark").unlink()
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.err == (
        "zoo: zoo.yaml:21: agents.lark: playbook agents/lark.md does not exist "
        "(write the agent's instructions there)\n"
    )
    assert "is valid" not in result.out


def test_a_bad_cron_expression_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = home_here(
        tmp_path / "zoo", SMALL_ROSTER + NIGHTLY.format(cron="61 * * * *"), monkeypatch
    )
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.err == (
        "zoo: zoo.yaml:28: schedules.nightly.cron: '61 * * * *' is not a cron expression "
        '(like "0 9 * * MON")\n'
    )


def test_a_valid_schedule_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = home_here(tmp_path / "zoo", SMALL_ROSTER + NIGHTLY.format(cron="0 2 * * *"), monkeypatch)
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 0
    assert result.out.splitlines()[-1] == "zoo.yaml is valid: 4 agents, 1 schedule"


def test_a_six_field_cron_expression_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    text = SMALL_ROSTER + NIGHTLY.format(cron="0 9 * * MON *")
    home = home_here(tmp_path / "zoo", text, monkeypatch)
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.err.startswith("zoo: zoo.yaml:28: schedules.nightly.cron: '0 9 * * MON *'")


def test_a_handoff_cycle_is_a_warning(home: Home, zoo_cli: ZooCli) -> None:
    home.roster_path.write_text(edited("[lark]", "[beaver]"), encoding="utf-8")
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 0
    assert result.err == ""
    assert result.out.splitlines() == [
        "warning: handoff cycle: beaver -> owl -> beaver",
        *created_lines(SMALL_FOLDERS),
        "zoo.yaml is valid: 4 agents, 0 schedules",
    ]


def test_every_cycle_is_listed_once(home: Home, zoo_cli: ZooCli) -> None:
    text = edited("handoff: [lark]", "handoff: [beaver, lark]")
    text = text.replace("    routes: [blog]\n", "    routes: [blog]\n    handoff: [owl]\n")
    home.roster_path.write_text(text, encoding="utf-8")
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 0
    warnings = [line for line in result.out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: handoff cycle: beaver -> owl -> beaver",
        "warning: handoff cycle: owl -> lark -> owl",
    ]


def test_json_has_ok_errors_warnings_and_created(home: Home, zoo_cli: ZooCli) -> None:
    home.roster_path.write_text(edited("[lark]", "[beaver]"), encoding="utf-8")
    result = zoo_cli("check", "--home", str(home.root), "--json")
    assert result.code == 0
    assert result.err == ""
    assert json.loads(result.out) == {
        "ok": True,
        "errors": [],
        "warnings": ["handoff cycle: beaver -> owl -> beaver"],
        "created": [f"workspaces/{f}" for f in SMALL_FOLDERS],
    }


def test_json_of_a_failed_check_lists_the_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = home_here(tmp_path / "zoo", edited("lead: roo", "lead: rooo"), monkeypatch)
    result = zoo_cli("check", "--home", str(home.root), "--json")
    assert result.code == 1
    assert result.err == ""
    assert json.loads(result.out) == {
        "ok": False,
        "errors": ["zoo.yaml:3: lead: unknown agent 'rooo' (did you mean 'roo'?)"],
        "warnings": [],
        "created": [],
    }


def test_check_prints_every_disk_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = home_here(tmp_path / "zoo", SMALL_ROSTER + NIGHTLY.format(cron="every day"), monkeypatch)
    home.playbook("beaver").unlink()
    home.playbook("lark").unlink()
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.err.splitlines() == [
        "zoo: zoo.yaml:6: agents.beaver: playbook agents/beaver.md does not exist "
        "(write the agent's instructions there)",
        "zoo: zoo.yaml:21: agents.lark: playbook agents/lark.md does not exist "
        "(write the agent's instructions there)",
        "zoo: zoo.yaml:28: schedules.nightly.cron: 'every day' is not a cron expression "
        '(like "0 9 * * MON")',
    ]


def test_check_prints_every_roster_problem_in_line_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    text = edited("tools: [remember, escalate]", "tools: [remember, escalte]")
    text = text.replace("lead: roo", "lead: rooo").replace("[owl]", "[owll]")
    home = home_here(tmp_path / "zoo", text, monkeypatch)
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.out == ""
    assert result.err.splitlines() == [
        "zoo: zoo.yaml:3: lead: unknown agent 'rooo' (did you mean 'roo'?)",
        "zoo: zoo.yaml:11: agents.beaver.handoff: unknown agent 'owll' (did you mean 'owl'?)",
        "zoo: zoo.yaml:25: agents.lark.tools: unknown tool 'escalte' (did you mean 'escalate'?)",
    ]
    assert not home.workspaces.exists()


def test_check_prints_every_shape_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    text = edited("Routes briefs.}", "Routes briefs., modle: fast}")
    text = text.replace("    workspace: dev\n", "    workspace: dev\n    max_turns: many\n")
    home = home_here(tmp_path / "zoo", text, monkeypatch)
    result = zoo_cli("check", "--home", str(home.root))
    assert result.code == 1
    assert result.err.splitlines() == [
        "zoo: zoo.yaml:5: agents.roo.modle: unknown key (did you mean 'model'?)",
        "zoo: zoo.yaml:10: agents.beaver.max_turns: expected a whole number from 1 to 1000, "
        "got 'many'",
    ]


# --- one verdict: `zoo run` refuses to start on a home `zoo check` rejects ---------------------


def _no_agents_folder(home: Home) -> None:
    for path in home.agents_dir.iterdir():
        path.unlink()
    home.agents_dir.rmdir()


def _linked_playbook(home: Home) -> None:
    real = home.root / "beaver-playbook.md"
    home.playbook("beaver").rename(real)
    home.playbook("beaver").symlink_to(real)


def _not_utf8_playbook(home: Home) -> None:
    home.playbook("beaver").write_bytes(b"# Beaver\n\xff\n")


def _roster(text: str) -> Callable[[Home], None]:
    def write(home: Home) -> None:
        home.roster_path.write_text(text, encoding="utf-8")

    return write


@pytest.mark.parametrize(
    ("breaks", "first_error"),
    [
        (_no_agents_folder, "zoo.yaml:5: agents.roo: playbook agents/roo.md does not exist "
                            "(write the agent's instructions there)"),
        (_linked_playbook, "zoo.yaml:6: agents.beaver: playbook agents/beaver.md is a symbolic "
                           "link or lies behind one; Zoo uses only files inside the home"),
        (_not_utf8_playbook, "zoo.yaml:6: agents.beaver: playbook agents/beaver.md is not "
                             "UTF-8 text (byte 9; save it as UTF-8)"),
        (_roster(SMALL_ROSTER + NIGHTLY.format(cron="61 * * * *")),
         "zoo.yaml:28: schedules.nightly.cron: '61 * * * *' is not a cron expression "
         '(like "0 9 * * MON")'),
        (_roster(SMALL_ROSTER + "defaults: {max_turns: 0}\n"),
         "zoo.yaml:26: defaults.max_turns: expected a whole number from 1 to 1000, got 0"),
        (_roster(edited("[lark]", "[larc]")),
         "zoo.yaml:18: agents.owl.handoff: unknown agent 'larc' (did you mean 'lark'?)"),
        (_roster(edited("tools: [remember, escalate]", "tools: [remember, escalte]")),
         "zoo.yaml:25: agents.lark.tools: unknown tool 'escalte' (did you mean 'escalate'?)"),
        (_roster(edited("tools: [remember, escalate]", "tools: [remember, escalate]\n"
                                                       "    approval: [escalate]")),
         "zoo.yaml:26: agents.lark.approval: 'escalate' cannot wait for approval "
         "(one of read_file, write_file, list_files, run, remember)"),
    ],
    ids=["no-agents-folder", "linked-playbook", "not-utf8-playbook", "bad-cron",
         "number-out-of-range", "unknown-handoff", "unknown-tool", "ungateable-tool"],
)  # fmt: skip
def test_run_once_refuses_a_home_that_check_rejects_and_leaves_tasks_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli,
    breaks: Callable[[Home], None], first_error: str,
) -> None:  # fmt: skip
    home = home_here(tmp_path / "zoo", SMALL_ROSTER, monkeypatch)
    assert zoo_cli("dispatch", "Fix the login bug", "--home", str(home.root)).code == 0
    breaks(home)
    before = _files(home)
    check = zoo_cli("check", "--home", str(home.root))
    assert check.code == 1
    assert check.err.splitlines()[0] == f"zoo: {first_error}"
    run = zoo_cli("run", "--once", "--home", str(home.root))
    assert (run.code, run.out, run.err) == (1, "", f"zoo: {first_error}\n")
    assert _files(home) == before  # every task where it was, as it was; the journal too


def _files(home: Home) -> dict[str, bytes]:
    """Every task file and the journal, by path."""
    found = {str(p.relative_to(home.root)): p.read_bytes() for p in home.workspaces.rglob("*.md")}
    return {**found, "events": home.journal_path.read_bytes()}


def test_the_live_runner_refuses_a_home_that_check_rejects(home: Home) -> None:
    _no_agents_folder(home)
    # were it to start, it would run until stopped: the deadline turns that into a failure
    result = subprocess.run([sys.executable, "-m", "zoo", "run", "--home", str(home.root)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"zoo: {home.roster_path}:5: agents.roo: playbook agents/roo.md does not exist "
        "(write the agent's instructions there)\n"
    )


def test_require_ok_gives_the_roster_or_every_error(home: Home) -> None:
    assert require_ok(home).lead == "roo"
    assert not home.workspaces.exists()  # the verdict changes nothing
    home.playbook("owl").unlink()
    home.playbook("lark").unlink()
    with pytest.raises(CheckFailed) as caught:
        require_ok(home)
    assert [e.split(": ", 1)[1] for e in caught.value.errors] == [
        "agents.owl: playbook agents/owl.md does not exist (write the agent's instructions there)",
        "agents.lark: playbook agents/lark.md does not exist "
        "(write the agent's instructions there)",
    ]
    assert str(caught.value) == caught.value.errors[0]


def test_run_once_on_a_good_home_imports_no_pydantic(home: Home) -> None:
    code = (
        "import sys; sys.argv = ['zoo', 'run', '--once', '--home', sys.argv[1]]\n"
        "import zoo.cli.app\n"
        "try:\n    zoo.cli.app.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted({'pydantic', 'annotated_types'} & set(sys.modules)))\n"
    )
    # the first run validates zoo.yaml and caches it; the second checks without pydantic
    subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True, check=True)
    out = subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "[]"
