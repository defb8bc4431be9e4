"""The OpenAI provider: chat completions through the official SDK, streamed.

Any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) works through the
tier's `base_url`; such a server is checked once, before the first call sent to it: it
must answer and list the tier's model. The SDK is imported when the first model of
this provider is built; its own retries are off (Zoo retries and journals each try).
A stream counts only when a choice ends with a finish reason.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from zoo.errors import ModelConnectionError, ModelUnavailable
from zoo.models import textcalls
from zoo.models.base import Message, Model, Reply, Request, Usage
from zoo.models.wire import sdk_errors, streamed, tool_call, translate

_STOPS: dict[str, Any] = {"tool_calls": "tool_use", "function_call": "tool_use",
                          "length": "max_tokens"}  # fmt: skip


class OpenAIModel(Model):
    name = "openai"

    def __init__(
        self,
        model: str,
        api_key: str,
        base_url: str | None,
        timeout: float,
        tool_format: str = "native",
    ) -> None:
        import openai

        self.model = model
        self.base_url = base_url
        self.tool_format = tool_format
        """native | text | auto: see `roster.Tier.tool_format`."""
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )
        self.errors = sdk_errors(openai.APIError)
        self._checked = base_url is None
        self._check_lock = threading.Lock()

    def complete(self, request: Request) -> Reply:
        if not self._checked:
            self._check_server()
        as_text = self.tool_format == "text" and bool(request.tools)
        system = request.system + (textcalls.instructions(request) if as_text else "")
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages(system, request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # api.openai.com wants max_completion_tokens; local servers know max_tokens
        params["max_tokens" if self.base_url else "max_completion_tokens"] = request.max_tokens
        if request.tools and not as_text:
            params["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in request.tools
            ]  # fmt: skip
            if request.require_tool:
                params["tool_choice"] = {"type": "function",
                                         "function": {"name": request.require_tool}}  # fmt: skip
        reply = streamed(
            "openai", lambda: self.client.chat.completions.create(**params), _read, self.errors
        )
        if self.tool_format != "native" and request.tools and not reply.tool_calls:
            reply = _calls_from_text(reply, request)
        if reply.usage == Usage():  # the server sent none, even asked: count it
            reply = replace(reply, usage=estimate_usage(request, reply), usage_estimated=True)
        return reply

    def ready(self) -> None:
        if not self._checked:
            self._check_server()

    def _check_server(self) -> None:
        """Before the first call to a `base_url` server: it answers and serves the model."""
        with self._check_lock:
            if self._checked:
                return
            try:
                served = [m.id for m in self.client.models.list()]
            except self.errors as e:  # the server, not the call, is what failed
                error = translate(e, "openai")
                raise ModelUnavailable(f"cannot use {self.base_url}: {error}") from e
            if served and self.model not in served:
                listed = ", ".join(sorted(served)[:10])
                raise ModelUnavailable(
                    f"{self.base_url} does not serve model '{self.model}' (it serves: {listed})"
                )
            self._checked = True


def messages(system: str, history: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Zoo's messages in the chat completions shape.

    `content` is always a string: some local servers answer 500 to an assistant message
    with tool calls and `"content": null`. Calls the model wrote as text go back as the
    text it wrote, and their results as user messages, since such a server knows no
    tool messages.
    """
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    written: dict[str, str] = {}  # call id -> tool name, for calls written as text
    for m in history:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": m.content or ""}
            native = [c for c in m.tool_calls if not c.written]
            written.update({c.id: c.name for c in m.tool_calls if c.written})
            if native:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for c in native
                ]  # fmt: skip
            out.append(message)
        elif m.tool_call_id in written:
            head = f"[result of {written[m.tool_call_id]}{', an error' if m.is_error else ''}]"
            out.append({"role": "user", "content": f"{head}\n{m.content}"})
        else:
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    return out


def _calls_from_text(reply: Reply, request: Request) -> Reply:
    """The reply with the tool calls the model wrote in its text taken as calls."""
    offered = [t.name for t in request.tools]
    found = textcalls.parse(reply.text, offered)
    if not found.calls:
        return reply
    return replace(reply, text=found.text, tool_calls=found.calls, stop_reason="tool_use",
                   written=reply.text)  # fmt: skip


def estimate_usage(request: Request, reply: Reply) -> Usage:
    """Tokens of a call the server did not count: about 4 characters a token."""
    prompt = len(request.system) + sum(len(m.content) for m in request.messages)
    answer = len(reply.written or reply.text) + sum(
        len(c.name) + len(json.dumps(c.arguments)) for c in reply.tool_calls if not c.written
    )
    return Usage(max(1, prompt // 4), max(1, answer // 4))


def _read(stream: Any) -> Reply:
    """A whole reply from the chunk stream, or `ModelConnectionError` if it broke off."""
    texts: list[str] = []
    calls: dict[int, list[Any]] = {}  # index -> [id, name, argument parts]
    model, stop = "", None
    usage = Usage()
    for chunk in stream:
        model = chunk.model or model
        if chunk.usage is not None:
            usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        for choice in chunk.choices:
            delta = choice.delta
            if delta is not None and delta.content:
                texts.append(delta.content)
            for part in (delta.tool_calls or []) if delta is not None else []:
                call = calls.setdefault(part.index, ["", "", []])
                call[0] = part.id or call[0]
                if part.function is not None:
                    call[1] = part.function.name or call[1]
                    call[2].append(part.function.arguments or "")
            stop = choice.finish_reason or stop
    if stop is None:
        raise ModelConnectionError("openai: the stream ended without a finish reason")
    return Reply(
        text="".join(texts),
        tool_calls=tuple(tool_call(i or f"call-{n}", name, "".join(parts))
                         for n, (i, name, parts) in sorted(calls.items())),
        stop_reason=_STOPS.get(stop, "end"),
        usage=usage,
        model=model,
    )  # fmt: skip
