"""A local stand-in of the model APIs the real agent CLIs call, for running them offline.

`POST /v1/messages` (the Anthropic Messages API, for Claude Code) and `POST /v1/responses` (the
OpenAI Responses API, for Codex) answer each request that offers tools with the next scripted
turn (a tool call, or text that ends the turn), streamed as server-sent events exactly as each
API streams them; any other request (a title, a summary) gets a short text. A scripted `Bash`
call becomes the shell tool the client offers. Every request body is kept, so a test can read
what the real client sent the model (the resume brief, a warning the hook added, the tool
results).
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
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
    )
    if turn.tool is not None:
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": turn.tool,
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.input)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text}
        stop = "end_turn"
    yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _whole(turn: Turn, model: str) -> dict[str, Any]:
    content: dict[str, Any] = (
        {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": turn.tool,
            "input": turn.input,
        }
        if turn.tool is not None
        else {"type": "text", "text": turn.text}
    )
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [content],
        "stop_reason": "tool_use" if turn.tool else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def _shell_call(turn: Turn, tools: list[Any]) -> tuple[str, str]:
    """(name, arguments) of a scripted `Bash` call as the shell tool a Responses client
    offers: `exec_command` takes `cmd`, `shell_command` a string, `shell` an argv."""
    names = {str(t.get("name")) for t in tools if isinstance(t, dict)}
    command = str(turn.input.get("command", ""))
    if turn.tool != "Bash":
        return str(turn.tool), json.dumps(turn.input)
    if "bash" in names:  # Copilot CLI, OpenCode
        return "bash", json.dumps({"command": command, "description": "Run the command"})
    if "exec_command" in names:
        return "exec_command", json.dumps({"cmd": command})
    if "shell_command" in names:
        return "shell_command", json.dumps({"command": command})
    return "shell", json.dumps({"command": ["bash", "-lc", command]})


def _responses(turn: Turn, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Responses API's stream of one turn."""
    response_id = f"resp_{uuid.uuid4().hex[:24]}"
    yield "response.created", {"type": "response.created", "response": {"id": response_id}}
    if turn.tool is not None:
        name, arguments = _shell_call(turn, list(body.get("tools") or []))
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:24]}",
            "name": name,
            "arguments": arguments,
            "call_id": f"call_{uuid.uuid4().hex[:24]}",
        }
    else:
        item = {
            "type": "message",
            "role": "assistant",
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
        }
    yield (
        "response.output_item.done",
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    )
    usage = {
        "input_tokens": 10,
        "input_tokens_details": None,
        "output_tokens": 5,
        "output_tokens_details": None,
        "total_tokens": 15,
    }
    yield (
        "response.completed",
        {"type": "response.completed", "response": {"id": response_id, "usage": usage}},
    )


def _chat_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Chat Completions tools as the Responses API lists them (name at the top)."""
    tools = body.get("tools") or []
    return [t.get("function", t) for t in tools if isinstance(t, dict)]


def _chat(turn: Turn, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Chat Completions stream of one turn (unnamed events; the caller ends it [DONE])."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": str(body.get("model") or "stand-in"),
    }
    if turn.tool is not None:
        name, arguments = _shell_call(turn, _chat_tools(body))
        call = {
            "index": 0,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        delta: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        delta, finish = {"role": "assistant", "content": turn.text}, "stop"
    yield "", {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    yield (
        "",
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage},
    )


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
            if self.path.rstrip("/").endswith("/chat/completions"):
                chunks = list(_chat(api.next_turn(body), body))
                if body.get("stream"):
                    self._stream(iter(chunks), done="data: [DONE]\n\n")
                    return
                message = {**chunks[0][1]["choices"][0]["delta"]}
                choice = {
                    "index": 0,
                    "message": message,
                    "finish_reason": chunks[1][1]["choices"][0]["finish_reason"],
                }
                self._json(200, {**chunks[1][1], "object": "chat.completion", "choices": [choice]})
                return
            if self.path.startswith("/v1/responses"):
                self._stream(_responses(api.next_turn(body), body))
                return
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
            self._stream(_events(turn, model))

        def _stream(self, events: Iterator[tuple[str, dict[str, Any]]], done: str = "") -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for name, data in events:
                head = f"event: {name}\n" if name else ""
                self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(done.encode())
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


def gemini_responses(script: list[Turn]) -> str:
    """The script as Gemini CLI's `--fake-responses-non-strict` file: a JSONL line per
    `generateContentStream` answer (Gemini reads it instead of calling any API). A `Bash`
    call becomes `run_shell_command`."""
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    lines = []
    for turn in script:
        if turn.tool is not None:
            name = "run_shell_command" if turn.tool == "Bash" else turn.tool
            args = {"command": turn.input["command"]} if turn.tool == "Bash" else turn.input
            part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        else:
            part = {"text": turn.text}
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}],
            "usageMetadata": usage,
        }
        lines.append(json.dumps({"method": "generateContentStream", "response": [chunk]}))
    return "\n".join(lines) + "\n"
