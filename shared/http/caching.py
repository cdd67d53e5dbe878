"""No answer of the API is kept by a cache: they hold patient data (an alert, a timeline, a loan's receipt) or
credentials (a device token from an enrolment or a loan).

A browser keeps what it is not told otherwise in its disk cache, where the next user of a shared ward computer (or
anyone who copies the profile) finds it, and a proxy that ignores the rule on ``Authorization`` keeps it for
everyone. ``Cache-Control: no-store`` on every ``/v1/`` answer, refusals included (a 412 holds the alert); a route
that sets its own (a photo's ``private, no-store``, the live stream's) keeps it. The pages and their files are not
concerned: they hold nothing of a patient, and are meant to be cached.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from shared.http.default_header import DefaultHeader


class NoStore(DefaultHeader):
    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        super().__init__(app, "Cache-Control", "no-store", prefix)
