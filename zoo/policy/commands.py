"""Commands an agent runs with the `run` tool: no shell, a timeout, an output cap, a jail.

A command is an argv list started directly (never through a shell, so nothing in it is
expanded or chained), in the agent's workspace folder, with stdin closed, in a session
of its own so that a timeout kills everything it started. Its environment is Zoo's
minus anything that looks like a secret: an agent's command never sees an API key.

It is confined by the kernel (sandbox.py, Linux Landlock), it and everything it starts:
it reads and runs what the system holds, writes only its agent's own workspace (when
the agent may write it) and a private temporary folder that is its HOME and TMPDIR and
is removed when it ends, and reads the other workspaces its agent may read or write.
Writing another workspace is write_file's, which checks every path and never touches a
task file. Nothing else of the home, the person's home folder or /tmp is reachable.
Where the kernel cannot confine, a command runs only if zoo.yaml says so (`jail_of`).
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ToolRefused
from zoo.policy import sandbox
from zoo.secrets import SECRET_NAME
from zoo.state import files

if TYPE_CHECKING:
    from zoo.roster import Roster
    from zoo.state.home import Home

MAX_ARGS = 256
MAX_ARGV_CHARS = 32 * 1024
SCRATCH_DAYS = 1
"""A private temporary folder older than this was left by a killed runner: removed."""


@dataclass(frozen=True)
class Jail:
    """What a confined command may reach besides the system (see sandbox.py)."""

    home: Path
    read: tuple[Path, ...] = ()
    """Workspaces it may read: those its agent may read or write, but its own."""
    write: tuple[Path, ...] = ()
    """Its agent's own workspace, when the agent may write it (else that is in `read`)."""
    network: bool = False
    """TCP connect and bind allowed (zoo.yaml `sandbox: {network: true}`)."""


@dataclass(frozen=True)
class Finished:
    """What a command did."""

    code: int
    """Its exit status; negative when killed by a signal."""
    output: str
    """stdout and stderr, interleaved, up to the cap."""
    dropped: int
    """Bytes of output beyond the cap, not kept."""
    timed_out: bool
    seconds: float

    def text(self) -> str:
        """The result as the model (and the task file) sees it."""
        head = f"exit {self.code}"
        if self.timed_out:
            head = f"killed: still running at the timeout ({self.seconds:.1f} s)"
        tail = f"\n[{self.dropped} more bytes of output not kept]" if self.dropped else ""
        return f"{head}\n{self.output}{tail}".rstrip("\n")


def argv_of(value: object) -> list[str]:
    """The model's `command` argument, checked: a non-empty list of strings."""
    if not isinstance(value, list) or not value:
        raise ToolRefused("argument 'command' must be a non-empty list of strings (argv)")
    if len(value) > MAX_ARGS:
        raise ToolRefused(f"a command may have at most {MAX_ARGS} arguments")
    if not all(isinstance(arg, str) for arg in value):
        raise ToolRefused("argument 'command' must be a list of strings (argv)")
    if not value[0].strip():
        raise ToolRefused("the command's first word (the program) must not be empty")
    if any("\x00" in arg for arg in value):
        raise ToolRefused("a command argument contains a NUL byte")
    if sum(len(arg) for arg in value) > MAX_ARGV_CHARS:
        raise ToolRefused(f"the command is longer than {MAX_ARGV_CHARS} characters")
    return list(value)


def allowed(argv: Sequence[str], commands: Sequence[str]) -> bool:
    """True if `argv` starts with the words of one of `commands` (`pytest`, `git status`)."""
    for command in commands:
        words = shlex.split(command)
        if words and list(argv[: len(words)]) == words:
            return True
    return False


def shown(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def child_env(environ: Mapping[str, str], secrets: Sequence[str] = ()) -> dict[str, str]:
    """`environ` without secrets: names that look like one, and the roster's key variables."""
    return {
        name: value
        for name, value in environ.items()
        if not SECRET_NAME.search(name) and name not in secrets
    }


def refuse_unconfinable(roster: Roster) -> None:
    """Raise `ToolRefused` when zoo.yaml requires confinement (the default) and the kernel
    cannot give it (checked before a command may wait for approval, and before it runs)."""
    if roster.sandbox.confine != "required":
        return
    version, why = sandbox.abi()
    if version < sandbox.MIN_ABI:
        why = why or (
            f"Landlock ABI {version} cannot stop a command truncating files outside, "
            f"ABI {sandbox.MIN_ABI} (Linux 6.2) can"
        )
        raise ToolRefused(
            f"commands cannot be confined here: {why}; to run them anyway, "
            "set 'sandbox: {confine: best-effort}' in zoo.yaml"
        )


def jail_of(home: Home, roster: Roster, agent: str) -> tuple[Jail | None, str | None]:
    """How `agent`'s commands run: the jail (None: unconfined) and a warning, if any.

    Raises `ToolRefused` when zoo.yaml requires confinement (the default) and the kernel
    cannot give it.
    """
    settings = roster.sandbox
    if settings.confine == "never":
        return None, "unconfined: zoo.yaml says sandbox: {confine: never}"
    refuse_unconfinable(roster)
    version, why = sandbox.abi()
    if version == 0:
        return None, f"unconfined: {why}"
    own = roster.workspace_of(agent)
    writable = own in roster.writable(agent)
    read = [] if writable else [files.workspace_folder(home.root, own)]
    for ws in dict.fromkeys([*roster.readable(agent), *roster.writable(agent)]):
        if ws != own:
            try:
                read.append(files.workspace_folder(home.root, ws))
            except ToolRefused:  # a workspace behind a link: not reachable at all
                continue
    write = (files.workspace_folder(home.root, own),) if writable else ()
    jail = Jail(home.root, tuple(read), write, network=settings.network)
    if version >= sandbox.MIN_ABI:
        return jail, None
    return jail, (f"partly confined: Landlock ABI {version} cannot stop a command truncating "
                  f"files outside, ABI {sandbox.MIN_ABI} (Linux 6.2) can")  # fmt: skip


def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout: float,
    cap: int,
    env: Mapping[str, str],
    jail: Jail | None = None,
) -> Finished:
    """Run `argv` in `cwd`; at most `timeout` seconds, the first `cap` bytes of output.

    In `jail` when given (see `jail_of`); None runs it unconfined.
    """
    program = _program(argv[0], cwd, env)
    if jail is None:
        return _watch(list(argv), program, cwd, dict(env), timeout, cap)
    scratch = _scratch(jail.home)
    try:
        paths = sandbox.rules(
            str(jail.home), read=map(str, jail.read), write=[*map(str, jail.write), scratch],
            program=program, network=jail.network,
        )  # fmt: skip
        try:
            rules = sandbox.ruleset(paths, network=jail.network)
        except OSError as e:  # landlockpy's LandlockError is one
            raise ToolRefused(f"cannot confine the command: {e.strerror or e}") from None
        private = {"HOME": scratch, "TMPDIR": scratch, "TMP": scratch, "TEMP": scratch}
        env = {k: v for k, v in env.items() if not k.startswith("XDG_")} | private
        try:
            return _launch(argv, program, rules, cwd, env, timeout, cap)
        finally:
            os.close(rules)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _launch(
    argv: Sequence[str],
    program: str,
    rules: int,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    cap: int,
) -> Finished:
    """Run `argv` through the launcher, which enforces the ruleset `rules` on itself."""
    r, w = os.pipe()  # the launcher's report: empty, and closed by exec, when all went well
    with os.fdopen(r, "rb") as report, os.fdopen(w, "wb") as writer:
        launch = sandbox.launcher(rules, w, program, argv)
        done = _watch(launch, sys.executable, cwd, env, timeout, cap, (rules, w))
        writer.close()
        failed = report.read(4096).decode("utf-8", errors="replace")
    if failed:
        raise ToolRefused(failed)
    return done


def _program(name: str, cwd: Path, env: Mapping[str, str]) -> str:
    """The file `name` starts: looked up on the command's PATH as exec does, from `cwd`."""
    folders = [""] if "/" in name else env.get("PATH", os.defpath).split(os.pathsep)
    seen = False
    for folder in folders:
        path = os.path.join(cwd, folder, name)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path
            seen = True
    raise ToolRefused(f"command not {'executable' if seen else 'found'}: '{name}'")


def _scratch(home: Path) -> str:
    """A new private folder, `.zoo/tmp/run-*`, for one command's temporary files."""
    root = home / ".zoo" / "tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        stale = time.time() - SCRATCH_DAYS * 86400
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < stale:
                    shutil.rmtree(entry.path, ignore_errors=True)
        return tempfile.mkdtemp(prefix="run-", dir=root)
    except OSError as e:
        why = f"cannot make the command's temporary folder in {root}: {e.strerror}"
        raise ToolRefused(why) from None


def _watch(
    argv: list[str],
    program: str,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    cap: int,
    pass_fds: tuple[int, ...] = (),
) -> Finished:
    """Start `argv` (the file `program`) and collect its output until it ends or times out."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, executable=program, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            pass_fds=pass_fds,
        )  # fmt: skip
    except FileNotFoundError:
        raise ToolRefused(f"command not found: '{argv[0]}'") from None
    except PermissionError:
        raise ToolRefused(f"command not executable: '{argv[0]}'") from None
    assert proc.stdout is not None
    kept, dropped, timed_out = bytearray(), 0, False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = started + timeout - time.monotonic()
            if left <= 0 or not sel.select(left):
                timed_out = True
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            room = max(0, cap - len(kept))
            kept += chunk[:room]
            dropped += len(chunk) - min(room, len(chunk))
    if not timed_out:
        try:
            proc.wait(timeout=max(0.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill(proc)  # also whatever it left running in its session
    proc.stdout.close()
    code = proc.wait()
    output = bytes(kept).decode("utf-8", errors="replace")
    return Finished(code, output, dropped, timed_out, time.monotonic() - started)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's whole session (it is its process group's leader)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
