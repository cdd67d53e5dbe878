"""Scheduled jobs outlive the faults of the database and the network, and nothing else; a round that met a
passing one is tried again soon, not a whole interval later."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence

import asyncpg
import pytest

from shared.periodic import backoff, every, soon_again
from shared.testing.waiting import eventually


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


def test_a_failed_round_is_tried_again_after_1_s_then_twice_as_long_each_time_up_to_the_interval() -> None:
    assert list(itertools.islice(backoff(3600), 14)) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
    # A job run more often than that keeps its own pace (the revocation refresh, every 0.5 s).
    assert list(itertools.islice(backoff(0.5), 3)) == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("fault", "again"),
    [
        (asyncpg.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.LockNotAvailableError("canceling statement due to lock timeout"), True),
        (asyncpg.SerializationError("could not serialize access"), True),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (ConnectionRefusedError(), True),
        # The server refused the statement itself: it would refuse it again a second later.
        (asyncpg.UndefinedTableError('relation "outbox" does not exist'), False),
        (asyncpg.InsufficientPrivilegeError("permission denied for table outbox"), False),
    ],
)
def test_what_is_tried_again_soon(fault: BaseException, again: bool) -> None:
    assert soon_again(fault) is again


async def _job(
    faults: list[BaseException], interval_s: float, stop: asyncio.Event, calls: list[float]
) -> asyncio.Task[None]:
    async def work() -> None:
        calls.append(time.monotonic())
        if faults:
            raise faults.pop(0)

    return asyncio.create_task(every(interval_s, stop, work, name="test job"))


async def _until(calls: Sequence[object], n: int) -> None:
    async def reached() -> bool:
        return len(calls) >= n

    await eventually(reached, within=2, interval=0.005)


async def test_a_round_that_met_a_transient_fault_is_tried_again_soon_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("shared.periodic.FIRST_RETRY_S", 0.01)
    stop, calls = asyncio.Event(), list[float]()
    faults: list[BaseException] = [asyncpg.LockNotAvailableError("lock timeout") for _ in range(4)]
    with caplog.at_level(logging.DEBUG, logger="shared.periodic"):
        task = await _job(faults, 3600, stop, calls)
        await _until(calls, 5)
        stop.set()
        await asyncio.wait_for(task, timeout=1)
    # 0.01, 0.02, 0.04, 0.08 s apart, not an hour.
    waits = [b - a for a, b in itertools.pairwise(calls)]
    assert all(w >= d * 0.9 for w, d in zip(waits, [0.01, 0.02, 0.04, 0.08], strict=True)), waits
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["test job failed: LockNotAvailableError; tried again in 0.01 s"]
    assert "test job done on try 5" in caplog.messages


async def test_a_statement_the_database_refuses_waits_for_the_next_round(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("shared.periodic.FIRST_RETRY_S", 0.01)
    stop, calls = asyncio.Event(), list[float]()
    task = await _job([asyncpg.UndefinedTableError("no such table")], 3600, stop, calls)
    await asyncio.sleep(0.2)
    assert len(calls) == 1
    assert "test job failed: UndefinedTableError; next round" in caplog.messages
    stop.set()  # ends the hour's wait at once
    await asyncio.wait_for(task, timeout=1)


async def test_stopping_ends_the_wait_between_tries_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.periodic.FIRST_RETRY_S", 0.2)
    stop, calls = asyncio.Event(), list[float]()
    task = await _job([asyncpg.DeadlockDetectedError("deadlock detected") for _ in range(10)], 3600, stop, calls)
    await _until(calls, 3)  # 0.2 then 0.4 s apart
    stop.set()  # the job waits 0.8 s before its fourth try
    await asyncio.wait_for(task, timeout=0.2)
    assert len(calls) == 3


async def test_the_first_round_signal_is_set_once_the_first_round_is_over_not_when_it_starts() -> None:
    stop, first_round, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def work() -> None:
        calls.append("round")
        await release.wait()

    task = asyncio.create_task(every(3600, stop, work, name="test job", first_round=first_round))
    await _until(calls, 1)
    assert not first_round.is_set()
    release.set()
    await asyncio.wait_for(first_round.wait(), timeout=1)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert calls == ["round"]


async def test_a_first_round_given_up_or_a_job_that_ended_still_sets_the_signal() -> None:
    # A database that refuses the statement: the round waits for the next one, an hour later; the first is over.
    stop, first_round = asyncio.Event(), asyncio.Event()

    async def refused() -> None:
        raise asyncpg.UndefinedTableError('relation "alerts" does not exist')

    task = asyncio.create_task(every(3600, stop, refused, name="test job", first_round=first_round))
    await asyncio.wait_for(first_round.wait(), timeout=1)
    stop.set()
    await asyncio.wait_for(task, timeout=1)

    # A bug ends the job: whoever waits for its first round is not left waiting for ever.
    ended = asyncio.Event()

    async def bug() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await asyncio.wait_for(every(3600, asyncio.Event(), bug, name="test job", first_round=ended), timeout=1)
    assert ended.is_set()
