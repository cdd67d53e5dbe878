"""Server-Sent Events, written straight to ASGI: the live alert stream sends each event to hundreds of
dashboards, so the cost per send is the cost of the feature.

Measured with 200 dashboards (bench/dashboards.py), a general-purpose SSE response spent most of the
service's CPU on per-send machinery (a timeout scope and an encode per event per client); here a frame is
encoded once for all clients (``frame``), and a client that is behind gets what it missed in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

PING = b": ping\n\n"


def frame(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event. ``data`` must be a single line (compact JSON is)."""
    if "\n" in data or "\r" in data:
        raise ValueError("SSE data must be a single line")
    head = ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    if event is not None:
        head += f"event: {event}\n"
    return f"{head}data: {data}\n\n".encode()


class EventStream(Response):
    """An ASGI response streaming the chunks of ``chunks`` until it ends or the client goes away."""

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        *,
        until: float | None = None,
        closing: asyncio.Event | None = None,
    ) -> None:
        # Not Response.__init__: there is no body to measure. Being a Response is what tells FastAPI
        # to hand it over as it is.
        self.status_code = 200
        self.background = None
        self.chunks = chunks
        # When the stream ends by itself (time.time()): the end of the reader's sign-in, after which it must not
        # go on receiving (its client reconnects, and is asked to sign in again).
        self.until = until
        # Set when the service stops: the stream ends cleanly at once, and its client reconnects.
        self.closing = closing
        self._stream_headers = {
            "cache-control": "no-store",
            "connection": "keep-alive",
            "x-accel-buffering": "no",  # no proxy buffering: events must arrive as they happen
            **(headers or {}),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", self.media_type.encode())]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._stream_headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        streaming = asyncio.create_task(self._stream(send))
        watching = asyncio.create_task(self._until_disconnect(receive))
        # What ends the stream cleanly besides its own end: the reader's sign-in running out, the service stopping.
        enders: set[asyncio.Task[Any]] = set()
        if self.until is not None:
            enders.add(asyncio.create_task(asyncio.sleep(max(0.0, self.until - time.time()))))
        if self.closing is not None:
            enders.add(asyncio.create_task(self.closing.wait()))
        tasks = {streaming, watching, *enders}
        done: set[asyncio.Task[Any]] = set()
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        ended = streaming in done and not streaming.cancelled() and streaming.exception() is None
        if ended or done & enders:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        try:
            async for chunk in self.chunks:
                message: Message = {"type": "http.response.body", "body": chunk, "more_body": True}
                await send(message)
        finally:
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
