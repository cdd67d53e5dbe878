"""One stream subscription per process, fanned out in memory to every connected live client.

Hundreds of dashboards follow the same alert stream: one JetStream consumer per browser would multiply
the broker's work by the number of screens. Instead each process reads the stream once (an ordered
consumer) and hands every event, encoded once, to each client's bounded queue.

Replay stays exact: every event keeps its stream sequence, the process keeps the most recent ones in
memory, and a client that reconnects with ``Last-Event-ID`` gets what it missed from that buffer, or
from the stream itself when the gap is older than the buffer. A client that cannot keep up is closed
(its browser reconnects with its last id and catches up) rather than allowed to hold memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.telemetry import get_tracer, start_process_span

log = logging.getLogger(__name__)
tracer = get_tracer(__name__)


class Frame(NamedTuple):
    seq: int  # the event's stream sequence
    data: bytes  # the event as clients receive it
    about: str | None = None  # whose data it shows (a pseudonymous patient id), for the access trail


PING_SEQ = 0  # stream sequences start at 1: a frame with this one is a keep-alive, not an event
QUIET_S = 0.25  # no message for this long at start-up: the buffer holds what the stream had
# How often the server tells the follower it is still there when no alert comes. nats-py recreates an ordered
# consumer whose heartbeats stop, and that is how the feed comes back after a NATS restart: with its default of 5 s,
# the first alert after a restart reached the dashboards about 19 s late; with 1 s, a few seconds. Heartbeats are
# sent only while the stream is idle: nothing more at load.
FOLLOW_HEARTBEAT_S = 1.0
# An event as clients receive it, and whose data it shows.
Encode = Callable[[Msg], tuple[bytes, str | None]]
# Awaited with whose data a chunk shows before the chunk is sent: a reader is shown nothing its trail lacks.
BeforeSending = Callable[[Sequence[str]], Awaitable[None]]


@dataclass(eq=False)
class LiveClient:
    queue: asyncio.Queue[Frame | None]
    overflowed: bool = False


@dataclass
class Catchup:
    """What a (re)connecting client receives before the live events."""

    reset: bool  # the gap is older than the stream keeps: reload the list, then follow
    frames: list[Frame] = field(default_factory=list)


class StreamFanout:
    def __init__(
        self,
        stream: str,
        subject_filter: str,
        encode: Encode,
        *,
        buffer_size: int = 10_000,
        client_queue_size: int = 5_000,
        ping_s: float = 15.0,
        ping_frame: bytes = b": ping\n\n",
        max_chunk_frames: int = 500,
    ) -> None:
        self._ping_s = ping_s
        self._ping_frame = ping_frame
        self._max_chunk = max_chunk_frames
        self.stream = stream
        self.subject_filter = subject_filter
        self._encode = encode
        self._buffer: deque[Frame] = deque(maxlen=buffer_size)
        self._clients: set[LiveClient] = set()
        self._queue_size = client_queue_size
        self._js: JetStreamContext | None = None
        self.head = 0  # the sequence of the last event handed out
        self.ready = asyncio.Event()

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def run(self, platform: Any, stop: asyncio.Event) -> None:
        """A background job of the service: follow the stream until ``stop``."""
        js: JetStreamContext = platform.js
        self._js = js
        pinger = asyncio.create_task(self._ping_every(self._ping_s, stop))
        try:
            while not stop.is_set():
                try:
                    await self._follow_stream(js, stop)
                except Exception:
                    # The broker went away or the subscription broke: pick up after the last event handed
                    # out, so that no client misses one and none gets one twice.
                    log.exception("live feed of %s interrupted; resubscribing", self.stream)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            pinger.cancel()
            self.disconnect_all()

    async def _ping_every(self, interval_s: float, stop: asyncio.Event) -> None:
        """A comment line to every client now and then: proxies keep the connection, browsers notice a dead one."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            for client in list(self._clients):
                with contextlib.suppress(asyncio.QueueFull):  # a client that far behind gets closed anyway
                    client.queue.put_nowait(Frame(PING_SEQ, self._ping_frame))

    async def _follow_stream(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        info = await js.stream_info(self.stream)
        if self.head:
            start = self.head + 1
        else:
            start = max(info.state.first_seq, info.state.last_seq - (self._buffer.maxlen or 0) + 1, 1)
        arrived = 0

        async def on_message(msg: Msg) -> None:
            nonlocal arrived
            arrived += 1
            seq = msg.metadata.sequence.stream
            if seq <= self.head:
                return  # already handed out before a resubscription
            self._publish(msg)
            if seq >= info.state.last_seq:
                self.ready.set()  # the buffer holds what the stream held at start-up

        # A callback, not next_msg(): nats-py's next_msg makes a task and a timeout per message, which cost
        # three times the rest of the fan-out (measured: 66 against 20 µs of CPU per event).
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        sub = await js.subscribe(
            self.subject_filter,
            stream=self.stream,
            ordered_consumer=True,
            idle_heartbeat=FOLLOW_HEARTBEAT_S,
            config=config,
            cb=on_message,
        )
        try:
            while not stop.is_set():
                before = arrived
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=QUIET_S)
                if arrived == before:
                    # Nothing came for a moment: what the stream held is in (its last message may be one the
                    # filter leaves out).
                    self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def disconnect_all(self) -> None:
        """Close every live client (each reconnects with its last id): on shutdown, or to shed them all."""
        for client in list(self._clients):
            self._close(client)

    def _publish(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        # The last hop of a submission's trace: the event handed to the screens connected to this process (a span
        # only where spans are recorded; one per event, however many screens).
        headers = msg.headers or {}
        span, _ = start_process_span(
            tracer, msg.subject, headers.get("Nats-Msg-Id", ""), headers, f"live-{self.stream.lower()}"
        )
        try:
            try:
                frame = Frame(seq, *self._encode(msg))
            except Exception:
                log.exception("event at stream sequence %s cannot be encoded for live clients; skipped", seq)
                return
            self._buffer.append(frame)
            self.head = seq
            for client in list(self._clients):
                try:
                    client.queue.put_nowait(frame)
                except asyncio.QueueFull:
                    client.overflowed = True
                    self._close(client)
            if span.is_recording():
                span.set_attribute("oncofollow.live_clients", len(self._clients))
        finally:
            span.end()

    def _close(self, client: LiveClient) -> None:
        self._clients.discard(client)
        if client.queue.full():
            # What it has not read yet is dropped: it ends now and gets it all again on reconnection.
            while not client.queue.empty():
                client.queue.get_nowait()
        client.queue.put_nowait(None)

    def connect(self, after: int | None) -> tuple[LiveClient, int, list[Frame]]:
        """Register a client for the live events, and return what the buffer holds after ``after`` and the
        sequence up to which the client must be caught up before the live events (no await in between, so
        nothing falls in the gap)."""
        client = LiveClient(asyncio.Queue(maxsize=self._queue_size))
        self._clients.add(client)
        if after is None:
            return client, self.head, []
        buffered = [frame for frame in self._buffer if frame.seq > after]
        return client, self.head, buffered

    def disconnect(self, client: LiveClient) -> None:
        self._clients.discard(client)

    def buffer_covers(self, after: int) -> bool:
        if not self._buffer:
            return after >= self.head
        return after >= self._buffer[0].seq - 1

    async def _beyond_stream(self, after: int) -> bool:
        """Whether ``after`` is past the stream's last message (not merely past what this process has seen yet,
        as an id from a replica a moment ahead can be)."""
        assert self._js is not None, "the fan-out is not running"
        info = await self._js.stream_info(self.stream)
        return after > info.state.last_seq

    async def history(self, after: int, upto: int) -> Catchup:
        """The events after ``after`` up to ``upto`` read from the stream itself (a gap older than the buffer)."""
        assert self._js is not None, "the fan-out is not running"
        info = await self._js.stream_info(self.stream)
        reset = after + 1 < info.state.first_seq
        start = max(after + 1, info.state.first_seq)
        catchup = Catchup(reset=reset)
        if upto < start:
            return catchup
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        sub = await self._js.subscribe(self.subject_filter, stream=self.stream, ordered_consumer=True, config=config)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    break
                seq = msg.metadata.sequence.stream
                if seq > upto:
                    break
                catchup.frames.append(Frame(seq, *self._encode(msg)))
                if seq == upto:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return catchup

    async def follow(
        self, after: int | None, *, reset_frame: bytes, before_sending: BeforeSending | None = None
    ) -> AsyncIterator[bytes]:
        """Everything after ``after`` (or only what is new, without it), then the live events, in order and
        once each. ``before_sending`` is awaited with whose data each chunk shows before it goes out; if it
        fails, the stream ends there (its client reconnects with its last id and gets the rest)."""

        async def sent(frames: Sequence[Frame]) -> bytes:
            if before_sending is not None:
                shown = sorted({f.about for f in frames if f.about is not None})
                if shown:
                    await before_sending(shown)
            return b"".join(f.data for f in frames)

        # Until the buffer holds what the stream held at start-up, "new" and "after n" mean nothing yet.
        await asyncio.wait_for(self.ready.wait(), timeout=30)
        client, upto, buffered = self.connect(after)
        try:
            if after is not None and after > upto and await self._beyond_stream(after):
                # An id this stream never sent (it was recreated, or the id is another environment's): "after
                # it" would be nothing, ever. The client starts afresh, as a new one, and is told so.
                yield reset_frame
                after, buffered = None, []
            last = after if after is not None else upto
            if after is not None and not self.buffer_covers(after):
                catchup = await self.history(after, upto)
                if catchup.reset:
                    yield reset_frame
                buffered = catchup.frames + [f for f in buffered if f.seq > upto]
            missed = [frame for frame in buffered if frame.seq > last]
            if buffered:
                last = max(last, buffered[-1].seq)
            for start in range(0, len(missed), self._max_chunk):
                yield await sent(missed[start : start + self._max_chunk])
            while True:
                # Whatever has queued up meanwhile goes out in one write: a client that fell behind
                # catches up at a fraction of the cost of one send per event.
                item = await client.queue.get()
                chunk: list[Frame] = []
                while True:
                    if item is None:  # too slow, or the service is stopping: it reconnects with its last id
                        if chunk:
                            yield await sent(chunk)
                        return
                    if item.seq == PING_SEQ:
                        chunk.append(item)
                    elif item.seq > last:
                        last = item.seq
                        chunk.append(item)
                    if client.queue.empty() or len(chunk) >= self._max_chunk:
                        break
                    item = client.queue.get_nowait()
                if chunk:
                    yield await sent(chunk)
        finally:
            self.disconnect(client)
