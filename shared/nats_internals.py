"""Where the hot consumers reach past nats-py's public API, in one place, and why.

A consumer that sees every agent event pays for nats-py 2.16's per-message work on each one:
a delivery's headers parsed into a dict and a task switch to the subscription's own task
(`deliveries`, and `taken` for the deliveries a consumer only acks); a publish's subject
validated again and three coroutines run to append one command to the client's buffer
(`sent`). Each speaks to the client's internals as the pinned nats-py release has them; tests
against a real server (this module's, the pinned consumer's, the detector's, the pauser's) hold
them there.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["acked", "deliveries", "sent", "taken"]

log = logging.getLogger(__name__)

# A delivery as the client's parser reads it: subject, reply, payload, raw header block.
_Deliver = Callable[[bytes, bytes, bytes, bytes], Awaitable[None]]
# Whether a delivery (its reply subject and payload) was dealt with before nats-py saw it.
_Take = Callable[[bytes, bytes], bool]
_ROUTES: weakref.WeakKeyDictionary[Client, tuple[dict[int, _Deliver], dict[int, _Take]]] = (
    weakref.WeakKeyDictionary()
)


def deliveries(nc: Client) -> dict[int, _Deliver]:
    """The subscriptions of `nc` (by sid) whose deliveries its read loop hands over as they are
    parsed (subject, reply, payload and the raw header block), instead of building a `Msg` with
    its headers parsed into a dict and queueing it for the subscription's task, a task switch a
    message. nats-py has no public hook for this: its parser calls the client's `_process_msg`,
    wrapped here once per client; every other subscription goes through it as before."""
    return _routes(nc)[0]


def taken(nc: Client) -> dict[int, _Take]:
    """The subscriptions of `nc` (by sid) whose deliveries are first offered, in the read loop,
    to a function of their reply subject and payload: when it returns True it dealt with the
    delivery (it acks what a consumer only skips), and nats-py never builds a message of it;
    when False, nats-py delivers it to the subscription as always (headers, task, callback).
    The function runs in the read loop: it must not wait for anything."""
    return _routes(nc)[1]


def _routes(nc: Client) -> tuple[dict[int, _Deliver], dict[int, _Take]]:
    found = _ROUTES.get(nc)
    if found is not None:
        return found
    routes: dict[int, _Deliver] = {}
    takers: dict[int, _Take] = {}
    _ROUTES[nc] = (routes, takers)
    generic = nc._process_msg
    stats = nc.stats

    async def process_msg(
        sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        deliver = routes.get(sid)
        if deliver is None:
            take = takers.get(sid)
            if take is None or not _took(take, reply, data):
                await generic(sid, subject, reply, data, headers)
                return
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            return
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        try:
            await deliver(subject, reply, data, headers)
        except Exception:  # raised into the read loop, it would cost the connection
            log.exception("a delivery on %r was dropped (redelivered after ack_wait)", subject)

    nc._process_msg = process_msg  # type: ignore[method-assign]
    return routes, takers


def _took(take: _Take, reply: bytes, data: bytes) -> bool:
    try:
        return take(reply, data)
    except Exception:  # raised into the read loop, it would cost the connection
        log.exception("a delivery was left to nats-py: its taker failed")
        return False


def sent(nc: Client, subject: str, payload: bytes = b"") -> bool:
    """Publish `payload` on `subject` (no reply, no headers) the way `Client.publish` does while
    the client is connected: the command joins the client's pending buffer, and its flusher is
    woken if it sleeps, so what a step publishes goes out in one write. Without the subject's
    validation: only for subjects built from validated identifiers or read from the server's
    own reply subjects. False, with nothing sent, in every other state (connecting, draining,
    closed, a payload over the server's limit, a full buffer): `Client.publish` then decides,
    buffers, waits or raises as it always does."""
    queue = nc._flush_queue
    if (
        nc._status != Client.CONNECTED
        or queue is None
        or len(payload) > nc._max_payload
        or 0 < nc._max_pending_size < nc._pending_data_size  # publish waits for a flush first
        or nc._flusher_task is None
        or nc._flusher_task.done()
    ):
        return False
    command = b"PUB %b  %d\r\n%b\r\n" % (subject.encode(), len(payload), payload)
    nc._pending.append(command)
    nc._pending_data_size += len(command)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(payload)
    if queue.empty():
        queue.put_nowait(nc._flusher_task.get_loop().create_future())
    return True


def acked(msg: Msg) -> bool:
    """Ack a JetStream delivery as `Msg.ack` does, by `sent`; False (nothing sent) when `sent`
    could not, or the message has no reply or was acked already: `Msg.ack` then acks, or
    raises as it always does."""
    if not msg.reply or msg._ackd or not sent(msg._client, msg.reply):
        return False
    msg._ackd = True
    return True
