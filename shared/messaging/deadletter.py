"""Dead letters: a message that cannot be processed is copied to ``dlq.<subject>`` in DEAD_LETTERS.

The consumer runner dead-letters what it gives up on (undecodable, poison, retries exhausted) before
``term``; a forwarder also listens to the MAX_DELIVERIES advisory for messages whose processing kept
crashing the process. Both use the id ``dlq:<stream>:<seq>:<consumer>`` so each copy is stored once.

Once the cause is fixed, an operator replays a dead letter (``scripts/dead_letters.py``): its original bytes go
back to its original subject addressed to the consumer that gave up on it (``Dlq-Replay-For``), which applies
it once (its inbox); every other consumer of the subject acks it unread, since it applied the event already or
never had to. The dead letter is then deleted, so what is left in DEAD_LETTERS is what still needs a person.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import NotFoundError

from shared.messaging.topology import ConsumerSpec

log = logging.getLogger(__name__)

DLQ_PREFIX = "dlq."
DLQ_STREAM = "DEAD_LETTERS"
# On a replayed dead letter: the one consumer that is to apply it.
REPLAY_FOR = "Dlq-Replay-For"
_PASSED_ON = ("traceparent", "tracestate", "Content-Type")


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
    out = {k: v for k, v in (headers or {}).items() if k in _PASSED_ON}
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


def addressed_elsewhere(msg: Msg, durable: str) -> bool:
    """A replayed dead letter meant for another consumer of the subject: acked unread."""
    headers = msg.headers
    return headers is not None and headers.get(REPLAY_FOR, durable) != durable


@dataclass(frozen=True)
class DeadLetter:
    """A message in DEAD_LETTERS, described by codes and ids only: its payload is patient data, never shown."""

    seq: int  # in DEAD_LETTERS
    at: datetime | None  # when it was dead-lettered
    subject: str  # the original subject
    consumer: str  # the consumer that gave up on it
    reason: str  # undecodable, poison, retries_exhausted, max_deliveries
    deliveries: int
    origin: str  # <stream>:<sequence> of the original message
    event_type: str | None  # None when the bytes are no CloudEvent
    event_id: str | None
    data: bytes
    headers: Mapping[str, str]


def _described(seq: int, subject: str, data: bytes, headers: Mapping[str, str], at: datetime | None) -> DeadLetter:
    event_type = event_id = None
    try:
        envelope = orjson.loads(data)
        if isinstance(envelope, dict):
            event_type, event_id = envelope.get("type"), envelope.get("id")
    except orjson.JSONDecodeError:
        pass
    return DeadLetter(
        seq=seq,
        at=at,
        subject=headers.get("Dlq-Subject", subject.removeprefix(DLQ_PREFIX)),
        consumer=headers.get("Dlq-Consumer", ""),
        reason=headers.get("Dlq-Reason", ""),
        deliveries=int(headers.get("Dlq-Deliveries", "0")),
        origin=f"{headers.get('Dlq-Stream', '?')}:{headers.get('Dlq-Stream-Seq', '?')}",
        event_type=event_type if isinstance(event_type, str) else None,
        event_id=event_id if isinstance(event_id, str) else None,
        data=data,
        headers=headers,
    )


async def dead_letters(js: JetStreamContext, *, limit: int = 10_000) -> list[DeadLetter]:
    """The dead letters still stored, oldest first (at most ``limit``)."""
    found: list[DeadLetter] = []
    seq = 1
    while len(found) < limit:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=f"{DLQ_PREFIX}>", next=True)
        except NotFoundError:
            break  # nothing at or after seq
        found.append(_described(raw.seq or seq, raw.subject or "", raw.data or b"", raw.headers or {}, raw.time))
        seq = (raw.seq or seq) + 1
    return found


async def dead_letter_at(js: JetStreamContext, seq: int) -> DeadLetter | None:
    try:
        raw = await js.get_msg(DLQ_STREAM, seq=seq)
    except NotFoundError:
        return None
    return _described(seq, raw.subject or "", raw.data or b"", raw.headers or {}, raw.time)


async def replay(js: JetStreamContext, letter: DeadLetter) -> None:
    """Publish the dead letter's original bytes to its subject for its consumer, then delete the dead letter.

    Run twice (a crash between the publish and the delete), the replay is stored once (its id is the dead
    letter's, within the stream's duplicate window) and applied once anyway (the consumer's inbox)."""
    headers = {k: v for k, v in letter.headers.items() if k in _PASSED_ON}
    headers.update({Header.MSG_ID: f"replay:{DLQ_STREAM}:{letter.seq}", REPLAY_FOR: letter.consumer})
    await js.publish(letter.subject, letter.data, headers=headers)
    await js.delete_msg(DLQ_STREAM, letter.seq)
    log.warning("replayed dead letter %s (%s) for %s", letter.seq, letter.subject, letter.consumer)


async def discard(js: JetStreamContext, letter: DeadLetter) -> None:
    """Delete a dead letter a person decided never to apply."""
    await js.delete_msg(DLQ_STREAM, letter.seq)
    log.warning("discarded dead letter %s (%s) of %s", letter.seq, letter.subject, letter.consumer)
