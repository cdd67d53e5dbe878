"""Idempotent ingress with group commit: many tablet requests, one transaction.

Each request is validated on its own, then handed to an ``IngressWriter``; the writer takes every
request waiting at that moment and writes them in one transaction: their Idempotency-Keys (with the
response each will get), their rows, and their outbox events. A 202 is still only sent after the
commit that holds the request, so batching costs no durability; it saves round trips, statements and
fsyncs. Under light load a batch is a single request, so latency does not grow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db.outbox import add_events
from shared.db.sets import columns
from shared.events.envelope import CloudEvent
from shared.http.idempotency import StoredResponse, key_reused
from shared.telemetry import current_trace_headers

log = logging.getLogger(__name__)

Row = TypeVar("Row")


@dataclass
class IngressRequest(Generic[Row]):
    scope: str
    key: str
    request_hash: str
    status: int
    response: dict[str, Any]
    row: Row
    event: CloudEvent[Any]
    trace_headers: dict[str, str] = field(default_factory=current_trace_headers)
    outcome: asyncio.Future[StoredResponse | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IngressWriter(Generic[Row]):
    """``write`` returns None when the request was new and is now committed, or the stored response of
    an earlier request with the same key (raising the 422 of ``key_reused`` if its content differs)."""

    def __init__(
        self,
        schema: str,
        insert_rows: Callable[[asyncpg.Connection, Sequence[Row]], Awaitable[None]],
        *,
        max_batch: int = 256,
        writers: int = 2,
    ) -> None:
        self._schema = schema
        self._insert_rows = insert_rows
        self._max_batch = max_batch
        self._writers = writers
        self._queue: asyncio.Queue[IngressRequest[Row]] = asyncio.Queue()
        self._running = False

    async def write(self, request: IngressRequest[Row]) -> StoredResponse | None:
        if not self._running:
            raise RuntimeError("the ingress writer is not running")
        await self._queue.put(request)
        return await request.outcome

    async def run(self, platform: Any, stop: asyncio.Event) -> None:
        """A background job of the service: ``writers`` loops sharing the queue, so that one batch
        commits while the next one is being written."""
        self._running = True
        try:
            await asyncio.gather(*(self._loop(platform.pool, stop) for _ in range(self._writers)))
        finally:
            self._running = False
            while not self._queue.empty():
                self._queue.get_nowait().outcome.set_exception(RuntimeError("the service is stopping"))

    async def _loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(pool, batch)
            except Exception as exc:
                log.exception("ingress batch of %s failed; nothing of it was written", len(batch))
                for request in batch:
                    if not request.outcome.done():
                        request.outcome.set_exception(exc)

    async def _commit(self, pool: asyncpg.Pool, batch: list[IngressRequest[Row]]) -> None:
        # Keys are inserted in one global order, so two batches holding the same keys (two retries racing)
        # wait for each other instead of deadlocking.
        batch = sorted(batch, key=lambda r: (r.scope, r.key))
        async with pool.acquire() as conn:
            async with conn.transaction():
                claimed = await conn.fetch(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, status, response) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[]) "
                    "ON CONFLICT DO NOTHING RETURNING scope, key",
                    *columns(batch, "scope", "key", "request_hash", "status", "response"),
                )
                new_keys = {(c["scope"], c["key"]) for c in claimed}
                fresh: list[IngressRequest[Row]] = []
                for request in batch:
                    if (request.scope, request.key) in new_keys:
                        new_keys.discard((request.scope, request.key))  # a twin in this batch is a retry
                        fresh.append(request)
                if fresh:
                    await self._insert_rows(conn, [r.row for r in fresh])
                    await add_events(conn, [(r.event, r.trace_headers) for r in fresh], schema=self._schema)
            for request in fresh:
                request.outcome.set_result(None)
            retries = [r for r in batch if not r.outcome.done()]
            if retries:
                await self._answer_retries(conn, retries)

    async def _answer_retries(self, conn: asyncpg.Connection, retries: list[IngressRequest[Row]]) -> None:
        rows = await conn.fetch(
            "SELECT scope, key, request_hash, status, response FROM idempotency_keys "
            "WHERE (scope, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [r.scope for r in retries],
            [r.key for r in retries],
        )
        stored = {(r["scope"], r["key"]): r for r in rows}
        for request in retries:
            found = stored.get((request.scope, request.key))
            if found is None:  # the first request with this key rolled back meanwhile: not a retry after all
                request.outcome.set_exception(RuntimeError("idempotency key vanished; retry"))
            elif found["request_hash"] != request.request_hash:
                request.outcome.set_exception(key_reused())
            else:
                request.outcome.set_result(StoredResponse(found["status"], found["response"]))
