"""A tier's context window: set in zoo.yaml, else asked of its server, else a default.

Local OpenAI-compatible servers say how many tokens they hold, each in its own place:

- vLLM (and hosted APIs behind a `base_url`): `GET <base_url>/models` lists `max_model_len`
  (OpenRouter and Together say `context_length`, Groq `context_window`);
- llama.cpp's server: `GET /props`, `default_generation_settings.n_ctx` (a slot's context);
- Ollama: `GET /api/ps`, the `context_length` of the model as loaded; else `POST /api/show`,
  a `num_ctx` among its parameters;
- LM Studio: `GET /api/v0/models`, the model's `loaded_context_length`.

Ollama's `model_info` and LM Studio's `max_context_length` are what the model was trained
for, not what the server runs it with: both load a model with a smaller default window
(Ollama with 4,096 tokens on most machines, unless `num_ctx` or OLLAMA_CONTEXT_LENGTH says
more) and Ollama cuts a longer prompt silently. So they count only up to the default.

The native paths are at the server's root (the `base_url` without its `/v1`). Each request
has a short timeout; a server that answers none of them gets `LOCAL_CONTEXT_TOKENS`. Only
GET requests are sent, except `/api/show` to a server that said it is Ollama.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import urllib.request

LOCAL_CONTEXT_TOKENS = 4096
"""The window of a local server that does not say its own: what Ollama and LM Studio load a
model with unless told more, and what llama.cpp's server long defaulted to. Too small costs
memory entries and older sections left out of prompts (each with a note); too large costs
prompts cut silently or refused by the server, so the default is the small one."""
HOSTED_CONTEXT_TOKENS = {"anthropic": 200_000, "openai": 128_000}
"""The hosted APIs' windows (no `base_url`): the smallest of their current models'."""
PROBE_TIMEOUT_S = 2.0
"""Seconds each question to a server may take."""
UNSAID = "a default: the server does not say; set context_tokens to what it holds"
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""A longer answer is not read (a model list of a hosted API can be long)."""


@dataclass(frozen=True)
class Window:
    """How many tokens a tier's model holds, prompt and answer together."""

    tokens: int | None
    """None: no limit to fit to (the offline model)."""
    source: str
    """Where the figure comes from, in words: `set in zoo.yaml`, `from /props`."""


class Unreachable(Exception):
    """The server answered none of the questions: it is down or does not listen there."""


class _Server:
    """Questions to one server; `answered` once it answered any, even with an error."""

    def __init__(self, base_url: str, key: str | None, timeout: float) -> None:
        self.base = base_url.rstrip("/")
        self.root = self.base[: -len("/v1")] if self.base.endswith("/v1") else self.base
        self.headers = {"Accept": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.timeout = timeout
        self.answered = False

    def get(self, url: str) -> Any:
        import urllib.request  # here: http.client and ssl cost 20 ms to import

        return self._ask(urllib.request.Request(url, headers=self.headers))

    def post(self, url: str, body: dict[str, Any]) -> Any:
        import urllib.request

        headers = {**self.headers, "Content-Type": "application/json"}
        data = json.dumps(body).encode()
        return self._ask(urllib.request.Request(url, data, headers, method="POST"))

    def _ask(self, request: urllib.request.Request) -> Any:
        """The JSON answer, or None (an HTTP error, not JSON, too long)."""
        import urllib.error

        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                self.answered = True
                data = answer.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError:
            self.answered = True
            return None
        except (OSError, ValueError):  # refused, reset, timed out; a URL it cannot use
            if not self.answered:
                raise Unreachable from None
            return None
        if len(data) > MAX_ANSWER_BYTES:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None


def ask(base_url: str, model: str, key: str | None, timeout: float = PROBE_TIMEOUT_S) -> Window:
    """What the server at `base_url` says `model` holds, else `LOCAL_CONTEXT_TOKENS`.

    `Unreachable` when it answered nothing (ask again later: it may be starting)."""
    server = _Server(base_url, key, timeout)
    shapes: tuple[Callable[[_Server, str], Window | None], ...] = (
        _models, _ollama, _llamacpp, _lmstudio)  # fmt: skip
    for shape in shapes:
        found = shape(server, model)
        if found is not None:
            return found
    return Window(LOCAL_CONTEXT_TOKENS, UNSAID)


def _tokens(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _entry(
    doc: Any, model: str, keys: tuple[str, ...] = ("id",), only: bool = False
) -> dict[str, Any] | None:
    """The model's entry in a `{"data": [...]}` (or `{"models": [...]}`) list; with `only`,
    the one entry of a list of one (a server that serves one model under another name)."""
    listed = doc.get("data", doc.get("models")) if isinstance(doc, dict) else None
    if not isinstance(listed, list):
        return None
    entries = [e for e in listed if isinstance(e, dict)]
    names = (model, f"{model}:latest")  # Ollama's implicit tag
    for entry in entries:
        if any(entry.get(k) in names for k in keys):
            return entry
    return entries[0] if only and len(entries) == 1 else None


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _models(server: _Server, model: str) -> Window | None:
    url = f"{server.base}/models"
    entry = _entry(server.get(url), model, only=True)
    for key in ("max_model_len", "context_length", "context_window"):
        tokens = _tokens(entry.get(key)) if entry else None
        if tokens is not None:
            return Window(tokens, f"from {_path(url)}")
    return None


def _llamacpp(server: _Server, model: str) -> Window | None:
    url = f"{server.root}/props"
    props = server.get(url)
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    tokens = _tokens(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return Window(tokens, f"from {_path(url)}") if tokens is not None else None


def _lmstudio(server: _Server, model: str) -> Window | None:
    url = f"{server.root}/api/v0/models"
    entry = _entry(server.get(url), model)
    if entry is None:
        return None
    loaded = _tokens(entry.get("loaded_context_length"))
    if loaded is not None:
        return Window(loaded, f"from {_path(url)}, as loaded")
    most = _tokens(entry.get("max_context_length"))
    if most is None:
        return None
    return _capped(most, "LM Studio", _path(url))


_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


def _ollama(server: _Server, model: str) -> Window | None:
    version = server.get(f"{server.root}/api/version")
    if not isinstance(version, dict) or "version" not in version:
        return None  # not Ollama: nothing is posted to it
    url = f"{server.root}/api/ps"
    entry = _entry(server.get(url), model, ("name", "model"))
    loaded = _tokens(entry.get("context_length")) if entry else None
    if loaded is not None:
        return Window(loaded, f"from {_path(url)}, as loaded")
    url = f"{server.root}/api/show"
    shown = server.post(url, {"model": model})
    if not isinstance(shown, dict):
        return None
    found = _NUM_CTX.search(str(shown.get("parameters") or ""))
    if found:
        return Window(int(found.group(1)), f"from {_path(url)}, num_ctx")
    info = shown.get("model_info")
    if not isinstance(info, dict):
        return None
    arch = info.get("general.architecture")
    most = _tokens(info.get(f"{arch}.context_length"))
    return _capped(most, "Ollama", _path(url)) if most is not None else None


def _capped(most: int, server: str, path: str) -> Window:
    """A model's trained window, which the server loads it with only when told: at most the
    default."""
    if most <= LOCAL_CONTEXT_TOKENS:
        return Window(most, f"from {path}")
    return Window(LOCAL_CONTEXT_TOKENS, f"{server}'s default: {path} says the model holds "
                                        f"{most:,}, but it is loaded with less unless told "
                                        "more; set context_tokens to use more")  # fmt: skip


def hosted(provider: str) -> Window:
    """A hosted API's window (or, for the offline model, none)."""
    tokens = HOSTED_CONTEXT_TOKENS.get(provider)
    if tokens is None:
        return Window(None, "no limit")
    return Window(tokens, f"{provider}'s default; set context_tokens for a model that holds more")
