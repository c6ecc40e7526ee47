"""The hook's plain-Python pieces, which replace library calls to start faster: each must give
exactly what the library gives."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from yokeflow_agent.events import utc_now_iso
from yokeflow_agent.names import event_id_for
from yokeflow_agent.wire import Server, mask_url


@pytest.mark.parametrize(
    ("project", "session", "seq"),
    [("shop", "s-1", 0), ("ß-ünïcode", "claude/1", 2**40), ("", "", -1)],
)
def test_event_ids_are_uuid5_of_the_events_place(project: str, session: str, seq: int) -> None:
    name = f"yokeflow:{project}/{session}/{seq}"
    assert event_id_for(project, session, seq) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def test_timestamps_are_iso_utc_with_microseconds() -> None:
    stamp = utc_now_iso()
    assert stamp.endswith("Z") and len(stamp) == len("2026-12-03T15:45:27.123456Z")
    assert abs(datetime.fromisoformat(stamp).timestamp() - datetime.now().timestamp()) < 5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nats://127.0.0.1:4222", ("nats", None, None, "127.0.0.1", 4222)),
        ("localhost", ("nats", None, None, "localhost", 4222)),
        ("localhost:5000", ("nats", None, None, "localhost", 5000)),
        (
            "tls://agent-shop:p%40ss:w@nats.example:443",
            ("tls", "agent-shop", "p@ss:w", "nats.example", 443),
        ),
        ("nats://s3cr3t-token@host", ("nats", "s3cr3t-token", None, "host", 4222)),
        ("nats://u:@host:1", ("nats", "u", "", "host", 1)),
        ("nats://[::1]:4223", ("nats", None, None, "::1", 4223)),
        ("nats://[::1]", ("nats", None, None, "::1", 4222)),
        (" nats://a@b@host:7/ ", ("nats", "a@b", None, "host", 7)),
    ],
)
def test_servers_parse_as_nats_clients_read_them(url: str, expected: tuple[object, ...]) -> None:
    server = Server(url)
    assert (server.scheme, server.user, server.password, server.host, server.port) == expected


@pytest.mark.parametrize("url", ["nats://host:99999", "nats://host:0", "nats://host:42a"])
def test_a_bad_port_is_named(url: str) -> None:
    with pytest.raises(ValueError, match="not a port number"):
        Server(url)


def test_printed_urls_never_show_credentials() -> None:
    masked = mask_url("nats://agent-shop:hunter2@a:4222, tls://tok@[::1]:1,nats://b:bad")
    assert masked == "nats://***@a:4222,tls://***@[::1]:1,(unparsable server)"
    assert "hunter2" not in masked and "tok" not in masked
