"""A query parameter that takes one value is sent once: ``?limit=5&limit=500`` is refused (400 ``repeated-parameter``),
where FastAPI would take the last value and say nothing. Which one the caller meant would be a guess, as for a header
sent twice (``limits.BodySizeLimit``). A parameter that takes a list (``?status=open&status=acknowledged``) is sent
as repeated values, as ever.

``single_valued_query`` is a dependency of every route of the services but the request-only ones (which take no
parameter FastAPI resolves); it looks at the route only when a name comes twice in the query string.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.dependencies.models import Dependant

from shared.http.openapi import raises
from shared.http.problems import Problem

_SEQUENCES = (list, tuple, set, frozenset, Sequence)


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter annotated so takes a list of values (``list[X] | None`` does)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_takes_many(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is typing.Annotated:
        return _takes_many(typing.get_args(annotation)[0])
    candidate = origin or annotation
    return isinstance(candidate, type) and issubclass(candidate, _SEQUENCES) and candidate not in (str, bytes)


def _query_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)


_SINGLE: dict[int, frozenset[str]] = {}  # id(route) -> the names of its query parameters that take one value


def single_valued_names(route: Any) -> frozenset[str]:
    names = _SINGLE.get(id(route))
    if names is None:
        dependant = getattr(route, "dependant", None)
        params = _query_params(dependant) if dependant is not None else ()
        names = frozenset(p.alias for p in params if not _takes_many(p.field_info.annotation))
        _SINGLE[id(route)] = names
    return names


@raises(400)
async def single_valued_query(request: Request) -> None:
    raw = request.scope.get("query_string", b"")
    if not raw or b"&" not in raw:
        return
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if not repeated:
        return
    single = single_valued_names(request.scope.get("route"))
    refused = [name for name in repeated if name in single]
    if refused:
        name = refused[0]
        raise Problem(
            400,
            f"Send the {name} query parameter once: this request has it more than once, and which value counts "
            "would be a guess.",
            kind="repeated-parameter",
            pointer=f"/{name}",
        )
