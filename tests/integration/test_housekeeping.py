"""Housekeeping removes what the guarantees no longer need, and nothing else."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.db.housekeeping import purge

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
        for age in (1, 40):
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) "
                "VALUES ('c', $1, now() - make_interval(days => $2))",
                str(uuid.uuid4()),
                age,
            )
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
