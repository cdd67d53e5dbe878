"""A request body limit enforced before the body is read into memory (pure ASGI middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import RETRY_AFTER_S, problem_response


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            # No body to limit; and a live stream sends thousands of times, each through any wrapper here.
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own error response for the cut body is replaced by a 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            f"The request body is larger than the {self.max_bytes} bytes this endpoint accepts.",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


class ConcurrencyLimit:
    """Refuse work beyond a number of requests in flight with a 503 and Retry-After, instead of queueing
    it until the caller has given up (and spending CPU on answers nobody reads)."""

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_s: int = RETRY_AFTER_S) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        # Health checks must answer under load, and live streams are long-lived by design.
        if scope["type"] != "http" or path in ("/healthz", "/readyz") or path.endswith("/stream"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = problem_response(
                503,
                "The service is busy; retry in a moment with the same Idempotency-Key.",
                headers={"Retry-After": str(self.retry_after_s)},
                instance=scope.get("path"),
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
