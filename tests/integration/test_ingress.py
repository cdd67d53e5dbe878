"""The ingress writer's one statement against a real PostgreSQL: new keys store their row and event once,
twins and retries store nothing and get the first response, a reused key with other content is refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from shared.db.group_commit import Pending
from shared.db.outbox import notify_channel
from shared.db.pool import apply_migrations, create_pool
from shared.db.sets import RowTable
from shared.events.catalog import make_event
from shared.events.questionnaire import MessageSentV1
from shared.http.idempotency import StoredResponse
from shared.http.ingress import IngressRequest, IngressWriter
from shared.http.problems import Problem

pytestmark = pytest.mark.integration

SCHEMA = "ingress_test"
NOTES = RowTable("notes", (("id", "uuid"), ("patient_id", "uuid"), ("body", "text"), ("written_at", "timestamptz")))


@dataclass(frozen=True)
class NoteRow:
    id: uuid.UUID
    patient_id: uuid.UUID
    body: str
    written_at: datetime


@pytest.fixture
async def pool(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A schema with the shared tables and a ``notes`` table, emptied of earlier tests' rows."""
    (tmp_path / "001_notes.sql").write_text(
        "CREATE TABLE notes (id uuid PRIMARY KEY, patient_id uuid NOT NULL, body text NOT NULL, "
        "written_at timestamptz NOT NULL)"
    )
    pool = await create_pool(database_url, SCHEMA)
    async with pool.acquire() as conn:
        await apply_migrations(conn, SCHEMA, tmp_path)
        await conn.execute("TRUNCATE notes, outbox, idempotency_keys")
    yield pool
    await pool.close()


def _request(key: str, body: str, patient: uuid.UUID | None = None) -> IngressRequest[NoteRow]:
    patient = patient or uuid.uuid4()
    row = NoteRow(uuid.uuid4(), patient, body, datetime(2026, 11, 23, 9, tzinfo=UTC))
    sent = MessageSentV1(
        message_id=row.id, patient_id=patient, sent_at=row.written_at, answered_by="patient", text=body
    )
    event = make_event("message.sent", sent, source="/tests/ingress", time=row.written_at)
    response = {"id": str(row.id), "status": "received"}
    return IngressRequest(f"notes:{patient}", key, f"hash-of-{body}", 202, response, row, event, {})


async def _commit(pool: asyncpg.Pool, requests: list[IngressRequest[NoteRow]]) -> list[Any]:
    """One batch through the writer's commit; each request's outcome (None, a StoredResponse or the error)."""
    batch: list[Pending[IngressRequest[NoteRow], StoredResponse | None]] = [Pending(r) for r in requests]
    writer: IngressWriter[NoteRow] = IngressWriter(SCHEMA, NOTES)
    await writer.commit(pool, batch)
    return [p.outcome.exception() or p.outcome.result() for p in batch]


async def _count(pool: asyncpg.Pool, table: str) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def test_new_requests_store_their_row_key_and_event_once_and_wake_the_relay(
    pool: asyncpg.Pool, database_url: str
) -> None:
    woken: list[str] = []
    listener = await asyncpg.connect(database_url)  # as the relay: its own connection
    try:
        await listener.add_listener(notify_channel(SCHEMA), lambda *args: woken.append(args[2]))
        requests = [_request(f"key-{n}", f"note {n}") for n in range(3)]

        assert await _commit(pool, requests) == [None, None, None]

        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    assert woken == [notify_channel(SCHEMA)]  # one wake-up for the batch
    async with pool.acquire() as conn:
        notes = {r["id"]: r["body"] for r in await conn.fetch("SELECT id, body FROM notes")}
        events = {r["id"] for r in await conn.fetch("SELECT id FROM outbox WHERE published_at IS NULL")}
        keys = await conn.fetch("SELECT key, status, response FROM idempotency_keys ORDER BY key")
    assert notes == {r.row.id: r.row.body for r in requests}
    assert events == {uuid.UUID(r.event.id) for r in requests}
    assert [(k["key"], k["status"], k["response"]) for k in keys] == [(r.key, 202, r.response) for r in requests]


async def test_twins_in_one_batch_and_later_retries_store_nothing_more_and_get_the_first_response(
    pool: asyncpg.Pool,
) -> None:
    patient = uuid.uuid4()
    first = _request("tablet-0001", "j'ai de la fièvre", patient)
    twin = _request("tablet-0001", "j'ai de la fièvre", patient)  # the same request, retried at once
    other = _request("tablet-0002", "toujours", patient)

    outcomes = await _commit(pool, [twin, other, first])

    # Whichever twin the batch holds first is the new one; the other replays its response.
    assert sorted(o is None for o in outcomes) == [False, True, True]
    replay = next(o for o in outcomes if o is not None)
    assert isinstance(replay, StoredResponse) and replay.status == 202
    assert replay.body["id"] in {str(first.row.id), str(twin.row.id)}
    assert await _count(pool, "notes") == 2
    assert await _count(pool, "outbox") == 2

    later = await _commit(pool, [_request("tablet-0001", "j'ai de la fièvre", patient)])

    assert later == [StoredResponse(202, replay.body)]
    assert await _count(pool, "notes") == 2
    assert await _count(pool, "outbox") == 2


async def test_a_key_reused_for_other_content_is_refused_and_the_rest_of_the_batch_is_stored(
    pool: asyncpg.Pool,
) -> None:
    patient = uuid.uuid4()
    assert await _commit(pool, [_request("tablet-0001", "première", patient)]) == [None]

    reused, fresh = await _commit(pool, [_request("tablet-0001", "autre chose", patient), _request("k2", "x")])

    assert isinstance(reused, Problem) and reused.status == 422
    assert fresh is None
    assert await _count(pool, "notes") == 2
    assert await _count(pool, "outbox") == 2


async def test_a_value_the_database_refuses_fails_its_own_request_only(pool: asyncpg.Pool) -> None:
    writer: IngressWriter[NoteRow] = IngressWriter(SCHEMA, NOTES, writers=1)
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(SimpleNamespace(pool=pool), stop))
    await asyncio.sleep(0)  # running, so that the requests below wait in one queue and go out as one batch
    try:
        good = [_request(f"key-{n}", f"note {n}") for n in range(8)]
        bad = _request("key-nul", "a NUL \x00 PostgreSQL cannot store")
        outcomes = await asyncio.gather(*(writer.write(r) for r in [*good[:4], bad, *good[4:]]), return_exceptions=True)
    finally:
        stop.set()
        await running

    assert isinstance(outcomes[4], asyncpg.CharacterNotInRepertoireError)
    assert outcomes[:4] + outcomes[5:] == [None] * 8
    async with pool.acquire() as conn:
        stored = {r["body"] for r in await conn.fetch("SELECT body FROM notes")}
    assert stored == {r.row.body for r in good}
    assert await _count(pool, "outbox") == 8
    assert await _count(pool, "idempotency_keys") == 8
