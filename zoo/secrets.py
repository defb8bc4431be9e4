"""Secrets: keys come from the environment, and nothing Zoo writes ever holds one.

`redact` replaces every key Zoo has read (`remember`ed when a provider takes it from
the environment), every value of an environment variable whose name says it is a
secret, and anything shaped like a well-known key (`sk-ant-...`, `sk-...`, `ghp_...`,
`AKIA...`, a bearer token) with `[redacted]`. The journal, task sections, memory
entries, error messages and `--debug` tracebacks all pass through it.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

MARK = "[redacted]"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
"""Environment variables with such names hold secrets: their values are redacted, and
commands started by agents do not inherit them."""
_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|sk-(?:proj-)?[A-Za-z0-9_\-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"
)
_MIN_LEN = 8


class _Known:
    """The secret values this process holds, as one compiled pattern."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()
        self.scanned = False

    def add(self, values: list[str]) -> None:
        with self.lock:
            fresh = {v for v in values if len(v) >= _MIN_LEN} - self.values
            if fresh:
                self.values |= fresh
                ordered = sorted(self.values, key=len, reverse=True)
                self.pattern = re.compile("|".join(re.escape(v) for v in ordered))


_known = _Known()


def remember(value: str) -> None:
    """A secret Zoo holds (a provider's key): it is never written anywhere."""
    _known.add([value])


def scan_environment() -> None:
    """Remember the values of the environment variables whose names say they are secret."""
    _known.add([value for name, value in os.environ.items() if SECRET_NAME.search(name)])
    _known.scanned = True


def redact(text: str) -> str:
    """`text` with every secret in it replaced by `[redacted]`."""
    if not _known.scanned:
        scan_environment()
    if _known.pattern is not None:
        text = _known.pattern.sub(MARK, text)
    return _SHAPES.sub(MARK, text)


def redact_all(value: Any) -> Any:
    """`value` (str, list, dict, ...) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_all(v) for v in value)
    return value
