"""Routes for the hottest endpoints: the tablet's ingress, called at every submission and heartbeat.

Such an endpoint takes only the ``Request`` and builds its ``Response`` itself (it reads its token, key
and body there, and answers problems by raising them). FastAPI would still solve its (empty) dependencies
and look at what it returns for each request: about 30 µs, measured against 50 µs for everything else
of a minimal request through the same middleware. ``RequestOnlyRoute`` (FastAPI's documented hook, a
custom ``APIRoute.get_route_handler``) calls the endpoint directly, and keeps the route's OpenAPI
description. Declaring anything FastAPI would have to resolve on such a route is refused at start-up, so
that no parameter is silently left unchecked; so is a route that does not declare the 401 its own token
check answers (``responses=problem_responses(…)``), since FastAPI cannot see that check to document it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_RESOLVED = ("path_params", "query_params", "header_params", "cookie_params", "body_params", "dependencies")


class RequestOnlyRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        declared = [kind for kind in _RESOLVED if getattr(self.dependant, kind)]
        if declared or self.dependant.request_param_name is None:
            raise TypeError(
                f"{endpoint.__name__} on {path}: a request-only route takes just `request: Request` and returns "
                f"a Response; it declares {', '.join(declared) or 'no request parameter'}"
            )
        if not {401, "401"} & set(self.responses):
            raise TypeError(
                f"{endpoint.__name__} on {path}: a request-only route reads its token itself, so it must declare "
                "the problems it answers (at least 401) with responses=problem_responses(…)"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint
