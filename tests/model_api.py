"""A local stand-in of the Anthropic Messages API, for running the real Claude Code offline.

`POST /v1/messages` answers each request that offers tools with the next scripted turn (a
`tool_use` block, or text that ends the turn), streamed as server-sent events exactly as the
API streams them; any other request (a title, a summary) gets a short text. Every request body
is kept, so a test can read what the real client sent the model (the resume brief, a warning
the hook added, the tool results).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ModelApi", "Turn", "model_api"]


@dataclass(frozen=True)
class Turn:
    """One scripted reply: a tool call (`tool` and `input`), or `text` that ends the turn."""

    tool: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    text: str = ""


@dataclass
class ModelApi:
    url: str
    script: list[Turn]
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tool_requests(self) -> list[dict[str, Any]]:
        """The requests that offered tools: the agent's own turns."""
        return [r for r in self.requests if r.get("tools")]

    def next_turn(self, body: dict[str, Any]) -> Turn:
        with self.lock:
            self.requests.append(body)
            if not body.get("tools"):
                return Turn(text="ok")
            return self.script.pop(0) if self.script else Turn(text="Done.")


def _events(turn: Turn, model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    message_id = f"msg_{uuid.uuid4().hex[:24]}"
    usage = {"input_tokens": 10, "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}  # fmt: skip
    if turn.tool is not None:
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": turn.tool,
                 "input": {}}  # fmt: skip
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.input)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text}
        stop = "end_turn"
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": block}  # fmt: skip
    yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": 5}}  # fmt: skip
    yield "message_stop", {"type": "message_stop"}


def _whole(turn: Turn, model: str) -> dict[str, Any]:
    content: dict[str, Any] = (
        {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": turn.tool,
         "input": turn.input}
        if turn.tool is not None else {"type": "text", "text": turn.text}
    )  # fmt: skip
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": model, "content": [content],
            "stop_reason": "tool_use" if turn.tool else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5}}  # fmt: skip


@contextmanager
def model_api(script: list[Turn]) -> Iterator[ModelApi]:
    """Serve the stand-in on a free loopback port while the block runs."""
    api = ModelApi("", list(script))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(
                self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}"
            )
            if not self.path.startswith("/v1/messages") or self.path.startswith(
                "/v1/messages/count_tokens"
            ):
                self._json(200, {"input_tokens": 10})
                return
            turn = api.next_turn(body)
            model = str(body.get("model") or "claude-stand-in")
            if not body.get("stream"):
                self._json(200, _whole(turn, model))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for name, data in _events(turn, model):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True

        def do_GET(self) -> None:
            self._json(200, {"data": [], "has_more": False})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
