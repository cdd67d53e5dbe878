"""A request whose transaction lost a race is run again, whole, before its caller hears of it (pure ASGI).

Every route runs its work in one transaction (``pool.acquire() … conn.transaction()``); a deadlock, a
serialization failure, a lock or statement timeout (``pool.TRANSIENT``) rolls all of it back, so running the
request again from the start applies it once. Doing it here, around the routes, covers every one of them, present
and future, with no route of its own to remember it. The body read by the first try is replayed to the next ones.

A request is only run again while nothing of its answer has been sent. Past the last try (``TRANSIENT_DELAYS_S``)
its caller gets a 503 with ``Retry-After``: nothing was stored, and the same request will do its work later.
The group commits retry their own batches and answer their callers with that 503 (a ``Problem``), so a request
waiting on one is not run again here.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db.pool import is_transient
from shared.db.transient import note_exhausted, note_retry, retry_delays
from shared.http.problems import DATABASE_BUSY, RETRY_AFTER_S, problem_response

log = logging.getLogger(__name__)


class TransientRetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received: list[Message] = []  # what the caller sent, for the next try
        started = False
        waits: list[float] | None = None  # drawn at the first failure: most requests never need them
        tries = 0
        while True:
            tries += 1
            replay = list(received)

            async def receive_again(replay: list[Message] = replay) -> Message:
                if replay:
                    return replay.pop(0)
                message = await receive()
                received.append(message)
                return message

            async def send_watched(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                await self.app(scope, receive_again, send_watched)
                return
            except Exception as exc:
                if started or not is_transient(exc):
                    raise
                where = f"{scope.get('method', 'HTTP')} request"
                if waits is None:
                    waits = retry_delays()
                if not waits:
                    note_exhausted(where, exc, tries)
                    response = problem_response(
                        503,
                        DATABASE_BUSY,
                        kind="database-busy",
                        instance=scope.get("path"),
                        headers={"Retry-After": str(RETRY_AFTER_S)},
                    )
                    await response(scope, receive, send)
                    return
                delay = waits.pop(0)
                note_retry(where, exc, tries + 1, delay)
            await asyncio.sleep(delay)
