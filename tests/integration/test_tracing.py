"""One submission is one trace: the POST, the outbox publish, the alerting consumer, the alert's publish, and its
hand-over to the dashboards."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def test_one_submission_is_one_trace_across_both_services(platform: Any, spans: InMemorySpanExporter) -> None:
    patient = uuid.uuid4()
    response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202

    def named(name: str) -> list[Any]:
        return [s for s in spans.get_finished_spans() if s.name == name]

    async def alert_sent() -> bool:
        return bool(named("send alert.raised")) and bool(named("process alert.raised"))

    await eventually(alert_sent)
    post = next(s for s in named("POST /v1/submissions") if s.kind == SpanKind.SERVER)
    send_submitted = named("send questionnaire.submitted")[0]
    process_submitted = named("process questionnaire.submitted")[0]
    send_raised = named("send alert.raised")[0]

    trace_id = post.context.trace_id
    assert {s.context.trace_id for s in (send_submitted, process_submitted, send_raised)} == {trace_id}
    assert send_submitted.kind == SpanKind.PRODUCER and send_submitted.parent.span_id == post.context.span_id
    assert process_submitted.kind == SpanKind.CONSUMER
    assert process_submitted.parent.span_id == send_submitted.context.span_id
    assert [link.context.span_id for link in process_submitted.links] == [send_submitted.context.span_id]
    assert process_submitted.attributes["messaging.system"] == "nats"
    assert process_submitted.attributes["messaging.consumer.group.name"] == "alerting-questionnaire-submitted"
    assert send_raised.parent.span_id == process_submitted.context.span_id
    # The last hop: the alert handed to the dashboards this alerting process serves.
    (to_screens,) = [s for s in named("process alert.raised") if s.context.trace_id == trace_id]
    assert to_screens.kind == SpanKind.CONSUMER and to_screens.parent.span_id == send_raised.context.span_id
    assert to_screens.attributes["messaging.consumer.group.name"] == "live-alerts"
    assert to_screens.attributes["oncofollow.live_clients"] >= 0

    # No patient data in any span of the trace: no patient id, no answer, no free text.
    forbidden = {str(patient), "nausea"}
    for span in spans.get_finished_spans():
        if span.context.trace_id != trace_id:
            continue
        for key, value in (span.attributes or {}).items():
            assert not any(word in str(value) for word in forbidden), (span.name, key, value)


async def test_server_spans_keep_no_query_string_and_no_client_address(
    platform: Any, spans: InMemorySpanExporter
) -> None:
    # A query string can carry a credential (the dashboard's ?stream_token=), and the caller's address is a
    # patient's, at home: neither may reach whoever reads the traces.
    secret = "eyJhbGciOiJIUzI1NiJ9.secret"
    response = await platform.alerting.get(f"/v1/alerts?level=red&stream_token={secret}", headers=platform.staff())
    assert response.status_code == 200

    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER and s.name == "GET /v1/alerts"]
    assert server, [s.name for s in spans.get_finished_spans()]
    attributes = dict(server[0].attributes or {})
    assert any(key in attributes for key in ("http.url", "url.full")), attributes
    assert not any(secret in str(value) or "stream_token" in str(value) for value in attributes.values()), attributes
    client = {k: v for k, v in attributes.items() if k in ("net.peer.ip", "client.address")}
    assert client and set(client.values()) == {"redacted"}, attributes
