"""RFC 9457 problem details: every error a caller can cause is a 4xx with a sentence a person can act on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shared.db.pool import DATABASE_UNAVAILABLE, UNSTORABLE_VALUE
from shared.repeating import place, validation_message

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://oncofollow.example/problems/"
MEDIA_TYPE = "application/problem+json"
# What a 503 asks the caller to wait before trying again.
RETRY_AFTER_S = 2

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _TITLES.get(status, "error").lower().replace(" ", "-")
        self.headers = headers or {}
        self.extensions = extensions


DATABASE_BUSY = (
    "The service's database was too busy to complete this request just now, and nothing of it was stored. Send it "
    "again in a few seconds: a request sent again with the same Idempotency-Key is never applied twice."
)


def database_busy() -> Problem:
    """The 503 of a request whose transaction kept losing a race (``shared.db.transient``): nothing was stored."""
    return Problem(503, DATABASE_BUSY, kind="database-busy", headers={"Retry-After": str(RETRY_AFTER_S)})


def problem_document(status: int, detail: str, *, kind: str | None = None) -> dict[str, Any]:
    """The members every problem has: its ``type`` URI (by kind, or by status), title, status and detail."""
    return {
        "type": PROBLEM_TYPE_BASE + (kind or _TITLES.get(status, "error").lower().replace(" ", "-")),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }


# What RFC 3986 lets a path hold as it is (besides letters, digits and - . _ ~): everything else is percent-encoded.
_PATH_CHARACTERS = "/!$&'()*+,;=:@"


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """``instance``: the request's path as the ASGI scope has it (decoded), sent as the URI reference it stands for."""
    body = problem_document(status, detail, kind=kind)
    if instance:
        body["instance"] = quote(instance, safe=_PATH_CHARACTERS, errors="replace")
    body.update(extensions)
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _validation_detail(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    """The detail, the first error's pointer (top-level, as the services' own problems have it) and every error."""
    found = exc.errors()
    if not found:
        return "The request is not valid.", "/", []
    errors, places = [], []
    for error in found:
        pointer, hidden_key = place(error.get("loc", ())[1:])  # past body, query…
        errors.append({"pointer": pointer, "detail": validation_message(error)})
        places.append(pointer if hidden_key is None else f"{pointer}: {hidden_key}")
    return f"{errors[0]['detail']} (at {places[0]}).", errors[0]["pointer"], errors


def _unreadable(exc: RequestValidationError) -> bool:
    return bool(exc.errors()) and exc.errors()[0].get("type") == "json_invalid"


# FastAPI's answer to a body its JSON parser raised on with anything but a syntax error (which it reports as a
# validation error): the parser's exception is the HTTPException's cause.
FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"


NOT_JSON = "The request body is not valid JSON."
NOT_UTF8 = "The request body is not valid JSON: it is not UTF-8 text. Send JSON encoded in UTF-8."


def _unreadable_body_detail(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return NOT_UTF8
    if isinstance(cause, RecursionError):
        return "The request body is nested too deeply to be read as JSON; send the documented shape."
    return NOT_JSON


def unreadable_body(detail: str = NOT_JSON) -> Problem:
    """The 400 of a body that cannot be read as JSON, whoever parsed it (FastAPI or a route reading its own body):
    one shape, whose pointer is the whole body, as a validation problem's is."""
    return Problem(400, detail, kind="malformed-json", pointer="/", errors=[{"pointer": "/", "detail": detail}])


def _passing_on(
    status: int, detail: str, *, kind: str, headers: dict[str, str] | None = None
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A handler answering an exception of the database's with a problem (logged with its type only)."""

    async def handler(request: Request, exc: Exception) -> Response:
        log.warning("%s request answered %s (%s)", request.method, status, type(exc).__name__)
        return problem_response(status, detail, kind=kind, instance=request.url.path, headers=headers)

    return handler


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if _unreadable(exc):
            # Its loc holds a character offset, which is no JSON pointer: the body as a whole is what cannot be read.
            return await _problem(request, unreadable_body())
        detail, pointer, errors = _validation_detail(exc)
        return problem_response(422, detail, instance=request.url.path, pointer=pointer, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == FASTAPI_UNREADABLE_BODY:
            return await _problem(request, unreadable_body(_unreadable_body_detail(exc.__cause__)))
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no resource at {request.url.path}."
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, detail, instance=request.url.path, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The caller hung up while sending its body: nothing was done, and nobody reads this answer.
        return Response(status_code=499)

    # A database restart or failover is nobody's mistake and it passes: the caller is told to come back, not
    # that its request failed for good (a tablet resends the same submission with the same key).
    unavailable = _passing_on(
        503,
        "The service cannot reach its database just now. Retry in a few seconds: a request sent again with the "
        "same Idempotency-Key is never applied twice.",
        kind="database-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
    # A value the database cannot store came from the caller (NUL characters are refused before the app, dates
    # are checked by the services; this is what is left, a lone surrogate say): the caller's to fix.
    unstorable = _passing_on(
        422,
        "The request holds a value out of the range this service can store (a date or a number too large or too "
        "small, or text that is not valid Unicode); correct it and send the request again.",
        kind="unstorable-value",
    )
    for errors, handler in ((DATABASE_UNAVAILABLE, unavailable), (UNSTORABLE_VALUE, unstorable)):
        for error in errors:
            app.add_exception_handler(error, handler)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Sent by Starlette's ServerErrorMiddleware, outside the middlewares that give every other answer these.
        return problem_response(
            500,
            "Something went wrong on our side; the request was not applied.",
            instance=request.url.path,
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
        )
