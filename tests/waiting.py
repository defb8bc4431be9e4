"""The one way tests wait: on observable state (a file, a line, a counter, a thread's
stack), polled with a deadline, never on a sleep of a guessed length."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 10.0,
    failure: str | Callable[[], str] = "timed out waiting",
    every: float = 0.005,
) -> T:
    """Poll `condition` every `every` seconds until it returns something true, and return
    that; after `timeout` seconds fail with `failure` (a callable is asked at that moment,
    so the message can say what was seen). An exception from `condition` ends the wait:
    a condition can give up early (the process it waits on has exited)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(failure if isinstance(failure, str) else failure())
        time.sleep(every)
    return found
