"""The detector service against a real NATS server, as its own process."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from nats.js.errors import KeyNotFoundError
from yokeflow_agent.contract import DETECTOR_PARTITIONS, SESSION_SUMMARY_BUCKET

from ..helpers import agent_event, collect, eventually, example_events, publish_events

pytestmark = pytest.mark.integration


async def test_retry_loop_becomes_one_intervention(nc, services, unique):
    project, session = unique("shop"), unique("sess")
    detected = await collect(nc, f"intervention.detected.{project}")
    services.start("detector")
    await publish_events(nc, example_events("retry_limit.jsonl", project, session))

    await eventually(lambda: detected.messages, what="an intervention")
    await asyncio.sleep(0.5)
    assert len(detected.messages) == 1, services.logs()
    intervention = detected.messages[0]
    assert intervention["session_id"] == session
    assert intervention["trigger"] == "retry_limit"
    assert intervention["event_seq"] == 10
    assert intervention["reason"] == "Command attempted 4 times: node dist/server.js"


async def test_malformed_events_go_to_the_dead_letter_subject(nc, services, unique):
    project, session = unique("shop"), unique("sess")
    dlq = await collect(nc, "agent.dlq")
    services.start("detector")
    js = nc.jetstream()
    subject = f"agent.events.{project}.{session}"
    await js.publish(subject, b"{not json")
    await js.publish(
        subject, json.dumps({"v": 1, "type": "tool_call", "project_id": project}).encode()
    )
    bad_type = {
        "v": 1,
        "event_id": "e1",
        "type": "tool_result",
        "project_id": project,
        "session_id": session,
        "seq": "three",
        "ts": "2026-10-05T14:00:00Z",
        "result": {"ok": False},
    }
    await js.publish(subject, json.dumps(bad_type).encode())

    letters = await eventually(
        lambda: len(dlq.messages) >= 3 and dlq.messages, what="3 dead letters"
    )
    # Named as stored: the subject published on, and the session's partition.
    reasons = [
        letter["reason"]
        for letter in letters
        if letter["original_subject"].rpartition(".")[0] == subject
    ]
    assert any("not valid JSON" in r for r in reasons)
    assert any("session_id" in r and "Field required" in r for r in reasons)
    assert any(r.startswith("seq:") for r in reasons)
    # The service keeps working after poison messages.
    detected = await collect(nc, f"intervention.detected.{project}")
    await publish_events(nc, example_events("critical_port_conflict.jsonl", project, session))
    found = await eventually(lambda: detected.messages, what="an intervention after poison")
    assert found[0]["blocker_type"] == "port_conflict"


async def test_killed_detector_remembers_retry_counts_and_never_duplicates(nc, services, unique):
    project, session = unique("shop"), unique("sess")
    detected = await collect(nc, f"intervention.detected.{project}")
    events = example_events("retry_limit.jsonl", project, session)
    detector = services.start("detector")
    # Three identical failures are counted, then the detector dies.
    await publish_events(nc, events[:9])
    await asyncio.sleep(1.5)
    services.kill9(detector)
    services.start("detector")
    # The fourth attempt arrives at a fresh process: it must know about the first three.
    await publish_events(nc, events[9:])
    try:
        await eventually(lambda: detected.messages, what="an intervention after restart")
    except AssertionError:
        print(services.logs())
        raise
    # And a second crash-restart replaying the same events makes no second intervention.
    await asyncio.sleep(1.0)
    services.kill9(services.running[-1])
    services.start("detector")
    await publish_events(nc, events)  # a re-published session is deduplicated by event_id
    await asyncio.sleep(2.0)
    assert [m["event_seq"] for m in detected.messages] == [10], services.logs()


async def test_every_changed_sessions_summary_reaches_the_bucket(nc, services, unique):
    """Every one of many sessions' summaries is stored, and the next round's replace them."""
    project = unique("fleet")
    sessions = [f"s{n}" for n in range(150)]  # more than a round keeps in flight
    services.start("detector")

    kv = await nc.jetstream().key_value(SESSION_SUMMARY_BUCKET)

    async def all_are(state: str) -> bool:
        found = set()
        for session in sessions:
            try:
                entry = await kv.get(f"{project}.{session}")
            except KeyNotFoundError:
                return False
            found.add(json.loads(entry.value or b"{}")["state"])
        return found == {state}

    await publish_events(nc, [agent_event(project, s, 1, type="session_started") for s in sessions])
    await eventually(lambda: all_are("running"), interval=0.5, what="150 summaries, running")
    await publish_events(nc, [agent_event(project, s, 2, type="session_ended") for s in sessions])
    await eventually(lambda: all_are("ended"), interval=0.5, what="150 summaries, ended")


async def test_metrics_count_events_interventions_and_lag(nc, services, unique):
    import httpx

    from yokeflow_intervention.shared.embedded import free_port

    port = free_port()
    services.start("detector", YOKEFLOW_METRICS_PORT=str(port))
    project, session = unique("shop"), unique("sess")
    detected = await collect(nc, f"intervention.detected.{project}")
    await publish_events(nc, example_events("critical_port_conflict.jsonl", project, session))
    await eventually(lambda: detected.messages, what="an intervention")

    async def scrape() -> str | None:
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.TransportError:
            return None
        ready = "yokeflow_consumer_pending{" in text and 'trigger="critical_error"' in text
        # Every partition's lag is read by the same periodic round: wait for the last one's.
        ready = ready and 'yokeflow_consumer_ack_pending{consumer="detector-15"}' in text
        # A collection timed (the state-freezing round runs a full one every few seconds).
        ready = ready and "yokeflow_gc_pause_seconds_count{" in text
        return text if ready else None

    text = await eventually(scrape, timeout=20, what="metrics")
    assert 'yokeflow_interventions_total{trigger="critical_error"} 1.0' in text
    # Per partition: which one a session's events went to, and which this replica owns.
    assert re.search(
        r'yokeflow_messages_handled_total\{consumer="detector-\d+",outcome="acked"\}', text
    )
    assert text.count("yokeflow_consumer_pinned{") == DETECTOR_PARTITIONS
    # The server pins a partition's consumer to a replica with its first message.
    assert re.search(r'yokeflow_consumer_pinned\{consumer="detector-\d+"\} 1.0', text)
    assert re.search(r'yokeflow_handler_seconds_count\{consumer="detector-\d+"\}', text)
    assert 'yokeflow_consumer_ack_pending{consumer="detector-15"}' in text
    assert 'yokeflow_gc_pause_seconds_count{generation="2"}' in text  # pauses are timed
    assert "yokeflow_gc_frozen_objects_total " in text  # and the state kept out of their reach
    # What holds the event loop, and for how long each periodic job's round takes.
    assert "yokeflow_event_loop_stall_seconds_count " in text
    assert 'yokeflow_periodic_round_seconds_count{work="publishing session summaries"}' in text


async def test_an_idle_session_leaves_memory_and_comes_back_exactly_without_a_replay(
    nc, services, unique
):
    """Evicted after a second of silence, the session's retry count survives in its snapshot:
    the 4th identical failing call is still stopped, and no consumer was made to replay it."""
    from yokeflow_agent.client import AgentSession, SessionPaused

    project = unique("idle")
    detector = services.start("detector", YOKEFLOW_DETECTOR_IDLE_EVICT_S="1")
    agent = AgentSession(nc, project)
    await agent.start()
    for _ in range(2):
        call = await agent.tool_call("Bash", {"command": "npm test"})
        await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL src/a.test.ts")
    log = services.log_of[detector.pid]
    await eventually(
        lambda: "evicted 1 idle sessions" in log.read_text(),
        timeout=15,
        what="the idle session evicted",
    )
    kv = await nc.jetstream().key_value("detector_checkpoints")
    checkpoint = json.loads((await kv.get(f"{project}.{agent.session_id}")).value)
    assert checkpoint["state"]["events"] == 5
    consumers_before = (await nc.jetstream().stream_info("AGENT_EVENTS")).state.consumer_count

    call = await agent.tool_call("Bash", {"command": "npm test"})
    await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL src/a.test.ts")
    with pytest.raises(SessionPaused) as paused:
        await agent.tool_call("Bash", {"command": "npm test"})
    assert paused.value.control.trigger == "retry_limit"
    assert "restored" not in log.read_text()  # from the snapshot, not by replaying the stream
    assert (await nc.jetstream().stream_info("AGENT_EVENTS")).state.consumer_count == (
        consumers_before
    )
    spent = json.loads((await kv.get(f"{project}.{agent.session_id}")).value)
    assert "state" not in spent  # used once: a crash from now on replays instead


async def test_restoring_many_sessions_after_a_restart_holds_no_consumers(nc, services, unique):
    """Sessions live when the detector died are replayed on their next event; each replay's
    consumer is deleted at once, so thousands of restores never reach the consumer limit."""
    from yokeflow_agent.client import AgentSession

    project = unique("many")
    js = nc.jetstream()
    detector = services.start("detector")
    agents = [AgentSession(nc, project) for _ in range(30)]
    for agent in agents:
        await agent.start()
        call = await agent.tool_call("Bash", {"command": "make"})
        await agent.tool_result(call, "Bash", ok=False, exit_code=2, error="make: *** Error 2")
    await asyncio.sleep(1.0)
    services.kill9(detector)
    baseline = (await js.stream_info("AGENT_EVENTS")).state.consumer_count
    restarted = services.start("detector")
    for agent in agents:  # each next event makes the fresh detector replay that session
        call = await agent.tool_call("Bash", {"command": "make"})
        await agent.tool_result(call, "Bash", ok=False, exit_code=2, error="make: *** Error 2")
    log = services.log_of[restarted.pid]
    await eventually(
        lambda: log.read_text().count("restored ") >= 30, timeout=30, what="30 sessions restored"
    )
    assert (await js.stream_info("AGENT_EVENTS")).state.consumer_count <= baseline


async def test_two_replicas_share_the_partitions_and_take_over_a_dead_ones(nc, services, unique):
    """Sessions spread over two detector replicas; one is killed mid-session: the other takes
    its partitions over within seconds and every session is stopped exactly once. Restarted,
    the replica takes its own partitions back."""
    project = unique("pair")
    detected = await collect(nc, f"intervention.detected.{project}")
    sessions = [unique(f"s{n}") for n in range(24)]
    events = {s: example_events("retry_limit.jsonl", project, s) for s in sessions}
    pair = {"YOKEFLOW_DETECTOR_REPLICAS": "2"}
    first = services.start("detector", YOKEFLOW_DETECTOR_REPLICA="0", **pair)
    second = services.start("detector", YOKEFLOW_DETECTOR_REPLICA="1", **pair)
    logs = [services.log_of[first.pid], services.log_of[second.pid]]
    for session in sessions:  # three identical failures each: one short of the limit
        await publish_events(nc, events[session][:9])

    def pinned(log: object) -> int:
        return logs[log].read_text().count("pinned here") if isinstance(log, int) else 0

    await eventually(lambda: pinned(0) and pinned(1), what="both replicas owning partitions")
    assert pinned(0) + pinned(1) <= DETECTOR_PARTITIONS  # one owner per partition
    await asyncio.sleep(1.0)
    services.kill9(first)
    killed_at = asyncio.get_running_loop().time()
    for session in sessions:  # the fourth attempt: the survivor must know the first three
        await publish_events(nc, events[session][9:])
    try:
        await eventually(
            lambda: len(detected.messages) >= len(sessions),
            timeout=30,
            what="every session stopped",
        )
    except AssertionError:
        print(services.logs())
        raise
    took = asyncio.get_running_loop().time() - killed_at
    await asyncio.sleep(2.0)
    assert sorted(m["session_id"] for m in detected.messages) == sorted(sessions)  # once each
    assert all(m["event_seq"] == 10 for m in detected.messages)
    assert "restored " in logs[1].read_text()
    print(f"takeover: every session stopped {took:.1f} s after the kill")

    # Back again, replica 0 unpins its share and owns it at its next message; the survivor
    # hands it over.
    again = services.start("detector", YOKEFLOW_DETECTOR_REPLICA="0", **pair)
    back = services.log_of[again.pid]
    await eventually(lambda: "ready: consuming" in back.read_text(), what="replica 0 back")
    later = [unique(f"later{n}") for n in range(16)]
    for session in later:
        await publish_events(nc, example_events("retry_limit.jsonl", project, session))
    await eventually(
        lambda: len(detected.messages) >= len(sessions) + len(later),
        timeout=30,
        what="the later sessions stopped",
    )
    assert "pinned here" in back.read_text()
    assert "handed over" in logs[1].read_text()
