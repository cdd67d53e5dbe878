"""Events owned by the inclusion service (stream INCLUSION).

The inclusion service is not written yet; the events other services already consume are catalogued
here so that their contract exists before their producer does.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


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
