"""An exception never carries patient data into a log line or a span, whoever logs or records it.

PostgreSQL's errors hold row values in their DETAIL (``Failing row contains (…)``, ``Key (note)=(…) already
exists.``), which asyncpg prints in ``str(exc)`` and so in every traceback. These tests provoke real errors on a
table holding a patient's sentence and read what the real handlers wrote and what the spans exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from uvicorn.logging import DefaultFormatter

import services.alerting.repository as alerting_repository
from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.db.group_commit import GroupCommit, Pending
from shared.db.pool import create_pool
from shared.testing.services import served

pytestmark = pytest.mark.integration

SENTENCE = "Je me sens très mal depuis hier"
# The words of SENTENCE, any of which in a log or a span would be a piece of it.
WORDS = ("Je me sens", "très mal", "depuis hier")

PROBE = """
CREATE SCHEMA IF NOT EXISTS redaction_probe;
CREATE TABLE IF NOT EXISTS redaction_probe.notes (
    id int PRIMARY KEY,
    note text NOT NULL CONSTRAINT note_is_short CHECK (length(note) < 100),
    CONSTRAINT note_once UNIQUE (note)
);
CREATE TABLE IF NOT EXISTS redaction_probe.short_notes (
    note text CONSTRAINT short_note_is_short CHECK (length(note) < 5)
);
"""


async def violate_check(conn: asyncpg.Connection) -> None:
    """A CHECK violation: PostgreSQL's detail is ``Failing row contains (Je me sens très mal depuis hier).``"""
    await conn.execute("INSERT INTO redaction_probe.short_notes (note) VALUES ($1)", SENTENCE)


def assert_redacted(text: str, *expected: str) -> None:
    assert not any(word in text for word in WORDS), text
    for code in expected:
        assert code in text, text


@contextlib.contextmanager
def root_output() -> Iterator[io.StringIO]:
    """What a service's own handler (``shared.logs.configure_logging``'s, on the root logger) writes."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s test %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, "redaction_test")
    async with pool.acquire() as conn:
        await conn.execute(PROBE)
    yield pool
    await pool.close()


async def test_any_logger_prints_the_codes_of_a_chained_database_error_never_its_row(pool: asyncpg.Pool) -> None:
    """A unique violation raised while handling a CHECK violation, logged by another library's logger (nats-py's)
    through uvicorn's formatter and the services' own: neither detail is printed, both SQLSTATEs and
    constraints are."""
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO redaction_probe.notes (id, note) VALUES (1, $1)", SENTENCE)
        try:
            try:
                await violate_check(conn)
            except asyncpg.CheckViolationError:
                await conn.execute("INSERT INTO redaction_probe.notes (id, note) VALUES (2, $1)", SENTENCE)
        except asyncpg.UniqueViolationError as exc:
            assert SENTENCE in str(exc)  # what the traceback would have printed
            error = exc
    uvicorn_out = io.StringIO()
    uvicorn_handler = logging.StreamHandler(uvicorn_out)
    uvicorn_handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False))
    logger = logging.getLogger("nats.aio.client")
    logger.addHandler(uvicorn_handler)
    try:
        with root_output() as out:
            logger.error("an error of the connection", exc_info=error)
            logger.error("another (%s)", error)  # an exception as an argument of the message
    finally:
        logger.removeHandler(uvicorn_handler)
    for text in (out.getvalue(), uvicorn_out.getvalue()):
        assert_redacted(text, "23505", "note_once", "23514", "short_note_is_short", "Traceback", "violate_check")
        assert "During handling of the above exception" in text
        assert "another (duplicate key value violates unique constraint" in text


async def test_errors_whose_message_quotes_the_value_print_no_message(pool: asyncpg.Pool) -> None:
    """PostgreSQL's data exceptions quote the rejected input in their message, and asyncpg's own check of a query
    argument quotes the argument: only their type and SQLSTATE are printed."""
    errors: list[Exception] = []
    async with pool.acquire() as conn:
        for query in ("SELECT CAST($1::text AS uuid)", "SELECT $1::int"):
            try:
                await conn.fetchval(query, SENTENCE)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                errors.append(exc)
    assert len(errors) == 2 and all(SENTENCE in str(error) for error in errors)
    with root_output() as out:
        for error in errors:
            logging.getLogger("asyncpg.pool").error("a query failed", exc_info=error)
    assert_redacted(out.getvalue(), "InvalidTextRepresentationError", "sqlstate 22P02", "DataError", "Traceback")


class ProbeWriter(GroupCommit[str, None]):
    async def commit(self, pool: asyncpg.Pool, batch: list[Pending[str, None]]) -> None:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO redaction_probe.short_notes (note) VALUES ($1)", batch[0].item)
        for pending in batch:
            pending.outcome.set_result(None)


async def test_group_commit_logs_a_failed_item_without_its_row(pool: asyncpg.Pool) -> None:
    writer = ProbeWriter(writers=1)
    stop = asyncio.Event()

    class Owner:
        pool: asyncpg.Pool

    owner = Owner()
    owner.pool = pool
    running = asyncio.create_task(writer.run(owner, stop))
    try:
        with root_output() as out:
            await asyncio.sleep(0)  # the writer starts taking items
            with pytest.raises(asyncpg.CheckViolationError):
                await writer.submit(SENTENCE)
    finally:
        stop.set()
        await running
    assert "an item failed; nothing of it was written" in out.getvalue()
    assert_redacted(out.getvalue(), "23514", "short_note_is_short", "CheckViolationError", "Traceback")


async def test_a_route_failing_on_a_bug_leaves_its_row_in_no_log_and_no_span(
    service_env: dict[str, str], spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, tokens: Any
) -> None:
    """A real uvicorn, a real route whose repository function hits a CHECK violation (a bug): uvicorn's
    "Exception in ASGI application" through its own handler, the server span's exception event and status."""
    settings = AlertingSettings(NATS_URL=service_env["NATS_URL"], DATABASE_URL=service_env["DATABASE_URL"])

    async def buggy_list_alerts(conn: asyncpg.Connection, **_: Any) -> list[asyncpg.Record]:
        await conn.execute(PROBE)
        await violate_check(conn)
        return []

    monkeypatch.setattr(alerting_repository, "list_alerts", buggy_list_alerts)
    async with served(build_alerting(settings)) as (url, _):
        # uvicorn's own handler and formatter (its default logging configuration), written into ``out``.
        uvicorn_handlers = [h for h in logging.getLogger("uvicorn").handlers if isinstance(h, logging.StreamHandler)]
        assert uvicorn_handlers
        out = io.StringIO()
        previous = [(handler, handler.setStream(out)) for handler in uvicorn_handlers]
        try:
            with root_output() as root_out:
                headers = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-1', {'nurse'})}"}
                async with httpx.AsyncClient(base_url=url) as client:
                    response = await client.get("/v1/alerts", headers=headers)
        finally:
            for handler, stream in previous:
                if stream is not None:
                    handler.setStream(stream)
    assert response.status_code == 500
    assert "Exception in ASGI application" in out.getvalue()
    assert_redacted(out.getvalue(), "23514", "short_note_is_short", "buggy_list_alerts")
    assert_redacted(root_out.getvalue())  # uvicorn's loggers do not propagate: whatever else was logged

    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER and s.name == "GET /v1/alerts"]
    assert server
    events = [e for s in server for e in s.events if e.name == "exception"]
    assert events
    for event in events:
        attributes = dict(event.attributes or {})
        assert attributes["exception.type"] == "asyncpg.exceptions.CheckViolationError"
        assert_redacted(str(attributes["exception.message"]), "23514", "short_note_is_short")
        assert_redacted(str(attributes["exception.stacktrace"]), "23514", "buggy_list_alerts")
    for span in spans.get_finished_spans():
        assert_redacted(str(span.status.description or ""))
        for event in span.events:
            assert_redacted(str(dict(event.attributes or {})))
