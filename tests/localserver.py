"""A loopback stand-in for a small model behind llama.cpp's OpenAI-compatible server.

It behaves as such servers were seen to: it writes every tool call as text
(`<tool_call>{...}</tool_call>`) instead of returning `tool_calls`, sends no usage in the
stream even when asked, and answers HTTP 500 to an assistant message whose content is
null. Its "model" works through the tools it is offered, one call a reply: it writes a
draft, keeps a note, hands off to the first agent it may, then says it is done; asked to
route, it names the first agent offered.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "qwen2.5-0.5b-instruct"


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.endswith("/models"):
            self._json(
                {
                    "object": "list",
                    "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "local"}],
                }
            )
        else:
            self._json({"error": "not found"}, status=404)  # fmt: skip

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if any(m.get("content") is None for m in body["messages"]):
            self._json({"error": "content must be a string"}, status=500)
            return
        self._stream(answer(body))

    def _stream(self, text: str) -> None:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
        parts = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        data = "".join(f"data: {json.dumps(p)}\n\n" for p in parts) + "data: [DONE]\n\n"
        self._send(200, "text/event-stream", data.encode())

    def _json(self, doc: dict[str, Any], status: int = 200) -> None:
        self._send(status, "application/json", json.dumps(doc).encode())

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]


def answer(body: dict[str, Any]) -> str:
    """What the small model says to a request: its next call, written as text, or words."""
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or []}
    if "route" in tools:
        agent = tools["route"]["parameters"]["properties"]["agent"]["enum"][0]
        args = {"agent": agent, "reason": "it fits best", "confidence": 0.9}
        return _written("route", args)
    plan = []
    if "write_file" in tools:
        plan.append(("write_file", {"path": "drafts/local.md", "content": "A local draft.\n"}))
    if "remember" in tools:
        plan.append(("remember", {"note": "The local model did this step."}))
    if "handoff" in tools:
        to = tools["handoff"]["parameters"]["properties"]["to"]["enum"][0]
        plan.append(("handoff", {"to": to, "note": "Over to you."}))
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if done < len(plan):
        return "Next I do this.\n" + _written(*plan[done])
    return "Done: the draft is in drafts/local.md."


def _written(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@contextmanager
def serving() -> Iterator[tuple[str, LocalServer]]:
    """The server on 127.0.0.1 (port 0): its base URL (with /v1), and it."""
    server = LocalServer(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server
    finally:
        server.shutdown()
        server.server_close()


def point_at(roster: str, url: str) -> str:
    """An example roster with every tier pointed at the local server."""
    tier = f'{{provider: openai, model: {MODEL}, base_url: "{url}"}}'
    models = f"models:\n  fast: {tier}\n  deep: {tier}\n\n"
    return re.sub(r"^models:\n(?:(?:  .*|\s*)\n)*", models, roster, count=1, flags=re.M)
