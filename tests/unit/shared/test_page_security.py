"""The pages' security headers, from one builder (shared/http/page_security.py): each page's pinned as it is
served, and what the builder refuses to write."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.alerting.dashboard import page_headers as dashboard_headers
from services.devices.fleet_page import FLEET_PAGE
from services.devices.fleet_page import page_headers as fleet_headers
from services.questionnaire.main import tablet_headers
from shared.http.page_security import SELF, PageSecurity, origin_of
from shared.oidc import SignInEndpoints

# What every page is served with, whatever its own policy: never framed, no type sniffed, no plugin, no <base>
# elsewhere, scripts and styles its own files only.
NEVER_FRAMED = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
FIXED = "script-src 'self'; style-src 'self'"
CLOSED = "object-src 'none'; base-uri 'none'"


def test_the_tablet_page_s_headers() -> None:
    assert tablet_headers(None) == {
        # Its manifest and icons (tablet/manifest.webmanifest) from this origin only: a home-screen app; and its
        # service worker (tablet/sw.js), which keeps the page's files for when it opens offline.
        "Content-Security-Policy": f"default-src 'none'; {FIXED}; img-src 'self' data:; manifest-src 'self'; "
        f"worker-src 'self'; connect-src 'self'; {CLOSED}; form-action 'none'; frame-ancestors 'none'",
        **NEVER_FRAMED,
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Cache-Control": "no-cache",
    }
    with_heartbeats = tablet_headers("https://Devices.example.org:8443")["Content-Security-Policy"]
    assert "; connect-src 'self' https://devices.example.org:8443; " in with_heartbeats


class _Provider:
    issuer = "https://idp.example.org/realms/chu"

    def __init__(self, token_endpoint: str | None) -> None:
        self.token_endpoint = token_endpoint

    async def sign_in_endpoints(self) -> SignInEndpoints | None:
        if self.token_endpoint is None:
            return None  # out of reach
        return SignInEndpoints(f"{self.issuer}/auth", self.token_endpoint, None)


def _dashboard(provider: _Provider | None) -> Any:
    settings = SimpleNamespace(
        questionnaire_public_url="https://soins.example.org/questionnaire",
        dashboard_oidc_client_id="dashboard" if provider else None,
        dashboard_oidc_scopes="openid",
    )
    return SimpleNamespace(settings=settings, tokens=SimpleNamespace(provider=provider))


async def test_the_dashboard_s_headers_with_and_without_the_identity_provider() -> None:
    def policy(connect: str) -> dict[str, str]:
        return {
            "Content-Security-Policy": f"default-src 'self'; {FIXED}; img-src 'self' data: blob:; "
            f"connect-src {connect}; {CLOSED}; form-action 'self'; frame-ancestors 'none'",
            **NEVER_FRAMED,
            "Referrer-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        }

    alone = "'self' https://soins.example.org"
    assert await dashboard_headers(_dashboard(None)) == policy(alone)
    # The provider out of reach: its configured issuer's origin, so that a page loaded now can renew a session once
    # the provider is back (the token endpoint is almost always there).
    assert await dashboard_headers(_dashboard(_Provider(None))) == policy(f"{alone} https://idp.example.org")
    signing_in = _dashboard(_Provider("https://idp.example.org/realms/chu/protocol/openid-connect/token"))
    assert await dashboard_headers(signing_in) == policy(f"{alone} https://idp.example.org")
    # A discovery document naming a token endpoint no page can be allowed to reach: left out, the page still served.
    odd = _dashboard(_Provider("https://user@idp.example.org/token"))
    assert await dashboard_headers(odd) == policy(alone)


def _fleet(provider: _Provider | None) -> Any:
    settings = SimpleNamespace(fleet_oidc_client_id="fleet" if provider else None, fleet_oidc_scopes="openid")
    return SimpleNamespace(settings=settings, tokens=SimpleNamespace(provider=provider))


async def test_the_fleet_page_s_headers_with_and_without_the_identity_provider() -> None:
    def policy(connect: str) -> dict[str, str]:
        return {
            "Content-Security-Policy": f"default-src 'none'; {FIXED}; img-src 'self' data:; connect-src {connect}; "
            f"{CLOSED}; form-action 'none'; frame-ancestors 'none'",
            **NEVER_FRAMED,
            "Referrer-Policy": "no-referrer",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            "Cache-Control": "no-cache",
        }

    assert await fleet_headers(_fleet(None)) == policy("'self'")
    assert await fleet_headers(_fleet(_Provider(None))) == policy("'self' https://idp.example.org")
    signing_in = _fleet(_Provider("https://idp.example.org/realms/chu/protocol/openid-connect/token"))
    assert await fleet_headers(signing_in) == policy("'self' https://idp.example.org")
    assert await fleet_headers(_fleet(_Provider("https://user@idp.example.org/token"))) == policy("'self'")


def test_one_more_origin_is_one_call_and_an_origin_already_there_is_not_repeated() -> None:
    page = FLEET_PAGE.connecting_to("https://idp.example.org/realms/chu/token", None, "", "https://IDP.example.org")
    assert page.connect_src == (SELF, "https://idp.example.org")
    assert "connect-src 'self' https://idp.example.org;" in page.headers()["Content-Security-Policy"]
    assert FLEET_PAGE.connect_src == (SELF,)  # a page's policy is a value: the page itself is unchanged
    shown = FLEET_PAGE.showing_images_from("http://[::1]:8080/x.png").content_security_policy()
    assert "img-src 'self' data: http://[::1]:8080;" in shown


@pytest.mark.parametrize(
    "address",
    [
        "soins.example.org",
        "/token",
        "javascript:alert(1)",
        "ftp://soins.example.org",
        "https://user@soins.example.org",
        "https://soins.example.org;script-src *",
        "https://soins example.org",
        "https://soins.example.org\r\nSet-Cookie: a=b",
    ],
)
def test_an_address_that_is_not_an_http_origin_is_refused_never_written(address: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        FLEET_PAGE.connecting_to(address)
    assert origin_of(None) is None and origin_of(" ") is None


@pytest.mark.parametrize("source", ["'unsafe-inline'", "'unsafe-eval'", "*", "https:", "'none'", "data: blob:"])
def test_no_page_can_be_given_a_source_that_loosens_it(source: str) -> None:
    with pytest.raises(ValueError, match="not a source"):
        PageSecurity(img_src=(SELF, source))
    with pytest.raises(ValueError, match="not a source"):
        PageSecurity(connect_src=(source,))


def test_a_permission_is_a_feature_s_name() -> None:
    with pytest.raises(ValueError, match="feature"):
        PageSecurity(features_denied=("camera=*",))
    assert "Permissions-Policy" not in PageSecurity().headers()
    assert PageSecurity(features_denied=("camera",)).headers()["Permissions-Policy"] == "camera=()"
