"""A tier's model with Zoo's retries, then the fallbacks the roster declares.

A failed call is tried again when the error is worth it (429, 5xx, 529, timeouts, a
broken stream), after the `retry-after` the provider asked for or else an exponential
backoff with jitter, up to `defaults.retries` times. Then the tier's `fallback` is
tried, and its fallback, as far as the roster declares them and never further: no call
ever goes silently to a model the roster did not name. Every failed try is an
`Attempt`, carried by the reply (or the error) so the runner journals each one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from zoo.errors import ModelError, ModelHTTPError
from zoo.models.base import Attempt, Model, Reply, Request, estimate_tokens
from zoo.models.limits import Limiter

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 60.0


@dataclass
class Link:
    """One tier of the chain: its model (built on first use) and its provider's limits."""

    tier: str
    model_name: str
    build: Callable[[], Model]
    limiter: Limiter | None = None
    model: Model | None = None
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def built(self) -> Model:
        """The link's model, built once even when the first calls come at the same time."""
        model = self.model
        if model is not None:
            return model
        with self._building:
            if self.model is None:
                self.model = self.build()
            return self.model


class Resilient(Model):
    name = "resilient"

    def __init__(
        self,
        chain: list[Link],
        retries: int,
        *,
        backoff_s: float = BACKOFF_BASE_S,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.chain = chain
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.rng = rng or random.Random()

    def complete(self, request: Request) -> Reply:
        attempts: list[Attempt] = []
        for i, link in enumerate(self.chain):
            for n in range(self.retries + 1):
                try:
                    reply = self._call(link, request)
                    return replace(reply, tier=link.tier, attempts=tuple(attempts))
                except ModelError as e:
                    again = e.retryable and n < self.retries
                    wait = self._wait(n, e) if again else 0.0
                    if again:
                        then = "retry"
                    elif i + 1 < len(self.chain):
                        then = f"fallback to {self.chain[i + 1].tier}"
                    else:
                        then = "give up"
                    attempts.append(Attempt(link.tier, link.model_name, str(e),
                                            type(e).__name__, round(wait, 3), then))  # fmt: skip
                    if then == "give up":
                        e.attempts = tuple(attempts)
                        raise
                    if not again:
                        break
                    self.sleep(wait)
        raise AssertionError("unreachable: the chain always ends in 'give up'")

    def ready(self) -> None:
        """Ready when one link of the chain is: the calls would fall back to it."""
        for i, link in enumerate(self.chain):
            try:
                if link.model is None:
                    link.model = link.build()
                link.model.ready()
                return
            except ModelError:
                if i + 1 == len(self.chain):
                    raise

    def _call(self, link: Link, request: Request) -> Reply:
        model = link.built()
        if link.limiter is None:
            return model.complete(request)
        estimate = sum(estimate_tokens(request))
        with link.limiter.slot(estimate):
            try:
                reply = model.complete(request)
            except ModelHTTPError as e:
                if e.status == 429:  # everyone backs off, not only this caller
                    after = e.retry_after  # `retry-after: 0` means now, not "unsaid"
                    link.limiter.pause(after if after is not None else self.backoff_s)
                raise
        link.limiter.used(estimate, reply.usage.input_tokens + reply.usage.output_tokens)
        return reply

    def _wait(self, n: int, error: ModelError) -> float:
        after = error.retry_after if isinstance(error, ModelHTTPError) else None
        if after is not None:
            return min(after, RETRY_AFTER_MAX_S) * (1 + self.rng.uniform(0, 0.1))
        return min(BACKOFF_MAX_S, self.backoff_s * 2**n) * self.rng.uniform(0.5, 1.0)
