"""The services' OpenAPI documents say how they refuse: every error an RFC 9457 problem (``application/problem+json``,
the ``Problem`` schema), with the statuses each operation can really answer; never FastAPI's default 422
``HTTPValidationError``. Client code (the tablet app, the nurse dashboard) is generated from these documents."""

from __future__ import annotations

import importlib
import re
import uuid
from typing import Annotated, Any

import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from shared.http.idempotency import KEY_PATTERN, check_key
from shared.http.openapi import ProblemMember, authenticates, document_problems, problem_responses, raises
from shared.http.problems import Problem
from shared.http.routes import RequestOnlyRoute

SERVICES = ["questionnaire", "alerting", "devices"]
PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM = {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}
WRITES = {"post", "put", "patch", "delete"}


def _document(service: str) -> dict[str, Any]:
    app: FastAPI = importlib.import_module(f"services.{service}.main").app
    document: dict[str, Any] = app.openapi()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def _errors(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if int(status) >= 400}


@pytest.mark.parametrize("service", SERVICES)
def test_no_operation_documents_fastapi_s_validation_error(service: str) -> None:
    document = _document(service)
    assert b"HTTPValidationError" not in orjson.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_problem_schema_holds_what_the_services_send(service: str) -> None:
    problem = _document(service)["components"]["schemas"]["Problem"]
    assert problem["type"] == "object"
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    members = set(problem["properties"])
    assert {"type", "title", "status", "detail", "instance"} <= members
    # The extension members refusals put in problems (shared/http/problems.py, limits.py and the routes).
    assert {"pointer", "errors", "accepted", "alert_status", "state", "action"} <= members
    assert "alert" not in members  # only a close's 412 holds one, and says what it is (below)
    assert set(problem["properties"]["errors"]["items"]["properties"]) == {"pointer", "detail"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_response_is_a_problem(service: str) -> None:
    for method, path, operation in _operations(_document(service)):
        assert _errors(operation), (method, path)
        for status in _errors(operation):
            response = operation["responses"][str(status)]
            assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            schema = response["content"]["application/problem+json"]["schema"]
            # The Problem schema, or (a problem holding more) the Problem schema and the members it adds.
            assert schema == {"$ref": PROBLEM_REF} or schema["allOf"][0] == {"$ref": PROBLEM_REF}, (method, path)
            assert response["description"], (method, path, status)


@pytest.mark.parametrize("service", SERVICES)
def test_what_every_operation_and_every_write_can_answer_is_documented(service: str) -> None:
    for method, path, operation in _operations(_document(service)):
        # A NUL in the address (400), an unexpected error (500), load shedding or the database out of reach (503).
        assert {400, 500, 503} <= _errors(operation), (method, path)
        retry_after = operation["responses"]["503"]["headers"]["Retry-After"]
        assert retry_after["required"] and retry_after["schema"]["type"] == "integer"
        if method in WRITES:  # limits.BodySizeLimit: too large; not JSON, or compressed
            assert {413, 415} <= _errors(operation), (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_that_reads_a_bearer_token_says_so(service: str) -> None:
    document = _document(service)
    scheme = document["components"]["securitySchemes"]["bearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "make token" in scheme["description"]
    for method, path, operation in _operations(document):
        # What can answer 401 reads a token; what cannot (the dashboard's configuration) needs none.
        expected: list[dict[str, list[str]]] | None = [{"bearerToken": []}] if 401 in _errors(operation) else None
        if (service, method, path) == LIVE_STREAM:
            continue  # a stream token will do instead (below)
        assert operation.get("security") == expected, (method, path)


LIVE_STREAM = ("alerting", "get", "/v1/alerts/stream")


def test_the_live_stream_takes_a_bearer_token_or_a_stream_token_in_its_address() -> None:
    document = _document("alerting")
    stream = document["paths"][LIVE_STREAM[2]][LIVE_STREAM[1]]
    assert stream["security"] == [{"bearerToken": []}, {"streamToken": []}]  # either one
    scheme = document["components"]["securitySchemes"]["streamToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "query", "stream_token")
    assert "POST /v1/alerts/stream-token" in scheme["description"] and "EventSource" in scheme["description"]
    # The scheme is how it is sent: not a parameter besides.
    assert "stream_token" not in {p["name"] for p in stream["parameters"]}
    assert {p["name"] for p in stream["parameters"]} == {"since", "Last-Event-ID"}


@pytest.mark.parametrize("service", SERVICES)
def test_no_other_operation_takes_a_stream_token(service: str) -> None:
    document = _document(service)
    for method, path, operation in _operations(document):
        if (service, method, path) != LIVE_STREAM:
            assert {"streamToken": []} not in operation.get("security", []), (method, path)
    if service != "alerting":
        assert "streamToken" not in document["components"]["securitySchemes"]


def test_the_live_stream_is_documented_as_server_sent_events() -> None:
    ok = _document("alerting")["paths"]["/v1/alerts/stream"]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    assert "Last-Event-ID" in ok["description"]
    # Found by the API fuzz: only the stream as a whole was documented (a string), which tools reading an event
    # stream's schema as one event's (schemathesis, OpenAPI before 3.2) took to say each event is a string. Each
    # event is documented as OpenAPI 3.2 does (itemSchema): the fields of the frames encode_alert_event writes.
    stream = ok["content"]["text/event-stream"]
    assert stream["schema"] == {"type": "string"}
    event = stream["itemSchema"]
    assert event["type"] == "object" and event["required"] == ["data"]
    assert set(event["properties"]) == {"event", "data", "id"}
    assert {"reset", "alert.raised", "alert.updated", "alert.reopened"} <= set(event["properties"]["event"]["enum"])
    assert event["properties"]["id"]["pattern"] == "^[0-9]{1,20}$"


# What the routes' own code and their dependencies raise (grep `Problem(`), as the documents must say it.
EXPECTED = {
    "questionnaire": {
        ("post", "/v1/submissions"): {401, 403, 422},  # a RequestOnlyRoute: it reads its token and body itself
        ("get", "/v1/questionnaires"): {401},
        ("get", "/v1/questionnaires/{questionnaire_id}"): {401, 404},  # any text is an id: nothing to validate
        ("get", "/v1/submissions/{submission_id}"): {401, 403, 404, 422},
        ("post", "/v1/messages"): {401, 403, 422},
        ("get", "/v1/audit"): {401, 403, 422},
    },
    "alerting": {
        ("get", "/v1/alerts/{alert_id}"): {401, 403, 404, 422},
        ("post", "/v1/alerts/{alert_id}/ack"): {401, 403, 404, 409, 422},
        ("post", "/v1/alerts/{alert_id}/resolve"): {401, 403, 404, 409, 412, 422},
        ("post", "/v1/alerts/{alert_id}/reopen"): {401, 403, 404, 409, 422},
        ("get", "/v1/alerts/stream"): {401, 403},  # its parameters are free text: none can fail validation
        ("delete", "/v1/patients/{patient_id}/expected-levels/{term}"): {401, 403, 404, 422},
        ("get", "/v1/dashboard/config"): set(),  # no token needed
        ("post", "/v1/dashboard/dev-token"): {404, 422},
        ("get", "/v1/reference"): set(),
        ("get", "/v1/me"): {401, 403},
    },
    "devices": {
        ("post", "/v1/heartbeats"): {401, 403, 422},  # a RequestOnlyRoute
        ("post", "/v1/tablets"): {401, 403, 409, 422},
        ("get", "/v1/tablets/{tablet_id}"): {401, 403, 404, 422},
        ("post", "/v1/tablets/{tablet_id}/loan"): {401, 403, 404, 409, 422},
        ("post", "/v1/loans/{loan_id}/accessories"): {401, 403, 404, 409, 422},
        ("get", "/v1/fleet"): {401, 403, 422},
    },
}


@pytest.mark.parametrize("service", SERVICES)
def test_each_operation_documents_the_statuses_its_code_raises(service: str) -> None:
    paths = _document(service)["paths"]
    for (method, path), statuses in EXPECTED[service].items():
        assert _errors(paths[path][method]) - {400, 413, 415, 500, 503} == statuses, (method, path)


# The one problem that holds the alert: a close naming a version the alert has left (412 alert-changed).
ALERT_CHANGED = ("alerting", "post", "/v1/alerts/{alert_id}/resolve", 412)


def test_the_412_of_a_close_holds_the_alert_as_its_200_answers_it() -> None:
    document = _document("alerting")
    _, method, path, status = ALERT_CHANGED
    responses = document["paths"][path][method]["responses"]
    closed = responses["200"]["content"]["application/json"]["schema"]
    changed = responses[str(status)]["content"]["application/problem+json"]["schema"]
    problem, holding = changed["allOf"]
    assert problem == {"$ref": PROBLEM_REF}
    assert holding["required"] == ["alert"]
    alert = holding["properties"]["alert"]
    assert alert["$ref"] == closed["$ref"] == "#/components/schemas/AlertView"
    assert "as it is now" in alert["description"]
    assert "updated_at" in document["components"]["schemas"]["AlertView"]["properties"]
    assert "ETag" in responses[str(status)]["headers"]


@pytest.mark.parametrize("service", SERVICES)
def test_no_other_problem_is_documented_as_holding_more_than_the_problem_schema(service: str) -> None:
    for method, path, operation in _operations(_document(service)):
        for status in _errors(operation):
            if (service, method, path, status) == ALERT_CHANGED:
                continue
            assert operation["responses"][str(status)]["content"] == PROBLEM, (method, path, status)


def test_documented_successes_are_kept() -> None:
    questionnaire, alerting, devices = (_document(s)["paths"] for s in SERVICES)
    accepted = questionnaire["/v1/submissions"]["post"]["responses"]["202"]["content"]["application/json"]
    assert accepted["schema"] == {"$ref": "#/components/schemas/SubmissionAccepted"}
    assert "200" in alerting["/v1/alerts/stream"]["get"]["responses"]
    assert "204" in alerting["/v1/patients/{patient_id}/expected-levels/{term}"]["delete"]["responses"]
    granted = devices["/v1/tablets/{tablet_id}/loan"]["post"]["responses"]["201"]["content"]["application/json"]
    assert granted["schema"] == {"$ref": "#/components/schemas/LoanGranted"}


# Where a missing Idempotency-Key is refused (400): the tablet's writes. The fleet's commands take one if sent.
KEY_REQUIRED = {
    ("questionnaire", "post", "/v1/submissions"): True,
    ("questionnaire", "post", "/v1/messages"): True,
    ("questionnaire", "post", "/v1/photos"): True,
    ("questionnaire", "post", "/v1/patients/{patient_id}/submissions"): True,  # a nurse's answers taken by phone
}


@pytest.mark.parametrize("service", SERVICES)
def test_every_idempotency_key_is_documented_as_the_service_reads_it(service: str) -> None:
    # Found by the API fuzz: /v1/messages refused a message without a key (400) that its document said was
    # optional, and no document said which keys are refused (400): keys the documents allowed were not taken.
    documented = 0
    for method, path, operation in _operations(_document(service)):
        for parameter in operation.get("parameters", []):
            if parameter["name"].lower() != "idempotency-key":
                continue
            documented += 1
            assert parameter["in"] == "header"
            assert parameter["required"] is KEY_REQUIRED.get((service, method, path), False), (method, path)
            schema = parameter["schema"]
            assert schema["type"] == "string" and schema["pattern"] == KEY_PATTERN, (method, path, schema)
            for key in ("12345678", "a.b_c:d-e", "k" * 128, str(uuid.uuid4())):
                assert re.fullmatch(schema["pattern"], key) and check_key(key) == key
            for key in ("1234567", "k" * 129, "with space", "clé-00001", "key/0001"):
                assert not re.fullmatch(schema["pattern"], key), key
                with pytest.raises(Problem):
                    check_key(key)
    assert documented == {"questionnaire": 4, "alerting": 0, "devices": 9}[service]


# --- The mechanism, on an app of its own --------------------------------------------------------------------------


# Module-level: the routes' annotations name them (postponed annotations are resolved in the module's namespace).
@raises(401)
async def _caller(request: Request) -> str:
    return "someone"


@raises(403)
async def _admin(who: Annotated[str, Depends(_caller)]) -> str:
    return who


KEY_SCHEME = {"type": "apiKey", "in": "query", "name": "key", "description": "A key."}


@authenticates("queryKey", KEY_SCHEME)
@raises(401)
async def _caller_or_key(request: Request, key: Annotated[str | None, Query(include_in_schema=False)] = None) -> str:
    return key or "someone"


class Thing(BaseModel):
    id: int


class Unlisted(BaseModel):
    id: int


def _app() -> FastAPI:
    router = APIRouter(prefix="/v1")

    taken = {"thing": ProblemMember(Thing, "The thing as it is now.")}

    @router.post(
        "/things/{thing_id}/take", response_model=Thing, responses=problem_responses(409, members={409: taken})
    )
    async def take_thing(thing_id: int) -> Thing:
        return Thing(id=thing_id)

    @router.get("/things/{thing_id}", responses=problem_responses(404))
    async def thing(thing_id: int, _: Annotated[str, Depends(_admin)]) -> dict[str, int]:
        return {"id": thing_id}

    @router.get("/keyed")
    async def keyed(_: Annotated[str, Depends(_caller_or_key)]) -> list[str]:
        return []

    @router.get("/search")
    async def search(q: str | None = None, page: Annotated[int, Query(ge=1)] = 1) -> list[str]:
        return []

    @router.get("/echo/{text}")
    async def echo(text: str, note: str | None = None) -> str:
        return text

    raw = APIRouter(prefix="/v1", route_class=RequestOnlyRoute)

    @raw.post("/raw", status_code=202, responses=problem_responses(401, 422))
    async def take(request: Request) -> Response:
        return Response(status_code=202)

    app = FastAPI()
    app.include_router(router)
    app.include_router(raw)
    document_problems(app)
    return app


def test_a_dependency_s_problems_are_documented_on_every_route_depending_on_it() -> None:
    paths = _app().openapi()["paths"]
    assert _errors(paths["/v1/things/{thing_id}"]["get"]) == {400, 401, 403, 404, 422, 500, 503}


def test_a_dependency_taking_another_credential_offers_it_beside_the_bearer_token_on_its_routes_only() -> None:
    document = _app().openapi()
    assert document["paths"]["/v1/keyed"]["get"]["security"] == [{"bearerToken": []}, {"queryKey": []}]
    assert document["paths"]["/v1/things/{thing_id}"]["get"]["security"] == [{"bearerToken": []}]
    assert document["components"]["securitySchemes"]["queryKey"] == KEY_SCHEME
    assert "parameters" not in document["paths"]["/v1/keyed"]["get"]


def test_fastapi_s_422_is_a_problem_where_a_parameter_can_fail_validation_and_gone_where_none_can() -> None:
    paths = _app().openapi()["paths"]
    assert paths["/v1/search"]["get"]["responses"]["422"]["content"] == PROBLEM  # page >= 1
    assert _errors(paths["/v1/echo/{text}"]["get"]) == {400, 500, 503}  # any text will do


def test_a_request_only_route_documents_what_it_declares_and_what_every_write_can_answer() -> None:
    responses = _app().openapi()["paths"]["/v1/raw"]["post"]["responses"]
    assert set(responses) == {"202", "400", "401", "413", "415", "422", "500", "503"}


def test_a_problem_holding_a_model_documents_it_as_the_model_s_schema() -> None:
    document = _app().openapi()
    responses = document["paths"]["/v1/things/{thing_id}/take"]["post"]["responses"]
    assert responses["409"]["content"]["application/problem+json"]["schema"] == {
        "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {
                "type": "object",
                "required": ["thing"],
                "properties": {
                    "thing": {"$ref": "#/components/schemas/Thing", "description": "The thing as it is now."}
                },
            },
        ]
    }
    assert responses["400"]["content"] == PROBLEM  # the operation's other problems are plain ones
    assert "Thing" in document["components"]["schemas"]


def test_a_problem_member_whose_model_the_document_lacks_is_refused() -> None:
    app = FastAPI()
    members = {409: {"thing": ProblemMember(Unlisted, "The thing.")}}

    @app.post("/things", status_code=204, responses=problem_responses(409, members=members))
    async def take() -> None:
        return None

    document_problems(app)
    with pytest.raises(RuntimeError, match="Unlisted"):
        app.openapi()


def test_the_document_is_made_once_and_served_as_made() -> None:
    app = _app()
    assert app.openapi() is app.openapi()
    assert "Problem" in app.openapi()["components"]["schemas"]
