"""Transactional outbox: ``add_event`` in the business transaction, ``OutboxRelay`` publishes after commit.

The relay publishes each row with ``Nats-Msg-Id`` = event id (JetStream drops a re-publish inside the
duplicate window) and marks it published only after the PubAck, so a crash anywhere re-sends at worst,
and the stream still holds the event once.

One relay per schema publishes at a time: each process's relay has its own connection (it also LISTENs
there), and the one holding the schema's session advisory lock publishes while the others stand by
and try again every ``poll_interval``. A dead process's connection ends and frees the lock. So the
relay reads and marks rows without row locks or a transaction held open across the publish (in the
benchmark, the POST→alert p99 at 500 submissions/s went from 230–300 ms to 90–200 ms without that
transaction), and events leave in outbox order.
Should two relays ever overlap (a connection PostgreSQL has not yet seen die), they send the same
events, and JetStream's dedup stores them once. A connection cut without PostgreSQL noticing (a
half-open TCP connection) would keep the lock, so the relay's connection asks for TCP keepalives that
give up on a silent peer after about 25 s (``RELAY_KEEPALIVES``; Unix sockets ignore them).

Rows bound for the same stream go out as JetStream **atomic batches** (``allow_atomic`` streams, NATS
2.12+) when there are at least ``ATOMIC_BATCH_MIN`` of them, and as pipelined single publishes when
there are fewer. An atomic batch is stored all or nothing and synced once, where single publishes cost
one fsync each under ``sync_interval: always``; but a single-replica file stream stages each batch in a
store of its own, created and deleted on disk, and that costs the server about 2.7 ms of CPU and 5 ms
before the PubAck whatever the batch's size (``bench/jetstream_publish.py``: single publishes cost
120–230 µs of server CPU each, and the two are even at about 20 messages). JetStream refuses a whole
batch that repeats a message id it has seen (error 10201): that only happens when the relay re-sends
after a crash, a lost PubAck or a takeover, and those rows then go out one by one, where duplicates are
dropped and the new ones stored. Replies are read by ``PubAcks`` (not nats-py's ``publish_async``, which
loses the server's errors), so a refusal is heard at once instead of after the publish timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.api import Header, PubAck
from nats.js.errors import APIError

from shared.db.pool import advisory_key, init_connection, session_settings
from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.faults import fault_point
from shared.messaging.pubacks import PubAcks
from shared.messaging.topology import stream_for
from shared.periodic import PASSING_FAULTS
from shared.telemetry import current_trace_headers, get_tracer, send_span

log = logging.getLogger(__name__)

# Messages per atomic batch: the server takes up to 1,000; a smaller batch keeps the commit's PubAck soon.
ATOMIC_BATCH_MAX = 100
# Fewer rows for a stream than this go out as single publishes (see above).
ATOMIC_BATCH_MIN = 20
# JetStream's "atomic publish batch contains duplicate message id".
BATCH_HAS_DUPLICATE = 10201
# PostgreSQL ends the session, and frees the relay lock, 10 + 3 × 5 s after its client fell silent.
RELAY_KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


def notify_channel(schema: str) -> str:
    return f"outbox_{schema}"


async def add_event(conn: asyncpg.Connection, event: CloudEvent[Any], *, schema: str) -> None:
    """Store the event in the caller's transaction, with the trace context of the code that caused it."""
    # One round trip: the row, and a wake-up for the relay delivered at commit (identical notifications
    # within a transaction are collapsed into one).
    await conn.execute(
        "WITH row AS (INSERT INTO outbox (id, subject, body, headers) VALUES ($1, $2, $3, $4) RETURNING 1) "
        "SELECT pg_notify($5, '') FROM row",
        event.id,
        event.type,
        event.to_json(),
        current_trace_headers(),
        notify_channel(schema),
    )


async def add_events(
    conn: asyncpg.Connection, events: Sequence[tuple[CloudEvent[Any], dict[str, str]]], *, schema: str
) -> None:
    """Store many events (each with the trace context of its own cause) in one statement."""
    await conn.execute(
        f"WITH rows AS ({insert_events(1)}) SELECT pg_notify($5, '') WHERE EXISTS (SELECT 1 FROM rows)",
        *event_columns(events),
        notify_channel(schema),
    )


def insert_events(first: int, *, keep: str = "true") -> str:
    """The INSERT of events into the outbox from the four arrays ``$first``… of ``event_columns``, RETURNING
    1 per row: for a statement that also does other work. ``keep`` may filter on ``i``, each event's
    position in the arrays (from 1)."""
    arrays = f"${first}::uuid[], ${first + 1}::text[], ${first + 2}::bytea[], ${first + 3}::jsonb[]"
    return (
        "INSERT INTO outbox (id, subject, body, headers) SELECT id, subject, body, headers "
        f"FROM unnest({arrays}) WITH ORDINALITY AS e(id, subject, body, headers, i) WHERE {keep} RETURNING 1"
    )


def event_columns(events: Sequence[tuple[CloudEvent[Any], dict[str, str]]]) -> list[list[Any]]:
    """The outbox columns of the events, one array each: id uuid, subject text, body bytea, headers jsonb."""
    return [
        [e.id for e, _ in events],
        [e.type for e, _ in events],
        [e.to_json() for e, _ in events],
        [h for _, h in events],
    ]


# One statement per relay round: mark what JetStream stored ($1), and read the next rows to send, leaving
# out those already on their way ($2; the rows just marked are among them, since the statement's snapshot
# does not see its own UPDATE).
MARK_AND_FETCH = (
    "WITH marked AS (UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])) "
    "SELECT seq, id, subject, body, headers FROM outbox "
    "WHERE published_at IS NULL AND seq <> ALL($2::bigint[]) ORDER BY seq LIMIT $3"
)
MARK = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"


@dataclass
class _Sent:
    """Rows handed to NATS, and JetStream's replies to come: one per row, or one for an atomic batch."""

    rows: list[asyncpg.Record]
    replies: list[asyncio.Future[PubAck]]
    batch: bool


@dataclass
class _Flight:
    """One round's rows between their send and their mark."""

    seqs: list[int]
    settled: asyncio.Task[list[int]]


class OutboxRelay:
    def __init__(
        self,
        nc: NATS,
        schema: str,
        *,
        dsn: str,
        batch: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        max_flights: int = 4,
    ) -> None:
        self._nc = nc
        self._acks = PubAcks(nc)
        self._schema = schema
        self._dsn = dsn
        self._batch = batch
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._max_flights = max_flights
        self._wake = asyncio.Event()
        self._tracer = get_tracer("shared.outbox")
        self._lock_key = advisory_key(f"outbox:{schema}")
        self._conn: asyncpg.Connection | None = None
        self._leading = False
        self._next_lock_attempt = 0.0
        self._send_after = 0.0  # a pause after a round JetStream did not store whole

    @property
    def leading(self) -> bool:
        """Whether this relay holds its schema's lock (the one that publishes)."""
        return self._leading and self._conn is not None and not self._conn.is_closed()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop``. Rounds overlap: the next rows are read and sent while earlier ones wait
        for their PubAcks (up to ``max_flights`` rounds), so an event committed during a round does not
        wait for that round's PubAcks before it leaves. Rows go out in outbox order, since every send
        happens here, one round after the other, on one NATS connection."""
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: self._wake.set())
        flights: list[_Flight] = []
        try:
            while not stop.is_set():
                try:
                    more = await self._round(flights)
                except NatsError as exc:
                    # A send failed (NATS reconnecting): what was not sent is read again at the next round.
                    log.warning("outbox relay for %s: %s, retrying", self._schema, type(exc).__name__)
                    more = False
                    await asyncio.sleep(self._poll_interval)
                except Exception as exc:
                    # The loop must outlive any fault on the database side (a relay that stopped would publish
                    # nothing until its process restarts): it starts again on a new connection.
                    expected = isinstance(exc, (*PASSING_FAULTS, TimeoutError))
                    log.warning(
                        "outbox relay for %s: %s, reconnecting", self._schema, type(exc).__name__, exc_info=not expected
                    )
                    await self.close()
                    more = False
                    await asyncio.sleep(self._poll_interval)
                if more:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
                self._wake.clear()
        finally:
            stopping.cancel()
            for flight in flights:
                flight.settled.cancel()
            await self.close()
            await self._acks.close()

    async def _round(self, flights: list[_Flight]) -> bool:
        """Mark the rows of the rounds whose replies came, and send the next rows if there is room in the
        air; True when more rows are waiting."""
        # A settled round's rows are no longer on their way: those JetStream stored are marked now, the others
        # are read again.
        stored: list[int] = []
        kept_back = False
        for flight in [f for f in flights if f.settled.done()]:
            flights.remove(flight)
            if flight.settled.cancelled():
                continue
            if (error := flight.settled.exception()) is not None:
                log.warning("outbox relay for %s: a round's replies failed (%s)", self._schema, type(error).__name__)
                kept_back = True
                continue
            done = flight.settled.result()
            stored += done
            kept_back = kept_back or len(done) < len(flight.seqs)
        if kept_back:
            # JetStream did not store some rows (no stream takes their subject, or it did not answer): they are
            # read again after a pause, so that a lasting fault is not a busy loop of publishes and warnings.
            self._send_after = time.monotonic() + self._poll_interval
        if stored:
            fault_point("outbox.after_publish")
        conn = await self._leader_connection()
        if conn is None:
            for flight in flights:  # another relay took over: it re-sends whatever was not marked
                flight.settled.cancel()
            flights.clear()
            return False
        room = len(flights) < self._max_flights and time.monotonic() >= self._send_after
        if not room:
            if stored:
                await conn.execute(MARK, stored)
            return False
        on_their_way = stored + [seq for flight in flights for seq in flight.seqs]
        rows = await conn.fetch(MARK_AND_FETCH, stored, on_their_way, self._batch)
        if not rows:
            return False
        fault_point("outbox.before_publish")
        sent = await self._send(rows)
        settled = asyncio.create_task(self._settle(sent))
        settled.add_done_callback(lambda _: self._wake.set())
        flights.append(_Flight([row["seq"] for row in rows], settled))
        return len(rows) == self._batch

    async def close(self) -> None:
        """Close the relay's connection, which frees the schema's lock for another relay."""
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)
            if not conn.is_closed():
                conn.terminate()

    async def _leader_connection(self) -> asyncpg.Connection | None:
        """The relay's connection when it holds the schema's lock (taking it if free), else None."""
        if self._conn is None or self._conn.is_closed():
            self._leading = False
            settings = {**session_settings(self._schema, "outbox"), **RELAY_KEEPALIVES}
            conn = await asyncpg.connect(self._dsn, server_settings=settings)
            await init_connection(conn)
            await conn.add_listener(notify_channel(self._schema), lambda *_: self._wake.set())
            self._conn = conn
        if not self._leading:
            now = time.monotonic()
            if now < self._next_lock_attempt:
                return None
            self._next_lock_attempt = now + self._poll_interval
            self._leading = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key))
            if self._leading:
                log.info("outbox relay for %s: publishing (this process holds the relay lock)", self._schema)
        return self._conn if self._leading else None

    async def publish_pending(self) -> int:
        """One round, whole: read the unpublished rows, publish them, wait for JetStream's replies and
        mark them; returns how many were published (0 when standing by)."""
        conn = await self._leader_connection()
        if conn is None:
            return 0
        rows = await conn.fetch(MARK_AND_FETCH, [], [], self._batch)
        if not rows:
            return 0
        fault_point("outbox.before_publish")
        done = await self._settle(await self._send(rows))
        fault_point("outbox.after_publish")
        if done:
            await conn.execute(MARK, done)
        return len(done)

    async def _send(self, rows: list[asyncpg.Record]) -> list[_Sent]:
        """Hand the rows to NATS, a batch per stream (in seq order within it), without waiting for replies."""
        by_stream: dict[str | None, list[asyncpg.Record]] = {}
        for row in rows:
            by_stream.setdefault(stream_for(row["subject"]), []).append(row)
        sent: list[_Sent] = []
        for stream, stream_rows in by_stream.items():
            if stream is None:  # no stream takes it: published alone, so that the failure is its own
                sent += [await self._send_each([row]) for row in stream_rows]
                continue
            for i in range(0, len(stream_rows), ATOMIC_BATCH_MAX):
                group = stream_rows[i : i + ATOMIC_BATCH_MAX]
                sent.append(
                    await (self._send_batch(group) if len(group) >= ATOMIC_BATCH_MIN else self._send_each(group))
                )
        return sent

    async def _settle(self, sent: list[_Sent]) -> list[int]:
        """Wait for JetStream's replies; returns the seqs it stored. A refused or unanswered batch is sent
        again one message at a time (a batch repeating an id JetStream has seen is refused whole)."""
        replies = [reply for s in sent for reply in s.replies]
        _, late = await asyncio.wait(replies, timeout=self._publish_timeout)
        for reply in late:
            reply.cancel()
        stored: list[int] = []
        resend: list[asyncpg.Record] = []
        for s in sent:
            if s.batch:
                if self._batch_stored(s):
                    stored += [row["seq"] for row in s.rows]
                else:
                    resend += s.rows
                continue
            for row, reply in zip(s.rows, s.replies, strict=True):
                if reply.cancelled() or reply.exception() is not None:
                    log.warning(
                        "outbox publish failed: %s",
                        "timeout" if reply.cancelled() else type(reply.exception()).__name__,
                    )
                else:
                    stored.append(row["seq"])
        if resend:
            stored += await self._settle([await self._send_each(resend)])
        return sorted(stored)

    def _batch_stored(self, sent: _Sent) -> bool:
        reply = sent.replies[0]
        if reply.cancelled():
            log.warning("outbox batch publish failed: timeout")
            return False
        error = reply.exception()
        if error is None and reply.result().batch_size == len(sent.rows):
            return True
        if not (isinstance(error, APIError) and error.err_code == BATCH_HAS_DUPLICATE):  # a re-send is expected
            log.warning("outbox batch refused (%s), publishing its events one by one", error or reply.result())
        return False

    async def _send_batch(self, rows: list[asyncpg.Record]) -> _Sent:
        """One atomic batch: its messages, the last one committing it; its reply is JetStream's PubAck of
        the whole batch (nothing of it is stored when it is an error)."""
        # nats-py has no atomic batch API yet: the batch is plain NATS messages with JetStream's headers.
        batch_id = uuid.uuid4().hex
        for n, row in enumerate(rows, 1):
            event_id = str(row["id"])
            with send_span(self._tracer, row["subject"], event_id, row["headers"]) as trace_headers:
                headers = {
                    Header.MSG_ID: event_id,
                    "Content-Type": CONTENT_TYPE,
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(n),
                    **trace_headers,
                }
                if n < len(rows):
                    await self._nc.publish(row["subject"], row["body"], headers=headers)
                else:
                    headers["Nats-Batch-Commit"] = "1"
                    reply = await self._acks.publish(row["subject"], row["body"], headers)
        return _Sent(rows, [reply], batch=True)

    async def _send_each(self, rows: list[asyncpg.Record]) -> _Sent:
        replies = []
        for row in rows:
            event_id = str(row["id"])
            with send_span(self._tracer, row["subject"], event_id, row["headers"]) as trace_headers:
                headers = {Header.MSG_ID: event_id, "Content-Type": CONTENT_TYPE, **trace_headers}
                replies.append(await self._acks.publish(row["subject"], row["body"], headers))
        return _Sent(rows, replies, batch=False)
