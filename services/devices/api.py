"""The fleet manager's API (role ``fleet``; ``arc`` and ``nurse`` may read) and the tablet's heartbeat."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from services.devices import repository
from services.devices.domain import (
    Accessory,
    Action,
    HeartbeatReading,
    IllegalTransition,
    ReturnChannel,
    SerialNumber,
    TabletState,
    WipeMethod,
    accessories_outside,
    allowed_actions,
    clock_skew_ok,
    default_expected_return,
    loan_status,
    missing_accessories,
    next_state,
    repeated_accessories,
    utilisation,
)
from services.devices.enrolment import enrolment_url, qr_svg
from services.devices.heartbeats import HeartbeatWriter
from shared.audit import audit_staff, audit_staff_patients
from shared.auth import StaffPrincipal
from shared.datetimes import CalendarDate, OffsetDatetime
from shared.db.outbox import add_event
from shared.events.catalog import make_event
from shared.events.devices import TabletLoanedV1, TabletLostV1, TabletReturnedV1, TabletWipedV1
from shared.http import idempotency
from shared.http.app import Platform, PlatformDep
from shared.http.limits import MAX_OFFSET
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.responses import json_response
from shared.http.routes import RequestOnlyRoute
from shared.http.security import device_principal, require_staff
from shared.revocation import revoke

router = APIRouter(prefix="/v1", tags=["fleet"])

FleetManager = Annotated[StaffPrincipal, Depends(require_staff("fleet"))]
FleetReader = Annotated[StaffPrincipal, Depends(require_staff("fleet", "arc", "nurse"))]
IdempotencyKey = idempotency.OptionalKey

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


def _loan_view(row: Any, last_seen_at: datetime | None, today: date) -> LoanView:
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
        return_status=loan_status(row["expected_return_on"], today) if open_ else None,
        silent_since=reported if silent else None,
        silence_reason=row["inactive_reason"] if silent else None,
    )


def _tablet_view(row: Any) -> TabletView:
    state = TabletState(row["state"])
    return TabletView(
        **{k: row[k] for k in TabletView.model_fields if k in row}, allowed_actions=allowed_actions(state)
    )


# What a step of a tablet or a loan can be refused for besides the malformed or unauthorised: an unknown tablet or
# loan, a step its state does not allow, a value out of range or an Idempotency-Key used for another request.
STEP_PROBLEMS = problem_responses(404, 409, 422)


# --- Commands: one transaction each, replayed to a retry with the same Idempotency-Key -------------------------

Work = Callable[[asyncpg.Connection, datetime], Awaitable[tuple[int, dict[str, Any]]]]
Secrets = Callable[[dict[str, Any]], dict[str, Any]]


def _as_is(body: dict[str, Any]) -> dict[str, Any]:
    return body


async def _command(
    request: Request,
    platform: Platform,
    staff: StaffPrincipal,
    key: str | None,
    work: Work,
    *,
    to_store: Secrets = _as_is,
    to_replay: Secrets = _as_is,
) -> Any:
    """``to_store`` takes secrets out of the response kept for retries; ``to_replay`` puts them back."""
    now = datetime.now(UTC)
    scope = f"{staff.staff_id}:{request.method}:{request.url.path}"
    async with platform.pool.acquire() as conn, conn.transaction():
        if key is not None:
            key = idempotency.check_key(key)
            body_hash = idempotency.request_hash(await request.body())
            stored = await idempotency.claim_key(conn, scope=scope, key=key, body_hash=body_hash)
            if stored is not None:
                # A replay shows the patient's data again (a loan's replay even signs its device token again):
                # it is an access of its own in each patient's trail.
                await audit_staff_patients(
                    conn, staff, "response.replay", f"{request.method} {request.url.path}", _patients_in(stored.body)
                )
                return json_response(to_replay(stored.body), stored.status)
        status, body = await work(conn, now)
        if key is not None:
            await idempotency.remember_response(conn, scope=scope, key=key, status=status, body=to_store(body))
    return json_response(body, status)


def _patients_in(body: Any) -> Iterator[UUID]:
    """Every ``patient_id`` a stored response holds, at any depth."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "patient_id" and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    yield UUID(value)
            else:
                yield from _patients_in(value)
    elif isinstance(body, list):
        for item in body:
            yield from _patients_in(item)


# Clocks of the desk PCs drift a little; beyond this, a date in the future is a typing error.
CLOCK_SLACK = timedelta(minutes=5)


def _not_in_future(moment: datetime | None, now: datetime, what: str, pointer: str) -> datetime:
    if moment is None:
        return now
    if moment > now + CLOCK_SLACK:
        raise Problem(422, f"{what} cannot be recorded in the future.", kind="in-the-future", pointer=pointer)
    return moment


async def _locked_tablet(conn: asyncpg.Connection, tablet_id: UUID) -> Any:
    row = await repository.lock_tablet(conn, tablet_id)
    if row is None:
        raise Problem(404, "There is no tablet with this id.", kind="unknown-tablet")
    return row


async def _move(
    conn: asyncpg.Connection, tablet: Any, action: Action, staff: StaffPrincipal, now: datetime, reason: str | None
) -> TabletState:
    current = TabletState(tablet["state"])
    try:
        target = next_state(current, action)
    except IllegalTransition as exc:
        raise Problem(409, str(exc), kind="illegal-transition", state=current.value, action=action.value) from None
    await repository.record_transition(
        conn,
        tablet["id"],
        action=action.value,
        from_state=current.value,
        to_state=target.value,
        by=staff.staff_id,
        at=now,
        reason=reason,
    )
    return target


async def _publish(conn: asyncpg.Connection, platform: Platform, event_type: str, payload: Any, tablet: UUID) -> None:
    """Through the outbox, in the transaction of the change it announces; the tablet is the event's subject."""
    event = make_event(event_type, payload, source=platform.source, subject=str(tablet))
    await add_event(conn, event, schema=platform.schema)


async def _tablet_body(conn: asyncpg.Connection, tablet_id: UUID) -> dict[str, Any]:
    row = await repository.get_tablet(conn, tablet_id)
    return _tablet_view(row).model_dump(mode="json")


def _each_once(listed: Sequence[Accessory], pointer: str) -> None:
    repeated = repeated_accessories(listed)
    if repeated:
        raise Problem(
            422,
            f"List each accessory once: {', '.join(repeated)} "
            f"{'is' if len(repeated) == 1 else 'are'} listed more than once.",
            kind="duplicate-accessory",
            pointer=pointer,
        )


def _only_lent(listed: Sequence[Accessory], loan: Any, pointer: str) -> None:
    """What comes back with a tablet, or after it, is what its loan handed over (the loan's ``accessories``)."""
    not_lent = accessories_outside(listed, loan["accessories"])
    if not_lent:
        raise Problem(
            422,
            f"This loan did not include {', '.join(not_lent)}: list only what was handed over.",
            kind="accessory-not-lent",
            pointer=pointer,
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


@router.post(
    "/tablets",
    status_code=201,
    response_model=TabletView,
    summary="Register a tablet and its accessories",
    responses=problem_responses(409, 422),
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def register_tablet(
    body: TabletRegistration, request: Request, staff: FleetManager, platform: PlatformDep, key: IdempotencyKey = None
) -> Any:
    _each_once([a.kind for a in body.accessories], "/accessories")

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        tablet_id = uuid.uuid4()
        try:
            await repository.insert_tablet(
                conn,
                tablet_id=tablet_id,
                serial_number=body.serial_number,
                model=body.model,
                accessories=[(a.kind.value, a.serial_number) for a in body.accessories],
                by=staff.staff_id,
                at=now,
            )
        except repository.DuplicateSerial:
            # In its canonical form (upper case): the serial number as kept, whatever case it was typed in.
            raise Problem(
                409,
                f"A tablet with serial number {body.serial_number} is already registered "
                "(serial numbers are not case-significant).",
                kind="duplicate-serial",
                serial_number=body.serial_number,
            ) from None
        await audit_staff(conn, staff, "tablet.register", f"tablet/{tablet_id}")
        return 201, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


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


@router.get("/tablets", response_model=TabletList, summary="The fleet, tablet by tablet, with the open loan")
async def list_tablets(
    staff: FleetReader,
    platform: PlatformDep,
    state: Annotated[list[TabletState] | None, Query()] = None,
    serial: Annotated[
        SerialNumber | None,
        Query(description="Only the tablet with this serial number (in either case): the one a technician holds."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    today = datetime.now(UTC).date()
    async with platform.pool.acquire() as conn, conn.transaction():
        rows = await repository.list_tablets(
            conn, states=[s.value for s in state] if state else None, serial=serial, limit=limit, offset=offset
        )
        await audit_staff_patients(conn, staff, "tablets.list", "tablets", (r["patient_id"] for r in rows))
    items = []
    for row in rows:
        loan = None
        if row["loan_id"] is not None:
            reported = row["inactive_reported_since"]
            silent = reported is not None and (row["last_seen_at"] is None or row["last_seen_at"] <= reported)
            loan = LoanSummary(
                id=row["loan_id"],
                patient_id=row["patient_id"],
                loaned_at=row["loaned_at"],
                expected_return_on=row["expected_return_on"],
                return_status=loan_status(row["expected_return_on"], today),
                missing_accessories=row["missing_accessories"],
                silent_since=reported if silent else None,
                silence_reason=row["inactive_reason"] if silent else None,
            )
        items.append(TabletSummary(**_tablet_view(row).model_dump(), loan=loan))
    return TabletList(items=items, count=len(items))


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


@router.get(
    "/tablets/{tablet_id}",
    response_model=TabletDetail,
    summary="One tablet and its whole history",
    responses=problem_responses(404),
)
async def get_tablet(tablet_id: UUID, staff: FleetReader, platform: PlatformDep) -> Any:
    today = datetime.now(UTC).date()
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.get_tablet(conn, tablet_id)
        if row is None:
            raise Problem(404, "There is no tablet with this id.", kind="unknown-tablet")
        found = await repository.history(conn, tablet_id)
        loans = [_loan_view(loan, row["last_seen_at"], today) for loan in found["loans"]]
        current = next((loan for loan in loans if loan.ended_at is None), None)
        # Every borrower shown, the earlier ones too: each patient's trail must show who saw their loan.
        await audit_staff_patients(
            conn, staff, "tablet.read", f"tablet/{tablet_id}", (loan.patient_id for loan in loans)
        )
    return TabletDetail(
        **_tablet_view(row).model_dump(),
        accessories=[AccessoryView(**dict(a)) for a in found["accessories"]],
        loan=current,
        loans=loans,
        transitions=[Transition(**dict(t)) for t in found["transitions"]],
        wipes=[WipeView(**dict(w)) for w in found["wipes"]],
    )


# --- Lifecycle steps without their own form ----------------------------------------------------------------------

SIMPLE_ACTIONS = frozenset(
    {
        Action.PROVISION,
        Action.REQUEST_WIPE,
        Action.MAKE_READY,
        Action.RECOVER,
        Action.SEND_TO_REPAIR,
        Action.BACK_FROM_REPAIR,
        Action.RETIRE,
    }
)


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


@router.post(
    "/tablets/{tablet_id}/actions/{action}",
    response_model=TabletView,
    summary="Move a tablet one step",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def move_tablet(
    tablet_id: UUID,
    action: Action,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    body: StepRequest | None = None,
    key: IdempotencyKey = None,
) -> Any:
    if action not in SIMPLE_ACTIONS:
        raise Problem(
            404,
            f"'{action.value}' has its own endpoint: POST /v1/tablets/{{id}}/"
            + {"loan": "loan", "return": "return", "record_wipe": "wipe"}.get(action.value, "lost"),
            kind="use-dedicated-endpoint",
        )

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        tablet = await _locked_tablet(conn, tablet_id)
        await _move(conn, tablet, action, staff, now, body.reason if body else None)
        await audit_staff(conn, staff, f"tablet.{action.value}", f"tablet/{tablet_id}")
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


# --- Loan, return, wipe, loss ----------------------------------------------------------------------------------


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
        description="The tablet's page on the questionnaire service (QUESTIONNAIRE_PUBLIC_URL) with the device token "
        "in its fragment: opened once on the tablet, it enrols it. A credential, like the token."
    )
    enrolment_qr_svg: str = Field(
        description="That link as a QR code (an SVG document) for the tablet's camera: show it as an image."
    )


def _enrolment(platform: Platform, token: str) -> dict[str, str]:
    url = enrolment_url(str(getattr(platform.settings, "questionnaire_public_url", "")), token)
    return {"enrolment_url": url, "enrolment_qr_svg": qr_svg(url)}


# What holds the device token in a loan's answer: never kept for a retry, made again for it.
_TOKEN_FIELDS = frozenset({"device_token", "enrolment_url", "enrolment_qr_svg"})


# The loan agreement is signed at the day hospital and entered soon after; older is a wrong date.
AGREEMENT_MAX_AGE = timedelta(days=30)
# Readings queued while a tablet was offline arrive late, but not a year late.
HEARTBEAT_MAX_AGE = timedelta(days=366)

# A device token outlives its loan's expected end by a margin: a late return must not lock a patient out;
# returning the tablet revokes it at once.
TOKEN_MARGIN = timedelta(days=60)


@router.post(
    "/tablets/{tablet_id}/loan",
    status_code=201,
    response_model=LoanGranted,
    summary="Loan a tablet",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def loan_tablet(
    tablet_id: UUID,
    body: LoanRequest,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    key: IdempotencyKey = None,
) -> Any:
    _each_once(body.accessories, "/accessories")

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        today = now.date()
        _not_in_future(body.agreement.signed_at, now, "A signature", "/agreement/signed_at")
        if body.agreement.signed_at < now - AGREEMENT_MAX_AGE:
            raise Problem(
                422,
                "The agreement was signed more than 30 days ago: check the date, or have a new one signed.",
                kind="agreement-too-old",
                pointer="/agreement/signed_at",
            )
        try:
            expected = body.expected_return_on or default_expected_return(today, body.treatment_ends_on)
        except ValueError as exc:
            raise Problem(422, str(exc), kind="treatment-ends-before-loan", pointer="/treatment_ends_on") from None
        if expected <= today:
            raise Problem(
                422,
                "The expected return date must be after today.",
                kind="expected-return-out-of-range",
                pointer="/expected_return_on",
            )
        if expected > default_expected_return(today):
            # The device token lives until then (and a margin): a typing error must not make it live for ages.
            raise Problem(
                422,
                "The expected return date can be at most a year ahead, the loan's longest; lend the tablet again "
                "when it is over.",
                kind="expected-return-out-of-range",
                pointer="/expected_return_on",
            )
        tablet = await _locked_tablet(conn, tablet_id)
        registered = [r["kind"] for r in await repository.registered_accessories(conn, tablet_id)]
        unknown = accessories_outside(body.accessories, registered)
        if unknown:
            raise Problem(
                422,
                f"This tablet has no registered {', '.join(unknown)}: register accessories with the tablet first.",
                kind="unknown-accessory",
                pointer="/accessories",
            )
        await _move(conn, tablet, Action.LOAN, staff, now, None)
        loan_id = uuid.uuid4()
        expires = int((datetime.combine(expected, datetime.min.time(), UTC) + TOKEN_MARGIN).timestamp())
        # Issued at the loan's second: a retry signs the very same token again from the stored loan.
        token = platform.tokens.issue_device_token(
            body.patient_id, str(tablet_id), expires_at=expires, issued_at=int(now.timestamp())
        )
        principal = platform.tokens.verify(token)
        accessories = sorted(a.value for a in body.accessories)
        await repository.insert_loan(
            conn,
            loan_id=loan_id,
            tablet_id=tablet_id,
            patient_id=body.patient_id,
            token_id=principal.token_id,
            agreement_signed_at=body.agreement.signed_at,
            agreement_witnessed_by=body.agreement.witnessed_by,
            accessories=accessories,
            expected_return_on=expected,
            at=now,
            by=staff.staff_id,
        )
        loaned = TabletLoanedV1(
            loan_id=loan_id,
            tablet_id=tablet_id,
            patient_id=body.patient_id,
            token_id=principal.token_id,
            accessories=tuple(accessories),
            expected_return_on=expected,
            loaned_at=now,
            loaned_by=staff.staff_id,
        )
        await _publish(conn, platform, "tablet.loaned", loaned, tablet_id)
        await audit_staff(conn, staff, "tablet.loan", f"tablet/{tablet_id}", body.patient_id)
        loan = await repository.open_loan(conn, tablet_id)
        granted = LoanGranted(
            loan=_loan_view(loan, tablet["last_seen_at"], today),
            tablet=_tablet_view(await repository.get_tablet(conn, tablet_id)),
            device_token=token,
            token_id=principal.token_id,
            token_expires_at=datetime.fromtimestamp(expires, UTC),
            **_enrolment(platform, token),
        )
        return 201, granted.model_dump(mode="json")

    # The device token is a credential: the response kept for a retry holds its id, never the token (nor the
    # enrolment link and QR code that carry it), and a retry gets the same token (same id, expiry and issue time)
    # signed again: the very same token, and so the same enrolment.
    def without_token(granted: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in granted.items() if k not in _TOKEN_FIELDS}

    def with_token(stored: dict[str, Any]) -> dict[str, Any]:
        loan = stored["loan"]
        expires = int(datetime.fromisoformat(stored["token_expires_at"]).timestamp())
        token = platform.tokens.issue_device_token(
            UUID(loan["patient_id"]),
            loan["tablet_id"],
            token_id=stored["token_id"],
            expires_at=expires,
            issued_at=int(datetime.fromisoformat(loan["loaned_at"]).timestamp()),
        )
        return {**stored, "device_token": token, **_enrolment(platform, token)}

    return await _command(request, platform, staff, key, work, to_store=without_token, to_replay=with_token)


class ReturnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ReturnChannel
    accessories_returned: list[Accessory] = Field(
        description="The checklist: what came back with the tablet, each once, among what the loan handed over.",
        max_length=5,
    )
    returned_at: OffsetDatetime | None = Field(default=None, description="Default: now.")


@router.post(
    "/tablets/{tablet_id}/return",
    response_model=LoanView,
    summary="Record a return; revokes the token",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def return_tablet(
    tablet_id: UUID,
    body: ReturnRequest,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    key: IdempotencyKey = None,
) -> Any:
    _each_once(body.accessories_returned, "/accessories_returned")

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        returned_at = _not_in_future(body.returned_at, now, "A return", "/returned_at")
        tablet = await _locked_tablet(conn, tablet_id)
        await _move(conn, tablet, Action.RETURN, staff, now, None)
        loan = await repository.open_loan(conn, tablet_id)
        assert loan is not None  # a loaned tablet has its open loan (same transaction that moved it)
        if returned_at < loan["loaned_at"]:
            raise Problem(
                422,
                "A tablet cannot come back before it was loaned.",
                kind="return-before-loan",
                pointer="/returned_at",
            )
        _only_lent(body.accessories_returned, loan, "/accessories_returned")
        missing = sorted(missing_accessories(loan["accessories"], body.accessories_returned))
        await repository.end_loan(
            conn, loan["id"], kind="returned", at=returned_at, channel=body.channel, missing=missing
        )
        await revoke(conn, [loan["token_id"]], "tablet.returned")
        event = TabletReturnedV1(
            loan_id=loan["id"],
            tablet_id=tablet_id,
            patient_id=loan["patient_id"],
            token_id=loan["token_id"],
            channel=body.channel.value,
            missing_accessories=tuple(missing),
            returned_at=returned_at,
            recorded_by=staff.staff_id,
        )
        await _publish(conn, platform, "tablet.returned", event, tablet_id)
        await audit_staff(conn, staff, "tablet.return", f"tablet/{tablet_id}", loan["patient_id"])
        ended = await repository.get_loan(conn, loan["id"])
        return 200, _loan_view(ended, tablet["last_seen_at"], now.date()).model_dump(mode="json")

    return await _command(request, platform, staff, key, work)


class AccessoriesBack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accessories: list[Accessory] = Field(
        min_length=1,
        max_length=5,
        description="What came back after the return, each once, among what the loan handed over; one already "
        "back is a retry and changes nothing.",
    )


@router.post(
    "/loans/{loan_id}/accessories",
    response_model=LoanView,
    summary="Missing accessories came back",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def accessories_back(
    loan_id: UUID,
    body: AccessoriesBack,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    key: IdempotencyKey = None,
) -> Any:
    _each_once(body.accessories, "/accessories")

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        lent = await repository.get_loan(conn, loan_id)
        if lent is None:
            raise Problem(404, "There is no loan with this id.", kind="unknown-loan")
        if lent["ended_at"] is None:
            raise Problem(
                409,
                "This loan is still open: tick the accessories that come back on the tablet's return checklist.",
                kind="loan-still-open",
            )
        # Lent and already back (at the return, or by an earlier call) is a retry: the loan stays as it is.
        _only_lent(body.accessories, lent, "/accessories")
        loan = await repository.accessories_came_back(conn, loan_id, [a.value for a in body.accessories])
        assert loan is not None  # read above, in this transaction; loans are never deleted
        await audit_staff(conn, staff, "loan.accessories", f"loan/{loan_id}", loan["patient_id"])
        return 200, _loan_view(loan, None, now.date()).model_dump(mode="json")

    return await _command(request, platform, staff, key, work)


class WipeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: WipeMethod
    proof: str = Field(min_length=1, max_length=200, description="The MDM job id or the signed wipe sheet number.")
    wiped_at: OffsetDatetime | None = Field(default=None, description="Default: now.")


@router.post(
    "/tablets/{tablet_id}/wipe",
    response_model=TabletView,
    summary="Record a wipe with its proof",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def wipe_tablet(
    tablet_id: UUID,
    body: WipeRequest,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    key: IdempotencyKey = None,
) -> Any:
    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        wiped_at = _not_in_future(body.wiped_at, now, "A wipe", "/wiped_at")
        tablet = await _locked_tablet(conn, tablet_id)
        await _move(conn, tablet, Action.RECORD_WIPE, staff, now, f"{body.method.value}: {body.proof}")
        # A wipe before the tablet came back leaves what was put on it since (the last patient's data).
        since = await repository.back_in_hand_since(conn, tablet_id)
        if since is not None and wiped_at < since:
            raise Problem(
                422,
                f"A wipe cannot be dated before the tablet came back ({since.isoformat(timespec='seconds')}): one "
                "done earlier does not clear what was on it since. Check the date, or wipe it again.",
                kind="wipe-before-return",
                pointer="/wiped_at",
                not_before=since.isoformat(),
            )
        await repository.insert_wipe(
            conn, tablet_id, method=body.method.value, proof=body.proof, at=wiped_at, by=staff.staff_id
        )
        event = TabletWipedV1(tablet_id=tablet_id, method=body.method.value, wiped_at=wiped_at, wiped_by=staff.staff_id)
        await _publish(conn, platform, "tablet.wiped", event, tablet_id)
        await audit_staff(conn, staff, "tablet.wipe", f"tablet/{tablet_id}")
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


class LossReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stolen: bool = Field(default=False, strict=True)  # "yes" is not an answer here: true or false
    reason: Reason


@router.post(
    "/tablets/{tablet_id}/lost",
    response_model=TabletView,
    summary="Report lost or stolen; revokes the token",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def report_lost(
    tablet_id: UUID,
    body: LossReport,
    request: Request,
    staff: FleetManager,
    platform: PlatformDep,
    key: IdempotencyKey = None,
) -> Any:
    action = Action.REPORT_STOLEN if body.stolen else Action.REPORT_LOST

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        tablet = await _locked_tablet(conn, tablet_id)
        was_loaned = tablet["state"] == TabletState.LOANED
        await _move(conn, tablet, action, staff, now, body.reason)
        loan = await repository.open_loan(conn, tablet_id) if was_loaned else None
        if loan is not None:
            kind = "stolen" if body.stolen else "lost"
            await repository.end_loan(conn, loan["id"], kind=kind, at=now, missing=loan["accessories"])
            await revoke(conn, [loan["token_id"]], f"tablet.{kind}")
        event = TabletLostV1(
            tablet_id=tablet_id,
            stolen=body.stolen,
            loan_id=loan["id"] if loan else None,
            patient_id=loan["patient_id"] if loan else None,
            token_id=loan["token_id"] if loan else None,
            reported_at=now,
            reported_by=staff.staff_id,
        )
        await _publish(conn, platform, "tablet.lost", event, tablet_id)
        await audit_staff(
            conn, staff, f"tablet.{action.value}", f"tablet/{tablet_id}", loan["patient_id"] if loan else None
        )
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


# --- The fleet at a glance -------------------------------------------------------------------------------------


class FleetView(BaseModel):
    by_state: dict[str, int]
    open_loans: int
    loans_overdue: int
    loans_due_soon: int
    loans_with_missing_accessories: int
    missing_accessories: int
    silent_tablets: int
    mean_loan_days: float | None = Field(description="Mean length of the loans that ended.")
    utilisation: float | None = Field(description="Share of the available tablet-days on loan over the period.")
    period_days: int
    attention: list[LoanView] = Field(description="Loans overdue or due soon, silent, or with accessories missing.")


@router.get("/fleet", response_model=FleetView, summary="The fleet at a glance: states, due loans, silent tablets")
async def fleet(
    staff: FleetReader,
    platform: PlatformDep,
    period_days: Annotated[int, Query(ge=1, le=730)] = 90,
    due_soon_days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> Any:
    today = datetime.now(UTC).date()
    async with platform.pool.acquire() as conn, conn.transaction():
        figures = await repository.fleet_figures(conn, today, due_soon_days, period_days)
        attention = await repository.loans_needing_attention(conn, today, due_soon_days)
        await audit_staff_patients(conn, staff, "fleet.read", "fleet", (row["patient_id"] for row in attention))
    loans, usage = figures["loans"], figures["usage"]
    # A tablet retired during the period still counts its loaned days: cap at the fleet's capacity.
    loaned_days, available_days = float(usage["loaned_days"]), float(usage["available_days"])
    mean = loans["mean_ended_loan_days"]
    return FleetView(
        by_state={state.value: figures["states"].get(state.value, 0) for state in TabletState},
        open_loans=loans["open"],
        loans_overdue=loans["overdue"],
        loans_due_soon=loans["due_soon"],
        loans_with_missing_accessories=loans["with_missing_accessories"],
        missing_accessories=loans["missing_accessories"],
        silent_tablets=loans["silent"],
        mean_loan_days=round(float(mean), 1) if mean is not None else None,
        utilisation=utilisation(min(loaned_days, available_days), available_days),
        period_days=period_days,
        attention=[_loan_view(row, row["last_seen_at"], today) for row in attention],
    )


class Me(BaseModel):
    staff_id: str
    name: str | None = Field(default=None, description="The display name the token carries (STAFF_TOKEN_NAME_CLAIM)")
    roles: list[str]
    session_expires_in: int | None = Field(
        default=None,
        description="Seconds until this staff token expires: when the page renews it or warns (counted from now, "
        "not from an end time a computer with a wrong clock would misread)",
    )


@router.get(
    "/me",
    response_model=Me,
    summary="Who this fleet manager is: the fleet page's sign-in (403 for staff without the fleet role)",
)
async def me(staff: FleetManager) -> Any:
    ends = staff.session_ends_at
    return Me(
        staff_id=staff.staff_id,
        name=staff.name,
        roles=sorted(staff.roles),
        session_expires_in=None if ends is None else max(0, ends - int(time.time())),
    )


# --- The tablet's heartbeat --------------------------------------------------------------------------------------


# The highest-volume endpoint: it reads its own body and token instead of going through FastAPI's
# dependency and body machinery (half of its CPU when measured), and it is matched before the fleet routes.
heartbeat_router = APIRouter(prefix="/v1", tags=["tablet"], route_class=RequestOnlyRoute)

_NOT_A_FLEET_TABLET = "This device token does not name a tablet of the fleet."
_LOAN_ENDED = "This tablet's loan has ended: its token no longer works. Bring the tablet back to the day hospital."


@heartbeat_router.post(
    "/heartbeats",
    status_code=204,
    summary="The tablet is on (device token); cheap and idempotent",
    # It reads its token and body itself: FastAPI sees neither.
    responses=problem_responses(401, 403, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": HeartbeatReading.model_json_schema()}},
        }
    },
)
async def heartbeat(request: Request) -> Response:
    platform: Platform = request.state.platform
    device = await device_principal(request)
    try:
        reading = HeartbeatReading.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    now = datetime.now(UTC)
    for name, moment in (("sent_at", reading.sent_at), ("last_used_at", reading.last_used_at)):
        # A wrong clock's future would make the tablet look alive (and used) for days, or for ever.
        if moment is not None and not clock_skew_ok(moment, now):
            raise Problem(
                422,
                f"{name} is more than a day ahead of the server's clock: check the tablet's clock.",
                pointer=f"/{name}",
            )
        if moment is not None and moment < now - HEARTBEAT_MAX_AGE:
            raise Problem(422, f"{name} is more than a year ago: check the tablet's clock.", pointer=f"/{name}")
    try:
        tablet_id = UUID(device.device_id)
    except ValueError:
        raise Problem(403, _NOT_A_FLEET_TABLET, kind="not-a-fleet-tablet") from None
    writer: HeartbeatWriter = platform.extras["heartbeats"]
    recorded = await writer.submit(
        repository.HeartbeatRow(
            tablet_id=tablet_id,
            token_id=device.token_id,
            sent_at=reading.sent_at,
            received_at=now,
            battery_percent=reading.battery_percent,
            app_version=reading.app_version,
            last_used_at=reading.last_used_at,
        )
    )
    if not recorded:
        raise Problem(401, _LOAN_ENDED, kind="invalid-token", headers={"WWW-Authenticate": 'Bearer realm="oncofollow"'})
    return Response(status_code=204)
