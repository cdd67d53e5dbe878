"""The outbox relay against real NATS and PostgreSQL: atomic batches per stream, and re-sends stored once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from shared.db.outbox import ATOMIC_BATCH_MAX, ATOMIC_BATCH_MIN, OutboxRelay, add_event
from shared.db.pool import apply_migrations, create_pool
from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.inclusion import SessionScheduledV1
from shared.events.questionnaire import MessageSentV1
from shared.messaging.topology import ensure_topology
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = "relay_test"


@pytest.fixture
async def relay(
    nats_url: str, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[OutboxRelay, Any, asyncpg.Pool]]:
    """A relay over a schema with only the shared tables, its outbox emptied of earlier tests' rows."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_topology(js)
    pool = await create_pool(database_url, SCHEMA)
    async with pool.acquire() as conn:
        await apply_migrations(conn, SCHEMA, tmp_path)
        await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    relay = OutboxRelay(nc, SCHEMA, dsn=database_url)
    yield relay, js, pool
    await relay.close()
    await pool.close()
    await nc.close()


def _message() -> CloudEvent[Any]:
    sent = MessageSentV1(
        message_id=uuid.uuid4(),
        patient_id=uuid.uuid4(),
        sent_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
        answered_by="patient",
        text="x",
    )
    return make_event("message.sent", sent, source="/tests/relay", time=sent.sent_at)


def _session() -> CloudEvent[Any]:
    session = SessionScheduledV1(
        session_id=uuid.uuid4(), patient_id=uuid.uuid4(), scheduled_for=datetime(2026, 12, 1, 9, tzinfo=UTC)
    )
    return make_event("session.scheduled", session, source="/tests/relay", time=datetime(2026, 11, 23, 10, tzinfo=UTC))


async def _store(pool: asyncpg.Pool, events: list[CloudEvent[Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await add_event(conn, event, schema=SCHEMA)


async def _last_seq(js: Any, stream: str) -> int:
    return int((await js.stream_info(stream)).state.last_seq)


async def _stored(js: Any, stream: str, ids: list[str], after: int) -> dict[str, list[dict[str, str]]]:
    """For each event id, the headers of every copy of it in ``stream`` past ``after`` (expected: one)."""
    wanted = set(ids)
    found: dict[str, list[dict[str, str]]] = {i: [] for i in ids}
    for seq in range(after + 1, await _last_seq(js, stream) + 1):
        msg = await js.get_msg(stream, seq)
        event_id = (msg.headers or {}).get("Nats-Msg-Id")
        if event_id in wanted:
            found[event_id].append(dict(msg.headers or {}))
    return found


async def _unpublished(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def test_each_stream_s_events_go_out_as_atomic_batches_in_order(relay: Any) -> None:
    outbox, js, pool = relay
    messages = [_message() for _ in range(ATOMIC_BATCH_MAX + 30)]  # two batches for QUESTIONNAIRES
    sessions = [_session() for _ in range(ATOMIC_BATCH_MIN)]  # one for INCLUSION
    await _store(pool, [e for pair in zip(messages, sessions, strict=False) for e in pair] + messages[len(sessions) :])
    after = {stream: await _last_seq(js, stream) for stream in ("QUESTIONNAIRES", "INCLUSION")}

    assert await outbox.publish_pending() == len(messages) + len(sessions)

    assert await _unpublished(pool) == 0
    for stream, events in (("QUESTIONNAIRES", messages), ("INCLUSION", sessions)):
        ids = [e.id for e in events]
        copies = await _stored(js, stream, ids, after[stream])
        assert all(len(c) == 1 for c in copies.values()), f"{stream}: not each event once"
        batches = [c[0].get("Nats-Batch-Id") for c in copies.values()]
        assert None not in batches, f"{stream}: an event went out alone"
        assert len(set(batches)) == -(-len(events) // ATOMIC_BATCH_MAX)
        # Within a batch, the outbox order is the stream order.
        sequences = [int(c[0]["Nats-Batch-Sequence"]) for c in copies.values()]
        assert sequences[: min(len(events), ATOMIC_BATCH_MAX)] == list(range(1, min(len(events), ATOMIC_BATCH_MAX) + 1))


async def test_fewer_events_than_a_batch_is_worth_go_out_as_single_publishes_in_order(relay: Any) -> None:
    outbox, js, pool = relay
    messages = [_message() for _ in range(ATOMIC_BATCH_MIN - 1)]
    await _store(pool, messages)
    after = await _last_seq(js, "QUESTIONNAIRES")

    assert await outbox.publish_pending() == len(messages)

    stored = [(await js.get_msg("QUESTIONNAIRES", seq)).headers for seq in range(after + 1, after + len(messages) + 1)]
    assert [h["Nats-Msg-Id"] for h in stored] == [e.id for e in messages], "not each once, in outbox order"
    assert not any("Nats-Batch-Id" in h for h in stored)
    assert await _last_seq(js, "QUESTIONNAIRES") == after + len(messages)


async def test_a_re_send_after_a_lost_puback_stores_nothing_twice_and_the_new_events_once(
    relay: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, js, pool = relay
    first = [_message() for _ in range(ATOMIC_BATCH_MIN)]
    await _store(pool, first)
    after = await _last_seq(js, "QUESTIONNAIRES")
    assert await outbox.publish_pending() == len(first)
    # The relay died after the PubAck and before marking the rows: they are sent again, with new ones.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET published_at = NULL WHERE id = ANY($1::uuid[])", [e.id for e in first])
    later = [_message() for _ in range(4)]
    await _store(pool, later)

    # JetStream refuses the batch (it repeats ids it has stored); the relay hears the refusal (it does not
    # wait out its publish timeout, nats.py#985) and sends them one by one.
    with caplog.at_level(logging.WARNING, logger="shared.db.outbox"):
        assert await outbox.publish_pending() == len(first) + len(later)
    assert [r.getMessage() for r in caplog.records if r.name == "shared.db.outbox"] == []

    assert await _unpublished(pool) == 0
    copies = await _stored(js, "QUESTIONNAIRES", [e.id for e in first + later], after)
    assert {i: len(c) for i, c in copies.items()} == {e.id: 1 for e in first + later}
    assert all("Nats-Batch-Id" in copies[e.id][0] for e in first)
    assert not any("Nats-Batch-Id" in copies[e.id][0] for e in later)


async def test_a_single_pending_event_is_a_plain_publish(relay: Any) -> None:
    outbox, js, pool = relay
    event = _message()
    await _store(pool, [event])
    after = await _last_seq(js, "QUESTIONNAIRES")

    assert await outbox.publish_pending() == 1

    copies = await _stored(js, "QUESTIONNAIRES", [event.id], after)
    assert len(copies[event.id]) == 1
    assert "Nats-Batch-Id" not in copies[event.id][0]


async def test_the_running_relay_sends_events_committed_while_earlier_ones_await_their_puback_once_in_order(
    relay: Any, nats_url: str
) -> None:
    """Rounds overlap (the next rows are read and sent before the PubAcks of the previous ones): every
    event must still be *sent* once, which a plain NATS subscription sees (JetStream's dedup would hide a
    second send from the stream), and stored in outbox order."""
    outbox, js, pool = relay
    watcher = await nats.connect(nats_url)
    sends: list[str] = []

    async def seen(msg: Any) -> None:
        sends.append(msg.headers["Nats-Msg-Id"])

    await watcher.subscribe("message.sent", cb=seen)
    await watcher.flush()
    after = await _last_seq(js, "QUESTIONNAIRES")
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop))
    events: list[CloudEvent[Any]] = []
    try:
        for size in [1, 3, ATOMIC_BATCH_MIN + 5, 2, 1, ATOMIC_BATCH_MIN, 7, 1, 1, 4] * 3:
            group = [_message() for _ in range(size)]
            await _store(pool, group)
            events += group
            await asyncio.sleep(0.002)

        async def all_marked() -> bool:
            return await _unpublished(pool) == 0

        await eventually(all_marked, within=10)
        await watcher.flush()
        await asyncio.sleep(0.2)  # any late second send would arrive by now
    finally:
        stop.set()
        await running
        await watcher.close()

    ids = [e.id for e in events]
    assert sorted(sends) == sorted(ids), "an event was sent twice, or not at all"
    stored = [
        (await js.get_msg("QUESTIONNAIRES", seq)).headers["Nats-Msg-Id"]
        for seq in range(after + 1, after + len(ids) + 1)
    ]
    assert stored == ids, "not stored in outbox order"
    assert await _last_seq(js, "QUESTIONNAIRES") == after + len(ids)


@pytest.fixture
async def standby(nats_url: str, database_url: str) -> AsyncIterator[OutboxRelay]:
    """Another process's relay for the same schema, on its own connections, trying for the lock every 50 ms."""
    nc = await nats.connect(nats_url)
    standby = OutboxRelay(nc, SCHEMA, dsn=database_url, poll_interval=0.05)
    yield standby
    await standby.close()
    await nc.close()


async def test_one_relay_per_schema_publishes_and_a_standby_takes_over_when_it_stops(
    relay: Any, standby: OutboxRelay
) -> None:
    first, _, pool = relay
    events = [_message() for _ in range(3)]
    await _store(pool, events[:1])
    assert await first.publish_pending() == 1
    assert first.leading

    await _store(pool, events[1:2])
    assert await standby.publish_pending() == 0  # the lock is held: it stands by
    assert not standby.leading
    assert await _unpublished(pool) == 1

    await first.close()  # the leader's connection ends: the lock is free
    await _store(pool, events[2:])
    await asyncio.sleep(0.06)  # the standby's next attempt at the lock
    assert await standby.publish_pending() == 2
    assert standby.leading
    assert await _unpublished(pool) == 0


async def test_a_relay_that_loses_its_lock_mid_run_stands_by_and_the_new_leader_sends_the_rest_once(
    relay: Any, standby: OutboxRelay
) -> None:
    first, js, pool = relay
    after = await _last_seq(js, "QUESTIONNAIRES")
    stop = asyncio.Event()
    running = [asyncio.create_task(first.run(stop))]
    events: list[CloudEvent[Any]] = []
    try:
        for n in range(40):
            group = [_message() for _ in range(1 + n % 4)]
            await _store(pool, group)
            events += group
            if n == 15:
                # The leader's connection is cut (PostgreSQL restarted it, say): its lock is free, the standby
                # takes it, and the old leader may still have rounds in the air.
                running.append(asyncio.create_task(standby.run(stop)))
                async with pool.acquire() as conn:
                    await conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                        f"{SCHEMA}-outbox",
                    )
            await asyncio.sleep(0.01)

        async def all_marked() -> bool:
            return await _unpublished(pool) == 0

        await eventually(all_marked, within=15)
        assert standby.leading and not first.leading
    finally:
        stop.set()
        await asyncio.gather(*running)

    ids = [e.id for e in events]
    copies = await _stored(js, "QUESTIONNAIRES", ids, after)
    assert {i: len(c) for i, c in copies.items()} == {i: 1 for i in ids}, "not each event stored once"


async def test_an_event_no_stream_takes_is_retried_after_a_pause_while_the_others_go_out(
    relay: Any, nats_url: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """JetStream answers at once that no stream takes the subject: the relay must not turn that into a busy
    loop of publishes, and the events around it must still go out."""
    _, js, pool = relay
    nc = await nats.connect(nats_url)
    outbox = OutboxRelay(nc, SCHEMA, dsn=database_url, poll_interval=0.2)
    stray = f"nowhere.{uuid.uuid4().hex}"
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (id, subject, body, headers) VALUES ($1, $2, '{}', '{}'::jsonb)", uuid.uuid4(), stray
        )
    after = await _last_seq(js, "QUESTIONNAIRES")
    others = [_message() for _ in range(3)]
    await _store(pool, others)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="shared.db.outbox"):
        running = asyncio.create_task(outbox.run(stop))
        try:

            async def others_stored() -> bool:
                return await _unpublished(pool) == 1

            await eventually(others_stored, within=10)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await running
            await nc.close()

    copies = await _stored(js, "QUESTIONNAIRES", [e.id for e in others], after)
    assert {i: len(c) for i, c in copies.items()} == {e.id: 1 for e in others}
    attempts = [r for r in caplog.records if r.getMessage() == "outbox publish failed: NoStreamResponseError"]
    # About one attempt per poll interval (0.2 s) over a second or so; a busy loop makes hundreds.
    assert 2 <= len(attempts) <= 15, f"{len(attempts)} attempts"
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox WHERE subject = $1", stray)
