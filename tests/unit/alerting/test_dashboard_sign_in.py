"""The dashboard's sign-in with the hospital's identity provider is checked before the service starts, and the
provider's own endpoints reach the page from the server's discovery; staff names come from a configurable claim."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerting.main import AlertingSettings
from shared.auth import TokenService, display_name
from shared.oidc import IdentityProvider, SignInEndpoints
from shared.settings import ServiceSettings
from shared.testing.oidc import AUTH_PATH, DISCOVERY_PATH, LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey

PROVIDER: dict[str, Any] = {
    "STAFF_TOKEN_ISSUER": "https://sso.chu.example/realms/ward",
    "STAFF_TOKEN_AUDIENCE": "oncofollow-api",
}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DASHBOARD_OIDC_CLIENT_ID": "oncofollow-dashboard"}, "DASHBOARD_OIDC_CLIENT_ID needs STAFF_TOKEN_ISSUER"),
        ({**PROVIDER, "DASHBOARD_OIDC_CLIENT_ID": "two words"}, "DASHBOARD_OIDC_CLIENT_ID must be the dashboard's"),
        ({**PROVIDER, "DASHBOARD_OIDC_CLIENT_ID": 'a"quote'}, "DASHBOARD_OIDC_CLIENT_ID must be the dashboard's"),
        ({**PROVIDER, "DASHBOARD_OIDC_SCOPES": "profile email"}, "including openid"),
        ({"STAFF_TOKEN_NAME_CLAIM": " name"}, "STAFF_TOKEN_NAME_CLAIM must be a claim name"),
    ],
)
def test_a_sign_in_that_cannot_work_is_refused_at_start_up(env: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        AlertingSettings(**env)


def test_the_sign_in_settings_and_their_defaults() -> None:
    settings = AlertingSettings(**PROVIDER, DASHBOARD_OIDC_CLIENT_ID="oncofollow-dashboard")
    assert (settings.dashboard_oidc_client_id, settings.dashboard_oidc_scopes) == (
        "oncofollow-dashboard",
        "openid profile",
    )
    assert AlertingSettings(DASHBOARD_OIDC_SCOPES="  openid   profile  email ").dashboard_oidc_scopes == (
        "openid profile email"
    )
    assert ServiceSettings().staff_token_name_claim == "name"
    assert AlertingSettings().dashboard_oidc_client_id is None


def test_a_display_name_from_its_claim_else_the_username_on_one_line() -> None:
    assert display_name({"name": "Claire Martin", "preferred_username": "cmartin"}) == "Claire Martin"
    assert display_name({"preferred_username": "cmartin"}) == "cmartin"
    assert display_name({"name": "  ", "preferred_username": "cmartin"}) == "cmartin"
    assert display_name({"displayName": "Claire\nMartin\x00"}, "displayName") == "Claire Martin"
    assert display_name({"name": 42}) is None
    assert display_name({}) is None
    assert len(display_name({"name": "x" * 500}) or "") == 120


def test_development_tokens_carry_a_name() -> None:
    tokens = TokenService("a-secret-for-this-test-0123456789abcdef", "oncofollow-dev", "oncofollow")
    named = tokens.verify(tokens.issue_staff_token("ide-claire", {"nurse"}, name="Claire Martin"))
    unnamed = tokens.verify(tokens.issue_staff_token("ide-karim", {"nurse"}))
    assert (getattr(named, "name", None), getattr(unnamed, "name", None)) == ("Claire Martin", None)


async def test_the_provider_names_its_sign_in_endpoints_and_the_name_claim_is_read() -> None:
    key = SigningKey.rsa("k1")
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            key,
            client_id="dash",
            redirect_uri="http://127.0.0.1:9/dashboard/",
            audience="api",
            user={"sub": "opaque-1", "given": "Claire M.", "roles": ["nurse"]},
        )
        provider = IdentityProvider(issuer=idp.issuer, audience="api", name_claim="given")
        assert await provider.sign_in_endpoints() == SignInEndpoints(
            idp.base + AUTH_PATH, idp.base + TOKEN_PATH, idp.base + LOGOUT_PATH
        )
        staff, expires = await provider.verify(idp.access_token())
        assert (staff.staff_id, staff.name, staff.roles) == ("opaque-1", "Claire M.", frozenset({"nurse"}))
        assert expires > time.time()
        fetched = idp.requests.count("/realms/ward/.well-known/openid-configuration")
        await provider.sign_in_endpoints()  # kept, not fetched for every page
        assert idp.requests.count("/realms/ward/.well-known/openid-configuration") == fetched


async def test_a_provider_out_of_reach_or_without_endpoints_gives_none() -> None:
    idp = FakeIdentityProvider()  # not started: nothing listens
    assert await IdentityProvider(issuer=idp.issuer, audience="api", timeout_s=1).sign_in_endpoints() is None
    with FakeIdentityProvider() as served:
        served.publish(SigningKey.rsa("k1").jwk)  # keys only: no authorization or token endpoint
        assert await IdentityProvider(issuer=served.issuer, audience="api").sign_in_endpoints() is None


async def test_a_token_endpoint_with_a_user_name_in_it_is_no_sign_in() -> None:
    """A browser refuses to fetch such an address and no page policy can name it: no button rather than a broken one."""
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("k1"),
            client_id="dash",
            redirect_uri="http://127.0.0.1:9/dashboard/",
            audience="api",
            user={"sub": "s"},
        )
        idp.documents[DISCOVERY_PATH][1]["token_endpoint"] = idp.base.replace("://", "://someone@") + TOKEN_PATH
        assert await IdentityProvider(issuer=idp.issuer, audience="api").sign_in_endpoints() is None


async def test_requests_that_come_while_the_endpoints_are_fetched_wait_for_them() -> None:
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("k1"),
            client_id="dash",
            redirect_uri="http://127.0.0.1:9/dashboard/",
            audience="api",
            user={},
        )
        idp.delay_s = 0.2  # the page and its config ask at once, while the provider is slow to answer
        provider = IdentityProvider(issuer=idp.issuer, audience="api")
        answers = await asyncio.gather(*(provider.sign_in_endpoints() for _ in range(3)))
        assert all(answer is not None and answer.token_endpoint == idp.base + TOKEN_PATH for answer in answers)
        assert idp.requests.count("/realms/ward/.well-known/openid-configuration") == 1
