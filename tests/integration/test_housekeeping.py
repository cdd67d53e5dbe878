"""Housekeeping removes what the guarantees no longer need, and nothing else."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.db.housekeeping import purge
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def test_purge_keeps_what_is_recent_or_unpublished(platform: Any) -> None:
    async with platform.questionnaire_platform.pool.acquire() as conn:
        for age, published in ((1, True), (10, True), (10, False)):
            await conn.execute(
                "INSERT INTO outbox (id, subject, body, created_at, published_at) "
                "VALUES ($1, 'questionnaire.submitted', '{}', now() - make_interval(days => $2), "
                "CASE WHEN $3 THEN now() - make_interval(days => $2) END)",
                uuid.uuid4(),
                age,
                published,
            )
        for age in (1, 400):
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) "
                "VALUES ('c', $1, now() - make_interval(days => $2))",
                str(uuid.uuid4()),
                age,
            )
        for age in (1, 40):
            await conn.execute(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) "
                "VALUES ('s', $1, 'h', 202, '{}', now() - make_interval(days => $2))",
                str(uuid.uuid4()),
                age,
            )
        removed = await purge(conn)
        assert removed == {"outbox": 1, "inbox": 1, "idempotency_keys": 1}
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2


async def test_inbox_rows_are_kept_while_the_stream_their_consumer_reads_could_deliver_the_event_again(
    platform: Any, service_env: dict[str, str]
) -> None:
    # alerting reads session.scheduled from INCLUSION (kept a year) and questionnaire.submitted from QUESTIONNAIRES
    # (30 days). A row goes once the stream no longer holds the event, nor a copy re-published from an outbox
    # (kept 7 days), with a day to spare; a consumer the service no longer has keeps its rows as the longest stream.
    kept = {
        ("alerting-session-scheduled", 40): True,  # past the 35 days every inbox row used to be kept
        ("alerting-session-scheduled", 374): False,
        ("alerting-questionnaire-submitted", 37): True,
        ("alerting-questionnaire-submitted", 39): False,
        ("alerting-retired-consumer", 40): True,
        ("alerting-retired-consumer", 374): False,
    }
    async with platform.alerting_platform.pool.acquire() as conn:
        for consumer, age in kept:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) "
                "VALUES ($1, $2, now() - make_interval(days => $3))",
                consumer,
                f"{consumer}-{age}",
                age,
            )
    # Another replica starts: its housekeeping runs at once (the first one's may have, during the inserts).
    expected = sorted(f"{consumer}-{age}" for (consumer, age), stays in kept.items() if stays)
    settings = AlertingSettings(**service_env)  # type: ignore[arg-type]
    async with in_process(build_alerting(settings)):

        async def purged() -> bool:
            async with platform.alerting_platform.pool.acquire() as conn:
                rows = await conn.fetch("SELECT event_id FROM inbox WHERE consumer LIKE 'alerting-%'")
            return sorted(r["event_id"] for r in rows) == expected

        await eventually(purged, within=10, interval=0.1)
