"""`zoo log`: the journal filtered by task, agent and time, or followed as it grows;
`zoo log --verify`: whether its hash chain is intact."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zoo.errors import UsageError
from zoo.state.home import Home
from zoo.state.journal import BadLine, follow, read_events, verify

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> str:
    """An ISO timestamp (UTC, as the journal writes them) for `--since`."""
    now = now or datetime.now(UTC)
    match = _AGO.match(text.strip())
    if match:
        moment = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"--since {text!r}: expected an ISO time (2026-11-24T09:00) or an age (30m, 2h, 1d)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def events(
    home: Home,
    *,
    task: str | None = None,
    agent: str | None = None,
    since: str | None = None,
    follow: bool = False,
) -> Iterator[dict[str, Any]]:
    after = parse_since(since) if since else None
    wanted_task = task.upper() if task else None
    source = _follow(home) if follow else read_events(home.journal_path)
    for event in source:
        if wanted_task and event.get("task") != wanted_task:
            continue
        if agent and agent not in (event.get("agent"), event.get("from")):
            continue
        if after and str(event.get("ts", "")) < after:
            continue
        yield event


def _follow(home: Home) -> Iterator[dict[str, Any]]:
    yield from read_events(home.journal_path)
    yield from follow(home.journal_path)


@dataclass(frozen=True)
class Verified:
    """What checking the journal's hash chain found."""

    where: str
    """The journal, relative to the home."""
    lines: int
    """Events read."""
    bad: BadLine | None = None
    """The first line that does not check out (None: the chain is intact)."""

    @property
    def ok(self) -> bool:
        return self.bad is None

    @property
    def problem(self) -> str | None:
        """`.zoo/events.jsonl:2: content changed: ...`, or None when intact."""
        return None if self.bad is None else f"{self.where}:{self.bad.line}: {self.bad.problem}"

    def document(self) -> dict[str, Any]:
        bad = self.bad
        return {"ok": self.ok, "lines": self.lines, "bad_line": bad.line if bad else None,
                "problem": bad.problem if bad else None}  # fmt: skip


def verify_journal(home: Home) -> Verified:
    """Check the journal's hash chain; name the first line somebody changed."""
    count, bad = verify(home.journal_path)
    return Verified(home.relative(home.journal_path), count, bad)
