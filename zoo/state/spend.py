"""Spend: tokens and USD per day and per agent, kept in `.zoo/spend.json`, and the
reservations that keep parallel calls inside `budget:`.

Before a model call starts, its estimate is reserved (`Ledger.reserve`): under one lock,
today's spend plus what the calls under way hold plus this call's estimate must fit
`budget.daily_usd`, and the task's tokens plus what its calls under way hold plus the
estimate must fit `budget.task_tokens`. A call that would fit once the calls under way
are settled waits for them; one that could not fit even then is refused
(`BudgetExceeded`, with the figures). After the call, `settle` replaces the estimate by
the real usage, and a failed call's reservation is `release`d. So no call starts once
the budget is spent, and spend passes the budget only by what the calls under way when
the last one was let in used beyond their estimates.

The runner adds each model reply's usage as it goes and flushes the totals into the
file (under a lock, atomically) after its work; `zoo status` reads the file.
Reservations are this process's own: one runner works a home at a time.

`Spend` is the ledger seen through the roster: its `budget:` and each tier's price, so a
model call is estimated, reserved, made and settled in one place (`Spend.call`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zoo.errors import BudgetExceeded
from zoo.models.base import Reply, Request, Usage, estimate_tokens
from zoo.state.fs import atomic_write
from zoo.state.home import Home
from zoo.state.locks import lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from zoo.roster import Budget, Tier

    Price = Callable[[str, Usage], float]
    """USD of `usage` at the price of the named tier."""


def cost(tier: Tier, provider: str, usage: Usage) -> float:
    """USD for `usage` at the tier's price; the offline model is free."""
    if provider == "offline":
        return 0.0
    price = tier.price
    return (usage.input_tokens * price.input_per_mtok
            + usage.output_tokens * price.output_per_mtok) / 1_000_000  # fmt: skip


@dataclass(frozen=True, eq=False)
class Reservation:
    """A model call's estimate, held from before the call starts until it is settled."""

    agent: str
    task: str | None
    """The task whose `budget.task_tokens` the call counts against (None: no task's)."""
    usd: float
    tokens: int
    """Input + output tokens estimated."""
    thread: threading.Thread = field(default_factory=threading.current_thread, repr=False)
    """The thread that holds it: a thread never waits for its own reservations."""


class Ledger:
    """Unflushed spend of this process, by day and agent, and the calls under way."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._pending: dict[tuple[str, str], list[float]] = {}
        self._flushed: dict[str, float] = {}
        """USD of a day in spend.json, as this process last read or wrote it."""
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        """Notified whenever a reservation is settled or released."""
        self._flushing: list[dict[tuple[str, str], list[float]]] = []
        """Batches being written to spend.json: still counted until they are."""
        self._held: list[Reservation] = []
        self._waiting = 0

    def today_usd(self) -> float:
        """Today's spend (UTC): what spend.json holds, plus what is not flushed yet."""
        with self._lock:
            return self._today()

    def reserved_usd(self) -> float:
        """What the calls under way hold of today's budget (their estimates)."""
        with self._lock:
            return sum(r.usd for r in self._held)

    @property
    def waiting(self) -> int:
        """Calls waiting for the calls under way to settle before they may start."""
        with self._lock:
            return self._waiting

    def reserve(
        self,
        budget: Budget,
        agent: str,
        usd: float,
        tokens: int,
        *,
        task: str | None = None,
        task_used: int = 0,
    ) -> Reservation:
        """Hold a call's estimate (`usd`, `tokens` in + out) before it starts; `task_used`
        is what the task has used so far. Waits while the calls under way could leave room;
        raises `BudgetExceeded`, with the figures, when the call cannot fit."""
        with self._settled:
            while not self._fits(budget, usd, tokens, task, task_used):
                self._waiting += 1
                try:
                    self._settled.wait()
                finally:
                    self._waiting -= 1
            reservation = Reservation(agent, task, usd, tokens)
            self._held.append(reservation)
            return reservation

    def check(self, budget: Budget, usd: float, tokens: int, task_used: int = 0) -> None:
        """Raise `BudgetExceeded` if a call of this estimate could not fit even once the
        calls under way are settled; reserves nothing and never waits."""
        with self._lock:
            self._refuse_if_over(budget, usd, tokens, task_used, 0.0, 0)

    def settle(self, reservation: Reservation, usage: Usage, usd: float) -> None:
        """The call answered: its estimate is replaced by what it really used and cost."""
        with self._settled:
            self._drop(reservation)
            self._add(reservation.agent, usage, usd)
            self._settled.notify_all()

    def release(self, reservation: Reservation) -> None:
        """The call failed or was never made: its estimate is free again."""
        with self._settled:
            self._drop(reservation)
            self._settled.notify_all()

    def add(self, agent: str, usage: Usage, usd: float) -> None:
        """Count a call's usage that was not reserved."""
        with self._lock:
            self._add(agent, usage, usd)

    def _fits(
        self, budget: Budget, usd: float, tokens: int, task: str | None, task_used: int
    ) -> bool:
        """True if the call fits now, False if it may once others' calls settle (it waits);
        raises when it cannot (what this thread holds cannot settle while it waits)."""
        mine = [r for r in self._held if r.thread is threading.current_thread()]
        own_tokens = sum(r.tokens for r in mine if task is not None and r.task == task)
        self._refuse_if_over(budget, usd, tokens, task_used, sum(r.usd for r in mine),
                             own_tokens)  # fmt: skip
        if budget.task_tokens is not None and task is not None:
            held = sum(r.tokens for r in self._held if r.task == task)
            if task_used + held + tokens > budget.task_tokens:
                return False
        if budget.daily_usd is not None:
            held_usd = sum(r.usd for r in self._held)
            if self._today() + held_usd + usd > budget.daily_usd:
                return False
        return True

    def _refuse_if_over(
        self, budget: Budget, usd: float, tokens: int, task_used: int, own_usd: float,
        own_tokens: int,
    ) -> None:  # fmt: skip
        cap = budget.task_tokens
        if cap is not None and task_used + own_tokens + tokens > cap:
            held = f", {own_tokens:,} held by calls under way," if own_tokens else ""
            raise BudgetExceeded(
                f"task token budget: {task_used:,} tokens used{held} and the next call could "
                f"take {tokens:,} more, over budget.task_tokens ({cap:,})"
            )
        daily = budget.daily_usd
        spent = self._today()
        if daily is not None and spent + own_usd + usd > daily:
            held = f", ${own_usd:.2f} held by calls under way," if own_usd else ""
            raise BudgetExceeded(
                f"daily budget: ${spent:.2f} spent today (UTC){held} and the next call could "
                f"cost ${usd:.4f}, over budget.daily_usd (${daily:.2f})",
                daily=True, never_fits=usd > daily,
            )  # fmt: skip

    def _drop(self, reservation: Reservation) -> None:
        self._held = [r for r in self._held if r is not reservation]

    def _today(self) -> float:
        """Today's spend; the caller holds the lock."""
        day = _today()
        if day not in self._flushed:
            self._flushed[day] = float(_read(self.home).get(day, {}).get("usd", 0.0))
        unflushed = [self._pending, *self._flushing]
        return self._flushed[day] + sum(
            t[2] for batch in unflushed for (d, _), t in batch.items() if d == day
        )

    def _add(self, agent: str, usage: Usage, usd: float) -> None:
        totals = self._pending.setdefault((_today(), agent), [0, 0, 0.0])
        totals[0] += usage.input_tokens
        totals[1] += usage.output_tokens
        totals[2] += usd

    def flush(self) -> None:
        """Add what is not flushed yet to spend.json. It counts in today's spend all along:
        a reservation decided meanwhile sees it."""
        with self._lock:
            batch, self._pending = self._pending, {}
            if batch:
                self._flushing.append(batch)
        if not batch:
            return
        path = self.home.state / "spend.json"
        with lock(self.home.state / "spend.lock"):
            doc = _read(self.home)
            for (day, agent), (tokens_in, tokens_out, usd) in batch.items():
                today = doc.setdefault(day, {"input_tokens": 0, "output_tokens": 0, "usd": 0.0})
                mine = today.setdefault("by_agent", {}).setdefault(
                    agent, {"input_tokens": 0, "output_tokens": 0, "usd": 0.0}
                )
                for totals in (today, mine):
                    totals["input_tokens"] += int(tokens_in)
                    totals["output_tokens"] += int(tokens_out)
                    totals["usd"] = round(totals["usd"] + usd, 6)
            try:
                atomic_write(path, json.dumps(doc, indent=1, sort_keys=True))
            except BaseException:
                with self._lock:  # not written: it is still to flush
                    self._flushing.remove(batch)
                    for key, totals in batch.items():
                        mine = self._pending.setdefault(key, [0, 0, 0.0])
                        for i, value in enumerate(totals):
                            mine[i] += value
                raise
            with self._lock:  # under the file lock, so flushes update in the order they wrote
                self._flushed.update({day: float(doc[day]["usd"]) for day, _ in batch})
                self._flushing.remove(batch)


@dataclass(frozen=True)
class Spend:
    """What model calls cost and whether one may start: the ledger, the roster's `budget:`
    and each tier's price (`price(tier, usage)`, in USD)."""

    ledger: Ledger
    budget: Budget
    price: Price

    def estimate(self, tier: str, request: Request) -> tuple[float, int]:
        """A call's guessed cost before it is made: USD, and tokens in + out."""
        tokens_in, tokens_out = estimate_tokens(request)
        return self.price(tier, Usage(tokens_in, tokens_out)), tokens_in + tokens_out

    def call(
        self, agent: str, tier: str, request: Request, complete: Callable[[Request], Reply],
        *, task: str | None = None, task_tokens: int = 0,
    ) -> tuple[Reply, float]:  # fmt: skip
        """`complete(request)` within the budget: its estimate is reserved before it starts
        (this may wait for calls under way, or raise `BudgetExceeded`), then settled with
        the reply's real usage (priced at the tier that answered), or released if the call
        fails. Returns the reply and its cost. `task_tokens` is what `task` has used."""
        reservation = self.reserve(agent, tier, request, task=task, task_tokens=task_tokens)
        try:
            reply = complete(request)
            usd = self.price(reply.tier or tier, reply.usage)
        except BaseException:
            self.ledger.release(reservation)
            raise
        self.ledger.settle(reservation, reply.usage, usd)
        return reply, usd

    def reserve(
        self, agent: str, tier: str, request: Request, *, task: str | None = None,
        task_tokens: int = 0,
    ) -> Reservation:  # fmt: skip
        """Hold the estimate of a call of `tier` (`Ledger.reserve`)."""
        usd, tokens = self.estimate(tier, request)
        return self.ledger.reserve(self.budget, agent, usd, tokens, task=task,
                                   task_used=task_tokens)  # fmt: skip

    def settle(self, reservation: Reservation, tier: str, usage: Usage) -> float:
        """A reserved call answered (from `tier`, maybe a fallback): count what it really
        used; returns its cost in USD."""
        usd = self.price(tier, usage)
        self.ledger.settle(reservation, usage, usd)
        return usd

    def add(self, agent: str, tier: str, usage: Usage) -> float:
        """Count one reply's usage to `agent` (a call not reserved); returns its cost."""
        usd = self.price(tier, usage)
        self.ledger.add(agent, usage, usd)
        return usd

    def check(self, tier: str, request: Request, task_tokens: int = 0) -> None:
        """Raise `BudgetExceeded`, with the figures, if this call could break a budget even
        once the calls under way are settled; reserves nothing."""
        usd, tokens = self.estimate(tier, request)
        self.ledger.check(self.budget, usd, tokens, task_tokens)

    def daily_spent(self) -> bool:
        """Today's spend has reached `budget.daily_usd`: no call may start before tomorrow."""
        daily = self.budget.daily_usd
        return daily is not None and self.ledger.today_usd() >= daily


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _read(home: Home) -> dict[str, Any]:
    try:
        doc = json.loads((home.state / "spend.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
