"""The devices service's request and response models (api.py, fleet_api.py), and how a row becomes a view."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.devices.domain import (
    Accessory,
    Action,
    ConditionNote,
    DamageCheck,
    ReturnChannel,
    SerialNumber,
    TabletCondition,
    TabletState,
    WipeMethod,
    allowed_actions,
    damage_check_due,
    loan_status,
)
from shared.datetimes import CalendarDate, OffsetDatetime

STAFF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$"
Reason = Annotated[str | None, Field(default=None, max_length=500, description="Why (kept in the history).")]


# --- Views ---------------------------------------------------------------------------------------------------


class AccessoryView(BaseModel):
    kind: Accessory
    serial_number: str | None = None


class LoanView(BaseModel):
    id: UUID
    tablet_id: UUID
    patient_id: UUID
    agreement_signed_at: datetime
    agreement_witnessed_by: str
    accessories: list[Accessory]
    expected_return_on: date
    loaned_at: datetime
    loaned_by: str
    ended_at: datetime | None
    end_kind: str | None
    return_channel: ReturnChannel | None
    missing_accessories: list[Accessory]
    return_condition: TabletCondition | None = Field(
        description="The tablet's condition as it came back; null: not recorded (or not returned yet)."
    )
    return_condition_note: str | None = Field(description="What is worn or damaged, when the return said.")
    damage_check: DamageCheck | None = Field(
        description="How a damaged return was looked at: checked (confirmed when the tablet was made ready) or "
        "sent_to_repair; null: not yet, or nothing to look at."
    )
    damage_checked_at: datetime | None = Field(description="When that was recorded.")
    damage_checked_by: str | None = Field(description="The staff id of who recorded it.")
    return_status: str | None = Field(description="overdue, due_soon or on_time while the loan is open")
    silent_since: datetime | None = Field(description="Set while a reported silence lasts (tablet.inactive)")
    silence_reason: str | None


class TabletView(BaseModel):
    id: UUID
    serial_number: str
    model: str
    state: TabletState
    registered_at: datetime
    state_changed_at: datetime
    last_seen_at: datetime | None
    last_used_at: datetime | None
    battery_percent: int | None
    app_version: str | None
    allowed_actions: list[Action]
    damage_check_due: bool = Field(
        description="Its last loan came back damaged and nobody has recorded a check since: make_ready asks for "
        '{"checked": true} (checked, and repaired if needed), or send it to repair.'
    )


def loan_view(row: Any, last_seen_at: datetime | None, today: date) -> LoanView:
    open_ = row["ended_at"] is None
    reported = row["inactive_reported_since"]
    silent = open_ and reported is not None and (last_seen_at is None or last_seen_at <= reported)
    return LoanView(
        id=row["id"],
        tablet_id=row["tablet_id"],
        patient_id=row["patient_id"],
        agreement_signed_at=row["agreement_signed_at"],
        agreement_witnessed_by=row["agreement_witnessed_by"],
        accessories=row["accessories"],
        expected_return_on=row["expected_return_on"],
        loaned_at=row["loaned_at"],
        loaned_by=row["loaned_by"],
        ended_at=row["ended_at"],
        end_kind=row["end_kind"],
        return_channel=row["return_channel"],
        missing_accessories=row["missing_accessories"],
        return_condition=row["return_condition"],
        return_condition_note=row["return_condition_note"],
        damage_check=row["damage_check"],
        damage_checked_at=row["damage_checked_at"],
        damage_checked_by=row["damage_checked_by"],
        return_status=loan_status(row["expected_return_on"], today) if open_ else None,
        silent_since=reported if silent else None,
        silence_reason=row["inactive_reason"] if silent else None,
    )


def tablet_view(row: Any) -> TabletView:
    state = TabletState(row["state"])
    return TabletView(
        **{k: row[k] for k in TabletView.model_fields if k in row},
        allowed_actions=allowed_actions(state),
        damage_check_due=damage_check_due(state, row["last_return_damaged_unchecked"]),
    )


# --- Inventory -----------------------------------------------------------------------------------------------


class AccessoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Accessory
    serial_number: SerialNumber | None = None


class TabletRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial_number: SerialNumber = Field(
        description="The manufacturer's serial number; not case-significant, kept and shown in upper case."
    )
    model: str = Field(min_length=1, max_length=80)
    accessories: list[AccessoryIn] = Field(default_factory=list, max_length=5)


class TabletSummary(TabletView):
    loan: LoanSummary | None


class LoanSummary(BaseModel):
    id: UUID
    patient_id: UUID
    loaned_at: datetime
    expected_return_on: date
    return_status: str
    missing_accessories: list[Accessory]
    silent_since: datetime | None
    silence_reason: str | None


TabletSummary.model_rebuild()


class TabletList(BaseModel):
    items: list[TabletSummary]
    count: int


class Transition(BaseModel):
    action: str
    from_state: str
    to_state: str
    at: datetime
    by_staff: str
    reason: str | None


class WipeView(BaseModel):
    method: WipeMethod
    proof: str
    wiped_at: datetime
    wiped_by: str


class TabletDetail(TabletView):
    accessories: list[AccessoryView]
    loan: LoanView | None
    loans: list[LoanView]
    transitions: list[Transition]
    wipes: list[WipeView]


# --- The patient's return receipt ----------------------------------------------------------------------------


class ReceiptTablet(BaseModel):
    id: UUID
    serial_number: str
    model: str


class ReceiptWipe(BaseModel):
    method: WipeMethod
    proof: str = Field(description="The MDM job id or the signed wipe sheet number.")
    wiped_at: datetime
    wiped_by: str = Field(description="The staff id of who recorded the wipe.")
    wiped_by_name: str | None = Field(
        description="Their display name, when the service knows one (from their token, when they signed in to the "
        "fleet page or recorded a wipe); null: print the id."
    )


class LoanReceipt(BaseModel):
    """What the receipt handed to the patient states. The patient is named by the pseudonymous id only: identity
    lives in the inclusion service, so the printed receipt leaves a line for the name, written by hand."""

    loan_id: UUID
    patient_id: UUID = Field(description="The patient's pseudonymous id.")
    tablet: ReceiptTablet
    loaned_at: datetime
    expected_return_on: date
    returned_at: datetime
    return_channel: ReturnChannel = Field(description="Where or how the tablet came back.")
    accessories_handed_over: list[Accessory] = Field(description="What the loan handed over with the tablet.")
    accessories_back: list[Accessory] = Field(description="What of it came back (with the tablet, or since).")
    accessories_missing: list[Accessory] = Field(description="What of it is still missing.")
    return_condition: TabletCondition | None = Field(
        description="The tablet's condition as it came back, as the return recorded it; null: not recorded."
    )
    return_condition_note: str | None = Field(description="What is worn or damaged, when the return said.")
    wipe_status: Literal["done", "pending"] = Field(
        description="done: the tablet was wiped after this return (``wipe``); pending: no wipe recorded yet."
    )
    wipe: ReceiptWipe | None = Field(
        description="The first wipe recorded after this return and before the tablet's next loan: the one that "
        "erased this patient's data (a later one came after the next patient)."
    )
    issued_at: datetime = Field(description="When this receipt was made: the date printed on it.")


# --- Lifecycle steps, loan, return, wipe, loss ---------------------------------------------------------------


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    checked: bool = Field(
        default=False,
        strict=True,
        description="make_ready only: the fleet manager confirms that the tablet, back damaged from its last loan, "
        "was checked and repaired if needed (who and when are recorded on that loan). Required for such a tablet; "
        "changes nothing for another.",
    )


class Agreement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signed_at: OffsetDatetime = Field(description="When the patient signed the loan agreement at the day hospital.")
    witnessed_by: str = Field(pattern=STAFF_PATTERN, description="The staff member who witnessed the signature.")


class LoanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: UUID = Field(description="The patient's pseudonymous id.")
    agreement: Agreement
    accessories: list[Accessory] = Field(description="What was handed over with the tablet.", max_length=5)
    expected_return_on: CalendarDate | None = Field(
        default=None, description="Default: one year, or the treatment's end."
    )
    treatment_ends_on: CalendarDate | None = None


class LoanGranted(BaseModel):
    loan: LoanView
    tablet: TabletView
    device_token: str = Field(description="The tablet's bearer token for the questionnaire service (no password).")
    token_id: str = Field(description="The token's id: what revocation and the tablet.* events refer to.")
    token_expires_at: datetime
    enrolment_url: str = Field(
        description="The tablet's page on the questionnaire service (QUESTIONNAIRE_PUBLIC_URL) with a one-time "
        "enrolment code in its fragment (#enrol=…; the device token itself, #device_token=…, where TABLET_ORIGINS is "
        "unset): opened once on the tablet, it enrols it. A credential until it is used or expires."
    )
    enrolment_qr_svg: str = Field(
        description="That link as a QR code (an SVG document) for the tablet's camera: show it as an image."
    )
    enrolment_expires_at: datetime | None = Field(
        default=None, description="Until when the code in the link can be used, once; null for a token link."
    )


class EnrolmentCode(BaseModel):
    loan_id: UUID
    enrolment_url: str = Field(description="The tablet's page with the new one-time code in its fragment (#enrol=…).")
    enrolment_qr_svg: str = Field(description="That link as a QR code (an SVG document): show it as an image.")
    enrolment_expires_at: datetime = Field(description="Until when the code can be used, once.")


class EnrolmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1, max_length=64, description="The one-time code from the enrolment link (#enrol=…), as made."
    )


class Enrolled(BaseModel):
    device_token: str = Field(description="The tablet's bearer token: keep it, the code is now spent.")
    token_expires_at: datetime


class ReturnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ReturnChannel
    accessories_returned: list[Accessory] = Field(
        description="The checklist: what came back with the tablet, each once, among what the loan handed over.",
        max_length=5,
    )
    returned_at: OffsetDatetime | None = Field(default=None, description="Default: now.")
    condition: TabletCondition | None = Field(
        default=None,
        description="The tablet's condition as it comes back (printed on the receipt, shown at its next loan). "
        "Optional: leave it out when it was not checked.",
    )
    condition_note: ConditionNote | None = Field(
        default=None, description="What is worn or damaged (with condition only)."
    )


class AccessoriesBack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accessories: list[Accessory] = Field(
        min_length=1,
        max_length=5,
        description="What came back after the return, each once, among what the loan handed over; one already "
        "back is a retry and changes nothing.",
    )


class WipeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: WipeMethod
    proof: str = Field(min_length=1, max_length=200, description="The MDM job id or the signed wipe sheet number.")
    wiped_at: OffsetDatetime | None = Field(default=None, description="Default: now.")


class LossReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stolen: bool = Field(default=False, strict=True)  # "yes" is not an answer here: true or false
    reason: Reason


# --- The fleet at a glance, who is looking -------------------------------------------------------------------


class FleetView(BaseModel):
    by_state: dict[str, int]
    open_loans: int
    loans_overdue: int
    loans_due_soon: int
    loans_with_missing_accessories: int
    missing_accessories: int
    silent_tablets: int
    damaged_to_check: int = Field(
        description="Tablets back damaged from their last loan, in hand, that nobody has recorded as checked yet."
    )
    mean_loan_days: float | None = Field(description="Mean length of the loans that ended.")
    utilisation: float | None = Field(description="Share of the available tablet-days on loan over the period.")
    period_days: int
    attention: list[LoanView] = Field(description="Loans overdue or due soon, silent, or with accessories missing.")


class Me(BaseModel):
    staff_id: str
    name: str | None = Field(default=None, description="The display name the token carries (STAFF_TOKEN_NAME_CLAIM)")
    roles: list[str]
    session_expires_in: int | None = Field(
        default=None,
        description="Seconds until this staff token expires: when the page renews it or warns (counted from now, "
        "not from an end time a computer with a wrong clock would misread)",
    )
