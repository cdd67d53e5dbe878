"""A header every answer under a path carries unless its route set its own (one value, never two)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DefaultHeader:
    def __init__(self, app: ASGIApp, name: str, value: str, prefix: str = "/") -> None:
        self.app = app
        self.name = name.lower().encode("latin-1")
        self.value = value.encode("latin-1")
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # Header names come lower-cased from Starlette's responses; a new list, not the response's own.
                if not any(name == self.name for name, _ in headers):
                    message["headers"] = [*headers, (self.name, self.value)]
            await send(message)

        await self.app(scope, receive, sending)
