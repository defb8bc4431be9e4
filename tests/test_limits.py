"""The shared limiter and the retry policy, on a fake clock: no test waits for real time."""

from __future__ import annotations

import random

import pytest

from zoo.errors import ModelConnectionError, ModelHTTPError
from zoo.limits import Limiter
from zoo.models.base import Reply, Request
from zoo.models.resilient import Link, Resilient
from zoo.models.scripted import ScriptedModel
from zoo.roster import Limit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_requests_per_minute_allow_a_burst_then_pace() -> None:
    clock = Clock()
    limiter = Limiter(Limit(requests_per_minute=3), clock, clock.sleep)
    for _ in range(5):
        with limiter.slot(0):
            pass
    assert clock.slept == [20.0, 20.0]  # 3 at once, then one every 20 s


def test_tokens_per_minute_pace_by_the_size_of_calls() -> None:
    clock = Clock()
    limiter = Limiter(Limit(tokens_per_minute=600), clock, clock.sleep)
    with limiter.slot(600):
        pass
    with limiter.slot(300):
        pass
    assert clock.slept == [30.0]
    limiter.used(300, 0)  # the call took fewer tokens than guessed: they come back
    with limiter.slot(300):
        pass
    assert clock.slept == [30.0]


def test_a_429_pauses_every_caller() -> None:
    clock = Clock()
    limiter = Limiter(Limit(concurrency=4), clock, clock.sleep)
    limiter.pause(2.5)
    with limiter.slot(10) as waited:
        assert waited == 2.5


def _resilient(*steps: object, retries: int = 3) -> tuple[Resilient, Clock]:
    clock = Clock()
    model = ScriptedModel(steps)  # type: ignore[arg-type]
    chain = [Link("fast", "m", lambda: model)]
    return Resilient(chain, retries, sleep=clock.sleep, rng=random.Random(7)), clock


def test_backoff_doubles_with_jitter_and_retry_after_wins() -> None:
    flaky, clock = _resilient(
        ModelConnectionError("dropped"), ModelConnectionError("dropped"),
        ModelHTTPError("429", 429, retry_after=4.0), Reply("ok"),
    )  # fmt: skip
    reply = flaky.complete(Request("s", ()))
    assert reply.text == "ok" and [a.then for a in reply.attempts] == ["retry"] * 3
    first, second, third = clock.slept
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0 and 4.0 <= third <= 4.4


def test_errors_that_cannot_pass_are_not_retried() -> None:
    denied, clock = _resilient(ModelHTTPError("401", 401))
    with pytest.raises(ModelHTTPError) as raised:
        denied.complete(Request("s", ()))
    assert clock.slept == [] and [a.then for a in raised.value.attempts] == ["give up"]
