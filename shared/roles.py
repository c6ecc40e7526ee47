"""Roles on the bus, with NATS's own authorization: one user per service, per agent project and
per downstream consumer, each allowed exactly the subjects its work needs.

Agents are untrusted: an agent's credentials let it publish its own project's events, read its
own sessions' control state and its project's resume brief, and nothing else (no
`intervention.*`, no commands, no KV writes, no other project). The server configuration is
generated from here (`render_server_config`); the embedded NATS runs with it, and operators of
an existing NATS apply the same users (`yokeflow-intervention agents add` prints them).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from yokeflow_agent.contract import (
    CLOCK_NAME,
    CONSUMERS,
    CONTROL_BUCKET,
    DETECTOR_CHECKPOINT_BUCKET,
    SESSION_SUMMARY_BUCKET,
    ConsumerSpec,
    agent_inbox_prefix,
)

__all__ = [
    "SERVICE_ROLES",
    "Credentials",
    "EmbeddedBus",
    "Permissions",
    "agent_permissions",
    "consumer_permissions",
    "render_deployment_config",
    "render_server_config",
    "service_permissions",
    "with_credentials",
]

# Every role the one image can play (`service NAME`); deploy/ runs each of them.
SERVICE_ROLES = ("detector", "pauser", "orchestrator", "notifier", "recovery", "api")
_API = "$JS.API"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    allow_responses: bool = False

    def as_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            config["allow_responses"] = True
        return config


def _consuming(*specs: ConsumerSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(publish, subscribe) to bind provisioned consumers, ack, and read their lag: a push
    consumer's deliveries; a pinned pull consumer's pulls and unpin (answers come to _INBOX)."""
    publish: list[str] = []
    subscribe: list[str] = []
    for spec in specs:
        publish += [f"{_API}.CONSUMER.INFO.{spec.stream}.{spec.durable}",
                    f"$JS.ACK.{spec.stream}.{spec.durable}.>"]  # fmt: skip
        if spec.priority_group is None:
            subscribe.append(spec.deliver_subject)
        else:
            publish += [f"{_API}.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}",
                        f"{_API}.CONSUMER.UNPIN.{spec.stream}.{spec.durable}"]  # fmt: skip
    return tuple(publish), tuple(subscribe)


def _bucket(bucket: str, write: bool) -> tuple[str, ...]:
    stream = f"KV_{bucket}"
    read = (f"{_API}.STREAM.INFO.{stream}", f"{_API}.DIRECT.GET.{stream}.>",
            f"{_API}.STREAM.MSG.GET.{stream}")  # fmt: skip
    return (*read, f"$KV.{bucket}.>") if write else read


def service_permissions(role: str) -> Permissions:
    """What each service's credentials allow: its consumers, what it publishes, its buckets."""
    c = CONSUMERS
    replies = ("_INBOX.>",)  # JetStream API answers and publish acknowledgements
    dead_letters = ("agent.dlq", "intervention.dlq")
    if role == "detector":
        pub, sub = _consuming(*c.detector_events, c.detector_resumes)
        # A session's history: direct gets, and the last message of a subject.
        history = (f"{_API}.DIRECT.GET.AGENT_EVENTS", f"{_API}.STREAM.MSG.GET.AGENT_EVENTS")
        return Permissions(
            (*pub, *history, *_bucket(DETECTOR_CHECKPOINT_BUCKET, write=True),
             *_bucket(SESSION_SUMMARY_BUCKET, write=True), "intervention.detected.>", "intervention.warned.>", "intervention.waiting.>", "agent.verdicts.>",
             *dead_letters, f"agent.events.{CLOCK_NAME}.tick.*",
             f"{_API}.DIRECT.GET.KV_{DETECTOR_CHECKPOINT_BUCKET}"),
            (*sub, *replies),
        )  # fmt: skip
    if role == "pauser":
        pub, sub = _consuming(c.pauser_detected, c.pauser_sessions, c.pauser_warnings)
        return Permissions(
            (*pub, *_bucket(CONTROL_BUCKET, write=True), "intervention.detected.>",
             "intervention.paused.>", "intervention.resumed.>", *dead_letters),
            (*sub, *replies, "intervention.cmd.>"),
            allow_responses=True,
        )  # fmt: skip
    if role == "notifier":
        pub, sub = _consuming(c.notifier_paused, c.notifier_recovery, c.notifier_waiting)
        return Permissions((*pub, "intervention.notified.>", *dead_letters), (*sub, *replies))
    if role == "recovery":
        pub, sub = _consuming(c.recovery_paused)
        return Permissions(
            (*pub, "intervention.recovery.>", "intervention.cmd.>", *dead_letters),
            (*sub, *replies),
        )
    if role == "orchestrator":
        pub, sub = _consuming(c.orchestrator_resumes)
        return Permissions((*pub, "intervention.cmd.>", *dead_letters), (*sub, *replies))
    if role == "api":
        # The fleet view: a watch of the session summaries (an ordered consumer of its own).
        summaries = f"KV_{SESSION_SUMMARY_BUCKET}"
        watch = (f"{_API}.STREAM.INFO.{summaries}", f"{_API}.CONSUMER.CREATE.{summaries}",
                 f"{_API}.CONSUMER.CREATE.{summaries}.>", f"{_API}.CONSUMER.INFO.{summaries}.>",
                 f"{_API}.CONSUMER.DELETE.{summaries}.>", f"$JS.FC.{summaries}.>")  # fmt: skip
        return Permissions(("intervention.cmd.>", *watch), ("intervention.>", *replies))
    raise ValueError(f"unknown role {role!r}")


def agent_permissions(project_id: str) -> Permissions:
    """An agent reports on its own project's sessions, reads its own control state and hears
    the detector's verdicts on its own sessions. It publishes `agent.events.<project>.<session>`
    and nothing longer: the stream appends the partition, so an agent cannot choose one."""
    get = f"{_API}.DIRECT.GET.KV_{CONTROL_BUCKET}.$KV.{CONTROL_BUCKET}"
    return Permissions(
        (f"agent.events.{project_id}.*", f"{_API}.STREAM.INFO.KV_{CONTROL_BUCKET}",
         f"{get}.session.{project_id}.>", f"{get}.brief.{project_id}"),
        (f"{agent_inbox_prefix(project_id)}.>", f"agent.verdicts.{project_id}.>"),
    )  # fmt: skip


def consumer_permissions(name: str) -> Permissions:
    """A downstream consumer: its own durable pull consumer on the INTERVENTIONS stream."""
    stream = "INTERVENTIONS"
    return Permissions(
        (f"{_API}.STREAM.INFO.{stream}", f"{_API}.CONSUMER.INFO.{stream}.{name}",
         f"{_API}.CONSUMER.CREATE.{stream}.{name}", f"{_API}.CONSUMER.CREATE.{stream}.{name}.>",
         f"{_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
         f"{_API}.CONSUMER.MSG.NEXT.{stream}.{name}", f"$JS.ACK.{stream}.{name}.>"),
        (f"_INBOX.consumer-{name}.>",),
    )  # fmt: skip


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (one server or a comma-separated list) with these credentials in each address."""
    out = []
    for server in url.split(","):
        parts = urlsplit(server.strip())
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        out.append(urlunsplit(parts._replace(netloc=netloc)))
    return ",".join(out)


@dataclass
class Credentials:
    """Every user's password, in a file only its owner can read (0600)."""

    path: Path
    roles: dict[str, str] = field(default_factory=dict)  # admin + services
    agents: dict[str, str] = field(default_factory=dict)  # project -> password
    consumers: dict[str, str] = field(default_factory=dict)  # name -> password

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """The stored credentials, with a password for every role (new ones generated)."""
        found = cls(path)
        if path.is_file():
            stored = json.loads(path.read_text())
            found.roles, found.agents = stored.get("roles", {}), stored.get("agents", {})
            found.consumers = stored.get("consumers", {})
        for role in ("admin", *SERVICE_ROLES):
            found.roles.setdefault(role, secrets.token_urlsafe(24))
        return found

    def add_agent(self, project_id: str) -> str:
        """Credentials for a project's agents (the same ones again if it has them)."""
        return self.agents.setdefault(project_id, secrets.token_urlsafe(24))

    def add_consumer(self, name: str) -> str:
        return self.consumers.setdefault(name, secrets.token_urlsafe(24))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"roles": self.roles, "agents": self.agents,
                           "consumers": self.consumers}, indent=2)  # fmt: skip
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(body)
        os.chmod(self.path, 0o600)

    def users(self) -> list[dict[str, Any]]:
        """Every user, as the server configuration lists them."""
        users: list[dict[str, Any]] = [{"user": "admin", "password": self.roles["admin"]}]
        users += [{"user": role, "password": self.roles[role],
                   "permissions": service_permissions(role).as_config()} for role in SERVICE_ROLES]  # fmt: skip
        users += [{"user": f"agent-{project}", "password": password,
                   "permissions": agent_permissions(project).as_config()}
                  for project, password in sorted(self.agents.items())]  # fmt: skip
        users += [{"user": f"consumer-{name}", "password": password,
                   "permissions": consumer_permissions(name).as_config()}
                  for name, password in sorted(self.consumers.items())]  # fmt: skip
        return users


def render_server_config(credentials: Credentials) -> str:
    """The `authorization` block of the NATS server configuration (included by the server's
    own configuration file; NATS's format reads the JSON value as it is)."""
    return "authorization: " + json.dumps({"users": credentials.users()}, indent=2) + "\n"


def render_deployment_config() -> str:
    """The same block for a deployment (deploy/nats/auth.conf): every password is a variable
    the NATS server reads from its environment, `$YOKEFLOW_NATS_PASSWORD_<ROLE>`."""
    placeholders = Credentials(Path("unused"))
    for role in ("admin", *SERVICE_ROLES):
        placeholders.roles[role] = f"$YOKEFLOW_NATS_PASSWORD_{role.upper()}"
    text = render_server_config(placeholders)
    for role in ("admin", *SERVICE_ROLES):  # a variable reference is unquoted in NATS's format
        name = f"YOKEFLOW_NATS_PASSWORD_{role.upper()}"
        text = text.replace(f'"${name}"', f"${name}")
    header = ("# Generated by `make bus-config` from shared/roles.py: the users and permissions of\n"
              "# every role. Passwords come from the NATS server's environment. Agents and\n"
              "# consumers are added with `yokeflow-intervention agents|consumers add`.\n")  # fmt: skip
    return header + text


if __name__ == "__main__":
    print(render_deployment_config(), end="")


@dataclass
class EmbeddedBus:
    """The embedded NATS's users: credentials and the server configuration generated from them,
    under the data folder (both 0600)."""

    folder: Path  # <data_dir>/nats

    @property
    def config_file(self) -> Path:
        return self.folder / "auth.conf"

    def credentials(self) -> Credentials:
        return Credentials.load(self.folder / "credentials.json")

    def write(self, credentials: Credentials) -> Path:
        """Save the credentials and the server configuration that grants them."""
        credentials.save()
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(render_server_config(credentials))
        return self.config_file
