"""Transactional outbox: ``add_event`` in the business transaction, ``OutboxRelay`` publishes after commit.

The relay publishes each row with ``Nats-Msg-Id`` = event id (JetStream drops a re-publish inside the
duplicate window) and marks it published only after the PubAck, so a crash anywhere re-sends at worst,
and the stream still holds the event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import Header

from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.faults import fault_point
from shared.telemetry import current_trace_headers, get_tracer, inject_headers, send_span

log = logging.getLogger(__name__)


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
        "WITH rows AS (INSERT INTO outbox (id, subject, body, headers) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[]) RETURNING 1) "
        "SELECT pg_notify($5, '') WHERE EXISTS (SELECT 1 FROM rows)",
        [e.id for e, _ in events],
        [e.type for e, _ in events],
        [e.to_json() for e, _ in events],
        [h for _, h in events],
        notify_channel(schema),
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        schema: str,
        *,
        dsn: str,
        batch: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._js = js
        self._schema = schema
        self._dsn = dsn
        self._batch = batch
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._tracer = get_tracer("shared.outbox")

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: self._wake.set())
        listener = await self._listen()
        try:
            while not stop.is_set():
                try:
                    published = await self.publish_pending()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("outbox relay for %s: %s, retrying", self._schema, type(exc).__name__)
                    published = 0
                    await asyncio.sleep(self._poll_interval)
                if published >= self._batch:
                    continue  # more waiting: no sleep
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
                self._wake.clear()
        finally:
            stopping.cancel()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(notify_channel(self._schema), lambda *_: self._wake.set())
            return conn
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox relay for %s cannot LISTEN (%s); polling only", self._schema, exc)
            return None

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT seq, id, subject, body, headers FROM outbox WHERE published_at IS NULL "
                "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return 0
            fault_point("outbox.before_publish")
            done = await self._publish(rows)
            fault_point("outbox.after_publish")
            if done:
                await conn.execute("UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])", done)
            return len(done)

    async def _publish(self, rows: list[asyncpg.Record]) -> list[int]:
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        for row in rows:
            event_id = str(row["id"])
            with send_span(self._tracer, row["subject"], event_id, row["headers"]):
                headers = inject_headers({Header.MSG_ID: event_id, "Content-Type": CONTENT_TYPE})
                future = await self._js.publish_async(row["subject"], row["body"], headers=headers)
            pending.append((row["seq"], future))
        results = await asyncio.wait_for(
            asyncio.gather(*(f for _, f in pending), return_exceptions=True), timeout=self._publish_timeout
        )
        done = []
        for (seq, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("outbox publish failed: %s", type(result).__name__)
            else:
                done.append(seq)
        return done
