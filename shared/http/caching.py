"""No answer of the API is kept by a cache: they hold patient data (an alert, a timeline, a loan's receipt) or
credentials (a device token from an enrolment or a loan).

A browser keeps what it is not told otherwise in its disk cache, where the next user of a shared ward computer (or
anyone who copies the profile) finds it, and a proxy that ignores the rule on ``Authorization`` keeps it for
everyone. ``Cache-Control: no-store`` on every ``/v1/`` answer, refusals included (a 412 holds the alert); a route
that sets its own (a photo's ``private, no-store``, the live stream's) keeps it. The pages and their files are not
concerned: they hold nothing of a patient, and are meant to be cached.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = (b"cache-control", b"no-store")


class NoStore:
    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # Header names come lower-cased from Starlette's responses; a new list, not the response's own.
                if not any(name == b"cache-control" for name, _ in headers):
                    message["headers"] = [*headers, NO_STORE]
            await send(message)

        await self.app(scope, receive, sending)
