"""Group commit: many requests waiting at the same moment are written in one transaction.

A caller's ``submit`` returns only after the commit that holds its item, so batching costs no
durability; it saves round trips, statements and fsyncs. Under light load a batch is a single item,
so latency does not grow. Subclasses write a batch in ``commit`` and settle each item's future.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db.pool import DATABASE_UNAVAILABLE, UNSTORABLE_VALUE, is_transient
from shared.db.transient import retrying
from shared.http.problems import database_busy

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class Pending(Generic[Item, Result]):
    item: Item
    outcome: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(abc.ABC, Generic[Item, Result]):
    def __init__(self, *, max_batch: int = 256, writers: int = 2) -> None:
        self._max_batch = max_batch
        self._writers = writers
        # None is a writer's signal to stop, queued behind what was submitted before ``stop``.
        self._queue: asyncio.Queue[Pending[Item, Result] | None] = asyncio.Queue()
        self._running = False

    async def submit(self, item: Item) -> Result:
        if not self._running:
            raise RuntimeError(f"{type(self).__name__} is not running")
        pending: Pending[Item, Result] = Pending(item)
        await self._queue.put(pending)
        return await pending.outcome

    async def run(self, platform: Any, stop: asyncio.Event) -> None:
        """A background job of the service: ``writers`` loops share the queue, so that one batch commits
        while the next one is being written."""
        self._running = True
        stopping = asyncio.create_task(self._stop_writers_on(stop))
        try:
            await asyncio.gather(*(self._loop(platform.pool) for _ in range(self._writers)))
        finally:
            stopping.cancel()
            self._running = False
            while not self._queue.empty():
                if (pending := self._queue.get_nowait()) is not None:
                    pending.outcome.set_exception(RuntimeError("the service is stopping"))

    async def _stop_writers_on(self, stop: asyncio.Event) -> None:
        # A writer waits on the queue alone, woken by an item or by its stop signal: no time-out to poll ``stop``
        # with, which made every shutdown wait for it (and cost a timer per batch).
        await stop.wait()
        for _ in range(self._writers):
            self._queue.put_nowait(None)

    @abc.abstractmethod
    async def commit(self, pool: asyncpg.Pool, batch: list[Pending[Item, Result]]) -> None:
        """Write the batch and settle every item's ``outcome`` (an exception leaves the rest failed)."""

    async def _loop(self, pool: asyncpg.Pool) -> None:
        while (first := await self._queue.get()) is not None:
            batch = [first]
            stopped = False
            while len(batch) < self._max_batch and not self._queue.empty():
                if (pending := self._queue.get_nowait()) is None:
                    stopped = True  # what came before the signal is written, then this writer stops
                    break
                batch.append(pending)
            await self._commit(pool, batch)
            if stopped:
                return

    async def _commit(self, pool: asyncpg.Pool, batch: list[Pending[Item, Result]]) -> None:
        name = type(self).__name__

        async def unsettled() -> None:
            # A try that failed after settling some items (committed, then a later read failed) must not write
            # them again.
            waiting = [p for p in batch if not p.outcome.done()]
            if waiting:
                await self.commit(pool, waiting)

        try:
            await retrying(unsettled, where=name)
        except Exception as exc:
            if is_transient(exc):
                # Still losing the race after every try (a lock held long, a statement timing out): nothing of it
                # was written, and the callers are told to come back, not that their requests failed.
                for pending in batch:
                    if not pending.outcome.done():
                        pending.outcome.set_exception(database_busy())
                return
            if isinstance(exc, DATABASE_UNAVAILABLE):  # each caller is answered 503, to retry
                log.warning(
                    "%s: a batch of %s failed: the database is unavailable (%s)", name, len(batch), type(exc).__name__
                )
            elif len(batch) > 1:
                # An item the database refused (a value it cannot store, say) must not fail the others that
                # happened to share its statement: each is written again on its own.
                log.warning(
                    "%s: a batch of %s failed (%s); writing its items one by one", name, len(batch), type(exc).__name__
                )
                for pending in batch:
                    if not pending.outcome.done():
                        await self._commit(pool, [pending])
                return
            elif isinstance(exc, UNSTORABLE_VALUE):  # its caller is answered 422
                log.warning("%s: an item holds a value the database cannot store (%s)", name, type(exc).__name__)
            else:
                log.exception("%s: an item failed; nothing of it was written", name)
            for pending in batch:
                if not pending.outcome.done():
                    pending.outcome.set_exception(exc)
