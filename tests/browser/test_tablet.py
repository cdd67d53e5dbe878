"""The patient's tablet (``/tablet/`` on the questionnaire service) in a real headless Chromium, against the real
questionnaire and alerting services: enrolment through the address's fragment, the questionnaire one question per
screen with its branching, a draft that survives a reload, answers queued while the network fails and sent once
(said to be sent while in flight, to wait only once the network failed),
and a message whose read status follows the nurse."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import listening_sockets, port_of
from shared.testing.services import in_process, served
from shared.testing.waiting import eventually
from tests.browser.conftest import ARTIFACTS, send_bar_in_sight

pytestmark = pytest.mark.browser

TOKEN_KEY = "oncofollow.tablet.token"
DRAFT_KEY = "oncofollow.tablet.draft"


@dataclass
class Home:
    url: str  # the questionnaire service, as the tablet reaches it
    questionnaire: Any  # its platform (the database)
    alerting: httpx.AsyncClient
    tokens: TokenService
    browser: Browser

    async def tablet(self) -> BrowserContext:
        """A tablet as lent: portrait, French, Paris (the caller closes it)."""
        return await self.browser.new_context(
            viewport={"width": 800, "height": 1280}, locale="fr-FR", timezone_id="Europe/Paris"
        )

    async def enrolled(self, context: BrowserContext, patient: uuid.UUID) -> Page:
        """The page as the fleet manager leaves it: opened once with the loan's device token in the fragment."""
        page = await context.new_page()
        # A fake clock, flowing as the real one, that the test can move on: the status polls without waiting for it.
        await page.clock.install()
        token = self.tokens.issue_device_token(patient, f"tablet-{patient.hex[:8]}")
        await page.goto(f"{self.url}/tablet/#device_token={token}")
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        return page

    async def alerts_of(self, patient: uuid.UUID) -> list[dict[str, Any]]:
        nurse = self.tokens.issue_staff_token("ide-claire", {"nurse"})
        response = await self.alerting.get("/v1/alerts", headers={"Authorization": f"Bearer {nurse}"})
        assert response.status_code == 200, response.text
        return [a for a in response.json()["items"] if a["patient_id"] == str(patient)]

    async def nurse(self, method: str, path: str) -> dict[str, Any]:
        nurse = self.tokens.issue_staff_token("ide-claire", {"nurse"})
        response = await self.alerting.request(method, path, headers={"Authorization": f"Bearer {nurse}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def home(service_env: dict[str, str], tokens: TokenService, browser: Browser) -> AsyncIterator[Home]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with (
        served(build_questionnaire(QuestionnaireSettings(**env))) as (url, questionnaire),
        in_process(build_alerting(AlertingSettings(**env, ESCALATION_CHECK_S="3600"))) as (alerting, _),
    ):
        yield Home(url, questionnaire, alerting, tokens, browser)


# What the patient answers in these tests: nausea often and strong, a fever at 38.6 °C (RED), nothing else.
RED_ANSWERS = {
    "nausea.frequency": "Souvent",
    "nausea.severity": "Fort",
    "fever": "Oui",
    "temperature": "38,6",
}


# How a chosen answer looks (tablet.css): filled in the page's blue, and ticked; and how one not chosen does.
CHOSEN = ("rgb(11, 61, 145)", '"✓ "')
NOT_CHOSEN = ("rgb(255, 255, 255)", "none")


async def who_looks(page: Page) -> list[tuple[str, tuple[str, str]]]:
    """Each choice of the "who answers" screen: its source, its background and what is drawn before its text."""
    looks = await page.locator("#who-choices [data-source]").evaluate_all(
        "(buttons) => buttons.map((b) => [b.dataset.source, getComputedStyle(b).backgroundColor, "
        "getComputedStyle(b, '::before').content])"
    )
    return [(source, (background, before)) for source, background, before in looks]


async def answer_until_review(page: Page, answers: dict[str, str], asked: list[str] | None = None) -> list[str]:
    """Answers each screen until the review: as ``answers`` says, else the calmest answer ("Jamais", "Pas du tout",
    "Non"); the optional questions left unanswered. Returns the linkIds asked, in order."""
    asked = asked if asked is not None else []
    progress: list[float] = []
    form = page.locator("#question-form")
    for _ in range(60):
        if await page.locator("#screen-review").is_visible():
            return asked
        await expect(page.locator("#screen-question")).to_be_visible()
        link_id = await form.get_attribute("data-link-id")
        assert link_id is not None
        # The progress bar moves forward with each question, and never reaches the end before the last one.
        done, total = await page.locator("#question-progress").evaluate("(bar) => [bar.value, bar.max]")
        assert 0 <= done < total, (done, total)
        progress.append(done)
        assert progress == sorted(set(progress)), f"the progress bar did not move forward: {progress}"
        asked.append(link_id)
        kind = await form.get_attribute("data-type")
        wanted = answers.get(link_id)
        if kind in ("choice", "boolean"):
            options = page.locator("#question-answers [role=radio]")
            if wanted is not None:
                await options.filter(has_text=wanted).first.click()
            elif link_id != "ecog":
                await options.first.click() if kind == "choice" else await options.filter(has_text="Non").click()
        elif wanted is not None:
            await page.locator("#question-input").fill(wanted)
        await form.locator("[data-action=next]").click()
        await page.wait_for_function(
            "(id) => document.body.dataset.screen === 'screen-review' "
            "|| document.querySelector('#question-form').dataset.linkId !== id",
            arg=link_id,
        )
    raise AssertionError(f"no review screen after {asked}")


async def test_a_tablet_is_enrolled_through_the_fragment_and_a_refused_token_says_whom_to_call(home: Home) -> None:
    context = await home.tablet()
    try:
        page = await context.new_page()
        # Never set up: a calm page, whom to call, nothing to fill in.
        answer = await page.goto(f"{home.url}/tablet/")
        assert answer is not None
        # As strict as a page can be: its own files only, and nothing sent anywhere but this service.
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "default-src 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        setup = page.locator("#screen-setup")
        await expect(setup).to_be_visible()
        await expect(setup).to_contain_text("pas encore prête")
        await expect(setup).to_contain_text("Appelez l'équipe soignante de votre service")
        await expect(page.locator("#screen-home")).to_be_hidden()

        # The fleet manager opens the address with the loan's token once: kept, and gone from the address.
        patient = uuid.uuid4()
        token = home.tokens.issue_device_token(patient, "tablet-enrol")
        await page.goto(f"{home.url}/tablet/#device_token={token}")
        await expect(page.locator("#screen-home")).to_be_visible()
        assert await page.evaluate("location.hash") == ""
        assert page.url == f"{home.url}/tablet/"
        assert await page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == orjson.dumps(token).decode()
        await expect(page.get_by_role("button", name="Répondre au questionnaire")).to_be_visible()
        await expect(page.get_by_role("button", name="Écrire à l'équipe soignante")).to_be_visible()
        # The page reads the questionnaire with it at once (and keeps it for offline starts).
        await page.wait_for_function("() => localStorage.getItem('oncofollow.tablet.definition') !== null")

        # A token the service refuses (another platform's signature, as a returned tablet's is refused): forgotten,
        # with everything of the patient's, and the same calm page.
        refused = TokenService("not-this-platform-secret-0123456789", "oncofollow-dev", "oncofollow")
        await page.goto(f"{home.url}/tablet/#device_token={refused.issue_device_token(patient, 'tablet-enrol')}")
        await expect(setup).to_be_visible()
        await expect(setup).to_contain_text("n'est plus reliée à votre suivi")
        await expect(setup).to_contain_text("Appelez l'équipe soignante de votre service")
        # Only that the loan ended (nothing left unsent), so that the page says why again when opened.
        assert await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('oncofollow.'))") == [
            "oncofollow.tablet.loanEnd"
        ]
        assert await page.evaluate("localStorage.getItem('oncofollow.tablet.loanEnd')") == '{"unsent":[]}'
        await page.reload()
        await expect(setup).to_contain_text("n'est plus reliée à votre suivi")
        await expect(page.locator("#setup-unsent")).to_be_hidden()
    finally:
        await context.close()


async def test_a_relative_answers_through_the_branching_the_alert_says_so_and_the_message_is_read(home: Home) -> None:
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="Un proche m'aide à répondre").click()
        await page.locator("#question-answers [role=radio]").first.click()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "tablet-question.png"))
        asked = await answer_until_review(page, RED_ANSWERS)
        # One question per screen, only those the answers enable: the severity after "Souvent", none after
        # "Jamais"; the temperature after a fever.
        assert asked[:3] == ["diarrhoea.frequency", "nausea.frequency", "nausea.severity"]
        assert "temperature" in asked and asked.index("temperature") == asked.index("fever") + 1
        assert not {"vomiting.severity", "pain.severity", "pain.interference", "anxiety.severity"} & set(asked)
        assert "decreased_appetite.interference" not in asked  # severity "Pas du tout"

        review = page.locator("#review-list")
        await expect(review.locator("[data-link-id='temperature']")).to_contain_text("38,6 °C")
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
        await expect(page.locator("#sent-notice")).to_contain_text("appelez le 15")

        async def red_alert() -> dict[str, Any] | None:
            alerts = await home.alerts_of(patient)
            return alerts[0] if alerts else None

        alert = await eventually(red_alert, within=10)
        assert (alert["level"], alert["answered_by"]) == ("red", "relative")
        async with home.questionnaire.pool.acquire() as conn:
            stored = await conn.fetchrow("SELECT answered_by, response FROM submissions WHERE patient_id = $1", patient)
        assert stored["answered_by"] == "relative"
        assert [i["linkId"] for i in stored["response"]["item"]] == [a for a in asked if a != "ecog"]

        # A message, counted as typed, joins the open alert.
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await page.get_by_role("button", name="Écrire à l'équipe soignante").click()
        await page.locator("#message-text").fill("J'ai encore de la fièvre ce soir.")
        await expect(page.locator("#message-count")).to_have_text("33 / 2000 caractères")

        # Refused once (422): the screen that says so takes her straight back to her message, as its sentence says.
        async def refuse_message(route: Route) -> None:
            problem = {"status": 422, "title": "Unprocessable", "detail": "…"}
            await route.fulfill(status=422, json=problem, headers={"Content-Type": "application/problem+json"})

        await page.route("**/v1/messages", refuse_message)
        await page.get_by_role("button", name="Envoyer", exact=True).click()
        await expect(page.locator("#sent-title")).to_have_text("Votre message n'a pas été envoyé", timeout=5_000)
        await expect(page.locator("#sent-status")).to_contain_text("« Écrire à l'équipe soignante »")
        await page.unroute("**/v1/messages")
        await page.locator("#screen-sent").get_by_role("button", name="Écrire à l'équipe soignante").click()
        await expect(page.locator("#message-text")).to_have_value("J'ai encore de la fièvre ce soir.")
        await page.get_by_role("button", name="Envoyer", exact=True).click()
        await expect(page.locator("#sent-title")).to_have_text("Merci pour votre message")
        await expect(page.locator("#sent-again")).to_be_hidden()
        await expect(page.locator("#sent-status")).to_have_text(
            "Votre message a bien été envoyé à l'équipe soignante.", timeout=5_000
        )

        async def message_alert() -> list[dict[str, Any]]:
            return [a for a in await home.alerts_of(patient) if a["message_ids"]]

        await eventually(message_alert, within=10)
        await page.get_by_role("button", name="Retour à l'accueil").click()
        status = page.locator("#status-list")
        await expect(status).to_contain_text("Votre message a bien été envoyé à l'équipe soignante.")

        # The nurse takes the alerts: the page, left open, says so at its next look.
        for taken in await home.alerts_of(patient):
            await home.nurse("POST", f"/v1/alerts/{taken['id']}/ack")

        async def seen() -> bool:
            async with home.questionnaire.pool.acquire() as conn:
                return bool(
                    await conn.fetchval("SELECT seen_at IS NOT NULL FROM messages WHERE patient_id = $1", patient)
                )

        await eventually(seen, within=10)
        await page.clock.fast_forward(25_000)
        await expect(status).to_contain_text("L'équipe soignante a lu votre message.", timeout=5_000)
        await expect(status).to_contain_text("L'équipe soignante a vu vos réponses.")
    finally:
        await context.close()


async def test_a_draft_survives_a_reload_and_answers_queued_on_a_failed_send_are_stored_once(home: Home) -> None:
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        options = page.locator("#question-answers [role=radio]")
        await options.filter(has_text="Jamais").click()  # diarrhoea
        await page.locator("#question-form [data-action=next]").click()
        await options.filter(has_text="Souvent").click()  # nausea
        await page.locator("#question-form [data-action=next]").click()
        await expect(page.locator("#question-form")).to_have_attribute("data-link-id", "nausea.severity")
        key = await page.evaluate(f"JSON.parse(localStorage.getItem('{DRAFT_KEY}')).key")

        # A reload (or a closed tab): the draft is there, where the patient left it, answers and key unchanged.
        await page.reload()
        await expect(page.get_by_role("button", name="Reprendre le questionnaire")).to_be_visible()
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(page.locator("#question-form")).to_have_attribute("data-link-id", "nausea.severity")
        await page.get_by_role("button", name="Précédent").click()
        await expect(options.filter(has_text="Souvent")).to_have_attribute("aria-checked", "true")
        await page.locator("#question-form [data-action=next]").click()
        await answer_until_review(page, RED_ANSWERS)

        # The first POST reaches the service, but its answer is lost on the way back (the connection drops).
        keys: list[str | None] = []

        async def drop_first_answer(route: Route) -> None:
            keys.append(route.request.headers.get("idempotency-key"))
            if len(keys) == 1:
                await route.fetch()
                await route.abort("connectionreset")
            else:
                await route.continue_()

        await page.route("**/v1/submissions", drop_first_answer)
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_contain_text(
            "Vos réponses seront envoyées dès que la connexion reviendra", timeout=5_000
        )
        # Said once, by the screen's status: the queue's banner above it said the same sentence again.
        shown = " ".join((await page.locator("body").inner_text()).split())
        assert shown.count("dès que la connexion reviendra") == 1, shown
        await expect(page.locator("#queue-banner")).to_be_hidden()
        # Sent again on its own (the backoff), with the same key: the service answers what it stored the first time.
        await page.clock.fast_forward(5_000)
        await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
        await expect(page.locator("#queue-banner")).to_be_hidden()
        assert keys == [key, key]
        async with home.questionnaire.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 1
        assert await page.evaluate(f"localStorage.getItem('{DRAFT_KEY}')") is None

        async def alert() -> list[dict[str, Any]]:
            return await home.alerts_of(patient)

        alerts = await eventually(alert, within=10)
        assert [(a["level"], a["answered_by"]) for a in alerts] == [("red", "patient")]
    finally:
        await context.close()


async def test_answers_to_a_questionnaire_version_the_service_no_longer_takes_come_back_to_check_not_in_a_loop(
    home: Home,
) -> None:
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await context.new_page()
        await page.clock.install()

        # The tablet read the questionnaire when it was at a version the service no longer offers.
        async def older_version(route: Route) -> None:
            served = await route.fetch()
            definition = await served.json()
            await route.fulfill(response=served, json={**definition, "version": "0.9.0"})

        await page.route("**/v1/questionnaires/reconnect-symptoms", older_version)
        token = home.tokens.issue_device_token(patient, "tablet-old")
        await page.goto(f"{home.url}/tablet/#device_token={token}")
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await answer_until_review(page, RED_ANSWERS)
        await page.unroute("**/v1/questionnaires/reconnect-symptoms")
        posts: list[int] = []
        page.on("response", lambda r: posts.append(r.status) if r.url.endswith("/v1/submissions") else None)

        # The service refuses it (422): not sent again and again, but given back, the questionnaire read again.
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_contain_text(
            "Le questionnaire a changé depuis que vous avez répondu.", timeout=5_000
        )
        await page.clock.fast_forward(60_000)
        assert posts == [422]
        assert await page.evaluate("JSON.parse(localStorage.getItem('oncofollow.tablet.outbox') || '[]')") == []
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#refused-banner")).to_contain_text("Reprendre le questionnaire")
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        # The answers are kept: straight to the review, then sent against the current version.
        await expect(page.locator("#review-list [data-link-id='nausea.severity']")).to_contain_text("Fort")
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
        assert posts == [422, 202]
        async with home.questionnaire.pool.acquire() as conn:
            stored = await conn.fetchrow(
                "SELECT questionnaire_version, count(*) OVER () AS n FROM submissions WHERE patient_id = $1", patient
            )
        assert (stored["questionnaire_version"], stored["n"]) == ("1.0.0", 1)
    finally:
        await context.close()


async def test_a_loaned_tablet_s_page_sends_heartbeats_to_the_devices_service_and_gives_up_one_that_hangs(
    service_env: dict[str, str], tokens: TokenService, browser: Browser
) -> None:
    """The loan's own token, the page on the questionnaire service's origin, its heartbeats to the devices service
    on another (CORS, which the devices service allows for the tablet's origin only). One that hangs (a captive
    Wi-Fi) is given up within 30 s, long before the next: hung heartbeats do not pile up for as long as the page is
    open."""
    q_sock, d_sock = listening_sockets(2)
    q_port, d_port = port_of(q_sock), port_of(d_sock)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env, DEVICES_PUBLIC_URL=f"http://127.0.0.1:{d_port}")
    d_settings = DevicesSettings(**env, SILENCE_CHECK_S="3600", TABLET_ORIGINS=f"http://127.0.0.1:{q_port}")
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-1', {'fleet'})}"}
    async with (
        served(build_questionnaire(q_settings), q_sock) as (url, _),
        served(build_devices(d_settings), d_sock) as (devices_url, devices),
        httpx.AsyncClient(base_url=devices_url, headers=fleet) as staff,
    ):
        registered = await staff.post(
            "/v1/tablets", json={"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9"}
        )
        tablet = registered.json()["id"]
        assert (await staff.post(f"/v1/tablets/{tablet}/actions/provision", json={})).status_code == 200
        loan = await staff.post(
            f"/v1/tablets/{tablet}/loan",
            json={
                "patient_id": str(uuid.uuid4()),
                "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
                "accessories": [],
            },
        )
        assert loan.status_code == 201, loan.text
        # No service worker: the page's own requests are the ones the test holds.
        context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris", service_workers="block")
        try:
            page = await context.new_page()
            await page.clock.install()
            answer = await page.goto(f"{url}/tablet/#device_token={loan.json()['device_token']}")
            assert answer is not None
            assert f"connect-src 'self' http://127.0.0.1:{d_port};" in answer.headers["content-security-policy"]
            await expect(page.locator("#screen-home")).to_be_visible()

            async def beats() -> list[Any]:
                async with devices.pool.acquire() as conn:
                    return list(await conn.fetch("SELECT battery_percent, app_version FROM heartbeats"))

            (beat,) = await eventually(beats, within=10)
            assert (0 <= beat["battery_percent"] <= 100, beat["app_version"]) == (True, "1.0.0")

            # The next heartbeat hangs: given up after 30 s, and the one after it is sent.
            held: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

            async def hold(route: Route) -> None:
                never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                await held.put(never)
                await never

            given_up: list[str] = []
            page.on("requestfailed", lambda r: given_up.append(r.url) if r.url.endswith("/v1/heartbeats") else None)
            await page.route("**/v1/heartbeats", hold)
            await page.clock.run_for(5 * 60_000)
            hung = await asyncio.wait_for(held.get(), timeout=10)
            await page.clock.run_for(29_000)
            assert given_up == []
            async with page.expect_event("requestfailed", lambda r: r.url.endswith("/v1/heartbeats"), timeout=5_000):
                await page.clock.run_for(2_000)
            assert given_up == [f"{devices_url}/v1/heartbeats"]
            # To the next one's time, not past its own time-out (an aborted request never reaches the route).
            await page.clock.run_for(5 * 60_000 - 25_000)
            (await asyncio.wait_for(held.get(), timeout=10)).cancel()
            hung.cancel()
        finally:
            await context.close()


async def test_a_change_from_the_review_asks_only_what_it_opens_then_comes_back_to_the_review(home: Home) -> None:
    """An elderly, tired patient changes one answer on the review: the questions the change opens, then the review
    again (not every question after it); "Retour à mes réponses" for a question opened by mistake; a reload in the
    middle of a change; and what is sent is what the review showed."""
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await expect(page.locator("#screen-who")).to_be_visible()
        await expect(page.locator("#who-back-to-review")).to_be_hidden()  # the first walk: no review to go back to
        myself = page.get_by_role("radio", name="C'est moi, le patient ou la patiente")
        relative = page.get_by_role("radio", name="Un proche m'aide à répondre")
        await expect(page.locator("#who-choices [aria-checked=true]")).to_have_count(0)  # nothing chosen yet
        await myself.click()
        ARTIFACTS.mkdir(exist_ok=True)
        review = page.locator("#review-list")
        form = page.locator("#question-form")
        back = page.get_by_role("button", name="Retour à mes réponses")
        previous = form.locator("[data-action=previous]")
        # "Précédent" from the first question: who answers, the choice made shown as a chosen answer is.
        await expect(form).to_have_attribute("data-link-id", "diarrhoea.frequency")
        await previous.click()
        await expect(page.locator("#screen-who")).to_be_visible()
        await expect(myself).to_have_attribute("aria-checked", "true")
        await expect(relative).to_have_attribute("aria-checked", "false")
        assert await who_looks(page) == [("patient", CHOSEN), ("relative", NOT_CHOSEN)]
        await myself.click()
        await answer_until_review(page, {"fever": "Oui", "temperature": "38,6"})
        # "Envoyer mes réponses" at the screen's foot, from the top of the review to its end, hiding no answer.
        await send_bar_in_sight(page, "tablet-review-100.png")

        def option(label: str) -> Any:
            # "Fort", not "Très fort"; a chosen answer's name starts with the ✓ drawn before it.
            return page.locator("#question-answers").get_by_role("radio", name=re.compile(f"^(✓ )?{label}$"))

        # Each "Modifier" is named after its question: a screen reader does not read a list of identical buttons.
        labels = await review.locator("[data-edit]").evaluate_all(
            "(buttons) => buttons.map((b) => [b.dataset.edit, b.getAttribute('aria-label'), b.textContent])"
        )
        assert len(labels) > 10 and len({label for _, label, _ in labels}) == len(labels)
        assert all(text == "Modifier" and label.startswith("Modifier : Au cours") for _, label, text in labels[:3])
        nausea = "Modifier : Au cours des 7 derniers jours, combien de fois avez-vous eu envie de vomir ?"
        await expect(page.get_by_role("button", name=nausea, exact=True)).to_have_attribute(
            "data-edit", "nausea.frequency"
        )
        # The way back is only for a change from the review, not on the first walk through the questions.
        await expect(back).to_be_hidden()

        # A question opened by mistake, even touched: "Retour à mes réponses" leaves the answer as it was.
        await review.locator("[data-edit='diarrhoea.frequency']").click()
        await expect(form).to_have_attribute("data-link-id", "diarrhoea.frequency")
        await expect(back).to_be_visible()
        # The question changed has no "Précédent" (it led to "who", the first walk again): the way back is "Retour".
        await expect(previous).to_be_hidden()
        await option("Souvent").click()
        await back.click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(review.locator("[data-link-id='diarrhoea.frequency']")).to_contain_text("Jamais")

        # "Jamais" becomes "Souvent": the severity it opens is asked, then the review; not the twenty questions after.
        await page.get_by_role("button", name=nausea, exact=True).click()
        await option("Souvent").click()
        await form.locator("[data-action=next]").click()
        await expect(form).to_have_attribute("data-link-id", "nausea.severity")
        await expect(back).to_be_visible()
        # "Précédent" on a question the change opened: the question changed, still within the change.
        await previous.click()
        await expect(form).to_have_attribute("data-link-id", "nausea.frequency")
        await expect(option("Souvent")).to_have_attribute("aria-checked", "true")
        # The look the "who answers" screen gives its choice made (who_looks) is a chosen answer's.
        looks = "(b) => [getComputedStyle(b).backgroundColor, getComputedStyle(b, '::before').content]"
        assert tuple(await option("Souvent").evaluate(looks)) == CHOSEN
        await expect(previous).to_be_hidden()
        await form.locator("[data-action=next]").click()
        await expect(form).to_have_attribute("data-link-id", "nausea.severity")
        await expect(previous).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "tablet-change-from-review.png"))
        # The bar says what is true: all but this question is answered.
        done, total = await page.locator("#question-progress").evaluate("(bar) => [bar.value, bar.max]")
        assert done == total - 1, (done, total)
        await option("Fort").click()
        await form.locator("[data-action=next]").click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(review.locator("[data-link-id='nausea.severity']")).to_contain_text("Fort")
        await expect(review.locator("[data-link-id='nausea.frequency']")).to_contain_text("Souvent")
        # Each group's title above its answers, as on the question screens: both nausea answers under "Nausées".
        nausea_group = review.locator("section").filter(has=page.locator("[data-link-id='nausea.severity']"))
        await expect(nausea_group.get_by_role("heading", level=2)).to_have_text("Nausées (envie de vomir)")
        await expect(nausea_group.locator("li")).to_have_count(2)
        titles = await review.get_by_role("heading", level=2).all_text_contents()
        assert titles[:3] == ["Diarrhée", "Nausées (envie de vomir)", "Vomissements"], titles
        assert titles[-1] == "Signes qui doivent être vus vite par l'équipe", titles  # the optional question: none
        await page.screenshot(path=str(ARTIFACTS / "tablet-review.png"), full_page=True)
        # One numbering through the review, not 1 again under each title.
        starts = await review.locator("ol").evaluate_all("(lists) => lists.map((l) => [l.start, l.children.length])")
        assert [start for start, _ in starts] == [1 + sum(n for _, n in starts[:i]) for i in range(len(starts))]

        # A change that an earlier page of the tablet left on "who" (its "Précédent" walked back there): the way
        # back to the review is offered there too, the answers as they were.
        await review.locator("[data-edit='diarrhoea.frequency']").click()
        await option("Souvent").click()
        await page.evaluate(
            f"(() => {{ const d = JSON.parse(localStorage.getItem('{DRAFT_KEY}')); d.at = 'who'; "
            f"localStorage.setItem('{DRAFT_KEY}', JSON.stringify(d)); }})()"
        )
        await page.reload()
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(page.locator("#screen-who")).to_be_visible()
        await back.click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(review.locator("[data-link-id='diarrhoea.frequency']")).to_contain_text("Jamais")

        # A reload in the middle of a change: back at the question being changed, the change and the way back kept.
        await review.locator("[data-edit='fever']").click()
        await option("Non").click()
        await page.reload()
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(form).to_have_attribute("data-link-id", "fever")
        await expect(option("Non")).to_have_attribute("aria-checked", "true")
        await expect(back).to_be_visible()
        await form.locator("[data-action=next]").click()
        # No fever: the temperature it asked is gone from the review, and from what is sent.
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(review.locator("[data-link-id='fever']")).to_contain_text("Non")
        await expect(review.locator("[data-link-id='temperature']")).to_have_count(0)

        # A refusal pointing at an answer (here a made-up one, at the second item sent): that question is checked
        # as a change from the review, then the review, not every question after it.
        async def refuse(route: Route) -> None:
            problem = {"status": 422, "title": "Invalid response", "detail": "…", "pointer": "/item/1"}
            await route.fulfill(status=422, json=problem, headers={"Content-Type": "application/problem+json"})

        await page.route("**/v1/submissions", refuse)
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_contain_text("Une réponse est à vérifier.", timeout=5_000)
        # Not "Merci pour vos réponses": nothing was sent. The sentence is said once, not again in a banner above.
        await expect(page.locator("#sent-title")).to_have_text("Vos réponses n'ont pas été envoyées")
        await expect(page.locator("#refused-banner")).to_be_hidden()
        await page.unroute("**/v1/submissions")
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#refused-banner")).to_contain_text("Une réponse est à vérifier.")
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(form).to_have_attribute("data-link-id", "nausea.frequency")
        await expect(back).to_be_visible()
        # Its screen says why it is asked again, and "Écouter" reads that too, before the question; a reload keeps it.
        why = page.locator("#question-refused")
        await expect(why).to_have_text(
            "Vérifiez cette question. Votre réponse n'a pas pu être envoyée. Répondez à nouveau, puis touchez "
            "« Suivant »."
        )
        await page.screenshot(path=str(ARTIFACTS / "tablet-refused-question.png"))
        await page.reload()
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(why).to_be_visible()
        await page.evaluate("() => { window.__said = []; speechSynthesis.speak = (u) => __said.push(u.text); }")
        await page.locator("#screen-question [data-listen]").click()
        said, question = await page.evaluate("__said"), await page.locator("#question-text").text_content()
        assert said[said.index(question) - 1] == " ".join((await why.text_content() or "").split()), said
        # Back to the review without answering it again: that answer's row says it is to check (seen, and read with
        # its « Modifier »), and the top of the review where it is, until it is answered again; a reload keeps it.
        await back.click()
        await expect(page.locator("#screen-review")).to_be_visible()
        to_check = "À vérifier : votre réponse n'a pas pu être envoyée."
        pointer = page.locator("#review-to-check")
        marked = review.locator(".refused-note")
        for reload in (False, True):
            if reload:
                await page.reload()
                await page.get_by_role("button", name="Reprendre le questionnaire").click()
                await expect(page.locator("#screen-review")).to_be_visible()
            await expect(marked).to_have_count(1)
            await expect(review.locator("[data-link-id='nausea.frequency'] .refused-note")).to_have_text(to_check)
            await expect(page.get_by_role("button", name=nausea, exact=True)).to_have_accessible_description(to_check)
            await expect(pointer).to_have_text(
                "Vérifiez la réponse numéro 2, plus bas. Elle est marquée « À vérifier »."
            )
        await page.screenshot(path=str(ARTIFACTS / "tablet-review-to-check.png"))
        await page.get_by_role("button", name=nausea, exact=True).click()
        await expect(why).to_be_visible()
        await form.locator("[data-action=next]").click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(marked).to_have_count(0)
        await expect(pointer).to_be_hidden()
        await page.reload()
        await page.get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(marked).to_have_count(0)
        # Answered again: the same question opened from the review no longer says it.
        await page.get_by_role("button", name=nausea, exact=True).click()
        await expect(form).to_have_attribute("data-link-id", "nausea.frequency")
        await expect(why).to_be_hidden()
        await back.click()
        await expect(page.locator("#screen-review")).to_be_visible()

        # Who answers, changed from the review: the first screen, where "Retour à mes réponses" leaves it as it
        # was, and choosing comes straight back to the review, not through every question again.
        who = page.locator("#review-who")
        change_who = page.get_by_role("button", name="Modifier : qui répond", exact=True)
        await expect(who).to_contain_text("Qui répond : Moi-même")
        await change_who.click()
        await expect(page.locator("#screen-who")).to_be_visible()
        # The screen shows the choice the review said, as a question shows its chosen answer.
        await expect(myself).to_have_attribute("aria-checked", "true")
        await expect(relative).to_have_attribute("aria-checked", "false")
        await back.click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(who).to_contain_text("Qui répond : Moi-même")
        await change_who.click()
        await relative.click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(who).to_contain_text("Qui répond : Un proche")
        await change_who.click()
        await expect(relative).to_have_attribute("aria-checked", "true")
        await expect(myself).to_have_attribute("aria-checked", "false")
        # Only the chosen one filled and ticked: the patient's own, the first, no longer looks chosen.
        assert await who_looks(page) == [("patient", NOT_CHOSEN), ("relative", CHOSEN)]
        await page.screenshot(path=str(ARTIFACTS / "tablet-who-answers-changed.png"))
        await back.click()
        await expect(who).to_contain_text("Qui répond : Un proche")

        # The tablet's clock an hour ahead: the service refuses the answers' date (in-the-future) and the page asks
        # for the clock to be set right, not for an answer to be checked; the answers, who answers too, are kept.
        await page.clock.set_system_time(datetime.now(UTC) + timedelta(hours=1))
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_contain_text("La tablette est en avance", timeout=5_000)
        await page.clock.set_system_time(datetime.now(UTC))  # set right
        # « Reprendre le questionnaire », as the sentence says, is on the screen that says it (and on the home screen).
        await page.locator("#screen-sent").get_by_role("button", name="Reprendre le questionnaire").click()
        await expect(page.locator("#screen-review")).to_be_visible()
        await expect(who).to_contain_text("Qui répond : Un proche")

        shown = await review.locator("li").evaluate_all(
            "(rows) => rows.map((r) => [r.dataset.linkId, r.querySelector('.review-answer').textContent])"
        )
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await expect(page.locator("#sent-status")).to_have_text("Vos réponses ont bien été reçues.", timeout=5_000)
        async with home.questionnaire.pool.acquire() as conn:
            answered_by, stored = await conn.fetchrow(
                "SELECT answered_by, response FROM submissions WHERE patient_id = $1", patient
            )
        sent = {i["linkId"]: i["answer"][0] for i in stored["item"]}
        assert list(sent) == [link_id for link_id, answer in shown if answer != "Pas de réponse"]
        assert (answered_by, stored["source"]) == ("relative", {"reference": "RelatedPerson/relative"})
        assert sent["diarrhoea.frequency"]["valueCoding"]["code"] == "0"  # Jamais, as the review showed
        assert sent["nausea.frequency"]["valueCoding"]["code"] == "3"  # Souvent
        assert sent["nausea.severity"]["valueCoding"]["code"] == "3"  # Fort
        assert sent["fever"] == {"valueBoolean": False}
        assert "temperature" not in sent
    finally:
        await context.close()


# What a send that waits for the connection says, on every screen (tablet/app.js), and what one being sent says.
WAITS_FOR_THE_CONNECTION = "dès que la connexion reviendra"
BOTH_WAIT = "Vos réponses et votre message seront envoyés dès que la connexion reviendra."


async def test_a_send_in_flight_is_said_to_be_sent_not_to_wait_for_the_connection(home: Home) -> None:
    """On a slow connection a send is in flight for seconds: no screen says it waits for a connection the tablet has.
    Once it fails for lack of network, every screen says it waits again; a retry in flight after that failure is not
    yet news of the connection, the connection coming back is."""
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        # Each send held in flight until the test answers it: True lets it through, False cuts the network.
        held: asyncio.Queue[tuple[str, asyncio.Future[bool]]] = asyncio.Queue()

        async def hold(route: Route) -> None:
            answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            await held.put((route.request.url.rsplit("/", 1)[-1], answer))
            if await answer:
                await route.continue_()
            else:
                await route.abort("internetdisconnected")

        async def in_flight() -> tuple[str, asyncio.Future[bool]]:
            return await asyncio.wait_for(held.get(), timeout=10)

        async def nowhere_waits() -> None:
            shown = " ".join((await page.locator("body").inner_text()).split())
            assert WAITS_FOR_THE_CONNECTION not in shown, shown
            await expect(page.locator("#queue-banner")).to_be_hidden()

        await page.route("**/v1/submissions", hold)
        await page.route("**/v1/messages", hold)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await answer_until_review(page, {})
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        sent, answers = await in_flight()
        assert sent == "submissions"
        await expect(page.locator("#sent-status")).to_have_text("La tablette envoie vos réponses…")
        await nowhere_waits()
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#status-list")).to_contain_text("La tablette envoie vos réponses…")
        await nowhere_waits()
        await page.get_by_role("button", name="Écrire à l'équipe soignante").click()
        await expect(page.locator("#screen-message")).to_be_visible()
        await nowhere_waits()
        # A message sent meanwhile queues behind the answers being sent: being sent too.
        await page.locator("#message-text").fill("J'ai de la fièvre.")
        await page.get_by_role("button", name="Envoyer", exact=True).click()
        await expect(page.locator("#sent-status")).to_have_text("La tablette envoie votre message…")
        await nowhere_waits()

        # The network fails under the answers: the screen says the message waits, and the banner the answers.
        answers.set_result(False)
        await expect(page.locator("#sent-status")).to_have_text(
            "Votre message sera envoyé dès que la connexion reviendra. Il est gardé. Vous pouvez éteindre la tablette."
        )
        await expect(page.locator("#queue-banner")).to_have_text(
            "Vos réponses seront envoyées dès que la connexion reviendra."
        )
        # The connection comes back: sent at once, and said so on the screen the patient is on.
        await context.set_offline(True)
        await context.set_offline(False)
        sent, answers = await in_flight()
        assert sent == "submissions"
        await expect(page.locator("#sent-status")).to_have_text("La tablette envoie votre message…")
        await nowhere_waits()

        # The patient starts a questionnaire while they go: nothing there says they wait.
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#status-list")).to_contain_text("La tablette envoie vos réponses…")
        await expect(page.locator("#status-list")).to_contain_text("La tablette envoie votre message…")
        await nowhere_waits()
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await nowhere_waits()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await expect(page.locator("#screen-question")).to_be_visible()
        await nowhere_waits()
        # Cut again: the question's screen says both wait; and so it does while the retry is in flight.
        answers.set_result(False)
        await expect(page.locator("#queue-banner")).to_have_text(BOTH_WAIT)
        await page.clock.fast_forward(5_000)
        sent, answers = await in_flight()
        assert sent == "submissions"
        await expect(page.locator("#queue-banner")).to_have_text(BOTH_WAIT)
        # The answers get through: the message after them is being sent, no longer waiting.
        answers.set_result(True)
        sent, message = await in_flight()
        assert sent == "messages"
        await nowhere_waits()
        message.set_result(True)
        await page.locator("#screen-question").get_by_role("button", name="Pas maintenant").click()
        await expect(page.locator("#status-list")).to_contain_text("Vos réponses ont bien été reçues.", timeout=5_000)
        await expect(page.locator("#status-list")).to_contain_text(
            "Votre message a bien été envoyé à l'équipe soignante."
        )
        await nowhere_waits()
        async with home.questionnaire.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 1
    finally:
        await context.close()


# What a send the service told to wait says instead (a 503 during a database restart, a 429): the Wi-Fi is fine.
WAITS_FOR_THE_SERVICE = "dès que le suivi répondra"
ANSWERS_WAIT_FOR_THE_SERVICE = "Vos réponses seront envoyées dès que le suivi répondra."
MESSAGE_WAITS_FOR_THE_SERVICE = "Votre message sera envoyé dès que le suivi répondra."
BOTH_WAIT_FOR_THE_SERVICE = "Vos réponses et votre message seront envoyés dès que le suivi répondra."
KEPT = "Vous pouvez éteindre la tablette."


async def test_a_questionnaire_the_service_cannot_give_says_to_try_later_and_one_not_reached_the_wi_fi(
    home: Home,
) -> None:
    """A tablet with no copy of the questionnaire yet: the service answering 503 is not a Wi-Fi to check."""
    context = await home.tablet()
    try:
        page = await context.new_page()
        await page.route(
            "**/v1/questionnaires/**",
            lambda route: route.fulfill(
                status=503, json={"type": "about:blank", "title": "Service Unavailable", "status": 503}
            ),
        )
        token = home.tokens.issue_device_token(uuid.uuid4(), "tablet-load")
        await page.goto(f"{home.url}/tablet/#device_token={token}")
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        start = page.get_by_role("button", name="Répondre au questionnaire")
        await start.click()
        notice = page.locator("#refused-banner")
        await expect(notice).to_have_text(
            "Réessayez dans quelques minutes. Le questionnaire n'a pas pu s'ouvrir : le suivi ne répond pas pour le "
            "moment."
        )
        await page.unroute("**/v1/questionnaires/**")
        await page.route("**/v1/questionnaires/**", lambda route: route.abort("internetdisconnected"))
        await start.click()
        await expect(notice).to_have_text(
            "Vérifiez que la tablette est connectée à internet, puis réessayez. Le questionnaire n'a pas pu s'ouvrir."
        )
        await page.unroute("**/v1/questionnaires/**")
        await start.click()
        await expect(page.locator("#screen-who")).to_be_visible()
        await expect(notice).to_be_hidden()
    finally:
        await context.close()


@pytest.mark.parametrize("busy", [503, 429])
async def test_a_send_the_service_tells_to_wait_says_the_service_not_the_connection_until_it_gets_through(
    home: Home, busy: int
) -> None:
    """The service answers the answers with a 503 (a database restart) or a 429: every screen says they go once the
    follow-up service answers, never that the connection is away, which had the patient fiddle with a working Wi-Fi.
    The network lost meanwhile says the connection again, a retry the service answers after it the service; once
    they get through, nothing waits and the service stored them once."""
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        # Each POST of the answers held until the test says what it meets: a status, the network cut, or the service.
        held: asyncio.Queue[asyncio.Future[int | str | None]] = asyncio.Queue()

        async def hold(route: Route) -> None:
            answer: asyncio.Future[int | str | None] = asyncio.get_running_loop().create_future()
            await held.put(answer)
            meets = await answer
            if meets is None:
                await route.continue_()
            elif isinstance(meets, str):
                await route.abort(meets)
            else:
                problem = {"type": "about:blank", "title": "Service Unavailable", "status": meets}
                await route.fulfill(status=meets, json=problem, headers={"Retry-After": "1"})

        async def next_send_meets(meets: int | str | None) -> None:
            (await asyncio.wait_for(held.get(), timeout=10)).set_result(meets)

        async def says_nowhere(words: str) -> None:
            shown = " ".join((await page.locator("body").inner_text()).split())
            assert words not in shown, shown

        banner = page.locator("#queue-banner")
        await page.route("**/v1/submissions", hold)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await answer_until_review(page, {})
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        await next_send_meets(busy)
        await expect(page.locator("#sent-status")).to_have_text(
            f"{ANSWERS_WAIT_FOR_THE_SERVICE} Elles sont gardées. {KEPT}"
        )
        await expect(banner).to_be_hidden()  # said once, by the screen's status
        await says_nowhere(WAITS_FOR_THE_CONNECTION)
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#status-list")).to_contain_text(ANSWERS_WAIT_FOR_THE_SERVICE)
        await expect(banner).to_be_hidden()
        await says_nowhere(WAITS_FOR_THE_CONNECTION)
        # A message written meanwhile waits behind them, for the same reason.
        await page.get_by_role("button", name="Écrire à l'équipe soignante").click()
        await expect(banner).to_have_text(ANSWERS_WAIT_FOR_THE_SERVICE)
        await page.locator("#message-text").fill("J'ai de la fièvre.")
        await page.get_by_role("button", name="Envoyer", exact=True).click()
        await expect(page.locator("#sent-status")).to_have_text(f"{MESSAGE_WAITS_FOR_THE_SERVICE} Il est gardé. {KEPT}")
        await expect(banner).to_have_text(ANSWERS_WAIT_FOR_THE_SERVICE)
        await says_nowhere(WAITS_FOR_THE_CONNECTION)
        await page.get_by_role("button", name="Retour à l'accueil").click()
        await expect(page.locator("#status-list")).to_contain_text(MESSAGE_WAITS_FOR_THE_SERVICE)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await expect(banner).to_have_text(BOTH_WAIT_FOR_THE_SERVICE)

        # The network is lost under the retry: the connection is what they wait for now.
        await page.clock.fast_forward(5_000)
        await next_send_meets("internetdisconnected")
        await expect(banner).to_have_text(BOTH_WAIT)
        await says_nowhere(WAITS_FOR_THE_SERVICE)
        # The next retry reaches the service, which is still busy: the service again.
        await page.clock.fast_forward(10_000)
        await next_send_meets(503)
        await expect(banner).to_have_text(BOTH_WAIT_FOR_THE_SERVICE)
        await says_nowhere(WAITS_FOR_THE_CONNECTION)
        # It answers: both go, and nothing says they wait.
        await page.clock.fast_forward(20_000)
        await next_send_meets(None)
        await page.locator("#screen-who").get_by_role("button", name="Accueil").click()
        await expect(page.locator("#status-list")).to_contain_text("Vos réponses ont bien été reçues.", timeout=5_000)
        await expect(page.locator("#status-list")).to_contain_text(
            "Votre message a bien été envoyé à l'équipe soignante."
        )
        await expect(banner).to_be_hidden()
        await says_nowhere(WAITS_FOR_THE_SERVICE)
        await says_nowhere(WAITS_FOR_THE_CONNECTION)
        async with home.questionnaire.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 1
    finally:
        await context.close()


async def test_a_send_that_hangs_is_given_up_waits_and_goes_again_under_its_key(home: Home) -> None:
    """A captive Wi-Fi or a stalled connection answers nothing and fails nothing: after 30 s the tablet gives the
    request up as failed, says the answers wait, and sends them again under the same key. Before, it said « La
    tablette envoie vos réponses… » until the browser gave up, minutes later, and only then tried again."""
    patient = uuid.uuid4()
    context = await home.tablet()
    try:
        page = await home.enrolled(context, patient)
        held: asyncio.Queue[tuple[Route, asyncio.Future[bool]]] = asyncio.Queue()

        async def hold(route: Route) -> None:
            answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            await held.put((route, answer))
            if await answer:
                await route.continue_()

        await page.route("**/v1/submissions", hold)
        await page.get_by_role("button", name="Répondre au questionnaire").click()
        await page.get_by_role("radio", name="C'est moi, le patient ou la patiente").click()
        await answer_until_review(page, {})
        await page.get_by_role("button", name="Envoyer mes réponses").click()
        hung, never = await asyncio.wait_for(held.get(), timeout=10)
        await expect(page.locator("#sent-status")).to_have_text("La tablette envoie vos réponses…")
        await page.clock.run_for(29_000)
        await expect(page.locator("#sent-status")).to_have_text("La tablette envoie vos réponses…")
        await page.clock.run_for(2_000)
        await expect(page.locator("#sent-status")).to_contain_text(WAITS_FOR_THE_CONNECTION)
        # The retry, under the first request's key: one submission, whatever the first one did on its way.
        await page.clock.fast_forward(10_000)
        retry, through = await asyncio.wait_for(held.get(), timeout=10)
        assert retry.request.headers["idempotency-key"] == hung.request.headers["idempotency-key"]
        through.set_result(True)
        await expect(page.locator("#sent-status")).to_have_text(re.compile("Vos réponses ont bien été reçues"))
        never.cancel()
        async with home.questionnaire.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 1
    finally:
        await context.close()
