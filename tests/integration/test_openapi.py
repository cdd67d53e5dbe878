"""Reality against the document: refusals the running services really answer are documented, for the operation
that answered them, as the problem they are (the status, application/problem+json, the Problem schema). The
document is the one each service serves at /openapi.json."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.services import in_process, served
from tests.integration.test_nurse_workflow import open_alert

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
TOO_LARGE = b'{"padding": "' + b"x" * 70_000 + b'"}'  # over the default 64 KiB
_TYPES = {"string": str, "integer": int, "array": list, "object": dict}


@dataclass
class Service:
    name: str
    client: httpx.AsyncClient
    document: dict[str, Any]
    tokens: TokenService

    def staff(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token(f'{role}-1', {role})}"}

    def device(self, tablet: str = "tablet-test") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_device_token(uuid.uuid4(), tablet)}"}

    async def refused(self, method: str, template: str, status: int, url: str | None = None, **kwargs: Any) -> None:
        """Send a request the service refuses with ``status``; the document must say so for its operation."""
        response = await self.client.request(method, url or template, **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        operation = self.document["paths"][template][method.lower()]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {template} answers {status}, undocumented: {response.text}"
        assert documented["content"] == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        _conforms(response.json(), self.document["components"]["schemas"]["Problem"])
        for name, header in documented.get("headers", {}).items():
            assert name in response.headers or not header.get("required"), name


def _conforms(problem: dict[str, Any], schema: dict[str, Any]) -> None:
    """The problem has the members the schema requires, and each member the schema names has its type."""
    assert set(schema["required"]) <= set(problem), problem
    for name, value in problem.items():
        member = schema["properties"].get(name)
        assert member is not None, f"{name} is sent but not in the Problem schema"
        assert isinstance(value, _TYPES[member["type"]]), (name, value)


@pytest.fixture(params=["questionnaire", "alerting", "devices"])
async def service(
    request: pytest.FixtureRequest, service_env: dict[str, str], tokens: TokenService
) -> AsyncIterator[Service]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    build = {
        "questionnaire": lambda: build_questionnaire(QuestionnaireSettings(**env)),
        "alerting": lambda: build_alerting(AlertingSettings(**env)),
        "devices": lambda: build_devices(DevicesSettings(**env, SILENCE_CHECK_S="3600")),
    }[request.param]
    async with in_process(build()) as (client, _):
        served = await client.get("/openapi.json")
        assert served.status_code == 200
        yield Service(request.param, client, served.json(), tokens)


async def test_refusals_are_documented_for_the_operation_that_answers_them(service: Service) -> None:
    await REFUSALS[service.name](service)


async def _questionnaire(s: Service) -> None:
    tablet = {**s.device(), "Idempotency-Key": str(uuid.uuid4())}
    await s.refused("GET", "/v1/questionnaires", 400, "/v1/questionnaires?q=%00", headers=tablet)
    await s.refused("GET", "/v1/questionnaires/{questionnaire_id}", 404, "/v1/questionnaires/nope", headers=tablet)
    await s.refused("POST", "/v1/submissions", 401, content=b"{}")
    await s.refused(
        "POST", "/v1/submissions", 403, content=b"{}", headers={**s.staff("nurse"), "Idempotency-Key": "k" * 8}
    )
    await s.refused("POST", "/v1/submissions", 400, content=b"{", headers=tablet)
    await s.refused("POST", "/v1/submissions", 413, content=TOO_LARGE, headers=tablet)
    await s.refused(
        "POST", "/v1/submissions", 415, content=gzip.compress(b"{}"), headers={**tablet, "Content-Encoding": "gzip"}
    )
    await s.refused("POST", "/v1/submissions", 422, content=b'{"resourceType": "Patient"}', headers=tablet)
    await s.refused("POST", "/v1/messages", 415, content=b"bonjour", headers={**tablet, "Content-Type": "text/plain"})
    await s.refused("POST", "/v1/messages", 422, json={"text": ""}, headers=tablet)
    submission = "/v1/submissions/{submission_id}"
    await s.refused("GET", submission, 403, f"/v1/submissions/{uuid.uuid4()}", headers=s.staff("fleet"))
    await s.refused("GET", submission, 404, f"/v1/submissions/{uuid.uuid4()}", headers=tablet)
    await s.refused("GET", submission, 422, "/v1/submissions/not-a-uuid", headers=tablet)


async def _alerting(s: Service) -> None:
    nurse = s.staff("nurse")
    alert = f"/v1/alerts/{uuid.uuid4()}"
    await s.refused("GET", "/v1/alerts", 401)
    await s.refused("GET", "/v1/alerts", 403, headers=s.staff("fleet"))
    await s.refused("GET", "/v1/alerts", 422, "/v1/alerts?limit=0", headers=nurse)
    await s.refused("GET", "/v1/alerts/{alert_id}", 404, alert, headers=nurse)
    await s.refused("POST", "/v1/alerts/{alert_id}/ack", 404, f"{alert}/ack", headers=nurse)
    resolve = ("POST", "/v1/alerts/{alert_id}/resolve")
    await s.refused(*resolve, 413, f"{alert}/resolve", content=TOO_LARGE, headers=nurse)
    await s.refused(
        *resolve, 415, f"{alert}/resolve", content=b"outcome=x", headers={**nurse, "Content-Type": "text/plain"}
    )
    await s.refused(*resolve, 422, f"{alert}/resolve", json={"outcome": "nope"}, headers=nurse)
    await s.refused(
        *resolve, 400, f"{alert}/resolve", json={"outcome": "phone_call"}, headers={**nurse, "If-Match": "x"}
    )
    await s.refused(*resolve, 404, f"{alert}/resolve", json={"outcome": "phone_call"}, headers=nurse)
    await s.refused("GET", "/v1/alerts/stream", 401, "/v1/alerts/stream?stream_token=nope")
    await s.refused("GET", "/v1/alerts/stream", 400, headers={**nurse, "Last-Event-ID": "x"})
    term = "/v1/patients/{patient_id}/expected-levels/{term}"
    await s.refused("DELETE", term, 404, f"/v1/patients/{uuid.uuid4()}/expected-levels/nope", headers=nurse)
    await s.refused("POST", "/v1/dashboard/dev-token", 422, json={"staff_id": "nobody"})


async def _devices(s: Service) -> None:
    fleet = s.staff("fleet")
    tablet = {"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9"}
    await s.refused("POST", "/v1/heartbeats", 401, json={})
    await s.refused("POST", "/v1/heartbeats", 403, json={}, headers=fleet)
    await s.refused("POST", "/v1/heartbeats", 422, json={"battery_percent": 900}, headers=s.device(str(uuid.uuid4())))
    await s.refused("POST", "/v1/tablets", 413, content=TOO_LARGE, headers=fleet)
    await s.refused("POST", "/v1/tablets", 415, content=b"R52", headers={**fleet, "Content-Type": "text/plain"})
    await s.refused("POST", "/v1/tablets", 422, json={**tablet, "serial_number": "!"}, headers=fleet)
    twice = [*fleet.items(), ("Idempotency-Key", "key-00001"), ("Idempotency-Key", "key-00002")]
    await s.refused("POST", "/v1/tablets", 400, json=tablet, headers=twice)
    assert (await s.client.post("/v1/tablets", json=tablet, headers=fleet)).status_code == 201
    await s.refused("POST", "/v1/tablets", 409, json=tablet, headers=fleet)
    await s.refused("POST", "/v1/tablets", 403, json=tablet, headers=s.staff("nurse"))
    await s.refused("GET", "/v1/tablets/{tablet_id}", 404, f"/v1/tablets/{uuid.uuid4()}", headers=fleet)
    step = "/v1/tablets/{tablet_id}/actions/{action}"
    await s.refused("POST", step, 404, f"/v1/tablets/{uuid.uuid4()}/actions/loan", json={}, headers=fleet)
    await s.refused("POST", step, 422, f"/v1/tablets/{uuid.uuid4()}/actions/fly", json={}, headers=fleet)
    await s.refused("GET", "/v1/fleet", 422, "/v1/fleet?period_days=0", headers=fleet)


REFUSALS = {"questionnaire": _questionnaire, "alerting": _alerting, "devices": _devices}


def _members(schema: dict[str, Any], document: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
    """What an object schema requires and the members it names, through its ``$ref`` and ``allOf``."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return _members(document["components"]["schemas"][name], document)
    required, properties = set(schema.get("required", ())), dict(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        more, named = _members(part, document)
        required |= more
        properties.update(named)
    return required, properties


async def test_a_close_s_412_holds_the_alert_as_the_document_says(platform: Any) -> None:
    """The one problem with a member the Problem schema lacks: the alert as it is now, as an AlertView."""
    document = (await platform.alerting.get("/openapi.json")).json()
    alert = await open_alert(platform, uuid.uuid4())
    changed = await platform.alerting.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"outcome": "phone_call"},
        headers={**platform.staff(), "If-Match": '"2000-01-01T00:00:00Z"'},  # a version it has left
    )
    assert changed.status_code == 412, changed.text
    documented = document["paths"]["/v1/alerts/{alert_id}/resolve"]["post"]["responses"]["412"]
    required, members = _members(documented["content"][PROBLEM]["schema"], document)
    problem = changed.json()
    assert required <= set(problem) <= set(members), problem
    assert "alert" in required
    alert_required, alert_members = _members(members["alert"], document)
    assert alert_required <= set(problem["alert"]) <= set(alert_members)
    assert set(problem["alert"]) == set(alert_members)  # every member of an AlertView, as a 200 holds it
    assert problem["alert"]["id"] == alert["id"]


@pytest.mark.parametrize("service", ["questionnaire"], indirect=True)
async def test_the_fhir_reads_are_documented_as_the_fhir_json_they_answer(service: Service) -> None:
    # Found by the API fuzz: the document said application/json, with no schema, for what is sent as
    # application/fhir+json (a Bundle, a Questionnaire); a client generated from it would refuse the answer.
    tablet = service.device()
    for template, url, resource_type in (
        ("/v1/questionnaires", "/v1/questionnaires", "Bundle"),
        ("/v1/questionnaires/{questionnaire_id}", "/v1/questionnaires/reconnect-symptoms", "Questionnaire"),
    ):
        response = await service.client.get(url, headers=tablet)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/fhir+json"
        documented = service.document["paths"][template]["get"]["responses"]["200"]["content"]
        assert list(documented) == ["application/fhir+json"], documented
        schema = documented["application/fhir+json"]["schema"]
        assert schema["properties"]["resourceType"] == {"const": resource_type}
        assert set(schema["required"]) <= set(response.json())


async def test_the_live_stream_sends_the_events_its_document_describes(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    # Found by the API fuzz: the frames the stream sends (here the reset of an id it never sent) are what the
    # document's itemSchema says an event is.
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-1', {'nurse'})}", "Last-Event-ID": "408"}
    async with (
        served(build_alerting(AlertingSettings(**env))) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        schema = (await client.get("/openapi.json")).json()["paths"]["/v1/alerts/stream"]["get"]
        event_schema = schema["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
        async with client.stream("GET", "/v1/alerts/stream", headers=nurse) as response:
            assert response.status_code == 200
            lines = []
            async for line in response.aiter_lines():
                if not line:
                    break
                lines.append(line)
    event = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
    assert event == {"event": "reset", "data": "{}"}
    assert set(event_schema["required"]) <= set(event) <= set(event_schema["properties"])
    assert event["event"] in event_schema["properties"]["event"]["enum"]
