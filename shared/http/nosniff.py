"""No answer of a service may have its type guessed by a browser: ``X-Content-Type-Options: nosniff`` on every one.

A browser that sniffs may run as a script or show as a page what was sent as JSON: a problem's ``detail``, a FHIR
export, a patient's message in the live stream (``text/event-stream``). The pages and the photos set it already
(``page_security``, the photo route); this sets it on everything else, whatever the path, refusals included, and
keeps a route's own (one value, not two).

Strict-Transport-Security is not set here: the services speak plain HTTP behind the hospital's TLS proxy, and a
browser ignores that header on an answer that did not come over HTTPS (RFC 6797, section 8.1). The proxy, which
holds the certificate, sets it (deploy/kubernetes/README.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # Header names come lower-cased from Starlette's responses; a new list, not the response's own.
                if not any(name == NOSNIFF[0] for name, _ in headers):
                    message["headers"] = [*headers, NOSNIFF]
            await send(message)

        await self.app(scope, receive, sending)
