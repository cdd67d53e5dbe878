"""The latest plan of each session in a batch, by when each plan was made, not by arrival order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.inclusion import SessionScheduledV1, latest_plans

MADE = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _plan(session_id: uuid.UUID, made: datetime, *, cancelled: bool = False) -> CloudEvent[Any]:
    data = SessionScheduledV1(
        session_id=session_id, patient_id=uuid.uuid4(), scheduled_for=MADE + timedelta(days=3), cancelled=cancelled
    )
    return make_event("session.scheduled", data, source="/tests", time=made)


def test_a_redelivered_older_plan_after_a_newer_one_loses() -> None:
    session = uuid.uuid4()
    newer, older = _plan(session, MADE + timedelta(seconds=1), cancelled=True), _plan(session, MADE)
    [plan] = latest_plans([newer, older])
    assert plan.session.cancelled is True and plan.planned_at == MADE + timedelta(seconds=1)


def test_each_session_keeps_its_own_latest_plan_and_a_tie_goes_to_the_later_event() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    plans = latest_plans([_plan(first, MADE), _plan(second, MADE), _plan(first, MADE, cancelled=True)])
    assert {p.session.session_id: p.session.cancelled for p in plans} == {first: True, second: False}
