"""Enrolling a tablet with a one-time code, in a real headless Chromium against the real devices and questionnaire
services on two origins (as deployed: TABLET_ORIGINS and DEVICES_PUBLIC_URL set): the fleet page shows the short
link's QR code and how long it is valid, « Nouveau code » kills the last; the tablet opened with #enrol=<code>
exchanges it, ends enrolled with no code in its address or storage, and sends answers; a spent code is said in
French."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import listening_sockets, port_of
from shared.testing.services import served
from tests.browser.test_tablet import answer_until_review

pytestmark = pytest.mark.browser


@dataclass
class Deployment:
    tablet_url: str  # the questionnaire service, as the tablet reaches it
    devices_url: str
    devices: Any  # the devices platform (its database)
    tokens: TokenService
    browser: Browser

    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token('parc-julie', {'fleet'})}"}

    async def loan(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.devices_url, headers=self.staff()) as staff:
            registered = await staff.post(
                "/v1/tablets", json={"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9"}
            )
            tablet = registered.json()["id"]
            assert (await staff.post(f"/v1/tablets/{tablet}/actions/provision", json={})).status_code == 200
            granted = await staff.post(
                f"/v1/tablets/{tablet}/loan",
                json={
                    "patient_id": str(uuid.uuid4()),
                    "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
                    "accessories": [],
                },
            )
            assert granted.status_code == 201, granted.text
            return dict(granted.json())

    async def exchange(self, code: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.devices_url) as client:
            return await client.post("/v1/enrolments", json={"code": code})

    async def tablet(self) -> BrowserContext:
        return await self.browser.new_context(
            viewport={"width": 800, "height": 1280}, locale="fr-FR", timezone_id="Europe/Paris"
        )


@pytest.fixture
async def deployment(service_env: dict[str, str], tokens: TokenService, browser: Browser) -> AsyncIterator[Deployment]:
    q_sock, d_sock = listening_sockets(2)
    q_port, d_port = port_of(q_sock), port_of(d_sock)
    # Any, not str: the settings' own keyword arguments (pydantic's _env_file, _case_sensitive…) are not all strings,
    # and a dict of strings unpacked into them does not type-check.
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env, DEVICES_PUBLIC_URL=f"http://127.0.0.1:{d_port}")
    d_settings = DevicesSettings(
        **env,
        SILENCE_CHECK_S="3600",
        TABLET_ORIGINS=f"http://127.0.0.1:{q_port}",
        QUESTIONNAIRE_PUBLIC_URL=f"http://127.0.0.1:{q_port}",
    )
    async with (
        served(build_questionnaire(q_settings), q_sock) as (url, _),
        served(build_devices(d_settings), d_sock) as (devices_url, devices),
    ):
        yield Deployment(url, devices_url, devices, tokens, browser)


def code_of(url: str) -> str:
    assert "#enrol=" in url and "device_token" not in url, url
    return url.partition("#enrol=")[2]


async def copied_link(page: Page) -> str:
    """The link « Copier le lien » puts on the clipboard, read once the page says it is there: the copy is
    asynchronous, and a read before it ends finds the clipboard as it was (empty, or the last code)."""
    await page.locator("#copy-link").click()
    await expect(page.locator("#status")).to_have_text(
        "Lien d'enrôlement copié : collez-le dans le navigateur de la tablette."
    )
    link: str = await page.evaluate("() => navigator.clipboard.readText()")
    return link


async def enrol(deployment: Deployment, context: BrowserContext, link: str) -> Page:
    page = await context.new_page()
    await page.goto(link)
    return page


async def test_a_tablet_opened_with_a_code_ends_enrolled_with_no_code_left_and_sends_answers(
    deployment: Deployment,
) -> None:
    granted = await deployment.loan()
    code = code_of(granted["enrolment_url"])
    context = await deployment.tablet()
    try:
        page = await enrol(deployment, context, granted["enrolment_url"])
        await expect(page.locator("#screen-home")).to_be_visible(timeout=10_000)
        assert "enrol" not in page.url and code not in page.url
        kept = await page.evaluate("JSON.stringify(Object.entries(localStorage))")
        assert code not in kept and granted["device_token"] in kept
        # Spent: the link opened again, or by anyone else, enrols nothing.
        assert (await deployment.exchange(code)).status_code == 410
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await answer_until_review(page, {})
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
        async with deployment.devices.pool.acquire() as conn:
            trail = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'tablet.enrol'")
        assert trail == 1
    finally:
        await context.close()


NOTHING_TO_DO = "Vous n'avez rien à faire sur la tablette."


async def test_a_spent_code_says_in_french_to_ask_for_a_new_one_and_an_unknown_one_too(
    deployment: Deployment,
) -> None:
    granted = await deployment.loan()
    assert (await deployment.exchange(code_of(granted["enrolment_url"]))).status_code == 200
    context = await deployment.tablet()
    try:
        page = await enrol(deployment, context, granted["enrolment_url"])
        await expect(page.locator("#screen-setup")).to_be_visible(timeout=10_000)
        await expect(page.locator("#setup-reason")).to_have_text(
            "Demandez un nouveau code à la personne qui vous a prêté la tablette. Ce code a déjà servi."
        )
        # Asked to get a new code, the reader is not told, a line below, that there is nothing to do on the tablet.
        shown = await page.locator("#screen-setup").inner_text()
        assert NOTHING_TO_DO not in shown and "fiche donnée avec la tablette" in shown
        assert "enrol" not in page.url
        assert await page.evaluate("localStorage.length") == 0
        await page.goto(f"{deployment.tablet_url}/tablet/#enrol=0000000000ZZZZZZZZ")
        await expect(page.locator("#setup-reason")).to_contain_text("Ce code ne marche pas.")
        assert NOTHING_TO_DO not in await page.locator("#screen-setup").inner_text()
        # Opened without a code, nothing is asked of the patient: the team prepares the tablet.
        await page.goto(f"{deployment.tablet_url}/tablet/")
        await page.reload()
        await expect(page.locator("#setup-reason")).to_have_text("Elle n'est pas encore reliée à votre suivi.")
        assert NOTHING_TO_DO in await page.locator("#screen-setup").inner_text()
    finally:
        await context.close()


async def test_the_fleet_page_shows_the_short_code_its_validity_and_makes_a_new_one_that_enrols(
    deployment: Deployment,
) -> None:
    fleet = await deployment.browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    await fleet.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.devices_url)
    tablet = await deployment.tablet()
    try:
        page = await fleet.new_page()
        await page.goto(f"{deployment.devices_url}/fleet/")
        await page.locator("#token").fill(deployment.tokens.issue_staff_token("parc-julie", {"fleet"}))
        await page.locator("#token").press("Enter")
        await expect(page.locator("#app")).to_be_visible()
        # The glance, above the toolbar, is drawn once its list comes: a click before then can land where the button
        # was, on a loaded machine (the fill below then waited 30 s for a form that never opened).
        await expect(page.locator("#attention li").first).to_be_visible()
        serial = f"R52-{uuid.uuid4().hex[:8]}".upper()
        await page.locator("#register-open").click()
        await page.locator("#panel").get_by_label("Numéro de série").fill(serial)
        await page.get_by_role("button", name="Enregistrer", exact=True).click()
        line = page.locator(f"#tablets tr[data-serial='{serial}']")
        await line.get_by_role("button", name="Marquer préparée").click()
        await page.locator("#panel").get_by_role("button", name="Marquer préparée").click()
        await line.get_by_role("button", name="Prêter").click()
        await page.get_by_label("Patient (identifiant pseudonyme)").fill(str(uuid.uuid4()))
        await page.get_by_label("Signature recueillie par").fill("ide-martin")
        await page.locator("#panel").get_by_role("button", name="Prêter").click()

        await expect(page.locator("#enrolment-qr")).to_be_visible()
        await expect(page.locator("#code-validity")).to_contain_text("Code valable 30 minutes, une seule fois")
        first = code_of(await copied_link(page))
        light = await page.locator("#enrolment-qr").get_attribute("src")
        assert light is not None

        await page.get_by_role("button", name="Nouveau code", exact=True).click()
        await expect(page.locator("#status")).to_have_text(f"Nouveau code d'enrôlement pour la tablette {serial}.")
        await expect(page.locator("#code-validity")).to_contain_text("Code valable 30 minutes, une seule fois")
        link = await copied_link(page)
        assert code_of(link) != first
        assert (await deployment.exchange(first)).status_code == 404  # the old code stops working
        await page.get_by_role("button", name="Terminé").click()

        # The panel closed, a code can still be made from the tablet's line.
        await line.get_by_role("button", name="Nouveau code d'enrôlement").click()
        await expect(page.locator("#enrolment-qr")).to_be_visible()
        newest = await copied_link(page)
        assert code_of(newest) != code_of(link)

        opened = await tablet.new_page()
        await opened.goto(newest)
        await expect(opened.locator("#screen-home")).to_be_visible(timeout=10_000)
    finally:
        await tablet.close()
        await fleet.close()


async def test_an_exchange_whose_answer_is_lost_is_asked_again_with_the_same_key_and_enrols(
    deployment: Deployment,
) -> None:
    granted = await deployment.loan()
    context = await deployment.tablet()
    lost: list[str] = []

    async def lose_the_answer(route: Route) -> None:
        # The service spends the code and answers; the Wi-Fi drops before the tablet reads the answer.
        answered = await route.fetch()
        lost.append(str(answered.status))
        await route.abort("connectionreset")

    try:
        page = await context.new_page()
        await page.route("**/v1/enrolments", lose_the_answer)
        await page.goto(granted["enrolment_url"])
        await expect(page.locator("#setup-reason")).to_have_text(
            "Vérifiez le Wi-Fi, puis rouvrez cette page. La tablette n'arrive pas à se connecter."
        )
        assert lost == ["200"] and "enrol" not in page.url
        await page.unroute("**/v1/enrolments")
        await page.reload()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=10_000)
        kept = await page.evaluate("JSON.stringify(Object.entries(localStorage))")
        assert code_of(granted["enrolment_url"]) not in kept and granted["device_token"] in kept
        async with deployment.devices.pool.acquire() as conn:
            actions = await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'tablet.enrol%' ORDER BY at")
        assert [r["action"] for r in actions] == ["tablet.enrol", "tablet.enrol_retry"]
    finally:
        await context.close()


UNREACHED = "Vérifiez le Wi-Fi, puis rouvrez cette page. La tablette n'arrive pas à se connecter."


async def test_an_exchange_that_hangs_says_the_tablet_cannot_connect_within_30_s_and_the_code_enrols_later(
    deployment: Deployment,
) -> None:
    """A captive Wi-Fi answers nothing and fails nothing: the exchange, or config.json's read before it, hung for
    minutes on a blank page while the fleet manager watched. Given up within 30 s, the page says so, keeps the code
    with its key, and reopened it enrols, once."""
    granted = await deployment.loan()
    code = code_of(granted["enrolment_url"])
    # No service worker: the page's own requests, config.json's too, are the ones the test holds.
    context = await deployment.browser.new_context(
        viewport={"width": 800, "height": 1280}, locale="fr-FR", timezone_id="Europe/Paris", service_workers="block"
    )
    held: asyncio.Queue[tuple[Route, asyncio.Future[None]]] = asyncio.Queue()

    async def hold(route: Route) -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await held.put((route, never))
        await never

    keys: list[str | None] = []
    try:
        page = await context.new_page()
        page.on("request", lambda r: keys.append(r.headers.get("idempotency-key")) if "enrolments" in r.url else None)
        await page.clock.install()
        reason = page.locator("#setup-reason")
        for hung in ("**/v1/enrolments", "**/tablet/config.json"):
            await page.route(hung, hold)
            if hung.endswith("enrolments"):
                await page.goto(granted["enrolment_url"])
            else:
                await page.reload()
            _, never = await asyncio.wait_for(held.get(), timeout=10)
            # Under way, the page says so (it was blank until the time-out), never that there is nothing to do.
            await page.clock.run_for(29_000)
            await expect(reason).to_have_text("La tablette se prépare. Cela peut prendre quelques secondes.")
            assert NOTHING_TO_DO not in await page.locator("#screen-setup").inner_text()
            await page.clock.run_for(2_000)
            await expect(reason).to_have_text(UNREACHED)
            kept = await page.evaluate("() => localStorage.getItem('oncofollow.tablet.enrolment')")
            assert kept is not None and code in kept, kept
            await page.unroute(hung)
            never.cancel()
        # Reopened: the same key, and one exchange at the devices service.
        await page.reload()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=10_000)
        assert len(set(keys)) == 1 and len(keys) == 2, keys
        stored = await page.evaluate("JSON.stringify(Object.entries(localStorage))")
        assert code not in stored and granted["device_token"] in stored
        async with deployment.devices.pool.acquire() as conn:
            actions = await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'tablet.enrol%'")
        assert [r["action"] for r in actions] == ["tablet.enrol"]
    finally:
        await context.close()


async def test_a_code_on_a_tablet_page_that_cannot_reach_the_devices_service_says_so(
    service_env: dict[str, str], browser: Browser
) -> None:
    """DEVICES_PUBLIC_URL unset: nowhere to exchange a code (the devices service then gives token links)."""
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with served(build_questionnaire(QuestionnaireSettings(**env))) as (url, _):
        context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
        try:
            page = await context.new_page()
            await page.goto(f"{url}/tablet/#enrol=7K3M9QXW2HDP4TNV8R")
            await expect(page.locator("#setup-reason")).to_have_text(
                "Demandez le lien complet à la personne qui vous a prêté la tablette. Cette page ne peut pas utiliser "
                "ce code."
            )
            assert "enrol" not in page.url and await page.evaluate("localStorage.length") == 0
        finally:
            await context.close()
