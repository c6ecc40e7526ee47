"""What every service process does at start: settings, JSON logs, where the servers are."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from yokeflow_agent.contract import ConsumerSpec

from .bus import server_list
from .embedded import EmbeddedPostgres
from .metrics import PERIODIC_ROUND, probe_loop_stalls, read_consumer_lag, serve_metrics
from .roles import Credentials, with_credentials
from .settings import Settings, load_settings

__all__ = [
    "ServiceContext",
    "configure_logging",
    "product_command",
    "run_periodically",
    "service_context",
]

log = logging.getLogger(__name__)


def product_command(module: str, *args: str) -> list[str]:
    """The argv that runs one of the product's modules (`services.detector`, `cli.demo_agent`)
    as its own process: this interpreter, the package's absolute module name, and `-P`, so the
    current folder (a user's project, an agent's workspace) is never searched for code."""
    return [sys.executable, "-P", "-m", f"yokeflow_intervention.{module}", *args]


class _JsonFormatter(logging.Formatter):
    """One JSON object a line; ids passed with `extra=` become fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("intervention_id", "session_id", "project_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("faststream").setLevel(logging.WARNING)


class ServiceContext:
    """Settings plus the resolved server URLs for one service process."""

    def __init__(self, service: str, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        url = settings.nats_url or _embedded_nats_url(settings.data_dir)
        if settings.nats_user and settings.nats_password:
            url = with_credentials(
                url, settings.nats_user, settings.nats_password.get_secret_value()
            )
        self.nats_url = url
        self.database_url = settings.database_url or _embedded_database_url(settings.data_dir)

    def broker(self) -> NatsBroker:
        # Services bind provisioned durable consumers that have a deliver group: FastStream's
        # warning about scaling push consumers with `durable` does not apply.
        warnings.filterwarnings("ignore", message="The JetStream Push consumer with the `durable`")
        return NatsBroker(
            server_list(self.nats_url),
            name=f"yokeflow-{self.service}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            # Per-message "Received/Processed" lines are debug noise; errors still show.
            logger=logging.getLogger("faststream.nats"),
            log_level=logging.DEBUG,
        )

    def instrument(
        self,
        app: FastStream,
        jetstream: Callable[[], JetStreamContext],
        consumers: tuple[ConsumerSpec, ...],
    ) -> None:
        """Serve /metrics on `metrics_port`, keep this service's consumer-lag gauges current and
        time its event loop's stalls."""
        probing: list[asyncio.Task[None]] = []

        @app.after_startup
        async def start_metrics() -> None:
            serve_metrics(self.settings.metrics_port)
            probing.append(asyncio.create_task(probe_loop_stalls(), name="loop stalls"))
            log.info("ready: consuming %s", ", ".join(c.durable for c in consumers))

        @app.on_shutdown
        async def stop_probing() -> None:
            for task in probing:
                task.cancel()

        run_periodically(app, 10.0, lambda: read_consumer_lag(jetstream(), consumers), "lag")

    def require_database(self) -> str:
        if not self.database_url:
            raise SystemExit(
                f"{self.service}: DATABASE_URL is not set; start everything with "
                "`yokeflow-intervention up` or point DATABASE_URL at PostgreSQL"
            )
        return self.database_url


def run_periodically(
    app: FastStream, every: float, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run `work` now and every `every` seconds for the app's life, after it has started. A
    failed round is logged; the next one tries again."""
    running: list[asyncio.Task[None]] = []

    async def rounds() -> None:
        timed = PERIODIC_ROUND.labels(what)
        while True:
            started = time.perf_counter()
            try:
                await work()
            except Exception as exc:
                log.warning("%s failed, trying again in %s s: %r", what, every, exc)
            timed.observe(time.perf_counter() - started)
            await asyncio.sleep(every)

    @app.after_startup
    async def start() -> None:
        running.append(asyncio.create_task(rounds()))

    @app.on_shutdown
    async def stop() -> None:
        for task in running:
            task.cancel()


def _embedded_nats_url(data_dir: Path) -> str:
    state = data_dir / "nats" / "server.json"
    try:
        port = json.loads(state.read_text())["port"]
    except (OSError, ValueError, KeyError):
        raise SystemExit(
            "NATS_URL is not set and no embedded NATS server is running; start everything with "
            "`yokeflow-intervention up` or point NATS_URL at a NATS server"
        ) from None
    url = f"nats://127.0.0.1:{port}"
    credentials = data_dir / "nats" / "credentials.json"
    if credentials.is_file():  # the embedded server has users: this process is an operator's
        return with_credentials(url, "admin", Credentials.load(credentials).roles["admin"])
    return url


def _embedded_database_url(data_dir: Path) -> str | None:
    pg = EmbeddedPostgres(data_dir / "postgres")
    if not pg.running:
        return None
    return pg.start().url


def service_context(service: str) -> ServiceContext:
    settings = load_settings()
    configure_logging(service, settings.log_level)
    return ServiceContext(service, settings)
