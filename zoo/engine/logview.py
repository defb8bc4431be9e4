"""`zoo log`: the journal filtered by task, agent and time, or followed as it grows."""

from __future__ import annotations

import re
from collections.abc import Iterator
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


def check_chain(home: Home) -> tuple[int, BadLine | None]:
    return verify(home.journal_path)
