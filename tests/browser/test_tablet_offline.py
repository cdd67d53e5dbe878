"""The tablet's page opened offline, in a real headless Chromium against the real questionnaire service: its service
worker (``/tablet/sw.js``) keeps the page's own files, network first, so that a patient who opens the app without a
connection can still answer, and the answers wait in the queue until the connection comes back. What the service
serves the worker with is tests/integration/test_tablet_manifest.py; the list of files it keeps,
tests/unit/questionnaire/test_tablet_worker.py."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from services.questionnaire.main import TABLET_PAGES, QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.http.app import WEB_MODULES
from shared.testing.services import served
from shared.testing.waiting import eventually
from tests.browser.test_tablet import answer_until_review

pytestmark = pytest.mark.browser

OFFLINE = (
    "Pas de connexion pour l'instant : vous pouvez répondre, vos réponses partiront dès que la connexion reviendra."
)
QUEUED = "Vos réponses seront envoyées dès que la connexion reviendra."

# What the page's caches hold: each cache's name and the addresses it keeps.
CACHED = """
async () => {
  const held = {};
  for (const name of await caches.keys())
    held[name] = (await (await caches.open(name)).keys()).map((request) => request.url);
  return held;
}
"""

# A file of the page's scope that does not exist, asked through the worker: a 404 when the worker reaches the
# network, a failed fetch when it does not (nothing kept under that address).
WORKER_REACHES_NETWORK = """
() => fetch("no-such-file.txt").then((response) => response.status, () => "offline")
"""


# Every Content-Security-Policy violation the page meets (the worker's registration under worker-src among them).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
"""


@dataclasses.dataclass
class Tablet:
    url: str
    platform: Any
    pages: Path  # the tablet's files as this service serves them (a copy: a test may change one)


@asynccontextmanager
async def tablet_service(service_env: dict[str, str], pages: Path) -> AsyncIterator[Tablet]:
    shutil.copytree(TABLET_PAGES, pages)
    env = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    service = build_questionnaire(QuestionnaireSettings(**env))  # type: ignore[arg-type]
    service = dataclasses.replace(service, static={"/tablet": pages, "/web": WEB_MODULES})
    async with served(service) as (url, platform):
        yield Tablet(url, platform, pages)


@pytest.fixture
async def tablet(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Tablet]:
    async with tablet_service(service_env, tmp_path / "tablet") as served_tablet:
        yield served_tablet


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport={"width": 800, "height": 1280}, locale="fr-FR", timezone_id="Europe/Paris"
    )
    try:
        yield context
    finally:
        await context.close()


async def enrolled(tablet: Tablet, context: BrowserContext, tokens: TokenService, patient: uuid.UUID) -> Page:
    """The page as the fleet manager leaves it, once its worker controls it (and so has kept the page's files)."""
    page = await context.new_page()
    await page.add_init_script(RECORD_VIOLATIONS)
    await page.goto(f"{tablet.url}/tablet/#device_token={tokens.issue_device_token(patient, 'tablet-offline')}")
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=5_000)
    return page


async def submissions_of(tablet: Tablet, patient: uuid.UUID) -> int:
    async with tablet.platform.pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient)
        return count


async def test_opened_offline_the_page_is_there_and_the_answers_go_once_the_connection_is_back(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    patient = uuid.uuid4()
    page = await enrolled(tablet, context, tokens, patient)

    # The patient opens the app with no connection: the page, not the browser's error page, on home, saying so.
    await context.set_offline(True)
    opened = await page.reload()
    assert opened is not None and opened.from_service_worker
    assert await page.evaluate(WORKER_REACHES_NETWORK) == "offline"  # the worker is offline too: its copy
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    await expect(page.locator("#queue-banner")).to_have_text(OFFLINE)
    await expect(page.locator("#queue-banner")).to_be_visible()

    # The questionnaire (kept by the page at its last opening online) is answered and sent: queued.
    await page.get_by_role("button", name="Répondre au questionnaire").click()
    await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
    await answer_until_review(page, {})
    await page.get_by_role("button", name="Envoyer mes réponses").click()
    await expect(page.locator("#sent-status")).to_contain_text(QUEUED, timeout=5_000)
    await page.get_by_role("button", name="Retour à l'accueil").click()
    await expect(page.locator("#queue-banner")).to_have_text(QUEUED)
    assert await submissions_of(tablet, patient) == 0

    # The connection comes back: the answers reach the service, once, and the page stops saying it is offline.
    await context.set_offline(False)

    async def stored() -> int | None:
        return await submissions_of(tablet, patient) or None

    assert await eventually(stored, within=10) == 1
    await expect(page.locator("#queue-banner")).to_be_hidden(timeout=5_000)
    assert await page.evaluate(WORKER_REACHES_NETWORK) == 404
    assert await submissions_of(tablet, patient) == 1
    assert await page.evaluate("window.__violations") == []


async def test_online_a_file_changed_on_the_server_is_what_the_page_gets_and_then_keeps(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    index = tablet.pages / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace("<h1>Mon suivi</h1>", "<h1>Mon suivi, v2</h1>"))

    # Online, the server's current page, not the copy the worker kept at install (network first).
    reloaded = await page.reload()
    assert reloaded is not None and reloaded.from_service_worker
    await expect(page.locator("#screen-home h1")).to_have_text("Mon suivi, v2", timeout=5_000)

    # A new worker (a new list of files, a new version) takes over at once, and the old cache goes with the old one.
    worker = tablet.pages / "sw.js"
    worker.write_text(worker.read_text(encoding="utf-8").replace('const VERSION = "1";', 'const VERSION = "2";'))

    async def new_cache_only() -> list[str] | None:
        names = list(await page.evaluate(CACHED))
        if names == ["oncofollow-tablet-2"]:
            return names
        # Asked again until it takes: the reload's own update check may still be under way, and an update asked
        # meanwhile joins it, with the script it read before the change (it failed one run in a batch that way).
        await page.evaluate("async () => (await navigator.serviceWorker.getRegistration()).update().catch(() => null)")
        return None

    assert await eventually(new_cache_only, within=15, interval=0.5) == ["oncofollow-tablet-2"]
    # And the copy kept is what the tablet opens offline next.
    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#screen-home h1")).to_have_text("Mon suivi, v2", timeout=5_000)


async def test_the_caches_hold_the_page_s_own_files_never_an_api_answer_nor_a_token(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    # The page has read the questionnaire and its config through the worker's hands; the status too, once a send
    # went: a send and a reload, so that every kind of request the page makes went by the worker.
    await page.get_by_role("button", name="Répondre au questionnaire").click()
    await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
    await answer_until_review(page, {})
    await page.get_by_role("button", name="Envoyer mes réponses").click()
    await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
    await page.reload()
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    await page.wait_for_load_state("networkidle")

    held = await page.evaluate(CACHED)
    tablet_files = [
        "",
        "app.js",
        "comfort.js",
        "flow.js",
        "listen.js",
        "sending.js",
        "sizing.js",
        "tablet.css",
        "manifest.webmanifest",
        "config.json",
        "icons/icon-192.png",
        "icons/icon-512.png",
        "icons/icon-maskable-512.png",
    ]
    expected = {f"{tablet.url}/tablet/{file}" for file in tablet_files} | {
        f"{tablet.url}/web/page.js",
        f"{tablet.url}/web/questionnaire_form.js",
    }
    assert list(held) == ["oncofollow-tablet-1"]
    assert set(held["oncofollow-tablet-1"]) == expected
    # The config kept is the deployment's, the same for every tablet: nothing of the patient.
    config = await page.evaluate(
        "async () => (await (await caches.open('oncofollow-tablet-1')).match('config.json')).json()"
    )
    assert set(config) == {"devices_url", "team_phone"}
