"""JetStream publishes whose replies arrive as futures: a PubAck, or the error the server answered.

nats-py's ``publish_async`` leaves its future pending forever when the server answers with an error
(nats-io/nats.py#985: the reply handler raises the error instead of setting it on the future). The outbox
relay counts on those errors: JetStream refuses a whole atomic batch that repeats a stored message id
(10201), which happens after every relay crash between a PubAck and its mark, and after a relay takeover.
Through ``publish_async`` each such batch waited out the relay's publish timeout (5 s of delay for the
events behind it) before going out again one message at a time.

Replies come to one wildcard inbox per ``PubAcks`` (one subscription, whatever the number in flight); a
future that is cancelled (a caller's timeout) is forgotten.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

NO_RESPONDERS = "503"  # status of the server's answer when no stream takes the subject


class PubAcks:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._subscription: Subscription | None = None
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._next = 0

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[PubAck]:
        """Publish to JetStream; the future holds the PubAck, or the server's error as an ``APIError``
        (``NoStreamResponseError`` when no stream takes the subject)."""
        if self._subscription is None:
            self._prefix = f"{self._nc.new_inbox()}."
            self._subscription = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_reply)
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            future.cancel()
            raise
        return future

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def close(self) -> None:
        """Stop listening for replies; futures still waiting are cancelled."""
        subscription, self._subscription = self._subscription, None
        for future in list(self._waiting.values()):
            future.cancel()
        if subscription is not None and not self._nc.is_closed:
            await subscription.unsubscribe()

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix) :])
        if future is None or future.done():
            return  # its caller gave up waiting
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            future.set_result(_pub_ack(orjson.loads(msg.data)))
        except APIError as error:
            future.set_exception(error)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            future.set_exception(APIError(description=f"unreadable reply from JetStream: {exc}"))


def _pub_ack(reply: dict[str, Any]) -> PubAck:
    if "error" in reply:
        APIError.from_error(reply["error"])  # raises the error's own class (BadRequestError, …)
    return PubAck.from_response(reply)
