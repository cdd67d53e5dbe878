"""Metrics of the event pipeline: what waits in the outbox, what a consumer has not yet applied, dead letters.

A background job of each service (started only when ``setup_metrics`` found an exporter) samples, every
``PIPELINE_METRICS_INTERVAL_S``, one SQL statement on its outbox (through the partial index of unpublished rows),
``consumer_info`` of each of its durable consumers, and one ``stream_info`` of DEAD_LETTERS. Observable gauges
read the last sample when the metric reader collects; they never query anything themselves.

Nothing stale is reported: a round that fails (PostgreSQL or NATS out of reach) drops the last sample, with a
warning, and a sample older than two intervals (a round stuck) is not reported either. The gauges then report
no value until a round succeeds, and the backend sees the series go absent rather than flat.

Attributes are codes only: the service, the durable consumer's name, the dead-letter subject ``dlq.<event type>``.
The ``service`` attribute repeats the resource's ``service.name``: one process may run more than one service
(the tests do), and a gauge is registered once per process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from shared.messaging.deadletter import DLQ_PREFIX, DLQ_STREAM
from shared.messaging.topology import ConsumerSpec
from shared.periodic import PASSING_FAULTS, every

log = logging.getLogger(__name__)

OUTBOX_PENDING = "oncofollow.outbox.pending"
OUTBOX_OLDEST_AGE = "oncofollow.outbox.oldest_pending_age"
CONSUMER_PENDING = "oncofollow.consumer.pending"
CONSUMER_ACK_PENDING = "oncofollow.consumer.ack_pending"
CONSUMER_REDELIVERED = "oncofollow.consumer.redelivered"
DEAD_LETTERS = "oncofollow.dead_letters"

# name -> (unit, description)
GAUGES: Mapping[str, tuple[str, str]] = {
    OUTBOX_PENDING: ("{event}", "Events in the outbox not yet published to NATS"),
    OUTBOX_OLDEST_AGE: ("s", "Age of the oldest event in the outbox not yet published (0 when none)"),
    CONSUMER_PENDING: ("{message}", "Messages of a durable consumer's subject not yet delivered to it"),
    CONSUMER_ACK_PENDING: ("{message}", "Messages delivered to a durable consumer and not yet acknowledged"),
    CONSUMER_REDELIVERED: ("{message}", "Messages redelivered to a durable consumer, not yet acknowledged"),
    DEAD_LETTERS: ("{message}", "Messages in DEAD_LETTERS for a subject the service consumes"),
}

# The one statement of a round: count and oldest through the partial index outbox_pending (seq order is the
# order of insertion, so the first pending row is the oldest).
OUTBOX_STATEMENT = (
    "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - ("
    "SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1)), 0)::float8 AS oldest "
    "FROM outbox WHERE published_at IS NULL"
)
# What skips a round: the database or NATS out of reach, or too slow.
SAMPLE_FAULTS = (*PASSING_FAULTS, NatsError, TimeoutError)


@dataclass(frozen=True)
class ConsumerSample:
    durable: str
    pending: int  # not yet delivered
    ack_pending: int  # delivered, not acked
    redelivered: int


@dataclass(frozen=True)
class PipelineSnapshot:
    service: str
    sampled_at: float  # time.monotonic()
    max_age_s: float  # reported while now - sampled_at <= max_age_s
    outbox_pending: int
    outbox_oldest_age_s: float
    consumers: tuple[ConsumerSample, ...]
    dead_letters: Mapping[str, int]  # dlq.<event type> -> messages

    def fresh(self, now: float) -> bool:
        return now - self.sampled_at <= self.max_age_s


def observations(snapshot: PipelineSnapshot | None, now: float) -> dict[str, list[Observation]]:
    """What each gauge reports for ``snapshot``: nothing when there is none or it is stale."""
    out: dict[str, list[Observation]] = {name: [] for name in GAUGES}
    if snapshot is None or not snapshot.fresh(now):
        return out
    service = {"service": snapshot.service}
    out[OUTBOX_PENDING].append(Observation(snapshot.outbox_pending, service))
    out[OUTBOX_OLDEST_AGE].append(Observation(snapshot.outbox_oldest_age_s, service))
    for consumer in snapshot.consumers:
        attributes = {**service, "consumer": consumer.durable}
        out[CONSUMER_PENDING].append(Observation(consumer.pending, attributes))
        out[CONSUMER_ACK_PENDING].append(Observation(consumer.ack_pending, attributes))
        out[CONSUMER_REDELIVERED].append(Observation(consumer.redelivered, attributes))
    for subject, count in sorted(snapshot.dead_letters.items()):
        out[DEAD_LETTERS].append(Observation(count, {**service, "subject": subject}))
    return out


async def sample(
    service: str, pool: asyncpg.Pool, js: JetStreamContext, specs: Sequence[ConsumerSpec], max_age_s: float
) -> PipelineSnapshot:
    async with pool.acquire(timeout=5) as conn:
        row = await conn.fetchrow(OUTBOX_STATEMENT)
    consumers = []
    for spec in specs:
        info = await js.consumer_info(spec.stream, spec.durable)
        consumers.append(
            ConsumerSample(spec.durable, info.num_pending or 0, info.num_ack_pending or 0, info.num_redelivered or 0)
        )
    # One request for every dead-letter subject (at most one per event type); a subject without any is absent.
    subjects = {f"{DLQ_PREFIX}{spec.subject}" for spec in specs}
    stored: Mapping[str, int] = {}
    if subjects:
        stored = (await js.stream_info(DLQ_STREAM, subjects_filter=f"{DLQ_PREFIX}>")).state.subjects or {}
    return PipelineSnapshot(
        service=service,
        sampled_at=time.monotonic(),
        max_age_s=max_age_s,
        outbox_pending=int(row["pending"]),
        outbox_oldest_age_s=float(row["oldest"]),
        consumers=tuple(consumers),
        dead_letters={subject: int(stored.get(subject, 0)) for subject in subjects},
    )


class _Latest:
    """The last snapshot of each service sampling in this process, read by the gauges' callbacks (in the metric
    reader's thread): each update replaces the whole mapping, so a reader never sees it change under it."""

    def __init__(self) -> None:
        self.by_service: Mapping[str, PipelineSnapshot | None] = {}
        self._lock = threading.Lock()
        self._registered = False

    def set(self, service: str, snapshot: PipelineSnapshot | None) -> None:
        with self._lock:
            self.by_service = {**self.by_service, service: snapshot}

    def drop(self, service: str) -> None:
        with self._lock:
            self.by_service = {k: v for k, v in self.by_service.items() if k != service}

    def register_gauges(self) -> None:
        with self._lock:
            if self._registered:
                return
            meter = metrics.get_meter("oncofollow.pipeline")
            for name, (unit, description) in GAUGES.items():
                meter.create_observable_gauge(name, [self._callback(name)], unit=unit, description=description)
            self._registered = True

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            now = time.monotonic()
            return [o for snapshot in self.by_service.values() for o in observations(snapshot, now)[name]]

        return observe


LATEST = _Latest()


async def run_sampler(
    service: str,
    pool: asyncpg.Pool,
    js: JetStreamContext,
    specs: Sequence[ConsumerSpec],
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Sample every ``interval_s`` until ``stop``; a failed round leaves the gauges empty until the next one."""
    LATEST.register_gauges()
    max_age_s = 2 * interval_s

    async def one_round() -> None:
        try:
            LATEST.set(service, await sample(service, pool, js, specs, max_age_s))
        except SAMPLE_FAULTS as exc:  # periodic.every would let NATS errors through, and keep the last sample
            LATEST.set(service, None)
            log.warning("pipeline metrics of %s skipped: %s", service, type(exc).__name__)

    try:
        await every(interval_s, stop, one_round, name=f"{service} pipeline metrics")
    finally:
        LATEST.drop(service)
