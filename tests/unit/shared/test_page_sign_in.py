"""Each staff page's sign-in with the hospital's identity provider, on the server's side (shared.http.sign_in): the
fleet page's settings are checked at start-up exactly as the dashboard's are, and its config and its
Content-Security-Policy name the provider's endpoints the same way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerting import dashboard
from services.alerting.main import AlertingSettings
from services.devices import fleet_page
from services.devices.main import DevicesSettings
from shared.oidc import token_service
from shared.testing.oidc import AUTH_PATH, LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey

PROVIDER = {"STAFF_TOKEN_ISSUER": "https://sso.chu.example/realms/ward", "STAFF_TOKEN_AUDIENCE": "oncofollow-api"}
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
    settings = DevicesSettings(**PROVIDER, FLEET_OIDC_CLIENT_ID="oncofollow-fleet", FLEET_OIDC_SCOPES=" openid  email")  # type: ignore[arg-type]
    assert (settings.fleet_oidc_client_id, settings.fleet_oidc_scopes) == ("oncofollow-fleet", "openid email")


def platform_for(settings: Any) -> Any:
    """What a page's config reads of the running service: its settings and its tokens (with the provider)."""
    return SimpleNamespace(settings=settings, tokens=token_service(settings))


async def test_the_fleet_page_reads_the_provider_endpoints_and_may_post_to_its_token_endpoint() -> None:
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("k1"), client_id="fleet", redirect_uri="http://127.0.0.1:9/fleet/", audience="api", user={}
        )
        settings = DevicesSettings(  # type: ignore[call-arg]
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
        }
        policy = (await fleet_page.page_headers(platform))["Content-Security-Policy"]
        assert f"connect-src 'self' {idp.base};" in policy, policy

        # The dashboard's config, from the same code, names its own client.
        alerting = platform_for(
            AlertingSettings(STAFF_TOKEN_ISSUER=idp.issuer, STAFF_TOKEN_AUDIENCE="api", DASHBOARD_OIDC_CLIENT_ID="dash")  # type: ignore[call-arg]
        )
        provider, unavailable = await dashboard.provider_sign_in(alerting)
        assert provider is not None and not unavailable
        assert (provider.client_id, provider.token_endpoint) == ("dash", idp.base + TOKEN_PATH)


async def test_without_a_client_id_or_out_of_reach_the_fleet_page_offers_no_sign_in_and_calls_itself_only() -> None:
    plain = platform_for(DevicesSettings())
    assert (await fleet_page.fleet_config(plain)).model_dump() == {
        "development": True,
        "provider_sign_in": None,
        "provider_unavailable": False,
    }
    assert "connect-src 'self';" in (await fleet_page.page_headers(plain))["Content-Security-Policy"]

    idp = FakeIdentityProvider()  # not started: nothing listens on its port
    settings = DevicesSettings(  # type: ignore[call-arg]
        STAFF_TOKEN_ISSUER=idp.issuer,
        STAFF_TOKEN_AUDIENCE="api",
        STAFF_TOKEN_FETCH_TIMEOUT_S="1",
        FLEET_OIDC_CLIENT_ID="fleet",
    )
    out_of_reach = platform_for(settings)
    config = (await fleet_page.fleet_config(out_of_reach)).model_dump()
    assert config == {"development": True, "provider_sign_in": None, "provider_unavailable": True}
    assert "connect-src 'self';" in (await fleet_page.page_headers(out_of_reach))["Content-Security-Policy"]
