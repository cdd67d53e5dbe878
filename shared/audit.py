"""The audit trail: every staff access to patient data leaves a row, in the same transaction as the access."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from shared.auth import StaffPrincipal
from shared.db.group_commit import GroupCommit, Pending


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


@dataclass(frozen=True)
class StreamedAccess:
    """A live stream about to show a staff member the data of these patients."""

    staff: StaffPrincipal
    action: str
    resource: str
    patient_ids: Sequence[str]


_AUDIT_COLUMNS = ("actor", "roles", "action", "resource", "patient_id")


class StreamAccessTrail(GroupCommit[StreamedAccess, None]):
    """The audit rows of live streams, each written before its events are sent.

    A stream has no transaction to share: each chunk of events waits for its rows instead, and the chunks of
    every open stream waiting at the same moment share one statement (group commit), so that a hundred
    dashboards receiving the same alert cost one insert, not a hundred."""

    async def commit(self, pool: asyncpg.Pool, batch: list[Pending[StreamedAccess, None]]) -> None:
        rows = [
            (p.item.staff.staff_id, sorted(p.item.staff.roles), p.item.action, p.item.resource, patient)
            for p in batch
            for patient in p.item.patient_ids
        ]
        async with pool.acquire() as conn:
            # COPY: a busy ward's streams write a row per reader per patient shown, and COPY costs PostgreSQL
            # about a quarter less per row than an INSERT … SELECT over a parameter.
            await conn.copy_records_to_table("audit_log", records=rows, columns=_AUDIT_COLUMNS)
        for pending in batch:
            pending.outcome.set_result(None)
