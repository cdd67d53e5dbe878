"""OpenTelemetry: one provider per process, W3C trace context through NATS headers, messaging spans.

Spans follow the messaging semantic conventions (``send <subject>`` PRODUCER, ``process <subject>``
CONSUMER, ``messaging.system=nats``). Attributes carry subjects, ids and codes only: never a name, a
message text or an answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Link, Span, SpanKind, Tracer

# True unless this module installed a provider that records nothing (see setup_tracing).
_recording = True


def process_resource(service_name: str) -> Resource:
    """What this process's spans and metrics are about: the service, and which of its processes this one is.

    ``service.instance.id`` tells apart the replicas of a service (uvicorn workers, containers, pods), whose
    pipeline gauges would otherwise be series with the same attributes, as they sample the same outbox and
    consumers. It is a random UUID v4 made once per process, by the SDK's ``ServiceInstanceIdResourceDetector``
    (always on in the pinned opentelemetry-sdk 1.45.1, and made again in a forked child), as the semantic
    conventions recommend. Not hostname+pid: in containers a service's process is often pid 1 in every replica,
    and pods or containers of a deployment can share a hostname (host networking, a reused StatefulSet name), so
    two live processes could report one id. An operator's ``service.instance.id`` in ``OTEL_RESOURCE_ATTRIBUTES``
    is the one reported (the SDK merges that variable last); the unit tests hold both.
    """
    return Resource.create({"service.name": service_name})


def setup_tracing(service_name: str) -> bool:
    """Install the process's tracer provider once; True when spans are recorded (and worth instrumenting).

    Export is configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_TRACES_SAMPLER``…). With no exporter, nothing would ever read a span, so none is recorded:
    trace context still flows through NATS headers, at the cost of a non-recording span. Tests install
    their own provider first.
    """
    global _recording
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return _recording
    resource = process_resource(service_name)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _recording = True
    else:
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
        _recording = False
    trace.set_tracer_provider(provider)
    return _recording


def setup_metrics(service_name: str) -> bool:
    """Install the process's meter provider once; True when metrics are exported (and worth sampling).

    Export is configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, ``OTEL_METRIC_EXPORT_INTERVAL``…). With no exporter no provider is
    installed, and the caller samples nothing: the pipeline metrics cost no CPU where nobody reads them. Tests
    install their own provider first.
    """
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return True
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")):
        return False
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # interval from OTEL_METRIC_EXPORT_INTERVAL
    metrics.set_meter_provider(MeterProvider(resource=process_resource(service_name), metric_readers=[reader]))
    return True


def instrument_asyncpg() -> None:
    """Spans for SQL statements; query parameters (patient data) are never captured."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor(capture_parameters=False)
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


# What the HTTP server spans must not keep: a query string can hold a credential (the dashboard's stream token),
# and the caller's address is personal data (a patient's tablet at home).
_URL_KEYS = ("http.url", "url.full")
_REDACTED_KEYS = ("url.query", "net.peer.ip", "client.address", "http.client_ip", "net.sock.peer.addr")


def scrub_server_span(span: Span, scope: Mapping[str, Any]) -> None:
    """The FastAPI instrumentation's request hook: the URL without its query, no client address."""
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or not attributes:
        return
    for key in _URL_KEYS:
        if isinstance(url := attributes.get(key), str) and "?" in url:
            span.set_attribute(key, url.split("?", 1)[0])
    for key in _REDACTED_KEYS:
        if key in attributes:
            span.set_attribute(key, "redacted")


def get_tracer(name: str) -> Tracer:
    return trace.get_tracer(name)


class _HeaderSetter(Setter[dict[str, str]]):
    def set(self, carrier: dict[str, str], key: str, value: str) -> None:
        carrier[key] = value


class _HeaderGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = (carrier or {}).get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list((carrier or {}).keys())


def current_trace_headers() -> dict[str, str]:
    """The active trace context as W3C headers, to store with an outbox row."""
    headers: dict[str, str] = {}
    propagate.inject(headers, setter=_HeaderSetter())
    return headers


def context_from_headers(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(headers or {}, getter=_HeaderGetter())


def _messaging_attributes(operation: str, subject: str, message_id: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": subject,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def passed_on(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The trace context fields of ``headers`` (W3C ``traceparent``, ``tracestate``, ``baggage``), as they are."""
    if not headers:
        return {}
    return {name: headers[name] for name in propagate.get_global_textmap().fields if name in headers}


@contextmanager
def send_span(tracer: Tracer, subject: str, message_id: str, stored: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """PRODUCER span whose parent is the context stored with the outbox row (the originating request);
    yields the trace headers the message carries.

    When this process records no span (no exporter), the stored context goes on unchanged: the trace stays
    one, without a span nobody would read (creating and propagating it cost a tenth of the alerting
    service's CPU at 1,000 submissions/s).
    """
    if not _recording:
        yield passed_on(stored)
        return
    parent = context_from_headers(stored)
    with tracer.start_as_current_span(
        f"send {subject}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=_messaging_attributes("send", subject, message_id),
    ):
        yield current_trace_headers()


def start_process_span(
    tracer: Tracer, subject: str, message_id: str, headers: Mapping[str, str] | None, consumer: str
) -> tuple[Span, dict[str, str]]:
    """CONSUMER span, child of and linked to the producer's context (one message, one parent), and the
    trace headers that the message's effects carry into the outbox rows they write.

    Not made current: a batch of messages is applied in one transaction, and each message's effects
    carry their own span's context. When this process records no span, that is the producer's context,
    passed on unchanged (see ``send_span``), and the span returned is the invalid one (ending it does nothing).
    """
    if not _recording:
        return trace.INVALID_SPAN, passed_on(headers)
    parent = context_from_headers(headers)
    creation = trace.get_current_span(parent).get_span_context()
    links = [Link(creation)] if creation.is_valid else []
    attributes = _messaging_attributes("process", subject, message_id)
    attributes["messaging.consumer.group.name"] = consumer
    span = tracer.start_span(
        f"process {subject}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    )
    return span, headers_of(span)


def headers_of(span: Span) -> dict[str, str]:
    """W3C headers naming ``span`` as the parent, to store with an outbox row it causes."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span), setter=_HeaderSetter())
    return headers
