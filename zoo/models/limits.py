"""Shared limits of one provider, for the whole team: backpressure, not errors.

`limits:` in zoo.yaml gives a provider a concurrency, requests per minute and tokens per
minute. Every call to that provider, from any agent and any tier, first takes a slot
here and waits for one if the team is at its limit. The per-minute limits are token
buckets that refill continuously (a full bucket allows a burst of a minute's worth). A
429 from the provider pauses every caller of that provider for its `retry-after`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from zoo.roster import Limit


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.at = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class Limiter:
    """One provider's limits, shared by every thread of this process."""

    def __init__(
        self,
        limit: Limit,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        now = clock()
        self.clock, self.sleep = clock, sleep
        self._slots = threading.BoundedSemaphore(limit.concurrency) if limit.concurrency else None
        self._requests = (
            _Bucket(limit.requests_per_minute, now) if limit.requests_per_minute else None
        )
        self._tokens = _Bucket(limit.tokens_per_minute, now) if limit.tokens_per_minute else None
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, tokens: int) -> Iterator[float]:
        """Hold one of the provider's slots for a call of about `tokens`; yields the wait."""
        started = self.clock()
        if self._slots is not None:
            self._slots.acquire()
        try:
            self._wait_turn(tokens)
            yield self.clock() - started
        finally:
            if self._slots is not None:
                self._slots.release()

    def _wait_turn(self, tokens: int) -> None:
        while True:
            with self._lock:
                now = self.clock()
                delay = max(0.0, self._paused_until - now)
                if self._requests is not None:
                    delay = max(delay, self._requests.wait_for(1, now))
                if self._tokens is not None:
                    delay = max(delay, self._tokens.wait_for(tokens, now))
                if delay <= 0:
                    if self._requests is not None:
                        self._requests.take(1)
                    if self._tokens is not None:
                        self._tokens.take(tokens)
                    return
            self.sleep(delay)

    def used(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once a reply says how many tokens the call took."""
        if self._tokens is not None:
            with self._lock:
                self._tokens.take(actual - estimated)

    def pause(self, seconds: float) -> None:
        """The provider said 429: nobody calls it for `seconds`."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)
