"""Local stand-ins for Slack (incoming webhooks, and the Web API and interactivity of a Slack
app), Discord, Twilio, a Standard Webhooks receiver and an SMTP server.

Each checks a request the way the real service would (path, auth, content type, field names,
lengths) and answers as it would, so the demo, the tests and the benchmarks exercise the real
request path on loopback. Responses can be scripted (429 with Retry-After, 500 then 200, 400)
and slowed down. The Standard Webhooks receiver deduplicates on `webhook-id`, as the spec asks
of receivers: a repeat is answered 200 and kept apart (`repeats()`), never processed twice.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from aiosmtpd.controller import Controller

from yokeflow_intervention.shared.embedded import free_port

__all__ = ["HttpPeer", "Received", "ScriptedReply", "SlackPeer", "SmtpPeer", "slack_signature"]


@dataclass(frozen=True)
class ScriptedReply:
    status: int
    body: str = ""
    retry_after: str | None = None


@dataclass
class Received:
    kind: str  # slack, discord, webhook, twilio
    path: str
    headers: dict[str, str]
    body: Any
    accepted: bool
    problem: str = ""
    at: float = field(default_factory=time.perf_counter)  # when the request arrived
    repeat: bool = False  # a webhook-id this receiver had already processed


def _discord_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    embeds = payload.get("embeds") or []
    if not payload.get("content") and not embeds:
        problems.append("content or embeds required")
    if len(embeds) > 10:
        problems.append("at most 10 embeds")
    for embed in embeds:
        total = 0
        for key, limit in (("title", 256), ("description", 4096)):
            total += len(embed.get(key) or "")
            if len(embed.get(key) or "") > limit:
                problems.append(f"embed.{key} longer than {limit}")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append("more than 25 fields")
        for f in fields:
            if not f.get("name") or not f.get("value"):
                problems.append("field name and value must be non-empty")
            if len(f.get("name", "")) > 256 or len(f.get("value", "")) > 1024:
                problems.append("field name/value too long")
            total += len(f.get("name", "")) + len(f.get("value", ""))
        footer = (embed.get("footer") or {}).get("text", "")
        total += len(footer)
        if len(footer) > 2048:
            problems.append("footer too long")
        if total > 6000:
            problems.append(f"embed total {total} > 6000")
        if not isinstance(embed.get("color", 0), int):
            problems.append("color must be an integer")
    rows = payload.get("components") or []
    if len(rows) > 5:
        problems.append("at most 5 action rows")
    for row in rows:
        buttons = row.get("components") or []
        if row.get("type") != 1 or not 0 < len(buttons) <= 5:
            problems.append("an action row (type 1) holds 1-5 buttons")
        for button in buttons:
            if button.get("type") != 2 or button.get("style") != 5 or "custom_id" in button:
                problems.append("a webhook may send link buttons only (type 2, style 5)")
            if (
                not 0 < len(button.get("label", "")) <= 80
                or not 0 < len(button.get("url", "")) <= 512
            ):
                problems.append("a link button needs a label (80) and a url (512)")
    return problems


def _slack_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(payload.get("text"), str) and not payload.get("blocks"):
        problems.append("text or blocks required")
    for attachment in payload.get("attachments") or []:
        for f in attachment.get("fields") or []:
            if not isinstance(f.get("title"), str) or not isinstance(f.get("value"), str):
                problems.append("attachment fields need string title and value")
    return problems


def _pagerduty_problems(event: dict[str, Any]) -> list[str]:
    """PagerDuty Events API v2, as documented: a 32-character routing key, an event action, a
    dedup key (required to acknowledge or resolve; at most 255 characters), and for a trigger a
    payload with a summary (at most 1024), a source and a known severity."""
    problems = []
    if len(str(event.get("routing_key", ""))) != 32:
        problems.append("routing_key must be 32 characters")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("event_action must be trigger, acknowledge or resolve")
    if not event.get("dedup_key") or len(str(event["dedup_key"])) > 255:
        problems.append("dedup_key is required (this peer expects one on every event)")
    if action == "trigger":
        payload = event.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024:
            problems.append("payload.summary is required, at most 1024 characters")
        if not payload.get("source"):
            problems.append("payload.source is required")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            problems.append("payload.severity must be critical, error, warning or info")
    return problems


class _LoopbackServer:
    """A threaded HTTP server on a free loopback port whose POSTs go to `_handle`; a context
    manager that starts and stops it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.port = free_port()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                peer._handle(self)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 refuses bursts of webhooks

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class HttpPeer(_LoopbackServer):
    """One HTTP server for every webhook kind and Twilio's Messages API."""

    def __init__(
        self,
        twilio_sid: str = "AC00000000000000000000000000000000",
        twilio_token: str = "test-token",
        webhook_secret: str | None = None,
    ) -> None:
        self.twilio_sid, self.twilio_token = twilio_sid, twilio_token
        self.webhook_secret = webhook_secret
        self.received: list[Received] = []
        self.processed_ids: set[str] = set()
        self.pagerduty: dict[str, str] = {}  # dedup_key -> the incident's last event_action
        self.scripts: dict[str, deque[ScriptedReply]] = defaultdict(deque)
        self.delay: dict[str, float] = {}
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def slack_url(self) -> str:
        return f"{self.base_url}/services/T0001/B0001/{uuid.uuid4().hex[:24]}"

    def discord_url(self) -> str:
        return f"{self.base_url}/api/webhooks/1234567890/{uuid.uuid4().hex}"

    def webhook_url(self) -> str:
        return f"{self.base_url}/hooks/{uuid.uuid4().hex[:8]}"

    def script(self, kind: str, *replies: ScriptedReply) -> None:
        with self.lock:
            self.scripts[kind].extend(replies)

    def accepted(self, kind: str | None = None) -> list[Received]:
        """What the receivers processed: accepted requests, less deduplicated repeats."""
        with self.lock:
            return [
                r
                for r in self.received
                if r.accepted and not r.repeat and (kind is None or r.kind == kind)
            ]

    def repeats(self) -> list[Received]:
        """Webhook messages received again under an id already processed (and dropped)."""
        with self.lock:
            return [r for r in self.received if r.repeat]

    def _kind(self, path: str) -> str:
        if path.startswith("/services/"):
            return "slack"
        if path.startswith("/api/webhooks/"):
            return "discord"
        if path.startswith("/2010-04-01/Accounts/"):
            return "twilio"
        if path == "/v2/enqueue":
            return "pagerduty"
        return "webhook"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        kind = self._kind(parts.path)
        raw = request.rfile.read(int(request.headers.get("content-length") or 0))
        arrived = time.perf_counter()
        headers = {k.lower(): v for k, v in request.headers.items()}
        time.sleep(self.delay.get(kind, 0.0))
        with self.lock:
            scripted = self.scripts[kind].popleft() if self.scripts[kind] else None
        status, reply, problem, body = self._check(kind, parts, headers, raw)
        if scripted is not None and status < 300:
            status, reply, problem = scripted.status, scripted.body, f"scripted {scripted.status}"
        with self.lock:
            message_id = headers.get("webhook-id") if kind == "webhook" else None
            repeat = status < 300 and message_id is not None and message_id in self.processed_ids
            if status < 300 and message_id is not None:
                self.processed_ids.add(message_id)
            self.received.append(
                Received(kind, parts.path, headers, body, status < 300, problem, arrived, repeat)
            )
        request.send_response(status)
        if scripted is not None and scripted.retry_after is not None:
            request.send_header("Retry-After", scripted.retry_after)
        content_type = "application/json" if reply.startswith(("{", "[")) else "text/plain"
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(reply.encode())))
        request.end_headers()
        request.wfile.write(reply.encode())

    def _check(
        self, kind: str, parts: Any, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, str, Any]:
        if kind == "twilio":
            return self._check_twilio(parts.path, headers, raw)
        if not headers.get("content-type", "").startswith("application/json"):
            return 400, "invalid_payload", "content type is not JSON", raw.decode(errors="replace")
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", "body is not JSON", raw.decode(errors="replace")
        if kind == "pagerduty":
            problems = _pagerduty_problems(payload)
            if problems:
                reply = {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                }
                return 400, json.dumps(reply), "; ".join(problems), payload
            with self.lock:
                self.pagerduty[payload["dedup_key"]] = payload["event_action"]
            reply = {
                "status": "success",
                "message": "Event processed",
                "dedup_key": payload["dedup_key"],
            }
            return 202, json.dumps(reply), "", payload
        if kind == "slack":
            problems = _slack_problems(payload)
            return (
                (400, "invalid_payload", "; ".join(problems), payload)
                if problems
                else (200, "ok", "", payload)
            )
        if kind == "discord":
            if parse_qs(parts.query).get("wait") != ["true"]:
                return (
                    400,
                    '{"message": "wait=true expected by this peer"}',
                    "no wait=true",
                    payload,
                )
            if payload.get("components") and parse_qs(parts.query).get("with_components") != [
                "true"
            ]:
                payload.pop("components")  # as Discord does: ignored without the parameter
            problems = _discord_problems(payload)
            if problems:
                return (
                    400,
                    json.dumps({"code": 50035, "message": "Invalid Form Body", "errors": problems}),
                    "; ".join(problems),
                    payload,
                )
            return (
                200,
                json.dumps({"id": str(uuid.uuid4().int)[:18], "embeds": payload.get("embeds")}),
                "",
                payload,
            )
        if self.webhook_secret is not None:
            problem = self._check_signature(headers, raw)
            if problem:
                return 401, problem, problem, payload
        return 200, "{}", "", payload

    def _check_signature(self, headers: dict[str, str], raw: bytes) -> str:
        msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature", "").split()
        if not (msg_id and ts and signatures):
            return "missing Standard Webhooks headers"
        if abs(time.time() - int(ts)) > 300:
            return "timestamp too far from now"
        assert self.webhook_secret is not None
        key = base64.b64decode(self.webhook_secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
        ).decode()
        if not any(hmac.compare_digest(s.split(",", 1)[-1], expected) for s in signatures):
            return "bad signature"
        return ""

    def _check_twilio(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, str, Any]:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        expected_path = f"/2010-04-01/Accounts/{self.twilio_sid}/Messages.json"
        auth = base64.b64encode(f"{self.twilio_sid}:{self.twilio_token}".encode()).decode()
        if path != expected_path:
            return (
                404,
                json.dumps({"code": 20404, "message": "not found", "status": 404}),
                "bad path",
                form,
            )
        if headers.get("authorization") != f"Basic {auth}":
            return (
                401,
                json.dumps({"code": 20003, "message": "Authenticate", "status": 401}),
                "bad auth",
                form,
            )
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return (
                400,
                json.dumps({"code": 20001, "message": "form expected", "status": 400}),
                "not a form",
                form,
            )
        to = form.get("To", "")
        if not form.get("From") or not form.get("Body"):
            return (
                400,
                json.dumps({"code": 21602, "message": "Body and From required", "status": 400}),
                "missing field",
                form,
            )
        digits = to[1:]
        north_american_ok = not digits.startswith("1") or len(digits) == 11
        if not (
            to.startswith("+") and digits.isdigit() and 8 <= len(digits) <= 15 and north_american_ok
        ):
            return (
                400,
                json.dumps(
                    {
                        "code": 21211,
                        "message": f"The 'To' number {to} is not a valid phone number.",
                        "status": 400,
                    }
                ),
                "21211",
                form,
            )
        sid = "SM" + uuid.uuid4().hex
        reply = {
            "sid": sid,
            "account_sid": self.twilio_sid,
            "to": to,
            "from": form["From"],
            "body": form["Body"],
            "status": "queued",
            "num_segments": "1",
            "uri": f"{expected_path[:-5]}/{sid}.json",
        }
        return 201, json.dumps(reply), "", form


@dataclass
class _Mailbox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpPeer:
    """An aiosmtpd server on a free loopback port that keeps every message it accepts."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return self.mailbox.messages

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Slack puts in X-Slack-Signature, as its documentation defines it: `v0=` and the hex
    HMAC-SHA256, keyed with the signing secret, of `v0:<timestamp>:<raw body>`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _text(
    obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> list[str]:
    """A Block Kit text object of one of `kinds`, with 1 to `limit` characters."""
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where} must be a {' or '.join(kinds)} text object"]
    if not isinstance(obj.get("text"), str) or not 0 < len(obj["text"]) <= limit:
        return [f"{where}.text must be 1-{limit} characters"]
    return []


def _plain(obj: Any, where: str, limit: int) -> list[str]:
    return _text(obj, where, limit, ("plain_text",))


def block_kit_problems(blocks: Any, most: int = 50) -> list[str]:
    """Block Kit's documented limits for the blocks this project sends (section, header,
    context, actions with buttons, input with a plain-text input)."""
    if not isinstance(blocks, list) or not 0 < len(blocks) <= most:
        return [f"blocks must be a list of 1-{most} blocks"]
    problems: list[str] = []
    action_ids: set[str] = set()
    for n, block in enumerate(blocks):
        where, kind = f"blocks[{n}]", block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            problems += _plain(block.get("text"), f"{where}.text", 150)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where} needs text or fields")
            if "text" in block:
                problems += _text(block["text"], f"{where}.text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"{where}.fields: at most 10")
            for m, f in enumerate(fields):
                problems += _text(f, f"{where}.fields[{m}]", 2000)
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 10:
                problems.append(f"{where}.elements: 1-10")
            for m, e in enumerate(elements):
                problems += _text(e, f"{where}.elements[{m}]", 3000)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 25:
                problems.append(f"{where}.elements: 1-25")
            for m, e in enumerate(elements):
                at = f"{where}.elements[{m}]"
                if e.get("type") != "button":
                    problems.append(f"{at}: only buttons expected")
                    continue
                problems += _plain(e.get("text"), f"{at}.text", 75)
                action_id = e.get("action_id", "")
                if not 0 < len(action_id) <= 255 or action_id in action_ids:
                    problems.append(f"{at}.action_id must be unique, 1-255 characters")
                action_ids.add(action_id)
                if len(e.get("value", "")) > 2000 or len(e.get("url", "")) > 3000:
                    problems.append(f"{at}: value or url too long")
                if e.get("style") not in (None, "primary", "danger"):
                    problems.append(f"{at}.style must be primary or danger")
        elif kind == "input":
            problems += _plain(block.get("label"), f"{where}.label", 2000)
            element = block.get("element") or {}
            if element.get("type") != "plain_text_input" or not element.get("action_id"):
                problems.append(f"{where}.element must be a plain_text_input with an action_id")
        else:
            problems.append(f"{where}: unexpected block type {kind!r}")
    return problems


@dataclass
class SlackCall:
    method: str  # chat.postMessage, chat.update, views.open, response_url
    body: Any
    ok: bool
    error: str = ""
    at: float = field(default_factory=time.perf_counter)


class SlackPeer(_LoopbackServer):
    """Slack, strictly, for a Slack app: the Web API methods it calls (chat.postMessage,
    chat.update, views.open) answered as Slack answers them (HTTP 200, JSON, `ok`, an `error`
    code such as invalid_auth, channel_not_found, message_not_found, invalid_blocks,
    expired_trigger_id), the `response_url` of each click, and the interactivity requests
    themselves, signed as Slack documents."""

    def __init__(self, token: str, signing_secret: str, channels: tuple[str, ...]) -> None:
        self.token, self.signing_secret, self.channels = token, signing_secret, set(channels)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> message
        self.calls: list[SlackCall] = []
        self.triggers: dict[str, float] = {}  # trigger_id -> when it was issued
        self._ts = 1_700_000_000
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def ok_calls(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.ok]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path).path
        raw = request.rfile.read(int(request.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in request.headers.items()}
        if path.startswith("/response/"):
            reply, status = self._response_url(headers, raw), 200
            self._send(request, status, "text/plain", reply)
            return
        method = path.removeprefix("/api/")
        body: Any = raw.decode(errors="replace")
        if headers.get("authorization") != f"Bearer {self.token}":
            error = "not_authed" if "authorization" not in headers else "invalid_auth"
        elif not headers.get("content-type", "").startswith("application/json"):
            error = "invalid_form_data"
        else:
            try:
                body = json.loads(raw)
                error = self._check(method, body)
            except ValueError:
                error = "invalid_json"
        result: dict[str, Any] = {"ok": not error}
        if error:
            result["error"] = error
        else:
            result.update(self._apply(method, body))
        with self.lock:
            self.calls.append(SlackCall(method, body, not error, error))
        self._send(request, 200, "application/json; charset=utf-8", json.dumps(result))

    def _check(self, method: str, body: dict[str, Any]) -> str:
        if method == "chat.postMessage" or method == "chat.update":
            if body.get("channel") not in self.channels:
                return "channel_not_found"
            if not isinstance(body.get("text"), str) or not body["text"]:
                return "no_text"  # a fallback text is expected with blocks
            if block_kit_problems(body.get("blocks")):
                return "invalid_blocks"
            if method == "chat.update" and (body["channel"], body.get("ts")) not in self.messages:
                return "message_not_found"
            return ""
        if method == "views.open":
            with self.lock:
                issued = self.triggers.pop(str(body.get("trigger_id")), None)
            if issued is None:
                return "invalid_trigger_id"
            if time.monotonic() - issued > 3.0:
                return "expired_trigger_id"
            view = body.get("view") or {}
            problems = block_kit_problems(view.get("blocks"), 100)
            problems += _plain(view.get("title"), "view.title", 24)
            problems += _plain(view.get("submit"), "view.submit", 24)
            if view.get("type") != "modal" or len(view.get("private_metadata", "")) > 3000:
                problems.append("view must be a modal with at most 3000 characters of metadata")
            return "invalid_arguments" if problems else ""
        return "unknown_method"

    def _apply(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if method == "chat.postMessage":
                self._ts += 1
                ts = f"{self._ts}.000100"
                self.messages[(body["channel"], ts)] = body
                return {"channel": body["channel"], "ts": ts, "message": {"text": body["text"]}}
            if method == "chat.update":
                self.messages[(body["channel"], body["ts"])] = body
                return {"channel": body["channel"], "ts": body["ts"], "text": body["text"]}
            return {"view": {"id": "V" + uuid.uuid4().hex[:10].upper(), **body["view"]}}

    def _response_url(self, headers: dict[str, str], raw: bytes) -> str:
        try:
            body = json.loads(raw)
            ok = headers.get("content-type", "").startswith("application/json") and bool(
                body.get("text") or body.get("blocks")
            )
        except ValueError:
            body, ok = raw.decode(errors="replace"), False
        with self.lock:
            self.calls.append(SlackCall("response_url", body, ok, "" if ok else "invalid"))
        return "ok" if ok else "invalid_payload"

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, kind: str, reply: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(reply.encode())))
        request.end_headers()
        request.wfile.write(reply.encode())

    # Slack's side of interactivity: what it POSTs to the app's request URL.

    def _user(self, user: str, team: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}

    def block_actions(
        self, action_id: str, channel: str, ts: str, user: str = "U0ANA", team: str = "T0TEAM"
    ) -> dict[str, Any]:
        """A click on one of the message's buttons, as Slack describes it."""
        message = self.messages[(channel, ts)]
        button = next(
            e
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        trigger = f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
        with self.lock:
            self.triggers[trigger] = time.monotonic()
        return {
            "type": "block_actions",
            "team": {"id": team, "domain": "example"},
            "user": self._user(user, team),
            "api_app_id": "A0APP",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "trigger_id": trigger,
            "channel": {"id": channel, "name": "incidents"},
            "message": {"ts": ts, "text": message["text"], "blocks": message["blocks"]},
            "response_url": f"http://127.0.0.1:{self.port}/response/{uuid.uuid4().hex}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "incident",
                    "text": button["text"],
                    "value": button.get("value", ""),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def view_submission(
        self,
        view: dict[str, Any],
        values: dict[str, str],
        user: str = "U0ANA",
        team: str = "T0TEAM",
    ) -> dict[str, Any]:
        """The modal `view` (as opened) submitted with its inputs' `values`
        (block_id = action_id)."""
        state = {k: {k: {"type": "plain_text_input", "value": v}} for k, v in values.items()}
        return {
            "type": "view_submission",
            "team": {"id": team, "domain": "example"},
            "user": self._user(user, team),
            "api_app_id": "A0APP",
            "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}",
            "view": {**view, "id": "V0VIEW", "state": {"values": state}},
            "response_urls": [],
        }

    def signed(
        self, payload: dict[str, Any], timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The request Slack sends for `payload`: form-encoded, timestamped, signed."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack_signature(secret or self.signing_secret, stamp, body),
        }
