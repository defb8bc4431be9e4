"""What one run did: counts, lines for people, failures, and why it stopped (`zoo run`
and `zoo run --once` report it; `--json` prints its document)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import RunStopped


@dataclass
class RunReport:
    """What a run did (`run_once`, or `zoo run` until stopped); `failed` makes the process
    exit non-zero."""

    steps: int = 0
    routed: int = 0
    handoffs: int = 0
    done: int = 0
    escalated: int = 0
    waiting: int = 0
    """Tasks now waiting for a person's approval."""
    budget_spent: bool = False
    """Today's budget is spent: no more steps start in this run."""
    stopped: str | None = None
    """Why no more steps start: something every task needs is missing (`RunStopped`)."""
    uncommitted: str | None = None
    """Why the run's work could not be committed to git at its end (autocommit)."""
    failed: list[str] = field(default_factory=list)
    """One line per failure: model errors, broken task files, max_turns."""
    lines: list[str] = field(default_factory=list)
    """One line per thing that happened, for people watching."""
    seconds: float = 0.0
    on_line: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with each line as it happens (a person watching `zoo run`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed

    def document(self) -> dict[str, Any]:
        """What `zoo run --once --json` prints."""
        return {"ok": self.ok, "steps": self.steps, "routed": self.routed,
                "handoffs": self.handoffs, "done": self.done, "escalated": self.escalated,
                "failed": list(self.failed), "seconds": round(self.seconds, 3)}  # fmt: skip

    @property
    def halted(self) -> bool:
        """No more steps start in this run."""
        return self.budget_spent or self.stopped is not None

    def halt(self, why: RunStopped) -> None:
        """Start no more steps, once, saying why: a failure (exit 1), or a pause."""
        with self._lock:
            if self.halted:
                return
            if why.failure:
                self.stopped = str(why)
            else:
                self.budget_spent = True
        line = f"{why}: queued tasks wait" + (" (fix it, then run again)" if why.failure else "")
        self.add(None, line, line if why.failure else None)

    def add(self, counter: str | None, line: str | None = None, failure: str | None = None) -> None:
        """Count one thing that happened (from any worker thread)."""
        with self._lock:
            if counter is not None:
                setattr(self, counter, getattr(self, counter) + 1)
            if line is not None:
                self.lines.append(line)
                if self.on_line is not None:
                    self.on_line(line)
            if failure is not None:
                self.failed.append(failure)
