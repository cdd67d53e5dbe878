"""A loan's end as a test drives it: the way the devices service ends one, seen through the questionnaire service."""

from __future__ import annotations

import asyncpg
import httpx

from shared.revocation import revoke
from shared.testing.waiting import eventually


async def end_loan(pool: asyncpg.Pool, questionnaire_url: str, loan_id: str, token: str) -> None:
    """The tablet handed back: its token revoked, as the devices service does when the return is recorded, and waited
    for until the questionnaire service refuses it (a service hears of revocations by polling, not at once)."""
    async with pool.acquire() as conn:
        await revoke(conn, [loan_id], "tablet.returned")

    async def refused() -> bool:
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{questionnaire_url}/v1/questionnaires/reconnect-symptoms",
                headers={"Authorization": f"Bearer {token}"},
            )
            return answer.status_code == 401

    await eventually(refused, within=10)
