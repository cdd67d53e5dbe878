"""The services' OpenAPI documents tell the truth about errors: every refusal is an RFC 9457 problem
(``application/problem+json``, the ``Problem`` schema), never FastAPI's default 422 ``HTTPValidationError``.

What an operation can answer is declared where it is decided:

- a route declares the problems its own code raises: ``responses=problem_responses(404, 409)`` on its decorator
  (a ``RequestOnlyRoute`` also declares those of the token, key and body it reads itself), and with ``members=``
  what one of them holds beyond the Problem schema, documented as a model's schema (a close's 412: its alert);
- a dependency declares the problems it raises with ``@raises(401)``, and every route depending on it, directly or
  through another dependency, documents them (``shared.http.security``); what answers 401 reads a bearer token
  (``bearerToken``), or, where a dependency is marked ``@authenticates(name, scheme)``, that scheme's credential
  instead (the live alert stream's ``stream_token``);
- ``document_problems`` (called by the app factory) adds what holds for every operation of a service: 400 (a NUL
  character in the address, ``limits.BodySizeLimit``), 500 (the catch-all handler of ``problems``), 503 with
  Retry-After (load shedding, ``limits.ConcurrencyLimit``, the database out of reach or too busy,
  ``shared.http.transient``, or the identity provider out
  of reach for a staff token it issued, ``shared.http.security``); for every write (any
  method but GET, HEAD and OPTIONS), 413 and 415 (``limits.BodySizeLimit``: too large, not JSON, compressed); and
  422 where FastAPI validates a parameter that can fail validation, or a body is read (it can hold a NUL character).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from shared.http.problems import MEDIA_TYPE, PROBLEM_TYPE_BASE, RETRY_AFTER_S

SCHEMAS = "#/components/schemas/"
PROBLEM_REF = f"{SCHEMAS}Problem"
_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong, in a sentence a person can act on (`detail`). Members "
    "other than the five of RFC 9457 are sent by the refusals that name them; a client ignores those it does not "
    "know.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": f"What kind of problem, for programs: {PROBLEM_TYPE_BASE} and a kind, such as "
            "`not-found`, `malformed-json`, `invalid-token`, `alert-conflict`, `unsupported-media-type`.",
        },
        "title": {"type": "string", "description": "The status's title, such as `Not found`."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What went wrong and what to change."},
        "instance": {"type": "string", "format": "uri-reference", "description": "The path of the request."},
        "pointer": {
            "type": "string",
            "description": "Where the offending value is, as a JSON Pointer (RFC 6901) into the body, or `/` and "
            "the name of a path, query or header parameter; for a request that failed validation, its first error's.",
        },
        "errors": {
            "type": "array",
            "description": "A request that failed validation: each invalid value (the first one is in `detail` "
            "and `pointer`).",
            "items": {
                "type": "object",
                "required": ["pointer", "detail"],
                "properties": {
                    "pointer": {
                        "type": "string",
                        "description": "The body member, or `/` and the name of a path, query or header parameter.",
                    },
                    "detail": {"type": "string"},
                },
            },
        },
        "accepted": {
            "type": "array",
            "items": {"type": "string"},
            "description": "415 `unsupported-media-type`: the media types a body may be sent as.",
        },
        "alert_status": {
            "type": "string",
            "enum": ["open", "acknowledged", "resolved"],
            "description": "409 `alert-conflict` (alerting): the alert's status now.",
        },
        "state": {"type": "string", "description": "409 `illegal-transition` (devices): the tablet's state."},
        "action": {"type": "string", "description": "409 `illegal-transition` (devices): the step refused."},
        "serial_number": {
            "type": "string",
            "description": "409 `duplicate-serial` (devices): the serial number already registered, in upper case.",
        },
        "max_days": {"type": "integer", "description": "422 (metrics): the longest period that may be asked for."},
        "not_before": {
            "type": "string",
            "format": "date-time",
            "description": "422 (a wipe): the earliest date it may be recorded at, when the tablet came back.",
        },
    },
}

_DESCRIPTIONS = {
    400: "The request cannot be read (`detail` says why): for example malformed JSON, a missing or invalid header "
    "this operation reads, a header or a query parameter sent twice, or a NUL character in the address.",
    401: "No bearer token, or one that is invalid, expired or revoked.",
    403: "The token is of the wrong kind, lacks the role, or is for another patient.",
    404: "There is no such resource, or none this caller may see.",
    409: "What is asked conflicts with the resource as it is now (its state, or a value already taken).",
    410: "What was asked for was good once and is no more: for example a one-time code already used or expired.",
    412: "The resource changed since the version named in If-Match.",
    413: "The request body is larger than this service accepts.",
    415: "The body is sent as something other than JSON in UTF-8, or compressed (a Content-Encoding other than "
    "identity).",
    422: "The request cannot be applied as it is (`pointer` says where; a validation problem's `errors` lists every "
    "invalid value): for example a value invalid or out of range, or an Idempotency-Key used before for another "
    "request.",
    500: "Something went wrong on the service's side.",
    503: "The service or its database is busy, the service cannot reach its database, or it cannot reach the "
    "hospital's identity provider to check "
    "a staff token: send the request again after Retry-After seconds (a write sent again with the same "
    "Idempotency-Key is never applied twice).",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The scheme to use: `Bearer realm="oncofollow"`.',
            "schema": {"type": "string"},
        }
    },
    412: {"ETag": {"description": "The resource's version now, for a new If-Match.", "schema": {"type": "string"}}},
    415: {
        "Accept-Post": {
            "description": "A POST whose media type is refused: the media types accepted.",
            "schema": {"type": "string"},
        },
        "Accept-Encoding": {
            "description": "A body sent compressed: `identity` (send it uncompressed).",
            "schema": {"type": "string"},
        },
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before sending the request again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "examples": [RETRY_AFTER_S]},
        }
    },
}

# What every operation of a service can answer (module docstring), and every write besides.
EVERY_OPERATION = (400, 500, 503)
EVERY_WRITE = (413, 415)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ProblemMember:
    """A member one of a route's problems always holds, beyond the Problem schema's: a resource, as ``model``.

    Documented as a reference to the model's schema, the one the operations answering that model use: the
    model must be the response model of some operation of the service (the document is refused otherwise)."""

    model: type[BaseModel]
    description: str


def documented_problem(status: int, members: Mapping[str, ProblemMember] | None = None) -> dict[str, Any]:
    """The OpenAPI response object of a problem with this status (and these members, for the one route that
    answers them: the Problem schema, and the members it adds)."""
    schema: dict[str, Any] = {"$ref": PROBLEM_REF}
    if members:
        holding = {
            "type": "object",
            "required": sorted(members),
            "properties": {
                name: {"$ref": f"{SCHEMAS}{member.model.__name__}", "description": member.description}
                for name, member in sorted(members.items())
            },
        }
        schema = {"allOf": [schema, holding]}
    response: dict[str, Any] = {"description": _DESCRIPTIONS[status], "content": {MEDIA_TYPE: {"schema": schema}}}
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def problem_responses(
    *statuses: int, members: Mapping[int, Mapping[str, ProblemMember]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """For a route's ``responses=``: the problems its own code answers; ``members``, by status, what one of
    them holds beyond the Problem schema (``alert`` in a close's 412: the alert as it is now)."""
    members = members or {}
    if unknown := set(members) - set(statuses):
        raise ValueError(f"members of problems the route does not answer: {sorted(unknown)}")
    return {status: documented_problem(status, members.get(status)) for status in statuses}


_MARK = "__problem_statuses__"
Call = TypeVar("Call", bound=Callable[..., Any])


def raises(*statuses: int) -> Callable[[Call], Call]:
    """Marks a dependency with the problems it answers: the routes depending on it document them."""

    def mark(call: Call) -> Call:
        setattr(call, _MARK, frozenset(statuses))
        return call

    return mark


_ALTERNATIVES = "__security_alternatives__"


def authenticates(name: str, scheme: Mapping[str, Any]) -> Callable[[Call], Call]:
    """Marks a dependency that takes, instead of the bearer token, the credential of another security scheme
    (``scheme``, an OpenAPI security scheme object, under ``name``): the routes depending on it offer both,
    either one being enough."""

    def mark(call: Call) -> Call:
        setattr(call, _ALTERNATIVES, {**getattr(call, _ALTERNATIVES, {}), name: dict(scheme)})
        return call

    return mark


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


_TEXT = (str, str | None)


def _can_fail(field: Any, in_path: bool) -> bool:
    """Whether FastAPI's validation of a parameter can refuse a value: anything but optional text without
    constraints (a path segment is never missing)."""
    info = field.field_info
    return info.annotation not in _TEXT or bool(info.metadata) or (info.is_required() and not in_path)


def operation_problems(route: Any) -> set[int]:
    """Every status an operation can answer with a problem (module docstring)."""
    statuses = set(EVERY_OPERATION)
    if set(route.methods or ()) & _WRITES:
        statuses.update(EVERY_WRITE)
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        statuses.add(422)
    statuses.update(int(status) for status in route.responses if str(status).isdigit() and int(status) >= 400)
    for dependant in _dependants(route.dependant):
        statuses.update(getattr(dependant.call, _MARK, ()))
        if any(_can_fail(f, in_path=True) for f in dependant.path_params) or any(
            _can_fail(f, in_path=False)
            for f in (*dependant.query_params, *dependant.header_params, *dependant.cookie_params)
        ):
            statuses.add(422)
    return statuses


BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A device token (one per tablet loan, given by the devices service when the tablet is loaned) "
    "or a staff token: one the hospital's identity provider issues (OpenID Connect: signed with its key, RS256 or "
    "ES256 by default, with `iss`, `aud`, `sub`, `exp` and the platform roles at the configured claim), or, outside "
    "production only, one signed with the development secret. In development, `make token PATIENT=<uuid>` and "
    "`make token ROLE=nurse` print one.",
}


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(ref := node.get("$ref"), str):
            yield ref
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _problems_documented(app: FastAPI, document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        statuses = operation_problems(context)
        for method in context.methods or ():
            operation = document["paths"][context.path_format][method.lower()]
            if 401 in statuses:  # what answers 401 reads a bearer token, or another credential instead
                security_schemes = components.setdefault("securitySchemes", {})
                security_schemes["bearerToken"] = copy.deepcopy(BEARER_SCHEME)
                operation["security"] = [{"bearerToken": []}]
                for dependant in _dependants(context.dependant):
                    for name, scheme in getattr(dependant.call, _ALTERNATIVES, {}).items():
                        security_schemes[name] = copy.deepcopy(scheme)
                        operation["security"].append({name: []})
            responses = operation["responses"]
            for key in [k for k in responses if k.isdigit() and int(k) >= 400]:
                if int(key) not in statuses or _VALIDATION_ERROR in repr(responses[key]):
                    del responses[key]  # FastAPI's own 422 (where nothing can even fail validation, too)
            for status in statuses:
                responses.setdefault(str(status), copy.deepcopy(documented_problem(status)))
                for ref in _references(responses[str(status)]):
                    if ref.startswith(SCHEMAS) and ref.removeprefix(SCHEMAS) not in schemas:
                        raise RuntimeError(
                            f"{method} {context.path_format}: its {status} problem holds a "
                            f"{ref.removeprefix(SCHEMAS)}, a schema no operation's response defines"
                        )
            in_order = sorted(responses.items())
            responses.clear()
            responses.update(in_order)
    if _VALIDATION_ERROR not in repr(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def document_problems(app: FastAPI) -> None:
    """Makes ``app.openapi()`` (and /openapi.json, /docs) document every refusal as the problem it is."""
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()
        if not documented or documented[0] is not document:  # FastAPI generates it again when routes are added
            _problems_documented(app, document)
            documented[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
