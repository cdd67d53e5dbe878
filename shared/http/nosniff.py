"""No answer of a service may have its type guessed by a browser: ``X-Content-Type-Options: nosniff`` on every one.

A browser that sniffs may run as a script or show as a page what was sent as JSON: a problem's ``detail``, a FHIR
export, a patient's message in the live stream (``text/event-stream``). The pages and the photos set it already
(``page_security``, the photo route); this sets it on everything else, whatever the path, refusals included, and
keeps a route's own (one value, not two).

Strict-Transport-Security is not set here: the services speak plain HTTP behind the hospital's TLS proxy, and a
browser ignores that header on an answer that did not come over HTTPS (RFC 6797, section 8.1). The proxy, which
holds the certificate, sets it (deploy/kubernetes/README.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp

from shared.http.default_header import DefaultHeader


class NoSniff(DefaultHeader):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, "X-Content-Type-Options", "nosniff")
