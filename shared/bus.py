"""NATS plumbing shared by the services: provisioning and idempotent publishing.

Streams, durable consumers and KV buckets are created here once (by `up`, by the deploy
provisioning job, by the test fixtures). Services bind to them and never re-declare them, so
no service can silently change another's stream settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError
from pydantic import BaseModel
from yokeflow_agent.contract import (
    CONSUMERS,
    KV_BUCKETS,
    SESSION_SUMMARY_BUCKET,
    SESSION_SUMMARY_TTL_S,
    STREAMS,
    ConsumerSpec,
    DeadLetter,
    StreamSpec,
)

__all__ = [
    "DEFAULT_STREAM_MAX_BYTES",
    "OPEN_BUS_WARNING",
    "NatsUnreachable",
    "connect",
    "create_consumer",
    "dead_letter",
    "is_open",
    "provision",
    "publish_event",
    "read_range",
    "redact_credentials",
    "server_list",
    "wait_until_ready",
]

log = logging.getLogger(__name__)

# What each stream agents can fill (AGENT_EVENTS, DEAD_LETTERS) keeps at most, unless configured:
# a week of events of a few hundred busy sessions, and well under the disk of a small node, so
# the INTERVENTIONS stream and the KV buckets always have room.
DEFAULT_STREAM_MAX_BYTES = 4 * 2**30


def server_list(url: str) -> list[str]:
    """NATS_URL may name every node of a cluster: `nats://a:4222,nats://b:4222`."""
    return [part.strip() for part in url.split(",") if part.strip()]


def redact_credentials(url: str) -> str:
    """A NATS or PostgreSQL URL fit to print: `nats://user:pass@host` becomes `nats://***@host`."""
    shown = []
    for part in server_list(url):
        scheme, found, rest = part.rpartition("://")
        userinfo, at, host = rest.rpartition("@")
        shown.append(f"{scheme}{found}***@{host}" if at and userinfo else part)
    return ",".join(shown)


async def connect(url: str, name: str, persistent: bool = True) -> Client:
    """A service's client keeps reconnecting for as long as the process lives; a one-shot
    command's (persistent=False) gives up after a couple of seconds with a clear error that
    names the server (never its credentials) and why."""
    if persistent:
        return await nats.connect(
            server_list(url),
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
        )

    async def quiet(error: Exception) -> None:
        log.debug("NATS: %r", error)

    try:
        return await asyncio.wait_for(
            nats.connect(
                server_list(url),
                name=name,
                allow_reconnect=False,
                connect_timeout=2,
                error_cb=quiet,
            ),
            timeout=3,
        )
    except (TimeoutError, OSError, nats.errors.NoServersError):
        raise NatsUnreachable(f"NATS at {redact_credentials(url)} is not reachable") from None
    except nats.errors.Error as exc:
        reason = str(exc).removeprefix("nats: ").strip("'") or type(exc).__name__
        raise ConnectionError(f"NATS at {redact_credentials(url)} refused us: {reason}") from None


OPEN_BUS_WARNING = (
    "NATS asks for no credentials: any agent that reaches it may do anything (pause or resume "
    "any session, forge interventions, write control keys). Give it the accounts of "
    "deploy/nats/auth.conf (docs/security.md)."
)


def is_open(nc: Client) -> bool:
    """Whether the server `nc` is connected to asks for no credentials: then there are no roles,
    and every client, an agent's included, may publish and read anything. The server says so
    in the INFO it greets every client with (nats-py keeps it, without a public accessor)."""
    return not nc._server_info.get("auth_required", False)


class NatsUnreachable(ConnectionError):
    """Nothing answered (yet): worth trying again, unlike a refusal such as bad credentials."""


async def wait_until_ready(
    js: JetStreamContext, consumers: Iterable[ConsumerSpec], buckets: Iterable[str] = ()
) -> None:
    """Wait until JetStream answers for every consumer and KV bucket this service binds.

    After a cluster restart the streams need a moment to elect leaders, and in a fresh deploy
    the provisioning job may not have run yet: a service waits (saying why) instead of dying.
    """
    consumers, buckets = tuple(consumers), tuple(buckets)
    said_at = 0.0
    while True:
        try:
            for spec in consumers:
                await js.consumer_info(spec.stream, spec.durable)
            for bucket in buckets:
                await js.stream_info(f"KV_{bucket}")
            return
        except (nats.errors.Error, TimeoutError) as exc:
            if time.monotonic() - said_at > 5:
                hint = (
                    " (not provisioned yet? run `provision`)"
                    if isinstance(exc, NotFoundError)
                    else ""
                )
                log.warning("waiting for JetStream%s: %r", hint, exc)
                said_at = time.monotonic()
            await asyncio.sleep(0.5)


def _stream_config(spec: StreamSpec, replicas: int, max_bytes: int) -> StreamConfig:
    """A bounded stream discards its oldest messages when full instead of refusing new ones:
    refusing would let one tenant's flood stop every other tenant's events (and their pauses),
    while what is discarded is history the consumers have long since handled."""
    transform = spec.subject_transform
    return StreamConfig(
        name=spec.name,
        allow_direct=spec.allow_direct,
        allow_msg_ttl=spec.allow_msg_ttl or None,
        subjects=list(spec.subjects),
        description=spec.description,
        storage=StorageType.FILE,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s,
        max_msg_size=spec.max_msg_size,
        max_bytes=max_bytes if spec.bounded else -1,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        subject_transform=SubjectTransform(src=transform[0], dest=transform[1])
        if transform
        else None,
    )


# Durable consumers earlier versions created and nothing binds any more (the registry's was a
# push consumer, which the server cannot turn into a pull consumer: it has a new name).
_RETIRED_CONSUMERS = (("AGENT_EVENTS", "detector"), ("AGENT_EVENTS", "pauser-sessions"))


async def create_consumer(nc: Client, consumer: ConsumerSpec, replicas: int) -> None:
    """Create (or update) the durable consumer `consumer` describes: a push consumer with a
    deliver group, a pull consumer with a pinned-client priority group, or a plain pull
    consumer. Through the server's API as documented, since nats-py 2.16's ConsumerConfig has
    no priority groups (ADR-42, "Pull Consumer Priority Groups")."""
    config: dict[str, object] = {
        "durable_name": consumer.durable,
        "filter_subject": consumer.filter_subject,
        "ack_policy": "explicit",
        "deliver_policy": "all",
        "ack_wait": int(consumer.ack_wait_s * 1e9),
        "max_deliver": consumer.max_deliver,
        "max_ack_pending": consumer.max_ack_pending,
        "num_replicas": replicas,
    }
    if consumer.push:
        config |= {"deliver_subject": consumer.deliver_subject, "deliver_group": consumer.group}
    elif consumer.priority_group is not None:
        config |= {
            "priority_groups": [consumer.priority_group],
            "priority_policy": "pinned_client",
            "priority_timeout": int(consumer.priority_timeout_s * 1e9),
        }
    subject = f"$JS.API.CONSUMER.CREATE.{consumer.stream}.{consumer.durable}"
    request = {"stream_name": consumer.stream, "config": config}
    reply = json.loads((await nc.request(subject, json.dumps(request).encode(), 5.0)).data)
    if "error" in reply:
        raise nats.errors.Error(f"consumer {consumer.durable}: {reply['error']}")


async def provision(
    nc: Client, replicas: int = 1, stream_max_bytes: int = DEFAULT_STREAM_MAX_BYTES
) -> None:
    """Create or update every stream, durable consumer and KV bucket. Safe to run again."""
    js = nc.jetstream()
    for spec in STREAMS:
        config = _stream_config(spec, replicas, stream_max_bytes)
        try:
            await js.stream_info(spec.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
    for stream, durable in _RETIRED_CONSUMERS:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, durable)
    for consumer in CONSUMERS.all():
        await create_consumer(nc, consumer, replicas)
    for bucket in KV_BUCKETS:
        # Direct gets put the key in the request's subject, so a user's permissions can name
        # the keys it may read (an agent: its own project's); a plain get carries it in the body.
        try:
            info = await js.stream_info(f"KV_{bucket}")
            if not info.config.allow_direct:
                info.config.allow_direct = True
                await js.update_stream(info.config)
        except NotFoundError:
            # Session summaries are a live view: one value a key, gone an hour after the
            # session's last event.
            summaries = bucket == SESSION_SUMMARY_BUCKET
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=1 if summaries else 5,
                    replicas=replicas,
                    direct=True,
                    ttl=SESSION_SUMMARY_TTL_S if summaries else None,
                )
            )
    log.info(
        "provisioned %d streams, %d consumers, %d buckets",
        len(STREAMS),
        len(CONSUMERS.all()),
        len(KV_BUCKETS),
    )


_PAGE = 256


async def read_range(
    nc: Client, stream: str, subject: str, start: int, end: int, timeout: float = 5.0
) -> list[bytes]:
    """The payloads of the messages on `subject` with stream sequence in [start, end), by
    batched direct gets (no consumer). The message at `end` must be on `subject` (the one being
    handled): seeing it proves the answering server current, since with direct gets a
    follower may answer, and a follower may lag; one that does is asked again."""
    found: list[bytes] = []
    if start >= end:
        return found
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    seq, stale = start, 0
    try:
        while True:
            request = {"seq": seq, "next_by_subj": subject, "batch": _PAGE}
            await nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            got, reached = 0, False
            while True:  # a batch ends with a status (204 end of batch, 404 nothing found)
                msg = await sub.next_msg(timeout)
                headers = msg.headers or {}
                if "Status" in headers:
                    break
                got += 1
                number = int(headers["Nats-Sequence"])
                if number >= end:
                    reached = True
                elif not reached:
                    found.append(msg.data)
                    seq = number + 1
            if reached:
                return found
            if got < _PAGE:  # the answer ended before `end`: a lagging follower
                stale += 1
                if stale > 20:
                    raise TimeoutError(f"{stream} showed no message {end} on {subject}")
                await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()


async def read_last_values(
    nc: Client, stream: str, subject: str, timeout: float = 5.0
) -> list[tuple[str, bytes]]:
    """(subject, payload) of the last message of every subject matching `subject` (wildcards
    allowed), read in stream order by batched direct gets (no consumer, and no cap on how many
    subjects match, unlike a multi-last get); a KV entry deleted or purged is left out."""
    found: dict[str, bytes] = {}
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    seq = 1
    try:
        while True:
            request = {"seq": seq, "next_by_subj": subject, "batch": _PAGE}
            await nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            got = 0
            while True:  # a batch ends with a status (204 end of batch, 404 nothing found)
                msg = await sub.next_msg(timeout)
                headers = msg.headers or {}
                if "Status" in headers:
                    break
                got += 1
                seq = int(headers["Nats-Sequence"]) + 1
                deleted = headers.get("KV-Operation") in ("DEL", "PURGE")
                found[headers["Nats-Subject"]] = b"" if deleted else msg.data
            if got < _PAGE:
                break
    finally:
        await sub.unsubscribe()
    return [(name, data) for name, data in found.items() if data]


def _encode(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


async def publish_event(
    js: JetStreamContext, subject: str, model: BaseModel, msg_id: str, timeout: float = 5.0
) -> None:
    """Publish to JetStream with a Nats-Msg-Id, so a retry of the same step is dropped."""
    await js.publish(subject, _encode(model), headers={"Nats-Msg-Id": msg_id}, timeout=timeout)


async def dead_letter(
    js: JetStreamContext,
    dlq_subject: str,
    original_subject: str,
    payload: bytes,
    reason: str,
    consumer: str | None = None,
    msg_id: str | None = None,
) -> None:
    """Park a message nobody can process, with the reason, where an operator can find it.
    `msg_id` names the original delivery, so a redelivery parks it only once."""
    letter = DeadLetter(
        reason=reason,
        original_subject=original_subject,
        payload=payload.decode("utf-8", errors="replace")[:65536],
        consumer=consumer,
    )
    log.warning("dead letter from %s: %s", original_subject, reason)
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await js.publish(dlq_subject, _encode(letter), timeout=5.0, headers=headers)
