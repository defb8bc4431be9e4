"""What people are shown: control characters escaped on every printing path, values
as people read them; --json stays JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ZooCli, make_home, open_zoo
from zoo.cli import render
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.engine.zoo import Zoo
from zoo.models.scripted import ScriptedModel, call, says
from zoo.state.home import Home
from zoo.state.runnerlock import runner_lock

EVIL = "Fix \x1b[31mred\x1b]0;owned\x07 \x9b2J \u202eevil\x7f done"
"""ESC sequences (colour, window title), BEL, an 8-bit CSI, a bidi override, DEL."""
ESCAPED = "Fix \\x1b[31mred\\x1b]0;owned\\x07 \\x9b2J \\u202eevil\\x7f done"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What must never reach a terminal (newline and tab aside)."""


def test_printable_escapes_control_characters_and_keeps_lines() -> None:
    assert render.printable(EVIL) == ESCAPED
    assert render.printable("one\r\ntwo\tthree\rfour") == "one\ntwo\tthree\\rfour"
    assert render.printable("one\ntwo\tx", lines=False) == "one\\ntwo\\tx"
    assert render.printable("über café ログ") == "über café ログ"


def test_show_status_and_log_escape_a_hostile_brief(home: Home, zoo_cli: ZooCli) -> None:
    h = ("--home", str(home.root))
    assert zoo_cli("dispatch", EVIL + "\n\nthe body \x1b[2J too", "--to", "beaver", *h).code == 0
    shown = zoo_cli("show", "T-0001", *h)
    status = zoo_cli("status", *h)
    log = zoo_cli("log", *h)
    for result in (shown, status, log):
        assert result.code == 0, result.err
        assert not RAW.search(result.out), result.out
    assert shown.out.startswith(f"T-0001 {ESCAPED}  (workspaces/dev/T-0001-")
    assert "\nthe body \\x1b[2J too\n" in shown.out
    assert ESCAPED in log.out
    doc = json.loads(zoo_cli("show", "T-0001", "--json", *h).out)
    assert doc["front_matter"]["title"] == EVIL  # JSON keeps the value, escaped as JSON
    raw = zoo_cli("show", "T-0001", "--json", *h).out
    assert not RAW.search(raw) and "\\u001b[31m" in raw and "\\u009b" in raw


def test_errors_and_usage_errors_are_escaped(home: Home, zoo_cli: ZooCli) -> None:
    r = zoo_cli("--home", str(home.root), "dispatch", "x", "--to", "ow\x1b[2J")
    assert (r.code, r.err) == (1, "zoo: no agent 'ow\\x1b[2J' in zoo.yaml\n")
    r = zoo_cli("--home", str(home.root), "cron", "--every", "\x1b[2J")
    assert r.code == 2 and r.err.startswith("zoo: Invalid value for '--every': '\\x1b[2J' ")


ROSTER = """\
version: 1
name: gate
lead: roo
models:
  fast: {provider: offline}
defaults: {model: fast, concurrency: 1}
agents:
  roo: {role: Lead}
  lark: {role: "Writer \\e[5m", tools: [write_file], approval: [write_file]}
  beaver: {role: Developer, tools: [run]}
"""


def test_approvals_and_run_lines_escape_what_the_model_wrote(
    tmp_path: Path, zoo_cli: ZooCli, scripted: ScriptedModel
) -> None:
    home = make_home(tmp_path / "zoo", ROSTER)
    dispatch(open_zoo(home, scripted), "Draft the post", to="lark")
    dispatch(open_zoo(home, scripted), "Say it", to="beaver")
    scripted.add(  # one worker, and beaver's folder comes first
        says("Saying.", call("run", command=["echo", "\x1b[1mhi"])),
        says("Drafting.", call("write_file", path="post.md", content=EVIL)),
    )
    with runner_lock(home):
        run_once(Zoo.open(home, env={}, model=scripted), on_line=render.line)
    h = ("--home", str(home.root))
    listed = zoo_cli("approvals", *h)
    run = zoo_cli("approvals", "A-0001", *h)
    write = zoo_cli("approvals", "A-0002", *h)
    status = zoo_cli("status", *h)
    for result in (listed, write, run, status):
        assert result.code == 0, result.err
        assert not RAW.search(result.out), result.out
    assert "run `echo '\\x1b[1mhi'`" in listed.out
    assert f"--- post.md ---\n{ESCAPED}\n" in write.out
    assert '"\\u001b[1mhi"' in run.out
    assert "Writer \\x1b[5m" in status.out


@pytest.mark.parametrize(
    ("route", "shown"),
    [
        ({"by": "rules", "reason": "matched 'bug'"}, "rules: matched 'bug'"),
        ({"by": "model", "reason": "fits", "confidence": 0.9}, "model: fits (confidence 0.9)"),
    ],
)
def test_show_prints_the_route_as_people_read_it(
    home: Home, zoo_cli: ZooCli, route: dict[str, object], shown: str
) -> None:
    from zoo.state import tasks

    task = tasks.create(home, "Fix the login bug", "x", source="cli")
    task.meta["route"] = route
    tasks.save(task)
    out = zoo_cli("show", "T-0001", "--home", str(home.root)).out
    assert f"\n  route: {shown}\n" in out


def test_the_live_table_escapes_roles_and_work(tmp_path: Path) -> None:
    import io
    import threading
    from types import SimpleNamespace

    from rich.console import Console

    from zoo.cli.liveview import View
    from zoo.engine.runreport import RunReport

    home = make_home(tmp_path / "zoo", ROSTER)
    live = SimpleNamespace(
        working=lambda: {"T-0001": {"agent": "lark", "since": "2026-11-24T10:00:00Z"}},
        report=RunReport(),
        stopping=threading.Event(),
    )
    view = View(live, open_zoo(home).roster)  # type: ignore[arg-type]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(view._table())
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Writer \\x1b[5m" in shown and "T-0001 (" in shown
    assert not RAW.search(shown)
