"""Reading the audit trail (role ``admin``): who saw or did what to whose data, and when.

Every service has one, over its own schema's ``audit_log``; reading it is itself audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from shared.audit import record_access_to_patients
from shared.auth import StaffPrincipal
from shared.datetimes import OffsetDatetime
from shared.http.app import PlatformDep
from shared.http.security import require_staff

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Admin = Annotated[StaffPrincipal, Depends(require_staff("admin"))]


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    roles: list[str]
    action: str
    resource: str
    patient_id: UUID | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    count: int
    next_before_id: int | None


@router.get("", response_model=AuditPage, summary="The audit trail, newest first (admin)")
async def read_audit(
    admin: Admin,
    platform: PlatformDep,
    patient_id: UUID | None = None,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=120)] = None,
    since: OffsetDatetime | None = None,
    until: OffsetDatetime | None = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Paging: the next_before_id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, at, actor, roles, action, resource, patient_id FROM audit_log "
            "WHERE ($1::uuid IS NULL OR patient_id = $1) AND ($2::text IS NULL OR actor = $2) "
            "AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR at >= $4) "
            "AND ($5::timestamptz IS NULL OR at < $5) AND ($6::bigint IS NULL OR id < $6) "
            "ORDER BY id DESC LIMIT $7",
            patient_id,
            actor,
            action,
            since,
            until,
            before_id,
            limit,
        )
        # The page names whose data was seen by whom: each patient it shows finds this read in their own trail.
        await record_access_to_patients(
            conn,
            actor=admin.staff_id,
            roles=admin.roles,
            action="audit.read",
            resource="audit",
            patient_ids=[patient_id, *(r["patient_id"] for r in rows)],
        )
    items = [AuditEntry(**dict(r)) for r in rows]
    return AuditPage(items=items, count=len(items), next_before_id=items[-1].id if len(items) == limit else None)
