"""What the devices service does with the events it consumes: know when a questionnaire is next due."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.devices import repository
from shared.events.inclusion import SessionScheduledV1
from shared.messaging.consumer import Consumed


async def on_session_scheduled(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    # The latest plan of a session wins within a batch (events of one session arrive in order).
    latest: dict[UUID, SessionScheduledV1] = {c.event.data.session_id: c.event.data for c in batch}
    await repository.upsert_sessions(
        conn, [(s.session_id, s.patient_id, s.scheduled_for, s.cancelled) for s in latest.values()]
    )
