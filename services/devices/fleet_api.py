"""The fleet at a glance (role ``fleet``; ``arc`` and ``nurse`` may read), and who the fleet page's user is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.devices import repository
from services.devices.api import FleetManager, FleetReader
from services.devices.domain import AWAITING_CHECK, TabletState, utilisation
from services.devices.schemas import FleetView, Me, loan_view
from shared.audit import audit_staff_patients
from shared.db.staff import remember_staff
from shared.http.app import NowDep, PlatformDep

router = APIRouter(prefix="/v1", tags=["fleet"])


@router.get("/fleet", response_model=FleetView, summary="The fleet at a glance: states, due loans, silent tablets")
async def fleet(
    staff: FleetReader,
    platform: PlatformDep,
    now: NowDep,
    period_days: Annotated[int, Query(ge=1, le=730)] = 90,
    due_soon_days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> Any:
    today = now.date()
    async with platform.pool.acquire() as conn, conn.transaction():
        figures = await repository.fleet_figures(
            conn, today, due_soon_days, period_days, [s.value for s in AWAITING_CHECK]
        )
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
        damaged_to_check=figures["damaged_to_check"],
        mean_loan_days=round(float(mean), 1) if mean is not None else None,
        utilisation=utilisation(min(loaned_days, available_days), available_days),
        period_days=period_days,
        attention=[loan_view(row, row["last_seen_at"], today) for row in attention],
    )


@router.get(
    "/me",
    response_model=Me,
    summary="Who this fleet manager is: the fleet page's sign-in (403 for staff without the fleet role)",
)
async def me(staff: FleetManager, platform: PlatformDep, now: NowDep) -> Any:
    # Signing in is being seen: the return receipts of the wipes she records name her as her token does.
    async with platform.pool.acquire() as conn:
        await remember_staff(conn, staff.staff_id, staff.name, now)
    return Me(
        staff_id=staff.staff_id,
        name=staff.name,
        roles=sorted(staff.roles),
        session_expires_in=staff.session_seconds_left(),
    )
