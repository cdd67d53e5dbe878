"""Each staff page's sign-in with the hospital's identity provider, on the server's side (shared.http.sign_in): the
fleet page's settings are checked at start-up exactly as the dashboard's are, and its config and its
Content-Security-Policy name the provider's endpoints the same way; while the provider is out of reach, the policy
names the configured issuer's origin, and the config says so and how often to ask again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerting import dashboard
from services.alerting.main import AlertingSettings
from services.devices import fleet_page
from services.devices.main import DevicesSettings
from shared.http.sign_in import ProviderSignIn, provider_origin
from shared.oidc import token_service
from shared.testing.oidc import AUTH_PATH, LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey

PROVIDER: dict[str, Any] = {
    "STAFF_TOKEN_ISSUER": "https://sso.chu.example/realms/ward",
    "STAFF_TOKEN_AUDIENCE": "oncofollow-api",
}
PAGES = [(AlertingSettings, "DASHBOARD", "the dashboard"), (DevicesSettings, "FLEET", "the fleet page")]


@pytest.mark.parametrize(("settings", "prefix", "page"), PAGES)
@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OIDC_CLIENT_ID": "oncofollow-page"}, "{prefix}_OIDC_CLIENT_ID needs STAFF_TOKEN_ISSUER"),
        ({**PROVIDER, "OIDC_CLIENT_ID": "two words"}, "{prefix}_OIDC_CLIENT_ID must be {page}'s client id"),
        ({**PROVIDER, "OIDC_CLIENT_ID": 'a"quote'}, "{prefix}_OIDC_CLIENT_ID must be {page}'s client id"),
        ({**PROVIDER, "OIDC_CLIENT_ID": "x" * 256}, "{prefix}_OIDC_CLIENT_ID must be {page}'s client id"),
        ({**PROVIDER, "OIDC_SCOPES": "profile email"}, "{prefix}_OIDC_SCOPES must be space-separated scopes including"),
        ({**PROVIDER, "OIDC_SCOPES": "openid pro\\file"}, "{prefix}_OIDC_SCOPES must be space-separated scopes"),
    ],
)
def test_a_page_sign_in_that_cannot_work_stops_the_service_at_start_up(
    settings: Any, prefix: str, page: str, env: dict[str, str], says: str
) -> None:
    named = {k if k.startswith("STAFF_") else f"{prefix}_{k}": v for k, v in env.items()}
    with pytest.raises(ValidationError, match=says.format(prefix=prefix, page=page)):
        settings(**named)


def test_the_fleet_page_sign_in_settings_and_their_defaults() -> None:
    assert (DevicesSettings().fleet_oidc_client_id, DevicesSettings().fleet_oidc_scopes) == (None, "openid profile")
    settings = DevicesSettings(**PROVIDER, FLEET_OIDC_CLIENT_ID="oncofollow-fleet", FLEET_OIDC_SCOPES=" openid  email")
    assert (settings.fleet_oidc_client_id, settings.fleet_oidc_scopes) == ("oncofollow-fleet", "openid email")


def platform_for(settings: Any) -> Any:
    """What a page's config reads of the running service: its settings and its tokens (with the provider)."""
    return SimpleNamespace(settings=settings, tokens=token_service(settings))


async def test_the_fleet_page_reads_the_provider_endpoints_and_may_post_to_its_token_endpoint() -> None:
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("k1"), client_id="fleet", redirect_uri="http://127.0.0.1:9/fleet/", audience="api", user={}
        )
        settings = DevicesSettings(
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE="api",
            FLEET_OIDC_CLIENT_ID="fleet",
            FLEET_OIDC_SCOPES="openid profile offline_access",
        )
        platform = platform_for(settings)
        config = (await fleet_page.fleet_config(platform)).model_dump()
        assert config == {
            "development": True,
            "provider_sign_in": {
                "issuer": idp.issuer,
                "client_id": "fleet",
                "scopes": "openid profile offline_access",
                "authorization_endpoint": idp.base + AUTH_PATH,
                "token_endpoint": idp.base + TOKEN_PATH,
                "end_session_endpoint": idp.base + LOGOUT_PATH,
            },
            "provider_unavailable": False,
            "provider_origin": idp.base,
            "provider_recheck_s": 30.0,
            "enrolment_codes": False,
        }
        policy = (await fleet_page.page_headers(platform))["Content-Security-Policy"]
        assert f"connect-src 'self' {idp.base};" in policy, policy

        # The dashboard's config, from the same code, names its own client.
        alerting = platform_for(
            AlertingSettings(STAFF_TOKEN_ISSUER=idp.issuer, STAFF_TOKEN_AUDIENCE="api", DASHBOARD_OIDC_CLIENT_ID="dash")
        )
        provider, unavailable = await dashboard.provider_sign_in(alerting)
        assert provider is not None and not unavailable
        assert (provider.client_id, provider.token_endpoint) == ("dash", idp.base + TOKEN_PATH)


async def test_without_a_client_id_the_fleet_page_calls_itself_only_and_out_of_reach_the_configured_issuer() -> None:
    plain = platform_for(DevicesSettings())
    assert (await fleet_page.fleet_config(plain)).model_dump() == {
        "development": True,
        "provider_sign_in": None,
        "provider_unavailable": False,
        "provider_origin": None,
        "provider_recheck_s": 30.0,
        "enrolment_codes": False,
    }
    assert "connect-src 'self';" in (await fleet_page.page_headers(plain))["Content-Security-Policy"]

    idp = FakeIdentityProvider()  # not started: nothing listens on its port
    settings = DevicesSettings(
        STAFF_TOKEN_ISSUER=idp.issuer,
        STAFF_TOKEN_AUDIENCE="api",
        STAFF_TOKEN_FETCH_TIMEOUT_S="1",
        STAFF_SIGN_IN_RECHECK_S="2.5",
        FLEET_OIDC_CLIENT_ID="fleet",
    )
    out_of_reach = platform_for(settings)
    config = (await fleet_page.fleet_config(out_of_reach)).model_dump()
    assert config == {
        "development": True,
        "provider_sign_in": None,
        "provider_unavailable": True,
        "provider_origin": idp.base,  # the configured issuer's: the page loaded now may renew there once it is back
        "provider_recheck_s": 2.5,
        "enrolment_codes": False,
    }
    policy = (await fleet_page.page_headers(out_of_reach))["Content-Security-Policy"]
    assert f"connect-src 'self' {idp.base};" in policy, policy


ISSUER = "https://sso.chu.example/realms/ward"


def endpoints(token_endpoint: str) -> ProviderSignIn:
    return ProviderSignIn(
        issuer=ISSUER,
        client_id="fleet",
        scopes="openid",
        authorization_endpoint=f"{ISSUER}/auth",
        token_endpoint=token_endpoint,
        end_session_endpoint=None,
    )


@pytest.mark.parametrize(
    ("provider", "unavailable", "issuer", "origin"),
    [
        # Discovery worked: the token endpoint's own origin, wherever it is, and not the issuer's.
        (endpoints(f"{ISSUER}/token"), False, ISSUER, "https://sso.chu.example"),
        (endpoints("https://TOKENS.chu.example:8443/t"), False, ISSUER, "https://tokens.chu.example:8443"),
        # Out of reach: the configured issuer's.
        (None, True, ISSUER, "https://sso.chu.example"),
        (None, True, "http://127.0.0.1:9000/realms/ward", "http://127.0.0.1:9000"),
        # No sign-in with the provider: nothing.
        (None, False, ISSUER, None),
        (None, False, None, None),
        # A token endpoint no policy may name: left out, the page as strict as without it.
        (endpoints("https://user:secret@sso.chu.example/token"), False, ISSUER, None),
    ],
)
def test_the_provider_origin_a_page_may_call(
    provider: ProviderSignIn | None, unavailable: bool, issuer: str | None, origin: str | None
) -> None:
    assert provider_origin(provider, unavailable, issuer) == origin


@pytest.mark.parametrize("value", ["0", "0.4", "3601", "soon"])
def test_a_recheck_interval_out_of_bounds_stops_the_service_at_start_up(value: str) -> None:
    with pytest.raises(ValidationError, match="STAFF_SIGN_IN_RECHECK_S"):
        DevicesSettings(STAFF_SIGN_IN_RECHECK_S=value)
