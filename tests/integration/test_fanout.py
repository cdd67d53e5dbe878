"""The in-process fan-out of one stream subscription to many live clients, against a real JetStream:
replay from the buffer or from the stream, a reset when the gap is older than the stream keeps, slow clients
shed, and the feed surviving a NATS restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.messaging.connection import connect
from shared.messaging.fanout import StreamFanout
from shared.messaging.topology import ensure_topology
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

RESET = b"reset\n"


def encode(msg: Msg) -> tuple[bytes, str | None]:
    """The event's body as it is, about the patient named after ``@`` in it, if any."""
    about = msg.data.partition(b"@")[2].decode() or None
    return msg.data + b"\n", about


@dataclass
class Feed:
    js: JetStreamContext
    fanout: StreamFanout
    stop: asyncio.Event

    async def publish(self, *bodies: str) -> list[int]:
        return [(await self.js.publish("alert.raised", body.encode())).seq for body in bodies]


@contextlib.asynccontextmanager
async def feed(nats_url: str, **options: Any) -> AsyncIterator[Feed]:
    nc = await connect([nats_url], name="fanout-test")
    js = nc.jetstream(timeout=5)
    await ensure_topology(js)
    fanout = StreamFanout("ALERTS", "alert.>", encode, **options)
    stop = asyncio.Event()

    @dataclass
    class Holder:
        js: JetStreamContext

    task = asyncio.create_task(fanout.run(Holder(js), stop))
    try:
        yield Feed(js, fanout, stop)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await nc.drain()


async def listening(f: Feed, clients: int) -> None:
    """Until ``clients`` live clients are registered: what is published from then on reaches them."""

    async def registered() -> bool:
        return f.fanout.clients >= clients

    await eventually(registered)


async def take(stream: AsyncIterator[bytes], count: int, within: float = 5.0) -> list[bytes]:
    """The next ``count`` frames (a client that is behind gets several in one chunk), keep-alives aside."""

    async def read() -> list[bytes]:
        frames: list[bytes] = []
        while len(frames) < count:
            frames += [line for line in (await anext(stream)).splitlines() if line and not line.startswith(b":")]
        assert len(frames) == count, frames
        return frames

    return await asyncio.wait_for(read(), within)


async def test_live_clients_get_every_new_event_once_in_order(nats_url: str) -> None:
    async with feed(nats_url) as f:
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        clients = [f.fanout.follow(None, reset_frame=RESET) for _ in range(3)]
        reads = [asyncio.create_task(take(c, 3)) for c in clients]
        await listening(f, 3)
        await f.publish("a", "b", "c")
        assert [await asyncio.wait_for(t, 5) for t in reads] == [[b"a", b"b", b"c"]] * 3
        assert f.fanout.clients == 3


async def test_the_feed_is_ready_with_the_stream_s_events_when_its_last_message_is_not_one_it_follows(
    nats_url: str,
) -> None:
    nc = await connect([nats_url], name="fanout-test-setup")
    js = nc.jetstream(timeout=5)
    await ensure_topology(js)
    alert = (await js.publish("alert.raised", b"before")).seq
    await js.publish("submission.scored", b"not followed")  # the ALERTS stream's last message
    await nc.drain()
    async with feed(nats_url) as f:
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        assert f.fanout.head == alert
        assert await take(f.fanout.follow(alert - 1, reset_frame=RESET), 1) == [b"before"]


async def test_a_reconnecting_client_gets_exactly_what_it_missed_from_the_buffer_or_the_stream(nats_url: str) -> None:
    async with feed(nats_url, buffer_size=2) as f:
        seqs = await f.publish("e1", "e2", "e3", "e4", "e5")
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        # In the buffer (the last two).
        assert await take(f.fanout.follow(seqs[2], reset_frame=RESET), 2) == [b"e4", b"e5"]
        # Older than the buffer: read from the stream, then the buffer, then live.
        older = f.fanout.follow(seqs[0], reset_frame=RESET)
        assert await take(older, 4) == [b"e2", b"e3", b"e4", b"e5"]
        nxt = asyncio.create_task(take(older, 1))
        await asyncio.sleep(0.1)
        await f.publish("e6")
        assert await asyncio.wait_for(nxt, 5) == [b"e6"]


async def test_a_gap_older_than_the_stream_keeps_starts_with_a_reset(nats_url: str) -> None:
    async with feed(nats_url, buffer_size=2) as f:
        seqs = await f.publish("x1", "x2", "x3", "x4")
        await f.js.purge_stream("ALERTS", keep=2)  # the stream now starts at x3
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        assert await take(f.fanout.follow(seqs[0], reset_frame=RESET), 3) == [RESET.strip(), b"x3", b"x4"]


async def test_a_client_that_cannot_keep_up_is_closed_and_others_are_not(nats_url: str) -> None:
    async with feed(nats_url, client_queue_size=3) as f:
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        slow = f.fanout.follow(None, reset_frame=RESET)
        fast = f.fanout.follow(None, reset_frame=RESET)
        first_slow = asyncio.create_task(take(slow, 1))
        all_fast = asyncio.create_task(take(fast, 6))
        await listening(f, 2)
        seqs = []
        for i in range(6):  # one at a time: the slow client reads the first alone, then stops reading
            seqs += await f.publish(f"m{i}")
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(first_slow, 5) == [b"m0"]
        assert await asyncio.wait_for(all_fast, 5) == [f"m{i}".encode() for i in range(6)]
        # The slow one read m0 only; five more came, over its queue of three: it was closed, at once.
        assert [frame async for frame in slow] == []
        assert f.fanout.clients == 1
        # It reconnects from its last id and catches up.
        assert await take(f.fanout.follow(seqs[0], reset_frame=RESET), 5) == [f"m{i}".encode() for i in range(1, 6)]


async def test_the_feed_survives_a_nats_restart(nats: Any) -> None:
    url, server = nats
    if server is None:
        pytest.skip("needs the embedded NATS server (TEST_NATS_URL points at a server this test cannot restart)")
    async with feed(url) as f:
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        client = f.fanout.follow(None, reset_frame=RESET)
        first = asyncio.create_task(take(client, 1))
        await listening(f, 1)
        await f.publish("before")
        assert await asyncio.wait_for(first, 5) == [b"before"]
        server.stop()
        await asyncio.sleep(1.0)
        server.start()

        async def published() -> None:
            while True:
                try:
                    await f.publish("after")
                    return
                except Exception:
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(published(), 20)
        # Within seconds, not the 19 s nats-py's default heartbeat (5 s) took to notice the restart and resubscribe:
        # an alert a nurse should see, late by that much.
        assert await take(client, 1, within=10) == [b"after"]


async def test_an_id_past_the_end_of_the_stream_starts_afresh_with_a_reset(nats_url: str) -> None:
    # The stream was recreated (or the id is another environment's): the client would otherwise wait for
    # events after an id that will not come for months, and see none of the new alerts.
    async with feed(nats_url) as f:
        seqs = await f.publish("y1", "y2")
        await asyncio.wait_for(f.fanout.ready.wait(), 5)

        async def seen_both() -> bool:  # "ready" may come with y1 alone if the feed started between the two
            return f.fanout.head >= seqs[-1]

        await eventually(seen_both)
        ahead = f.fanout.follow(seqs[-1] + 1000, reset_frame=RESET)
        assert await take(ahead, 1) == [RESET.strip()]
        nxt = asyncio.create_task(take(ahead, 1))
        await asyncio.sleep(0.1)
        await f.publish("y3")
        assert await asyncio.wait_for(nxt, 5) == [b"y3"]
        # An id the stream holds but this process has not seen yet (a replica a moment ahead): no reset.
        assert await take(f.fanout.follow(seqs[0], reset_frame=RESET), 2) == [b"y2", b"y3"]


async def test_a_chunk_goes_out_only_after_its_readers_trail_has_whose_data_it_shows(nats_url: str) -> None:
    async with feed(nats_url) as f:
        await asyncio.wait_for(f.fanout.ready.wait(), 5)
        trail: list[list[str]] = []
        refuse = asyncio.Event()

        async def before_sending(patients: Sequence[str]) -> None:
            if refuse.is_set():
                raise ConnectionError("the audit trail cannot be written")
            trail.append(list(patients))

        client = f.fanout.follow(None, reset_frame=RESET, before_sending=before_sending)
        reading = asyncio.create_task(take(client, 2))
        await listening(f, 1)
        seqs = await f.publish("first@p1", "second@p2")
        assert await asyncio.wait_for(reading, 5) == [b"first@p1", b"second@p2"]
        assert sorted(p for shown in trail for p in shown) == ["p1", "p2"]

        # When the trail cannot be written, nothing is sent and the stream ends: its client reconnects with its
        # last id and gets the event then.
        refuse.set()
        await f.publish("third@p3", "no patient")
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(anext(client), 5)
        refuse.clear()
        assert await take(f.fanout.follow(seqs[-1], reset_frame=RESET, before_sending=before_sending), 2) == [
            b"third@p3",
            b"no patient",
        ]
        assert trail[-1] == ["p3"]
