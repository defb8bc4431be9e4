"""Spend: tokens and USD per day and per agent, kept in `.zoo/spend.json`.

The runner adds each model reply's usage as it goes and flushes the totals into the
file (under a lock, atomically) after its work; `zoo status` reads the file.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from zoo.fs import atomic_write
from zoo.home import Home
from zoo.models.base import Usage
from zoo.roster import Tier


def cost(tier: Tier, provider: str, usage: Usage) -> float:
    """USD for `usage` at the tier's price; the offline model is free."""
    if provider == "offline":
        return 0.0
    price = tier.price
    return (usage.input_tokens * price.input_per_mtok
            + usage.output_tokens * price.output_per_mtok) / 1_000_000  # fmt: skip


class Ledger:
    """Unflushed spend of this process, by day and agent."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._pending: dict[tuple[str, str], list[float]] = {}
        self._flushed: dict[str, float] = {}
        """USD of a day in spend.json, as this process last read or wrote it."""
        self._lock = threading.Lock()

    def today_usd(self) -> float:
        """Today's spend (UTC): what spend.json holds, plus what is not flushed yet."""
        day = _today()
        with self._lock:
            if day not in self._flushed:
                self._flushed[day] = float(_read(self.home).get(day, {}).get("usd", 0.0))
            pending = sum(t[2] for (d, _), t in self._pending.items() if d == day)
            return self._flushed[day] + pending

    def add(self, agent: str, usage: Usage, usd: float) -> None:
        key = (_today(), agent)
        with self._lock:
            totals = self._pending.setdefault(key, [0, 0, 0.0])
            totals[0] += usage.input_tokens
            totals[1] += usage.output_tokens
            totals[2] += usd

    def flush(self) -> None:
        from filelock import FileLock

        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        state = self.home.ensure_state()
        path = state / "spend.json"
        with FileLock(state / "spend.lock"):
            doc = _read(self.home)
            for (day, agent), (tokens_in, tokens_out, usd) in pending.items():
                today = doc.setdefault(day, {"input_tokens": 0, "output_tokens": 0, "usd": 0.0})
                mine = today.setdefault("by_agent", {}).setdefault(
                    agent, {"input_tokens": 0, "output_tokens": 0, "usd": 0.0}
                )
                for totals in (today, mine):
                    totals["input_tokens"] += int(tokens_in)
                    totals["output_tokens"] += int(tokens_out)
                    totals["usd"] = round(totals["usd"] + usd, 6)
            atomic_write(path, json.dumps(doc, indent=1, sort_keys=True))
        with self._lock:
            self._flushed.update({day: float(doc[day]["usd"]) for day, _ in pending})


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _read(home: Home) -> dict[str, Any]:
    try:
        doc = json.loads((home.state / "spend.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
