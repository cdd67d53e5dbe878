"""Which query parameters take one value (sent twice: 400 repeated-parameter) and which take a list."""

from __future__ import annotations

import importlib

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from shared.http.queries import single_valued_names
from shared.http.routes import RequestOnlyRoute

# The query parameters that take a list, sent as repeated values (?status=open&status=acknowledged).
LISTS = {("alerting", "/v1/alerts"): {"level", "status"}, ("devices", "/v1/tablets"): {"state"}}


@pytest.mark.parametrize("service", ["questionnaire", "alerting", "devices"])
def test_every_query_parameter_but_the_lists_takes_one_value(service: str) -> None:
    app: FastAPI = importlib.import_module(f"services.{service}.main").app
    checked = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or isinstance(route, RequestOnlyRoute) or not context.include_in_schema:
            continue
        checked += 1
        document = app.openapi()
        assert route.methods is not None  # an APIRoute always has its methods (GET when none is given)
        operation = document["paths"][route.path_format][min(route.methods).lower()]
        params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        # A credential sent in the query (the live stream's stream_token) is documented as its security scheme.
        schemes = document.get("components", {}).get("securitySchemes", {})
        for requirement in operation.get("security", []):
            for name in requirement:
                if schemes[name].get("type") == "apiKey" and schemes[name].get("in") == "query":
                    params.add(schemes[name]["name"])
        lists = LISTS.get((service, route.path_format), set())
        assert single_valued_names(route) == params - lists, route.path_format
    assert checked >= 5
