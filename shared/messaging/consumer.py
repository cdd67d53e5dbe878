"""The pull-consumer runner: take a batch, apply it in one transaction with the inbox, ack after commit.

- Messages come from ``PullStream``: pull requests kept open, so the next batch is being delivered while
  one is applied (measured at 1,000 submissions/s against nats-py's ``fetch``: the alerting service used
  0.50 → 0.45 ms of CPU per submission, the questionnaire service 0.84 → 0.80).

- Undecodable or poison messages (``PoisonMessage``, payload validation errors) are dead-lettered, then
  ``term``-ed: never retried.
- A transaction that lost a race (a deadlock, a serialization failure, a lock or statement timeout:
  ``shared.db.transient``) is run again at once, a few times, with short jittered waits, before it counts as a
  failure: no delivery is used up and no backoff waited out for what a second run resolves. Still failing, the
  batch is isolated as after any failure, each message tried once on its own, then left to the backoff schedule.
- Any other failure is retried on the consumer's backoff schedule
  (``ConsumerSpec.backoff_s``, ``CONSUMER_BACKOFF_S``), as after a crash, and dead-lettered when its last
  delivery fails. It is not nak-ed with a delay: on a consumer with a backoff, JetStream stretches a nak's
  delay by the schedule (nats-server 2.15: ``delay + backoff[n-1] - backoff[0]``), so naks of 2, 4, 8… s
  gave waits of 2, 34, 278… s. Instead its ack timer is restarted (``in_progress``) and no longer kept
  alive: JetStream redelivers it after the schedule's entry for that delivery, exactly.
- A batch whose handling fails is rolled back and retried message by message, so one bad message never
  holds back the others.
- Unless the database cannot be used (it cannot be reached, it is read-only as a standby is, or it cut or
  refused the connection: a restart, a failover; ``DATABASE_UNUSABLE``): then the failure says nothing about
  the messages, so none of them is counted as a failed delivery. The batch is held, kept in progress so that
  the server neither redelivers it nor counts it, and applied when the database takes writes again. Otherwise
  an outage longer than the redelivery delays would dead-letter every message that came during it. Such an
  error seen again and again while the database takes writes (``UNUSABLE_TRIES``) is the messages' failure
  after all: a statement that brings its connection down every time must not hold the consumer for ever.
- ``ack`` only after the commit: a crash in between means redelivery, and the inbox makes that harmless.
- A dead letter replayed for another consumer of the subject (``deadletter.replay``) is acked unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from pydantic import ValidationError

from shared.db.inbox import claim_new
from shared.db.pool import DATABASE_UNUSABLE, caused_by, is_transient
from shared.db.transient import retrying
from shared.events.catalog import NewerEventVersion, decode_event
from shared.events.envelope import CloudEvent, raw_envelope
from shared.faults import fault_point
from shared.messaging.deadletter import addressed_elsewhere, dead_letter
from shared.messaging.pull import PullStream
from shared.messaging.topology import ConsumerSpec
from shared.telemetry import context_from_headers, get_tracer, start_process_span

log = logging.getLogger(__name__)

# shared.db.pool.DATABASE_UNUSABLE is what says the database cannot be used just now. Unlike a request, a
# handler's own OSError (a call to anything else) is its failure; one from connecting to the database is judged
# by trying the database (``_database_usable``).

# How many times in a row such an error is believed while the database takes writes (each try may meet a
# pooled connection that a restart ended); after that, it is the messages' failure.
UNUSABLE_TRIES = 3


def database_unusable(exc: BaseException) -> bool:
    """Whether ``exc`` says that the database cannot be used just now (``DATABASE_UNUSABLE``, perhaps beneath)."""
    return caused_by(exc, DATABASE_UNUSABLE)


@dataclass(frozen=True)
class Consumed:
    """One event to apply, with the trace context its effects (outbox rows) must carry."""

    event: CloudEvent[Any]
    trace_headers: dict[str, str]


EventHandler = Callable[[CloudEvent[Any], asyncpg.Connection], Awaitable[None]]
BatchHandler = Callable[[Sequence[Consumed], asyncpg.Connection], Awaitable[None]]


def one_by_one(handler: EventHandler) -> BatchHandler:
    """Apply a per-event handler to a batch, each event under its own trace context."""

    async def apply(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        for consumed in batch:
            token = otel_context.attach(context_from_headers(consumed.trace_headers))
            try:
                await handler(consumed.event, conn)
            finally:
                otel_context.detach(token)

    apply.__name__ = getattr(handler, "__name__", "apply")
    return apply


class PoisonMessage(Exception):
    """Raised by a handler for an event it can never process (a bug in the producer, not a passing fault)."""


@dataclass(frozen=True)
class Subscription:
    """A durable consumer and what applies its events: a per-event handler (``on_<event>(event, conn)``)
    or, where set-wise SQL pays, a batch handler (``batch=True``) given all the fresh events of a fetch."""

    spec: ConsumerSpec
    handler: EventHandler | BatchHandler
    batch: bool = False

    def batch_handler(self) -> BatchHandler:
        if self.batch:
            return self.handler  # type: ignore[return-value]
        return one_by_one(self.handler)  # type: ignore[arg-type]


@dataclass
class _Delivery:
    msg: Msg
    event: CloudEvent[Any]


class ConsumerRunner:
    def __init__(self, nc: NATS, js: JetStreamContext, pool: asyncpg.Pool, subscription: Subscription) -> None:
        self._nc = nc
        self._js = js
        self._pool = pool
        self._spec = subscription.spec
        self._handler = subscription.batch_handler()
        self._tracer = get_tracer("shared.consumer")
        self._stop = asyncio.Event()
        self._pull: PullStream | None = None
        # Messages left to JetStream's backoff after a failure (by reply subject, one per delivery): the
        # batch's keep-alive must leave their ack timer alone.
        self._released: set[str] = set()

    @property
    def spec(self) -> ConsumerSpec:
        return self._spec

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        pull = self._pull = PullStream(self._nc, self._spec.stream, self._spec.durable, batch=self._spec.fetch_batch)
        await pull.start()
        interrupting = asyncio.create_task(self._interrupt_on(stop, pull))
        try:
            while not stop.is_set():
                try:
                    msgs = await pull.next_batch(wait_s=1.0, linger_s=self._spec.linger_s)
                except Exception as exc:
                    # The loop must outlive any fault (reconnects, leader elections, a bug in one batch).
                    log.warning("%s: pull failed (%s: %s)", self._spec.durable, type(exc).__name__, exc)
                    await asyncio.sleep(0.5)
                    continue
                if not msgs:
                    continue  # nothing within the wait
                try:
                    await self.process(msgs)
                except Exception:
                    log.exception("%s: batch failed; its messages will be redelivered", self._spec.durable)
        finally:
            interrupting.cancel()
            await pull.close()

    @staticmethod
    async def _interrupt_on(stop: asyncio.Event, pull: PullStream) -> None:
        await stop.wait()
        pull.interrupt()

    async def process(self, msgs: list[Msg]) -> None:
        self._released.clear()
        deliveries: list[_Delivery] = []
        for msg in msgs:
            if addressed_elsewhere(msg, self._spec.durable):
                await msg.ack()  # a dead letter replayed for another consumer of the subject: not ours to apply
                continue
            try:
                deliveries.append(_Delivery(msg, decode_event(raw_envelope(msg.data))))
            except NewerEventVersion as exc:
                await self._retry_later(msg, exc)
            except Exception:
                # Whatever decoding raised (an upcaster's KeyError too), this message is unreadable, and the others
                # of the batch are not held back by it.
                await self._give_up(msg, "undecodable")
        if not deliveries:
            return
        heartbeat = asyncio.create_task(self._keep_alive([d.msg for d in deliveries]))
        try:
            tries = 0
            while True:
                try:
                    await self._apply_retrying(deliveries)
                    break
                except Exception as exc:
                    failure = exc
                if await self._messages_failed(failure, tries):
                    # Isolate the failing message: each one in its own transaction. After a race the batch lost
                    # on every try (a lock held long), once each: four tries a message would hold the consumer
                    # four times as long behind that lock, for the messages that do not need it.
                    retry_races = not is_transient(failure)
                    for delivery in deliveries:
                        await self._apply_one(delivery, retry_races=retry_races)
                    return
                tries += 1
                if not await self._until_database_usable(len(deliveries), failure):
                    return  # stopping: not acked, so redelivered later, to this process or another replica
            fault_point("consumer.after_commit")
            await self._ack([d.msg for d in deliveries])
        finally:
            heartbeat.cancel()

    async def _messages_failed(self, exc: Exception, tries: int) -> bool:
        """Whether a failure is the messages' (isolated, retried, given up), not the database's: the database
        takes writes, and the error does not say otherwise, or has said so ``UNUSABLE_TRIES`` times in a row."""
        if tries < UNUSABLE_TRIES and database_unusable(exc):
            return False
        return await self._database_usable()

    async def _database_usable(self) -> bool:
        """Whether the database answers and takes writes (a standby answers, read-only)."""
        try:
            async with self._pool.acquire(timeout=2.0) as conn:
                return bool(await conn.fetchval("SELECT current_setting('transaction_read_only') = 'off'"))
        except Exception:
            return False

    async def _until_database_usable(self, held: int, exc: Exception) -> bool:
        """Wait for the database, holding the batch (``_keep_alive`` keeps it in progress); False when the
        service stops first."""
        log.warning(
            "%s: the database cannot be used (%s); holding %s messages until it can",
            self._spec.durable,
            type(exc).__name__,
            held,
        )
        delay = 0.25
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if await self._database_usable():
                log.info("%s: the database can be used again", self._spec.durable)
                return True
            delay = min(2 * delay, 5.0)
        return False

    async def _apply_retrying(self, deliveries: list[_Delivery]) -> None:
        """The batch's transaction, run again at once after a transient error (a deadlock, a lock timeout…):
        neither a delivery counted nor the backoff schedule waited out. The batch is kept in progress meanwhile
        (``_keep_alive``), and the inbox claims roll back with each failed try."""
        await retrying(lambda: self._apply(deliveries), where=self._spec.durable)

    async def _apply(self, deliveries: list[_Delivery]) -> None:
        spans: list[Span] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                fresh = await claim_new(conn, self._spec.durable, (d.event.id for d in deliveries))
                batch: list[Consumed] = []
                for delivery in deliveries:
                    if delivery.event.id not in fresh:
                        continue  # already applied: a redelivery after a lost ack
                    fresh.discard(delivery.event.id)  # the same event twice in one batch is applied once
                    span, trace_headers = start_process_span(
                        self._tracer, delivery.msg.subject, delivery.event.id, delivery.msg.headers, self._spec.durable
                    )
                    spans.append(span)
                    batch.append(Consumed(delivery.event, trace_headers))
                if batch:
                    await self._handler(batch, conn)
        finally:
            for span in spans:
                span.end()

    async def _apply_one(self, delivery: _Delivery, *, retry_races: bool = True) -> None:
        msg = delivery.msg
        tries = 0
        while True:
            try:
                if retry_races:
                    await self._apply_retrying([delivery])
                else:
                    await self._apply([delivery])
                break
            except (PoisonMessage, ValidationError) as exc:
                log.error("%s: poison message (%s)", self._spec.durable, type(exc).__name__)
                await self._give_up(msg, "poison")
                return
            except Exception as exc:
                failure = exc
            if await self._messages_failed(failure, tries):
                await self._retry_later(msg, failure)
                return
            tries += 1
            if not await self._until_database_usable(1, failure):
                return
        fault_point("consumer.after_commit")
        await self._ack([msg])

    async def _retry_later(self, msg: Msg, exc: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        if 0 < self._spec.max_deliver <= deliveries:
            await self._give_up(msg, "retries_exhausted")
            return
        delay = self._spec.redelivery_delay(deliveries)
        log.warning(
            "%s: transient failure (%s), retry %s in %.0fs", self._spec.durable, type(exc).__name__, deliveries, delay
        )
        # Its ack timer starts again now, and is no longer kept alive: JetStream redelivers it after ``delay``,
        # the consumer's backoff entry for this delivery (a nak with a delay would be stretched: module docstring).
        self._released.add(msg.reply)
        with contextlib.suppress(Exception):
            await msg.in_progress()  # if it is lost, the timer runs from the last keep-alive: a little sooner

    async def _give_up(self, msg: Msg, reason: str) -> None:
        meta = msg.metadata
        try:
            await dead_letter(
                self._js,
                subject=msg.subject,
                data=msg.data,
                headers=msg.headers,
                stream=meta.stream,
                stream_seq=meta.sequence.stream,
                consumer=self._spec.durable,
                deliveries=meta.num_delivered,
                reason=reason,
            )
        except Exception as exc:
            # Not copied, so not terminated: it comes back after ack_wait and is given up again. The rest of the
            # batch goes on meanwhile.
            log.warning(
                "%s: could not dead-letter a message (%s); it will come back", self._spec.durable, type(exc).__name__
            )
            return
        await msg.term()

    async def _ack(self, msgs: list[Msg]) -> None:
        # No flush (a PING/PONG round trip) after the acks: nats-py's flusher writes them at the next turn of
        # the event loop, ahead of the next fetch's request, and an ack that never arrives only means a
        # redelivery the inbox skips. Waiting for the PONG held every batch up (measured at 1,000
        # submissions/s: POST→alert p99 about 380 → 280 ms).
        for msg in msgs:
            await msg.ack()

    async def _keep_alive(self, msgs: list[Msg]) -> None:
        # Tell the server we are still working so ack_wait does not hand the batch to another replica, nor the
        # messages delivered meanwhile, which wait in the pull stream's buffer for this batch to be done.
        interval = self._spec.backoff_s[0] / 3
        while True:
            await asyncio.sleep(interval)
            waiting = self._pull.buffered() if self._pull is not None else []
            for msg in [*msgs, *waiting]:
                if msg.is_acked or msg.reply in self._released:  # "in progress" would delay its retry
                    continue
                with contextlib.suppress(Exception):
                    await msg.in_progress()
