"""A patient's photo in a real headless Chromium: the tablet attaches one to a message and sends both (the server
holds one photo and one message), and the nurse's dashboard shows it as a thumbnail in the alert's view, fetched from
the questionnaire service (another origin, CORS) with her bearer token, opening larger on a click."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import listening_sockets, port_of
from shared.testing.photos import photo_bytes
from shared.testing.services import served
from shared.testing.waiting import eventually
from tests.browser.conftest import ARTIFACTS, rows

pytestmark = pytest.mark.browser

BLOB_URL = re.compile(r"^blob:http://127\.0\.0\.1:\d+/")  # an object URL: the token went in a header, not a URL
FRENCH_ALT = re.compile(r"^Photo envoyée par le patient le \d")


@pytest.fixture
async def clinic(
    service_env: dict[str, str], tokens: TokenService, browser: Browser
) -> AsyncIterator[tuple[str, str, Any, BrowserContext]]:
    """Both services over HTTP, each on the port the other is told (the dashboard's origin allowed by the
    questionnaire service); a browser context for the test."""
    q_sock, a_sock = listening_sockets(2)
    q_port, a_port = port_of(q_sock), port_of(a_sock)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env, DASHBOARD_ORIGINS=f"http://127.0.0.1:{a_port}")
    a_settings = AlertingSettings(
        **env, ESCALATION_CHECK_S="3600", QUESTIONNAIRE_PUBLIC_URL=f"http://127.0.0.1:{q_port}"
    )
    async with (
        served(build_questionnaire(q_settings), q_sock) as (q_url, questionnaire),
        served(build_alerting(a_settings), a_sock) as (a_url, _),
    ):
        context = await browser.new_context(
            viewport={"width": 1000, "height": 1280}, locale="fr-FR", timezone_id="Europe/Paris"
        )
        try:
            yield q_url, a_url, questionnaire, context
        finally:
            await context.close()


async def test_a_tablet_sends_a_photo_with_its_message(
    clinic: tuple[str, str, Any, BrowserContext], tokens: TokenService, tmp_path: Path
) -> None:
    q_url, _, questionnaire, context = clinic
    patient = uuid.uuid4()
    page = await context.new_page()
    token = tokens.issue_device_token(patient, "tablet-photo")
    await page.goto(f"{q_url}/tablet/#device_token={token}")
    await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
    await page.get_by_role("button", name="Écrire à l'équipe soignante").click()

    file = tmp_path / "bras.jpg"
    file.write_bytes(photo_bytes(3000, 2000, gps=True))
    await expect(page.get_by_text("Ajouter une photo")).to_be_visible()
    await page.locator("#message-photo").set_input_files(str(file))
    await expect(page.locator("#photo-preview-img")).to_be_visible(timeout=5_000)
    await page.locator("#message-text").fill("Mon bras est gonflé autour du boîtier.")

    # The connection drops as the server answers the upload: the photo is stored, the page does not know it. The
    # page sends it again with the same key (one photo), then the message naming it.
    lost: list[int] = []

    async def lose_the_answer(route: Route) -> None:
        if lost:
            await route.continue_()
            return
        answer = await route.fetch()
        lost.append(answer.status)
        await route.abort("connectionreset")

    await page.route("**/v1/photos", lose_the_answer)
    await page.get_by_role("button", name="Envoyer", exact=True).click()
    await expect(page.locator("#sent-status")).to_contain_text("dès que la connexion reviendra", timeout=5_000)
    assert lost == [201]
    queued = orjson.loads(await page.evaluate("localStorage.getItem('oncofollow.tablet.outbox')"))
    assert [(e["kind"], e["photo"]["id"]) for e in queued] == [("message", None)]
    await page.evaluate("window.dispatchEvent(new Event('online'))")
    await expect(page.locator("#sent-status")).to_have_text(
        "Votre message a bien été envoyé à l'équipe soignante.", timeout=5_000
    )
    await expect(page.locator("#sent-photo")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "tablet-photo-sent.png"))

    async with questionnaire.pool.acquire() as conn:
        photos = await conn.fetch("SELECT id, patient_id, width, height FROM photos")
        messages = await conn.fetch("SELECT body, photo_ids FROM messages")
    assert len(photos) == 1 and photos[0]["patient_id"] == patient
    # Downscaled by the page to 2048 px on the long side before it was sent.
    assert (photos[0]["width"], photos[0]["height"]) == (2048, 1365)
    assert [(m["body"], m["photo_ids"]) for m in messages] == [
        ("Mon bras est gonflé autour du boîtier.", [str(photos[0]["id"])])
    ]
    assert await page.evaluate("localStorage.getItem('oncofollow.tablet.outbox')") == "[]"
    await page.get_by_role("button", name="Retour à l'accueil").click()
    await expect(page.locator("#status-list .status-photo")).to_be_visible()


async def send_photos(q_url: str, tokens: TokenService, patient: uuid.UUID, count: int = 1) -> list[str]:
    """A patient's tablet sends ``count`` photos and a message naming them (which raises an alert, or joins the open
    one); the photos' ids."""
    device = {"Authorization": f"Bearer {tokens.issue_device_token(patient, 'tablet-photo')}"}
    photo_ids = []
    async with httpx.AsyncClient(base_url=q_url) as tablet:
        for _ in range(count):
            uploaded = await tablet.post(
                "/v1/photos",
                content=photo_bytes(640, 480),
                headers={**device, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "image/jpeg"},
            )
            assert uploaded.status_code == 201, uploaded.text
            photo_ids.append(str(uploaded.json()["id"]))
        body = {"photo_ids": photo_ids} if photo_ids else {"text": "Toujours pareil ce soir."}
        sent = await tablet.post(
            "/v1/messages", content=orjson.dumps(body), headers={**device, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert sent.status_code == 202, sent.text
    return photo_ids


async def send_photo(q_url: str, tokens: TokenService, patient: uuid.UUID) -> str:
    """A patient's tablet sends a photo and a message naming it (which raises an alert); the photo's id."""
    return (await send_photos(q_url, tokens, patient))[0]


async def patient_view(context: BrowserContext, a_url: str, tokens: TokenService) -> Page:
    """A nurse's dashboard on the patient view of the one alert on the list."""
    nurse = tokens.issue_staff_token("ide-claire", {"nurse"})
    await context.add_init_script(f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(nurse).decode()})")
    page = await context.new_page()
    await page.goto(f"{a_url}/dashboard/")
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    await expect(rows(page)).to_have_count(1, timeout=10_000)
    await rows(page).first.locator('[data-action="open-patient"]').click()
    return page


async def test_the_dashboard_shows_the_photo_of_the_alerts_message(
    clinic: tuple[str, str, Any, BrowserContext], tokens: TokenService
) -> None:
    q_url, a_url, questionnaire, context = clinic
    patient = uuid.uuid4()
    photo_id = await send_photo(q_url, tokens, patient)
    page = await patient_view(context, a_url, tokens)

    current = page.locator(".current-alert-actions").locator("xpath=..")
    thumb = current.locator(f'.photo-thumb[data-photo-id="{photo_id}"]')
    image = thumb.locator("img")
    await expect(image).to_have_attribute("src", BLOB_URL, timeout=10_000)
    await expect(image).to_have_attribute("alt", FRENCH_ALT)
    assert await image.evaluate("(img) => img.complete && img.naturalWidth") == 640
    await thumb.click()
    await expect(page.locator("#photo-dialog")).to_be_visible()
    await expect(page.locator("#photo-large")).to_have_attribute("src", BLOB_URL)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-photo.png"))

    async def audited() -> Any:
        async with questionnaire.pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'photo.read' AND actor = $1 AND patient_id = $2",
                "ide-claire",
                patient,
            )

    assert await eventually(audited) >= 1


async def test_a_purged_photo_says_so_and_an_expired_token_on_a_photo_ends_the_session(
    clinic: tuple[str, str, Any, BrowserContext], tokens: TokenService
) -> None:
    q_url, a_url, questionnaire, context = clinic
    patient = uuid.uuid4()
    photo_id = await send_photo(q_url, tokens, patient)

    # The token has expired by the time the photo is asked for (the questionnaire service says so): the session
    # ends as on any other request, and the sign-in screen says why.
    expired = {"type": "https://oncofollow.example/problems/invalid-token", "title": "Invalid token", "status": 401}
    await context.route(
        f"{q_url}/v1/photos/**",
        lambda route: route.fulfill(
            status=401,
            content_type="application/problem+json",
            headers={"Access-Control-Allow-Origin": a_url},
            body=orjson.dumps(expired),
        ),
    )
    page = await patient_view(context, a_url, tokens)
    await expect(page.locator("#signin-screen")).to_be_visible(timeout=10_000)
    await expect(page.locator("#signin-message")).to_have_text(
        "Votre session n'est plus valide. Collez un nouveau jeton."
    )
    await page.close()
    await context.unroute(f"{q_url}/v1/photos/**")

    # Purged with the patient's data: the questionnaire service answers 404, and the nurse reads why.
    async with questionnaire.pool.acquire() as conn:
        await conn.execute("DELETE FROM photos WHERE id = $1", uuid.UUID(photo_id))
    page = await patient_view(context, a_url, tokens)
    thumb = (
        page.locator(".current-alert-actions").locator("xpath=..").locator(f'.photo-thumb[data-photo-id="{photo_id}"]')
    )
    await expect(thumb.locator(".photo-status")).to_have_text(
        "Photo supprimée : elle n'est plus disponible.", timeout=10_000
    )
    await expect(thumb).to_be_disabled()


async def test_a_photo_that_failed_is_asked_for_once_across_live_redraws_and_again_on_request(
    clinic: tuple[str, str, Any, BrowserContext], tokens: TokenService
) -> None:
    q_url, a_url, _, context = clinic
    patient = uuid.uuid4()
    busy_id, purged_id = await send_photos(q_url, tokens, patient, 2)

    # What the page asks for each photo: one purged (404), one the questionnaire service is too busy to send (503)
    # until the test says otherwise; the photos' reads the page sends, counted.
    asked = {busy_id: 0, purged_id: 0}
    busy = [True]

    async def answer(route: Route) -> None:
        photo_id = route.request.url.rsplit("/", 1)[-1]
        if route.request.method != "GET" or photo_id not in asked:
            await route.continue_()
            return
        asked[photo_id] += 1
        status = 404 if photo_id == purged_id else 503 if busy[0] else 0
        if not status:
            await route.continue_()
            return
        problem = {"type": "about:blank", "title": "Unavailable", "status": status}
        await route.fulfill(
            status=status,
            content_type="application/problem+json",
            headers={"Access-Control-Allow-Origin": a_url},
            body=orjson.dumps(problem),
        )

    await context.route(f"{q_url}/v1/photos/**", answer)
    page = await patient_view(context, a_url, tokens)
    view = page.locator("#patient-view")
    busy_thumbs = view.locator(f'.photo-thumb[data-photo-id="{busy_id}"]')
    purged_thumbs = view.locator(f'.photo-thumb[data-photo-id="{purged_id}"]')
    busy_text = "Photo non affichée. Le service est momentanément surchargé. Réessayez dans un instant."
    purged_text = "Photo supprimée : elle n'est plus disponible."
    await expect(busy_thumbs.first.locator(".photo-status")).to_have_text(busy_text, timeout=10_000)
    await expect(purged_thumbs.first.locator(".photo-status")).to_have_text(purged_text)
    assert asked == {busy_id: 1, purged_id: 1}

    # The patient writes again, three times: each time the view offers "Actualiser" and is drawn anew, the two photos
    # in it; neither is asked for again (the purged one will not come back, the other not within 30 s).
    for redraw in range(3):
        await send_photos(q_url, tokens, patient, 0)
        stale = view.locator(".stale-patient")
        await expect(stale).to_be_visible(timeout=10_000)
        await stale.get_by_role("button", name="Actualiser").click()
        await expect(stale).to_be_hidden()
        for thumb in await busy_thumbs.all():
            await expect(thumb.locator(".photo-status")).to_have_text(busy_text)
        for thumb in await purged_thumbs.all():
            await expect(thumb.locator(".photo-status")).to_have_text(purged_text)
        assert asked == {busy_id: 1, purged_id: 1}, f"after redraw {redraw + 1}"
        # The purged one is said so and offers nothing; the other is the nurse's way to try again.
        for thumb in await busy_thumbs.all():
            await expect(thumb).to_be_enabled()
        for thumb in await purged_thumbs.all():
            await expect(thumb).to_be_disabled()

    ARTIFACTS.mkdir(exist_ok=True)
    await busy_thumbs.first.locator("xpath=..").screenshot(path=str(ARTIFACTS / "dashboard-photo-failed.png"))

    # The service is back: "Réessayer" on the photo asks for it once more, and shows it wherever the view has it.
    busy[0] = False
    retry = busy_thumbs.first
    await expect(retry).to_have_accessible_name(re.compile(f"^Photo envoyée .* : {re.escape(busy_text)} Réessayer$"))
    await retry.click()
    for thumb in await busy_thumbs.all():
        await expect(thumb.locator("img")).to_have_attribute("src", BLOB_URL, timeout=10_000)
    await expect(retry).to_have_accessible_name(re.compile(r" : agrandir$"))
    assert asked == {busy_id: 2, purged_id: 1}
