"""Commands an agent runs with the `run` tool: no shell, a timeout, an output cap.

A command is an argv list started directly (never through a shell, so nothing in it is
expanded or chained), in the agent's workspace folder, with stdin closed, in a session
of its own so that a timeout kills everything it started. Its environment is Zoo's
minus anything that looks like a secret: an agent's command never sees an API key.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ToolRefused
from zoo.secrets import SECRET_NAME

MAX_ARGS = 256
MAX_ARGV_CHARS = 32 * 1024


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


def run(
    argv: Sequence[str], cwd: Path, *, timeout: float, cap: int, env: Mapping[str, str]
) -> Finished:
    """Run `argv` in `cwd`; at most `timeout` seconds, the first `cap` bytes of output."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
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
