"""The tablet's page as an app on the home screen, in a real headless Chromium against the real questionnaire
service: the page links its manifest, Chromium parses it and loads its icons under the page's own
Content-Security-Policy, and finds nothing that stops it offering to install the page (CDP
``Page.getInstallabilityErrors``). What the service serves (types, fields, sizes) is
tests/integration/test_tablet_manifest.py.

Chromium will not install a page from a private (incognito) profile, which every context of the session's browser
is: this test launches its own, with a profile on disk, as a tablet's browser has."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from shared.auth import TokenService
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_tablet_comfort import tablet_service

pytestmark = pytest.mark.browser

# Every Content-Security-Policy violation the page meets, whatever the console says of it.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
"""

# Each icon the manifest names, loaded by the page as an image (img-src): its natural size, or the error.
LOAD_ICONS = """
(urls) => Promise.all(urls.map((url) => new Promise((resolve) => {
  const image = new Image();
  image.onload = () => resolve([url, `${image.naturalWidth}x${image.naturalHeight}`]);
  image.onerror = () => resolve([url, "error"]);
  image.src = url;
})))
"""


async def test_the_page_is_an_installable_app_whose_manifest_and_icons_its_policy_allows(
    service_env: dict[str, str], tokens: TokenService, tmp_path: Path
) -> None:
    async with tablet_service(service_env) as url, async_playwright() as playwright:
        tablet = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            locale="fr-FR",
            timezone_id="Europe/Paris",
        )
        try:
            await tablet.add_init_script(RECORD_VIOLATIONS)
            console: list[str] = []
            tablet.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page = tablet.pages[0] if tablet.pages else await tablet.new_page()
            # Enrolled as the fleet manager does it, just before adding the page to the home screen.
            token = tokens.issue_device_token(uuid.uuid4(), "tablet-app")
            await page.goto(f"{url}/tablet/#device_token={token}")
            await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)

            cdp = await tablet.new_cdp_session(page)
            found: dict[str, Any] = await cdp.send("Page.getAppManifest")
            assert found["url"] == f"{url}/tablet/manifest.webmanifest"
            assert found["errors"] == [], found["errors"]
            manifest = found["manifest"]
            assert (manifest["name"], manifest["display"], manifest["scope"]) == (
                "Mon suivi RE'CONNECT",
                "kStandalone",
                f"{url}/tablet/",
            )
            # The home-screen icon opens the bare page, never the address the token came in.
            assert manifest["startUrl"] == f"{url}/tablet/"
            # Its check fetches the icon it would show, under the page's policy (img-src): a blocked icon is
            # "no-acceptable-icon", a blocked manifest "no-manifest".
            installable = await cdp.send("Page.getInstallabilityErrors")
            assert installable["installabilityErrors"] == [], installable

            icons = [icon["url"] for icon in manifest["icons"]]
            loaded = dict(await page.evaluate(LOAD_ICONS, icons))
            assert loaded == {icon["url"]: icon["sizes"] for icon in manifest["icons"]}, loaded

            # What the app opens: the page, enrolled (the token in localStorage), and nothing refused on the way.
            opened = await tablet.new_page()
            await opened.goto(manifest["startUrl"])
            await expect(opened.locator("#screen-home")).to_be_visible(timeout=5_000)
            assert [await p.evaluate("window.__violations") for p in (page, opened)] == [[], []]
            assert [line for line in console if "Content Security Policy" in line or "anifest" in line] == []
        finally:
            await tablet.close()
