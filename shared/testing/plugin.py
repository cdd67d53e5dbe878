"""pytest plugin (loaded by pyproject's addopts): real servers, span and metric capture, tokens.

The span exporter and the metric reader are installed before any service module is imported, because only
the first ``set_tracer_provider`` and ``set_meter_provider`` of a process count. With a meter provider in
place, every service started in-process samples its pipeline metrics (``PIPELINE_METRICS_INTERVAL_S``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import redaction
from shared.auth import TokenService
from shared.devservers import EmbeddedNats
from shared.settings import DEV_AUTH_SECRET
from shared.testing.servers import nats_server, postgres_server, with_database

SPANS = InMemorySpanExporter()
_provider = TracerProvider(resource=Resource.create({"service.name": "tests"}))
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)

METRICS = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(resource=Resource.create({"service.name": "tests"}), metric_readers=[METRICS]))

# As every service process does when it starts (shared.http.app): a test calling a consumer or the outbox relay
# directly logs and records spans as a service would.
redaction.install()

os.environ.setdefault("ENVIRONMENT", "test")
# Tests read logs through pytest's capture; the services must not install their own stderr handler.
logging.getLogger().addHandler(logging.NullHandler())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    # Not under pytest's basetemp: a concurrent pytest session resets its permissions to 0700, which
    # locks out the unprivileged user the embedded PostgreSQL runs as when tests run as root.
    workdir = Path(tempfile.mkdtemp(prefix="oncofollow-test-pg-"))
    try:
        with postgres_server(workdir) as url:
            yield url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database for each test on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[tuple[str, EmbeddedNats | None]]:
    with nats_server(tmp_path) as server:
        yield server


@pytest.fixture
def nats_url(nats: tuple[str, EmbeddedNats | None]) -> str:
    return nats[0]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    SPANS.clear()
    yield SPANS


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The process's metric reader: ``get_metrics_data()`` calls the observable gauges' callbacks now."""
    return METRICS


@pytest.fixture(scope="session")
def tokens() -> TokenService:
    return TokenService(DEV_AUTH_SECRET, "oncofollow-dev", "oncofollow")


@pytest.fixture
def service_env(nats_url: str, database_url: str) -> dict[str, str]:
    return {"NATS_URL": nats_url, "DATABASE_URL": database_url, "ENVIRONMENT": "test"}
