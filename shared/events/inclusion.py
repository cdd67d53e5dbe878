"""Events owned by the inclusion service (stream INCLUSION).

The inclusion service is not written yet; the events other services already consume are catalogued
here so that their contract exists before their producer does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import CloudEvent


@dataclass(frozen=True)
class SessionPlan:
    """A session's plan as its consumers store it: the event's payload, and when the plan was made."""

    session: SessionScheduledV1
    planned_at: datetime


def latest_plans(events: Iterable[CloudEvent[Any]]) -> list[SessionPlan]:
    """The latest plan of each session among ``events`` (session.scheduled), by when each was made: a batch
    can hold a redelivered older plan after a newer one. Stores keep a plan only if it is not older than
    theirs (``planned_at``), for the same reason across batches and replicas."""
    latest: dict[UUID, SessionPlan] = {}
    for event in events:
        plan = SessionPlan(event.data, event.time)
        known = latest.get(plan.session.session_id)
        if known is None or plan.planned_at >= known.planned_at:
            latest[plan.session.session_id] = plan
    return list(latest.values())


class SessionScheduledV1(BaseModel):
    """A chemotherapy session was planned (or moved: the same ``session_id`` with a new date).

    A questionnaire is due before each session; the nurses sort alerts by the patient's next one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    session_id: UUID
    patient_id: UUID
    scheduled_for: datetime
    cycle: int | None = Field(default=None, ge=1, le=100)
    cancelled: bool = False
