"""The watchdog against a real NATS server and real detector processes: a call that never
returns and a session that goes quiet are stopped within their limits (never before), a long
call with its own limit is not; both survive a kill -9 of the detector and a takeover by
another replica, and are stopped once; a client released before the new triggers obeys them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from yokeflow_agent.client import AgentSession

from ..helpers import collect, eventually, service_env, stream_count

pytestmark = pytest.mark.integration

TICK = {"YOKEFLOW_WATCHDOG_TICK_S": "0.5"}
# A stop comes at its limit, plus at most a tick, plus a loaded machine's delays.
SLACK_S = 6.0


async def test_a_hung_call_and_a_quiet_session_are_stopped_and_a_long_call_with_a_limit_is_not(
    nc, services, unique
):
    project = unique("watch")
    detected = await collect(nc, f"intervention.detected.{project}")
    services.start(
        "detector",
        YOKEFLOW_TOOL_CALL_TIMEOUT="4",
        YOKEFLOW_SILENCE_TIMEOUT="3",
        YOKEFLOW_TOOL_CALL_TIMEOUTS='{"npm run e2e": 60}',
        **TICK,
    )
    hung, quiet, long_call, busy = (AgentSession(nc, project) for _ in range(4))
    for agent in (hung, quiet, long_call, busy):
        await agent.start()
    hung_at = time.monotonic()  # before the event is stored: a stop is never sooner
    await hung.tool_call("Bash", {"command": "npm run dev"})
    call = await quiet.tool_call("Bash", {"command": "npm test"})
    quiet_at = time.monotonic()
    await quiet.tool_result(call, "Bash", ok=True, output="48 passed")
    e2e = await long_call.tool_call("Bash", {"command": "npm run e2e"})
    heard: dict[str, float] = {}

    def seen() -> bool:
        for message in detected.messages:
            heard.setdefault(message["session_id"], time.monotonic())
        return {hung.session_id, quiet.session_id} <= set(heard)

    for _ in range(16):  # the busy session works on, one step every half second
        call = await busy.tool_call("Read", {"file_path": f"src/{_}.ts"})
        await busy.tool_result(call, "Read", ok=True, output="...")
        seen()
        await asyncio.sleep(0.5)
    await eventually(seen, timeout=20, what="the hung and the quiet session stopped")
    await long_call.tool_result(e2e, "Bash", ok=True, output="e2e: 12 passed")
    await asyncio.sleep(1.0)
    by_session = {m["session_id"]: m for m in detected.messages}
    assert set(by_session) == {hung.session_id, quiet.session_id}, services.logs()
    assert by_session[hung.session_id]["trigger"] == "tool_call_timeout"
    assert by_session[hung.session_id]["reason"].endswith(": Bash npm run dev")
    assert by_session[quiet.session_id]["trigger"] == "silence"
    assert "tool_result (ok) of Bash" in by_session[quiet.session_id]["reason"]
    assert 4.0 - 0.3 <= heard[hung.session_id] - hung_at <= 4.0 + SLACK_S
    assert 3.0 - 0.3 <= heard[quiet.session_id] - quiet_at <= 3.0 + SLACK_S


async def test_deadlines_survive_a_kill_9_and_nothing_is_stopped_twice(nc, services, unique):
    project = unique("watch")
    limits = {"YOKEFLOW_TOOL_CALL_TIMEOUT": "9", "YOKEFLOW_SILENCE_TIMEOUT": "8", **TICK}
    detected = await collect(nc, f"intervention.detected.{project}")
    detector = services.start("detector", **limits)
    hung, quiet = AgentSession(nc, project), AgentSession(nc, project)
    await hung.start()
    await quiet.start()
    await hung.tool_call("Bash", {"command": "python manage.py shell"})
    call = await quiet.tool_call("Bash", {"command": "ls"})
    last_at = time.monotonic()
    await quiet.tool_result(call, "Bash", ok=True, output="src")
    await asyncio.sleep(2.0)  # the deadlines are written (at most a second after the events)
    services.kill9(detector)  # between the last event and the deadline
    restarted = services.start("detector", **limits)
    await eventually(
        lambda: len({m["session_id"] for m in detected.messages}) >= 2,
        timeout=30,
        what="both sessions stopped after the restart",
    )
    took = time.monotonic() - last_at
    assert took >= 8.0 - 0.3, "stopped before its limit"
    assert took <= 9.0 + SLACK_S, services.logs()
    assert "deadlines rearmed" in services.log_of[restarted.pid].read_text()
    # Once more: killed and restarted after the stops, nothing is stopped again.
    await asyncio.sleep(1.5)
    services.kill9(restarted)
    services.start("detector", **limits)
    await asyncio.sleep(4.0)
    assert await stream_count(nc, "INTERVENTIONS", f"intervention.detected.{project}") == 2


async def test_a_replica_taking_over_stops_the_silent_sessions_of_a_dead_one(nc, services, unique):
    """Replica 0 is killed with quiet sessions in its partitions and no event to come: the
    clock's ticks move its partitions to replica 1, which stops each session once."""
    project = unique("pair")
    limits = {"YOKEFLOW_SILENCE_TIMEOUT": "12", "YOKEFLOW_DETECTOR_REPLICAS": "2", **TICK}
    detected = await collect(nc, f"intervention.detected.{project}")
    first = services.start("detector", YOKEFLOW_DETECTOR_REPLICA="0", **limits)
    second = services.start("detector", YOKEFLOW_DETECTOR_REPLICA="1", **limits)
    for process in (first, second):
        log = services.log_of[process.pid]
        await eventually(
            lambda log=log: "ready: consuming" in log.read_text(),
            timeout=30,
            what="the replicas ready",
        )
    agents = [AgentSession(nc, project) for _ in range(8)]
    for agent in agents:
        await agent.start()
        call = await agent.tool_call("Bash", {"command": "git status"})
        await agent.tool_result(call, "Bash", ok=True, output="clean")
    last_at = time.monotonic()
    await asyncio.sleep(2.0)
    services.kill9(first)
    await eventually(
        lambda: len({m["session_id"] for m in detected.messages}) >= len(agents),
        timeout=40,
        what="every quiet session stopped",
    )
    took = time.monotonic() - last_at
    assert 12.0 - 0.3 <= took <= 12.0 + SLACK_S, services.logs()
    await asyncio.sleep(2.0)
    assert await stream_count(nc, "INTERVENTIONS", f"intervention.detected.{project}") == len(
        agents
    )
    assert "deadlines rearmed" in services.log_of[second.pid].read_text(), services.logs()


OLD_CLIENT = """
import asyncio, json, sys
import nats
import yokeflow_agent
from yokeflow_agent.client import AgentSession, SessionPaused

async def main():
    nc = await nats.connect(sys.argv[1])
    agent = AgentSession(nc, sys.argv[2])
    await agent.start()
    print(json.dumps({"agent": yokeflow_agent.__file__, "session": agent.session_id}), flush=True)
    await agent.tool_call("Bash", {"command": "npm run dev"})  # and it never returns
    for _ in range(300):
        try:
            await agent.raise_if_paused()
        except SessionPaused as paused:
            print(json.dumps(paused.control.model_dump(mode="json")), flush=True)
            return 0
        await asyncio.sleep(0.1)
    return 1

sys.exit(asyncio.run(main()))
"""


async def test_a_client_released_before_the_new_triggers_obeys_their_pause(
    nc, services, unique, tmp_path: Path, infra
):
    """The agent package as released (main's HEAD before this change), imported from a copy,
    against the new detector and pauser: it is paused on a tool_call_timeout."""
    release = tmp_path / "release"
    release.mkdir()
    archive = subprocess.run(
        ["git", "-C", "/work/main", "archive", "dbdb681", "agent"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(release)], input=archive, check=True)
    assert "OpenTrigger" not in (release / "agent/yokeflow_agent/contract.py").read_text()
    project = unique("old")
    services.start("pauser")
    services.start("detector", YOKEFLOW_TOOL_CALL_TIMEOUT="3", **TICK)
    env = service_env(infra, PYTHONPATH=str(release / "agent"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OLD_CLIENT,
        infra.nats_url,
        project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out + err).decode() + services.logs()
    first, control = (json.loads(line) for line in out.decode().splitlines())
    assert first["agent"].startswith(str(release))  # the released copy, not this one
    assert control["state"] == "paused"
    assert control["trigger"] is None  # a closed set in that client: left unset
    assert "Tool call open for" in control["reason"]


async def test_a_permission_wait_is_no_stall_and_a_human_is_told_what_is_asked(
    nc, services, unique, tmp_path: Path, infra
):
    """Through the Claude Code hook as Claude Code runs it (a process per hook): a call waits
    for its permission past every limit; it is not stopped, the fleet summary says what it
    waits for, and the webhook is told once. Answered, the session is judged again."""
    from tests.peers import HttpPeer

    from ..helpers import cli

    project, session = unique("asked"), unique("claude")
    detected = await collect(nc, f"intervention.detected.{project}")
    waiting = await collect(nc, f"intervention.waiting.{project}")
    with HttpPeer() as http:
        services.start(
            "notifier",
            YOKEFLOW_WEBHOOK_URL=http.webhook_url(),
            YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS="true",
        )
        services.start(
            "detector",
            YOKEFLOW_TOOL_CALL_TIMEOUT="4",
            YOKEFLOW_SILENCE_TIMEOUT="3",
            YOKEFLOW_WAITING_NOTIFICATION_AFTER="3",
            **TICK,
        )
        env = service_env(
            infra,
            YOKEFLOW_PROJECT_ID=project,
            YOKEFLOW_VERDICT_TIMEOUT="5",
            YOKEFLOW_HOOK_STATE_DIR=str(tmp_path / "state"),
        )
        base = {
            "session_id": session,
            "cwd": str(tmp_path),
            "permission_mode": "default",
            "transcript_path": str(tmp_path / "t.jsonl"),
        }
        call = {
            "tool_name": "Bash",
            "tool_input": {"command": "npm start"},
            "tool_use_id": "toolu_01",
        }

        def hook(event: str, **fields: object) -> None:
            payload = json.dumps({**base, "hook_event_name": event, **fields})
            assert cli("hook", env=env, stdin=payload).returncode == 0

        hook("SessionStart", source="startup")
        hook("PreToolUse", **call)
        hook("PermissionRequest", tool_name="Bash", tool_input={"command": "npm start"})
        hook(
            "Notification",
            notification_type="permission_prompt",
            message="Claude needs your permission to use Bash",
        )
        told = await eventually(
            lambda: [r for r in http.accepted("webhook") if project in json.dumps(r.body)],
            timeout=30,
            what="the webhook told of the wait",
        )
        await asyncio.sleep(4.0)  # past the call's limit and the silence: still not stopped
        assert detected.messages == [], services.logs()
        assert len(told) == 1 and len(waiting.messages) == 1
        assert "Allow Bash: npm start" in json.dumps(told[0].body)
        assert waiting.messages[0]["trigger"] == "waiting"
        summaries = await nc.jetstream().key_value("session_summaries")
        summary = json.loads((await summaries.get(f"{project}.{session}")).value)
        assert summary["state"] == "running"
        assert summary["waiting"] == "permission: Allow Bash: npm start"

        # Answered and run: the session is watched again, and goes quiet.
        hook("PostToolUse", **call, tool_response={"stdout": "listening on 3000"})
        stop = await eventually(lambda: detected.messages, timeout=20, what="the silence")
        assert stop[0]["trigger"] == "silence"


async def test_an_evicted_idle_session_keeps_its_deadline_and_shows_stopped(nc, services, unique):
    """Evicted from memory after a second of silence (its state goes to its checkpoint), the
    session is still stopped at its limit, and the fleet summary says so."""
    from nats.js.errors import KeyNotFoundError

    project = unique("evicted")
    detected = await collect(nc, f"intervention.detected.{project}")
    detector = services.start(
        "detector", YOKEFLOW_DETECTOR_IDLE_EVICT_S="1", YOKEFLOW_SILENCE_TIMEOUT="6", **TICK
    )
    agent = AgentSession(nc, project)
    await agent.start()
    call = await agent.tool_call("Bash", {"command": "ls"})
    await agent.tool_result(call, "Bash", ok=True, output="src")
    log = services.log_of[detector.pid]
    await eventually(
        lambda: "evicted 1 idle sessions" in log.read_text(),
        timeout=15,
        what="the idle session evicted",
    )
    [stop] = await eventually(lambda: detected.messages, timeout=20, what="the silence")
    assert stop["trigger"] == "silence"
    summaries = await nc.jetstream().key_value("session_summaries")

    async def stopped() -> bool:
        with contextlib.suppress(KeyNotFoundError):
            entry = await summaries.get(f"{project}.{agent.session_id}")
            return bool(json.loads(entry.value)["state"] == "stopped")
        return False

    await eventually(stopped, what="the summary stopped")


async def test_a_resumed_session_is_not_left_running_with_no_event(nc, services, unique, infra):
    """The agent stops at its pause (session_ended, paused) and a human resumes it: the
    session goes on as a new one, so the fleet keeps the old one as ended, not running."""
    from nats.js.errors import KeyNotFoundError
    from yokeflow_agent.client import SessionPaused

    from ..helpers import cli

    project = unique("resumed")
    for process in (services.start("detector", **TICK), services.start("pauser")):
        log = services.log_of[process.pid]
        await eventually(
            lambda log=log: "ready: consuming" in log.read_text(),
            timeout=30,
            what="the services ready",
        )
    agent = AgentSession(nc, project)
    await agent.start()
    with pytest.raises(SessionPaused) as paused:
        for _ in range(10):
            call = await agent.tool_call("Bash", {"command": "npm test"})
            await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL a.test.ts")
            await asyncio.sleep(0.2)
    await agent.end("paused")
    summaries = await nc.jetstream().key_value("session_summaries")
    key = f"{project}.{agent.session_id}"

    async def state() -> str:
        try:
            return str(json.loads((await summaries.get(key)).value)["state"])
        except KeyNotFoundError:
            return "none yet"

    async def ended() -> bool:
        return await state() == "ended"

    await eventually(ended, what="the session ended")
    intervention = paused.value.control.intervention_id
    env = service_env(infra)
    resumed = cli("interventions", "resume", str(intervention), "--by", "ana", env=env)
    assert resumed.returncode == 0, resumed.stderr
    await asyncio.sleep(3.0)
    assert await state() == "ended"


def test_detect_replays_a_silence_from_a_file_with_now(tmp_path: Path):
    """`detect` as operators run it: the silent example as written (a clock line), and without
    its clock line, judged at --now; a bad --now is refused by name."""
    from ..helpers import cli

    examples = Path(__file__).resolve().parents[2] / "docs" / "contract" / "examples"
    replayed = cli("detect", str(examples / "silent_session.jsonl"))
    assert [json.loads(line)["trigger"] for line in replayed.stdout.splitlines()] == ["silence"]
    lines = (examples / "silent_session.jsonl").read_text().splitlines()
    quiet = tmp_path / "quiet.jsonl"
    quiet.write_text("\n".join(line for line in lines if '"clock"' not in line) + "\n")
    assert cli("detect", str(quiet)).stdout == ""  # nothing in the file says time passed
    early = cli("detect", "--now", "2026-10-05T14:06:09Z", str(quiet))
    assert early.returncode == 0 and early.stdout == ""  # 299 s after its last event
    late = cli("detect", "--now", "2026-10-05T14:06:10Z", str(quiet))
    [stop] = [json.loads(line) for line in late.stdout.splitlines()]
    assert stop["trigger"] == "silence" and stop["event_seq"] == 3
    bad = cli("detect", "--now", "yesterday", str(quiet))
    assert bad.returncode == 2 and "--now 'yesterday'" in bad.stderr
