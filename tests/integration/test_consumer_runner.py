"""The shared pull-consumer runner against real NATS and PostgreSQL: redelivery, backoff, dead letters."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import orjson
import pytest
from nats.js.api import Header
from opentelemetry import trace

from shared.db.pool import apply_migrations, create_pool
from shared.events.catalog import make_event
from shared.events.questionnaire import MessageSentV1
from shared.messaging.consumer import Consumed, ConsumerRunner, PoisonMessage, Subscription
from shared.messaging.deadletter import DeadLetter, dead_letter, dead_letters
from shared.messaging.topology import UNLIMITED, ConsumerSpec, ensure_topology
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

DEAD_LETTERS_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dead_letters.py"


class Flaky:
    """A handler that fails the first ``failures`` times it sees each event, then records it.

    A batch fails as a whole before anything of it is recorded: ``applied`` is this test's record of what
    was committed, and an event recorded in a batch that a later event then rolled back would be counted
    twice (it was, in about one run in five, before the batch was checked first).
    """

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.seen: dict[str, int] = {}
        self.applied: list[str] = []

    async def __call__(self, batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        failing = False
        for consumed in batch:
            count = self.seen[consumed.event.id] = self.seen.get(consumed.event.id, 0) + 1
            failing = failing or count <= self.failures
        if failing:
            raise self.error("not now")
        await conn.execute("SELECT 1")
        self.applied.extend(consumed.event.id for consumed in batch)


@pytest.fixture
async def runtime(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, asyncpg.Pool]]:
    """NATS, and a schema with only the shared tables (outbox, inbox): no service of its own."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    pool = await create_pool(database_url, "runner_test")
    async with pool.acquire() as conn:
        await apply_migrations(conn, "runner_test", tmp_path)
    yield nc, js, pool
    await pool.close()
    await nc.close()


@dataclass
class Running:
    ids: list[str]
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def finish(self) -> None:
        self.stop.set()
        await self.task


async def _publish(js: Any, events: int) -> list[str]:
    """Publish ``events`` new message.sent events; returns their ids."""
    ids = []
    for _ in range(events):
        message = MessageSentV1(
            message_id=uuid.uuid4(),
            patient_id=uuid.uuid4(),
            sent_at=datetime(2026, 11, 22, 10, tzinfo=UTC),
            answered_by="patient",
            text="x",
        )
        event = make_event("message.sent", message, source="/services/questionnaire", time=message.sent_at)
        await js.publish("message.sent", event.to_json(), headers={Header.MSG_ID: event.id})
        ids.append(event.id)
    return ids


async def _run(runtime: Any, handler: Any, spec: ConsumerSpec, events: int, *, batch: bool = True) -> Running:
    """Publish ``events`` new events, then run a consumer with ``handler`` on the stream."""
    nc, js, pool = runtime
    await ensure_topology(js, (spec,))
    ids = await _publish(js, events)
    stop = asyncio.Event()
    runner = ConsumerRunner(nc, js, pool, Subscription(spec, handler, batch=batch))
    return Running(ids, stop, asyncio.create_task(runner.run(stop)))


async def test_transient_failure_is_retried_and_applied_once(runtime: Any) -> None:
    handler = Flaky(failures=2)
    # One backoff is waited out in real time; 2 s (it is also the ack wait) still outlasts a failing batch.
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(2.0, 2.0, 2.0), max_deliver=5)
    running = await _run(runtime, handler, spec, events=3)
    ids = running.ids
    try:
        try:
            await eventually(lambda: _done(handler, ids), within=20)
        except AssertionError:
            # Seen once in CI (not reproduced since): say where the redeliveries were.
            info = await runtime[1].consumer_info("QUESTIONNAIRES", spec.durable)
            raise AssertionError(
                f"not applied in 20 s: seen {handler.seen}, applied {handler.applied}, runner done "
                f"{running.task.done()}, consumer pending {info.num_pending}, ack pending {info.num_ack_pending}, "
                f"redelivered {info.num_redelivered}, waiting pulls {info.num_waiting}"
            ) from None
        await eventually(lambda: _settled(runtime, spec.durable, 3))
        assert sorted(handler.applied) == sorted(ids)
        assert len(handler.applied) == len(set(handler.applied))  # each applied once
        assert all(handler.seen[i] >= 3 for i in ids)  # two failed attempts first (batch, then alone)
        info = await runtime[1].consumer_info("QUESTIONNAIRES", spec.durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await running.finish()


async def _done(handler: Flaky, ids: list[str]) -> bool:
    return sorted(handler.applied) == sorted(ids)


async def _settled(runtime: Any, durable: str, rows: int) -> bool:
    """The consumer's inbox holds ``rows`` and nothing waits for an ack. A handler records what it applied inside its
    transaction, which commits (and is acked) just after: the inbox and the ack are read once they are there, not at
    the moment the handler returned (that raced the commit: an inbox of 0 rows, once in CI)."""
    async with runtime[2].acquire() as conn:
        held = await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", durable)
    info = await runtime[1].consumer_info("QUESTIONNAIRES", durable)
    return bool(held == rows and info.num_ack_pending == 0 and info.num_pending == 0)


class Timed(Flaky):
    """A ``Flaky`` handler that also notes when it is called."""

    def __init__(self, failures: int) -> None:
        super().__init__(failures)
        self.calls: list[float] = []

    async def __call__(self, batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        self.calls.append(time.monotonic())
        await super().__call__(batch, conn)

    def waits(self) -> list[float]:
        """How long each delivery waited after the one before was let go: from that one's last try (a delivery is
        tried as a batch, then alone, within milliseconds) to its own first. The redelivery timer starts at that last
        try, so its wait is the backoff's; from the first try, a loaded machine's slower second try was counted in."""
        tries = self.calls
        return [later - earlier for earlier, later in itertools.pairwise(tries) if later - earlier > 0.5]


async def test_a_handler_s_failure_is_retried_on_the_consumer_s_backoff_schedule_and_applied_once(
    runtime: Any,
) -> None:
    # Three failed deliveries (each tried as a batch, then alone), then one that succeeds: the waits are the
    # schedule's entries for deliveries 1, 2 and 3, the last one repeated past its end, never a delay of its own.
    handler = Timed(failures=6)
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0, 2.5), max_deliver=5)
    running = await _run(runtime, handler, spec, events=1)
    try:
        await eventually(lambda: _done(handler, running.ids), within=20, interval=0.1)
        gaps = handler.waits()
        assert len(gaps) == 3 and handler.seen[running.ids[0]] == 7, handler.calls
        for gap, expected in zip(gaps, (1.0, 2.5, 2.5), strict=True):
            assert abs(gap - expected) < 0.4, gaps
        assert handler.applied == running.ids
        await eventually(lambda: _settled(runtime, spec.durable, 1))
        assert (await runtime[1].stream_info("DEAD_LETTERS")).state.messages == 0
    finally:
        await running.finish()


async def test_exhausted_retries_and_poison_go_to_the_dead_letter_stream(runtime: Any) -> None:
    # The one backoff is waited out in real time; 2 s (it is also the ack wait) still outlasts a failing batch.
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(2.0,), max_deliver=2)
    failing = Flaky(failures=99)
    running = await _run(runtime, failing, spec, events=1)
    js = runtime[1]

    async def dead_letters() -> int:
        try:
            return int((await js.stream_info("DEAD_LETTERS")).state.messages)
        except Exception:
            return 0

    try:
        await eventually(dead_letters, within=20)
        letter = await js.get_last_msg("DEAD_LETTERS", "dlq.message.sent")
        assert letter.headers["Dlq-Reason"] == "retries_exhausted"
        assert letter.headers["Dlq-Deliveries"] == "2"
        assert failing.applied == []
    finally:
        await running.finish()

    poison = Flaky(failures=99, error=PoisonMessage)
    spec2 = ConsumerSpec("runner2", "QUESTIONNAIRES", "message.sent", backoff_s=(5.0,), max_deliver=5)
    running = await _run(runtime, poison, spec2, events=0)
    try:
        # runner2 starts from the beginning of the stream: the same event, poison this time, delivered once.
        async def two_letters() -> bool:
            return await dead_letters() == 2

        await eventually(two_letters, within=20)
        assert poison.applied == []
        letter = await js.get_last_msg("DEAD_LETTERS", "dlq.message.sent")
        assert letter.headers["Dlq-Reason"] == "poison" and letter.headers["Dlq-Consumer"] == "runner2-message-sent"
    finally:
        await running.finish()


async def test_a_per_event_handler_gets_each_event_under_its_own_trace_context(runtime: Any) -> None:
    seen: list[tuple[str, bool]] = []

    async def on_message_sent(event: Any, conn: asyncpg.Connection) -> None:
        # The context of this event's process span is current, so what it writes to the outbox carries it.
        seen.append((event.id, trace.get_current_span().get_span_context().is_valid))

    spec = ConsumerSpec("perevent", "QUESTIONNAIRES", "message.sent")
    running = await _run(runtime, on_message_sent, spec, events=2, batch=False)

    async def both() -> bool:
        return len(seen) == 2

    try:
        await eventually(both, within=10)
    finally:
        await running.finish()
    assert sorted(i for i, _ in seen) == sorted(running.ids)
    assert all(valid for _, valid in seen)


async def test_an_unreadable_event_is_dead_lettered_alone_and_a_newer_version_is_retried(runtime: Any) -> None:
    js = runtime[1]
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0, 1.0), max_deliver=3)
    handler = Flaky(failures=0)
    running = await _run(runtime, handler, spec, events=0)

    async def publish_with_version(version: str) -> str:
        message = _message()
        event = make_event("message.sent", message, source="/services/questionnaire", time=message.sent_at)
        envelope = orjson.loads(event.to_json())
        envelope["dataschema"] = envelope["dataschema"].rsplit(":", 1)[0] + f":{version}"
        await js.publish("message.sent", orjson.dumps(envelope), headers={Header.MSG_ID: envelope["id"]})
        return str(envelope["id"])

    async def letters() -> dict[str, str]:
        found = {}
        for seq in range(1, 10):
            try:
                letter = await js.get_msg("DEAD_LETTERS", seq)
            except Exception:
                break
            found[orjson.loads(letter.data)["id"]] = letter.headers["Dlq-Reason"]
        return found

    try:
        good = await _publish(js, 2)
        unreadable = await publish_with_version("0")  # no upcaster from version 0: it raised KeyError, batch and all
        newer = await publish_with_version("2")  # from a newer release: its replicas will read it
        good += await _publish(js, 2)

        await eventually(lambda: _done(handler, good), within=10)
        assert await letters() == {unreadable: "undecodable"}
        assert len(handler.applied) == 4

        async def newer_given_up() -> bool:
            return newer in await letters()

        await eventually(newer_given_up, within=20, interval=0.2)  # retried, then given up after max_deliver
        assert (await letters())[newer] == "retries_exhausted"
        letter = await js.get_last_msg("DEAD_LETTERS", "dlq.message.sent")
        assert letter.headers["Dlq-Deliveries"] == "3"
    finally:
        await running.finish()


def _message() -> MessageSentV1:
    return MessageSentV1(
        message_id=uuid.uuid4(),
        patient_id=uuid.uuid4(),
        sent_at=datetime(2026, 11, 22, 10, tzinfo=UTC),
        answered_by="patient",
        text="x",
    )


async def _cut_connections(admin: asyncpg.Connection) -> None:
    """End every other session of this database, as a restart or a failover does: the pool connects again."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


async def test_a_read_only_database_holds_the_batch_without_counting_a_delivery(
    runtime: Any, database_url: str
) -> None:
    # After a failover the pool may reach a standby, which answers SELECT 1 but refuses every write: that says
    # nothing about the messages, so none may be counted as a failed delivery (here: dead-lettered at the 2nd).
    js = runtime[1]
    handler = Flaky(failures=0)
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=2)
    admin = await asyncpg.connect(database_url)  # opened first, so its own session stays read-write
    database = await admin.fetchval("SELECT current_database()")
    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await _cut_connections(admin)
        running = await _run(runtime, handler, spec, events=1)
        try:
            await asyncio.sleep(4.0)  # four deliveries' worth of backoff
            assert (await js.stream_info("DEAD_LETTERS")).state.messages == 0
            info = await js.consumer_info("QUESTIONNAIRES", spec.durable)
            assert (info.delivered.consumer_seq, info.num_ack_pending) == (1, 1)  # delivered once, held in progress
            assert handler.seen == {}

            await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            await _cut_connections(admin)  # the pool now reaches a primary
            await eventually(lambda: _done(handler, running.ids), within=15, interval=0.1)
            assert handler.seen == {running.ids[0]: 1}
            await eventually(lambda: _settled(runtime, spec.durable, 1))
            info = await js.consumer_info("QUESTIONNAIRES", spec.durable)
            assert (info.delivered.consumer_seq, info.num_ack_pending) == (1, 0)
            assert (await js.stream_info("DEAD_LETTERS")).state.messages == 0
        finally:
            await running.finish()
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await admin.close()


class CutsItsConnection(Flaky):
    """A handler whose first ``cuts`` calls find their connection ended by the server (as a restart or an
    administrator's ``pg_terminate_backend`` does) while the database answers on new connections."""

    def __init__(self, cuts: int) -> None:
        super().__init__(failures=0)
        self.cuts = cuts
        self.calls = 0

    async def __call__(self, batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        self.calls += 1
        if self.calls <= self.cuts:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await super().__call__(batch, conn)


async def test_a_connection_the_server_cut_is_tried_again_without_counting_a_delivery(runtime: Any) -> None:
    js = runtime[1]
    handler = CutsItsConnection(cuts=2)  # the batch, then what would have been the message alone
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(5.0,), max_deliver=2)
    running = await _run(runtime, handler, spec, events=1)
    try:
        await eventually(lambda: _done(handler, running.ids), within=4, interval=0.1)  # not after 5 s of backoff
        assert handler.calls == 3 and handler.applied == running.ids
        await eventually(lambda: _settled(runtime, spec.durable, 1))
        info = await js.consumer_info("QUESTIONNAIRES", spec.durable)
        assert (info.delivered.consumer_seq, info.num_ack_pending) == (1, 0)  # one delivery, acked
    finally:
        await running.finish()


async def test_a_connection_cut_again_and_again_while_the_database_answers_is_the_message_s_failure(
    runtime: Any,
) -> None:
    # A statement that brings its connection down each time (or an error taken for an outage by mistake) must
    # not hold the consumer for ever: after a few tries it is a failure like any other, retried, then given up.
    js = runtime[1]
    handler = CutsItsConnection(cuts=1_000)
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=2)
    running = await _run(runtime, handler, spec, events=1)
    try:

        async def dead_lettered() -> list[DeadLetter]:
            return await dead_letters(js)

        [letter] = await eventually(dead_lettered, within=20, interval=0.2)
        assert (letter.reason, letter.deliveries) == ("retries_exhausted", 2)
        assert handler.applied == []
    finally:
        await running.finish()


async def test_an_unlimited_consumer_retries_past_the_usual_limit_and_dead_letters_nothing(runtime: Any) -> None:
    # As the token revocations are consumed: a run of failures must not end in the dead-letter stream.
    js = runtime[1]
    spec = ConsumerSpec("runner", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=UNLIMITED)
    handler = Flaky(failures=4)  # two deliveries' worth of failures (the batch, then alone): one more than 2
    running = await _run(runtime, handler, spec, events=1)
    try:
        await eventually(lambda: _done(handler, running.ids), within=30, interval=0.2)
        assert handler.seen[running.ids[0]] == 5
        assert (await js.stream_info("DEAD_LETTERS")).state.messages == 0
    finally:
        await running.finish()


def _dead_letters_script(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(DEAD_LETTERS_SCRIPT), "--nats-url", nats_url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def test_a_replayed_dead_letter_is_applied_once_by_the_consumer_that_gave_up_only(
    runtime: Any, nats_url: str
) -> None:
    nc, js, pool = runtime
    gave_up, other = Flaky(failures=99), Flaky(failures=0)  # a bug in one consumer; the other is fine
    specs = (
        ConsumerSpec("replay_a", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=2),
        ConsumerSpec("replay_b", "QUESTIONNAIRES", "message.sent", backoff_s=(1.0,), max_deliver=2),
    )
    await ensure_topology(js, specs)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(ConsumerRunner(nc, js, pool, Subscription(spec, handler, batch=True)).run(stop))
        for spec, handler in zip(specs, (gave_up, other), strict=True)
    ]
    text = f"patient text {uuid.uuid4()}"
    event = make_event(
        "message.sent",
        MessageSentV1(
            message_id=uuid.uuid4(),
            patient_id=uuid.uuid4(),
            sent_at=datetime.now(UTC),
            answered_by="patient",
            text=text,
        ),
        source="/services/questionnaire",
        time=datetime.now(UTC),
    )
    try:
        await js.publish("message.sent", event.to_json(), headers={Header.MSG_ID: event.id})

        async def dead_lettered() -> list[DeadLetter]:
            return await dead_letters(js)

        [letter] = await eventually(dead_lettered, within=20)
        assert (letter.consumer, letter.reason, letter.subject) == (
            "replay_a-message-sent",
            "retries_exhausted",
            "message.sent",
        )
        assert (letter.event_type, letter.event_id) == ("message.sent", event.id)
        await eventually(lambda: _done(other, [event.id]))

        # The operator sees it by codes and ids, never its text.
        listed = _dead_letters_script(nats_url, "list").stdout
        assert f"{letter.seq}" in listed and event.id in listed and "replay_a-message-sent" in listed
        assert text not in listed

        gave_up.failures = 0  # the bug is fixed
        async with pool.acquire() as conn:  # long ago: the other consumer's inbox row is purged (after 38 days)
            await conn.execute("DELETE FROM inbox WHERE consumer = 'replay_b-message-sent'")
        replayed = _dead_letters_script(nats_url, "replay", str(letter.seq))
        assert replayed.returncode == 0 and "1 dead letter(s) replayed." in replayed.stdout, replayed.stderr
        await eventually(lambda: _done(gave_up, [event.id]))

        async def both_acked() -> bool:
            infos = [await js.consumer_info("QUESTIONNAIRES", spec.durable) for spec in specs]
            return all(i.num_ack_pending == 0 and i.num_pending == 0 for i in infos)

        await eventually(both_acked)
        # Applied once by each consumer: the other one acked the replay unread, with no inbox row to go by.
        assert (gave_up.applied, other.applied) == ([event.id], [event.id])
        async with pool.acquire() as conn:
            inbox = await conn.fetch("SELECT consumer FROM inbox WHERE event_id = $1", event.id)
        assert [r["consumer"] for r in inbox] == ["replay_a-message-sent"]
        assert await dead_letters(js) == []

        # A second replay of the same dead letter finds nothing, and says so.
        again = _dead_letters_script(nats_url, "replay", str(letter.seq))
        assert again.returncode == 1 and f"There is no dead letter {letter.seq}" in again.stderr
        assert (await js.stream_info("QUESTIONNAIRES")).state.messages == 2  # the event and its one replay
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_dead_letters_are_discarded_by_sequence_or_by_filter_and_the_list_says_what_is_left(
    runtime: Any, nats_url: str
) -> None:
    js = runtime[1]
    await ensure_topology(js, ())
    for seq, (consumer, reason) in enumerate(
        [("alerting-message-sent", "poison"), ("alerting-message-sent", "retries_exhausted"), ("other", "poison")], 1
    ):
        await dead_letter(
            js,
            subject="message.sent",
            data=b"{not json",
            headers=None,
            stream="QUESTIONNAIRES",
            stream_seq=seq,
            consumer=consumer,
            deliveries=1,
            reason=reason,
        )
    unreachable = _dead_letters_script("nats://127.0.0.1:9", "list")
    assert unreachable.returncode == 2 and "Cannot reach NATS at nats://127.0.0.1:9" in unreachable.stderr
    assert _dead_letters_script(nats_url, "discard").returncode == 2  # neither sequences nor --all
    both = _dead_letters_script(nats_url, "discard", "1", "--all")
    assert both.returncode == 2 and "not both" in both.stderr

    discarded = _dead_letters_script(
        nats_url, "discard", "--all", "--consumer", "alerting-message-sent", "--reason", "poison"
    )
    assert discarded.returncode == 0 and "1 dead letter(s) discarded." in discarded.stdout
    assert [(d.seq, d.consumer, d.reason) for d in await dead_letters(js)] == [
        (2, "alerting-message-sent", "retries_exhausted"),
        (3, "other", "poison"),
    ]
    listed = _dead_letters_script(nats_url, "list").stdout
    assert "2 dead letter(s):" in listed and "(not a CloudEvent)" in listed and "QUESTIONNAIRES:3" in listed

    assert _dead_letters_script(nats_url, "discard", "2", "3").returncode == 0
    assert "No dead letters" in _dead_letters_script(nats_url, "list").stdout


async def test_a_stop_ends_an_idle_runner_at_once_and_leaves_nothing_taken(runtime: Any) -> None:
    handler = Flaky(failures=0)
    spec = ConsumerSpec("stopping", "QUESTIONNAIRES", "message.sent")
    running = await _run(runtime, handler, spec, events=1)
    await eventually(lambda: _done(handler, running.ids))
    await asyncio.sleep(0.3)  # idle: waiting in its pull for messages that do not come
    loop = asyncio.get_running_loop()
    started = loop.time()
    await running.finish()
    # The pull's wait (1 s) is not waited out: services stop (and tests tear down) that much sooner.
    assert loop.time() - started < 0.5
    later = await _publish(runtime[1], 2)
    info = await runtime[1].consumer_info("QUESTIONNAIRES", spec.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 2  # nothing delivered to the runner that stopped
    again = await _run(runtime, handler, spec, events=0)
    try:
        await eventually(lambda: _done(handler, [*running.ids, *later]))
    finally:
        await again.finish()
