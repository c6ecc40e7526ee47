"""Hostile and heavy input against real services: every message is handled or dead-lettered,
nothing stalls, nothing grows without bound."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import psutil
import pytest
from yokeflow_agent.contract import CONSUMERS

from tests.peers import HttpPeer, SmtpPeer
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import agent_event, collect, eventually, publish_events, start_api

pytestmark = pytest.mark.integration


def port_conflict(project: str, session: str, seq: int = 1, **extra: object) -> dict:
    return agent_event(
        project,
        session,
        seq,
        type="error",
        message="Error: listen EADDRINUSE: address already in use :::3000",
        **extra,
    )


async def paused_row(db, session: str) -> dict | None:
    row = await db.fetchrow("SELECT * FROM paused_sessions WHERE session_id = $1", session)
    return dict(row) if row else None


async def test_deeply_nested_events_never_stall_the_detector(nc, db, services, unique):
    """1,000 events nested 2,000 deep are dead-lettered with the reason, and another project's
    critical error is still paused at once."""
    services.start("detector")
    services.start("pauser")
    project, victim = unique("deep"), unique("victim")
    dlq = await collect(nc, "agent.dlq")
    js = nc.jetstream()
    nested = ("[" * 2000 + "]" * 2000).encode()
    for n in range(1000):
        body = json.dumps(
            agent_event(
                project, f"s{n}", 1, type="tool_call", tool="Bash", input={"command": "PLACEHOLDER"}
            )
        ).encode()
        await js.publish(f"agent.events.{project}.s{n}", body.replace(b'"PLACEHOLDER"', nested))
    session = unique("s")
    await publish_events(nc, [port_conflict(victim, session)])

    assert await eventually(lambda: paused_row(db, session), timeout=30, what="the pause")
    mine = lambda: [m for m in dlq.messages if f".{project}." in m["original_subject"]]  # noqa: E731
    await eventually(lambda: len(mine()) == 1000, timeout=60, what="1,000 dead letters")
    assert all("nested deeper than 64 levels" in m["reason"] for m in mine())
    for partition in CONSUMERS.detector_events:
        info = await js.consumer_info(partition.stream, partition.durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0, partition.durable


async def test_an_intervention_from_a_huge_event_is_clipped_and_the_session_paused(
    nc, db, services, unique
):
    """An event just under the largest the bus stores (a huge task and error text) would make an
    intervention over it: the fields are clipped and the pause happens."""
    services.start("detector")
    services.start("pauser")
    project, session = unique("huge"), unique("s")
    detected = await collect(nc, f"intervention.detected.{project}")
    task = {"id": "T-1", "description": "d" * 120_000}
    event = port_conflict(project, session, task=task)
    event["message"] += "\n" + "x" * 120_000
    await publish_events(nc, [event])
    row = await eventually(lambda: paused_row(db, session), timeout=30, what="the pause")
    assert row["pause_type"] == "critical_error"
    assert len(json.dumps(detected.messages[0])) < 64 * 1024
    assert "characters clipped]" in detected.messages[0]["task"]["description"]


async def test_extreme_values_are_refused_or_cleaned_at_the_contract(nc, db, services, unique):
    services.start("detector")
    services.start("pauser")
    project = unique("extreme")
    big_seq, binary = unique("s"), unique("s")
    dlq = await collect(nc, "agent.dlq")
    await publish_events(nc, [agent_event(project, big_seq, 2**31, type="heartbeat")])
    letter = await eventually(
        lambda: [m for m in dlq.messages if big_seq in m["original_subject"]], what="dead letter"
    )
    assert letter[0]["reason"].startswith("seq: ") and "2147483647" in letter[0]["reason"]

    # A NUL (binary output) and a lone surrogate in the error text: the pause still happens.
    raw = json.dumps(port_conflict(project, binary))
    raw = raw.replace(":::3000", ":::3000 \\u0000\\ud800 bin")
    await nc.jetstream().publish(
        f"agent.events.{project}.{binary}", raw.encode(), headers={"Nats-Msg-Id": binary}
    )
    row = await eventually(lambda: paused_row(db, binary), timeout=30, what="the pause")
    assert "\ufffd\ufffd bin" in json.loads(row["blocker_info"])["error_excerpt"]


async def test_a_live_reader_that_never_reads_is_dropped_not_buffered(nc, infra, services):
    base, api = await start_api(services)
    stalled = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.5)
    process = psutil.Process(api.pid)
    before = process.memory_info().rss
    payload = b"{" + b" " * (1024 * 1024 - 2) + b"}"
    for _ in range(200):
        await nc.publish("intervention.noise.flood", payload)
    await nc.flush()
    await asyncio.sleep(2.0)
    grown = (process.memory_info().rss - before) / 2**20
    # Unbounded, it held all 200 MB for the stalled reader; bounded, a few MB at most.
    assert grown < 64, f"the API grew by {grown:.0f} MB"
    stalled.settimeout(10)
    received = b""
    while b"event: dropped" not in received:
        chunk = stalled.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    stalled.close()
    # What reached the reader is what the kernel's socket buffers held, plus the bounded queue.
    assert b"event: dropped" in received and len(received) < 32 * 2**20
    # A reader that keeps up still gets live events.
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream("GET", "/api/events") as stream:
            await nc.publish("intervention.paused.live", b'{"ok": true}')
            async for line in stream.aiter_lines():
                if line.startswith("event: paused"):
                    break


async def test_bad_preferences_and_ids_are_refused_with_the_field_named(services, unique):
    base, _ = await start_api(services)
    project = unique("prefs")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for url in ("https://example.com:99999/hook", "https://example.com/x\r\nX-Evil: 1"):
            reply = await client.post(
                f"/api/projects/{project}/notifications/preferences",
                json={"webhook_enabled": True, "webhook_url": url},
            )
            assert reply.status_code == 422, reply.text
            assert "webhook_url" in reply.text
        reply = await client.post(
            f"/api/projects/{project}/notifications/preferences",
            json={"email_enabled": True, "email_addresses": ["a,b@c.d"]},
        )
        assert reply.status_code == 422 and "email_addresses" in reply.text
        for path in ("/api/interventions/a%00b", "/api/interventions/..%2F..%2Fetc"):
            assert (await client.get(path)).status_code in (404, 422), path
        assert (await client.get("/api/interventions/a%00b")).status_code == 422


async def test_agent_text_reaches_slack_and_discord_escaped_and_clipped(nc, db, services, unique):
    project_slack, project_discord = unique("slackx"), unique("discordx")
    with HttpPeer() as http:
        services.start("detector")
        services.start("pauser")
        services.start("notifier", YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS="true")
        await save_preferences(
            db,
            project_slack,
            NotificationPreferences(webhook_enabled=True, webhook_url=http.slack_url()),
        )
        await save_preferences(
            db,
            project_discord,
            NotificationPreferences(webhook_enabled=True, webhook_url=http.discord_url()),
        )
        hostile = (
            "<!channel> <@U0123> <https://evil.example|click here> @everyone "
            "[click](https://evil.example)"
        )
        task = {"id": "T", "description": hostile + " " + "t" * 200_000}
        for n, project in enumerate((project_slack, project_discord)):
            event = port_conflict(project, unique(f"s{n}"), task=task)
            event["message"] += " " + hostile
            await publish_events(nc, [event])

        slack = await eventually(
            lambda: [r for r in http.accepted("slack") if project_slack in json.dumps(r.body)],
            timeout=30,
            what="the Slack notice",
        )
        discord = await eventually(
            lambda: [r for r in http.accepted("discord") if project_discord in json.dumps(r.body)],
            timeout=30,
            what="the Discord notice",
        )
    text = json.dumps(slack[0].body)
    for control in ("<!channel>", "<@U0123>", "<https://evil.example|click here>"):
        assert control not in text
    assert "&lt;!channel&gt;" in text and len(text) < 40_000
    body = discord[0].body
    assert body["allowed_mentions"] == {"parse": []}
    assert "[click](https://evil.example)" not in json.dumps(body)
    assert not [r for r in http.received if r.problem and project_discord in json.dumps(r.body)]


async def test_one_broken_channel_does_not_take_the_others_with_it(nc, db, services, unique):
    """A webhook that can no longer be sent fails alone; the notice's email is still sent."""
    project = unique("iso")
    with SmtpPeer() as smtp:
        services.start("detector")
        services.start("pauser")
        services.start(
            "notifier",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp.port),
            YOKEFLOW_SMTP_SECURITY="none",
            SMTP_USERNAME="",
        )
        await save_preferences(
            db,
            project,
            NotificationPreferences(
                webhook_enabled=True,
                webhook_url="https://example.com/hook",
                email_enabled=True,
                email_addresses=["ops@example.com"],
            ),
        )
        # Stored as an older release could have saved it (no longer accepted at save).
        await db.execute(
            "UPDATE notification_preferences SET webhook_url = $2 WHERE project_id = $1",
            project,
            "http://127.0.0.1:99999/hook",
        )
        session = unique("s")
        await publish_events(nc, [port_conflict(project, session)])
        row = await eventually(lambda: paused_row(db, session), timeout=30, what="the pause")

        async def outcomes() -> dict[str, dict] | None:
            rows = await db.fetch(
                "SELECT channel, status, detail FROM notification_deliveries "
                "WHERE intervention_id = $1",
                row["id"],
            )
            settled = len(rows) == 2 and all(r["status"] != "sending" for r in rows)
            return {r["channel"]: dict(r) for r in rows} if settled else None

        found = await eventually(outcomes, timeout=30, what="both deliveries settled")
        assert found["email"]["status"] == "sent" and len(smtp.messages) == 1
    assert found["webhook"]["status"] == "failed" and "port" in found["webhook"]["detail"]
