"""A nurse signs in to the dashboard with the hospital's account: Chromium goes to the test's identity provider
(authorization code with PKCE), comes back signed in under her name, and her colleagues see that name beside what
she does; she signs out through the provider, with her ID token as the hint. A forged answer, a refusal and an
account without the nurse's role sign nobody in. A sign-in screen loaded while the provider was out of reach turns
its button on by itself when the provider is back; a session whose page's policy does not name the provider's token
endpoint is not renewed there, and the banner signs her in again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from playwright.async_api import Page, expect

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.devservers import listening_sockets, port_of
from shared.testing.clock import PinnableClock
from shared.testing.oidc import DISCOVERY_PATH, LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey
from shared.testing.services import in_process, served
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

CLIENT_ID = "oncofollow-dashboard"
AUDIENCE = "oncofollow-api"
CLAIRE = {"sub": "f3c1e9a2-opaque-keycloak-id", "name": "Claire Martin", "roles": ["nurse"]}
BUTTON = "Se connecter avec le compte de l'hôpital"


@pytest.fixture
async def hospital(service_env: dict[str, str], tokens: Any, browser: Any) -> AsyncIterator[tuple[Ward, Any]]:
    """The ward, its alerting service taking the provider's tokens and signing the dashboard in there."""
    async with open_hospital(service_env, tokens, browser) as opened:
        yield opened


@pytest.fixture
async def rechecking(service_env: dict[str, str], tokens: Any, browser: Any) -> AsyncIterator[tuple[Ward, Any]]:
    """The same, its sign-in screen asking every second whether the provider is back, and the keys the provider's
    tokens are checked with fetched from their own address (its discovery document may fail without them)."""
    async with open_hospital(
        service_env, tokens, browser, STAFF_SIGN_IN_RECHECK_S="1", STAFF_TOKEN_JWKS_URL="{jwks}"
    ) as opened:
        yield opened


@asynccontextmanager
async def open_hospital(
    service_env: dict[str, str], tokens: Any, browser: Any, **more: str
) -> AsyncIterator[tuple[Ward, Any]]:
    listening = listening_sockets(1)[0]
    port = port_of(listening)
    with FakeIdentityProvider() as idp:
        url = f"http://127.0.0.1:{port}"
        sign_in = idp.enable_sign_in(
            SigningKey.rsa("ward-key"),
            client_id=CLIENT_ID,
            redirect_uri=f"{url}/dashboard/",
            audience=AUDIENCE,
            user=dict(CLAIRE),
        )
        env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
        given: dict[str, Any] = {name: value.format(jwks=idp.jwks_url) for name, value in more.items()}
        settings = AlertingSettings(
            **env,
            ESCALATION_CHECK_S="3600",
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE=AUDIENCE,
            DASHBOARD_OIDC_CLIENT_ID=CLIENT_ID,
            **given,
        )
        clock = PinnableClock()
        async with (
            in_process(build_questionnaire(QuestionnaireSettings(**env), clock=clock)) as (tablet, _),
            served(build_alerting(settings, clock=clock), listening) as (served_url, alerting),
        ):
            assert served_url == url
            ward = Ward(url, tablet, alerting, tokens, browser, clock)
            try:
                yield ward, idp
            finally:
                for tab in ward.tabs:
                    await tab.close()
        assert sign_in.exchanges  # the code was exchanged by the page itself


async def stored_token(page: Page) -> Any:
    return await page.evaluate("sessionStorage.getItem('oncofollow.staffToken')")


async def test_a_nurse_signs_in_with_the_hospital_account_and_colleagues_see_her_name(
    hospital: tuple[Ward, Any],
) -> None:
    ward, idp = hospital
    await ward.submit()
    tab = await ward.tab()
    page = await tab.new_page()
    response = await page.goto(f"{ward.url}/dashboard/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert f"connect-src 'self' http://127.0.0.1:8001 {idp.base}" in policy, policy

    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    await expect(page.locator("#staff-id")).to_have_text("Claire Martin")
    assert "code=" not in page.url and "state=" not in page.url, page.url
    assert page.url == f"{ward.url}/dashboard/" or page.url.startswith(f"{ward.url}/dashboard/#")
    assert await stored_token(page)

    await expect(rows(page)).to_have_count(1, timeout=10_000)
    await rows(page).first.locator("[data-action=ack]").click()
    await expect(rows(page).first).to_contain_text("Prise par Claire Martin")

    # A colleague signed in with a development token sees the name, not the provider's opaque id.
    colleague = await ward.dashboard("ide-karim")
    await expect(rows(colleague).first).to_contain_text("Prise par Claire Martin")
    await expect(rows(colleague).first).not_to_contain_text(CLAIRE["sub"])

    # Signing out goes through the provider with the ID token of this sign-in as its hint (no "Do you want to log
    # out?" there), and comes back to the dashboard signed out.
    await page.get_by_role("button", name="Se déconnecter").click()
    await expect(page.get_by_role("button", name=BUTTON)).to_be_visible()
    assert LOGOUT_PATH in idp.requests
    assert idp.sign_in.sign_outs == [{"sub": CLAIRE["sub"], "back": f"{ward.url}/dashboard/"}]
    assert page.url == f"{ward.url}/dashboard/"
    assert await stored_token(page) is None
    assert await page.evaluate("sessionStorage.getItem('oncofollow.idToken')") is None


async def test_a_forged_answer_a_refusal_or_an_account_without_the_role_signs_nobody_in(
    hospital: tuple[Ward, Any],
) -> None:
    ward, idp = hospital
    tab = await ward.tab()
    page = await tab.new_page()
    message = page.locator("#signin-message")

    # An answer this tab never asked for (a code and a state from elsewhere).
    await page.goto(f"{ward.url}/dashboard/?code=stolen-code&state=forged")
    await expect(message).to_contain_text("Cette connexion n'a pas été demandée depuis cet onglet")
    assert "code=" not in page.url
    assert await stored_token(page) is None
    assert TOKEN_PATH not in idp.requests  # nothing was exchanged

    # The provider refuses (the nurse cancelled, or her account is locked).
    idp.sign_in.refuse = "access_denied"
    await page.get_by_role("button", name=BUTTON).click()
    await expect(message).to_contain_text("Le service d'identité de l'hôpital a refusé la connexion")
    assert "error=" not in page.url
    assert await stored_token(page) is None

    # An account the provider signs in, but without the nurse's role.
    idp.sign_in.refuse = None
    idp.sign_in.user = {"sub": "a-pharmacist", "name": "Paul Durand", "roles": ["fleet"]}
    await page.get_by_role("button", name=BUTTON).click()
    await expect(message).to_contain_text("n'a pas le rôle infirmier·ère")
    assert await stored_token(page) is None
    await expect(page.locator("#app")).to_be_hidden()
    assert idp.sign_in.exchanges[-1]["grant_type"] == "authorization_code"


async def test_a_refresh_token_renews_the_session_silently_and_a_refused_refresh_brings_the_banner(
    hospital: tuple[Ward, Any],
) -> None:
    ward, idp = hospital
    idp.sign_in.refresh_tokens = True
    idp.sign_in.ttl_s = 6  # renewed half-way, 3 s after each sign-in or refresh
    tab = await ward.tab()
    page = await tab.new_page()
    await page.goto(f"{ward.url}/dashboard/")
    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#staff-id")).to_have_text("Claire Martin")
    first = await stored_token(page)

    await page.wait_for_function(
        "first => sessionStorage.getItem('oncofollow.staffToken') !== first", arg=first, timeout=8_000
    )
    assert idp.sign_in.exchanges[-1]["grant_type"] == "refresh_token"
    await expect(page.locator("#session-banner")).to_be_hidden()
    await expect(page.locator("#app")).to_be_visible()
    assert "refresh" not in page.url

    idp.sign_in.refreshable.clear()  # her session at the provider ended: the next refresh is refused
    await expect(page.locator("#session-banner")).to_be_visible(timeout=8_000)
    await expect(page.locator("#session-banner-text")).to_contain_text("Votre session se termine à")


async def test_a_sign_in_screen_loaded_while_the_provider_is_down_turns_its_button_on_when_it_is_back(
    rechecking: tuple[Ward, Any],
) -> None:
    ward, idp = rechecking
    tab = await ward.tab()
    page = await tab.new_page()
    button = page.get_by_role("button", name=BUTTON)
    with idp.outage():
        response = await page.goto(f"{ward.url}/dashboard/")
        assert response is not None
        # Its discovery failed, but the configured issuer's origin is allowed: a page loaded now may renew there.
        policy = response.headers["content-security-policy"]
        assert f"connect-src 'self' http://127.0.0.1:8001 {idp.base};" in policy, policy
        await expect(button).to_be_disabled()
        await expect(page.locator("#provider-unavailable")).to_contain_text("ne répond pas pour le moment")
        await page.evaluate("window.sameLoad = true")

    # The service asks the provider again at most every 5 s; the page asks the service every second.
    await expect(button).to_be_enabled(timeout=10_000)
    await expect(page.locator("#provider-unavailable")).to_be_hidden()
    assert await page.evaluate("window.sameLoad === true")  # turned on in place, no reload
    await button.click()
    await expect(page.locator("#staff-id")).to_have_text("Claire Martin", timeout=10_000)
    assert idp.sign_in.exchanges[-1]["grant_type"] == "authorization_code"


VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const seen = JSON.parse(sessionStorage.getItem("violations") || "[]");
  sessionStorage.setItem("violations", JSON.stringify([...seen, event.blockedURI]));
});
"""


async def test_a_session_whose_page_policy_lacks_the_token_endpoint_is_not_renewed_there_and_signs_in_again(
    rechecking: tuple[Ward, Any],
) -> None:
    ward, idp = rechecking
    # The provider's token endpoint is on another origin than its issuer (a proxy in front of it, say).
    discovery = idp.documents.pop(DISCOVERY_PATH)  # its discovery fails; its keys are still fetched
    discovery[1]["token_endpoint"] = f"http://localhost:{idp.port}{TOKEN_PATH}"
    idp.sign_in.refresh_tokens = True
    # A tab that signed in with the provider before this service started, and is loaded again now: a token that
    # ends in 14 s (renewal half-way), the refresh token it came with.
    refresh_token = "a-refresh-token-of-claire"
    idp.sign_in.refreshable.add(refresh_token)
    session = {
        "oncofollow.staffToken": idp.access_token(exp=int(time.time()) + 14),
        "oncofollow.refreshToken": refresh_token,
        "oncofollow.signInMethod": "provider",
    }
    tab = await ward.tab()
    await tab.add_init_script(VIOLATIONS)
    await tab.add_init_script(
        f"""if (!sessionStorage.getItem("seeded")) {{
          const session = {orjson.dumps(session).decode()};
          for (const [key, value] of Object.entries(session)) sessionStorage.setItem(key, value);
          sessionStorage.setItem("seeded", "1");
        }}"""
    )
    page = await tab.new_page()
    response = await page.goto(f"{ward.url}/dashboard/")
    assert response is not None and "localhost" not in response.headers["content-security-policy"]
    await expect(page.locator("#staff-id")).to_have_text("Claire Martin", timeout=10_000)
    idp.documents[DISCOVERY_PATH] = discovery  # the provider is back

    # Come the renewal, the page knows its endpoint, which its policy forbids: no fetch, the banner instead.
    await expect(page.locator("#session-banner")).to_be_visible(timeout=12_000)
    await expect(page.locator("#session-banner-text")).to_contain_text("Votre session se termine à")
    assert TOKEN_PATH not in idp.requests and not idp.sign_in.exchanges
    assert await page.evaluate("sessionStorage.getItem('violations')") is None

    # Its button brings the sign-in screen, the provider's button on; signing in there loads the page anew, with a
    # policy naming the token endpoint.
    await page.get_by_role("button", name="Se reconnecter").click()
    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#staff-id")).to_have_text("Claire Martin", timeout=10_000)
    assert idp.sign_in.exchanges[-1]["grant_type"] == "authorization_code"
    assert await page.evaluate("sessionStorage.getItem('violations')") is None
