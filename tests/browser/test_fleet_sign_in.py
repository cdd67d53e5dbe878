"""The fleet manager signs in to the fleet page with the hospital's account, as the nurses do on their dashboard
(shared/web/oidc.js): Chromium goes to the test's identity provider (authorization code with PKCE) and comes back
to the fleet; a nurse's account is refused in French and nobody is signed in; signing out goes through the
provider with the ID token as its hint, back to the page signed out; a refresh token renews the session silently,
and a refused refresh brings the banner. While the provider is out of reach the button is greyed, and it turns on by
itself when the provider is back (the dashboard's tests go further: the same code)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from shared.devservers import listening_sockets, port_of
from shared.testing.oidc import LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey
from shared.testing.services import served

pytestmark = pytest.mark.browser

CLIENT_ID = "oncofollow-fleet"
AUDIENCE = "oncofollow-api"
JULIE = {"sub": "0b7d2c54-opaque-keycloak-id", "name": "Julie Parc", "roles": ["fleet"]}
BUTTON = "Se connecter avec le compte de l'hôpital"
TOKEN = "oncofollow.fleet.staffToken"


@dataclass
class Office:
    url: str
    idp: FakeIdentityProvider
    context: BrowserContext

    async def page(self) -> Page:
        page = await self.context.new_page()
        await page.goto(f"{self.url}/fleet/")
        await expect(page.locator("#sign-in")).to_be_visible()
        return page


@pytest.fixture
async def office(service_env: dict[str, str], browser: Browser) -> AsyncIterator[Office]:
    """The devices service taking the provider's tokens and signing the fleet page in there."""
    listening = listening_sockets(1)[0]
    port = port_of(listening)
    url = f"http://127.0.0.1:{port}"
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("fleet-key"),
            client_id=CLIENT_ID,
            redirect_uri=f"{url}/fleet/",
            audience=AUDIENCE,
            user=dict(JULIE),
        )
        settings = DevicesSettings(
            NATS_URL=service_env["NATS_URL"],
            DATABASE_URL=service_env["DATABASE_URL"],
            SILENCE_CHECK_S="3600",
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE=AUDIENCE,
            FLEET_OIDC_CLIENT_ID=CLIENT_ID,
            STAFF_SIGN_IN_RECHECK_S="1",
        )
        async with served(build_devices(settings), listening) as (served_url, _):
            assert served_url == url
            context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
            try:
                yield Office(url, idp, context)
            finally:
                await context.close()


async def stored(page: Page, key: str = TOKEN) -> Any:
    return await page.evaluate("(key) => sessionStorage.getItem(key)", key)


async def test_a_fleet_manager_signs_in_with_the_hospital_account_and_signs_out_through_the_provider(
    office: Office,
) -> None:
    idp = office.idp
    page = await office.page()
    response = await page.reload()
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert f"connect-src 'self' {idp.base};" in policy, policy

    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#app")).to_be_visible(timeout=10_000)
    await expect(page.locator("#who")).to_have_text("Connecté·e : Julie Parc")
    await expect(page.locator("#counts li").first).to_be_visible()  # the fleet at a glance
    assert page.url == f"{office.url}/fleet/", page.url  # the code and state left the address bar
    assert await stored(page)
    assert idp.sign_in is not None and idp.sign_in.exchanges[-1]["client_id"] == CLIENT_ID

    await page.get_by_role("button", name="Se déconnecter").click()
    await expect(page.get_by_role("button", name=BUTTON)).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    assert LOGOUT_PATH in idp.requests
    # The provider ended her session without asking "Do you want to log out?": the hint was its ID token for her.
    assert idp.sign_in.sign_outs == [{"sub": JULIE["sub"], "back": f"{office.url}/fleet/"}]
    assert page.url == f"{office.url}/fleet/"
    assert await page.evaluate("sessionStorage.length") == 0


async def test_a_nurse_account_is_refused_in_french_and_nobody_is_signed_in(office: Office) -> None:
    idp = office.idp
    assert idp.sign_in is not None
    idp.sign_in.user = {"sub": "a-nurse", "name": "Claire Martin", "roles": ["nurse"]}
    page = await office.page()
    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#sign-in-message")).to_contain_text(
        "Votre compte de l'hôpital n'a pas le rôle « fleet »", timeout=10_000
    )
    await expect(page.locator("#app")).to_be_hidden()
    assert TOKEN_PATH in idp.requests  # the provider did sign her in: the page turned her away
    assert await page.evaluate("sessionStorage.length") == 0


async def test_with_the_provider_out_of_reach_the_button_is_greyed_and_the_paste_stays_until_it_is_back(
    office: Office,
) -> None:
    idp = office.idp
    documents = dict(idp.documents)
    idp.documents.clear()  # its discovery document cannot be had (before the service first asked for it)
    page = await office.page()
    button = page.get_by_role("button", name=BUTTON)
    await expect(button).to_be_disabled()
    await expect(page.locator("#provider-unavailable")).to_contain_text("ne répond pas pour le moment")
    await expect(page.locator("#token")).to_be_visible()
    await page.evaluate("window.sameLoad = true")

    idp.documents.update(documents)  # back: the page asks every second, its service the provider every 5 s
    await expect(button).to_be_enabled(timeout=10_000)
    await expect(page.locator("#provider-unavailable")).to_be_hidden()
    assert await page.evaluate("window.sameLoad === true")  # in place, no reload


async def test_a_refresh_token_renews_the_session_silently_and_a_refused_refresh_brings_the_banner(
    office: Office,
) -> None:
    idp = office.idp
    assert idp.sign_in is not None
    idp.sign_in.refresh_tokens = True
    idp.sign_in.ttl_s = 6  # renewed half-way, 3 s after each sign-in or refresh
    page = await office.page()
    await page.get_by_role("button", name=BUTTON).click()
    await expect(page.locator("#who")).to_have_text("Connecté·e : Julie Parc", timeout=10_000)
    first = await stored(page)

    await page.wait_for_function(f"first => sessionStorage.getItem('{TOKEN}') !== first", arg=first, timeout=8_000)
    assert idp.sign_in.exchanges[-1]["grant_type"] == "refresh_token"
    await expect(page.locator("#session-banner")).to_be_hidden()
    await expect(page.locator("#app")).to_be_visible()

    idp.sign_in.refreshable.clear()  # her session at the provider ended: the next refresh is refused
    await expect(page.locator("#session-banner")).to_be_visible(timeout=8_000)
    await expect(page.locator("#session-banner-text")).to_contain_text("Votre session se termine à")
    await page.get_by_role("button", name="Se reconnecter").click()
    await expect(page.get_by_role("button", name=BUTTON)).to_be_visible()
    assert await stored(page) is None
