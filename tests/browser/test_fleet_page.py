"""The fleet manager's page (``/fleet/`` on the devices service) in a real headless Chromium, against the real
devices and questionnaire services: sign-in with a pasted token, a tablet registered, loaned with its enrolment QR
code (whose link enrols the tablet at the questionnaire service) and returned without its charger, the loans that
need attention with the silent tablets first, the patient's return receipt printed from the tablet's loans, and a
nurse's token turned away."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from services.devices.domain import SilencePolicy
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.devices.silence import report_silent_tablets
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.clock import PinnableClock, paris_noon_today
from shared.testing.services import in_process, served
from tests.browser.conftest import ARTIFACTS, contrast

pytestmark = pytest.mark.browser

QUESTIONNAIRE_URL = "https://soins.example.org/questionnaire"
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Office:
    url: str  # the devices service, as the fleet manager's computer reaches it
    devices: Any  # its platform (the database)
    questionnaire: httpx.AsyncClient
    tokens: TokenService
    browser: Browser
    # The devices service's clock: the real time unless a test sets it (a day it checks, far from midnight).
    clock: PinnableClock

    def staff(self, role: str = "fleet") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token('parc-julie', {role})}"}

    async def page(
        self, context: BrowserContext, role: str = "fleet", name: str | None = None, at: datetime | None = None
    ) -> Page:
        """The page, signed in as the fleet manager does it: a token pasted into the sign-in form; the browser's
        print dialog counted, not opened (``window.printed``); its clock flowing from ``at``, as the service's set
        there, if given."""
        page = await context.new_page()
        if at is not None:
            await page.clock.install(time=at)
            await page.clock.resume()
        await page.add_init_script("window.printed = 0; window.print = () => { window.printed += 1; };")
        await page.goto(f"{self.url}/fleet/")
        await expect(page.locator("#sign-in")).to_be_visible()
        await page.locator("#token").fill(self.tokens.issue_staff_token("parc-julie", {role}, name=name))
        await page.locator("#token").press("Tab")
        await page.keyboard.press("Enter")  # the sign-in button, reached with the keyboard
        return page


async def glance_drawn(page: Page) -> None:
    """The glance, above the toolbar, is drawn once its list comes and moves the toolbar down: a click on
    « Enregistrer une tablette » before then can land where the button was, on a loaded machine."""
    await expect(page.locator("#attention li").first).to_be_visible()


@pytest.fixture
async def office(service_env: dict[str, str], tokens: TokenService, browser: Browser) -> AsyncIterator[Office]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    devices = DevicesSettings(**env, SILENCE_CHECK_S="3600", QUESTIONNAIRE_PUBLIC_URL=QUESTIONNAIRE_URL)
    clock = PinnableClock()
    async with (
        served(build_devices(devices, clock=clock)) as (url, platform),
        in_process(build_questionnaire(QuestionnaireSettings(**env))) as (questionnaire, _),
    ):
        yield Office(url, platform, questionnaire, tokens, browser, clock)


@pytest.fixture
async def context(office: Office) -> AsyncIterator[BrowserContext]:
    context = await office.browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=office.url)
    yield context
    await context.close()


def row(page: Page, serial: str) -> Any:
    return page.locator(f"#tablets tr[data-serial='{serial}']")


def paris_day(at: datetime) -> str:
    """The day of ``at`` as the receipt writes it (receiptDay)."""
    return at.astimezone(PARIS).strftime("%d/%m/%Y")


async def test_a_tablet_is_registered_loaned_enrolled_by_its_qr_code_and_returned_without_its_charger(
    office: Office, context: BrowserContext
) -> None:
    page = await office.page(context)
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("Connecté·e : parc-julie")  # as the dashboard says it
    await glance_drawn(page)
    serial = f"R52-{uuid.uuid4().hex[:8]}".upper()

    await page.locator("#register-open").click()
    await page.locator("#panel").get_by_label("Numéro de série").fill(serial)
    await page.get_by_role("button", name="Enregistrer", exact=True).click()
    await expect(page.locator("#status")).to_contain_text(f"Tablette {serial} enregistrée")
    await row(page, serial).get_by_role("button", name="Marquer préparée").click()
    await page.locator("#panel").get_by_role("button", name="Marquer préparée").click()
    await expect(row(page, serial).locator(".state")).to_have_text("Prête")

    patient = uuid.uuid4()
    await row(page, serial).get_by_role("button", name="Prêter").click()
    await page.get_by_label("Patient (identifiant pseudonyme)").fill(str(patient))
    await page.get_by_label("Signature recueillie par").fill("ide-martin")
    # A double click sends one command: one loan, one token. On a 1366×768 screen at 150 % (911×512 CSS px).
    await page.set_viewport_size({"width": 911, "height": 512})
    await page.locator("#panel").get_by_role("button", name="Prêter").dblclick()
    qr = page.locator("#enrolment-qr")
    await expect(qr).to_be_visible()
    # The whole code on the screen, for the tablet's camera, with "Copier le lien" (which has the focus) below it.
    await expect(page.locator("#copy-link")).to_be_focused()
    seen = await page.evaluate(
        "['#enrolment-qr', '#copy-link'].map((s) => { const r = document.querySelector(s).getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= innerHeight; })"
    )
    assert seen == [True, True], seen
    await page.set_viewport_size({"width": 1280, "height": 720})
    # The line above the page says what was just done, not the step before it ("… : Prête.").
    await expect(page.locator("#status")).to_have_text(f"Tablette {serial} prêtée.")
    assert await qr.evaluate("(img) => img.complete && img.naturalWidth > 0")
    assert (await qr.get_attribute("src") or "").startswith("data:image/svg+xml")

    await page.locator("#copy-link").click()
    link = await page.evaluate("navigator.clipboard.readText()")
    assert link.startswith(f"{QUESTIONNAIRE_URL}/tablet/#device_token=")
    await expect(page.locator("#new-code")).to_have_count(0)
    token = link.partition("#device_token=")[2]
    enrolled = await office.questionnaire.get("/v1/questionnaires", headers={"Authorization": f"Bearer {token}"})
    assert enrolled.status_code == 200, enrolled.text
    async with office.devices.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM loans WHERE patient_id = $1", patient) == 1
    await page.get_by_role("button", name="Terminé").click()

    # The tablet shows its borrower shortened, the whole pseudonymous id on hover.
    loaned = row(page, serial)
    await expect(loaned.locator(".state")).to_have_text("Prêtée")
    await expect(loaned.locator("code.id")).to_have_attribute("title", str(patient))
    await expect(loaned.locator("code.id")).to_have_text(f"{str(patient)[:8]}…")
    # Without TABLET_ORIGINS the link carries the token, made once with the loan: no new code to make.
    await expect(loaned.get_by_role("button", name="Nouveau code d'enrôlement")).to_have_count(0)

    await loaned.get_by_role("button", name="Enregistrer le retour").click()
    await page.get_by_label("Chargeur").uncheck()
    # Not checked unless said: the condition starts at « Non relevé », never at « Bon état ».
    await expect(page.get_by_label("État de la tablette")).to_have_value("")
    await page.get_by_label("État de la tablette").select_option(label="Endommagée")
    await page.get_by_label("Précisions sur l'état").fill("écran fissuré")
    await page.locator("#panel").get_by_role("button", name="Enregistrer le retour").click()
    await expect(page.locator("#return-result")).to_have_text("Manquant : Chargeur.")
    await expect(page.locator("#return-condition")).to_have_text("État au retour : endommagée (écran fissuré).")
    await expect(page.locator("#status")).to_have_text(f"Tablette {serial} rendue.")

    # The patient leaves with a receipt of the return; it says the wipe is still to be done.
    await page.locator("#panel").get_by_role("button", name="Imprimer l'attestation de restitution").click()
    await expect(page.locator("#receipt-title")).to_have_text("Attestation de restitution de la tablette")
    await expect(page.locator("#receipt-wipe")).to_have_text(
        "L'effacement des données est prévu ; une nouvelle attestation peut être imprimée une fois fait."
    )
    await expect(page.locator("#receipt-sheet")).to_contain_text("Non rendus à ce jour : Chargeur.")
    await expect(page.locator("#receipt-condition")).to_have_text("État au retour : endommagée (écran fissuré).")
    assert await page.evaluate("window.printed") == 1


async def _loan(office: Office, at: datetime) -> tuple[str, uuid.UUID]:
    """A tablet loaned (through the API) at ``at``, its agreement signed at the service's now."""
    client = httpx.AsyncClient(base_url=office.url, headers=office.staff())
    async with client:
        registered = await client.post(
            "/v1/tablets",
            json={"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9", "accessories": []},
        )
        tablet = registered.json()["id"]
        assert (await client.post(f"/v1/tablets/{tablet}/actions/provision", json={})).status_code == 200
        patient = uuid.uuid4()
        loan = {
            "patient_id": str(patient),
            "agreement": {"signed_at": office.clock().isoformat(), "witnessed_by": "ide-martin"},
            "accessories": [],
        }
        assert (await client.post(f"/v1/tablets/{tablet}/loan", json=loan)).status_code == 201
    async with office.devices.pool.acquire() as conn:
        await conn.execute("UPDATE loans SET loaned_at = $2 WHERE tablet_id = $1", uuid.UUID(tablet), at)
    return tablet, patient


async def test_at_a_glance_the_silent_tablets_come_first_then_the_overdue_loans(
    office: Office, context: BrowserContext
) -> None:
    now = datetime.now(UTC)
    # Overdue, but heard of lately (loaned two days ago): not silent.
    overdue, _ = await _loan(office, now - timedelta(days=2))
    async with office.devices.pool.acquire() as conn:
        await conn.execute(
            "UPDATE loans SET expected_return_on = $2 WHERE tablet_id = $1",
            uuid.UUID(overdue),
            (now - timedelta(days=1)).date(),
        )
    silent, _ = await _loan(office, now - timedelta(days=8))
    reported = await report_silent_tablets(office.devices.pool, now, SilencePolicy())
    assert str(silent) in [str(r.tablet_id) for r in reported]
    assert str(overdue) not in [str(r.tablet_id) for r in reported]

    page = await office.page(context)
    items = page.locator("#attention li")
    await expect(items.locator(f"xpath=self::*[@data-tablet='{silent}']")).to_contain_text("Silencieuse")
    await expect(items.locator(f"xpath=self::*[@data-tablet='{overdue}']")).to_contain_text("Retour en retard")
    order = await items.evaluate_all("(lis) => lis.map((li) => li.dataset.tablet)")
    assert order.index(silent) < order.index(overdue)
    # The counts in French, agreeing in number: "2 Prêtées", "1 Silencieuse", not "2 Prêtée", "1 Silencieuses".
    counts = await page.locator("#counts li").evaluate_all(
        "(lis) => lis.map((li) => [li.firstChild.textContent, li.lastChild.textContent])"
    )
    # The loans on their way are counted once, as tablets « Prêtées » (never also as « Prêts en cours »).
    assert ["2", "Prêtées"] in counts and all("en cours" not in label for _, label in counts), counts
    assert ["1", "Silencieuse"] in counts and ["1", "Retour en retard"] in counts, counts
    assert ["0", "Retour à venir"] in counts and ["0", "Prête"] in counts, counts

    # At 150 % on a 1366-pixel screen: a serial number stays on one line ("R52-" alone above the rest misleads).
    await page.set_viewport_size({"width": 911, "height": 512})
    lines = await page.locator("#tablets .serial").evaluate_all(
        "(spans) => spans.map((s) => s.getClientRects().length)"
    )
    assert lines and set(lines) == {1}, lines
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await page.set_viewport_size({"width": 1280, "height": 720})

    # With the keyboard only: a form opens with the focus in it, Escape closes it and gives the focus back.
    await page.locator("#register-open").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#panel").get_by_label("Numéro de série")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#panel")).to_be_hidden()
    await expect(page.locator("#register-open")).to_be_focused()
    # Its frame shows against the card and the page around it (WCAG: 3:1 for a focus indicator).
    frame = await page.locator("#register-open").evaluate("(b) => getComputedStyle(b).outlineColor")
    assert min(contrast(frame, "rgb(255, 255, 255)"), contrast(frame, "rgb(244, 246, 248)")) >= 3, frame

    # Signing out with a form open and the list's answer still on its way: nothing of the fleet stays in the tab.
    held = asyncio.Event()
    asked: list[str] = []

    async def hold(route: Route) -> None:
        asked.append(route.request.url)
        await held.wait()
        await route.continue_()

    await page.route(lambda url: urlsplit(url).path == "/v1/tablets", hold)
    await page.locator("#register-open").click()
    await page.evaluate("document.getElementById('refresh').click()")
    for _ in range(250):  # the refresh's request has left, and is held
        if asked:
            break
        await asyncio.sleep(0.02)
    assert asked, "the list was not asked for again"
    await page.get_by_role("button", name="Se déconnecter").click()
    held.set()
    await expect(page.locator("#sign-in-message")).to_have_text("Vous êtes déconnecté·e.")
    await page.wait_for_timeout(300)  # time for a late answer to be drawn, were it still taken
    left = await page.evaluate(
        "() => ['#tablets tbody tr', '#counts li', '#attention li', '#panel-body *']"
        ".map((s) => document.querySelectorAll(s).length)"
    )
    assert left == [0, 0, 0, 0]
    await expect(page.locator("#sign-in-message")).to_have_text("Vous êtes déconnecté·e.")  # no error put in its place


# Counts the answers of GET /v1/tablets the page has read: once it has, what it draws from them is drawn (the drawing
# runs in the same task as the read, before any wait polls again).
LISTS_READ = """
window.tabletListsRead = 0;
const text = Response.prototype.text;
Response.prototype.text = function () {
  const listed = new URL(this.url).pathname === "/v1/tablets";
  return text.call(this).then((body) => { if (listed) window.tabletListsRead += 1; return body; });
};
"""


async def test_a_list_answered_late_does_not_undo_the_one_asked_after_it(
    office: Office, context: BrowserContext
) -> None:
    # On a loaded network the list asked at sign-in can come back after the one asked once a tablet is registered:
    # drawn last, it took the new tablet off the page, and the next click on its line waited for ever.
    late = asyncio.Event()
    held: list[str] = []

    async def answer_the_first_list_late(route: Route) -> None:
        if route.request.method != "GET" or held:
            await route.continue_()
            return
        held.append(route.request.url)
        answer = await route.fetch()  # the fleet as it is at sign-in: no tablet yet
        await late.wait()
        await route.fulfill(response=answer)

    await context.add_init_script(LISTS_READ)
    await context.route(lambda url: urlsplit(url).path == "/v1/tablets", answer_the_first_list_late)
    page = await office.page(context)
    await expect(page.locator("#app")).to_be_visible()
    await glance_drawn(page)
    serial = f"R52-{uuid.uuid4().hex[:8]}".upper()
    await page.locator("#register-open").click()
    await page.locator("#panel").get_by_label("Numéro de série").fill(serial)
    await page.get_by_role("button", name="Enregistrer", exact=True).click()
    await expect(row(page, serial)).to_be_visible()
    assert held, "the list asked at sign-in was not held"

    read = await page.evaluate("() => window.tabletListsRead")
    late.set()
    await page.wait_for_function("(read) => window.tabletListsRead > read", arg=read)
    await expect(row(page, serial)).to_be_visible(timeout=1_000)
    await row(page, serial).get_by_role("button", name="Marquer préparée").click(timeout=5_000)
    await expect(page.locator("#panel-title")).to_have_text(f"Marquer préparée : tablette {serial}")


# « En un coup d'œil »: every count, always in this order (fleet/app.js COUNT_ROWS), whatever it reads.
COUNT_ROWS = {
    "À traiter": [
        "silent_tablets",
        "loans_overdue",
        "missing_accessories",
        "damaged_to_check",
        "state:returned",
        "state:wipe_pending",
        "state:wiped",
        "state:pending_provisioning",
    ],
    "À suivre": ["loans_due_soon", "state:in_repair", "state:lost", "state:stolen"],
    # One count of the tablets on loan: an open loan is a tablet « Prêtée » (api.py ends one with the other).
    "Le parc": ["state:loaned", "state:ready", "state:retired"],
}
SCREENS = {"100": (1366, 768), "150": (911, 512)}  # a 1366×768 screen at 100 % and at 150 % (CSS pixels)


async def _counts(page: Page) -> dict[str, Any]:
    """Each count as drawn: its row, its number, its look, and where it is on the page."""
    return dict(
        await page.locator("#counts li").evaluate_all(
            """(lis) => lis.map((li) => {
                const box = li.getBoundingClientRect(), number = li.querySelector("strong");
                const style = getComputedStyle(li);
                return [li.dataset.count, {
                    row: li.closest(".count-row").querySelector("h3").textContent,
                    number: number.textContent, classes: li.className, colour: style.color,
                    background: style.backgroundColor, border: style.borderLeftColor,
                    weight: Number(getComputedStyle(number).fontWeight),
                    place: [box.left + scrollX, box.top + scrollY, box.width, box.height],
                }];
            })"""
        )
    )


async def test_at_a_glance_what_waits_for_a_step_stands_out_and_every_count_keeps_its_place(
    office: Office, context: BrowserContext
) -> None:
    now = datetime.now(UTC)
    late, _ = await _loan(office, now - timedelta(days=30))
    for _ in range(2):
        await _loan(office, now - timedelta(days=30))
    async with office.devices.pool.acquire() as conn:
        await conn.execute(
            "UPDATE loans SET expected_return_on = $2 WHERE tablet_id = $1",
            uuid.UUID(late),
            (now - timedelta(days=3)).date(),
        )
    page = await office.page(context)
    await expect(page.locator("#counts li[data-count='loans_overdue'] strong")).to_have_text("1")
    ARTIFACTS.mkdir(exist_ok=True)
    places: dict[str, dict[str, Any]] = {}
    for screen, (width, height) in SCREENS.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.evaluate("scrollTo(0, 0)")
        counts = await _counts(page)
        # Three labelled rows, each count in its place: the fifteen, zeros included, in a fixed order.
        assert {row: [key for key, c in counts.items() if c["row"] == row] for row in COUNT_ROWS} == COUNT_ROWS
        assert list(counts) == [key for keys in COUNT_ROWS.values() for key in keys]
        # An overdue return (a step for the fleet manager) stands out; a zero beside it is quieter, still readable.
        overdue, silent = counts["loans_overdue"], counts["silent_tablets"]
        assert (overdue["number"], silent["number"]) == ("1", "0")
        assert "act" in overdue["classes"].split() and "zero" in silent["classes"].split()
        assert overdue["background"] != silent["background"] and overdue["border"] != silent["border"]
        assert overdue["weight"] >= 600 > silent["weight"]
        assert contrast(overdue["colour"], "rgb(255, 255, 255)") > contrast(silent["colour"], "rgb(255, 255, 255)")
        assert contrast(silent["colour"], "rgb(255, 255, 255)") >= 4.5
        # Not zero, but no step of the fleet manager's: drawn as it is, not as an alarm.
        assert counts["state:loaned"]["number"] == "3" and "act" not in counts["state:loaned"]["classes"].split()
        # What waits for a step is on one line, even at 150 %; and the page is never wider than the screen.
        assert len({counts[key]["place"][1] for key in COUNT_ROWS["À traiter"]}) == 1
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        places[screen] = {key: c["place"] for key, c in counts.items()}
        await page.screenshot(path=str(ARTIFACTS / f"fleet-counts-{screen}.png"))

    # The next day: the late tablet is back (a wipe to do now), one loan fewer. Numbers, plurals and looks change;
    # no count moves.
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        back = {"channel": "post", "accessories_returned": []}
        assert (await client.post(f"/v1/tablets/{late}/return", json=back)).status_code == 200
    await page.evaluate("document.getElementById('refresh').click()")
    await expect(page.locator("#counts li[data-count='loans_overdue'] strong")).to_have_text("0")
    for screen, (width, height) in SCREENS.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.evaluate("scrollTo(0, 0)")
        counts = await _counts(page)
        assert "zero" in counts["loans_overdue"]["classes"].split()
        assert counts["state:returned"]["number"] == "1" and "act" in counts["state:returned"]["classes"].split()
        assert {key: c["place"] for key, c in counts.items()} == places[screen], screen


async def test_a_return_with_everything_back_says_so_and_nothing_else(office: Office, context: BrowserContext) -> None:
    tablet, _ = await _loan(office, datetime.now(UTC))
    page = await office.page(context)
    await (
        page.locator(f"#tablets tr[data-tablet='{tablet}']").get_by_role("button", name="Enregistrer le retour").click()
    )
    await page.locator("#panel").get_by_role("button", name="Enregistrer le retour").click()
    await expect(page.locator("#return-result")).to_have_text("Tout ce qui avait été remis est revenu.")
    # What the panel leaves out (nothing missing, no condition recorded) is left out, not written as "null".
    await expect(page.locator("#return-condition")).to_have_count(0)
    text = await page.locator("#panel-body").evaluate("(body) => body.textContent")
    assert "null" not in text, text


async def test_a_nurse_token_is_turned_away_in_french(office: Office, context: BrowserContext) -> None:
    page = await office.page(context, role="nurse")
    await expect(page.locator("#sign-in-message")).to_contain_text("n'a pas le rôle « fleet »")
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    # The fleet manager's own token, pasted, then Enter, as in any sign-in form: she is in.
    await page.locator("#token").fill(office.tokens.issue_staff_token("parc-julie", {"fleet"}))
    await page.locator("#token").press("Enter")
    await expect(page.locator("#app")).to_be_visible()


async def test_a_refused_token_is_told_in_the_words_of_every_staff_page(
    office: Office, context: BrowserContext
) -> None:
    # The dashboard says the same (test_dashboard.py): one sentence for each way a session is refused or ends.
    page = await context.new_page()
    await page.goto(f"{office.url}/fleet/")
    await page.locator("#token").fill("pas-un-jeton")
    await page.locator("#token").press("Enter")
    message = page.locator("#sign-in-message")
    await expect(message).to_have_text("Ce jeton n'est pas valide ou a expiré. Collez un nouveau jeton.")
    # Signed in, then the token stops working under way (revoked, say): the next request ends the session.
    await page.locator("#token").fill(office.tokens.issue_staff_token("parc-julie", {"fleet"}))
    await page.locator("#token").press("Enter")
    await expect(page.locator("#app")).to_be_visible()
    await page.evaluate("sessionStorage.setItem('oncofollow.fleet.staffToken', 'pas-un-jeton')")
    await page.evaluate("document.getElementById('refresh').click()")
    await expect(message).to_have_text("Votre session n'est plus valide. Collez un nouveau jeton.")
    await expect(page.locator("#app")).to_be_hidden()


async def test_the_page_runs_its_own_files_only_and_shows_the_qr_code_as_an_image(office: Office) -> None:
    async with httpx.AsyncClient(base_url=office.url) as client:
        page = await client.get("/fleet/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self';" in policy and "img-src 'self' data:" in policy
    assert "unsafe-inline" not in policy


async def test_a_charger_back_later_a_wipe_refused_then_recorded_and_a_stolen_tablet(
    office: Office, context: BrowserContext
) -> None:
    # Noon, for the service and the page: returned and wiped just before midnight, the receipt printed just after
    # said another day than the test's.
    noon = office.clock.set(paris_noon_today())
    serial = f"R52-{uuid.uuid4().hex[:8]}".upper()
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        registered = await client.post(
            "/v1/tablets",
            json={"serial_number": serial, "model": "Galaxy Tab A9", "accessories": [{"kind": "charger"}]},
        )
        tablet = registered.json()["id"]
        assert (await client.post(f"/v1/tablets/{tablet}/actions/provision", json={})).status_code == 200
        patient = uuid.uuid4()
        loan = {
            "patient_id": str(patient),
            "agreement": {"signed_at": office.clock().isoformat(), "witnessed_by": "ide-martin"},
            "accessories": ["charger"],
        }
        assert (await client.post(f"/v1/tablets/{tablet}/loan", json=loan)).status_code == 201
        back = {
            "channel": "day_hospital",
            "accessories_returned": [],
            "condition": "worn",
            "condition_note": "coque rayée",
        }
        assert (await client.post(f"/v1/tablets/{tablet}/return", json=back)).status_code == 200

    page = await office.page(context, name="Sophie Leroy", at=noon)
    missing = page.locator(f"#attention li[data-tablet='{tablet}']")
    await expect(missing).to_contain_text("Manquant : Chargeur.")
    await missing.get_by_role("button", name="Accessoires rapportés").click()
    await page.locator("#panel").get_by_label("Chargeur").check()
    await page.locator("#panel").get_by_role("button", name="Enregistrer les accessoires rapportés").click()
    await expect(page.locator("#status")).to_have_text("Tous les accessoires sont revenus.")
    await expect(missing).to_have_count(0)

    # A wipe without its proof is refused, said in French; the corrected form is a new command.
    await row(page, serial).get_by_role("button", name="Enregistrer l'effacement").click()
    await page.locator("#panel").get_by_role("button", name="Enregistrer l'effacement").click()
    await expect(page.locator("#panel .message")).to_have_text(
        "Ce n'est pas enregistré. Indiquez la preuve de l'effacement (n° de tâche MDM ou de fiche signée)."
    )
    await page.get_by_label("Preuve").fill("1234")
    await page.locator("#panel").get_by_role("button", name="Enregistrer l'effacement").click()
    await expect(page.locator("#status")).to_have_text(f"Tablette {serial} effacée.")
    await expect(row(page, serial).locator(".state")).to_have_text("Effacée")

    # The patient's receipt, from the tablet's loans: returned, the charger since, and wiped by Sophie Leroy.
    await row(page, serial).get_by_role("button", name="Historique des prêts").click()
    await page.locator("#panel").get_by_role("button", name="Imprimer l'attestation de restitution").click()
    receipt, today = page.locator("#receipt"), paris_day(noon)
    await expect(page.locator("#receipt-title")).to_have_text("Attestation de restitution et d'effacement des données")
    await expect(page.locator("#receipt-wipe")).to_have_text(
        f"Les données de la tablette ont été effacées le {today} par réinitialisation d'usine (preuve : fiche n° "
        "1234), par Sophie Leroy."
    )
    await expect(page.locator("#receipt-returned")).to_have_text(f"Rendue le {today}, à l'hôpital de jour.")
    await expect(page.locator("#receipt-condition")).to_have_text("État au retour : usée (coque rayée).")
    for line in (
        "RE'CONNECT",
        f"Identifiant dans le programme : {patient}",
        "Nom et prénom :",
        f"Numéro de série : {serial}",
        "Modèle : Galaxy Tab A9",
        "Remis avec la tablette : Chargeur.",
        "Tous les accessoires remis ont été rendus.",
        "Le patient ou son représentant",
        "Pour l'équipe RE'CONNECT (nom et signature)",
        f"Attestation établie le {today}.",
    ):
        await expect(receipt).to_contain_text(line)
    assert await page.evaluate("window.printed") == 1
    # On paper, the receipt alone, black on white; the fleet is back on screen.
    await page.emulate_media(media="print")
    await expect(receipt).to_be_visible()
    for hidden in ("header.top", "#app", "#receipt-print", "#receipt-close"):
        await expect(page.locator(hidden)).to_be_hidden()
    colours = await page.locator("#receipt-sheet").evaluate(
        "(sheet) => [getComputedStyle(sheet).color, getComputedStyle(sheet).backgroundColor]"
    )
    assert colours == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "fleet-return-receipt.png"), full_page=True)
    await page.emulate_media(media="screen")
    await expect(page.locator("#app")).to_be_visible()
    await page.get_by_role("button", name="Fermer l'attestation").click()
    await expect(receipt).to_be_hidden()
    await expect(page.locator("#panel .loans .condition")).to_have_text("État au retour : usée (coque rayée).")

    # Its next loan is told how it came back last time, before it is handed over.
    await page.keyboard.press("Escape")
    await row(page, serial).get_by_role("button", name="Remettre en service").click()
    await page.locator("#panel").get_by_role("button", name="Remettre en service").click()
    await expect(row(page, serial).locator(".state")).to_have_text("Prête")
    await row(page, serial).get_by_role("button", name="Prêter").click()
    await expect(page.locator("#last-condition")).to_have_text(
        "Au dernier retour, cette tablette était usée (coque rayée) : vérifiez-la avant de la remettre au patient."
    )
    await page.keyboard.press("Escape")

    await row(page, serial).get_by_role("button", name="Déclarer perdue ou volée").click()
    await page.get_by_label("Volée (sinon : perdue)").check()
    await page.locator("#panel").get_by_role("button", name="Déclarer").click()
    await expect(row(page, serial).locator(".state")).to_have_text("Volée")


async def test_refusals_are_told_in_french_the_english_detail_only_on_hover(
    office: Office, context: BrowserContext
) -> None:
    serial = f"R52-{uuid.uuid4().hex[:8]}".upper()
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        registered = await client.post(
            "/v1/tablets", json={"serial_number": serial, "model": "Galaxy Tab A9", "accessories": []}
        )
        tablet = registered.json()["id"]
        assert (await client.post(f"/v1/tablets/{tablet}/actions/provision", json={})).status_code == 200
    page = await office.page(context)
    message = page.locator("#panel .message")
    await glance_drawn(page)

    # A serial number already registered.
    await page.locator("#register-open").click()
    await page.locator("#panel").get_by_label("Numéro de série").fill(serial.lower())
    await page.get_by_role("button", name="Enregistrer", exact=True).click()
    await expect(message).to_have_text(
        "Ce n'est pas enregistré. Une tablette portant ce numéro de série est déjà enregistrée : vérifiez le "
        "numéro, ou retrouvez-la avec le filtre « Numéro de série »."
    )
    await expect(message).to_have_attribute("title", re.compile("already registered"))
    await expect(message).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#panel")).to_be_hidden()

    # A tablet lent by a colleague while her form was open: a second loan.
    await row(page, serial).get_by_role("button", name="Prêter").click()
    await expect(page.locator("#panel-title")).to_have_text(f"Prêter la tablette {serial}")
    await page.get_by_label("Patient (identifiant pseudonyme)").fill(str(uuid.uuid4()))
    await page.get_by_label("Signature recueillie par").fill("ide-martin")
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        loan = {
            "patient_id": str(uuid.uuid4()),
            "agreement": {"signed_at": office.clock().isoformat(), "witnessed_by": "ide-karim"},
            "accessories": [],
        }
        assert (await client.post(f"/v1/tablets/{tablet}/loan", json=loan)).status_code == 201
    await page.locator("#panel").get_by_role("button", name="Prêter").click()
    await expect(message).to_have_text(
        "Ce n'est pas enregistré. Cette tablette est déjà prêtée : enregistrez d'abord son retour, ou choisissez "
        "une autre tablette."
    )

    # An agreement signed more than 30 days ago (on another tablet, ready to lend).
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        other = f"R52-{uuid.uuid4().hex[:8]}".upper()
        created = await client.post("/v1/tablets", json={"serial_number": other, "model": "Tab", "accessories": []})
        assert (await client.post(f"/v1/tablets/{created.json()['id']}/actions/provision", json={})).status_code == 200
    await page.keyboard.press("Escape")
    await expect(page.locator("#panel")).to_be_hidden()
    await page.evaluate("document.getElementById('refresh').click()")
    await row(page, other).get_by_role("button", name="Prêter").click()
    await expect(page.locator("#panel-title")).to_have_text(f"Prêter la tablette {other}")
    await page.get_by_label("Patient (identifiant pseudonyme)").fill(str(uuid.uuid4()))
    await page.get_by_label("Convention signée le").fill("2020-01-06T10:00")
    await page.get_by_label("Signature recueillie par").fill("ide-martin")
    await page.locator("#panel").get_by_role("button", name="Prêter").click()
    await expect(message).to_contain_text("La convention a été signée il y a plus de 30 jours")
    for text in await page.locator("#panel, #status").all_inner_texts():
        assert "agreement" not in text and "already" not in text, text


FRENCH_MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()


async def _back_damaged_and_wiped(office: Office, note: str | None) -> tuple[str, str]:
    """A tablet loaned, returned damaged (with ``note``) and wiped, through the API, at the service's now: its id and
    serial number."""
    tablet, _ = await _loan(office, office.clock())
    async with httpx.AsyncClient(base_url=office.url, headers=office.staff()) as client:
        back: dict[str, Any] = {"channel": "day_hospital", "accessories_returned": [], "condition": "damaged"}
        if note:
            back["condition_note"] = note
        assert (await client.post(f"/v1/tablets/{tablet}/return", json=back)).status_code == 200
        wiped = await client.post(f"/v1/tablets/{tablet}/wipe", json={"method": "factory_reset", "proof": "77"})
        assert wiped.status_code == 200, wiped.text
        return tablet, str(wiped.json()["serial_number"])


async def test_a_tablet_back_damaged_waits_for_its_check_then_is_made_ready_or_sent_to_repair(
    office: Office, context: BrowserContext
) -> None:
    # Noon, for the service and the page: returned just before midnight and checked just after, the days the page
    # wrote were not the test's.
    noon = office.clock.set(paris_noon_today())
    _, serial = await _back_damaged_and_wiped(office, "écran fissuré")
    _, other = await _back_damaged_and_wiped(office, None)
    page = await office.page(context, at=noon)
    day = noon.astimezone(PARIS)
    today = f"{day.day} {FRENCH_MONTHS[day.month - 1]} {day.year}"  # as the page writes a day (formatDay)
    # Counted where the fleet manager's steps are, and marked on its row.
    damaged = page.locator("#counts li[data-count='damaged_to_check']")
    await expect(damaged).to_have_text("2Endommagées à vérifier")
    classes = (await damaged.get_attribute("class") or "").split()
    assert "act" in classes and "urgent" not in classes, classes
    await expect(row(page, serial).locator(".state")).to_have_text("EffacéeEndommagée : à vérifier")

    # « Remettre en service » says why it waits; sent without the confirmation, it is refused in French.
    await row(page, serial).get_by_role("button", name="Remettre en service").click()
    await expect(page.locator("#damage-warning")).to_have_text(
        f"Cette tablette est revenue endommagée de son dernier prêt (écran fissuré), le {today}. Vérifiez-la, et "
        "faites-la réparer si besoin, avant de la remettre en service ; sinon, envoyez-la en réparation."
    )
    await page.locator("#panel").get_by_role("button", name="Remettre en service").click()
    await expect(page.locator("#panel .message")).to_have_text(
        "Ce n'est pas enregistré. Cette tablette est revenue endommagée de son dernier prêt et personne n'a encore "
        "indiqué l'avoir vérifiée : cochez « Je confirme qu'elle a été vérifiée… » après l'avoir vérifiée (et fait "
        "réparer si besoin), ou envoyez-la en réparation."
    )
    await expect(row(page, serial).locator(".state")).to_have_text("EffacéeEndommagée : à vérifier")
    # Confirmed: ready, unmarked, one fewer to check; its loans say who checked it and when, and so does its next loan.
    await page.locator("#panel").get_by_label("Je confirme qu'elle a été vérifiée et, si besoin, réparée").check()
    await page.locator("#panel").get_by_role("button", name="Remettre en service").click()
    await expect(page.locator("#status")).to_have_text(f"Tablette {serial} vérifiée : Prête.")
    await expect(row(page, serial).locator(".state")).to_have_text("Prête")
    await expect(damaged).to_have_text("1Endommagée à vérifier")
    await row(page, serial).get_by_role("button", name="Historique des prêts").click()
    await expect(page.locator("#panel .loans .damage-check")).to_have_text(f"Vérifiée le {today} par parc-julie.")
    await page.keyboard.press("Escape")
    await row(page, serial).get_by_role("button", name="Prêter").click()
    await expect(page.locator("#last-condition")).to_have_text(
        f"Au dernier retour, cette tablette était endommagée (écran fissuré) ; vérifiée le {today} par parc-julie."
    )
    await page.keyboard.press("Escape")

    # The other one goes to repair from the same panel: that is its check.
    await row(page, other).get_by_role("button", name="Remettre en service").click()
    await expect(page.locator("#damage-warning")).to_contain_text("revenue endommagée de son dernier prêt, le ")
    await page.locator("#damage-repair").click()
    await page.locator("#panel").get_by_role("button", name="Envoyer en réparation").click()
    await expect(row(page, other).locator(".state")).to_have_text("En réparation")
    await expect(damaged).to_have_text("0Endommagée à vérifier")
    assert "zero" in (await damaged.get_attribute("class") or "").split()
