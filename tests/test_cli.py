"""The command line: each command, its --json document, and one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ZooCli
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.memory import Entry, Memory


def test_dispatch_json_names_the_routed_task(home: Home, zoo_cli: ZooCli) -> None:
    r = zoo_cli("dispatch", "Fix the login bug", "--home", str(home.root), "--json")
    assert r.code == 0 and r.err == ""
    doc = json.loads(r.out)
    assert set(doc) == {"id", "agent", "workspace", "path", "route"}
    assert doc["id"] == "T-0001" and doc["agent"] == "beaver" and doc["workspace"] == "dev"
    assert Path(doc["path"]) == home.workspace("dev") / "T-0001-fix-the-login-bug.md"
    assert Path(doc["path"]).is_file()
    assert doc["route"] == {"by": "rules", "reason": "matched 'bug'"}


def test_dispatch_from_a_file_and_to_an_agent(home: Home, tmp_path: Path, zoo_cli: ZooCli) -> None:
    brief = tmp_path / "brief.md"
    brief.write_text("# Quarterly review\n\nSummarise the quarter.\n", encoding="utf-8")
    r = zoo_cli("--home", str(home.root), "dispatch", "--file", str(brief), "--to", "lark")
    assert r.code == 0
    assert r.out.startswith("T-0001 -> lark · cli: sent with --to\n")
    task = home.workspace("lark") / "T-0001-quarterly-review.md"
    assert "source: file" in task.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "line", "code"),
    [
        (["dispatch"], "zoo: give the brief as TEXT or with --file F (one of the two)", 2),
        (["dispatch", "  "], "zoo: the brief is empty", 2),
        (["dispatch", "x", "--to", "owll"],
         "zoo: no agent 'owll' in zoo.yaml (did you mean 'owl'?)", 1),
        (["dispatch", "--file", "/nonexistent/brief.md"],
         "zoo: cannot read --file /nonexistent/brief.md: No such file or directory", 2),
        (["show", "T-0042"], "zoo: no task T-0042 in workspaces/", 1),
        (["show", "login"], "zoo: no task 'login': ids look like T-0042", 1),
        (["log", "--since", "yesterday"], "zoo: --since 'yesterday': expected an ISO time "
         "(2026-11-24T09:00) or an age (30m, 2h, 1d)", 2),
        (["frobnicate"], "zoo: No such command 'frobnicate'. (see 'zoo --help')", 2),
        (["status", "--colour"], "zoo: No such option '--colour'. (see 'zoo status --help')", 2),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_an_exit_code(
    home: Home,
    zoo_cli,
    args: list[str],
    line: str,
    code: int,  # type: ignore[no-untyped-def]
) -> None:
    r = zoo_cli("--home", str(home.root), *args)
    assert (r.code, r.err) == (code, line + "\n")


def test_plan_creates_nothing(home: Home, zoo_cli: ZooCli) -> None:
    r = zoo_cli("plan", "Fix the login bug", "--home", str(home.root))
    assert r.out == "beaver · rules: matched 'bug'\nchain: beaver -> owl -> lark -> done\n"
    doc = json.loads(zoo_cli("plan", "x", "--to", "owl", "--home", str(home.root), "--json").out)
    assert doc == {"agent": "owl", "route": {"by": "cli", "reason": "sent with --to"},
                   "chain": ["owl", "lark"], "cycle": False, "asked_model": False}  # fmt: skip
    assert not home.workspaces.exists()


def test_run_once_then_status_show_and_log(home: Home, zoo_cli: ZooCli) -> None:
    h = ["--home", str(home.root)]
    zoo_cli("dispatch", "Fix the login bug", *h)
    zoo_cli("dispatch", "Ponder the meaning of life", *h)
    r = zoo_cli("run", "--once", *h)
    assert r.code == 0, r.err
    assert "T-0001 lark finished: done" in r.out
    status = json.loads(zoo_cli("status", "--json", *h).out)
    assert {"zoo", "agents", "tasks", "needs_person", "schedules", "spend"} <= set(status)
    assert status["tasks"]["done"] == 1 and status["tasks"]["escalated"] == 1
    assert status["needs_person"][0]["id"] == "T-0002"
    assert status["needs_person"][0]["reason"].startswith("could not route:")
    beaver = next(a for a in status["agents"] if a["name"] == "beaver")
    assert beaver == {"name": "beaver", "role": "Developer", "model": "offline",
                      "workspace": "dev", "queued": 0, "working": 0}  # fmt: skip
    assert status["spend"]["usd"] == 0.0 and status["spend"]["input_tokens"] > 0
    shown = json.loads(zoo_cli("show", "T-0001", "--json", *h).out)
    assert shown["front_matter"]["status"] == "done" and "## owl · " in shown["body"]
    assert [e["event"] for e in shown["events"]][:2] == ["task.created", "task.routed"]
    people = zoo_cli("status", *h).out
    assert "needs a person" in people and "T-0002" in people
    events = json.loads(zoo_cli("log", "--task", "T-0002", "--json", *h).out)
    # the lead's routing call is journaled like any call
    assert [e["event"] for e in events] == ["task.created", "model.reply", "task.escalated"]
    owl = json.loads(zoo_cli("log", "--agent", "owl", "--since", "1h", "--json", *h).out)
    assert owl and all("owl" in (e.get("agent"), e.get("from")) for e in owl)
    assert json.loads(zoo_cli("log", "--since", "2999-01-01", "--json", *h).out) == []


def test_log_verify_names_the_tampered_line(home: Home, zoo_cli: ZooCli) -> None:
    h = ["--home", str(home.root)]
    zoo_cli("dispatch", "Fix the login bug", *h)
    assert zoo_cli("log", "--verify", *h).out == "journal ok: 2 events, hash chain intact\n"
    lines = home.journal_path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("beaver", "lark")
    home.journal_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = zoo_cli("log", "--verify", *h)
    assert r.code == 1
    assert r.err == "zoo: .zoo/events.jsonl:2: content changed: its hash does not match\n"


def test_run_once_exits_1_on_a_broken_task_file(home: Home, zoo_cli: ZooCli) -> None:
    qa = home.workspace("qa")
    qa.mkdir(parents=True)
    (qa / "T-0007-x.md").write_text("---\nid: T-0007\nstatus: later\n---\n", encoding="utf-8")
    r = zoo_cli("run", "--once", "--home", str(home.root))
    assert r.code == 1
    assert r.err == (
        f"zoo: {qa}/T-0007-x.md:3: status: expected one of queued, working, "
        "waiting-approval, done, escalated, got 'later'\n"
    )
    status = json.loads(zoo_cli("status", "--json", "--home", str(home.root)).out)
    assert status["broken"] == [r.err[len("zoo: ") : -1]]


def test_second_runner_exits_0_and_says_so(home: Home, zoo_cli: ZooCli) -> None:
    from zoo.state.runnerlock import runner_lock

    with runner_lock(home):
        r = zoo_cli("run", "--once", "--home", str(home.root))
    assert r.code == 0
    assert r.err.startswith("zoo: another runner (pid ") and r.err.endswith("; nothing to do\n")


def test_memory_shows_and_searches(home: Home, zoo_cli: ZooCli) -> None:
    h = ["--home", str(home.root)]
    memory = Memory(home)
    for agent, note in (("beaver", "Login uses JWT."), ("owl", "CI runs pytest."),
                        ("lark", "Posts stay short.")):  # fmt: skip
        memory.remember(Entry("2026-11-24T10:00:00Z", agent, "T-0000", note), shared=True)
    everything = json.loads(zoo_cli("memory", "--json", *h).out)
    assert [e["agent"] for e in everything] == ["beaver", "owl", "lark"]
    found = json.loads(zoo_cli("memory", "owl", "--json", *h).out)
    assert [e["agent"] for e in found] == ["owl"]
    assert zoo_cli("memory", "zebra", *h).out == "no entries in MEMORY.md matching 'zebra'\n"
    zoo_cli("dispatch", "Fix the login bug", *h)
    zoo_cli("run", "--once", *h)  # the offline model keeps its notes in agents' own memory
    own = json.loads(zoo_cli("memory", "--agent", "owl", "--json", *h).out)
    assert [(e["agent"], e["task"], e["step"]) for e in own] == [("owl", "T-0001", 2)]
    assert len(json.loads(zoo_cli("memory", "--json", *h).out)) == 3


def test_debug_shows_the_traceback(home: Home, zoo_cli: ZooCli) -> None:
    result = zoo_cli("--debug", "--home", str(home.root), "show", "T-0042")
    assert result.code == 1
    assert result.err.startswith("Traceback (most recent call last):")
    assert result.err.endswith("zoo.errors.NotFound: no task T-0042 in workspaces/\n")


def test_init_scaffolds_a_working_home_with_git(tmp_path: Path, zoo_cli: ZooCli) -> None:
    target = tmp_path / "team"
    r = zoo_cli("init", str(target))
    assert r.code == 0, r.err
    assert (target / ".git").is_dir() and (target / ".gitignore").is_file()
    assert zoo_cli("check", "--home", str(target)).out.endswith(
        "zoo.yaml is valid: 3 agents, 1 schedule\n"
    )
    zoo_cli("dispatch", "Draft a blog post about our launch", "--home", str(target))
    r = zoo_cli("run", "--once", "--home", str(target))
    assert r.code == 0 and "finished: done" in r.out
    again = zoo_cli("init", str(target))
    assert (again.code, again.err) == (
        1,
        f"zoo: {target} is already a zoo home (it has zoo.yaml)\n",
    )


def test_python_m_zoo_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    roster = "version: 1\nname: x\nlead: roo\nagents: {roo: {rol: Lead}}\n"
    (tmp_path / "zoo.yaml").write_text(roster, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "zoo", "status"], cwd=tmp_path,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == "zoo: zoo.yaml:4: agents.roo.rol: unknown key (did you mean 'role'?)\n"
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "zoo", "--version"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.startswith("zoo ")
    help_text = subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    assert "dispatch" in help_text and "status" in help_text


def test_help_and_status_import_no_heavy_module(home: Home) -> None:
    code = (
        "import sys; sys.argv = ['zoo', 'status', '--home', sys.argv[1]]\n"
        "import zoo.cli.app\n"
        "try:\n    zoo.cli.app.main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'anthropic', 'openai', 'git', 'watchdog', 'pydantic'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    # the roster cache is written by the first load; the second must not need pydantic
    subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True, check=True)
    out = subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "[]"


def test_status_shows_work_in_progress_from_live_leases(home: Home, zoo_cli: ZooCli) -> None:
    from zoo.state.leases import RunnerLeases

    zoo_cli("dispatch", "Fix the login bug", "--home", str(home.root))
    held = RunnerLeases(home)
    try:
        with held.hold("T-0001", "beaver", "2026-11-24T10:00:00Z"):
            doc = json.loads(zoo_cli("status", "--json", "--home", str(home.root)).out)
    finally:
        held.close()
    beat = doc["working"][0].pop("heartbeat_age_s")
    assert 0 <= beat < 5  # the lease was written just now
    assert doc["working"] == [{"task": "T-0001", "agent": "beaver",
                               "since": "2026-11-24T10:00:00Z", "pid": os.getpid()}]  # fmt: skip
    assert doc["tasks"]["working"] == 1 and doc["tasks"]["queued"] == 0
    beaver = next(a for a in doc["agents"] if a["name"] == "beaver")
    assert (beaver["queued"], beaver["working"]) == (0, 1)
    after = json.loads(zoo_cli("status", "--json", "--home", str(home.root)).out)
    assert after["working"] == [] and after["tasks"]["queued"] == 1


def test_cron_prints_a_crontab_line_for_this_home(home: Home, zoo_cli: ZooCli) -> None:
    result = zoo_cli("cron", "--home", str(home.root), "--every", "5")
    assert result.code == 0, result.err
    comment, line = result.out.splitlines()
    assert comment.startswith("# zoo 'test': do the work that is due, every 5 min")
    schedule, rest = line[: len("*/5 * * * * ")], line[len("*/5 * * * * ") :]
    assert schedule == "*/5 * * * * "
    assert rest.endswith(f" --home {home.root} run --once >> {home.state / 'cron.log'} 2>&1")
    assert zoo_cli("cron", "--home", str(home.root), "--every", "0").code == 2


def test_retry_sends_an_escalated_task_back_to_its_agent_or_another(
    home: Home, zoo_cli: ZooCli
) -> None:
    from zoo.engine.zoo import Zoo

    zoo_cli("dispatch", "Fix the login bug", "--home", str(home.root))
    zoo = Zoo.open(home)
    task = tasks.find(home, "T-0001")
    task.meta["handoffs"] = 10
    zoo.escalate(task, "handed off 11 times, more than max_handoffs (10)", by="runner")

    back = zoo_cli("retry", "T-0001", "--home", str(home.root))
    assert back.code == 0
    assert back.out == (
        "T-0001 is queued for beaver again (workspaces/dev/T-0001-fix-the-login-bug.md); "
        "zoo run picks it up\n"
    )
    task = tasks.find(home, "T-0001")
    assert (task.status, task.agent, task.folder, task.meta["handoffs"]) == (
        "queued", "beaver", "dev", 0)  # fmt: skip
    assert "escalation" not in task.meta
    retried = [e for e in read_events(home.journal_path) if e["event"] == "task.retried"]
    assert retried[0]["escalation"] == "handed off 11 times, more than max_handoffs (10)"

    again = zoo_cli("retry", "1", "--home", str(home.root))
    assert again.code == 1
    assert again.err == (
        "zoo: T-0001 is queued, not escalated: only an escalated task can be retried\n"
    )
    zoo.escalate(tasks.find(home, "T-0001"), "needs a person", by="beaver")
    wrong = zoo_cli("retry", "T-0001", "--to", "owll", "--home", str(home.root))
    assert (wrong.code, wrong.err) == (  # as `dispatch --to owll` says it
        1,
        "zoo: no agent 'owll' in zoo.yaml (did you mean 'owl'?)\n",
    )
    moved = json.loads(zoo_cli("retry", "T-0001", "--to", "owl", "--json",
                               "--home", str(home.root)).out)  # fmt: skip
    assert moved == {"id": "T-0001", "agent": "owl", "workspace": "qa",
                     "path": str(home.workspace("qa") / "T-0001-fix-the-login-bug.md")}  # fmt: skip
    missing = zoo_cli("retry", "T-0099", "--home", str(home.root))
    assert missing.code == 1 and missing.err.startswith("zoo: no task T-0099")


def test_retry_takes_several_ids_or_all(home: Home, zoo_cli: ZooCli) -> None:
    from zoo.engine.zoo import Zoo

    zoo = Zoo.open(home)
    for brief in ("Fix the login bug", "Fix the logout bug", "Write a blog post"):
        zoo_cli("dispatch", brief, "--home", str(home.root))
    for task_id in ("T-0001", "T-0002", "T-0003"):
        zoo.escalate(tasks.find(home, task_id), "needs a person", by="runner")
    two = zoo_cli("retry", "T-0001", "T-0099", "T-0002", "--home", str(home.root))
    assert two.code == 1
    assert two.out.splitlines() == [
        "T-0001 is queued for beaver again (workspaces/dev/T-0001-fix-the-login-bug.md); "
        "zoo run picks it up",
        "T-0002 is queued for beaver again (workspaces/dev/T-0002-fix-the-logout-bug.md); "
        "zoo run picks it up",
    ]
    assert two.err == "zoo: no task T-0099 in workspaces/\n"
    zoo.escalate(tasks.find(home, "T-0001"), "again", by="runner")
    every = json.loads(zoo_cli("retry", "--all", "--to", "owl", "--json",
                               "--home", str(home.root)).out)  # fmt: skip
    assert [d["id"] for d in every["retried"]] == ["T-0001", "T-0003"]
    assert {d["agent"] for d in every["retried"]} == {"owl"} and every["failed"] == []
    none = zoo_cli("retry", "--all", "--home", str(home.root))
    assert (none.code, none.out) == (0, "no escalated tasks\n")
    both = zoo_cli("retry", "T-0001", "--all", "--home", str(home.root))
    assert (both.code, both.err) == (
        2, "zoo: name the escalated tasks (ID...) or give --all (one of the two)\n")  # fmt: skip


KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwx"


def _boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(f"the provider said\nkey {KEY} is bad")


def test_an_unexpected_error_is_one_redacted_line(
    home: Home, zoo_cli: ZooCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.engine import reports

    monkeypatch.setattr(reports, "status", _boom)
    r = zoo_cli("status", "--home", str(home.root))
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "zoo: internal error: RuntimeError: the provider said\\nkey [redacted] is bad "
        "(run with --debug for the traceback)\n"
    )
    debug = zoo_cli("--debug", "status", "--home", str(home.root))
    assert debug.code == 1 and debug.err.startswith("Traceback (most recent call last):\n")
    assert "RuntimeError: the provider said\nkey [redacted] is bad\n" in debug.err
    assert KEY not in debug.err and "sk-ant-api03" not in debug.err


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_in_a_real_process(home: Home, debug: bool) -> None:
    code = (
        "import sys\nfrom zoo.cli import app as cli\nfrom zoo.engine import reports\n"
        "said = sys.argv[1]\n"
        "def boom(*a, **k):\n    raise RuntimeError(said)\n"
        "reports.status = boom\n"
        "sys.argv = ['zoo', *sys.argv[2:]]\ncli.main()\n"
    )
    args = ["--debug"] if debug else []
    result = subprocess.run([sys.executable, "-c", code, f"key {KEY}", *args, "status",
                             "--home", str(home.root)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert KEY not in result.stderr
    if debug:
        assert result.stderr.startswith("Traceback (most recent call last):\n")
        assert result.stderr.endswith("RuntimeError: key [redacted]\n")
    else:
        assert result.stderr == (
            "zoo: internal error: RuntimeError: key [redacted] "
            "(run with --debug for the traceback)\n"
        )


def test_a_mistyped_command_gets_one_suggestion(zoo_cli: ZooCli) -> None:
    r = zoo_cli("stauts")
    assert (r.code, r.err) == (2, "zoo: No such command 'stauts'. Did you mean 'status'? "
                                  "(see 'zoo --help')\n")  # fmt: skip


def test_bare_zoo_prints_the_help_on_stdout_and_exits_2(zoo_cli: ZooCli) -> None:
    r = zoo_cli()
    assert (r.code, r.err) == (2, "")
    assert r.out.startswith("Usage: zoo [OPTIONS] COMMAND [ARGS]...\n") and "dispatch" in r.out
    real = subprocess.run([sys.executable, "-m", "zoo"], capture_output=True, text=True)
    assert (real.returncode, real.stdout, real.stderr) == (2, r.out, "")


def test_memory_limit_and_agent_are_checked(home: Home, zoo_cli: ZooCli) -> None:
    from zoo.state.memory import Entry, Memory

    h = ["--home", str(home.root)]
    for step, agent in enumerate(("beaver", "owl", "lark"), start=1):
        Memory(home).remember(Entry(tasks.utc_now(), agent, "T-0001", f"note {step}", step),
                              shared=True)  # fmt: skip
    assert len(json.loads(zoo_cli("memory", "--json", *h).out)) == 3
    newest = json.loads(zoo_cli("memory", "-n", "1", "--json", *h).out)
    assert [e["agent"] for e in newest] == ["lark"]
    assert json.loads(zoo_cli("memory", "-n", "0", "--json", *h).out) == []
    assert zoo_cli("memory", "-n", "0", *h).out == ""
    negative = zoo_cli("memory", "-n", "-1", *h)
    assert (negative.code, negative.err) == (
        2, "zoo: Invalid value for '--limit' / '-n': -1 is not in the range x>=0. "
        "(see 'zoo memory --help')\n")  # fmt: skip
    nobody = zoo_cli("memory", "--agent", "nobody", *h)
    assert (nobody.code, nobody.err) == (1, "zoo: no agent 'nobody' in zoo.yaml\n")
    near = zoo_cli("memory", "--agent", "owll", *h)
    assert (near.code, near.err) == (1, "zoo: no agent 'owll' in zoo.yaml (did you mean 'owl'?)\n")
    assert zoo_cli("memory", "--agent", "owl", *h).code == 0


def test_counts_are_singular_when_one(home: Home, zoo_cli: ZooCli) -> None:
    h = ["--home", str(home.root)]
    zoo_cli("dispatch", "Write the release notes", "--to", "lark", *h)
    assert zoo_cli("log", "--verify", *h).out == "journal ok: 2 events, hash chain intact\n"
    r = zoo_cli("run", "--once", *h)
    assert r.out.splitlines()[-1].startswith("1 step, 0 routed, 1 done, 0 escalated in ")
    (home.root / "zoo.yaml").write_text(
        "version: 1\nname: one\nlead: roo\nagents: {roo: {role: Lead}}\n", encoding="utf-8"
    )
    assert zoo_cli("check", *h).out.endswith("zoo.yaml is valid: 1 agent, 0 schedules\n")


def test_global_options_last_one_invocation(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--home` and `--debug` live in click's context, not in a module global: the next
    command in the same process (a test, the page, an MCP server) starts from nothing."""
    from zoo.cli import app as cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli._invoke(["--home", str(home.root), "status"]) == 0
    capsys.readouterr()
    assert cli._invoke(["status"]) == 1
    assert capsys.readouterr().err == (
        f"zoo: no zoo home: no zoo.yaml in {elsewhere.resolve()} or any folder above it "
        "(run 'zoo init DIR', pass --home DIR or set ZOO_HOME)\n"
    )
    assert cli._invoke(["--debug", "--home", str(home.root), "show", "T-0042"]) == 1
    assert capsys.readouterr().err.startswith("Traceback (most recent call last):")
    assert cli._invoke(["--home", str(home.root), "show", "T-0042"]) == 1
    assert capsys.readouterr().err == "zoo: no task T-0042 in workspaces/\n"


def test_each_json_document_is_the_engine_results_own(home: Home, zoo_cli: ZooCli) -> None:
    """The CLI only renders: what `--json` prints is the document of the value the engine
    returns, so the page and `zoo mcp serve` get the same by calling the same function."""
    from zoo.engine.check import check
    from zoo.engine.cron import crontab, executable
    from zoo.engine.logview import verify_journal
    from zoo.engine.recall import recall
    from zoo.engine.router import dispatch, plan
    from zoo.engine.zoo import Zoo

    h = ["--home", str(home.root)]
    first = json.loads(zoo_cli("check", "--json", *h).out)  # creates the workspace folders
    assert first["ok"] and "workspaces/dev" in first["created"]
    assert json.loads(zoo_cli("check", "--json", *h).out) == check(home).document()
    cli_plan = json.loads(zoo_cli("plan", "Fix the login bug", "--json", *h).out)
    assert cli_plan == plan(Zoo.open(home), "Fix the login bug").document()
    assert cli_plan["chain"] == ["beaver", "owl", "lark"] and cli_plan["cycle"] is False
    done = dispatch(Zoo.open(home), "Fix the logout bug")
    task, route = done  # still unpacks as (task, route)
    assert done.document() == {"id": "T-0001", "agent": "beaver", "workspace": "dev",
                               "path": str(task.path), "route": route.as_meta()}  # fmt: skip
    Memory(home).remember(Entry("2026-11-24T10:00:00Z", "owl", "T-0001", "CI runs pytest."),
                          shared=True)  # fmt: skip
    found = recall(home, "pytest")
    assert json.loads(zoo_cli("memory", "pytest", "--json", *h).out) == found.document()
    assert (found.where, [e.agent for e in found.entries]) == ("MEMORY.md", ["owl"])
    verified = verify_journal(home)
    assert json.loads(zoo_cli("log", "--verify", "--json", *h).out) == verified.document()
    assert (verified.ok, verified.lines, verified.problem) == (True, 2, None)
    line = crontab(home, 5, executable(sys.argv[0]))
    assert zoo_cli("cron", "--every", "5", *h).out.splitlines() == line.lines
    assert line.document()["entry"] == line.lines[-1] and line.keys == []


def test_the_cron_line_names_the_keys_real_models_read(tmp_path: Path) -> None:
    from tests.conftest import make_home
    from zoo.engine.cron import crontab
    from zoo.errors import UsageError

    home = make_home(tmp_path / "zoo", """\
        version: 1
        name: keys
        lead: roo
        models:
          fast: {provider: anthropic, model: claude-haiku-4-5}
          own: {provider: openai, model: gpt-4o-mini, api_key_env: TEAM_OPENAI_KEY}
        defaults: {model: fast}
        agents:
          roo: {role: Lead}
          beaver: {role: Developer, model: own}
        """)  # fmt: skip
    line = crontab(home, 1, "/opt/my zoo/bin/zoo")
    assert line.lines == [
        "# zoo 'keys': do the work that is due, every 1 min (a run still busy makes the next "
        "one exit at once)",
        "# real models read ANTHROPIC_API_KEY, TEAM_OPENAI_KEY from cron's environment; "
        "keep keys out of here",
        f"* * * * * '/opt/my zoo/bin/zoo' --home {home.root} run --once "
        f">> {home.state / 'cron.log'} 2>&1",
    ]
    with pytest.raises(UsageError, match=r"^every 60 minutes: expected 1 to 59"):
        crontab(home, 60, "zoo")
