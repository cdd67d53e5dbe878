"""What the devices service does with the events it consumes: know when a questionnaire is next due."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.devices import repository
from shared.events.inclusion import latest_plans
from shared.messaging.consumer import Consumed


async def on_session_scheduled(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    await repository.upsert_sessions(conn, latest_plans(c.event for c in batch))
