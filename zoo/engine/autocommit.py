"""Autocommit: what Zoo wrote in the home goes into git after work, batched (DESIGN §6).

With `git: {autocommit: true}` the runner starts an `AutoCommitter` and calls `note()`
each time a task's step is saved. A background thread commits; the guarantees:

- Only what Zoo itself wrote is committed: its own files (task files
  `workspaces/<ws>/T-*.md`, a moved task's old copy removed with them, MEMORY.md,
  agents' memory `agents/<name>.memory.md`, the journal `.zoo/events.jsonl`) and the
  exact files agents wrote through tools (`write_file`, approved writes that `zoo
  approve` ran included), which `state.written.record()` keeps in `.zoo/written.jsonl` until
  a commit holds them. A person's own changes (zoo.yaml, playbooks, `.env`, anything
  else) are theirs to commit: never staged, never committed. A file an agent wrote is
  the agent's, even if a person edited it too.
- The loop never waits for git: `note()` only appends to a list under a lock, and
  every git command runs in the committer's daemon thread.
- At most one commit a second: a batch of notes is committed one `interval` after
  the thread first sees it, and a batch only opens after the previous commit began.
  `close()` commits what is pending at once, waits for it, and stops the thread.
- Only the home is committed, even when it is a folder of a bigger repository: git
  runs in the home with pathspecs inside it, and the commit names exactly the paths
  it commits (`git commit --only`), so whatever the user has staged stays staged and
  uncommitted.
- Never committed: temporary files of atomic writes (`*.zoo-tmp`) and `.zoo/`
  runtime files (locks, leases, pids, caches), with or without a `.gitignore`. The
  journal is committed unless the user's `.gitignore` ignores it; the `.gitignore` is
  respected for everything else. Nested repositories are skipped.
- Files the runner moves while git looks are no error: the changed paths come from
  `git status` and are staged with `git update-index --add --remove`, which takes a
  path that vanished meanwhile as removed (`git add` would stop at it).
- Messages hold only task ids, agent names and titles, on one line each, control
  characters taken out, passed through `redact`: `T-0042 beaver: Fix login bug`; a
  batch of several says `(+N more)` in its subject and lists every task in its body.
- Identity: the user's `user.name`/`user.email`; where git has none configured (a
  fresh CI machine), `zoo <zoo@localhost>`, as `zoo init` does.
- Hooks are honoured (a secret scanner in pre-commit keeps guarding agent output), but
  every git command is stopped after `timeout` seconds with SIGTERM to its process
  group, so git removes its own `index.lock` and a stuck hook cannot hang the exit.
- Failures never reach the runner and never stop the thread, whatever they are (a
  held `index.lock`, a failing hook, a bug): one line says what failed, the notes stay
  pending and are retried after 1, 2, 4 ... (at most 60) seconds; one line says so
  when commits work again. The files are the record: a failed commit loses nothing,
  the next one includes the work. What the final attempt in `close()` could not
  commit, `close()` returns as one line (the runner's run then fails).
- A home outside any git repository, or a machine without git, runs the same:
  `start()` returns None after one line saying why.

GitPython is imported inside `start()`, never when this module is imported.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.secrets import redact
from zoo.state import written
from zoo.state.fs import TMP_SUFFIX
from zoo.state.home import Home
from zoo.state.tasks import TASK_NAME

if TYPE_CHECKING:
    import git

INTERVAL_S = 1.0
"""A batch is committed this long after the thread sees its first note: one commit a second."""
TIMEOUT_S = 60.0
"""A git command (with its hooks) running longer than this is stopped."""
MAX_BACKOFF_S = 60.0
"""After failures, retries wait 1, 2, 4 ... intervals, never longer than this."""
_KILL_GRACE_S = 5.0
"""How long a stopped git gets to clean up after SIGTERM before SIGKILL."""
FALLBACK_IDENTITY = ("zoo", "zoo@localhost")
"""Author and committer when git has no user.name/user.email (as `zoo init` uses)."""
MIN_GIT = (2, 25)
"""`git commit --pathspec-from-file` came with git 2.25 (January 2020)."""
JOURNAL = ".zoo/events.jsonl"
"""The one file of `.zoo/` that is committed: the audit trail."""
MEMORY = "MEMORY.md"
OWNED_ROOTS = ("workspaces", "agents", MEMORY, JOURNAL)
"""Where Zoo's own files and the files agents write are: all `git status` looks at."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Noted:
    """One saved step: a line of the commit message."""

    task_id: str
    agent: str
    title: str

    def line(self) -> str:
        """`T-0042 beaver: Fix login bug`, on one line, secrets redacted; control characters
        (a NUL, a terminal escape) become spaces, what UTF-8 cannot hold becomes `?`."""
        text = f"{self.task_id} {self.agent}: {self.title}"
        text = text.encode("utf-8", errors="replace").decode("utf-8")
        return redact(" ".join(_CONTROL.sub(" ", text).split()))


def commit_message(notes: Sequence[Noted]) -> str:
    """The message for a batch, in the order noted; repeated lines appear once.

    One line: that line. Several: the first with `(+N more)` as the subject, then a
    blank line and every line (the first included) as the body.
    """
    lines = list(dict.fromkeys(note.line() for note in notes))
    if len(lines) == 1:
        return lines[0]
    return f"{lines[0]} (+{len(lines) - 1} more)\n\n" + "\n".join(lines)


def zoo_owns(path: str) -> bool:
    """True for a file Zoo itself writes (relative to the home): a task file
    `workspaces/<ws>/T-....md`, MEMORY.md, `agents/<name>.memory.md`, the journal."""
    if path in (MEMORY, JOURNAL):
        return True
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "workspaces":
        return TASK_NAME.match(parts[2]) is not None
    suffix = ".memory.md"
    return (
        len(parts) == 2
        and parts[0] == "agents"
        and parts[1].endswith(suffix)
        and len(parts[1]) > len(suffix)
    )


def committable(paths: Iterable[str], written: Collection[str] = ()) -> list[str]:
    """The paths (relative to the home) a commit may hold: Zoo's own files and the files
    agents wrote (`written`); never temporary or runtime files, nor nested repositories
    (`git status` shows them as `folder/`)."""
    return [
        path
        for path in paths
        if path
        and not path.endswith((TMP_SUFFIX, "/"))
        and (zoo_owns(path) or (path in written and not path.startswith(".zoo/")))
    ]


# --- the files agents wrote -----------------------------------------------------------


def _nul(paths: Iterable[str]) -> bytes:
    return b"".join(path.encode(errors="surrogateescape") + b"\0" for path in paths)


_NO_GIT = "autocommit: off: git is not available ({}); the zoo runs the same, without commits"


class GitFailed(Exception):
    """A git command exited non-zero or ran out of time; `str()` is one line for people."""


class _Git:
    """Runs git commands in one folder, each in its own process group, with a timeout."""

    def __init__(self, gitpython: git.Git, timeout: float) -> None:
        self.gitpython = gitpython
        self.timeout = timeout
        self.executable = str(gitpython.GIT_PYTHON_GIT_EXECUTABLE or "git")

    def run(self, *args: str, stdin: bytes | None = None, codes: Sequence[int] = (0,)) -> str:
        """stdout of `git ARGS`; raises GitFailed on another exit code or a timeout."""
        argv = [self.executable, *args]
        # The handle must stay referenced until git exits: GitPython's AutoInterrupt
        # terminates a still-running process when it is garbage collected.
        handle = self.gitpython.execute(
            argv,
            as_process=True,
            istream=subprocess.PIPE if stdin is not None else None,
            start_new_session=True,  # its own process group: stopped with its hooks
        )
        process = handle.proc
        if process is None:  # GitPython clears it only once the process is reaped
            raise GitFailed(f"git {args[0]} did not start")
        try:
            out, err = process.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise GitFailed(
                f"git {args[0]} took over {self.timeout:g} s and was stopped (a slow hook?)"
            ) from None
        if process.returncode not in codes:
            detail = _first_line(err.decode(errors="replace"))
            raise GitFailed(f"git {args[0]} failed (exit {process.returncode}): {detail}")
        return out.decode(errors="surrogateescape")  # paths round-trip through _nul


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (git then removes its lock files), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.communicate(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _first_line(stderr: str) -> str:
    """The line of git's stderr that says what went wrong (hints skipped)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("hint:")] or ["no message"]
    chosen = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[0])
    return redact(chosen[:300].rstrip("."))


class AutoCommitter:
    """Commits what Zoo wrote in a home in a background thread, at most once an interval.

    Made by `start()`. `note()` from any thread after a step is saved; `close()` once
    at the end. `commits` and `failures` count commits made and failed attempts.
    """

    def __init__(
        self,
        home: Home,
        git_: _Git,
        *,
        prefix: str = "",
        identity: Sequence[str] = (),
        on_line: Callable[[str], None] | None = None,
        interval: float = INTERVAL_S,
    ) -> None:
        self._home = home
        self._git = git_
        self._prefix = prefix
        """The home's folder in the repository (`zoo/`; empty at its top): `git status`
        paths start with it."""
        self._identity = list(identity)
        self._on_line = on_line
        self.interval = interval
        self.commits = 0
        """Commits made so far."""
        self.failures = 0
        """Failed commit attempts so far."""
        self._streak = 0
        """Failed attempts since the last success: the retry backoff, one line per streak."""
        self.unsaved: str | None = None
        """Set when the final attempt failed: one line saying what is not committed."""
        self._cond = threading.Condition()
        self._pending: list[Noted] = []
        self._due: float | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="zoo-autocommit", daemon=True)

    @classmethod
    def start(
        cls,
        home: Home,
        *,
        on_line: Callable[[str], None] | None = None,
        interval: float = INTERVAL_S,
        timeout: float = TIMEOUT_S,
    ) -> AutoCommitter | None:
        """A running committer for `home`; None, after one line saying why, when the
        home is not in a git repository or git is not available."""
        try:
            import git
        except ImportError as error:  # GitPython raises it when no git executable works
            _say(on_line, _NO_GIT.format(_first_line(str(error))))
            return None
        runner = _Git(git.Git(str(home.root)), timeout)
        try:
            version = runner.gitpython.version_info
            if version < MIN_GIT:
                _say(on_line, _NO_GIT.format(f"autocommit needs git {_dotted(MIN_GIT)} or newer, "
                                             f"this is {_dotted(version)}"))  # fmt: skip
                return None
            found = runner.run("rev-parse", "--show-toplevel", "--show-prefix").splitlines()
            identity = _identity_options(runner)
        except git.exc.GitCommandNotFound as error:  # the executable went away since import
            _say(on_line, _NO_GIT.format(f"cannot run {runner.executable!r}: {error.status}"))
            return None
        except (GitFailed, git.exc.GitError, OSError) as error:
            _say(on_line, _off_line(home, error))
            return None
        prefix = found[1] if len(found) > 1 else ""
        committer = cls(home, runner, prefix=prefix, identity=identity, on_line=on_line,
                        interval=interval)  # fmt: skip
        committer._thread.start()
        return committer

    def note(self, task_id: str, agent: str, title: str) -> None:
        """A step of `task_id` by `agent` is saved: commit it with the next batch.

        Cheap and thread-safe: no I/O. Ignored after `close()`.
        """
        with self._cond:
            if self._closing:
                return
            self._pending.append(Noted(task_id, agent, title))
            if len(self._pending) == 1:
                self._cond.notify()

    def close(self) -> str | None:
        """Commit whatever is pending now, wait for it, stop the thread; idempotent.

        Returns None when everything noted is committed, else one line saying what is
        not (`unsaved`). Every git command has a timeout, so this returns in bounded time.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        return self.unsaved

    # --- the thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            batch, final = taken
            error = self._attempt(batch, final)
            with self._cond:
                if error is None:
                    del self._pending[: len(batch)]
                    self._due = None
                elif final:
                    count = len(self._pending)
                    self.unsaved = (f"autocommit: {error}; {count} noted step"
                                    f"{'s' if count != 1 else ''} not committed (the work is "
                                    "in its files: commit it with git)")  # fmt: skip
                    return
                else:
                    backoff = self.interval * 2 ** min(self._streak - 1, 30)
                    self._due = time.monotonic() + min(backoff, MAX_BACKOFF_S)

    def _take(self) -> tuple[list[Noted], bool] | None:
        """Wait until a batch is due; (the batch, whether it is the final attempt).

        None when closing with nothing pending.
        """
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            if self._due is None:
                self._due = time.monotonic() + self.interval
            while not self._closing and (left := self._due - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self._pending), self._closing

    def _attempt(self, batch: list[Noted], final: bool) -> str | None:
        """Commit the home for `batch`; on failure what failed (one line, redacted), said
        once a streak of failures unless this is the final attempt (`close()` reports it)."""
        try:
            self._commit(batch)
        # Whatever it is (git failing, the home gone, a ValueError from a NUL where git's
        # arguments go, a bug), the thread must live on: a dead committer would commit
        # nothing for the rest of the runner's life, silently.
        except Exception as error:
            self.failures += 1
            self._streak += 1
            detail = _detail(error)
            if self._streak == 1 and not final:
                _say(self._on_line, f"autocommit: {detail}; will retry (the work is safe in "
                                    "its files)")  # fmt: skip
            return detail
        if self._streak:
            self._streak = 0
            _say(self._on_line, "autocommit: committing again")
        return None

    def _commit(self, batch: list[Noted]) -> bool:
        """Stage what Zoo wrote and commit it if anything changed; True if committed."""
        recorded = written.take(self._home)
        owned = [f":(literal){root}" for root in OWNED_ROOTS]
        status = self._git.run(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--",
            *owned,
        )  # fmt: skip
        cut = 3 + len(self._prefix)  # "XY " and the home's folder: paths relative to the home
        changed = committable((entry[cut:] for entry in status.split("\0") if entry), recorded)
        committed = bool(changed) and self._commit_paths(batch, changed, owned)
        written.release(self._home)
        return committed

    def _commit_paths(self, batch: list[Noted], changed: list[str], owned: list[str]) -> bool:
        self._git.run("update-index", "--add", "--remove", "-z", "--stdin", stdin=_nul(changed))
        # What is staged now of those paths, as git knows them (a file that vanished since
        # `status` is not one, and `commit --only` refuses unknown paths).
        staged = self._git.run(
            "diff", "--cached", "--name-only", "-z", "--no-renames", "--relative", "--", *owned
        )
        mine = set(changed)
        paths = [path for path in staged.split("\0") if path in mine]
        if not paths:
            return False
        subject, _, body = commit_message(batch).partition("\n\n")
        self._git.run(
            *self._identity, "commit", "--only", "--quiet", "-m", subject,
            *(["-m", body] if body else []), "--pathspec-from-file=-", "--pathspec-file-nul",
            stdin=_nul(f":(literal){path}" for path in paths),
        )  # fmt: skip
        self.commits += 1
        return True


def _identity_options(runner: _Git) -> list[str]:
    """`-c` options for the fallback identity when git has no user.name or user.email."""
    found = runner.run("config", "--get-regexp", r"^user\.(name|email)$", codes=(0, 1))
    keys = {line.split(" ", 1)[0] for line in found.splitlines()}
    if {"user.name", "user.email"} <= keys:
        return []
    name, email = FALLBACK_IDENTITY
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def _off_line(home: Home, error: Exception) -> str:
    detail = _detail(error)
    if "not a git repository" in detail:
        return (f"autocommit: off: {home.root} is not in a git repository, so nothing is "
                "committed (run 'git init' there to keep a history)")  # fmt: skip
    return f"autocommit: off: {detail}; the zoo runs the same, without commits"


def _detail(error: Exception) -> str:
    if isinstance(error, GitFailed):
        return str(error)
    return redact(_first_line(f"{type(error).__name__}: {error}"))


def _dotted(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def _say(on_line: Callable[[str], None] | None, line: str) -> None:
    if on_line is None:
        return
    try:
        on_line(line)
    except Exception:  # a line that cannot be shown (stdout closed) must not stop commits
        pass
