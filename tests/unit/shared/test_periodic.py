"""Scheduled jobs outlive the faults of the database and the network, and nothing else."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.periodic import every


async def _rounds_of(fault: BaseException) -> int:
    stop = asyncio.Event()
    rounds = 0

    async def work() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            stop.set()
        raise fault

    await asyncio.wait_for(every(0.001, stop, work, name="test job"), timeout=5)
    return rounds


@pytest.mark.parametrize(
    "fault",
    [
        ConnectionResetError(),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InterfaceError("connection is closed"),
        # What a connection PostgreSQL has just cut can raise before the driver sees it closed.
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
)
async def test_a_database_or_network_fault_skips_a_round_and_the_job_goes_on(fault: BaseException) -> None:
    assert await _rounds_of(fault) == 3


async def test_any_other_exception_is_a_bug_and_ends_the_job() -> None:
    with pytest.raises(KeyError):
        await _rounds_of(KeyError("a bug"))
