"""Trace context through NATS headers, with spans recorded and without."""

from __future__ import annotations

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
