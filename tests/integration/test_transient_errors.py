"""A transaction that lost a race (a real deadlock, a real lock timeout) is run again at once: an event is applied
within a second, not after the consumer's backoff, and a request gets its answer, or a 503 with Retry-After when
the lock outlasts the tries; never a 500, and nothing is stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import orjson
import pytest
from nats.js.api import Header

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.db import transient
from shared.db.pool import apply_migrations, create_pool
from shared.events.catalog import make_event
from shared.events.questionnaire import MessageSentV1
from shared.messaging.consumer import Consumed, ConsumerRunner, Subscription
from shared.messaging.deadletter import dead_letters
from shared.messaging.topology import ConsumerSpec, ensure_topology
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = "transient_test"
# Far beyond what these tests wait: an event applied in time was not left to the backoff schedule.
BACKOFF = (30.0,)
LOCK_TIMEOUT_MS = 100


@pytest.fixture
async def runtime(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, asyncpg.Pool]]:
    """NATS, and a schema with the shared tables, two rows to lock and a table of the handler's effects; the pool's
    statements wait ``LOCK_TIMEOUT_MS`` at most for a lock."""
    (tmp_path / "001_rows.sql").write_text(
        "CREATE TABLE rows (id int PRIMARY KEY, n int NOT NULL); INSERT INTO rows VALUES (1, 0), (2, 0);"
        "CREATE TABLE effects (event_id text NOT NULL)"  # no key: an effect applied twice would show
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    pool = await create_pool(database_url, SCHEMA, lock_timeout_ms=LOCK_TIMEOUT_MS)
    async with pool.acquire() as conn:
        await apply_migrations(conn, SCHEMA, tmp_path)
    yield nc, js, pool
    await pool.close()
    await nc.close()


async def _other(database_url: str) -> asyncpg.Connection:
    """The test's own connection, which never waits long enough for PostgreSQL to pick it as a deadlock's victim."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA, "deadlock_timeout": "10s"})
    return conn


async def _waiting_for_a_lock(conn: asyncpg.Connection, pid: int) -> None:
    async def waiting() -> bool:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid))

    await eventually(waiting, within=5, interval=0.01)


class Deadlocking:
    """A handler whose first ``deadlocks`` calls meet the test's connection in a real deadlock: the handler locks
    row 1, the other connection row 2 then waits for row 1, and the handler asks for row 2. PostgreSQL aborts the
    handler's transaction (its ``deadlock_timeout`` is the shorter), and the other one goes on."""

    def __init__(self, database_url: str, deadlocks: int) -> None:
        self.database_url = database_url
        self.deadlocks = deadlocks
        self.calls: list[float] = []
        self.others: list[asyncio.Task[None]] = []

    async def _other_side(self, locked: asyncio.Future[int]) -> None:
        other = await _other(self.database_url)
        try:
            async with other.transaction():
                await other.execute("UPDATE rows SET n = n + 1 WHERE id = 2")
                locked.set_result(other.get_server_pid())
                await other.execute("UPDATE rows SET n = n + 1 WHERE id = 1")  # waits for the handler's row
        finally:
            await other.close()

    async def __call__(self, batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.deadlocks:
            await conn.execute("SET LOCAL deadlock_timeout = '50ms'")
            await conn.execute("UPDATE rows SET n = n + 1 WHERE id = 1")
            locked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.others.append(asyncio.create_task(self._other_side(locked)))
            await _waiting_for_a_lock(conn, await asyncio.wait_for(locked, timeout=5))
            await conn.execute("UPDATE rows SET n = n + 1 WHERE id = 2")  # the deadlock: this transaction is aborted
        await conn.executemany("INSERT INTO effects (event_id) VALUES ($1)", [(c.event.id,) for c in batch])


class Locking:
    """A handler that needs row 1 (held by the test, for longer than the pool's ``lock_timeout``)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        self.calls.append(time.monotonic())
        await conn.execute("UPDATE rows SET n = n + 1 WHERE id = 1")
        await conn.executemany("INSERT INTO effects (event_id) VALUES ($1)", [(c.event.id,) for c in batch])


async def _publish(js: Any) -> str:
    message = MessageSentV1(
        message_id=uuid.uuid4(),
        patient_id=uuid.uuid4(),
        sent_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
        answered_by="patient",
        text="x",
    )
    event = make_event("message.sent", message, source="/services/questionnaire", time=message.sent_at)
    await js.publish("message.sent", event.to_json(), headers={Header.MSG_ID: event.id})
    return event.id


async def _effects(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects")]


async def _applied_once_without_redelivery(runtime: Any, spec: ConsumerSpec, event_id: str) -> None:
    _, js, pool = runtime
    assert await _effects(pool) == [event_id]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", spec.durable) == 1

    async def delivered_redelivered_pending() -> tuple[int, int, int]:
        info = await js.consumer_info("QUESTIONNAIRES", spec.durable)
        return info.delivered.consumer_seq, info.num_redelivered, info.num_ack_pending

    async def acked() -> bool:
        return (await delivered_redelivered_pending())[2] == 0

    # The ack follows the commit: on a loaded machine the server may not have it yet when the effects are seen.
    await eventually(acked, within=5, interval=0.05)
    assert await delivered_redelivered_pending() == (1, 0, 0)


async def _start(runtime: Any, spec: ConsumerSpec, handler: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    nc, js, pool = runtime
    await ensure_topology(js, (spec,))
    stop = asyncio.Event()
    runner = ConsumerRunner(nc, js, pool, Subscription(spec, handler, batch=True))
    return stop, asyncio.create_task(runner.run(stop))


async def test_a_handler_chosen_as_a_deadlock_s_victim_is_applied_at_once_and_once(
    runtime: Any, database_url: str
) -> None:
    # Two deadlocks in a row: before, the batch and then the message alone failed, and the event waited out the
    # backoff (30 s here).
    handler = Deadlocking(database_url, deadlocks=2)
    spec = ConsumerSpec("transient", "QUESTIONNAIRES", "message.sent", backoff_s=BACKOFF, max_deliver=3)
    stop, task = await _start(runtime, spec, handler)
    try:
        event_id = await _publish(runtime[1])
        await eventually(lambda: _has_effects(runtime[2]), within=3, interval=0.02)
        assert len(handler.calls) == 3 and handler.calls[-1] - handler.calls[0] < 1.5, handler.calls
        await _applied_once_without_redelivery(runtime, spec, event_id)
        await asyncio.gather(*handler.others)  # the other side of each deadlock went on and committed
        async with runtime[2].acquire() as conn:
            assert await conn.fetchval("SELECT n FROM rows WHERE id = 2") == 2
    finally:
        stop.set()
        await task


async def _called(handler: Locking, times: int) -> bool:
    return len(handler.calls) >= times


async def _has_effects(pool: asyncpg.Pool) -> bool:
    return bool(await _effects(pool))


async def test_a_handler_s_lock_timeout_is_tried_again_until_the_lock_is_released(
    runtime: Any, database_url: str
) -> None:
    handler = Locking()
    spec = ConsumerSpec("transient", "QUESTIONNAIRES", "message.sent", backoff_s=BACKOFF, max_deliver=3)
    holder = await _other(database_url)
    stop, task = await _start(runtime, spec, handler)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM rows WHERE id = 1 FOR UPDATE")
            event_id = await _publish(runtime[1])
            # Two tries timed out, and a third one waits: before, after the batch's and the message's alone, the event
            # waited out the backoff.
            await eventually(lambda: _called(handler, 3), within=3, interval=0.01)
        released = time.monotonic()
        await eventually(lambda: _has_effects(runtime[2]), within=2, interval=0.02)
        assert handler.calls[-1] - released < 1.5, handler.calls
        await _applied_once_without_redelivery(runtime, spec, event_id)
    finally:
        stop.set()
        await task
        await holder.close()


async def test_a_lock_held_past_every_try_ends_in_the_dead_letter_path_not_a_loop(
    runtime: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transient, "TRANSIENT_DELAYS_S", (0.01, 0.01, 0.01))  # the same tries, sooner
    handler = Locking()
    spec = ConsumerSpec("transient", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=1)
    holder = await _other(database_url)
    stop, task = await _start(runtime, spec, handler)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM rows WHERE id = 1 FOR UPDATE")
            await _publish(runtime[1])

            async def dead_lettered() -> bool:
                return len(await dead_letters(runtime[1])) == 1

            await eventually(dead_lettered, within=8, interval=0.1)
        # Four tries as a batch, then one as the message alone (a lock held this long is no race a second run of each
        # message would win): its one delivery failed, and it was given up.
        assert len(handler.calls) == 5, handler.calls
        [letter] = await dead_letters(runtime[1])
        assert letter.reason == "retries_exhausted"
        assert await _effects(runtime[2]) == []
    finally:
        stop.set()
        await task
        await holder.close()


# --- HTTP: a request's transaction, and the tablets' group commit -------------------------------------------------


@pytest.fixture
def slow_lock_env(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # The same four tries, closer together (a refusal in under a second): the suite's time is counted.
    monkeypatch.setattr(transient, "TRANSIENT_DELAYS_S", (0.05, 0.1, 0.2))
    return {**service_env, "DB_LOCK_TIMEOUT_MS": str(LOCK_TIMEOUT_MS)}


async def _open_alert(conn: asyncpg.Connection) -> uuid.UUID:
    alert_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO alerting.alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, "
        "updated_at, level_since) VALUES ($1, gen_random_uuid(), 'red', 'open', '[]', 'patient', 'test', now(), "
        "now(), now())",
        alert_id,
    )
    return alert_id


async def _hold(database_url: str, sql: str, *args: Any, at_most_s: float) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Run ``sql`` in a transaction of the test's own, and hold what it locks until the event returned is set or
    ``at_most_s`` have passed (then roll it back); returns once the lock is held."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute(sql, *args)
                held.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), timeout=at_most_s)
                raise _RollBack  # what the test held it with is never kept
        except _RollBack:
            pass
        finally:
            await conn.close()

    task = asyncio.create_task(hold())
    await asyncio.wait_for(held.wait(), timeout=5)
    return release, task


class _RollBack(Exception):
    pass


def _staff(tokens: TokenService) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-1', {'nurse'})}"}


async def test_a_nurse_s_ack_waiting_on_a_lock_is_run_again_then_answered_or_refused_with_503(
    slow_lock_env: dict[str, Any], database_url: str, tokens: TokenService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.db.transient")
    settings = AlertingSettings(**slow_lock_env)
    async with in_process(build_alerting(settings)) as (client, platform):
        async with platform.pool.acquire() as conn:
            briefly, long = await _open_alert(conn), await _open_alert(conn)
        lock = "SELECT 1 FROM alerting.alerts WHERE id = $1 FOR UPDATE"

        # Held until the ack's first try has met it: the ack is run again, and answered once the lock is released.
        # (Held for a fixed time instead, a slow machine's ack could reach the row after it was released.)
        release, holder = await _hold(database_url, lock, briefly, at_most_s=10)
        ack = asyncio.create_task(client.post(f"/v1/alerts/{briefly}/ack", headers=_staff(tokens)))

        async def met_the_lock() -> bool:
            return any("transient database error (55P03)" in r.getMessage() for r in caplog.records)

        await eventually(met_the_lock, within=5, interval=0.01)
        release.set()
        taken = await ack
        await holder
        assert taken.status_code == 200, taken.text
        assert taken.json()["status"] == "acknowledged"

        # Held past every try: a 503 the nurse's screen can act on, and nothing of the ack stored.
        release, holder = await _hold(database_url, lock, long, at_most_s=6)
        started = time.monotonic()
        refused = await client.post(f"/v1/alerts/{long}/ack", headers=_staff(tokens))
        release.set()
        await holder
        assert refused.status_code == 503, refused.text
        assert time.monotonic() - started < 2
        assert refused.headers["Retry-After"] == "2"
        assert refused.headers["Content-Type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/database-busy") and "Send it again" in problem["detail"]

        async with platform.pool.acquire() as conn:
            steps = await conn.fetch("SELECT alert_id FROM alert_steps WHERE action = 'acknowledged'")
            assert [s["alert_id"] for s in steps] == [briefly]  # once, and none for the refused ack
            assert await conn.fetchval("SELECT status FROM alerts WHERE id = $1", long) == "open"
            events = await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'alert.acknowledged'")
            assert events == 1
            audited = await conn.fetch("SELECT resource FROM audit_log WHERE action = 'alert.acknowledge'")
            assert [a["resource"] for a in audited] == [f"alert/{briefly}"]


async def test_a_tablet_s_submission_waiting_on_a_lock_is_written_once_after_the_retry_or_refused_with_503(
    slow_lock_env: dict[str, Any], database_url: str, tokens: TokenService
) -> None:
    settings = QuestionnaireSettings(**slow_lock_env)
    patient = uuid.uuid4()
    device = {"Authorization": f"Bearer {tokens.issue_device_token(patient, 'tablet-test')}"}
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    # Another transaction claiming the same Idempotency-Key, not yet committed: the ingress statement waits for it.
    claim = (
        "INSERT INTO questionnaire.idempotency_keys (scope, key, request_hash, status, response) "
        "VALUES ($1, $2, 'another', 0, '{}')"
    )
    async with in_process(build_questionnaire(settings)) as (client, platform):
        for key, held_s, expected in (("brief-key", 0.2, 202), ("long-key", 6.0, 503)):
            release, holder = await _hold(database_url, claim, f"submissions:{patient}", key, at_most_s=held_s)
            answer = await client.post("/v1/submissions", content=body, headers={**device, "Idempotency-Key": key})
            release.set()
            await holder  # rolled back: the key was never the other transaction's
            assert answer.status_code == expected, answer.text
            if expected == 503:
                assert answer.headers["Retry-After"] == "2"
                assert answer.json()["type"].endswith("/database-busy")
        async with platform.pool.acquire() as conn:
            keys = await conn.fetch("SELECT key FROM idempotency_keys WHERE scope = $1", f"submissions:{patient}")
            assert [k["key"] for k in keys] == ["brief-key"]
            assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 1
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'questionnaire.submitted'") == 1
