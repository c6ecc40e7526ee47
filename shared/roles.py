"""Roles on the bus, with NATS's own authorization: one user per service, per agent project and
per downstream consumer, each allowed exactly the subjects its work needs.

Agents are untrusted: an agent's credentials let it publish its own project's events, read its
own sessions' control state and its project's resume brief, and nothing else (no
`intervention.*`, no commands, no KV writes, no other project). The server configuration is
generated from here (`render_server_config`); the embedded NATS runs with it, and operators of
an existing NATS apply the same accounts (`yokeflow-intervention agents add` prints them).

Permissions check the subject a client publishes to, never the reply subject of its request,
and the server answers a request (a JetStream publish acknowledgement, a direct get) onto that
reply subject with its own authority. So each project's agents live in an account of their
own (`AGENT_<project>`) that imports, as services, only what they use from the services'
account (`YOKEFLOW`): whatever reply subject an agent names, the answer is delivered inside its
own account, where nothing but its own inbox listens, and never reaches a stream, a KV bucket
or another project. Each downstream consumer is an account of its own the same way
(`CONSUMER_<name>`). The agents' accounts also carry each project's limits on the bus (message
size, connections, subscriptions).
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
    MAX_EVENT_BYTES,
    SESSION_SUMMARY_BUCKET,
    ConsumerSpec,
    Subjects,
    agent_inbox_prefix,
)

from .embedded import SERVICES_ACCOUNT

__all__ = [
    "AGENT_LIMITS",
    "SERVICES_ACCOUNT",
    "SERVICE_ROLES",
    "Credentials",
    "EmbeddedBus",
    "Permissions",
    "agent_account",
    "agent_account_config",
    "agent_permissions",
    "consumer_account",
    "consumer_account_config",
    "consumer_permissions",
    "render_deployment_config",
    "render_server_config",
    "service_permissions",
    "with_credentials",
]

# Every role the one image can play (`service NAME`); deploy/ runs each of them.
SERVICE_ROLES = ("detector", "pauser", "orchestrator", "notifier", "recovery", "api")
_API = "$JS.API"
# Each agent account's limits on the bus. max_payload: the largest event the stream stores
# (MAX_EVENT_BYTES) plus its headers; anything larger ends the connection at the server, so
# it never reaches JetStream. Connections: a hook holds one for a tool call and a Python client
# one per agent process; 256 leaves room for that many sessions of one project at once.
AGENT_LIMITS = {
    "max_payload": MAX_EVENT_BYTES + 8 * 1024,
    "max_connections": 256,
    "max_subscriptions": 1024,
}
# Nobody serves it: each tenant account imports it as `$JS.API.INFO`, which keeps the server
# from adding its own JetStream API responder to an account without JetStream (that answer
# would race the imported stream info with "JetStream not enabled for account").
_NOWHERE = "yokeflow.no-jetstream"


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
    consumer's deliveries; a pull consumer's pulls, and a pinned one's unpin (answers come to
    _INBOX)."""
    publish: list[str] = []
    subscribe: list[str] = []
    for spec in specs:
        publish += [
            f"{_API}.CONSUMER.INFO.{spec.stream}.{spec.durable}",
            f"$JS.ACK.{spec.stream}.{spec.durable}.>",
        ]
        if spec.push:
            subscribe.append(spec.deliver_subject)
        else:
            publish.append(f"{_API}.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}")
        if spec.priority_group is not None:
            publish.append(f"{_API}.CONSUMER.UNPIN.{spec.stream}.{spec.durable}")
    return tuple(publish), tuple(subscribe)


def _bucket(bucket: str, write: bool) -> tuple[str, ...]:
    stream = f"KV_{bucket}"
    read = (
        f"{_API}.STREAM.INFO.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        f"{_API}.STREAM.MSG.GET.{stream}",
    )
    return (*read, f"$KV.{bucket}.>") if write else read


def service_permissions(role: str) -> Permissions:
    """What each service's credentials allow: its consumers, what it publishes, its buckets."""
    c = CONSUMERS
    replies = ("_INBOX.>",)  # JetStream API answers and publish acknowledgements
    dead_letters = ("agent.dlq", "intervention.dlq")
    if role == "detector":
        pub, sub = _consuming(*c.detector_events, c.detector_resumes)
        # A session's history: direct gets, and the last message of a subject; and how full
        # the streams agents can fill are (the fill gauges).
        history = (
            f"{_API}.DIRECT.GET.AGENT_EVENTS",
            f"{_API}.STREAM.MSG.GET.AGENT_EVENTS",
            f"{_API}.STREAM.INFO.AGENT_EVENTS",
            f"{_API}.STREAM.INFO.DEAD_LETTERS",
        )
        return Permissions(
            (
                *pub,
                *history,
                *_bucket(DETECTOR_CHECKPOINT_BUCKET, write=True),
                *_bucket(SESSION_SUMMARY_BUCKET, write=True),
                "intervention.detected.>",
                "intervention.warned.>",
                "intervention.waiting.>",
                "agent.verdicts.>",
                *dead_letters,
                f"agent.events.{CLOCK_NAME}.tick.*",
                f"{_API}.DIRECT.GET.KV_{DETECTOR_CHECKPOINT_BUCKET}",
            ),
            (*sub, *replies),
        )
    if role == "pauser":
        pub, sub = _consuming(c.pauser_detected, c.pauser_sessions, c.pauser_warnings)
        return Permissions(
            (
                *pub,
                *_bucket(CONTROL_BUCKET, write=True),
                "intervention.detected.>",
                "intervention.paused.>",
                "intervention.resumed.>",
                "intervention.acknowledged.>",
                "intervention.snoozed.>",
                *dead_letters,
            ),
            (*sub, *replies, "intervention.cmd.>"),
            allow_responses=True,
        )
    if role == "notifier":
        pub, sub = _consuming(
            c.notifier_paused,
            c.notifier_recovery,
            c.notifier_acknowledged,
            c.notifier_snoozed,
            c.notifier_resumed,
            c.notifier_waiting,
        )
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
        watch = (
            f"{_API}.STREAM.INFO.{summaries}",
            f"{_API}.CONSUMER.CREATE.{summaries}",
            f"{_API}.CONSUMER.CREATE.{summaries}.>",
            f"{_API}.CONSUMER.INFO.{summaries}.>",
            f"{_API}.CONSUMER.DELETE.{summaries}.>",
            f"$JS.FC.{summaries}.>",
        )
        return Permissions(("intervention.cmd.>", *watch), ("intervention.>", *replies))
    raise ValueError(f"unknown role {role!r}")


def agent_permissions(project_id: str) -> Permissions:
    """An agent reports on its own project's sessions, reads its own control state and hears
    the detector's verdicts on its own sessions. It publishes `agent.events.<project>.<session>`
    and nothing longer: the stream appends the partition, so an agent cannot choose one."""
    return Permissions(
        _agent_services(project_id),
        (f"{agent_inbox_prefix(project_id)}.>", f"agent.verdicts.{project_id}.>"),
    )


def agent_account(project_id: str) -> str:
    return f"AGENT_{project_id}"


def _agent_services(project_id: str | None) -> tuple[str, ...]:
    """The services' subjects an agent account imports (project None: the exported wildcards)."""
    project = "*" if project_id is None else project_id
    get = f"{_API}.DIRECT.GET.KV_{CONTROL_BUCKET}.$KV.{CONTROL_BUCKET}"
    keys = (
        (f"{get}.>",)
        if project_id is None
        else (f"{get}.session.{project}.>", f"{get}.brief.{project}")
    )
    return (f"agent.events.{project}.*", f"{_API}.STREAM.INFO.KV_{CONTROL_BUCKET}", *keys)


def consumer_account(name: str) -> str:
    return f"CONSUMER_{name}"


def _services_exports() -> list[dict[str, Any]]:
    """What the services' account offers agent and consumer accounts; each imports its own
    part. A pull's answer is several messages (a batch): its export answers with a stream."""
    consumers = consumer_permissions("*").publish
    return [
        *({"service": subject} for subject in _agent_services(None)),
        *(
            {"service": subject, "response": "stream" if ".MSG.NEXT." in subject else "singleton"}
            for subject in consumers
        ),
        {"service": _NOWHERE},
        {"stream": Subjects.VERDICTS_ALL},
    ]


def _tenant_account(
    user: str, password: str, permissions: Permissions, streams: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An account of one untrusted tenant: its user, and as imports from the services' account
    exactly the subjects its permissions let it publish (services) and `streams`. No JetStream
    of its own: every request goes through an import, and every answer comes back only into
    this account, where only the requester's inbox listens."""
    imports: list[dict[str, Any]] = [
        {"service": {"account": SERVICES_ACCOUNT, "subject": subject}}
        for subject in permissions.publish
    ]
    imports += [
        {"service": {"account": SERVICES_ACCOUNT, "subject": _NOWHERE}, "to": f"{_API}.INFO"},
        *({"stream": {"account": SERVICES_ACCOUNT, "subject": s}} for s in streams),
    ]
    entry = {"user": user, "password": password, "permissions": permissions.as_config()}
    return {"users": [entry], "imports": imports}


def agent_account_config(project_id: str, password: str) -> dict[str, Any]:
    """A project's agents' account, with its limits on the bus."""
    permissions = agent_permissions(project_id)
    verdicts = tuple(s for s in permissions.subscribe if s.startswith("agent.verdicts."))
    account = _tenant_account(f"agent-{project_id}", password, permissions, verdicts)
    return {**account, "limits": dict(AGENT_LIMITS)}


def consumer_account_config(name: str, password: str) -> dict[str, Any]:
    """A downstream consumer's account: its own durable consumer on INTERVENTIONS, nothing else."""
    return _tenant_account(f"consumer-{name}", password, consumer_permissions(name))


def consumer_permissions(name: str) -> Permissions:
    """A downstream consumer: its own durable pull consumer on the INTERVENTIONS stream."""
    stream = "INTERVENTIONS"
    return Permissions(
        (
            f"{_API}.STREAM.INFO.{stream}",
            f"{_API}.CONSUMER.INFO.{stream}.{name}",
            f"{_API}.CONSUMER.CREATE.{stream}.{name}",
            f"{_API}.CONSUMER.CREATE.{stream}.{name}.>",
            f"{_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
            f"{_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
        ),
        (f"_INBOX.consumer-{name}.>",),
    )


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
        body = json.dumps(
            {"roles": self.roles, "agents": self.agents, "consumers": self.consumers}, indent=2
        )
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(body)
        os.chmod(self.path, 0o600)

    def accounts(self) -> dict[str, Any]:
        """Every account with its users, as the server configuration lists them."""
        users: list[dict[str, Any]] = [{"user": "admin", "password": self.roles["admin"]}]
        users += [
            {
                "user": role,
                "password": self.roles[role],
                "permissions": service_permissions(role).as_config(),
            }
            for role in SERVICE_ROLES
        ]
        accounts: dict[str, Any] = {
            SERVICES_ACCOUNT: {
                "jetstream": "enabled",
                "users": users,
                "exports": _services_exports(),
            }
        }
        for project, password in sorted(self.agents.items()):
            accounts[agent_account(project)] = agent_account_config(project, password)
        for name, password in sorted(self.consumers.items()):
            accounts[consumer_account(name)] = consumer_account_config(name, password)
        return accounts


def render_server_config(credentials: Credentials) -> str:
    """The `accounts` block of the NATS server configuration (included by the server's own
    configuration file; NATS's format reads the JSON value as it is)."""
    return "accounts: " + json.dumps(credentials.accounts(), indent=2) + "\n"


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
    header = (
        "# Generated by `make bus-config` from shared/roles.py: the users and permissions of\n"
        "# every role. Passwords come from the NATS server's environment. Agents (an\n"
        "# account each) and consumers are added with `yokeflow-intervention\n"
        "# agents|consumers add`.\n"
    )
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
