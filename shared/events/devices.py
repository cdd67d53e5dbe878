"""Events owned by the devices service (stream TABLETS): the loaned tablets' life.

Payloads carry pseudonymous ids and codes only. ``token_id`` is the id (``jti``) of the device token a
loan issued: services that accept device tokens revoke it when the loan ends.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

Accessory = Literal["charger", "cable", "case", "sim", "manual"]
ReturnChannel = Literal["day_hospital", "post", "collected"]
WipeMethod = Literal["factory_reset", "mdm_remote_wipe", "reimaged"]
SilenceReason = Literal["long_silence", "questionnaire_due"]


class TabletLoanedV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: UUID
    tablet_id: UUID
    patient_id: UUID
    token_id: str
    accessories: tuple[Accessory, ...]
    expected_return_on: date
    loaned_at: datetime
    loaned_by: str


class TabletReturnedV1(BaseModel):
    """The loan ended with the tablet back: its device token is revoked."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: UUID
    tablet_id: UUID
    patient_id: UUID
    token_id: str
    channel: ReturnChannel
    missing_accessories: tuple[Accessory, ...]
    returned_at: datetime
    recorded_by: str


class TabletLostV1(BaseModel):
    """A tablet was reported lost or stolen; if it was on loan, the loan's device token is revoked."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tablet_id: UUID
    stolen: bool
    loan_id: UUID | None = None
    patient_id: UUID | None = None
    token_id: str | None = None
    reported_at: datetime
    reported_by: str


class TabletWipedV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tablet_id: UUID
    method: WipeMethod
    wiped_at: datetime
    wiped_by: str


class TabletInactiveV1(BaseModel):
    """A loaned tablet has been silent: once per silence (a heartbeat starts a new one)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tablet_id: UUID
    loan_id: UUID
    patient_id: UUID
    reason: SilenceReason
    silent_since: datetime
    last_seen_at: datetime | None = None
    next_questionnaire_due: datetime | None = None
    detected_at: datetime
