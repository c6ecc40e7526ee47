"""The agent client across a NATS server restart: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from yokeflow_agent.client import AgentSession
from yokeflow_agent.contract import Subjects

from yokeflow_intervention.shared.bus import connect, provision
from yokeflow_intervention.shared.embedded import EmbeddedNats

pytestmark = pytest.mark.integration


async def test_events_survive_a_server_restart_exactly_once(tmp_path):
    server = EmbeddedNats(tmp_path / "nats").start(reuse=False)
    try:
        admin = await nats.connect(server.url)
        await provision(admin)
        await admin.close()
        client = await connect(server.url, "agent")
        agent = AgentSession(client, "proj", "sess-restart", verdict_timeout=0.0)
        await agent.start()
        for i in range(5):
            await agent.heartbeat() if i % 2 else await agent.error(f"warning {i}")

        # The server goes away mid-session and comes back on the same port and store.
        server.stop()
        publishing = asyncio.create_task(agent.heartbeat())
        await asyncio.sleep(1.0)
        assert not publishing.done()  # still retrying, not lost
        server.start(reuse=False)
        await asyncio.wait_for(publishing, 30)
        for _ in range(3):
            await agent.heartbeat()
        await agent.end()
        await client.close()

        reader = await nats.connect(server.url)
        sub = await reader.jetstream().pull_subscribe(
            Subjects.agent_events_stored("proj", "sess-restart"), stream="AGENT_EVENTS"
        )
        messages = await sub.fetch(50, timeout=2)
        seqs = [json.loads(m.data)["seq"] for m in messages]
        assert seqs == list(range(1, 12)), seqs  # 1 start + 5 + 1 during the outage + 3 + 1 end
        await reader.close()
    finally:
        server.stop()
