"""Which database errors are transient, and how a request meeting one is run again (the ASGI middleware alone; the
real deadlocks and lock timeouts are in tests/integration/test_transient_errors.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from shared.db import transient
from shared.db.pool import is_transient
from shared.http.transient import TransientRetry
from shared.messaging.consumer import database_unusable


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DeadlockDetectedError("deadlock detected"),  # 40P01
        asyncpg.SerializationError("could not serialize access due to concurrent update"),  # 40001
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),  # 55P03
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    ],
)
def test_a_lost_race_is_transient_and_says_nothing_of_the_database_s_health(error: Exception) -> None:
    assert is_transient(error) and not database_unusable(error)
    wrapped = RuntimeError("the handler's own")
    wrapped.__cause__ = error
    assert is_transient(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.DataError("invalid input"),
        ValueError("a bug"),
    ],
)
def test_other_failures_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transient, "TRANSIENT_DELAYS_S", (0.0, 0.0, 0.0))


class App:
    """Echoes the body it read, after ``failures`` tries that read it and then lose a race (or fail otherwise)."""

    def __init__(self, failures: int, error: Exception | None = None, *, after_start: bool = False) -> None:
        self.failures = failures
        self.error = error or asyncpg.DeadlockDetectedError("deadlock detected")
        self.after_start = after_start
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        if self.after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        if len(self.bodies) <= self.failures:
            raise self.error
        if not self.after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _call(app: Any) -> list[Message]:
    chunks = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": []}
    await TransientRetry(app)(scope, receive, send)
    return sent


async def test_a_request_that_lost_a_race_is_run_again_with_the_body_it_sent() -> None:
    app = App(failures=2)
    sent = await _call(app)
    assert app.bodies == [b'{"a":1}'] * 3
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"a":1}'


async def test_past_the_last_try_the_caller_gets_a_503_problem_with_retry_after() -> None:
    app = App(failures=10, error=asyncpg.LockNotAvailableError("canceling statement due to lock timeout"))
    sent = await _call(app)
    assert len(app.bodies) == 4
    start, body = sent
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"2" and headers[b"content-type"] == b"application/problem+json"
    problem = orjson.loads(body["body"])
    assert problem["type"].endswith("/database-busy") and problem["instance"] == "/v1/x"


async def test_an_answer_already_begun_and_any_other_failure_are_not_run_again() -> None:
    begun = App(failures=1, after_start=True)
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await _call(begun)
    assert len(begun.bodies) == 1
    other = App(failures=1, error=ValueError("a bug"))
    with pytest.raises(ValueError):
        await _call(other)
    assert len(other.bodies) == 1
