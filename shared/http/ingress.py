"""Idempotent ingress with group commit: many tablet requests, one transaction.

Each request is validated on its own, then handed to an ``IngressWriter``; the writer takes every
request waiting at that moment and writes them in one transaction (``shared.db.group_commit``): their
Idempotency-Keys (with the response each will get), their rows, and their outbox events. A 202 is still
only sent after the commit that holds the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db.group_commit import GroupCommit, Pending
from shared.db.outbox import add_events
from shared.db.sets import columns
from shared.events.envelope import CloudEvent
from shared.http.idempotency import StoredResponse, key_reused
from shared.telemetry import current_trace_headers

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


class IngressWriter(GroupCommit[IngressRequest[Row], StoredResponse | None]):
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
        super().__init__(max_batch=max_batch, writers=writers)
        self._schema = schema
        self._insert_rows = insert_rows

    async def write(self, request: IngressRequest[Row]) -> StoredResponse | None:
        return await self.submit(request)

    async def commit(
        self, pool: asyncpg.Pool, batch: list[Pending[IngressRequest[Row], StoredResponse | None]]
    ) -> None:
        # Keys are inserted in one global order, so two batches holding the same keys (two retries racing)
        # wait for each other instead of deadlocking.
        batch = sorted(batch, key=lambda p: (p.item.scope, p.item.key))
        requests = [p.item for p in batch]
        async with pool.acquire() as conn:
            async with conn.transaction():
                claimed = await conn.fetch(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, status, response) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[]) "
                    "ON CONFLICT DO NOTHING RETURNING scope, key",
                    *columns(requests, "scope", "key", "request_hash", "status", "response"),
                )
                new_keys = {(c["scope"], c["key"]) for c in claimed}
                fresh: list[Pending[IngressRequest[Row], StoredResponse | None]] = []
                for pending in batch:
                    request = pending.item
                    if (request.scope, request.key) in new_keys:
                        new_keys.discard((request.scope, request.key))  # a twin in this batch is a retry
                        fresh.append(pending)
                if fresh:
                    await self._insert_rows(conn, [p.item.row for p in fresh])
                    await add_events(conn, [(p.item.event, p.item.trace_headers) for p in fresh], schema=self._schema)
            for pending in fresh:
                pending.outcome.set_result(None)
            retries = [p for p in batch if not p.outcome.done()]
            if retries:
                await self._answer_retries(conn, retries)

    async def _answer_retries(
        self, conn: asyncpg.Connection, retries: list[Pending[IngressRequest[Row], StoredResponse | None]]
    ) -> None:
        rows = await conn.fetch(
            "SELECT scope, key, request_hash, status, response FROM idempotency_keys "
            "WHERE (scope, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [p.item.scope for p in retries],
            [p.item.key for p in retries],
        )
        stored = {(r["scope"], r["key"]): r for r in rows}
        for pending in retries:
            request = pending.item
            found = stored.get((request.scope, request.key))
            if found is None:  # the first request with this key rolled back meanwhile: not a retry after all
                pending.outcome.set_exception(RuntimeError("idempotency key vanished; retry"))
            elif found["request_hash"] != request.request_hash:
                pending.outcome.set_exception(key_reused())
            else:
                pending.outcome.set_result(StoredResponse(found["status"], found["response"]))
