"""Zoo's errors, named for who is at fault.

Every error a person can cause carries one line that says what is wrong and where
(file, line, key) and how to fix it; the CLI prints that line and exits with the
error's `exit_status`, never a traceback unless `--debug`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitStatus(IntEnum):
    """Process exit codes, as cron and scripts read them."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class ZooError(Exception):
    """Base of every error Zoo raises on purpose."""

    exit_status: ExitStatus = ExitStatus.ERROR


class UserError(ZooError):
    """The person's input is wrong: a file, an argument, a missing home."""


class UsageError(UserError):
    """The command line itself is wrong."""

    exit_status = ExitStatus.USAGE


class HomeNotFound(UserError):
    """No zoo home could be found."""


class NotFound(UserError):
    """A task, agent or approval named on the command line does not exist."""


class FileError(UserError):
    """A file a person edits (zoo.yaml, a task file) is broken.

    The message reads `path:line: key: problem`, like a compiler's.
    """

    def __init__(self, path: Path | str, line: int | None, key: str | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.key = key
        self.problem = problem
        where = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class ConfigError(FileError):
    """zoo.yaml (or a playbook it names) is wrong."""


class TaskFileError(FileError):
    """A task file cannot be read; it is left as it is and reported."""


class ModelError(ZooError):
    """A model call failed: the provider's side (network, rate limit, server)."""

    retryable: bool = False
    """Worth trying the same call again after a pause."""
    attempts: tuple[Any, ...] = ()
    """Every failed try of the call (`models.base.Attempt`), for the journal."""


class ModelHTTPError(ModelError):
    """The provider answered a call with an HTTP error."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        """Seconds the provider asked to wait (`retry-after`), if it said."""
        # rate limits, overload (529), timeouts and server errors pass; 400/401/403 do not
        self.retryable = status in (408, 409, 429) or status >= 500


class ModelConnectionError(ModelError):
    """No complete answer: no connection, a timeout, a dropped or broken stream."""

    retryable = True


class ModelUnavailable(ModelError):
    """A model that cannot be used as configured: no key, no server, model not served."""

    retryable = False


class ModelBehaviorError(ModelError):
    """The model answered, but with something Zoo cannot use."""


class MaxTurnsExceeded(ModelBehaviorError):
    """An agent turn used up `max_turns` model calls without finishing."""


class ToolRefused(Exception):
    """A tool call that did not run: the model's fault or the policy's refusal.

    Not a `ZooError`: it never reaches a person as an error. Its message goes back to the
    model as a tool error and into the journal.
    """


class BudgetExceeded(ZooError):
    """A model call was not made: it could take spend past a limit of `budget:`."""

    def __init__(self, message: str, *, daily: bool = False, never_fits: bool = False) -> None:
        super().__init__(message)
        self.daily = daily
        """The team's daily budget (else one task's `task_tokens`)."""
        self.never_fits = never_fits
        """The call alone costs more than the whole daily budget: no day would fit it."""


class RunStopped(ZooError):
    """Something every task needs is missing (a key, a model server, today's budget):
    the run starts no more steps and its tasks stay queued, for a person to fix it."""

    def __init__(self, message: str, *, failure: bool = True) -> None:
        super().__init__(message)
        self.failure = failure
        """A fault to fix (exit 1); else a pause, as when today's budget is spent."""
        self.events: list[tuple[str, dict[str, Any]]] = []
        """The events of the step it cut short, not yet journaled."""


def stops_run(error: BaseException) -> RunStopped | None:
    """The `RunStopped` an error of one call means for the whole run, if it does."""
    if isinstance(error, ModelUnavailable):
        return RunStopped(str(error))
    if isinstance(error, BudgetExceeded) and error.daily:
        return RunStopped(str(error), failure=error.never_fits)
    return None


class ScriptError(AssertionError):
    """A scripted test model was used other than its script says (a failing test)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss among `choices`, else ``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
