"""The fleet manager's API for the tablets and their loans (role ``fleet``; ``arc`` and ``nurse`` may read): the
inventory, the lifecycle steps, loans, returns, wipes and losses. Their models are in schemas.py."""

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

from services.devices import repository
from services.devices.domain import (
    Accessory,
    Action,
    DamageNotChecked,
    IllegalTransition,
    SerialNumber,
    TabletState,
    accessories_outside,
    checked_refusal,
    condition_refusal,
    damage_check,
    default_expected_return,
    loan_status,
    missing_accessories,
    next_state,
    repeated_accessories,
    wipe_after_return,
)
from services.devices.enrolment import (
    CODE_VALIDITY,
    Exchange,
    StoredCode,
    canonical_code,
    code_hash,
    code_url,
    enrolment_url,
    exchange,
    key_hash,
    new_code,
    qr_svg,
)
from services.devices.schemas import (
    AccessoriesBack,
    AccessoryView,
    Enrolled,
    EnrolmentCode,
    EnrolmentRequest,
    LoanGranted,
    LoanReceipt,
    LoanRequest,
    LoanSummary,
    LoanView,
    LossReport,
    ReceiptTablet,
    ReceiptWipe,
    ReturnRequest,
    StepRequest,
    TabletDetail,
    TabletList,
    TabletRegistration,
    TabletSummary,
    TabletView,
    Transition,
    WipeRequest,
    WipeView,
    loan_view,
    tablet_view,
)
from shared.audit import audit_staff, audit_staff_patients, record_access
from shared.auth import StaffPrincipal
from shared.db.outbox import add_event
from shared.db.staff import remember_staff
from shared.events.catalog import make_event
from shared.events.devices import TabletLoanedV1, TabletLostV1, TabletReturnedV1, TabletWipedV1
from shared.http import idempotency
from shared.http.app import NowDep, Platform, PlatformDep
from shared.http.limits import MAX_OFFSET
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.responses import json_response
from shared.http.security import require_staff
from shared.revocation import revoke

router = APIRouter(prefix="/v1", tags=["fleet"])

FleetManager = Annotated[StaffPrincipal, Depends(require_staff("fleet"))]
FleetReader = Annotated[StaffPrincipal, Depends(require_staff("fleet", "arc", "nurse"))]
IdempotencyKey = idempotency.OptionalKey
# The tablet's own route: no token yet (it is what the tablet comes for), so no role.
enrolment_router = APIRouter(prefix="/v1", tags=["tablet"])


# What a step of a tablet or a loan can be refused for besides the malformed or unauthorised: an unknown tablet or
# loan, a step its state does not allow, a value out of range or an Idempotency-Key used for another request.
STEP_PROBLEMS = problem_responses(404, 409, 422)


# --- Commands: one transaction each, replayed to a retry with the same Idempotency-Key -------------------------

Work = Callable[[asyncpg.Connection, datetime], Awaitable[tuple[int, dict[str, Any]]]]
Secrets = Callable[[dict[str, Any]], dict[str, Any]]
Replay = Callable[[asyncpg.Connection, datetime, dict[str, Any]], Awaitable[dict[str, Any]]]


def _as_is(body: dict[str, Any]) -> dict[str, Any]:
    return body


async def _replay_as_is(conn: asyncpg.Connection, now: datetime, body: dict[str, Any]) -> dict[str, Any]:
    return body


async def _command(
    request: Request,
    platform: Platform,
    staff: StaffPrincipal,
    key: str | None,
    work: Work,
    *,
    to_store: Secrets = _as_is,
    to_replay: Replay = _replay_as_is,
) -> Any:
    """``to_store`` takes secrets out of the response kept for retries; ``to_replay`` puts them back (in the
    transaction of the retry: a one-time enrolment code cannot be shown again, so a retry gets a new one)."""
    now = platform.clock()
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
                return json_response(await to_replay(conn, now, stored.body), stored.status)
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


async def _publish(
    conn: asyncpg.Connection, platform: Platform, event_type: str, payload: Any, tablet: UUID, now: datetime
) -> None:
    """Through the outbox, in the transaction of the change it announces, dated as that change; the tablet is the
    event's subject."""
    event = make_event(event_type, payload, source=platform.source, time=now, subject=str(tablet))
    await add_event(conn, event, schema=platform.schema)


async def _tablet_body(conn: asyncpg.Connection, tablet_id: UUID) -> dict[str, Any]:
    row = await repository.get_tablet(conn, tablet_id)
    return tablet_view(row).model_dump(mode="json")


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


@router.get("/tablets", response_model=TabletList, summary="The fleet, tablet by tablet, with the open loan")
async def list_tablets(
    staff: FleetReader,
    platform: PlatformDep,
    now: NowDep,
    state: Annotated[list[TabletState] | None, Query()] = None,
    serial: Annotated[
        SerialNumber | None,
        Query(description="Only the tablet with this serial number (in either case): the one a technician holds."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    today = now.date()
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
        items.append(TabletSummary(**tablet_view(row).model_dump(), loan=loan))
    return TabletList(items=items, count=len(items))


@router.get(
    "/tablets/{tablet_id}",
    response_model=TabletDetail,
    summary="One tablet and its whole history",
    responses=problem_responses(404),
)
async def get_tablet(tablet_id: UUID, staff: FleetReader, platform: PlatformDep, now: NowDep) -> Any:
    today = now.date()
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.get_tablet(conn, tablet_id)
        if row is None:
            raise Problem(404, "There is no tablet with this id.", kind="unknown-tablet")
        found = await repository.history(conn, tablet_id)
        loans = [loan_view(loan, row["last_seen_at"], today) for loan in found["loans"]]
        current = next((loan for loan in loans if loan.ended_at is None), None)
        # Every borrower shown, the earlier ones too: each patient's trail must show who saw their loan.
        await audit_staff_patients(
            conn, staff, "tablet.read", f"tablet/{tablet_id}", (loan.patient_id for loan in loans)
        )
    return TabletDetail(
        **tablet_view(row).model_dump(),
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

    confirmed = body is not None and body.checked
    refused = checked_refusal(action, confirmed)
    if refused is not None:
        raise Problem(422, refused, kind="checked-without-make-ready", pointer="/checked")

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        tablet = await _locked_tablet(conn, tablet_id)
        await _move(conn, tablet, action, staff, now, body.reason if body else None)
        try:
            check = damage_check(
                TabletState(tablet["state"]),
                action,
                last_return_damaged_unchecked=tablet["last_return_damaged_unchecked"],
                confirmed=confirmed,
            )
        except DamageNotChecked as exc:
            # Raised inside the transaction: the step recorded above is undone with it.
            raise Problem(409, str(exc), kind="damage-not-checked", state=tablet["state"]) from None
        if check is not None:
            await repository.record_damage_check(conn, tablet_id, how=check.value, by=staff.staff_id, at=now)
            await audit_staff(conn, staff, f"tablet.damage_{check.value}", f"tablet/{tablet_id}")
        await audit_staff(conn, staff, f"tablet.{action.value}", f"tablet/{tablet_id}")
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


# --- Loan, return, wipe, loss ----------------------------------------------------------------------------------


def _codes_on(platform: Platform) -> bool:
    """One-time codes need the tablet's page to call this service from its own origin (CORS, ``TABLET_ORIGINS``),
    as its heartbeats do; without, the link carries the token itself, as before codes existed."""
    return bool(getattr(platform.settings, "tablet_origins", ()))


def _questionnaire_url(platform: Platform) -> str:
    return str(getattr(platform.settings, "questionnaire_public_url", ""))


def _token_link(platform: Platform, token: str) -> dict[str, Any]:
    """The enrolment link and QR code that carry the device token itself (``#device_token=``): no code, no expiry."""
    url = enrolment_url(_questionnaire_url(platform), token)
    return {"enrolment_url": url, "enrolment_qr_svg": qr_svg(url), "enrolment_expires_at": None}


async def _enrolment(
    conn: asyncpg.Connection, platform: Platform, loan_id: UUID, token: str, now: datetime, by: str
) -> dict[str, Any]:
    """The loan's enrolment link and QR code: with a new one-time code (the loan's last one stops working), or with
    the token where codes are off."""
    if not _codes_on(platform):
        return _token_link(platform, token)
    code = new_code()
    expires = now + CODE_VALIDITY
    await repository.put_enrolment_code(conn, loan_id, code_hash=code_hash(code), at=now, by=by, expires_at=expires)
    url = code_url(_questionnaire_url(platform), code)
    return {"enrolment_url": url, "enrolment_qr_svg": qr_svg(url), "enrolment_expires_at": expires.isoformat()}


# What holds the device token or an enrolment code in a loan's answer: never kept for a retry, made again for it.
_TOKEN_FIELDS = frozenset({"device_token", "enrolment_url", "enrolment_qr_svg", "enrolment_expires_at"})


def _token_expiry(expected_return_on: date) -> int:
    return int((datetime.combine(expected_return_on, datetime.min.time(), UTC) + TOKEN_MARGIN).timestamp())


def _token_issued_at(loaned_at: datetime) -> int:
    """A loan's device token is issued at the loan's second, so that signing it again (a retry, an enrolment) makes
    the very same token. The loan is dated by the service's clock, the token is checked by the real time, which
    refuses one issued in its future: never later than the real time, for a service clock set ahead (a test's)."""
    return min(int(loaned_at.timestamp()), int(time.time()))


def _loan_token(platform: Platform, loan: Any) -> str:
    """The loan's device token signed again: same id, expiry and issue time, so the very same token."""
    return platform.tokens.issue_device_token(
        loan["patient_id"],
        str(loan["tablet_id"]),
        token_id=loan["token_id"],
        expires_at=_token_expiry(loan["expected_return_on"]),
        issued_at=_token_issued_at(loan["loaned_at"]),
    )


# The loan agreement is signed at the day hospital and entered soon after; older is a wrong date.
AGREEMENT_MAX_AGE = timedelta(days=30)

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
        expires = _token_expiry(expected)
        # Issued at the loan's second: a retry signs the very same token again from the stored loan.
        token = platform.tokens.issue_device_token(
            body.patient_id, str(tablet_id), expires_at=expires, issued_at=_token_issued_at(now)
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
        await _publish(conn, platform, "tablet.loaned", loaned, tablet_id, now)
        await audit_staff(conn, staff, "tablet.loan", f"tablet/{tablet_id}", body.patient_id)
        loan = await repository.open_loan(conn, tablet_id)
        granted = LoanGranted(
            loan=loan_view(loan, tablet["last_seen_at"], today),
            tablet=tablet_view(await repository.get_tablet(conn, tablet_id)),
            device_token=token,
            token_id=principal.token_id,
            token_expires_at=datetime.fromtimestamp(expires, UTC),
            **await _enrolment(conn, platform, loan_id, token, now, staff.staff_id),
        )
        return 201, granted.model_dump(mode="json")

    # The device token is a credential: the response kept for a retry holds its id, never the token (nor the
    # enrolment link and QR code), and a retry gets the same token (same id, expiry and issue time) signed again,
    # and a new enrolment code (the lost answer's code, which nobody saw, stops working).
    def without_token(granted: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in granted.items() if k not in _TOKEN_FIELDS}

    async def with_token(conn: asyncpg.Connection, now: datetime, stored: dict[str, Any]) -> dict[str, Any]:
        loan = stored["loan"]
        expires = int(datetime.fromisoformat(stored["token_expires_at"]).timestamp())
        token = platform.tokens.issue_device_token(
            UUID(loan["patient_id"]),
            loan["tablet_id"],
            token_id=stored["token_id"],
            expires_at=expires,
            issued_at=_token_issued_at(datetime.fromisoformat(loan["loaned_at"])),
        )
        loan_id = UUID(loan["id"])
        current = await repository.get_loan(conn, loan_id)
        if current is not None and current["ended_at"] is None:
            enrolment = await _enrolment(conn, platform, loan_id, token, now, staff.staff_id)
        else:
            # Ended since: no code for it (an exchange would be refused anyway); the token link, as the token
            # itself, is revoked.
            enrolment = _token_link(platform, token)
        return {**stored, "device_token": token, **enrolment}

    return await _command(request, platform, staff, key, work, to_store=without_token, to_replay=with_token)


@router.post(
    "/loans/{loan_id}/enrolment-code",
    status_code=201,
    response_model=EnrolmentCode,
    summary="A new one-time enrolment code for an open loan; the loan's last code stops working",
    responses=STEP_PROBLEMS,
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def new_enrolment_code(
    loan_id: UUID, request: Request, staff: FleetManager, platform: PlatformDep, key: IdempotencyKey = None
) -> Any:
    if not _codes_on(platform):
        raise Problem(
            409,
            "Enrolment codes are off on this service (TABLET_ORIGINS is not set, so the tablet's page cannot exchange "
            "one): enrol the tablet with the device token of its loan.",
            kind="enrolment-codes-off",
        )

    async def work(conn: asyncpg.Connection, now: datetime) -> tuple[int, dict[str, Any]]:
        loan = await repository.get_loan(conn, loan_id)
        if loan is None:
            raise Problem(404, "There is no loan with this id.", kind="unknown-loan")
        if loan["ended_at"] is not None:
            raise Problem(
                409,
                "This loan has ended: no tablet can be enrolled into it. Lend the tablet again to enrol it.",
                kind="loan-ended",
            )
        await audit_staff(conn, staff, "loan.enrolment_code", f"loan/{loan_id}", loan["patient_id"])
        return 201, {"loan_id": str(loan_id), **await _enrolment(conn, platform, loan_id, "", now, staff.staff_id)}

    def without_code(made: dict[str, Any]) -> dict[str, Any]:
        return {"loan_id": made["loan_id"]}

    # A retry whose answer was lost gets a code again: the lost one, which nobody saw, stops working.
    async def new_code_again(conn: asyncpg.Connection, now: datetime, stored: dict[str, Any]) -> dict[str, Any]:
        _, body = await work(conn, now)
        return body

    return await _command(request, platform, staff, key, work, to_store=without_code, to_replay=new_code_again)


def _refused_exchange(outcome: Exchange) -> Problem | None:
    """Each refusal by its type (a literal each: the fleet page and the tablet tell them apart)."""
    ask = "Ask the person who lent you the tablet for a new code."
    if outcome is Exchange.USED:
        return Problem(
            410, f"This enrolment code has already been used: a code enrols one tablet, once. {ask}", kind="code-used"
        )
    if outcome is Exchange.EXPIRED:
        return Problem(
            410,
            f"This enrolment code has expired (a code is valid for {CODE_VALIDITY.seconds // 60} minutes). {ask}",
            kind="code-expired",
        )
    if outcome is Exchange.LOAN_ENDED:
        return Problem(
            410,
            "The loan this code was made for has ended (the tablet was returned, lost or stolen): it enrols nothing. "
            "Ask the person who lent you the tablet.",
            kind="loan-ended",
        )
    return None


@enrolment_router.post(
    "/enrolments",
    response_model=Enrolled,
    summary="The tablet exchanges its one-time enrolment code for its device token (no token needed); once",
    responses=problem_responses(404, 410, 422),
    openapi_extra=idempotency.OPTIONAL_KEY,
)
async def enrol(body: EnrolmentRequest, platform: PlatformDep, now: NowDep, key: IdempotencyKey = None) -> Any:
    if key is not None:
        key = idempotency.check_key(key)
    code = canonical_code(body.code)
    unknown = Problem(
        404,
        "This enrolment code is not known: check that the whole link was opened, or ask the person who lent you the "
        "tablet for a new code.",
        kind="unknown-code",
    )
    if code is None:
        raise unknown
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.lock_enrolment_code(conn, code_hash(code))
        if row is None:
            raise unknown
        # The code's expiry, unlike a token's, is the service's: written by its clock (_enrolment), checked by it.
        outcome = exchange(
            StoredCode(
                expires_at=row["expires_at"],
                used_at=row["used_at"],
                used_key_hash=row["used_key_hash"],
                loan_open=row["ended_at"] is None,
            ),
            now,
            key,
        )
        refusal = _refused_exchange(outcome)
        if refusal is not None:
            raise refusal
        if outcome is Exchange.TOKEN:
            # Without a key, nothing can match a retry: the code is spent for good.
            spent_by = key_hash(key if key is not None else uuid.uuid4().hex)
            await repository.spend_enrolment_code(conn, row["loan_id"], at=now, key_hash=spent_by)
        await record_access(
            conn,
            actor=f"device:{row['tablet_id']}",
            roles=("device",),
            action="tablet.enrol" if outcome is Exchange.TOKEN else "tablet.enrol_retry",
            resource=f"loan/{row['loan_id']}",
            patient_id=row["patient_id"],
        )
    return Enrolled(
        device_token=_loan_token(platform, row),
        token_expires_at=datetime.fromtimestamp(_token_expiry(row["expected_return_on"]), UTC),
    )


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
    refused = condition_refusal(body.condition, body.condition_note)
    if refused is not None:
        raise Problem(422, refused, kind="condition-note-without-condition", pointer="/condition")

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
            conn,
            loan["id"],
            kind="returned",
            at=returned_at,
            channel=body.channel,
            missing=missing,
            condition=body.condition,
            condition_note=body.condition_note,
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
        await _publish(conn, platform, "tablet.returned", event, tablet_id, now)
        await audit_staff(conn, staff, "tablet.return", f"tablet/{tablet_id}", loan["patient_id"])
        ended = await repository.get_loan(conn, loan["id"])
        return 200, loan_view(ended, tablet["last_seen_at"], now.date()).model_dump(mode="json")

    return await _command(request, platform, staff, key, work)


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
        return 200, loan_view(loan, None, now.date()).model_dump(mode="json")

    return await _command(request, platform, staff, key, work)


@router.get(
    "/loans/{loan_id}/receipt",
    response_model=LoanReceipt,
    summary="The return receipt of a loan, for the patient: the tablet came back, and its data was erased",
    responses=problem_responses(404, 409),
)
async def loan_receipt(loan_id: UUID, staff: FleetManager, platform: PlatformDep, now: NowDep) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        loan = await repository.loan_for_receipt(conn, loan_id)
        if loan is None:
            raise Problem(404, "There is no loan with this id.", kind="unknown-loan")
        if loan["end_kind"] != "returned":
            ended = loan["end_kind"]  # null while the tablet is still with the patient; or lost, or stolen
            raise Problem(
                409,
                "This tablet was not returned: it is still on loan. A return receipt can be printed once its return "
                "is recorded."
                if ended is None
                else f"This loan ended with the tablet reported {ended}, not returned: there is no return to certify.",
                kind="loan-not-returned",
                ended_as=ended,
            )
        wipes = [
            ReceiptWipe(**dict(w)) for w in await repository.wipes_since(conn, loan["tablet_id"], loan["ended_at"])
        ]
        wipe = wipe_after_return(loan["ended_at"], loan["next_loaned_at"], wipes)
        await audit_staff(conn, staff, "loan.receipt", f"loan/{loan_id}", loan["patient_id"])
    missing = set(loan["missing_accessories"])
    return LoanReceipt(
        loan_id=loan["id"],
        patient_id=loan["patient_id"],
        tablet=ReceiptTablet(id=loan["tablet_id"], serial_number=loan["serial_number"], model=loan["model"]),
        loaned_at=loan["loaned_at"],
        expected_return_on=loan["expected_return_on"],
        returned_at=loan["ended_at"],
        return_channel=loan["return_channel"],
        accessories_handed_over=loan["accessories"],
        accessories_back=[a for a in loan["accessories"] if a not in missing],
        accessories_missing=loan["missing_accessories"],
        return_condition=loan["return_condition"],
        return_condition_note=loan["return_condition_note"],
        wipe_status="pending" if wipe is None else "done",
        wipe=wipe,
        issued_at=now,
    )


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
        # The patient's return receipt names who wiped the tablet as colleagues know them.
        await remember_staff(conn, staff.staff_id, staff.name, now)
        event = TabletWipedV1(tablet_id=tablet_id, method=body.method.value, wiped_at=wiped_at, wiped_by=staff.staff_id)
        await _publish(conn, platform, "tablet.wiped", event, tablet_id, now)
        await audit_staff(conn, staff, "tablet.wipe", f"tablet/{tablet_id}")
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)


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
        await _publish(conn, platform, "tablet.lost", event, tablet_id, now)
        await audit_staff(
            conn, staff, f"tablet.{action.value}", f"tablet/{tablet_id}", loan["patient_id"] if loan else None
        )
        return 200, await _tablet_body(conn, tablet_id)

    return await _command(request, platform, staff, key, work)
