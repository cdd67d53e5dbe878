"""RequestOnlyRoute: the endpoint gets the request as it came, problems still become RFC 9457 answers, the
OpenAPI description stays, and a parameter FastAPI would have had to resolve is refused at start-up."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from shared.http.openapi import problem_responses
from shared.http.problems import Problem, install_problem_handlers
from shared.http.routes import RequestOnlyRoute


def _app() -> FastAPI:
    router = APIRouter(prefix="/v1", route_class=RequestOnlyRoute)

    @router.post("/echo", status_code=202, summary="Echo the body", responses=problem_responses(401, 422))
    async def echo(request: Request) -> Response:
        body = await request.body()
        if not body:
            raise Problem(422, "Send a body to echo.")
        return Response(body, status_code=202, media_type="text/plain", headers={"X-Key": request.headers["x-key"]})

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    return app


async def _post(app: FastAPI, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/v1/echo", content=body, headers={"X-Key": "k1"})


async def test_the_endpoint_answers_with_its_own_response() -> None:
    response = await _post(_app(), b"hello")
    assert (response.status_code, response.text, response.headers["x-key"]) == (202, "hello", "k1")


async def test_a_problem_it_raises_is_an_rfc_9457_answer() -> None:
    response = await _post(_app(), b"")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "Send a body to echo."


def test_the_route_keeps_its_openapi_description() -> None:
    operation = _app().openapi()["paths"]["/v1/echo"]["post"]
    assert operation["summary"] == "Echo the body"


def test_a_parameter_fastapi_would_resolve_is_refused_at_start_up() -> None:
    router = APIRouter(route_class=RequestOnlyRoute)

    async def with_query(request: Request, limit: int) -> Response:
        return Response()

    with pytest.raises(TypeError, match="query_params"):
        router.add_api_route("/x", with_query, methods=["GET"], responses=problem_responses(401))


def test_a_route_that_does_not_declare_its_token_s_problems_is_refused_at_start_up() -> None:
    # FastAPI cannot see the token check inside the endpoint: the OpenAPI document would not say 401.
    router = APIRouter(route_class=RequestOnlyRoute)

    async def endpoint(request: Request) -> Response:
        return Response()

    with pytest.raises(TypeError, match="at least 401"):
        router.add_api_route("/x", endpoint, methods=["POST"], responses=problem_responses(422))
    router.add_api_route("/x", endpoint, methods=["POST"], responses=problem_responses(401, 422))


def test_an_endpoint_without_the_request_is_refused_at_start_up() -> None:
    router = APIRouter(route_class=RequestOnlyRoute)

    async def without_request() -> Response:
        return Response()

    with pytest.raises(TypeError, match="no request parameter"):
        router.add_api_route("/x", without_request, methods=["GET"], responses=problem_responses(401))


@pytest.mark.parametrize("service", ["questionnaire", "alerting", "devices"])
def test_a_service_s_own_routes_are_tried_before_the_docs_and_probes(service: str) -> None:
    import importlib

    from starlette.routing import Match

    app: FastAPI = importlib.import_module(f"services.{service}.main").app
    tablet_post = {"type": "http", "method": "POST", "path": "/v1/submissions", "root_path": ""}
    first = app.router.routes[0].matches(tablet_post)[0]
    if service == "questionnaire":
        assert first == Match.FULL  # the hottest route is the very first tried
    probes = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz"}
    paths = [getattr(route, "path", None) for route in app.router.routes]
    first_probe = min(paths.index(p) for p in probes)
    own = [i for i, route in enumerate(app.router.routes) if getattr(route, "path", None) is None]
    assert own and max(own) < first_probe
