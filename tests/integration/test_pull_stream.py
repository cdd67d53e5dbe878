"""PullStream against a real NATS JetStream: batches in stream order, delivery while a batch is held,
a bounded number of messages out, and new requests after the open ones expire."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from shared.messaging.pull import PullStream
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[tuple[Any, Any, str]]:
    """A stream of its own and a durable pull consumer on it: (nc, js, name)."""
    name = f"PULL_{uuid.uuid4().hex[:8].upper()}"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    await js.add_consumer(name, ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.EXPLICIT, ack_wait=30))
    yield nc, js, name
    await js.delete_stream(name)
    await nc.close()


async def _publish(js: Any, name: str, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await js.publish(f"{name.lower()}.event", str(n).encode())


def _bodies(msgs: list[Any]) -> list[int]:
    return [int(m.data) for m in msgs]


@contextlib.asynccontextmanager
async def _pulling(nc: Any, name: str, **options: Any) -> AsyncIterator[PullStream]:
    """The test stream's consumer read through a ``PullStream``, closed at the end."""
    pull = PullStream(nc, name, "reader", **options)
    await pull.start()
    try:
        yield pull
    finally:
        await pull.close()


async def _delivered(js: Any, name: str, count: int) -> bool:
    """Whether the consumer has delivered ``count`` messages not yet acknowledged."""
    return bool((await js.consumer_info(name, "reader")).num_ack_pending == count)


async def _settled_with_buffered(js: Any, name: str, pull: PullStream, taken: int) -> bool:
    """Whether messages wait in the buffer and every message delivered is either taken or there."""
    buffered = len(pull.buffered())
    return buffered > 0 and await _delivered(js, name, taken + buffered)


async def _settled_with(js: Any, name: str, pull: PullStream, taken: int, buffered: int) -> bool:
    """Whether exactly ``buffered`` messages wait in the buffer and the server has delivered no others."""
    return len(pull.buffered()) == buffered and await _delivered(js, name, taken + buffered)


async def test_batches_come_in_stream_order_and_the_next_arrives_while_one_is_held(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=10) as pull:
        await _publish(js, name, 25)

        first = await pull.next_batch(wait_s=2.0)
        assert 1 <= len(first) <= 10
        taken = list(first)
        # Not acked yet: the next messages are delivered meanwhile, and are there at once.
        while len(taken) < 25:
            more = await pull.next_batch(wait_s=2.0)
            assert more, "nothing arrived"
            assert len(more) <= 10
            taken += more
        assert _bodies(taken) == list(range(25))
        for msg in taken:
            await msg.ack()
        assert await pull.next_batch(wait_s=0.2) == []


async def test_taking_a_batch_asks_for_the_next_one_at_once(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=10, max_buffered=10) as pull:  # one request of 10 at a time
        await _publish(js, name, 30)

        assert await pull.next_batch(wait_s=0) == []  # sends the first request
        await eventually(lambda: _settled_with(js, name, pull, taken=0, buffered=10))  # no room left
        held = await pull.next_batch(wait_s=2.0)
        assert len(held) == 10
        # While the batch is held (not acked, next_batch not called), the next 10 are delivered.
        await eventually(lambda: _settled_with(js, name, pull, taken=10, buffered=10))
        assert _bodies(await pull.next_batch(wait_s=0)) == list(range(10, 20))


async def test_no_more_than_max_buffered_messages_are_out_before_they_are_taken(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=10, max_buffered=20) as pull:
        await _publish(js, name, 100)
        held = await pull.next_batch(wait_s=2.0)

        async def delivered() -> int:
            info = await js.consumer_info(name, "reader")
            return int(info.num_ack_pending) if info.num_ack_pending >= 20 else 0

        # The held batch plus what was requested for the buffer: never the whole backlog.
        assert await eventually(delivered) <= 20 + len(held)
        await asyncio.sleep(0.3)
        assert (await js.consumer_info(name, "reader")).num_ack_pending <= 20 + len(held)


async def test_after_requests_expire_a_new_one_brings_later_messages(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=10, max_buffered=10, expires_s=0.3, heartbeat_s=0.1) as pull:
        assert await pull.next_batch(wait_s=0.8) == []  # the first request expired meanwhile (408)
        await _publish(js, name, 3)

        got: list[Any] = []
        while len(got) < 3:  # they may come in more than one batch
            more = await pull.next_batch(wait_s=2.0)
            assert more, f"only {_bodies(got)} arrived"
            got += more

        assert _bodies(got) == [0, 1, 2]


async def test_a_heartbeat_the_server_would_refuse_is_refused_here(stream: Any) -> None:
    nc, _, name = stream
    with pytest.raises(ValueError, match="at most half"):
        PullStream(nc, name, "reader", batch=10, expires_s=1.0, heartbeat_s=0.6)


async def test_a_lingering_batch_waits_for_the_messages_that_follow_its_first(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=50) as pull:
        await _publish(js, name, 1)

        async def trickle() -> None:
            for n in range(1, 6):
                await asyncio.sleep(0.05)
                await _publish(js, name, 1, start=n)

        trickling = asyncio.create_task(trickle())
        # The trickle takes about 0.3 s here (five sleeps and five publishes' round trips); the linger leaves it more
        # than a loaded machine's pause besides (at 0.6 s, one of 0.3 s would have cut the batch short).
        lingered = await pull.next_batch(wait_s=2.0, linger_s=1.5)
        await trickling
        assert _bodies(lingered) == list(range(6))  # one batch, where each message would have been its own

        await _publish(js, name, 2, start=6)
        # Both in this client's buffer, not only sent by the server (the client may not have read the second yet).
        await eventually(lambda: _settled_with(js, name, pull, taken=6, buffered=2))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert _bodies(await pull.next_batch(wait_s=2.0)) == [6, 7]  # no linger asked: at once
        assert loop.time() - started < 1.0  # under the 1.5 s the batch before lingered, with room for a busy machine


async def test_a_full_batch_does_not_linger(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=5) as pull:
        await _publish(js, name, 12)
        assert await pull.next_batch(wait_s=0) == []  # sends the first request, for 5
        await eventually(lambda: _settled_with(js, name, pull, taken=0, buffered=5))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert _bodies(await pull.next_batch(wait_s=2.0, linger_s=5.0)) == [0, 1, 2, 3, 4]
        assert loop.time() - started < 1.0


async def test_closing_hands_back_what_was_delivered_and_not_taken(stream: Any) -> None:
    nc, js, name = stream
    async with _pulling(nc, name, batch=2) as first:
        await _publish(js, name, 6)
        taken = await first.next_batch(wait_s=2.0)
        assert 1 <= len(taken) <= 2
        # More delivered into the buffer, not taken (how many depends on how the requests were topped up).
        await eventually(lambda: _settled_with_buffered(js, name, first, len(taken)))
        for msg in taken:
            await msg.ack()
    # Nak-ed at close: another reader has them at once, not after the consumer's 30 s ack_wait.
    async with _pulling(nc, name, batch=10) as second:
        again: list[Any] = []
        for _ in range(20):
            again += await second.next_batch(wait_s=0.25)
            if len(taken) + len(again) == 6:
                break
        assert sorted(_bodies(taken) + _bodies(again)) == list(range(6))
