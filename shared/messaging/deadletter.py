"""Dead letters: a message that cannot be processed is copied to ``dlq.<subject>`` in DEAD_LETTERS.

The consumer runner dead-letters what it gives up on (undecodable, poison, retries exhausted) before
``term``; a forwarder also listens to the MAX_DELIVERIES advisory for messages whose processing kept
crashing the process. Both use the id ``dlq:<stream>:<seq>:<consumer>`` so each copy is stored once.

Once the cause is fixed, an operator replays a dead letter (``scripts/dead_letters.py``): its original bytes go
back to its original subject addressed to the consumer that gave up on it (``Dlq-Replay-For``), which applies
it once (its inbox); every other consumer of the subject acks it unread, since it applied the event already or
never had to. The dead letter is then deleted, so what is left in DEAD_LETTERS is what still needs a person.
Listing them (``dead_letters``) reads the stream in batches, through a consumer that acknowledges nothing and
is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
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


# The listing reads DEAD_LETTERS through a consumer of its own (``dead_letters``): this many messages a pull.
LIST_BATCH = 500
LIST_FETCH_S = 5.0  # one pull waits this long at most for its first message
# Should the listing's process die before deleting its consumer, the server deletes it after this long unused.
LIST_INACTIVE_S = 60.0
_LIST_RETRIES = 3  # readings started again without reading anything new before the listing gives up
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def dead_letters(js: JetStreamContext, *, limit: int = 10_000, batch: int = LIST_BATCH) -> list[DeadLetter]:
    """The dead letters still stored, oldest first (at most ``limit``), read ``batch`` a request.

    A consumer of the listing's own reads DEAD_LETTERS from its first message: ephemeral, in memory, and
    acknowledging nothing (ack policy none: a dead letter stays until replayed or discarded, and nothing is
    redelivered, so none is read twice); it is deleted when the listing ends. Each message says how many
    follow it, so the listing ends at the last one without waiting. A delivery lost on the way (a gap in the
    consumer's sequence, a pull answered by nothing) starts a new consumer after the last dead letter read: each
    is listed once, in sequence order."""
    found: list[DeadLetter] = []
    start, retries = 1, 0
    while len(found) < limit:
        read, complete = await _read_from(js, start, limit - len(found), batch)
        found.extend(read)
        if complete:
            break
        if read:
            start, retries = read[-1].seq + 1, 0
        else:
            retries += 1
            if retries >= _LIST_RETRIES:
                raise TimeoutError(f"{DLQ_STREAM}: no dead letter after {start - 1} reached this listing")
    return found


async def _read_from(js: JetStreamContext, start: int, wanted: int, batch: int) -> tuple[list[DeadLetter], bool]:
    """Up to ``wanted`` dead letters from sequence ``start`` on, and whether they are all there is (or wanted):
    False when a delivery went missing, and the reading must start again after the last one returned."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=AckPolicy.NONE,
        filter_subject=f"{DLQ_PREFIX}>",
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=LIST_INACTIVE_S,
    )
    try:
        info = await js.add_consumer(DLQ_STREAM, config)
    except NotFoundError:
        return [], True  # no DEAD_LETTERS stream (yet): nothing was ever dead-lettered here
    read: list[DeadLetter] = []
    try:
        if not info.num_pending:
            return read, True
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=DLQ_STREAM)
        try:
            while len(read) < wanted:
                try:
                    msgs = await sub.fetch(min(batch, wanted - len(read)), timeout=LIST_FETCH_S)
                except TimeoutError:  # nats-py's, and asyncio's
                    now = await js.consumer_info(DLQ_STREAM, info.name)
                    # Nothing left (deleted meanwhile), or something sent that never arrived.
                    return read, not now.num_pending and now.delivered.consumer_seq == len(read)
                for msg in msgs:
                    metadata = msg.metadata
                    if metadata.sequence.consumer != len(read) + 1:
                        return read, False  # one went missing before this one
                    read.append(
                        _described(metadata.sequence.stream, msg.subject, msg.data, msg.headers or {}, _stored_at(msg))
                    )
                    if metadata.num_pending == 0:
                        return read, True
            return read, True
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        try:
            await js.delete_consumer(DLQ_STREAM, info.name)
        except NotFoundError:
            pass
        except Exception as exc:
            log.warning(
                "dead-letter listing's consumer %s not deleted (%s): the server deletes it within %.0f s",
                info.name,
                type(exc).__name__,
                LIST_INACTIVE_S,
            )


def _stored_at(msg: Msg) -> datetime:
    """When a delivered message was stored, to the microsecond as ``get_msg`` gives it (``metadata.timestamp``
    goes through a float): the nanoseconds of its reply subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.<consumer seq>.<ns>.<pending>``, or the longer form with a domain and an account."""
    tokens = (msg.reply or "").split(".")
    nanos = int(tokens[7] if len(tokens) == 9 else tokens[Msg.Ack.Timestamp])
    return _EPOCH + timedelta(microseconds=nanos // 1000)


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
