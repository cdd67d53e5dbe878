"""How the services are served: uvicorn's httptools protocol answering unreadable HTTP with a problem.

HTTP that the httptools parser cannot read (a control byte in the request line, a Content-Length that is not a
number or is sent twice with different values, an invalid header name, a bad chunk size, …) never reaches the
app: uvicorn answers it itself, with a ``text/plain`` "Invalid HTTP request received.". ``ProblemHttpToolsProtocol``
answers it as every other refusal is answered, with an RFC 9457 problem (``shared.http.problems``). Only that
error path is overridden: parsing and every well-formed request go through uvicorn's class unchanged.

Every start of a service names it with ``--http`` (``HTTP_PROTOCOL``): ``uvicorn_command`` is the command line
that ``make run``, the tests and the benchmark run, and that the deployment files spell out
(tests/contract/test_deploy.py holds them to it).
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared.http.problems import MEDIA_TYPE, problem_document

# The parser's own message (llhttp's reason) is not repeated: what a caller sent is never reflected nor logged,
# and the sentence below says what to look at.
MALFORMED_HTTP_DETAIL = (
    "The request is not valid HTTP/1.1 and could not be read; check the request line and headers "
    "(and the chunk sizes of a chunked body)."
)
_BODY = orjson.dumps(problem_document(400, MALFORMED_HTTP_DETAIL, kind="malformed-http"))
_HEADERS = b"".join(
    [
        b"content-type: " + MEDIA_TYPE.encode("ascii") + b"\r\n",
        b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
        b"connection: close\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"\r\n",
    ]
)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, whose 400 for unreadable HTTP is an ``application/problem+json`` problem."""

    def send_400_response(self, msg: str) -> None:
        # uvicorn's msg is its fixed "Invalid HTTP request received." (already logged as a warning, without the
        # request's bytes); the answer is built as uvicorn builds it (its default headers: date, server), then
        # the connection is closed, since the parser cannot tell where the next request would start.
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([_HEADERS, _BODY])
        self.transport.write(b"".join(content))
        self.transport.close()


# What uvicorn --http is given (the class, as an import string).
HTTP_PROTOCOL = "shared.http.protocol:ProblemHttpToolsProtocol"

UVICORN_OPTIONS = (
    "--http",
    HTTP_PROTOCOL,
    # Request lines can carry ids and query strings; traces cover requests instead.
    "--no-access-log",
    # Live streams never end by themselves: past this, uvicorn closes them and stops.
    "--timeout-graceful-shutdown",
    "5",
)


def uvicorn_command(service: str, host: str, port: int) -> list[str]:
    """``uvicorn services.<service>.main:app`` on host:port with the options every start of a service passes."""
    return ["uvicorn", f"services.{service}.main:app", "--host", host, "--port", str(port), *UVICORN_OPTIONS]
