"""Streams and durable consumers, declared once and provisioned at start-up (idempotently)."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError, ServiceUnavailableError

log = logging.getLogger(__name__)

DAY = 86_400


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: int
    duplicate_window_s: int = 300
    max_bytes: int = 2 * 1024**3

    def config(self, replicas: int) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=float(self.max_age_s),
            max_bytes=self.max_bytes,
            duplicate_window=float(self.duplicate_window_s),
            num_replicas=replicas,
            # The outbox relay publishes in atomic batches (NATS 2.12+): one sync per batch, not per event.
            allow_atomic=True,
        )

    def takes(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self.subjects)


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("QUESTIONNAIRES", ("questionnaire.>", "message.>"), max_age_s=30 * DAY),
    # ALERTS keeps a week so that a dashboard reconnecting with Last-Event-ID can replay what it missed.
    StreamSpec("ALERTS", ("alert.>", "submission.>"), max_age_s=7 * DAY),
    # TABLETS outlives every device token: a consumer recreated from the stream's start (the questionnaire's list of
    # revoked tokens rebuilt after a restore, or in a new schema) must still learn of each loan ended whose token has
    # not expired. A token lives at most the loan's longest (a year) and its 60-day margin (services/devices/api.py);
    # fifteen months cover that. A loan makes a handful of events: nothing next to the 2 GiB.
    StreamSpec("TABLETS", ("tablet.>",), max_age_s=456 * DAY),
    StreamSpec("INCLUSION", ("patient.>", "session.>"), max_age_s=365 * DAY),
    StreamSpec("DEAD_LETTERS", ("dlq.>",), max_age_s=90 * DAY),
)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


@functools.cache
def stream_for(subject: str) -> str | None:
    """The stream that stores ``subject``, or None when no stream does."""
    return next((spec.name for spec in STREAMS if spec.takes(subject)), None)


UNLIMITED = -1  # JetStream's "no maximum" for max_deliver


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: one per (consuming service, event type)."""

    service: str
    stream: str
    subject: str
    # UNLIMITED for events whose loss would be a breach (a token revocation): retried until applied, never
    # dead-lettered after a run of failures (poison and unreadable events still are).
    max_deliver: int = 6
    # backoff[0] replaces ack_wait, so it must outlast the slowest batch; max_deliver > len(backoff).
    backoff_s: tuple[float, ...] = (30.0, 60.0, 300.0, 900.0)
    max_ack_pending: int = 2000
    fetch_batch: int = 200
    # How long a batch short of fetch_batch waits for more after its first message (PullStream.next_batch):
    # for consumers off the alert path, whose events can wait a moment.
    linger_s: float = 0.0

    @property
    def durable(self) -> str:
        return f"{self.service}-{self.subject.replace('.', '-')}"

    def redelivery_delay(self, delivered: int) -> float:
        """How long JetStream waits before delivering again a message delivered ``delivered`` times and not
        acknowledged: the backoff entry for that delivery, the last one past the end."""
        return self.backoff_s[min(max(delivered, 1), len(self.backoff_s)) - 1]

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.backoff_s[0],
            max_deliver=self.max_deliver,
            backoff=list(self.backoff_s),
            max_ack_pending=self.max_ack_pending,
        )


def stream_update(current: StreamConfig, wanted: StreamConfig) -> StreamConfig | None:
    """The configuration to update an existing stream to, or None when it already is what the code wants.

    Replicas are only ever added here, never taken away: every process of every service ensures every stream, so one
    process started without ``NATS_STREAM_REPLICAS`` would otherwise shrink the production cluster's R3 streams to a
    single copy. Lowering them is an operator's deliberate act (``nats stream edit``)."""
    replicas = max(current.num_replicas or 1, wanted.num_replicas or 1)
    if (wanted.num_replicas or 1) < replicas:
        log.warning(
            "stream %s keeps its %s replicas: this process asks for %s (NATS_STREAM_REPLICAS), which would lower them",
            wanted.name,
            replicas,
            wanted.num_replicas,
        )
        wanted = replace(wanted, num_replicas=replicas)
    if (
        sorted(current.subjects or []) != sorted(wanted.subjects or [])
        or current.max_age != wanted.max_age
        or current.duplicate_window != wanted.duplicate_window
        or current.max_bytes != wanted.max_bytes
        or current.num_replicas != wanted.num_replicas
        or bool(current.allow_atomic) != bool(wanted.allow_atomic)
    ):
        return wanted
    return None


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, replicas: int = 1) -> None:
    wanted = spec.config(replicas)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(wanted)
        log.info("created stream %s", spec.name)
        return
    update = stream_update(info.config, wanted)
    if update is not None:
        await js.update_stream(update)
        log.info("updated stream %s", spec.name)


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    # add_consumer with the same durable name is an update when only mutable fields changed.
    await js.add_consumer(spec.stream, spec.config())


async def ensure_topology(
    js: JetStreamContext, consumers: tuple[ConsumerSpec, ...] = (), *, replicas: int = 1, attempts: int = 10
) -> None:
    """Create or update every stream, then the given consumers; retries while a cluster elects leaders."""
    for attempt in range(attempts):
        try:
            for stream in STREAMS:
                await ensure_stream(js, stream, replicas)
            for consumer in consumers:
                await ensure_consumer(js, consumer)
            return
        except ServiceUnavailableError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
