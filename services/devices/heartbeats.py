"""Heartbeats, the platform's highest-volume input: the tablet's route, and its writer, by group commit, many per
transaction."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from services.devices import repository
from services.devices.domain import HeartbeatReading, clock_skew_ok
from shared.db.group_commit import GroupCommit, Pending
from shared.http.app import Platform
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.routes import RequestOnlyRoute
from shared.http.security import device_principal


class HeartbeatWriter(GroupCommit[repository.HeartbeatRow, bool]):
    """``submit`` answers whether the heartbeat was recorded: False when its token's loan has ended."""

    async def commit(self, pool: asyncpg.Pool, batch: list[Pending[repository.HeartbeatRow, bool]]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            recognised = await repository.record_heartbeats(conn, [p.item for p in batch])
        for pending in batch:
            pending.outcome.set_result(pending.item.token_id in recognised)


# --- The tablet's heartbeat --------------------------------------------------------------------------------------


# The highest-volume endpoint: it reads its own body and token instead of going through FastAPI's
# dependency and body machinery (half of its CPU when measured), and it is matched before the fleet routes.
heartbeat_router = APIRouter(prefix="/v1", tags=["tablet"], route_class=RequestOnlyRoute)

_NOT_A_FLEET_TABLET = "This device token does not name a tablet of the fleet."
_LOAN_ENDED = "This tablet's loan has ended: its token no longer works. Bring the tablet back to the day hospital."

# Readings queued while a tablet was offline arrive late, but not a year late.
HEARTBEAT_MAX_AGE = timedelta(days=366)


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
    now = platform.clock()
    for name, moment in (("sent_at", reading.sent_at), ("last_used_at", reading.last_used_at)):
        # A wrong clock's future would make the tablet look alive (and used) for days, or for ever.
        if moment is not None and not clock_skew_ok(moment, now):
            raise Problem(
                422,
                f"{name} is more than a day ahead of the server's clock: check the tablet's clock.",
                kind="in-the-future",
                pointer=f"/{name}",
            )
        if moment is not None and moment < now - HEARTBEAT_MAX_AGE:
            raise Problem(
                422,
                f"{name} is more than a year ago: check the tablet's clock.",
                kind="too-far-in-the-past",
                pointer=f"/{name}",
            )
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
