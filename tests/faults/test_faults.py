"""Faults while agents stream events, on a local 3-node NATS cluster (streams replicated R3)
and an embedded PostgreSQL, every service a real process on loopback.

One wave of agents per fault: some stuck in a retry loop, some hitting a port conflict that
recovery fixes (and resumes), some healthy, plus poison messages. Mid-wave the fault strikes:
kill -9 the NATS node leading the agent-events stream, kill -9 each service in turn, stop and
restart PostgreSQL, kill the whole stack and start it again. Then every stuck session must be
paused exactly once, notified exactly once, the port conflicts recovered and their next session
started once, healthy sessions left alone, and the poison parked once each with its reason.
The counts print at the end of the run and land in test-output/faults.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from yokeflow_agent.client import AgentSession, SessionPaused
from yokeflow_agent.contract import CONSUMERS, CONTROL_BUCKET, ControlKeys, Subjects

from tests.peers import HttpPeer, SmtpPeer
from yokeflow_intervention.shared.bus import provision
from yokeflow_intervention.shared.db import migrate
from yokeflow_intervention.shared.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from yokeflow_intervention.shared.owners import apply_table_owners

from ..helpers import FAULT_REPORT, ServiceProcesses, eventually
from ..infra import ROLE_PASSWORDS, TestInfra

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
SERVICES = (
    "detector-1",
    "detector-2",
    "pauser-1",
    "pauser-2",
    "notifier-1",
    "notifier-2",
    "recovery",
    "orchestrator",
    "api",
)
# One replica of each replicated stage at once, left dead for longer than a detector takeover
# takes (the consumers' priority_timeout): the survivors do all the work meanwhile.
PAIR_FAULT = "detector-1 and pauser-1"
PAIR_DOWN_S = 8.0
RETRY_LOOPS, PORT_CONFLICTS, HEALTHY = 12, 6, 10
# A notice whose sender died, lost PostgreSQL, or had its message redelivered mid-send (a
# consumer leader moving) is sent again under the same webhook-id, and the receiver drops the
# repeat. Without a fault nothing is sent twice.
# The orchestrator records a next session before starting it (at most once): killed between
# the two, that one next session is not started.
AT_MOST_ONCE_NEXT_SESSION = {"orchestrator", "whole stack"}
FAULTS = ("none", "NATS node", *SERVICES, PAIR_FAULT, "postgres", "whole stack")
# The agent's next session after a resume: records that it started, and with which brief.
# (It gets only an allow-listed environment, so the folder is written into the script.)
NEXT_SESSION = """\
import os, pathlib
folder = pathlib.Path(NEXT_SESSIONS_FOLDER)
brief = pathlib.Path(os.environ["YOKEFLOW_RESUME_CONTEXT_FILE"]).read_text()
with (folder / os.environ["YOKEFLOW_RESUMED_FROM"]).open("a") as marker:
    marker.write(f"{os.environ['YOKEFLOW_SESSION_ID']} {len(brief)}\\n")
"""


class FaultStack:
    """Three clustered NATS nodes, PostgreSQL, a webhook receiver and every service."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        cluster_ports = [free_port() for _ in range(3)]
        routes = tuple(f"nats://127.0.0.1:{port}" for port in cluster_ports)
        self.nodes = [
            EmbeddedNats(
                folder / f"nats-{i}",
                server_name=f"nats-{i}",
                cluster_name="yokeflow-faults",
                cluster_port=port,
                routes=routes,
            )
            for i, port in enumerate(cluster_ports, 1)
        ]
        self.postgres = EmbeddedPostgres(folder / "postgres")
        self.peer = HttpPeer(webhook_secret=SECRET)
        self.smtp = SmtpPeer()
        self.webhook_url = self.peer.webhook_url()  # one receiver, whichever replica sends
        self.next_sessions = folder / "next-sessions"
        self.next_sessions.mkdir()
        (folder / "next_session.py").write_text(
            NEXT_SESSION.replace("NEXT_SESSIONS_FOLDER", repr(str(self.next_sessions)))
        )
        self.api_port = free_port()
        # Planned up front: recovery acts only on what the operator registered, so every
        # wave's project is registered with its dev ports and a workspace its dev servers use.
        self.waves = {fault: plan_wave(fault) for fault in FAULTS}
        self.workspaces = folder / "workspaces"
        self.workspaces.mkdir()
        self.registered = json.dumps(
            {
                wave.project: {
                    "workspace_root": str(self.workspaces),
                    "recovery_actions": ["free_port"],
                    "dev_ports": list(wave.port_conflicts.values()),
                }
                for wave in self.waves.values()
            }
        )
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.processes: ServiceProcesses | None = None

    @property
    def nats_url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start_servers(self) -> None:
        for node in self.nodes:
            node.start(reuse=False)
        self.postgres.start()
        if self.processes is None:
            self.processes = ServiceProcesses(
                TestInfra(self.nats_url, self.postgres.url, self.folder), self.folder
            )

    def start_service(self, name: str) -> None:
        assert self.processes is not None
        role, _, number = name.partition("-")
        replica = (
            {"YOKEFLOW_DETECTOR_REPLICA": str(int(number) - 1), "YOKEFLOW_DETECTOR_REPLICAS": "2"}
            if role == "detector"
            else {}
        )
        self.running[name] = self.processes.start(
            role,
            **replica,
            YOKEFLOW_WEBHOOK_URL=self.webhook_url,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp.port),
            SMTP_USERNAME="",
            YOKEFLOW_SMTP_SECURITY="none",
            EMAIL_ADDRESSES="oncall@example.com",
            YOKEFLOW_WEBHOOK_SECRET=SECRET,
            YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS="true",
            YOKEFLOW_MIN_NOTIFICATION_INTERVAL="0",
            # Every stop is its own notice here: the suite counts each one across faults.
            YOKEFLOW_NOTIFICATION_GROUP_WINDOW="0",
            YOKEFLOW_NOTIFICATION_TIMEOUT="5",
            YOKEFLOW_AGENT_COMMAND=f"{sys.executable},{self.folder / 'next_session.py'}",
            YOKEFLOW_API_PORT=str(self.api_port),
            YOKEFLOW_PROJECTS=self.registered,
        )

    def consuming(self) -> bool:
        """Every consuming service has bound its consumers (it logs `ready` once it has)."""
        assert self.processes is not None
        return all(
            '"msg": "ready' in self.processes.log_of[process.pid].read_text(errors="replace")
            for name, process in self.running.items()
            if name != "api"
        )

    def kill_service(self, name: str) -> None:
        ServiceProcesses.kill9(self.running.pop(name))

    def kill_everything(self) -> None:
        for name in list(self.running):
            self.kill_service(name)
        for node in self.nodes:
            node.stop(kill=True)
        self.postgres.stop()

    def logs(self) -> str:
        return self.processes.logs() if self.processes else ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    found = FaultStack(tmp_path_factory.mktemp("faults"))
    found.peer.delay["webhook"] = 0.3  # a receiver that takes its time: sends are in flight
    with found.peer, found.smtp:
        try:
            found.start_servers()
            asyncio.run(prepare(found))
            for name in SERVICES:
                found.start_service(name)
            yield found
        finally:
            if found.processes is not None:
                found.processes.stop_all()
            for node in found.nodes:
                node.stop()
            found.postgres.stop()


async def prepare(stack: FaultStack) -> None:
    """Provision R3 once the cluster has elected a JetStream leader; migrate."""
    nc = await nats.connect(stack.nats_url.split(","))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await provision(nc, replicas=3)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await nc.close()
    await migrate(stack.postgres.url)
    await apply_table_owners(stack.postgres.url, ROLE_PASSWORDS)  # each service as its role


@pytest.fixture(scope="module")
async def cluster_nc(stack: FaultStack) -> AsyncIterator[Client]:
    client = await nats.connect(
        stack.nats_url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    js = client.jetstream()

    async def bound() -> bool:
        for spec in CONSUMERS.all():
            info = await js.consumer_info(spec.stream, spec.durable)
            if spec.push and not info.push_bound:
                return False  # (a pull consumer is bound when it pulls, a pinned one owned then)
        return True

    await eventually(bound, timeout=60, interval=0.2, what="every consumer bound")
    await eventually(stack.consuming, timeout=60, interval=0.2, what="every replica consuming")
    yield client
    await client.close()


@dataclass
class Wave:
    """The sessions of one wave and what each must end up as."""

    project: str
    retry_loops: list[str] = field(default_factory=list)
    port_conflicts: dict[str, int] = field(default_factory=dict)
    healthy: list[str] = field(default_factory=list)
    poison_subject: str = ""

    @property
    def stuck(self) -> set[str]:
        return {*self.retry_loops, *self.port_conflicts}


async def stuck_agent(
    nc: Client,
    project: str,
    session: str,
    delay: float,
    command: str,
    failure: Callable[[], str | None],
) -> None:
    """Runs `command` until it works (failure() says None) or six times over, as a stuck agent
    does; a pause stops it. If the detector was down meanwhile, it catches up on the stream."""
    await asyncio.sleep(delay)
    agent = AgentSession(nc, project, session, publish_deadline=180)
    await agent.start()
    try:
        for _ in range(6):
            call = await agent.tool_call("Bash", {"command": command})
            error = failure()
            if error is None:
                await agent.tool_result(call, "Bash", ok=True, output="ok")
                break
            await agent.tool_result(call, "Bash", ok=False, error=error, exit_code=1)
        await agent.end()
    except SessionPaused as paused:
        await agent.stop_for_pause(paused)


def failing_tests() -> str:
    return "1 failed, 11 passed"


def dev_server_failure(port: int) -> Callable[[], str | None]:
    """The port stays taken by a stale dev server until recovery stops it."""

    def failure() -> str | None:
        if port_is_free(port):
            return None
        return f"Error: listen EADDRINUSE: address already in use 127.0.0.1:{port}"

    return failure


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def hold_ports(ports: list[int], workspace: Path) -> list[subprocess.Popen[bytes]]:
    """A stale dev server on each port, in the project's workspace, as a process recovery may
    stop (its name matches recovery_process_pattern)."""
    holders = []
    for port in ports:
        stale_server = (
            "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
        )
        holders.append(subprocess.Popen([sys.executable, "-c", stale_server], cwd=workspace))
    deadline = time.monotonic() + 10
    while any(port_is_free(port) for port in ports) and time.monotonic() < deadline:
        time.sleep(0.05)
    return holders


async def healthy_agent(nc: Client, project: str, session: str, delay: float) -> None:
    await asyncio.sleep(delay)
    agent = AgentSession(nc, project, session, publish_deadline=180)
    await agent.start()
    for step in range(3):
        call = await agent.tool_call("Edit", {"file_path": f"app/cart_{step}.py"})
        await agent.tool_result(call, "Edit", ok=True, output="ok", exit_code=0)
    await agent.end()


async def publish_poison(nc: Client, subject: str) -> None:
    js = nc.jetstream()
    for body in (b"{not json", json.dumps({"v": 1, "type": "tool_call", "seq": 1}).encode()):
        while True:
            try:
                await js.publish(subject, body)
                break
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.2)


def dev_port() -> int:
    """A port for a wave's stale dev server, registered when the stack starts and used minutes
    later: below the kernel's ephemeral range, so no process binding port 0 can take it first."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        if port not in _DEV_PORTS and port_is_free(port):
            _DEV_PORTS.add(port)
            return port


_DEV_PORTS: set[int] = set()


def plan_wave(fault: str) -> Wave:
    tag = fault.replace(" ", "-").lower()
    wave = Wave(project=f"faults-{tag}")
    wave.retry_loops = [f"{tag}-loop-{i}" for i in range(RETRY_LOOPS)]
    wave.port_conflicts = {f"{tag}-port-{i}": dev_port() for i in range(PORT_CONFLICTS)}
    wave.healthy = [f"{tag}-ok-{i}" for i in range(HEALTHY)]
    wave.poison_subject = Subjects.agent_events(wave.project, f"{tag}-poison")
    return wave


def run_agents(nc: Client, wave: Wave) -> asyncio.Task[list[None]]:
    """Every agent of the wave, starting over about three seconds."""
    spread = random.Random(wave.project)
    agents = [
        stuck_agent(nc, wave.project, s, spread.uniform(0, 3), "npm test", failing_tests)
        for s in wave.retry_loops
    ]
    agents += [
        stuck_agent(
            nc, wave.project, s, spread.uniform(0, 3), "npm run dev", dev_server_failure(port)
        )
        for s, port in wave.port_conflicts.items()
    ]
    agents += [healthy_agent(nc, wave.project, s, spread.uniform(0, 3)) for s in wave.healthy]
    agents.append(publish_poison(nc, wave.poison_subject))
    return asyncio.ensure_future(asyncio.gather(*agents))


async def strike(stack: FaultStack, nc: Client, fault: str, note: str = "") -> str:
    """Inflict the fault and recover from it; say what was done."""
    if fault == "none":
        return "nothing"
    if fault == "NATS node":
        info = await nc.jetstream().stream_info("AGENT_EVENTS")
        leader = info.cluster.leader if info.cluster else None
        node = next(n for n in stack.nodes if n.server_name == leader)
        node.stop(kill=True)
        await asyncio.sleep(3)
        node.start(reuse=False)
        return f"kill -9 {leader} (AGENT_EVENTS leader), restarted after 3 s"
    if fault == "postgres":
        stack.postgres.stop()
        await asyncio.sleep(3)
        stack.postgres.restart()
        return "stopped PostgreSQL, started it after 3 s"
    if fault == "whole stack":
        stack.kill_everything()
        await asyncio.sleep(1)
        stack.start_servers()
        for name in SERVICES:
            stack.start_service(name)
        return "kill -9 every service and NATS node, stopped PostgreSQL; started all again"
    if fault == PAIR_FAULT:
        names = fault.split(" and ")
        for name in names:
            stack.kill_service(name)
        await asyncio.sleep(PAIR_DOWN_S)
        for name in names:
            stack.start_service(name)
        return f"kill -9 {fault}{note}, restarted after {PAIR_DOWN_S:.0f} s"
    stack.kill_service(fault)
    await asyncio.sleep(1)
    stack.start_service(fault)
    return f"kill -9 {fault}{note}, restarted after 1 s"


@dataclass
class Tally:
    paused_rows: Counter[str]
    resolved_by: dict[str, str | None]
    kv_paused: int
    processed: Counter[str]
    resends_dropped: int
    ledger: Counter[str]  # webhook deliveries by status
    emails: Counter[tuple[str, bool]]  # (intervention, follow-up?) -> messages received
    # Mid-send when the sender died or lost PostgreSQL: not sent again (at most once), so it
    # may or may not have arrived.
    emails_unknown: set[tuple[str, bool]]
    email_statuses: Counter[str]
    recovered: Counter[str]
    next_sessions: Counter[str]
    dead_letters: list[dict[str, object]]


async def count(stack: FaultStack, nc: Client, db: asyncpg.Pool, wave: Wave) -> Tally:
    rows = await db.fetch(
        "SELECT id, session_id, resolved_by FROM paused_sessions WHERE project_id = $1",
        wave.project,
    )
    ids = [r["id"] for r in rows]
    kv = await nc.jetstream().key_value(CONTROL_BUCKET)
    kv_paused = 0
    for session in wave.retry_loops:
        try:
            entry = await kv.get(ControlKeys.session(wave.project, session))
        except nats.js.errors.KeyNotFoundError:
            continue
        kv_paused += json.loads(entry.value or b"{}").get("state") == "paused"
    mine = [
        r
        for r in stack.peer.received
        if r.accepted and r.body["intervention"]["project_id"] == wave.project
    ]
    ledger = await db.fetch(
        """SELECT intervention_id, channel, status FROM notification_deliveries
           WHERE intervention_id = ANY($1)""",
        ids,
    )
    emails = [
        (str(m["X-YokeFlow-Intervention"]), "Automatically" in str(m["Subject"]))
        for m in list(stack.smtp.messages)
        if str(m["X-YokeFlow-Intervention"]) in ids
    ]
    email_statuses = Counter(r["status"] for r in ledger if r["channel"].startswith("email"))
    recovered = await db.fetch(
        """SELECT paused_session_id FROM intervention_actions WHERE paused_session_id = ANY($1)
           AND action_type = 'recovery' AND action_status = 'succeeded'""",
        ids,
    )
    return Tally(
        paused_rows=Counter(r["session_id"] for r in rows),
        resolved_by={r["session_id"]: r["resolved_by"] for r in rows},
        kv_paused=kv_paused,
        processed=Counter(r.headers["webhook-id"] for r in mine if not r.repeat),
        resends_dropped=sum(r.repeat for r in mine),
        ledger=Counter(r["status"] for r in ledger if r["channel"].startswith("webhook")),
        emails=Counter(emails),
        emails_unknown={
            (r["intervention_id"], r["channel"] == "email:recovery")
            for r in ledger
            if r["channel"].startswith("email") and r["status"] == "unknown"
        },
        email_statuses=email_statuses,
        recovered=Counter(r["paused_session_id"] for r in recovered),
        next_sessions=Counter(
            {p.name: len(p.read_text().splitlines()) for p in stack.next_sessions.iterdir()}
        ),
        dead_letters=await dead_letters(nc, wave.poison_subject),
    )


async def dead_letters(nc: Client, original_subject: str) -> list[dict[str, object]]:
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        Subjects.AGENT_DLQ,
        stream="DEAD_LETTERS",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    letters = []
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            batch = await sub.fetch(min(pending, 256), timeout=5)
            pending -= len(batch)
            letters += [json.loads(m.data) for m in batch]
    finally:
        await sub.unsubscribe()
    # Stored subjects end with the session's partition.
    return [
        letter
        for letter in letters
        if str(letter["original_subject"]).rpartition(".")[0] == original_subject
    ]


def settled(tally: Tally, wave: Wave, ids: dict[str, str]) -> bool:
    if not set(ids) >= wave.stuck:
        return False
    expected_messages = {*ids.values()} | {f"{ids[s]}:recovery" for s in wave.port_conflicts}
    return (
        tally.kv_paused >= len(wave.retry_loops)
        and set(tally.processed) >= expected_messages
        and all(tally.resolved_by.get(s) == "auto-recovery" for s in wave.port_conflicts)
        and len(tally.dead_letters) >= 2
        and tally.ledger.get("sending", 0) == 0
        and tally.email_statuses.get("sending", 0) == 0
        and len(set(tally.emails) | tally.emails_unknown) >= len(expected_messages)
    )


@pytest.fixture(scope="module")
async def db(stack: FaultStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(stack.postgres.url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", FAULTS)
async def test_nothing_is_lost_or_duplicated(stack, cluster_nc, db, fault, request):
    wave = stack.waves[fault]
    holders = hold_ports(list(wave.port_conflicts.values()), stack.workspaces)
    request.addfinalizer(lambda: [h.kill() for h in holders])
    started = time.monotonic()
    agents = run_agents(cluster_nc, wave)
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM paused_sessions WHERE project_id = $1", wave.project
        ),
        timeout=60,
        what="the wave's first pause",
    )
    mid_send = ""
    if fault.startswith("notifier"):  # strike the replica while it holds a send in flight
        pid = stack.running[fault].pid

        async def sending() -> int:
            return int(
                await db.fetchval(
                    """SELECT count(*) FROM notification_deliveries WHERE project_id = $1
                       AND status = 'sending' AND claimed_by LIKE $2""",
                    wave.project,
                    f"%:{pid}",
                )
            )

        try:
            in_flight = await eventually(sending, timeout=20, interval=0.01)
            mid_send = (
                f" with {in_flight} {'delivery' if in_flight == 1 else 'deliveries'} in flight"
            )
        except AssertionError:
            mid_send = " (idle: it took no notice this time)"
    what = await strike(stack, cluster_nc, fault, mid_send)
    if fault in ("postgres", "whole stack"):
        await db.expire_connections()
    await asyncio.wait_for(agents, timeout=240)

    last: list[Tally] = []

    async def ids_and_tally() -> tuple[dict[str, str], Tally] | None:
        try:
            tally = await count(stack, cluster_nc, db, wave)
            rows = await db.fetch(
                "SELECT session_id, id FROM paused_sessions WHERE project_id = $1", wave.project
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, nats.errors.Error):
            return None  # a server still coming back
        ids = {r["session_id"]: r["id"] for r in rows}
        last[:] = [tally]
        return (ids, tally) if settled(tally, wave, ids) else None

    try:
        ids, tally = await eventually(ids_and_tally, timeout=90, interval=0.5, what="settling")
    except AssertionError:
        print(stack.logs())
        print(last)
        raise
    await asyncio.sleep(2)  # anything late, a duplicate included, has time to show
    ids, tally = await ids_and_tally() or (ids, tally)
    seconds = time.monotonic() - started

    duplicates = sum(n - 1 for n in tally.paused_rows.values())
    port_ids = {ids[s] for s in wave.port_conflicts}
    next_started = sum(1 for i in port_ids if tally.next_sessions[i] >= 1)
    request.config.stash[FAULT_REPORT].append(
        f"| {fault} | {what} | {len(wave.stuck)} | {len(tally.paused_rows)} | {duplicates} | "
        f"{sum(tally.processed.values())} | {tally.resends_dropped} | "
        f"{sum(tally.emails.values())} | {len(tally.emails_unknown)} | "
        f"{len(tally.recovered)} | {next_started} | {len(tally.dead_letters)} | {seconds:.1f} |"
    )
    assert set(tally.paused_rows) == wave.stuck, "healthy sessions paused or stuck ones missed"
    assert duplicates == 0, tally.paused_rows
    assert tally.kv_paused == len(wave.retry_loops)
    assert all(n == 1 for n in tally.processed.values()), tally.processed
    assert set(tally.ledger) == {"sent"}, tally.ledger
    assert all(n == 1 for n in tally.emails.values()), tally.emails  # never twice
    assert set(tally.email_statuses) <= {"sent", "unknown"}, tally.email_statuses
    expected_emails = {(i, False) for i in ids.values()} | {(i, True) for i in port_ids}
    assert set(tally.emails) | tally.emails_unknown == expected_emails  # sent, or said unknown
    if fault == "none":
        assert tally.resends_dropped == 0
    assert set(tally.recovered) == port_ids and all(n == 1 for n in tally.recovered.values())
    assert all(tally.next_sessions[i] <= 1 for i in port_ids), tally.next_sessions
    if fault not in AT_MOST_ONCE_NEXT_SESSION:
        assert next_started == len(port_ids)
    reasons = sorted(str(letter["reason"]) for letter in tally.dead_letters)
    assert len(reasons) == 2 and all(
        str(letter["consumer"]).startswith("detector-") for letter in tally.dead_letters
    )
    assert any("JSON" in r or "json" in r for r in reasons), reasons
