"""The audit trail: every staff access to patient data leaves a row, in the same transaction as the access."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from shared.auth import StaffPrincipal


async def record_access(
    conn: asyncpg.Connection,
    *,
    actor: str,
    roles: Iterable[str],
    action: str,
    resource: str,
    patient_id: UUID | None = None,
) -> None:
    await record_access_to_patients(
        conn, actor=actor, roles=roles, action=action, resource=resource, patient_ids=[patient_id]
    )


async def record_access_to_patients(
    conn: asyncpg.Connection,
    *,
    actor: str,
    roles: Iterable[str],
    action: str,
    resource: str,
    patient_ids: Iterable[UUID | None],
) -> None:
    """One access that showed several patients' data (a list, a tablet's loan history): a row per patient, so
    that each patient's trail shows it; one row without a patient when it showed none."""
    patients: list[UUID | None] = [*sorted({p for p in patient_ids if p is not None})]
    await conn.execute(
        "INSERT INTO audit_log (actor, roles, action, resource, patient_id) "
        "SELECT $1, $2, $3, $4, p FROM unnest($5::uuid[]) AS p",
        actor,
        sorted(roles),
        action,
        resource,
        patients or [None],
    )


async def audit_staff(
    conn: asyncpg.Connection, staff: StaffPrincipal, action: str, resource: str, patient_id: UUID | None = None
) -> None:
    """``record_access`` for the staff member making the request."""
    await record_access(
        conn, actor=staff.staff_id, roles=staff.roles, action=action, resource=resource, patient_id=patient_id
    )


async def audit_staff_patients(
    conn: asyncpg.Connection, staff: StaffPrincipal, action: str, resource: str, patient_ids: Iterable[UUID | None]
) -> None:
    """``record_access_to_patients`` for the staff member making the request."""
    await record_access_to_patients(
        conn, actor=staff.staff_id, roles=staff.roles, action=action, resource=resource, patient_ids=patient_ids
    )
