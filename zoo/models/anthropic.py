"""The Anthropic provider: the Messages API through the official SDK, streamed.

The SDK is imported when the first model of this provider is built, never at start-up.
Its own retries are off: Zoo retries (resilient.py), so every attempt is journaled. A
stream counts only when it ends with `message_stop` and a stop reason; a stream cut
short, a dropped connection or a chunk that is not JSON is a failed call.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import ModelConnectionError
from zoo.models.base import Message, Model, Reply, Request, ToolCall, Usage
from zoo.models.wire import sdk_errors, streamed, tool_call

_STOPS: dict[str, Any] = {"tool_use": "tool_use", "max_tokens": "max_tokens"}


class AnthropicModel(Model):
    name = "anthropic"

    def __init__(self, model: str, api_key: str, base_url: str | None, timeout: float) -> None:
        import anthropic

        self.model = model
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )
        self.errors = sdk_errors(anthropic.APIError)

    def complete(self, request: Request) -> Reply:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": messages(request.messages),
            "stream": True,
        }
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.require_tool:
            params["tool_choice"] = {"type": "tool", "name": request.require_tool}
        return streamed(
            "anthropic", lambda: self.client.messages.create(**params), _read, self.errors
        )


def messages(history: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Zoo's messages in the Messages API's shape; tool results go in user turns."""
    out: list[dict[str, Any]] = []
    for m in history:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in m.tool_calls]  # fmt: skip
            out.append({"role": "assistant", "content": blocks or "(no text)"})
        else:
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id,
                     "content": m.content, "is_error": m.is_error}  # fmt: skip
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
    return out


def _read(stream: Any) -> Reply:
    """A whole reply from the event stream, or `ModelConnectionError` if it broke off."""
    texts: list[str] = []
    calls: dict[int, list[Any]] = {}  # index -> [id, name, argument parts]
    model, stop, finished = "", None, False
    tokens_in = tokens_out = 0
    for event in stream:
        kind = event.type
        if kind == "message_start":
            model = event.message.model
            tokens_in = event.message.usage.input_tokens or 0
            tokens_out = event.message.usage.output_tokens or 0
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            calls[event.index] = [event.content_block.id, event.content_block.name, []]
        elif kind == "content_block_delta":
            if event.delta.type == "text_delta":
                texts.append(event.delta.text)
            elif event.delta.type == "input_json_delta" and event.index in calls:
                calls[event.index][2].append(event.delta.partial_json)
        elif kind == "message_delta":
            stop = event.delta.stop_reason
            if event.usage.output_tokens is not None:  # 0 is a count, not "unsaid"
                tokens_out = event.usage.output_tokens
        elif kind == "message_stop":
            finished = True
    if not finished or stop is None:
        raise ModelConnectionError("anthropic: the stream ended before the message did")
    tool_calls: tuple[ToolCall, ...] = tuple(
        tool_call(call_id, name, "".join(parts)) for call_id, name, parts in calls.values()
    )
    return Reply(
        text="".join(texts),
        tool_calls=tool_calls,
        stop_reason=_STOPS.get(stop, "end"),
        usage=Usage(tokens_in, tokens_out),
        model=model,
    )
