"""Trace context through NATS headers, with spans recorded and without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STORED = {
    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    "tracestate": "vendor=1",
    "Nats-Msg-Id": "not trace context",
}
TRACER = telemetry.get_tracer("tests.telemetry")
ROOT = Path(__file__).resolve().parents[3]


def _trace_and_parent(traceparent: str) -> tuple[str, str]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def test_a_recorded_send_span_is_the_child_of_the_stored_context(spans: InMemorySpanExporter) -> None:
    with telemetry.send_span(TRACER, "alert.raised", "e-1", STORED) as headers:
        pass
    trace_id, span_id = _trace_and_parent(headers["traceparent"])
    [span] = [s for s in spans.get_finished_spans() if s.name == "send alert.raised"]
    assert (trace_id, span_id) == (TRACE_ID, f"{span.context.span_id:016x}")
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_a_recorded_process_span_names_itself_to_the_message_s_effects(spans: InMemorySpanExporter) -> None:
    span, headers = telemetry.start_process_span(TRACER, "questionnaire.submitted", "e-1", STORED, "c")
    span.end()
    assert _trace_and_parent(headers["traceparent"]) == (TRACE_ID, f"{span.get_span_context().span_id:016x}")
    assert [s.name for s in spans.get_finished_spans()] == ["process questionnaire.submitted"]


@pytest.fixture
def not_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process without an exporter (setup_tracing found no OTEL_EXPORTER_OTLP_* variable)."""
    monkeypatch.setattr(telemetry, "_recording", False)


@pytest.mark.usefixtures("not_recording")
def test_without_recording_the_stored_context_goes_on_unchanged(spans: InMemorySpanExporter) -> None:
    with telemetry.send_span(TRACER, "alert.raised", "e-1", STORED) as headers:
        pass
    span, effects = telemetry.start_process_span(TRACER, "questionnaire.submitted", "e-1", STORED, "c")
    span.end()

    expected = {"traceparent": STORED["traceparent"], "tracestate": "vendor=1"}
    assert headers == effects == expected
    assert span is trace.INVALID_SPAN
    assert spans.get_finished_spans() == ()


@pytest.mark.usefixtures("not_recording")
def test_without_recording_no_context_gives_no_headers() -> None:
    with telemetry.send_span(TRACER, "alert.raised", "e-1", {}) as headers:
        assert headers == {}
    assert telemetry.start_process_span(TRACER, "x", "e-1", None, "c")[1] == {}


# A process of its own per call: the providers a service installs, as `make run` or a deployment starts it.
_RESOURCES = """
import json, os, sys
from opentelemetry import metrics, trace
from shared.telemetry import setup_metrics, setup_tracing

assert setup_tracing("alerting") and setup_metrics("alerting")
spans = trace.get_tracer_provider().resource.attributes
measures = metrics.get_meter_provider()._sdk_config.resource.attributes  # the meter provider has no accessor
print(json.dumps([dict(spans), dict(measures)]))
sys.stdout.flush()
os._exit(0)  # nothing listens at the endpoint: no export at exit
"""


def _resources(**env: str) -> tuple[dict[str, str], dict[str, str]]:
    """The resource of a new process's spans, and of its metrics."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(PYTHONPATH=str(ROOT), OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", **env)
    probe = subprocess.run(
        [sys.executable, "-c", _RESOURCES], env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    spans, measures = json.loads(probe.stdout)
    return spans, measures


def test_each_process_says_which_instance_of_its_service_it_is_in_its_traces_and_metrics() -> None:
    """Replicas of a service sample the same outbox and consumers: their gauges differ by this attribute only."""
    first, second = _resources(), _resources()
    for spans, measures in (first, second):
        assert spans["service.name"] == measures["service.name"] == "alerting"
        assert spans["service.instance.id"] == measures["service.instance.id"]
        assert uuid.UUID(spans["service.instance.id"]).version == 4
    assert first[0]["service.instance.id"] != second[0]["service.instance.id"]


def test_an_instance_id_the_operator_sets_is_the_one_reported() -> None:
    spans, measures = _resources(
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=production,service.instance.id=alerting-7"
    )
    assert spans["service.instance.id"] == measures["service.instance.id"] == "alerting-7"
    assert spans["deployment.environment"] == measures["deployment.environment"] == "production"
