"""Dead letters: a message that cannot be processed is copied to ``dlq.<subject>`` in DEAD_LETTERS.

The consumer runner dead-letters what it gives up on (undecodable, poison, retries exhausted) before
``term``; a forwarder also listens to the MAX_DELIVERIES advisory for messages whose processing kept
crashing the process. Both use the id ``dlq:<stream>:<seq>:<consumer>`` so each copy is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import Header

from shared.messaging.topology import ConsumerSpec

log = logging.getLogger(__name__)

DLQ_PREFIX = "dlq."


async def dead_letter(
    js: JetStreamContext,
    *,
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    stream: str,
    stream_seq: int,
    consumer: str,
    deliveries: int,
    reason: str,
) -> None:
    """Publish the original bytes to the dead-letter stream, with the origin in headers (codes only)."""
    out = {k: v for k, v in (headers or {}).items() if k in ("traceparent", "tracestate", "Content-Type")}
    out.update(
        {
            # One dead letter per (message, consumer): two consumers giving up on it are two facts.
            Header.MSG_ID: f"dlq:{stream}:{stream_seq}:{consumer}",
            "Dlq-Reason": reason,
            "Dlq-Stream": stream,
            "Dlq-Stream-Seq": str(stream_seq),
            "Dlq-Consumer": consumer,
            "Dlq-Deliveries": str(deliveries),
            "Dlq-Subject": subject,
        }
    )
    await js.publish(f"{DLQ_PREFIX}{subject}", data, headers=out)
    log.warning(
        "dead-lettered %s seq %s from %s (%s, %s deliveries)",
        subject,
        stream_seq,
        consumer,
        reason,
        deliveries,
    )


async def forward_exhausted(nc: NATS, js: JetStreamContext, spec: ConsumerSpec) -> Subscription:
    """Copy messages that hit max_deliver without the runner deciding (the process died each time)."""
    advisory = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{spec.stream}.{spec.durable}"

    async def on_advisory(msg: Msg) -> None:
        try:
            info = orjson.loads(msg.data)
            original = await js.get_msg(spec.stream, int(info["stream_seq"]))
            await dead_letter(
                js,
                subject=original.subject or spec.subject,
                data=original.data or b"",
                headers=original.headers,
                stream=spec.stream,
                stream_seq=int(info["stream_seq"]),
                consumer=spec.durable,
                deliveries=int(info.get("deliveries", spec.max_deliver)),
                reason="max_deliveries",
            )
        except Exception as exc:  # an advisory we cannot act on must not kill the subscription
            log.error("dead-letter forwarder for %s failed: %s", spec.durable, type(exc).__name__)

    # A queue group: with N replicas, one of them forwards each advisory.
    return await nc.subscribe(advisory, queue=f"{spec.durable}-dlq", cb=on_advisory)
