"""Limits on what a request may hold, enforced before the app sees it (pure ASGI middleware): a body is JSON,
not compressed (nothing here decodes it); the body's size, before it is read into memory; and no NUL character
anywhere, which PostgreSQL refuses in text and jsonb. Refused there, such a request is a clear 4xx; stored, it
failed at the database, and with it every other tablet's request committed in the same statement."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import RETRY_AFTER_S, problem_response

NUL_ESCAPE = b"\\u0000"
# Paging further than this into a list is a mistake (filter instead); it also keeps offsets within what
# PostgreSQL takes.
MAX_OFFSET = 100_000


# What a body may be declared as: JSON, in UTF-8 (RFC 8259). A body without a Content-Type is read as JSON too
# (tablets in the field may leave it out).
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")
_UTF8 = frozenset({"utf-8", "utf8"})


def is_json_media_type(content_type: bytes) -> bool:
    """Whether a Content-Type header declares a body this platform reads: application/json, or
    application/fhir+json for FHIR resources; a charset parameter, if any, says UTF-8."""
    media_type, *parameters = content_type.decode("latin-1").split(";")
    if media_type.strip().lower() not in JSON_MEDIA_TYPES:
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
            return False
    return True


def unsupported_codings(raw_headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The content codings a request's Content-Encoding headers name, every one of them, other than identity:
    nothing here decodes a body (gzip read as JSON is no JSON; JSON labelled gzip is not what it says)."""
    codings = []
    for name, value in raw_headers:
        if name == b"content-encoding":
            for coding in value.decode("latin-1").split(","):
                coding = coding.strip()
                if coding and coding.lower() != "identity":
                    codings.append(coding)
    return codings


# Headers a write is read by, one value each: the app reads the first, so a second one would be silently ignored (a
# retry's key, or whose token it is, would depend on the order a proxy kept them in).
SINGLE_HEADERS = {b"authorization": "Authorization", b"idempotency-key": "Idempotency-Key"}


def repeated_single_headers(raw_headers: list[tuple[bytes, bytes]]) -> list[str]:
    seen: set[bytes] = set()
    repeated: list[str] = []
    for name, _ in raw_headers:
        if name in SINGLE_HEADERS:
            if name in seen and SINGLE_HEADERS[name] not in repeated:
                repeated.append(SINGLE_HEADERS[name])
            seen.add(name)
    return repeated


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"", b"0"))


class BodyTooLarge(Exception):
    pass


class BodyHoldsNul(Exception):
    pass


def holds_nul(body: bytes) -> bool:
    """Whether JSON text holds a NUL character: the escape ``\\u0000`` whose backslash is not itself escaped
    (``\\\\u0000`` is a backslash and the letters u0000). A raw NUL byte is never valid JSON: the parser
    refuses it."""
    at = body.find(NUL_ESCAPE)
    while at >= 0:
        start = at
        while start > 0 and body[start - 1] == 0x5C:  # backslash
            start -= 1
        if (at - start) % 2 == 0:
            return True
        at = body.find(NUL_ESCAPE, at + 1)
    return False


class BodySizeLimit:
    """``raw_bodies``: the paths (of a POST) whose body is not JSON but a file (a photo), each with its own size
    limit. Their route checks the Content-Type itself (it knows which files it takes) and the NUL check, which is
    about JSON text, does not apply; every other request keeps the JSON rules and ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, raw_bodies: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.raw_bodies = dict(raw_bodies or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await self._refuse_nul(scope, receive, send, 400, "in its address")
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            # No body to limit; and a live stream sends thousands of times, each through any wrapper here.
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers") or []
        headers = dict(raw_headers)
        if len(headers) < len(raw_headers) and (repeated := repeated_single_headers(raw_headers)):
            await self._refuse_repeated(scope, receive, send, repeated)
            return
        raw_limit = self.raw_bodies.get(scope.get("path", "")) if scope["method"] == "POST" else None
        max_bytes = self.max_bytes if raw_limit is None else raw_limit
        if raw_limit is None and b"content-type" in headers and _has_body(headers):
            # Every one of them: the app reads the first, a dict keeps the last.
            for name, content_type in raw_headers:
                if name == b"content-type" and not is_json_media_type(content_type):
                    await self._refuse_media_type(scope, receive, send, content_type)
                    return
        if b"content-encoding" in headers and _has_body(headers):
            codings = unsupported_codings(raw_headers)
            if codings:
                await self._refuse_coding(scope, receive, send, ", ".join(codings))
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._reject(scope, receive, send, max_bytes)
            return
        received = 0
        chunks: list[bytes] = []
        refused: type[Exception] | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > max_bytes:
                    refused = BodyTooLarge
                    raise BodyTooLarge
                if raw_limit is not None:
                    return message  # a file, not JSON text: no NUL to look for
                if chunks or message.get("more_body", False):
                    chunks.append(chunk)  # an escape can straddle two chunks: the whole body is looked at
                    chunk = b"".join(chunks) if not message.get("more_body", False) else b""
                if chunk and holds_nul(chunk):
                    refused = BodyHoldsNul
                    raise BodyHoldsNul
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return  # the app's own error response for the cut body is replaced by the 4xx below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except (BodyTooLarge, BodyHoldsNul):
            pass
        if refused is BodyTooLarge and not started:
            await self._reject(scope, receive, send, max_bytes)
        elif refused is BodyHoldsNul and not started:
            await self._refuse_nul(scope, receive, send, 422, "in its body")

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            413,
            f"The request body is larger than the {max_bytes} bytes this endpoint accepts"
            + (
                "; send a smaller photo (a tablet's camera photo, downscaled by the page, is well within)."
                if scope.get("path", "") in self.raw_bodies
                else "."
            ),
            instance=scope.get("path"),
        )
        await response(scope, receive, send)

    async def _refuse_media_type(self, scope: Scope, receive: Receive, send: Send, content_type: bytes) -> None:
        accepted = ", ".join(JSON_MEDIA_TYPES)
        response = problem_response(
            415,
            f"The request body is sent as {content_type.decode('latin-1')[:100]!r}, which this service does not "
            "read: send it as JSON in UTF-8, with Content-Type: application/json (application/fhir+json for a "
            "FHIR resource such as a QuestionnaireResponse), or without a Content-Type.",
            kind="unsupported-media-type",
            instance=scope.get("path"),
            headers={"Accept-Post": accepted} if scope["method"] == "POST" else None,
            accepted=list(JSON_MEDIA_TYPES),
        )
        await response(scope, receive, send)

    async def _refuse_repeated(self, scope: Scope, receive: Receive, send: Send, names: list[str]) -> None:
        response = problem_response(
            400,
            f"Send the {' and '.join(names)} header once: this request has it more than once, and which one counts "
            "would be a guess.",
            kind="repeated-header",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)

    async def _refuse_coding(self, scope: Scope, receive: Receive, send: Send, codings: str) -> None:
        response = problem_response(
            415,
            f"The request body is sent with Content-Encoding {codings[:100]!r}, which this service does not decode: "
            "send it uncompressed, without a Content-Encoding (or with identity).",
            kind="unsupported-content-encoding",
            instance=scope.get("path"),
            headers={"Accept-Encoding": "identity"},  # RFC 9110, 12.5.3
        )
        await response(scope, receive, send)

    async def _refuse_nul(self, scope: Scope, receive: Receive, send: Send, status: int, where: str) -> None:
        response = problem_response(
            status,
            f"The request holds a NUL character (\\u0000 or %00) {where}; remove it and send the request again.",
            kind="nul-character",
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
