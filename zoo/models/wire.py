"""What the Anthropic and OpenAI providers share: keys, SDK errors, tool arguments.

SDK exceptions are translated here, at the boundary, into Zoo's own: `ModelHTTPError`
(with the status and the `retry-after` the provider asked for), `ModelConnectionError`
(no complete answer) and `ModelUnavailable` (no key, no server). Both official SDKs
share the shape this reads (`status_code`, `response.headers`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from zoo import secrets
from zoo.errors import ModelConnectionError, ModelError, ModelHTTPError, ModelUnavailable
from zoo.models.base import Reply, ToolCall
from zoo.roster import Tier

KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
MAX_RETRY_AFTER_S = 60.0


def api_key(provider: str, tier_name: str, tier: Tier, env: Mapping[str, str]) -> str:
    """The tier's key, from the environment variable it names; never from a file."""
    name = tier.api_key_env or KEY_ENV[provider]
    key = env.get(name, "")
    if key:
        secrets.remember(key)
    else:
        if tier.base_url and provider == "openai" and tier.api_key_env is None:
            return "not-needed"  # local OpenAI-compatible servers take any key
        raise ModelUnavailable(
            f"no API key for tier '{tier_name}': set the environment variable {name} "
            "(keys are read from the environment only)"
        )
    return key


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def translate(error: Exception, provider: str) -> ModelError:
    """An SDK or transport exception as one of Zoo's model errors."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
        message = _message(error)
        return ModelHTTPError(f"{provider} answered {status}: {message}", status,
                              retry_after(headers))  # fmt: skip
    name = type(error).__name__
    if "Timeout" in name:
        return ModelConnectionError(f"{provider}: the call timed out")
    return ModelConnectionError(f"{provider}: no complete answer ({name}: {_short(error)})")


Errors = tuple[type[Exception], ...]


def sdk_errors(api_error: type[Exception]) -> Errors:
    """What a call through a provider's SDK raises when the provider or the connection
    fails: the SDK's `APIError` (statuses, connection errors, timeouts), the HTTP library's
    errors raised while a stream is read (httpx2, which the SDKs use now, or httpx), and a
    stream chunk that is not JSON. Anything else is a bug in Zoo: it is not caught."""
    errors: list[type[Exception]] = [api_error, json.JSONDecodeError]
    for name in ("httpx2", "httpx"):
        try:
            http = importlib.import_module(name)
        except ImportError:
            continue
        errors += [http.HTTPError, http.StreamError]
    return tuple(errors)


def streamed(
    provider: str, create: Callable[[], Any], read: Callable[[Any], Reply], errors: Errors
) -> Reply:
    """Open a stream with `create`, read it whole with `read`; the SDK's `errors` become
    Zoo's, and nothing else is caught."""
    try:
        stream = create()
        with stream:
            return read(stream)
    except errors as e:  # translated at the boundary; Zoo's own ModelErrors pass as they are
        raise translate(e, provider) from e


def _message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _short(inner["message"])
        if isinstance(body.get("message"), str):
            return _short(body["message"])
    return _short(getattr(error, "message", None) or str(error))


def _short(text: object, limit: int = 300) -> str:
    line = secrets.redact(" ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def tool_call(call_id: str, name: str, raw: str) -> ToolCall:
    """A call from streamed argument text; unreadable arguments become its `error`."""
    try:
        arguments: Any = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        return ToolCall(call_id, name, {}, error=f"arguments are not valid JSON ({e.msg})")
    if not isinstance(arguments, dict):
        return ToolCall(call_id, name, {}, error="arguments must be a JSON object")
    return ToolCall(call_id, name, arguments)
