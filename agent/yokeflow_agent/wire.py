"""A small, blocking NATS client in plain Python, for processes that live for one message.

Claude Code starts the hook anew for every tool call. nats-py and its asyncio loop cost a few
hundred milliseconds to import and start, and nats-py waits two seconds before it tries a
refused server again; this client speaks the few protocol verbs the hook needs (CONNECT, SUB,
PUB/HPUB, and the replies: MSG/HMSG, PING/PONG, -ERR) over one socket, every step under one
deadline, so a hook costs milliseconds when NATS is up and fails at once when it is down.

It covers what agents' credentials use: user and password or a token in the URL, `tls://`
(the system's trust store, or `SSL_CERT_FILE`), several servers separated by commas.

It opens its socket with `_socket`, not `socket` (which imports `enum` and `selectors`, a few
milliseconds of every hook), and reads JSON with `jsonlite`, for the same reason.
"""

from __future__ import annotations

import _socket
import os
import time

from . import jsonlite as json

TYPE_CHECKING = False  # neither typing nor dataclasses: each costs the hook milliseconds
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Message", "Server", "Wire", "WireError", "mask_url"]

_CRLF = b"\r\n"


class WireError(Exception):
    """NATS refused, failed, or did not answer in time; the text says which."""


class Message:
    __slots__ = ("data", "headers", "status", "subject")

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = subject
        self.data = data
        self.headers: dict[str, str] = {}
        self.status = ""  # the status of a header block, e.g. "404" or "503"

    def json(self) -> Any:
        return json.loads(self.data)


class Server:
    """One server of a NATS URL (`nats://[user[:password]@]host[:port]`, `tls://`, or a bare
    `host:port`). Parsed here, not with urllib.parse, which costs the hook milliseconds."""

    __slots__ = ("host", "password", "port", "scheme", "user")

    def __init__(self, server: str) -> None:
        text = server.strip()
        self.scheme, _, rest = text.partition("://") if "://" in text else ("nats", "", text)
        userinfo, at, hostport = rest.split("/", 1)[0].rpartition("@")
        user, colon, password = userinfo.partition(":")
        self.user = _unquote(user) if at and user else None
        self.password = _unquote(password) if at and colon else None
        if hostport.startswith("["):  # an IPv6 address
            host, _, tail = hostport[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"port {port!r} is not a port number")
        self.host = host or "127.0.0.1"
        self.port = int(port) if port else 4222

    def masked(self) -> str:
        """For printing: credentials shown as ***."""
        auth = "***@" if self.user or self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote  # only for percent-encoded credentials

    return unquote(text)


def mask_url(url: str) -> str:
    """A server list fit for printing: credentials shown as ***."""
    masked = []
    for server in url.split(","):
        try:
            masked.append(Server(server).masked())
        except ValueError:
            masked.append("(unparsable server)")
    return ",".join(masked)


def _open(host: str, port: int, timeout: float) -> Any:
    """`socket.create_connection((host, port), timeout)` with `_socket`; the host is handed to
    getaddrinfo as bytes, which spares an ASCII name the `idna` codec (and `stringprep`)."""
    name = host.encode("idna") if not host.isascii() else host.encode()
    error: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return sock
    raise error


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WireError("timed out")
    return left


class Wire:
    """One connection. Every call takes an absolute `time.monotonic()` deadline."""

    def __init__(self, sock: Any, info: dict[str, Any], inbox: str) -> None:
        self._sock = sock
        self.info = info
        self._buffer = b""
        self._inbox = inbox
        self._next_reply = 0
        self._subscriptions: dict[str, str] = {}  # sid -> subject
        self._pending: list[tuple[str, Message]] = []  # (sid, message) read ahead

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    def connect(cls, url: str, inbox_prefix: str, deadline: float, name: str) -> Wire:
        """Connect to the first server of `url` that accepts; raise WireError naming why not."""
        problems = []
        for server in [s.strip() for s in url.split(",") if s.strip()]:
            try:
                return cls._connect_one(server, inbox_prefix, deadline, name)
            except (OSError, WireError, ValueError) as exc:
                problems.append(f"{mask_url(server)}: {exc}")
        raise WireError("; ".join(problems) or "no server in NATS_URL")

    @classmethod
    def _connect_one(cls, server: str, inbox_prefix: str, deadline: float, name: str) -> Wire:
        parts = Server(server)
        if parts.scheme not in ("nats", "tls"):
            raise WireError(f"unsupported scheme {parts.scheme!r} (nats:// or tls://)")
        host, port = parts.host, parts.port
        sock = _open(host, port, min(_remaining(deadline), 1.0))
        wire = cls(sock, {}, f"{inbox_prefix}.{os.urandom(8).hex()}")
        try:
            kind, line, _ = wire._read_op(deadline)
            if kind != "INFO":
                raise WireError(f"not a NATS server (said {line[:40]!r})")
            wire.info = json.loads(line[5:])
            tls = parts.scheme == "tls" or bool(wire.info.get("tls_required"))
            if tls:
                import socket
                import ssl

                sock = socket.socket(fileno=sock.detach())  # what `ssl` wraps
                context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
                sock.settimeout(_remaining(deadline))
                wire._sock = context.wrap_socket(sock, server_hostname=host)
            options: dict[str, Any] = {
                "verbose": False,
                "pedantic": False,
                "tls_required": tls,
                "name": name,
                "lang": "python-stdlib",
                "version": "1",
                "protocol": 1,
                "headers": True,
                "no_responders": True,
            }
            if parts.user and parts.password is not None:
                options.update(user=parts.user, **{"pass": parts.password})
            elif parts.user:
                options["auth_token"] = parts.user
            wire._send(b"CONNECT " + json.dumps(options).encode() + _CRLF + b"PING" + _CRLF)
            while True:
                kind, line, _ = wire._read_op(deadline)
                if kind == "PONG":
                    break
                if kind == "-ERR":
                    raise WireError(f"refused: {line[5:].strip(chr(39))}")
            wire._send(f"SUB {wire._inbox}.* 1".encode() + _CRLF)
            wire._subscriptions["1"] = f"{wire._inbox}.*"
            return wire
        except BaseException:
            wire.close()
            raise

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    # -- protocol ---------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise WireError(f"connection lost: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        self._sock.settimeout(_remaining(deadline))
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise WireError("timed out") from None
        except OSError as exc:
            raise WireError(f"connection lost: {exc}") from exc
        if not chunk:
            raise WireError("the server closed the connection")
        self._buffer += chunk

    def _line(self, deadline: float) -> str:
        while _CRLF not in self._buffer:
            self._fill(deadline)
        line, self._buffer = self._buffer.split(_CRLF, 1)
        return line.decode("utf-8", "replace")

    def _exactly(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size + 2:
            self._fill(deadline)
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    def _read_op(self, deadline: float) -> tuple[str, str, tuple[str, Message] | None]:
        """The next protocol operation: (verb, line, (sid, message) for MSG/HMSG)."""
        line = self._line(deadline)
        verb = line.split(" ", 1)[0].upper()
        if verb == "PING":
            self._send(b"PONG" + _CRLF)
        elif verb in ("MSG", "HMSG"):
            args = line.split(" ")
            subject, sid = args[1], args[2]
            if verb == "MSG":
                data = self._exactly(int(args[-1]), deadline)
                return verb, line, (sid, Message(subject, data))
            header_size, total = int(args[-2]), int(args[-1])
            raw = self._exactly(total, deadline)
            message = Message(subject, raw[header_size:])
            head = raw[:header_size].decode("utf-8", "replace").split("\r\n")
            message.status = head[0][len("NATS/1.0") :].strip().split(" ", 1)[0]
            for entry in head[1:]:
                if ":" in entry:
                    key, value = entry.split(":", 1)
                    message.headers[key.strip()] = value.strip()
            return verb, line, (sid, message)
        return verb, line, None

    def _next_message(self, deadline: float, sid: str | None = None) -> tuple[str, Message]:
        for index, (got, _) in enumerate(self._pending):
            if sid is None or got == sid:
                return self._pending.pop(index)
        while True:
            verb, line, delivered = self._read_op(deadline)
            if verb == "-ERR":
                raise WireError(line[5:].strip("'"))
            if delivered is not None:
                if sid is None or delivered[0] == sid:
                    return delivered
                self._pending.append(delivered)

    # -- what callers use -------------------------------------------------------------------

    def subscribe(self, subject: str, sid: str) -> None:
        self._send(f"SUB {subject} {sid}".encode() + _CRLF)
        self._subscriptions[sid] = subject

    def publish(self, subject: str, data: bytes, reply: str = "", **headers: str) -> None:
        reply_part = f" {reply}" if reply else ""
        if headers:
            head = (
                "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            ).encode()
            verb = f"HPUB {subject}{reply_part} {len(head)} {len(head) + len(data)}"
            self._send(verb.encode() + _CRLF + head + data + _CRLF)
        else:
            self._send(f"PUB {subject}{reply_part} {len(data)}".encode() + _CRLF + data + _CRLF)

    def request(self, subject: str, data: bytes, deadline: float, **headers: str) -> Message:
        """Publish and wait for the one reply (a 503 status: nobody serves `subject`)."""
        self._next_reply += 1
        reply = f"{self._inbox}.{self._next_reply}"
        self.publish(subject, data, reply, **headers)
        while True:
            _, message = self._next_message(deadline, "1")
            if message.subject == reply:
                return message

    def next_on(self, sid: str, deadline: float) -> Message:
        """The next message of subscription `sid`; WireError when none comes by `deadline`."""
        return self._next_message(deadline, sid)[1]

    def flush(self, deadline: float) -> None:
        """Wait until the server has processed everything sent so far (a PING round trip)."""
        self._send(b"PING" + _CRLF)
        while True:
            verb, line, delivered = self._read_op(deadline)
            if verb == "PONG":
                return
            if verb == "-ERR":
                raise WireError(line[5:].strip("'"))
            if delivered is not None:
                self._pending.append(delivered)

    # -- JetStream --------------------------------------------------------------------------

    def js_publish(self, subject: str, data: bytes, msg_id: str, deadline: float) -> int:
        """Publish to a stream and wait for its acknowledgement; return the stream sequence."""
        if len(data) > int(self.info.get("max_payload", 1 << 20)):
            raise WireError(f"message of {len(data)} bytes exceeds the server's max_payload")
        reply = self.request(subject, data, deadline, **{"Nats-Msg-Id": msg_id})
        if reply.status == "503":
            raise WireError(f"no stream stores {subject} (has `provision` run?)")
        ack = reply.json()
        if "error" in ack:
            error = ack["error"]
            raise WireError(f"JetStream: {error.get('description')} ({error.get('err_code')})")
        return int(ack.get("seq", 0))

    def kv_get(self, bucket: str, key: str, deadline: float) -> bytes | None:
        """The value of `key` (a direct get, so the permission can name the key); None when
        there is none or it was deleted."""
        reply = self.request(f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}", b"", deadline)
        if reply.status in ("404", "408"):
            return None
        if reply.status == "503":
            raise WireError(f"no KV bucket {bucket} (has `provision` run?)")
        if reply.headers.get("KV-Operation") in ("DEL", "PURGE"):
            return None
        return reply.data
