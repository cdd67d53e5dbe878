"""The tablet's page opened offline, in a real headless Chromium against the real questionnaire service: its service
worker (``/tablet/sw.js``) keeps one whole version of the page's own files, so that a patient who opens the app
without a connection, or on one that stalls, can still answer, and the answers wait in the queue until the
connection comes back. What the service serves the worker with (its version) is
tests/integration/test_tablet_manifest.py; the list of files it keeps, tests/unit/questionnaire/test_tablet_worker.py.
The connection's faults (a stall, a drop mid-opening) are the service's own server holding or cutting its answers,
so that every request of the browser, the worker's too, meets them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from services.questionnaire.main import TABLET_PAGES, QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.loans import end_loan
from shared.testing.services import served
from shared.testing.waiting import eventually
from tests.browser.test_tablet import answer_until_review
from tests.browser.test_tablet_comfort import TEAM_PHONE
from tests.browser.test_tablet_opening import faster

pytestmark = pytest.mark.browser

OFFLINE = (
    "Pas de connexion pour l'instant. Vous pouvez quand même répondre. Vos réponses seront envoyées dès que la "
    "connexion reviendra."
)
QUEUED = "Vos réponses seront envoyées dès que la connexion reviendra."
MESSAGE_QUEUED = "Votre message sera envoyé dès que la connexion reviendra."

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
class Connection:
    """The tablet's connection as the service's server answers it: ``stalled``, every answer held until the test
    ends (a captive Wi-Fi, a signal too weak to carry anything); ``drop_after``, once the file at that address is
    answered, every later answer cut short after its headers (the connection dropped mid-opening), or, with
    ``gateway``, answered with that status (the proxy in front of a service being restarted by an update);
    ``openings_held_until``, every opening's page held until that is set (at the test's end at the latest) while every
    other request goes (the page's own request lost, or a server slow on it alone)."""

    stalled: bool = False
    drop_after: str | None = None
    gateway: int | None = None
    dropping: bool = False
    released: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # These addresses answered with this status ("navigate": every opening of a page, and no other request).
    refused: dict[str, int] = dataclasses.field(default_factory=dict)
    openings_held_until: asyncio.Event | None = None
    opening_held: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # set once one is

    def refusal(self, scope: Any) -> int | None:
        navigation = (b"sec-fetch-mode", b"navigate") in scope["headers"]
        return self.refused.get("navigate") if navigation else self.refused.get(scope["path"])

    def wrap(self, app: Any) -> Any:
        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            if self.stalled:
                await self.released.wait()
            held_until = self.openings_held_until
            if held_until is not None and (b"sec-fetch-mode", b"navigate") in scope["headers"]:
                self.opening_held.set()
                await held_until.wait()
            refused = self.refusal(scope)
            if refused is not None:
                await send({"type": "http.response.start", "status": refused, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return None
            if self.dropping and self.gateway is not None:
                await send({"type": "http.response.start", "status": self.gateway, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return None
            if self.dropping:
                # Headers and a first byte, then nothing: uvicorn closes the connection, the browser's fetch fails.
                headers = [(b"content-type", b"text/javascript"), (b"content-length", b"4096")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": b"/", "more_body": True})
                return None
            await app(scope, receive, send)
            if scope["path"] == self.drop_after:
                self.dropping = True
            return None

        return asgi


@dataclasses.dataclass
class Tablet:
    url: str
    platform: Any
    pages: Path  # the tablet's files as this service serves them (a copy: a test may change one)
    connection: Connection

    async def version(self) -> str:
        """The page's version as the service serves it now (in the worker's bytes and each file's header)."""
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.url}/tablet/sw.js")).headers["tablet-version"]


@asynccontextmanager
async def tablet_service(service_env: dict[str, str], pages: Path, **settings: str) -> AsyncIterator[Tablet]:
    shutil.copytree(TABLET_PAGES, pages)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"], **settings}
    service = build_questionnaire(QuestionnaireSettings(**env), tablet_pages=pages)
    connection = Connection()
    async with served(service, wrap=connection.wrap) as (url, platform):
        try:
            yield Tablet(url, platform, pages, connection)
        finally:
            # What a stalled test still holds ends before the server does.
            connection.released.set()
            if connection.openings_held_until is not None:
                connection.openings_held_until.set()


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


async def enrolled(
    tablet: Tablet, context: BrowserContext, tokens: TokenService, patient: uuid.UUID, token: str | None = None
) -> Page:
    """The page as the fleet manager leaves it, once its worker controls it (and so has kept the page's files)."""
    page = await context.new_page()
    await page.add_init_script(RECORD_VIOLATIONS)
    token = token or tokens.issue_device_token(patient, "tablet-offline")
    await page.goto(f"{tablet.url}/tablet/#device_token={token}")
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=5_000)
    return page


async def said(page: Page) -> str:
    """What the page shows, hidden elements left out, its spaces and line breaks as single spaces."""
    return " ".join((await page.locator("body").inner_text()).split())


async def let_the_new_worker_take_over(page: Page) -> None:
    """A new worker that waits for the older one to have nothing under way takes over once it has, as the browser does
    on the tablet. Chromium stops the older worker then; but with DevTools attached (Playwright, here), it keeps running
    an older worker that had to start again for a request that came just as it stopped (its first stop asked for by the
    new worker's waiting, ServiceWorkerVersion::OnRequestTermination), and the new one waits for minutes. Asked again
    (skipWaiting on the waiting worker), Chromium stops it at its next moment with nothing under way."""
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("ServiceWorker.enable")
        scope = await page.evaluate("async () => (await navigator.serviceWorker.getRegistration())?.scope ?? null")
        if scope:
            await cdp.send("ServiceWorker.skipWaiting", {"scopeURL": scope})
    finally:
        await cdp.detach()


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
    # The screen after the send says it once, in its status: the queue's banner above it said the same sentence.
    assert (await said(page)).count("dès que la connexion reviendra") == 1, await said(page)
    await expect(page.locator("#queue-banner")).to_be_hidden()
    await page.get_by_role("button", name="Retour à l'accueil").click()
    # Home's list says it, once: the banner above it said the same sentence again.
    await expect(page.locator("#status-list")).to_contain_text(QUEUED)
    await expect(page.locator("#queue-banner")).to_be_hidden()
    assert (await said(page)).count("dès que la connexion reviendra") == 1, await said(page)
    assert await submissions_of(tablet, patient) == 0

    # A message sent offline too: its screen says where the message is, and the banner only what else waits.
    await page.get_by_role("button", name="Écrire à l'équipe soignante").click()
    await page.locator("#message-text").fill("J'ai de la fièvre.")
    await page.get_by_role("button", name="Envoyer", exact=True).click()
    await expect(page.locator("#sent-status")).to_contain_text(MESSAGE_QUEUED, timeout=5_000)
    await expect(page.locator("#queue-banner")).to_have_text(QUEUED)
    assert (await said(page)).count(MESSAGE_QUEUED) == 1, await said(page)
    await page.get_by_role("button", name="Retour à l'accueil").click()
    await expect(page.locator("#status-list")).to_contain_text(MESSAGE_QUEUED)
    await expect(page.locator("#queue-banner")).to_be_hidden()
    assert (await said(page)).count("dès que la connexion reviendra") == 2, await said(page)  # answers, message

    # The connection comes back: what waited reaches the service (the answers once), and the page stops saying it is
    # offline.
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

    # The page changed on the server is a new version: a new worker takes over at once, its cache holding the new
    # page, and the old cache goes with the old worker.
    expected = [f"oncofollow-tablet-{await tablet.version()}"]

    async def new_cache_only() -> list[str] | None:
        names = list(await page.evaluate(CACHED))
        if names == expected:
            return names
        # Asked again until it takes: the reload's own update check may still be under way, and an update asked
        # meanwhile joins it, with the script it read before the change (it failed one run in a batch that way).
        await page.evaluate("async () => (await navigator.serviceWorker.getRegistration()).update().catch(() => null)")
        await let_the_new_worker_take_over(page)
        return None

    assert await eventually(new_cache_only, within=15, interval=0.5) == expected
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
        "opening.js",
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
    cache = f"oncofollow-tablet-{await tablet.version()}"
    assert list(held) == [cache]
    assert set(held[cache]) == expected
    # The config kept is the deployment's, the same for every tablet: nothing of the patient.
    config = await page.evaluate(
        "async (cache) => (await (await caches.open(cache)).match('config.json')).json()", cache
    )
    assert set(config) == {"devices_url", "team_phone"}


# The page's version of app.js and flow.js as the worker keeps them: whether each has the name the updated page adds.
KEPT_BUILD = """
async () => {
  const names = await caches.keys();
  const cache = await caches.open(names[0]);
  const has = async (file) => (await (await cache.match(file)).text()).includes("BUILD");
  return { caches: names.length, app: await has("app.js"), flow: await has("flow.js") };
}
"""


def update_the_page(pages: Path) -> None:
    """A new page on the server: app.js imports a name only the new flow.js has (an old flow.js breaks it)."""
    flow = pages / "flow.js"
    flow.write_text(flow.read_text(encoding="utf-8") + '\nexport const BUILD = "v2";\n', encoding="utf-8")
    app = pages / "app.js"
    app.write_text(
        'import { BUILD } from "./flow.js";\n'
        + app.read_text(encoding="utf-8")
        + "\ndocument.documentElement.dataset.build = BUILD;\n",
        encoding="utf-8",
    )


async def test_a_connection_dropped_mid_opening_after_an_update_leaves_one_whole_version_that_opens_offline(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    # Before any update, a connection that drops once the page and app.js came: the rest comes from the kept copy,
    # the same version as the page, which runs.
    tablet.connection.drop_after = "/tablet/app.js"
    await page.reload()
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert tablet.connection.dropping
    tablet.connection.drop_after, tablet.connection.dropping = None, False

    update_the_page(tablet.pages)
    # The tablet opens the page online just after the update, and the connection drops once the new app.js came:
    # its flow.js, the new worker (and the files it would keep) never come.
    tablet.connection.drop_after = "/tablet/app.js"
    await page.reload()

    async def dropped() -> bool | None:
        return tablet.connection.dropping or None

    assert await eventually(dropped, within=5)
    await page.wait_for_timeout(500)  # what the worker does with the files that came, done

    # Opened offline later: the page runs, whole, of one version (the one kept before the update: the new one never
    # came whole), not the new app.js with the old flow.js.
    await context.set_offline(True)
    tablet.connection.drop_after, tablet.connection.dropping = None, False
    opened = await page.reload()
    assert opened is not None and opened.from_service_worker
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    kept = await page.evaluate(KEPT_BUILD)
    assert kept == {"caches": 1, "app": False, "flow": False}
    assert await page.evaluate("document.documentElement.dataset.build") is None

    # Back online with the whole new page within reach: the new version is kept whole, and opens offline.
    await context.set_offline(False)
    await page.reload()
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") == "v2"

    async def new_version_kept() -> dict[str, Any] | None:
        now = await page.evaluate(KEPT_BUILD)
        if now == {"caches": 1, "app": True, "flow": True}:
            return dict(now)
        await page.evaluate("async () => (await navigator.serviceWorker.getRegistration()).update().catch(() => null)")
        await let_the_new_worker_take_over(page)
        return None

    assert await eventually(new_version_kept, within=10, interval=0.5)
    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") == "v2"


async def test_a_stalled_connection_opens_the_kept_page_within_the_time_out(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    page = await enrolled(tablet, context, tokens, uuid.uuid4())

    # A captive Wi-Fi: the tablet seems connected, nothing answers. The kept page opens after the worker's time-out
    # (OPENING_TIMEOUT_MS, 4 s), not a blank screen for as long as the network takes.
    tablet.connection.stalled = True
    began = time.monotonic()
    opened = await page.reload(timeout=10_000)
    await expect(page.locator("#screen-home")).to_be_visible(timeout=3_000)
    took = time.monotonic() - began
    assert opened is not None and opened.from_service_worker
    assert 3.5 < took < 8, took  # 4 s, and what a machine busy with other tests adds
    assert await page.evaluate("window.__violations") == []


async def test_online_a_page_updated_on_the_server_never_runs_with_a_module_of_the_kept_older_one(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    update_the_page(tablet.pages)
    flow: list[tuple[int, bool]] = []

    async def seen(response: Any) -> None:
        if response.url.endswith("/tablet/flow.js"):
            body = await response.body() if response.status == 200 else b""
            flow.append((response.status, b"BUILD" in body))

    page.on("response", seen)
    # The new page and its app.js come; then the proxy in front answers 502 (the service restarting): the new
    # page must not get the kept flow.js, of the older version (its app.js would import a name it lacks).
    tablet.connection.drop_after, tablet.connection.gateway = "/tablet/app.js", 502
    await faster(page)  # the notice's 10 s (below)
    await page.reload()

    async def answered() -> list[tuple[int, bool]] | None:
        return flow or None

    assert await eventually(answered, within=5)
    # Never the kept older flow.js, (200, False). The browser's update check on this reload may have installed the new
    # worker, which kept the new page whole, before the proxy failed: that worker, new to this opening, stands in with
    # the new flow.js, and the page is the new one, whole (seen once in CI). Otherwise, the proxy's 502.
    assert flow in ([(502, False)], [(200, True)]), flow
    if flow == [(200, True)]:
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        assert await page.evaluate("document.documentElement.dataset.build") == "v2"
        return
    assert await page.evaluate("document.documentElement.dataset.build") is None
    # The patient is told, not left before a blank screen: at once (opening.js, app.js's load error) or, when the
    # proxy's 502 reached opening.js too, once the 10 s a page that has not started is given have passed (tablet.css,
    # its animations sped up fivefold here). « Réessayer », the service back, opens the new page, whole.
    await expect(page.get_by_role("heading", name="La page n'a pas pu s'ouvrir complètement")).to_be_visible(
        timeout=5_000
    )
    tablet.connection.drop_after, tablet.connection.dropping = None, False
    await page.get_by_role("link", name="Réessayer").click()
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") == "v2"
    await expect(page.locator("#opening-notice")).to_be_hidden()


# Whether the worker of a version (its cache's name) is this page's, settled (installed, activated, in control), and
# which caches there are; the update check asked for again until it is (one under way may have read the old script).
NEW_WORKER_IN_CONTROL = """
async (cache) => {
  const registration = await navigator.serviceWorker.getRegistration();
  const names = await caches.keys();
  const settled = !registration.installing && !registration.waiting && registration.active?.state === "activated";
  if (settled && names.includes(cache)) return names;
  await registration.update().catch(() => null);
  return null;
}
"""

# A module the open page loads now, as the worker sees one it imports while it loads: a GET of flow.js from this
# page (the fragment makes it a module the page has not loaded yet; the request's address has none). Whether it is of
# the server's newer page.
A_MODULE_LOADED_NOW = """
async () => "BUILD" in (await import("./flow.js#loaded-now"))
"""


@pytest.mark.parametrize("meanwhile", ["a new worker takes over", "the worker is stopped"])
async def test_a_page_opened_from_the_kept_copy_gets_every_module_of_that_copy_whatever_the_worker_does_meanwhile(
    tablet: Tablet, context: BrowserContext, tokens: TokenService, meanwhile: str
) -> None:
    """A page opened from the kept copy asks for its modules as it loads, and meanwhile the server may have been
    updated and a new worker take over (which deleted the copy the page was loading from), or the browser stop the
    idle worker (the only one that knew which version the page runs): its modules are still all of its own version."""
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    old = f"oncofollow-tablet-{await tablet.version()}"
    update_the_page(tablet.pages)
    new = f"oncofollow-tablet-{await tablet.version()}"
    # The service being restarted by the update: the opening gets a 502, and the kept copy opens, whole.
    tablet.connection.refused["navigate"] = 502
    if meanwhile == "the worker is stopped":
        tablet.connection.refused["/tablet/sw.js"] = 502  # no new worker: the same one, stopped and started again
    opened = await page.reload()
    assert opened is not None and opened.from_service_worker
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") is None

    if meanwhile == "a new worker takes over":

        async def new_worker() -> list[str] | None:
            await let_the_new_worker_take_over(page)
            return await page.evaluate(NEW_WORKER_IN_CONTROL, new)

        # The copy the page opened from is kept while the page is open: it may still be loading from it.
        assert set(await eventually(new_worker, within=15, interval=0.5)) == {old, new}
    else:
        cdp = await context.new_cdp_session(page)
        stopped = asyncio.Event()

        def updated(event: dict[str, Any]) -> None:
            if any(version["runningStatus"] == "stopped" for version in event["versions"]):
                stopped.set()

        cdp.on("ServiceWorker.workerVersionUpdated", updated)
        await cdp.send("ServiceWorker.enable")
        await cdp.send("ServiceWorker.stopAllWorkers")
        await asyncio.wait_for(stopped.wait(), timeout=5)

    # The page's next module is of the kept copy it opened from, not the server's newer one.
    assert await page.evaluate(A_MODULE_LOADED_NOW) is False

    # The service back, the page reopened is the new one; the older copy goes at the next opening after its last page
    # closed (the first reload's own opening still had it open).
    tablet.connection.refused.clear()
    for _ in range(2):
        await page.reload()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") == "v2"

    async def old_copy_gone() -> list[str] | None:
        names = await page.evaluate(NEW_WORKER_IN_CONTROL, new)
        return names if names == [new] else None

    assert await eventually(old_copy_gone, within=15, interval=0.5) == [new]


# The browser's update check of the page's worker, as each opening asks for it: waited for, or only started.
UPDATE_CHECK = """
async () => (await navigator.serviceWorker.getRegistration()).update()
"""
UPDATE_CHECK_STARTED = """
() => {
  navigator.serviceWorker.getRegistration().then((registration) => registration.update());
}
"""

# Whether a new worker, of a version (its cache's name), is installed and waits to take over, its copy kept.
NEW_WORKER_WAITING = """
async (cache) => {
  const registration = await navigator.serviceWorker.getRegistration();
  return registration.waiting !== null && (await caches.keys()).includes(cache);
}
"""

# The caches, once the page's worker is settled (activated, in control, none other installing or waiting), or null.
CACHES_ONCE_SETTLED = """
async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  const settled = !registration.installing && !registration.waiting && registration.active?.state === "activated";
  return settled ? await caches.keys() : null;
}
"""


async def test_a_page_opening_while_a_new_worker_installs_opens_whole_and_leaves_the_tablet_a_copy_that_opens_offline(
    tablet: Tablet, context: BrowserContext, tokens: TokenService
) -> None:
    """The browser checks the worker for an update at each opening: a new one may install while the older one is
    still answering an opening (here for 4 s, the page's own request lost: the kept copy opens), and takes over as soon
    as the older one has nothing under way. The page opens whole, every file of the version it came from: a new worker
    that took over just as it started loading its files left it half loaded (files failed, or taken from the network,
    of the new version). And the new worker's copy is still there when it takes over: the older worker, ending that
    opening, deleted it as a copy no page ran; once the page opened from the older copy closed, the tablet had no copy
    left, and opened offline on the browser's error page until the next update of the page on the server."""
    page = await enrolled(tablet, context, tokens, uuid.uuid4())
    # The browser holds the first update check after a registration a few seconds: done first, so that the one below
    # comes at once.
    await page.evaluate(UPDATE_CHECK)
    old = await tablet.version()
    update_the_page(tablet.pages)
    new = await tablet.version()

    # The app opened in a second page, at another of the page's addresses (at the same one, the new worker's own
    # request for it would wait in the browser's HTTP cache for the held one, and its install with it).
    tablet.connection.openings_held_until = asyncio.Event()
    opening_page = await context.new_page()
    versions: dict[str, str | None] = {}

    async def seen(response: Any) -> None:
        if "/v1/" not in response.url:
            versions[response.url] = await response.header_value("tablet-version")

    opening_page.on("response", seen)
    opening = asyncio.ensure_future(opening_page.goto(f"{tablet.url}/tablet/index.html"))
    await tablet.connection.opening_held.wait()
    # The update check while the older worker answers that opening: the new worker installs, and waits.
    await page.evaluate(UPDATE_CHECK_STARTED)

    async def new_worker_waiting() -> bool:
        return bool(await page.evaluate(NEW_WORKER_WAITING, f"oncofollow-tablet-{new}"))

    assert await eventually(new_worker_waiting, within=3)
    assert not opening.done(), "the new worker installed once the opening was done, not during it"
    await opening
    await expect(opening_page.locator("#screen-home")).to_be_visible(timeout=5_000)

    # The page opened whole, every file of the version of the copy it came from.
    assert versions and set(versions.values()) == {old}, versions
    assert await opening_page.evaluate("document.documentElement.dataset.build") is None
    tablet.connection.openings_held_until.set()  # the page's own request, answered at last: too late, ignored

    # The new worker in control: its copy is there (the older one too, while the page it opened is open).
    async def settled() -> list[str] | None:
        await let_the_new_worker_take_over(page)
        return await page.evaluate(CACHES_ONCE_SETTLED)

    assert f"oncofollow-tablet-{new}" in await eventually(settled, within=10, interval=0.25)

    # That page closed, the tablet opened offline: the new worker's copy, whole; the older one goes at this opening.
    await opening_page.close()
    await context.set_offline(True)
    opened = await page.reload()
    assert opened is not None and opened.from_service_worker
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    assert await page.evaluate("document.documentElement.dataset.build") == "v2"

    async def new_copy_only() -> list[str] | None:
        names = list(await page.evaluate(CACHED))
        return names if names == [f"oncofollow-tablet-{new}"] else None

    assert await eventually(new_copy_only, within=5)


# Everything the tablet's browser keeps for the page's origin, listed whole: localStorage and sessionStorage (every key
# and value, not only the page's own prefix), each IndexedDB database with every record of its stores, and each cache
# with the addresses it holds.
KEPT_ON_THE_TABLET = """
async () => {
  const storage = (area) => Object.fromEntries(Object.keys(area).map((key) => [key, area.getItem(key)]));
  const records = (name) =>
    new Promise((resolve, reject) => {
      const request = indexedDB.open(name);
      request.onerror = () => reject(request.error);
      request.onsuccess = () => {
        const db = request.result;
        const stores = [...db.objectStoreNames];
        if (!stores.length) {
          db.close();
          resolve({});
          return;
        }
        const transaction = db.transaction(stores, "readonly");
        const held = {};
        for (const store of stores) {
          const keys = transaction.objectStore(store).getAllKeys();
          keys.onsuccess = () => (held[store] = keys.result);
        }
        transaction.oncomplete = () => {
          db.close();
          resolve(held);
        };
      };
    });
  // A database whose deletion is held up (a connection that does not let it go) cannot be opened until it is: said so.
  const held = (name) =>
    Promise.race([records(name), new Promise((resolve) => setTimeout(() => resolve("deletion held up"), 2000))]);
  const databases = {};
  for (const { name } of await indexedDB.databases()) databases[name] = await held(name);
  const cached = {};
  for (const name of await caches.keys())
    cached[name] = (await (await caches.open(name)).keys()).map((request) => request.url);
  return {
    localStorage: storage(localStorage),
    sessionStorage: storage(sessionStorage),
    indexedDB: databases,
    caches: cached,
    cookies: document.cookie,
  };
}
"""


async def test_a_loan_that_ends_leaves_nothing_of_the_patient_s_use_but_the_text_size_and_its_end_until_the_next_loan(
    service_env: dict[str, str], tmp_path: Path, context: BrowserContext, tokens: TokenService
) -> None:
    """The tablet handed back: nothing of the patient's use is left in the browser's storage (answers begun, a
    message being written, the questionnaire kept, the worker's record of the openings), only what every tablet
    holds: the page's own files, which still open it offline, and the team's number; and, until the next loan starts
    (its enrolment forgets it: test_tablet_comfort.py), the text size chosen and that the loan ended (which kinds of
    sends it left unsent, never what they said), for the patient who reads that it did."""
    async with tablet_service(service_env, tmp_path / "tablet", TEAM_PHONE=TEAM_PHONE) as tablet:
        patient, loan = uuid.uuid4(), f"loan-{uuid.uuid4().hex}"
        token = tokens.issue_device_token(patient, "tablet-loan", token_id=loan)
        page = await enrolled(tablet, context, tokens, patient, token)
        # The patient's use: the app opened again (through the worker, which writes the opening down), the text at
        # 200 %, the questionnaire begun and left for later, a message begun.
        await page.reload()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        for _ in range(3):
            await page.get_by_role("button", name="A+, texte plus grand").click()
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await page.locator("#question-answers [role=radio]").first.click()
        await page.locator("#screen-question").get_by_role("button", name="Pas maintenant").click()
        await page.get_by_role("button", name="Écrire à l'équipe soignante").click()
        await page.locator("#message-text").fill("J'ai mal aux mains depuis hier.")
        await page.locator("#screen-message").get_by_role("button", name="Accueil").click()
        used = await page.evaluate(KEPT_ON_THE_TABLET)
        # What the test looks for is there while the loan runs: the patient's keys, and the openings written down.
        assert {"token", "draft", "messageDraft", "textSize", "definition", "teamPhone"} <= {
            key.removeprefix("oncofollow.tablet.") for key in used["localStorage"]
        }
        assert used["indexedDB"]["oncofollow-tablet"]["openings"], used["indexedDB"]

        # The tablet is handed back: its token revoked, as the devices service does when the return is recorded.
        await end_loan(tablet.platform.pool, tablet.url, loan, token)
        # The page opened after it: the token refused, the loan ended.
        await page.reload()
        setup = page.locator("#screen-setup")
        await expect(setup).to_contain_text("n'est plus reliée à votre suivi", timeout=5_000)
        # At the size the patient chose: she is the one who reads it.
        assert await page.evaluate("getComputedStyle(document.documentElement).fontSize") == "44px"
        await expect(page.get_by_role("button", name="A+, texte plus grand")).to_be_disabled()

        async def forgotten() -> dict[str, Any] | None:
            kept = await page.evaluate(KEPT_ON_THE_TABLET)
            return kept if not kept["indexedDB"] else None

        # The database's deletion is asynchronous: waited for, then everything listed (where it never goes, the
        # listing says what stayed).
        with contextlib.suppress(AssertionError):
            await eventually(forgotten, within=5)
        kept = await page.evaluate(KEPT_ON_THE_TABLET)
        version = await tablet.version()
        cache = f"oncofollow-tablet-{version}"
        assert kept == {
            "localStorage": {
                "oncofollow.tablet.teamPhone": orjson.dumps(TEAM_PHONE).decode(),
                "oncofollow.tablet.textSize": "3",
                # That the loan ended, and nothing left unsent (the message was being written, never sent): the
                # screen says why at each opening until the next loan.
                "oncofollow.tablet.loanEnd": orjson.dumps({"unsent": []}).decode(),
            },
            "sessionStorage": {},
            "indexedDB": {},
            "caches": {cache: kept["caches"].get(cache)},
            "cookies": "",
        }
        assert f"{tablet.url}/tablet/" in kept["caches"][cache]

        # What stays is what a returned tablet needs: offline, it still opens, not ready, and says whom to call.
        await context.set_offline(True)
        await page.reload()
        await expect(setup).to_contain_text("pas encore prête", timeout=5_000)
        await expect(setup.get_by_role("link", name=f"Appeler l'équipe soignante : {TEAM_PHONE}")).to_be_visible()
