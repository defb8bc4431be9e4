"""The jail of `run` commands: the kernel (Landlock), not the command's good manners.

Real commands in real processes, allowed by the roster, try to reach what the README
says no agent reaches: a sentinel folder next to the home, the home's own files, other
workspaces, the person's home folder, /tmp, the network, the runner itself. Where the
kernel has no Landlock these tests are skipped; CI's kernel has it.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SECRET, ZooCli, make_home, open_zoo
from tests.waiting import wait_for
from zoo.errors import ToolRefused
from zoo.models.base import ToolCall
from zoo.models.scripted import call
from zoo.policy import commands, sandbox
from zoo.policy.tools import ToolContext, execute, perform
from zoo.state.home import Home

PY = sys.executable
REFUSALS = ("Permission denied", "PermissionError", "Invalid cross-device link")
"""How the kernel says no: EACCES, or EXDEV for a link or rename across folders."""
ABI = sandbox.abi()[0]
landlock = pytest.mark.skipif(
    ABI < sandbox.MIN_ABI, reason=f"needs Landlock ABI {sandbox.MIN_ABI}+ (this kernel: {ABI})"
)
ROSTER = f"""\
version: 1
name: jail
lead: roo
defaults: {{timeout_s: 10}}
agents:
  roo: {{role: Lead}}
  beaver:
    role: Developer
    workspace: dev
    tools: [run]
    can_read: [qa]
    commands: [ls, cat, head, touch, cp, mv, {shlex.quote(PY)} -c]
  owl: {{role: QA, workspace: qa}}
  ops: {{role: Ops, workspace: ops}}
"""


@pytest.fixture
def jailed(tmp_path: Path) -> Home:
    """Beaver's home: its dev workspace, qa it may read, ops it may not; secrets around."""
    home = _home(tmp_path, ROSTER)
    (home.workspace("dev") / "notes.md").write_text("dev notes", encoding="utf-8")
    (home.workspace("dev") / "T-0001-fix.md").write_text("---\nid: T-0001\n---\n", encoding="utf-8")
    (home.workspace("qa") / "report.md").write_text("qa report", encoding="utf-8")
    (home.workspace("ops") / "plan.md").write_text(SECRET, encoding="utf-8")
    (home.memory_path).write_text(SECRET, encoding="utf-8")
    home.ensure_state()
    (home.state / "events.jsonl").write_text(SECRET, encoding="utf-8")
    return home


def _home(tmp_path: Path, roster: str) -> Home:
    home = make_home(tmp_path / "zoo", roster)
    for ws in ("dev", "qa", "ops"):
        home.workspace(ws).mkdir(parents=True, exist_ok=True)
    return home


def _ctx(home: Home) -> ToolContext:
    zoo = open_zoo(home)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    return ToolContext(home, zoo.roster, "beaver", "T-0001", zoo.memory, env=env)


def _run(ctx: ToolContext, *argv: str) -> tuple[int, str]:
    """Beaver's allowed command, run as the model asked: (exit status, output)."""
    done = execute(ctx, ToolCall("c1", "run", {"command": list(argv)}))
    return done.fields["exit"], done.text.partition("\n")[2]


def _py(ctx: ToolContext, script: str) -> tuple[int, str]:
    return _run(ctx, PY, "-c", script)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): b"" if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if not p.is_relative_to(root / ".zoo" / "tmp")
    }


@landlock
def test_an_allowed_command_reads_nothing_outside_its_workspaces(
    jailed: Home, sentinel: Path
) -> None:
    ctx = _ctx(jailed)
    root = jailed.root
    assert _run(ctx, "cat", "notes.md") == (0, "dev notes")  # its own workspace
    assert _run(ctx, "cat", "../qa/report.md") == (0, "qa report")  # one it may read
    assert _run(ctx, "ls")[1].split() == ["T-0001-fix.md", "notes.md"]
    outside = {
        "ls": [sentinel, root, root / ".zoo", root / "agents", root / "workspaces",
               root / "workspaces" / "ops", Path.home(), Path("/tmp"), Path("/root")],
        "cat": [sentinel / "secret.txt", root / "zoo.yaml", root / "MEMORY.md",
                root / ".zoo" / "events.jsonl", root / "agents" / "beaver.md",
                root / "workspaces" / "ops" / "plan.md", Path("../ops/plan.md")],
    }  # fmt: skip
    for program, paths in outside.items():
        for path in paths:
            code, out = _run(ctx, program, str(path))
            assert code != 0 and "Permission denied" in out, (program, path, out)
            assert SECRET not in out


@landlock
def test_an_allowed_command_writes_only_its_own_workspace(jailed: Home, sentinel: Path) -> None:
    ctx = _ctx(jailed)
    before = _tree(jailed.root)
    sentinel_before = _tree(sentinel)
    attempts = [
        ["touch", str(sentinel / "new.txt")], ["touch", "../../new.md"],
        ["touch", "../qa/new.md"], ["cp", "notes.md", "../qa/"], ["cp", "notes.md", "../ops/"],
        ["mv", "T-0001-fix.md", "../qa/"], ["touch", "../../.zoo/approvals.json"],
        ["cp", "notes.md", "../../MEMORY.md"], ["touch", f"/tmp/zoo-escape-{os.getpid()}"],
        [PY, "-c", f"open({str(sentinel / 'secret.txt')!r}, 'w')"],
        [PY, "-c", "import os; os.truncate('../../zoo.yaml', 0)"],
        [PY, "-c", "import os; os.rename('notes.md', '../ops/notes.md')"],
        [PY, "-c", "import os; os.link('../qa/report.md', 'hard')"],
        [PY, "-c", "import os; os.symlink('x', '../qa/link')"],
        [PY, "-c", "import os, stat; os.mknod('disk', stat.S_IFBLK | 0o600, os.makedev(8, 0))"],
    ]  # fmt: skip
    for argv in attempts:
        code, out = _run(ctx, *argv)
        assert code != 0 and any(refusal in out for refusal in REFUSALS), (argv, out)
    assert _tree(sentinel) == sentinel_before
    assert _tree(jailed.root) == before
    assert not Path(f"/tmp/zoo-escape-{os.getpid()}").exists()
    assert _run(ctx, "touch", "made.md") == (0, "")
    assert _py(ctx, "import os; os.makedirs('a/b'); os.rename('notes.md', 'a/b/n.md')") == (0, "")
    assert (jailed.workspace("dev") / "a" / "b" / "n.md").read_text(encoding="utf-8") == "dev notes"


@landlock
def test_what_a_command_starts_is_confined_too(jailed: Home, sentinel: Path) -> None:
    ctx = _ctx(jailed)
    script = (
        "import os, subprocess, sys\n"
        f"subprocess.run(['cat', {str(sentinel / 'secret.txt')!r}])\n"
        f"subprocess.run(['touch', {str(sentinel / 'child.txt')!r}])\n"
        "if os.fork() == 0:\n"  # a grandchild, double-forked away from its parent
        "    if os.fork() == 0:\n"
        f"        subprocess.run(['cat', {str(jailed.root / 'zoo.yaml')!r}])\n"
        "    os._exit(0)\n"
        "os.wait(); time = __import__('time'); time.sleep(0.3)\n"
    )
    code, out = _py(ctx, script)
    assert out.count("Permission denied") == 3, out
    assert SECRET not in out and not (sentinel / "child.txt").exists()


@landlock
def test_the_runner_and_other_processes_are_out_of_reach(jailed: Home) -> None:
    """The runner's environment holds the API keys; its /proc folder is not granted."""
    ctx = _ctx(jailed)
    for name in ("environ", "cmdline", "maps"):
        code, out = _run(ctx, "cat", f"/proc/{os.getpid()}/{name}")
        assert (code, out) == (1, f"cat: /proc/{os.getpid()}/{name}: Permission denied")
    code, out = _run(ctx, "head", "-c", "1", "/proc/kallsyms")  # the kernel's, not granted
    assert (code, out) == (1, "head: cannot open '/proc/kallsyms' for reading: Permission denied")
    code, out = _run(ctx, "cat", "/proc/self/environ")  # not even its own
    assert (code, out) == (1, "cat: /proc/self/environ: Permission denied")
    assert _py(ctx, "print(open('/proc/meminfo').read().split()[0])") == (0, "MemTotal:")
    assert _py(ctx, "open('/dev/stdout', 'w').write('out')") == (0, "out")
    if ABI >= 6:  # signals are scoped to the command's own processes
        code, out = _py(ctx, f"import os; os.kill({os.getpid()}, 0)")
        assert code == 1 and out.endswith("PermissionError: [Errno 1] Operation not permitted")


@pytest.mark.skipif(ABI < 4, reason=f"Landlock confines TCP from ABI 4 (this kernel: {ABI})")
def test_the_network_is_closed_unless_the_roster_opens_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        connect = f"import socket; socket.create_connection(('127.0.0.1', {port})); print('in')"
        closed = _ctx(_home(tmp_path / "closed", ROSTER))
        code, out = _py(closed, connect)
        assert code == 1 and "PermissionError: [Errno 13] Permission denied" in out
        code, out = _py(closed, "import socket; socket.create_server(('127.0.0.1', 0))")
        assert code == 1 and "PermissionError: [Errno 13] Permission denied" in out
        opened = _ctx(_home(tmp_path / "open", ROSTER + "sandbox: {network: true}\n"))
        assert _py(opened, connect) == (0, "in")


@landlock
def test_a_command_has_a_private_temporary_folder_that_goes_away(jailed: Home) -> None:
    ctx = _ctx(jailed)
    script = (
        "import os, tempfile\n"
        "assert os.environ['HOME'] == os.environ['TMPDIR'] == tempfile.gettempdir()\n"
        "with tempfile.NamedTemporaryFile(delete=False) as f: f.write(b'x')\n"
        "with tempfile.NamedTemporaryFile(delete=False) as g: g.write(b'y')\n"
        "os.rename(g.name, 'kept.txt')\n"  # made in TMPDIR, moved into the workspace
        "print(f.name)"
    )
    code, out = _py(ctx, script)
    scratch = jailed.state / "tmp"
    assert code == 0 and Path(out).parent.parent == scratch, out
    assert Path(out).parent.name.startswith("run-") and list(scratch.iterdir()) == []
    assert (jailed.workspace("dev") / "kept.txt").read_text(encoding="utf-8") == "y"


@landlock
def test_timeout_and_output_cap_hold_in_the_jail(jailed: Home) -> None:
    jail = commands.Jail(jailed.root, write=(jailed.workspace("dev"),))
    cwd = jailed.workspace("dev")
    script = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "open('child', 'w').write(str(child.pid)); print('start', flush=True); time.sleep(60)"
    )
    slow = commands.run([PY, "-c", script], cwd, timeout=1.0, cap=1000, env={}, jail=jail)
    assert slow.timed_out and slow.seconds < 10
    assert slow.text().splitlines() == ["killed: still running at the timeout (1.0 s)", "start"]
    _wait_gone(int((cwd / "child").read_text(encoding="utf-8")))
    loud = commands.run([PY, "-c", "print('y' * 100000)"], cwd, timeout=10, cap=1000, env={},
                        jail=jail)  # fmt: skip
    assert (loud.code, len(loud.output), loud.dropped) == (0, 1000, 100001 - 1000)


def _wait_gone(pid: int) -> None:
    """Until `pid` is dead (gone, or a zombie waiting for a parent that never reaps)."""

    def dead() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")

    wait_for(dead, 10, f"process {pid} outlived its command's timeout", every=0.01)


@landlock
def test_an_approved_command_is_confined_the_same(jailed: Home, sentinel: Path) -> None:
    """`zoo approve` runs the action through `perform`: a person allows it to run, not
    to reach further; a program that lies where the command may not go cannot start."""
    ctx = _ctx(jailed)
    done = perform(ctx, "run", {"command": ["head", "-c", "9", str(sentinel / "secret.txt")]})
    assert done.fields["exit"] == 1 and "Permission denied" in done.text
    tool = jailed.workspace("ops") / "tool.sh"
    tool.write_text("#!/bin/sh\necho ran\n", encoding="utf-8")
    tool.chmod(0o755)
    with pytest.raises(ToolRefused) as refused:
        perform(ctx, "run", {"command": [str(tool)]})
    assert str(refused.value) == f"cannot start '{tool}': Permission denied"


@landlock
def test_a_program_on_path_outside_the_system_folders_still_starts(
    jailed: Home, tmp_path: Path, sentinel: Path
) -> None:
    """The one file PATH finds is granted (read and execute), nothing beside it."""
    bin_dir = tmp_path / "mybin"
    bin_dir.mkdir()
    (bin_dir / "hello").write_text("#!/bin/sh\necho hello\n", encoding="utf-8")
    (bin_dir / "hello").chmod(0o755)
    (bin_dir / "other").write_text(SECRET, encoding="utf-8")
    ctx = _ctx(jailed)
    ctx.env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    done = perform(ctx, "run", {"command": ["hello"]})
    assert (done.fields["exit"], done.text) == (0, "exit 0\nhello")
    done = perform(ctx, "run", {"command": ["cat", str(bin_dir / "other")]})
    assert done.fields["exit"] == 1 and SECRET not in done.text


def test_where_the_kernel_cannot_confine_a_command_is_refused_unless_the_roster_says(
    tmp_path: Path, sentinel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's answer is the one stand-in here: this kernel has Landlock."""
    why = "this kernel has no Landlock, or it is not enabled at boot"
    monkeypatch.setattr(sandbox, "abi", lambda: (0, why))
    cat = call("run", command=["cat", str(sentinel / "secret.txt")])
    required = _ctx(_home(tmp_path / "required", ROSTER))
    with pytest.raises(ToolRefused) as refused:
        execute(required, cat)
    assert str(refused.value) == (
        f"commands cannot be confined here: {why}; to run them anyway, "
        "set 'sandbox: {confine: best-effort}' in zoo.yaml"
    )
    best = _ctx(_home(tmp_path / "best", ROSTER + "sandbox: {confine: best-effort}\n"))
    done = execute(best, cat)
    assert done.text == f"exit 0\n{SECRET}" and done.fields["sandbox"] == f"unconfined: {why}"
    assert best.outcome.notes[-1].startswith(f"ran `cat {sentinel}/secret.txt` in dev/ (unc")
    monkeypatch.setattr(sandbox, "abi", lambda: (2, ""))
    with pytest.raises(ToolRefused) as refused:
        execute(required, cat)
    assert str(refused.value).startswith(
        "commands cannot be confined here: Landlock ABI 2 cannot stop a command truncating "
        "files outside, ABI 3 (Linux 6.2) can; "
    )
    unlisted = call("run", command=["make", "deploy"])  # would wait for a person's approval
    with pytest.raises(ToolRefused):  # refused now: an approval could never let it run
        execute(required, unlisted)


def test_sandbox_off_runs_commands_unconfined_and_says_so(tmp_path: Path, sentinel: Path) -> None:
    ctx = _ctx(_home(tmp_path, ROSTER + "sandbox: {confine: never}\n"))
    done = execute(ctx, call("run", command=["cat", str(sentinel / "secret.txt")]))
    assert done.text == f"exit 0\n{SECRET}"
    assert done.fields["sandbox"] == "unconfined: zoo.yaml says sandbox: {confine: never}"


def test_a_misspelt_sandbox_setting_is_an_error(tmp_path: Path, zoo_cli: ZooCli) -> None:
    home = make_home(tmp_path / "zoo", ROSTER + "sandbox: {confine: best_effort}\n")
    r = zoo_cli("--home", str(home.root), "check")
    line = ROSTER.count("\n") + 1
    assert (r.code, r.err.strip().splitlines()[0]) == (
        1,
        f"zoo: {home.roster_path}:{line}: sandbox.confine: expected 'required', 'best-effort' "
        "or 'never', got 'best_effort' (did you mean 'best-effort'?)",
    )


def test_a_system_folder_that_holds_the_home_is_granted_around_it(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    home = opt / "teams" / "zoo"
    for folder in (opt / "app", opt / "teams" / "other", home / "workspaces" / "dev"):
        folder.mkdir(parents=True)
    (opt / "tool").write_text("x", encoding="utf-8")
    (opt / "out").symlink_to("/")
    assert sorted(sandbox._without(str(opt), str(home))) == sorted(
        [str(opt / "app"), str(opt / "tool"), str(opt / "teams" / "other")]
    )
    assert sandbox._without(str(home), str(home)) == []
    assert sandbox._without(str(home / ".venv"), str(home)) == [str(home / ".venv")]
    assert sandbox._without(str(home / "workspaces" / "dev" / ".venv"), str(home)) == []
    assert sandbox._without(str(tmp_path / "elsewhere"), str(home)) == [str(tmp_path / "elsewhere")]
    granted = [path for path, _kind in sandbox.rules(str(home))]
    assert not [p for p in granted if str(home).startswith(p.rstrip("/") + "/") or p == "/"]


@landlock
def test_a_command_that_cannot_have_its_temporary_folder_is_refused(jailed: Home) -> None:
    (jailed.state / "tmp").write_text("in the way", encoding="utf-8")
    with pytest.raises(ToolRefused) as refused:
        execute(_ctx(jailed), call("run", command=["ls"]))
    assert str(refused.value) == (
        f"cannot make the command's temporary folder in {jailed.state / 'tmp'}: File exists"
    )


def test_the_launcher_never_starts_a_program_it_could_not_confine(tmp_path: Path) -> None:
    """A descriptor that is not a ruleset: the kernel refuses, the program never runs."""
    marker = tmp_path / "ran"
    not_a_ruleset, other = os.pipe()
    report, report_w = os.pipe()
    argv = sandbox.launcher(not_a_ruleset, report_w, PY, [PY, "-c", f"open({str(marker)!r}, 'w')"])
    done = subprocess.run(argv, pass_fds=(not_a_ruleset, report_w), capture_output=True)
    for fd in (not_a_ruleset, other, report_w):
        os.close(fd)
    with os.fdopen(report, "rb") as pipe:
        said = pipe.read().decode()
    bad_fd = os.strerror(errno.EBADFD)
    assert (done.returncode, said) == (127, f"cannot confine the command: {bad_fd}")
    assert not marker.exists() and done.stdout == done.stderr == b""
