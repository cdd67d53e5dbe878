"""A durable pull consumer's messages as they arrive: pull requests kept open on a private inbox.

nats-py's ``fetch`` sends a request per batch and then awaits each message through a new task
(``Subscription.next_msg``), so every message of a batch cost a few turns of the event loop, and nothing
arrived while the previous batch was being applied. Here the messages of open pull requests land, through
one callback subscription, in a buffer the consumer takes whole batches from; requests are topped up so
that the server keeps delivering while a batch is being applied, within ``max_buffered`` messages
(requested + delivered and not yet taken).

What JetStream does stays visible:
- a request asks for ``batch`` messages and expires after ``expires_s``; the server sends an idle
  heartbeat every ``heartbeat_s`` (at most half of ``expires_s``) while it holds it;
- a request is over when it has delivered its ``batch``, or with a status message: 408 (expired; it says
  how many it did not deliver), 409 (the consumer was deleted, the server is shutting down, a leader
  changed…), 404;
- requests do not survive a lost connection: when the server has said nothing for two heartbeats, the
  open requests are taken as lost and new ones sent;
- acks, naks and terms are the messages' own (``Msg.ack`` …): a message taken and not acked within the
  consumer's ``ack_wait`` is redelivered, as with ``fetch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

STATUS = "Status"
HEARTBEAT = "100"
PENDING_MESSAGES = "Nats-Pending-Messages"


class PullStream:
    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        *,
        batch: int,
        max_buffered: int | None = None,
        expires_s: float = 30.0,
        heartbeat_s: float = 2.0,
    ) -> None:
        if not 0 < heartbeat_s <= expires_s / 2:
            # The server refuses (400) a request whose heartbeat is more than half its expiry.
            raise ValueError("heartbeat_s must be positive and at most half of expires_s")
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._durable = durable
        self._batch = batch
        self._max_buffered = max_buffered or 2 * batch
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._requested = 0  # what the open requests may still deliver
        self._heard_at = 0.0  # the server's last message or heartbeat (time.monotonic)
        self._quiet_until = 0.0  # after a request refused (409…), not another at once
        self._inbox = ""
        self._sub: Subscription | None = None
        self._interrupted = False

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def close(self) -> None:
        """Stop receiving, and hand back what was delivered and not taken: nak-ed with no delay, it goes at once
        to another replica instead of waiting out ack_wait (up to ``max_buffered`` messages at every stop)."""
        if self._sub is not None:
            # Drained, not just unsubscribed: what the server sent before it saw the unsubscribe still reaches
            # the buffer (and is nak-ed below) instead of being dropped to wait out ack_wait.
            try:
                await asyncio.wait_for(self._sub.drain(), timeout=self._heartbeat_s)
            except Exception:
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
            self._sub = None
        while self._buffer:
            with contextlib.suppress(Exception):
                await self._buffer.popleft().nak()

    def interrupt(self) -> None:
        """End the wait of ``next_batch`` now and every later one at once (the service is stopping): a stop
        need not wait out the pull's wait for messages that may never come."""
        self._interrupted = True
        self._arrived.set()

    def buffered(self) -> list[Msg]:
        """The messages delivered and not yet taken (their ack_wait runs)."""
        return list(self._buffer)

    async def next_batch(self, wait_s: float, linger_s: float = 0.0) -> list[Msg]:
        """The messages that have arrived, at most ``batch``; waits up to ``wait_s`` for the first one.

        With ``linger_s``, a batch short of ``batch`` waits that long after its first message for more to
        arrive: fewer, larger batches (one transaction and one commit each) for a consumer whose events
        can wait, at the cost of that much delay."""
        deadline = time.monotonic() + wait_s
        while True:
            await self._top_up()
            if self._buffer:
                if linger_s > 0 and len(self._buffer) < self._batch and not self._interrupted:
                    await asyncio.sleep(linger_s)  # the server goes on delivering into the buffer meanwhile
                    linger_s = 0.0
                    continue
                taken = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
                await self._top_up()  # the server goes on delivering while this batch is applied
                return taken
            left = deadline - time.monotonic()
            if left <= 0 or self._interrupted:
                return []
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(left, self._heartbeat_s))

    async def _top_up(self) -> None:
        if self._interrupted:
            return  # no new request for a consumer that is stopping: what it would deliver would wait out ack_wait
        now = time.monotonic()
        if self._requested and now - self._heard_at > 2 * self._heartbeat_s:
            log.info("%s: no word from the server for %.0fs, pulling again", self._durable, now - self._heard_at)
            self._requested = 0  # lost with a connection, or expired without a 408 reaching us
        room = self._max_buffered - len(self._buffer) - self._requested
        if room < self._batch // 2 or now < self._quiet_until or not self._nc.is_connected:
            return
        wanted = min(room, self._batch)
        request = {
            "batch": wanted,
            "expires": int(self._expires_s * 1e9),
            "idle_heartbeat": int(self._heartbeat_s * 1e9),
        }
        await self._nc.publish(self._subject, orjson.dumps(request), reply=self._inbox)
        if not self._requested:
            self._heard_at = now  # the silence of a new request starts now
        self._requested += wanted

    async def _on_message(self, msg: Msg) -> None:
        self._heard_at = time.monotonic()
        headers = msg.headers or {}
        status = headers.get(STATUS)
        if status is None:
            self._buffer.append(msg)
            self._requested = max(0, self._requested - 1)
            self._arrived.set()
        elif status == HEARTBEAT:
            return
        else:
            # The request is over (408 expired, 409, 404): what it did not deliver will not come.
            undelivered = headers.get(PENDING_MESSAGES)
            if undelivered is not None and undelivered.isdigit():
                self._requested = max(0, self._requested - int(undelivered))
            else:
                self._requested = 0
            if status not in ("408", "404"):
                log.warning("%s: pull request ended: %s %s", self._durable, status, headers.get("Description"))
                self._quiet_until = time.monotonic() + 0.5
            self._arrived.set()  # the waiting consumer asks again
