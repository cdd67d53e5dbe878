"""HTTP the parser cannot read is refused with a problem too, before the app, and the connection is closed.

Sent over a raw socket to a real uvicorn server, started both ways the services are: as a process
(``ServiceProcess``, the command line of ``make run`` and the deployments) and in this process (``served``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.http.protocol import MALFORMED_HTTP_DETAIL
from shared.testing.services import ServiceProcess, served

pytestmark = pytest.mark.integration

# Would be patient data in a real request: it must come back in no answer and be written to no log.
SECRET = b"Dupont-Marie-1957"

MALFORMED = {
    "control byte in the request line": b"GET /readyz?name=" + SECRET + b"\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
    "control byte in the method": b"G\x7fT /readyz HTTP/1.1\r\nHost: t\r\n\r\n",
    "Content-Length not a number": (
        b"POST /v1/submissions HTTP/1.1\r\nHost: t\r\nContent-Type: application/fhir+json\r\n"
        b"Content-Length: abc\r\n\r\n{}"
    ),
    "Content-Length twice, different": (
        b"POST /v1/submissions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
    "invalid header name": b"GET /readyz HTTP/1.1\r\nHost: t\r\nPatient Name: " + SECRET + b"\r\n\r\n",
    "bad chunk size": (
        b"POST /v1/submissions HTTP/1.1\r\nHost: t\r\nContent-Type: application/fhir+json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + SECRET + b"\r\n0\r\n\r\n"
    ),
}
WELL_FORMED = b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"


async def _exchange(port: int, request: bytes, *, until_closed: bool) -> tuple[int, dict[str, str], bytes, bool]:
    """Send request bytes; read one response (status, headers, body) and whether the server then closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        closed = False
        if until_closed:
            closed = await asyncio.wait_for(reader.read(1), 10) == b""
        return int(status_line.split(" ")[1]), headers, body, closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _assert_refusals(port: int) -> None:
    for what, request in MALFORMED.items():
        status, headers, body, closed = await _exchange(port, request, until_closed=True)
        assert status == 400, what
        assert headers["content-type"] == "application/problem+json", (what, headers)
        assert headers["connection"] == "close", what
        assert headers["x-content-type-options"] == "nosniff", what
        assert closed, f"{what}: the connection must be closed after the 400"
        problem = orjson.loads(body)
        assert problem == {
            "type": "https://oncofollow.example/problems/malformed-http",
            "title": "Bad request",
            "status": 400,
            "detail": MALFORMED_HTTP_DETAIL,
        }, what
        assert "not valid HTTP/1.1" in problem["detail"]
        assert SECRET not in body and SECRET.decode() not in str(headers), what
        # A well-formed request on a new connection is served as always.
        status, headers, body, _ = await _exchange(port, WELL_FORMED, until_closed=False)
        assert status == 200, (what, body)


def _address(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@asynccontextmanager
async def _as_process(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[int, Path | None]]:
    service = await asyncio.to_thread(ServiceProcess("questionnaire", service_env, tmp_path).start)
    try:
        yield service.port, service.log_path
    finally:
        await asyncio.to_thread(service.stop)


@asynccontextmanager
async def _in_this_process(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[int, Path | None]]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with served(build_questionnaire(QuestionnaireSettings(**env))) as (url, _):
        yield _address(url), None


Starter = Callable[[dict[str, str], Path], AbstractAsyncContextManager[tuple[int, Path | None]]]


@pytest.mark.parametrize("start", [_as_process, _in_this_process], ids=["process", "in-process"])
async def test_unreadable_http_is_a_problem_and_closes_the_connection(
    service_env: dict[str, str], tmp_path: Path, start: Starter
) -> None:
    async with start(service_env, tmp_path) as (port, log_path):
        await _assert_refusals(port)
    if log_path is not None:
        log = log_path.read_bytes()
        assert b"Invalid HTTP request received." in log  # uvicorn's warning, a fixed sentence
        assert SECRET not in log
