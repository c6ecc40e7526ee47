"""`yokeflow-intervention up`: infrastructure, provisioning, and every service, supervised."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client

from yokeflow_intervention.services.recovery.actions import stop_started_processes
from yokeflow_intervention.shared.bus import (
    OPEN_BUS_WARNING,
    NatsUnreachable,
    connect,
    is_open,
    provision,
    redact_credentials,
)
from yokeflow_intervention.shared.db import migrate
from yokeflow_intervention.shared.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from yokeflow_intervention.shared.owners import (
    DATABASE_SERVICES,
    apply_table_owners,
    passwords_from_environment,
    role_url,
)
from yokeflow_intervention.shared.roles import SERVICE_ROLES, EmbeddedBus, with_credentials
from yokeflow_intervention.shared.runtime import product_command
from yokeflow_intervention.shared.settings import DEMO_PROJECT, Settings

from .lifeline import Lifeline, StackRunning, die_with_parent, hold_data_folder

__all__ = ["Infrastructure", "ServiceSpec", "Supervisor", "prepare_infrastructure", "run_up"]

SERVICES = SERVICE_ROLES  # `up` supervises every role


@dataclass
class Infrastructure:
    nats_url: str  # the operators' (admin) URL
    database_url: str
    started: list[EmbeddedNats | EmbeddedPostgres] = field(default_factory=list)
    # Each service's own URL (its role's credentials); empty for a configured NATS, whose
    # operators give each service its URL (docs/security.md).
    service_urls: dict[str, str] = field(default_factory=dict)
    agent_urls: dict[str, str] = field(default_factory=dict)  # project -> its agents' URL
    # Each service's PostgreSQL URL (its role, shared/owners.py); empty for a configured
    # DATABASE_URL, which every service then shares unless its operators give each its own.
    database_urls: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()


def prepare_infrastructure(
    settings: Settings,
    report: bool = True,
    agents: tuple[str, ...] = (),
    lifeline: Lifeline | None = None,
) -> Infrastructure:
    """Start what is not configured, then create streams, consumers, buckets and tables.
    `agents`: projects whose agents get credentials on the embedded NATS (the demo's).
    `lifeline`: told of each server before it starts, so that it is stopped even if we die."""
    started: list[EmbeddedNats | EmbeddedPostgres] = []
    data_dir = settings.data_dir.resolve()
    nats_url = settings.nats_url
    service_urls: dict[str, str] = {}
    agent_urls: dict[str, str] = {}
    if nats_url is None:
        # Roles on the bus: every service, agent project and consumer is a user of its own.
        bus = EmbeddedBus(data_dir / "nats")
        credentials = bus.credentials()
        for project in agents:
            credentials.add_agent(project)
        config = bus.write(credentials)
        server = EmbeddedNats(data_dir / "nats", include=config)
        was_running = server.attach()
        if was_running and server.holds_global_streams():
            server.stop()  # an earlier version's: started again, its streams move (embedded.py)
            was_running = False
        if lifeline is not None and not was_running:
            lifeline.guard(server)
        server.start()
        if was_running:
            server.reload()
        else:
            started.append(server)
        nats_url = with_credentials(server.url, "admin", credentials.roles["admin"])
        service_urls = {
            role: with_credentials(server.url, role, credentials.roles[role])
            for role in SERVICE_ROLES
        }
        agent_urls = {
            project: with_credentials(server.url, f"agent-{project}", credentials.agents[project])
            for project in agents
        }
        _say(
            report,
            f"NATS (embedded, JetStream)  {server.url}  data: {server.data_dir}  "
            "(a user per service and agent project)",
        )
    else:
        _say(report, f"NATS (configured)           {redact_credentials(nats_url)}")
    database_url = settings.database_url
    database_urls: dict[str, str] = {}
    if database_url is None:
        pg = EmbeddedPostgres(data_dir / "postgres")
        was_running = pg.running
        if lifeline is not None and not was_running:
            lifeline.guard(pg)
        pg.start()
        if not was_running:
            started.append(pg)
        database_url = pg.url
        database_urls = {service: role_url(pg.url, service) for service in DATABASE_SERVICES}
        _say(report, f"PostgreSQL (embedded)       {pg.pgdata}")
    else:
        _say(report, "PostgreSQL (configured)     DATABASE_URL")

    async def setup() -> list[str]:
        nc = await connect_patiently(nats_url, "yokeflow-provision")
        try:
            if is_open(nc):
                print(f"WARNING: {OPEN_BUS_WARNING}", file=sys.stderr, flush=True)
            await provision(
                nc, replicas=settings.stream_replicas, stream_max_bytes=settings.stream_max_bytes
            )
        finally:
            await nc.close()
        applied = await migrate(database_url)
        await apply_table_owners(database_url, passwords_from_environment())
        return applied

    applied = asyncio.run(setup())
    _say(report, f"provisioned streams, consumers, buckets; migrations applied: {len(applied)}")
    return Infrastructure(nats_url, database_url, started, service_urls, agent_urls, database_urls)


async def connect_patiently(url: str, name: str, patience: float = 30.0) -> Client:
    """Wait for a NATS that is still starting (compose, a fresh cluster), but not for one that
    refuses us: bad credentials fail at once, with the reason."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await connect(url, name, persistent=False)
        except NatsUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def _say(report: bool, line: str) -> None:
    if report:
        print(f"  {line}", flush=True)


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = True
    console: bool = False  # writes to the terminal `up` runs in, not to a log file


class Supervisor:
    """Runs service processes, restarts one that dies (with backoff), stops all on exit."""

    def __init__(
        self, base_env: dict[str, str], log_dir: Path, lifeline: Lifeline | None = None
    ) -> None:
        self.base_env = base_env
        self.log_dir = log_dir
        self.lifeline = lifeline  # told of every process, so it is stopped even if we die
        self.processes: dict[str, tuple[ServiceSpec, subprocess.Popen[bytes], float]] = {}
        self.restarts: dict[str, int] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: ServiceSpec) -> None:
        log = None if spec.console else (self.log_dir / f"{spec.name}.log").open("ab")
        process = subprocess.Popen(
            spec.argv,
            env={**self.base_env, **spec.env},
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # no orphans when we are killed (cli/lifeline.py)
        )
        self.processes[spec.name] = (spec, process, time.monotonic())
        if self.lifeline is not None:
            self.lifeline.guard_process(process.pid)

    def check(self) -> None:
        for name, (spec, process, started) in list(self.processes.items()):
            code = process.poll()
            if code is None:
                continue
            if not spec.restart:
                del self.processes[name]
                continue
            count = self.restarts.get(name, 0) + 1
            self.restarts[name] = count
            # Back off when a service keeps dying right after start.
            if time.monotonic() - started < 5 and count > 3:
                time.sleep(min(count, 10))
            print(f"  ! {name} exited with {code}; restarting (see {self.log_dir}/{name}.log)")
            self.start(spec)

    def stop(self) -> None:
        for _, process, _ in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process, _ in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()


# The roles that may run as several replicas (docs/architecture.md): the pauser and notifier
# share their durable consumers through deliver groups and every step they take is idempotent;
# detector replicas share the partitions of sessions, one owner per partition at a time.
SCALABLE = ("detector", "pauser", "notifier")


def service_specs(
    settings: Settings,
    replicas: Mapping[str, int] | None = None,
    demo: bool = False,
    service_urls: dict[str, str] | None = None,
    database_urls: dict[str, str] | None = None,
) -> list[ServiceSpec]:
    """Every service process `up` runs (`replicas`: how many of each scalable role). With
    `demo` and no `agent_command` of the user's, the demo agent continues sessions after a
    resume; otherwise a resume with no `agent_command` leaves the brief for the agent's next
    session and starts nothing."""
    specs = []
    for name in SERVICES:
        copies = (replicas or {}).get(name, 1) if name in SCALABLE else 1
        for n in range(copies):
            label = f"{name}-{n + 1}" if copies > 1 else name
            spec = ServiceSpec(label, product_command(f"services.{name}"))
            if name == "detector":
                spec.env["YOKEFLOW_DETECTOR_REPLICA"] = str(n)
                spec.env["YOKEFLOW_DETECTOR_REPLICAS"] = str(copies)
            if service_urls and name in service_urls:
                spec.env["NATS_URL"] = service_urls[name]  # its role's credentials only
            if database_urls and name in database_urls:
                spec.env["DATABASE_URL"] = database_urls[name]  # its tables only
            specs.append(spec)
    if demo:
        for spec in specs:
            spec.env["YOKEFLOW_DEMO"] = "true"
    if demo and not settings.agent_command:
        orchestrator = next(s for s in specs if s.name == "orchestrator")
        orchestrator.env["YOKEFLOW_AGENT_COMMAND"] = ",".join(product_command("cli.demo_agent"))
    return specs


def run_up(
    settings: Settings,
    demo: bool,
    replicas: Mapping[str, int] | None = None,
    config_file: Path | None = None,
    quiet: bool = False,
) -> int:
    data_dir = settings.data_dir.resolve()
    try:
        lock = hold_data_folder(data_dir)
    except StackRunning as exc:
        print(f"YokeFlow Intervention: not starting: {exc}", file=sys.stderr, flush=True)
        return 1
    print("YokeFlow Intervention: starting", flush=True)
    lifeline = Lifeline(data_dir, lock)
    try:
        return _run(settings, demo, replicas, config_file, quiet, lifeline)
    finally:
        lifeline.close()
        os.close(lock)


def _run(
    settings: Settings,
    demo: bool,
    replicas: Mapping[str, int] | None,
    config_file: Path | None,
    quiet: bool,
    lifeline: Lifeline,
) -> int:
    infra = prepare_infrastructure(
        settings, agents=(DEMO_PROJECT,) if demo else (), lifeline=lifeline
    )
    env = {
        **os.environ,
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": infra.database_url,
        # Every service reads exactly the configuration `up` was given, wherever it runs.
        "YOKEFLOW_DATA_DIR": str(settings.data_dir.resolve()),
        "PYTHONUNBUFFERED": "1",
    }
    if config_file is not None:
        env["YOKEFLOW_CONFIG"] = str(config_file.resolve())
    port = settings.api_port or free_port(settings.api_host)
    dashboard = f"http://{settings.api_host}:{port}/"
    env["YOKEFLOW_API_PORT"] = str(port)
    env.setdefault("YOKEFLOW_DASHBOARD_URL", dashboard.rstrip("/"))
    supervisor = Supervisor(env, settings.data_dir.resolve() / "logs", lifeline)
    if demo:  # the registered workspace of the demo project, and its agents' credentials
        (settings.data_dir.resolve() / "demo-workspace").mkdir(parents=True, exist_ok=True)
        env["YOKEFLOW_DEMO_AGENT_NATS_URL"] = infra.agent_urls.get(DEMO_PROJECT, infra.nats_url)
    for spec in service_specs(settings, replicas, demo, infra.service_urls, infra.database_urls):
        supervisor.start(spec)
    if demo:
        supervisor.start(
            ServiceSpec(
                "demo-agent",
                product_command("cli.demo_agent", "--loop"),
                {"NATS_URL": infra.agent_urls.get(DEMO_PROJECT, infra.nats_url)},
                restart=False,
            )
        )
    print(f"  services: {', '.join(supervisor.processes)}  logs: {supervisor.log_dir}")
    print(f"\n  Dashboard: {dashboard}")
    print(f"  API:       {dashboard}docs (OpenAPI)")
    if infra.service_urls:
        print(
            "  Agents:    `yokeflow-intervention agents connect PROJECT CLIENT` wires an agent CLI"
        )
    if not quiet:
        # A line per intervention event, here, as it happens (the watcher inherits this
        # terminal, so it colours its lines when this is one).
        supervisor.start(ServiceSpec("watch", product_command("cli.watch"), console=True))
    print(
        "Running. Ctrl-C stops everything." + ("" if quiet else " Interventions as they happen:"),
        flush=True,
    )

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
    finally:
        print("\nstopping services...", flush=True)
        supervisor.stop()
        for pid in stop_started_processes(settings):
            print(f"  stopped process {pid} that recovery had started", flush=True)
        infra.stop()
        print("stopped.", flush=True)
    return 0
