"""Pipeline metrics of a service running in-process, against real NATS and PostgreSQL: the outbox, a consumer
falling behind, dead letters; and no sampling at all in a process without a metrics exporter."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from nats.js.api import Header
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, NumberDataPoint

from services.questionnaire.main import NAME, QuestionnaireSettings, build_service
from shared.devservers import ROOT
from shared.events.questionnaire import TermAnswer
from shared.messaging.consumer import Consumed, Subscription
from shared.messaging.deadletter import dead_letter
from shared.messaging.topology import ConsumerSpec
from shared.testing.events import questionnaire_submitted
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

Series = dict[tuple[tuple[str, Any], ...], float]


def _collected(reader: InMemoryMetricReader) -> dict[str, Series]:
    """One collection: each gauge's data points, by attributes. Checks that read two values read them from one
    collection: the sampler's snapshot is reported for twice its interval only, and on a loaded machine it can age out
    between two collections (an empty series where the one before held the awaited value).

    The gauges only: the reader is the whole test process's, and holds whatever the tests run before these recorded
    too (the HTTP servers' duration histograms, the database retry counters)."""
    data = reader.get_metrics_data()
    gauges: dict[str, Series] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if not isinstance(metric.data, Gauge):
                    continue
                points = gauges.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)  # a gauge's: one value (a histogram's has none)
                    points[tuple(sorted((point.attributes or {}).items()))] = point.value
    return gauges


def _gauge(reader: InMemoryMetricReader, name: str) -> Series:
    """The gauge's data points of this collection, by attributes."""
    return _collected(reader).get(name, {})


async def _collected_with(
    reader: InMemoryMetricReader, name: str, value: float, **attributes: str
) -> dict[str, Series] | None:
    """The collection in which the gauge reads ``value`` for these attributes; None when this one does not."""
    gauges = _collected(reader)
    return gauges if _of(gauges.get(name, {}), **attributes) == value else None


def _of(series: Series, **attributes: str) -> float | None:
    return series.get(tuple(sorted({"service": NAME, **attributes}.items())))


def _settings(service_env: dict[str, str]) -> QuestionnaireSettings:
    return QuestionnaireSettings(
        NATS_URL=service_env["NATS_URL"], DATABASE_URL=service_env["DATABASE_URL"], PIPELINE_METRICS_INTERVAL_S=0.1
    )


async def test_an_event_the_relay_cannot_publish_shows_as_pending_in_the_outbox(
    service_env: dict[str, str], metric_reader: InMemoryMetricReader
) -> None:
    async with in_process(build_service(_settings(service_env))) as (_, platform):
        assert f"{NAME}-pipeline-metrics" in {task.get_name() for task in asyncio.all_tasks()}
        await eventually(lambda: _sampled(metric_reader, "oncofollow.outbox.pending", 0))
        # No stream takes this subject: the relay tries it again every round, and it stays in the outbox.
        async with platform.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox (id, subject, body, created_at) VALUES ($1, 'metrics.unrouted', '{}', "
                "now() - interval '1 minute')",
                uuid.uuid4(),
            )
        gauges = await eventually(lambda: _collected_with(metric_reader, "oncofollow.outbox.pending", 1))
        age = _of(gauges["oncofollow.outbox.oldest_pending_age"])
        assert age is not None and 60 <= age < 120
    # The service stopped: its gauges report nothing rather than their last value.
    assert _of(_gauge(metric_reader, "oncofollow.outbox.pending")) is None


async def _sampled(reader: InMemoryMetricReader, name: str, value: float, **attributes: str) -> bool:
    return await _collected_with(reader, name, value, **attributes) is not None


async def test_a_consumer_falling_behind_shows_its_pending_and_unacknowledged_messages(
    service_env: dict[str, str], metric_reader: InMemoryMetricReader
) -> None:
    """A consumer of the service that holds its first message (at most one unacknowledged) while more arrive."""
    release = asyncio.Event()

    async def held(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
        await release.wait()

    spec = ConsumerSpec(NAME, "QUESTIONNAIRES", "questionnaire.submitted", max_ack_pending=1, fetch_batch=1)
    service = build_service(_settings(service_env))
    service = dataclasses.replace(service, subscriptions=(*service.subscriptions, Subscription(spec, held, batch=True)))
    try:
        async with in_process(service) as (_, platform):
            for _ in range(3):
                event = questionnaire_submitted(TermAnswer(term="nausea", frequency=1, severity=1))
                await platform.js.publish(spec.subject, event.to_json(), headers={Header.MSG_ID: event.id})

            async def behind() -> dict[str, Series] | None:
                gauges = await _collected_with(metric_reader, "oncofollow.consumer.pending", 2, consumer=spec.durable)
                unacked = gauges and _of(gauges["oncofollow.consumer.ack_pending"], consumer=spec.durable) == 1
                return gauges if unacked else None

            redelivered = (await eventually(behind))["oncofollow.consumer.redelivered"]
            assert _of(redelivered, consumer=spec.durable) == 0
            assert _of(redelivered, consumer="questionnaire-alert-resolved") == 0  # every consumer of the service
            release.set()
            await eventually(lambda: _sampled(metric_reader, "oncofollow.consumer.pending", 0, consumer=spec.durable))
    finally:
        release.set()


async def test_a_dead_letter_shows_for_its_subject(
    service_env: dict[str, str], metric_reader: InMemoryMetricReader
) -> None:
    async with in_process(build_service(_settings(service_env))) as (_, platform):
        await eventually(lambda: _sampled(metric_reader, "oncofollow.dead_letters", 0, subject="dlq.alert.resolved"))
        await dead_letter(
            platform.js,
            subject="alert.resolved",
            data=b"{not json",
            headers=None,
            stream="ALERTS",
            stream_seq=1,
            consumer="questionnaire-alert-resolved",
            deliveries=1,
            reason="undecodable",
        )
        gauges = await eventually(
            lambda: _collected_with(metric_reader, "oncofollow.dead_letters", 1, subject="dlq.alert.resolved")
        )
        series = gauges["oncofollow.dead_letters"]
        assert _of(series, subject="dlq.tablet.lost") == 0
        # Only the subjects the service consumes: questionnaire.submitted is the alerting service's.
        assert _of(series, subject="dlq.questionnaire.submitted") is None


async def test_a_failed_sample_leaves_the_gauges_empty_with_a_warning(
    service_env: dict[str, str], metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(build_service(_settings(service_env))) as (_, platform):
        await eventually(lambda: _sampled(metric_reader, "oncofollow.outbox.pending", 0))
        # A NATS error in the middle of a round (the consumer is gone): the last sample is not reported again.
        await platform.js.delete_consumer("ALERTS", "questionnaire-alert-resolved")

        async def warned() -> bool:
            return "pipeline metrics of questionnaire skipped: NotFoundError" in caplog.text

        # The warning first: on a loaded machine the last good sample can age out (twice the interval) before the
        # failed round, which emptied the gauges before the warning was written.
        await eventually(warned)
        assert not _gauge(metric_reader, "oncofollow.outbox.pending")


# A process of its own: this one has the tests' meter provider, and only the first one set counts.
WITHOUT_PROVIDER = """
import asyncio, json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from services.questionnaire.main import QuestionnaireSettings, build_service
from shared.testing.services import in_process

async def main():
    settings = QuestionnaireSettings(PIPELINE_METRICS_INTERVAL_S=0.1)
    async with in_process(build_service(settings)):
        await asyncio.sleep(0.3)
        tasks = sorted(t.get_name() for t in asyncio.all_tasks())
    print(json.dumps({"tasks": tasks, "provider": isinstance(metrics.get_meter_provider(), MeterProvider)}))

asyncio.run(main())
"""


def _run_service_process(service_env: dict[str, str], **otel: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(service_env, PYTHONPATH=str(ROOT), **otel)
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROVIDER], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_metrics_exporter_nothing_is_sampled(service_env: dict[str, str]) -> None:
    quiet = _run_service_process(service_env)
    assert quiet["provider"] is False
    assert "questionnaire-outbox" in quiet["tasks"]  # the service did run
    assert "questionnaire-pipeline-metrics" not in quiet["tasks"]

    exporting = _run_service_process(
        service_env,
        # Nothing listens there: the export at exit fails, once, at once.
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://127.0.0.1:9/v1/metrics",
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="1",
    )
    assert exporting["provider"] is True
    assert "questionnaire-pipeline-metrics" in exporting["tasks"]
