"""CORS for the few web origins whose pages call a service (the nurse dashboard calling the questionnaire service).

Starlette's ``CORSMiddleware`` reads every request's headers into a ``Headers`` object to look for an ``Origin``:
about 4 µs a request, measured, on a tablet submission that costs about 100 µs between uvicorn and its endpoint.
Tablets send no ``Origin``: ``OriginCors`` hands a request to it only when the request has one, and passes every
other request straight on (a scan of the raw header names, under half a microsecond).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class OriginCors:
    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept"],
            expose_headers=["Location", "Retry-After"],
            allow_credentials=False,  # bearer tokens only: a page never sends cookies here
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    await self.cors(scope, receive, send)
                    return
        await self.app(scope, receive, send)
