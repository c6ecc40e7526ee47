"""A downstream consumer of YokeFlow Intervention events: a team's own bot, say.

It reads the INTERVENTIONS stream through a durable JetStream consumer of its own (so it gets
every stored event exactly once per acknowledgement, and resumes where it stopped after a
restart), parses each message with the contract's models, and acknowledges it.

    python docs/examples/downstream_subscriber.py nats://127.0.0.1:4222
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


async def follow(
    url: str,
    durable: str = "my-team-bot",
    subject: str = "intervention.>",  # e.g. "intervention.*.my-project" for one project
    limit: int | None = None,
) -> list[dict]:
    # With credentials from `yokeflow-intervention consumers add NAME` (durable = NAME), replies
    # arrive under the consumer's own inbox prefix: the only inbox its user may read.
    nc = await nats.connect(url, inbox_prefix=f"_INBOX.consumer-{durable}")
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject,
        durable=durable,
        stream="INTERVENTIONS",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW),
    )
    seen: list[dict] = []
    try:
        while limit is None or len(seen) < limit:
            try:
                messages = await sub.fetch(10, timeout=5)
            except TimeoutError:
                continue
            for msg in messages:
                event = json.loads(msg.data)
                kind = msg.subject.split(".")[1]  # detected, paused, resumed, notified, recovery
                print(
                    f"{kind:9} {event['project_id']}/{event['session_id']} "
                    f"{event.get('reason', '')}"
                )
                seen.append({"kind": kind, **event})
                await msg.ack()
    finally:
        await nc.close()
    return seen


if __name__ == "__main__":
    asyncio.run(follow(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"))
