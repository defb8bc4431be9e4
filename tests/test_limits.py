"""The shared limiter and the retry policy, on a fake clock: no test waits for real time."""

from __future__ import annotations

import random
import sys
import threading

import pytest

from tests.waiting import wait_for
from zoo.errors import ModelConnectionError, ModelHTTPError
from zoo.models.base import Reply, Request
from zoo.models.limits import Limiter
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


def test_retry_after_0_is_honoured_not_replaced_by_the_backoff() -> None:
    """`retry-after: 0` means "now": neither the retry nor the provider's other callers
    wait the default backoff (`or` took 0 for "not said")."""
    clock = Clock()
    model = ScriptedModel([ModelHTTPError("429", 429, retry_after=0.0), Reply("ok")])
    limiter = Limiter(Limit(concurrency=4), clock, clock.sleep)
    chain = [Link("fast", "m", lambda: model, limiter)]
    flaky = Resilient(chain, 2, backoff_s=5.0, sleep=clock.sleep, rng=random.Random(7))
    assert flaky.complete(Request("s", ())).text == "ok"
    assert clock.slept == [0.0]  # the retry's own wait; the limiter did not pause 5 s
    with limiter.slot(0) as waited:
        assert waited == 0.0


def test_concurrent_first_calls_build_the_provider_model_once() -> None:
    """The first calls of a tier, from several threads at once, build one client."""
    built: list[int] = []
    release = threading.Event()
    model = ScriptedModel([Reply("ok")] * 8)

    def builder() -> ScriptedModel:
        built.append(threading.get_ident())
        assert release.wait(10)
        return model

    flaky = Resilient([Link("fast", "m", builder)], 0)
    replies: list[str] = []
    workers = [threading.Thread(target=lambda: replies.append(flaky.complete(
        Request("s", ())).text)) for _ in range(8)]  # fmt: skip
    for worker in workers:
        worker.start()
    _wait_until_parked(workers)
    release.set()
    for worker in workers:
        worker.join(10)
    assert replies == ["ok"] * 8 and len(built) == 1


def _wait_until_parked(threads: list[threading.Thread]) -> None:
    """Until every thread is in the builder or waiting at the lock to build (`built`);
    without the lock they would all be in the builder."""

    def parked() -> int:
        frames = sys._current_frames()
        count = 0
        for thread in threads:
            frame = frames.get(thread.ident or -1)
            stack = []
            while frame is not None:
                stack.append(frame.f_code.co_name)
                frame = frame.f_back
            count += "builder" in stack or (bool(stack) and stack[0] == "built")
        return count

    wait_for(lambda: parked() == len(threads), 10,
             lambda: f"{parked()} of {len(threads)} threads parked", every=0.001)  # fmt: skip
