"""Unit tests of shared/web/oidc.js (every staff page's sign-in with the hospital's identity provider), run in the
real headless Chromium with the runner of es_modules.py: which of the provider's origins a page's policy lets it
fetch, how often the sign-in screen asks again whether the provider is back, and that it also asks, quietly, when
the browser comes back online or the tab is shown again (the page's config answered by the test, not a server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Route

from tests.browser.es_modules import ORIGIN, modules_page, run

pytestmark = pytest.mark.browser

OIDC = "/web/oidc.js"
CONFIG = "/sign-in-config.json"
ISSUER = "https://sso.chu.example/realms/ward"
PROVIDER = {
    "issuer": ISSUER,
    "client_id": "oncofollow-dashboard",
    "scopes": "openid",
    "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
    "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
    "end_session_endpoint": None,
}


@pytest.fixture(scope="module")
async def modules(browser: Browser) -> AsyncIterator[Page]:
    async with modules_page(browser) as page:
        yield page


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://SSO.chu.example:443/realms/ward/token", "https://sso.chu.example"),
        ("http://127.0.0.1:8080/token?x=1", "http://127.0.0.1:8080"),
        ("ftp://sso.chu.example/", None),
        ("javascript:alert(1)", None),
        ("not an address", None),
        (None, None),
    ],
)
async def test_origin_of(modules: Page, url: str | None, origin: str | None) -> None:
    assert await run(modules, OIDC, "m.originOf(arg)", url) == origin


@pytest.mark.parametrize(
    ("allowed", "token_endpoint", "allows"),
    [
        ("https://sso.chu.example", f"{ISSUER}/protocol/openid-connect/token", True),
        # Another origin than the one the page was loaded with (a proxy in front of the token endpoint).
        ("https://sso.chu.example", "https://tokens.chu.example/token", False),
        ("https://sso.chu.example", "http://sso.chu.example/token", False),
        # A page whose first config named no origin of the provider (out of reach without an issuer's, unread).
        (None, f"{ISSUER}/token", False),
        ("https://sso.chu.example", None, False),
    ],
)
async def test_policy_allows(modules: Page, allowed: str | None, token_endpoint: str | None, allows: bool) -> None:
    provider = {**PROVIDER, "token_endpoint": token_endpoint} if token_endpoint else None
    expression = "m.policyAllows(arg.allowed, arg.provider)"
    assert await run(modules, OIDC, expression, {"allowed": allowed, "provider": provider}) is allows


@pytest.mark.parametrize(
    ("config", "delay_ms"),
    [
        ({"provider_recheck_s": 30}, 30_000),
        ({"provider_recheck_s": 1.5}, 1_500),
        ({"provider_recheck_s": 0.01}, 500),  # never a busy loop, whatever a config says
        ({"provider_recheck_s": 0}, 30_000),
        ({"provider_recheck_s": "5"}, 30_000),
        ({}, 30_000),
        (None, 30_000),
    ],
)
async def test_recheck_delay(modules: Page, config: dict[str, Any] | None, delay_ms: int) -> None:
    assert await run(modules, OIDC, "m.recheckDelay(arg)", config) == delay_ms


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.02)


SCREEN = """async (configUrl) => {
  const m = await import("/web/oidc.js");
  const screen = document.createElement("div");
  screen.id = "screen";
  screen.innerHTML = '<section hidden><button>Se connecter</button><p hidden>Ne répond pas</p></section>';
  document.body.append(screen);
  const signIn = m.pageSignIn({ configUrl, storagePrefix: "unit", role: "nurse" });
  window.screenButton = () => {
    const [section, button, unavailable] = screen.querySelectorAll("section, button, p");
    return { section: !section.hidden, enabled: !button.disabled, unavailable: !unavailable.hidden };
  };
  await signIn.loadConfig();
  const [section, button, unavailable] = screen.querySelectorAll("section, button, p");
  signIn.showButton({ section, button, unavailable });
  return window.screenButton();
}"""


async def test_the_sign_in_screen_asks_again_when_online_or_shown_and_turns_the_button_on(modules: Page) -> None:
    answers: list[dict[str, Any] | None] = []  # what the service says, the last one repeated; None: unreachable
    asked: list[dict[str, str]] = []
    down = {"provider_sign_in": None, "provider_unavailable": True, "provider_recheck_s": 3600}
    back = {**down, "provider_sign_in": PROVIDER, "provider_unavailable": False}

    async def config(route: Route) -> None:
        asked.append(route.request.headers)
        answer = answers[0] if len(answers) == 1 else answers.pop(0)
        if answer is None:
            await route.abort("connectionrefused")
        else:
            await route.fulfill(content_type="application/json", body=json.dumps(answer))

    await modules.route(f"{ORIGIN}{CONFIG}", config)
    try:
        answers.append(down)
        assert await modules.evaluate(SCREEN, CONFIG) == {"section": True, "enabled": False, "unavailable": True}

        # The browser is back online, the service not yet: nothing said, still greyed; then it answers "still out
        # of reach": the same. The second "online" comes while the first request is under way: it is asked once that
        # request has failed, not dropped.
        answers[:] = [None, down]
        await modules.evaluate("dispatchEvent(new Event('online')); dispatchEvent(new Event('online'))")
        await until(lambda: len(asked) == 3)
        assert await modules.evaluate("screenButton()") == {"section": True, "enabled": False, "unavailable": True}

        # The tab is shown again, the provider is back: the button turns on, its sentence goes, in place.
        answers[:] = [back]
        await modules.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        await modules.wait_for_function("() => screenButton().enabled")
        assert await modules.evaluate("screenButton()") == {"section": True, "enabled": True, "unavailable": False}
        # Asked without a token or a cookie, as the page first read it.
        assert all("authorization" not in headers and "cookie" not in headers for headers in asked)

        # It stopped asking once the provider was back.
        before = len(asked)
        await modules.evaluate("dispatchEvent(new Event('online'))")
        await modules.wait_for_timeout(200)
        assert len(asked) == before
    finally:
        await modules.unroute(f"{ORIGIN}{CONFIG}")
        await modules.evaluate("document.getElementById('screen')?.remove()")


async def test_the_sign_in_screen_stops_asking_once_it_is_left(modules: Page) -> None:
    asked: list[str] = []

    async def config(route: Route) -> None:
        asked.append(route.request.url)
        down = {"provider_sign_in": None, "provider_unavailable": True, "provider_recheck_s": 0.5}
        await route.fulfill(content_type="application/json", body=json.dumps(down))

    await modules.route(f"{ORIGIN}{CONFIG}", config)
    try:
        await modules.evaluate(SCREEN, CONFIG)
        await until(lambda: len(asked) >= 2)  # read as it loaded, then again 0.5 s later
        await modules.evaluate("document.getElementById('screen').hidden = true")  # signed in: the screen is left
        await modules.wait_for_timeout(600)  # the check under way, if any, finds it left
        settled = len(asked)
        await modules.evaluate("dispatchEvent(new Event('online'))")
        await modules.wait_for_timeout(600)
        assert len(asked) == settled
    finally:
        await modules.unroute(f"{ORIGIN}{CONFIG}")
        await modules.evaluate("document.getElementById('screen')?.remove()")
