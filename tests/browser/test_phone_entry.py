"""A nurse fills in a patient's questionnaire during a phone call, in a real headless Chromium: the form is drawn
from the questionnaire service's FHIR Questionnaire (its branching too), posted there from the dashboard's origin
(CORS), and the answers raise their alert like a tablet's, shown as given by the nurse by phone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, expect

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import listening_sockets, port_of
from shared.testing.services import served
from tests.browser.conftest import ARTIFACTS, rows

pytestmark = pytest.mark.browser


@pytest.fixture
async def phone_ward(
    service_env: dict[str, str], tokens: TokenService, browser: Browser
) -> AsyncIterator[tuple[str, Any, Any]]:
    """Both services over HTTP, each on the port the other is told: the dashboard on one origin, the questionnaire
    service on another, allowing it."""
    q_sock, a_sock = listening_sockets(2)
    q_port, a_port = port_of(q_sock), port_of(a_sock)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env, DASHBOARD_ORIGINS=f"http://127.0.0.1:{a_port}")
    a_settings = AlertingSettings(
        **env, ESCALATION_CHECK_S="3600", QUESTIONNAIRE_PUBLIC_URL=f"http://127.0.0.1:{q_port}"
    )
    async with (
        served(build_questionnaire(q_settings), q_sock) as (_, questionnaire),
        served(build_alerting(a_settings), a_sock) as (url, _),
    ):
        context = await browser.new_context(
            viewport={"width": 1366, "height": 900}, locale="fr-FR", timezone_id="Europe/Paris"
        )
        token = tokens.issue_staff_token("ide-claire", {"nurse"})
        await context.add_init_script(
            f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()})"
        )
        try:
            yield url, questionnaire, context
        finally:
            await context.close()


async def test_a_nurse_enters_the_answers_she_takes_by_phone_and_their_alert_says_so(
    phone_ward: tuple[str, Any, Any],
) -> None:
    url, questionnaire, context = phone_ward
    patient = uuid.uuid4()
    page = await context.new_page()
    await page.goto(f"{url}/dashboard/")
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    # A patient with no alert yet is opened by the id pasted in the list's form; a short id is refused, saying why.
    patient_field = page.get_by_label("Dossier d'un patient")
    await patient_field.fill(str(patient)[:8])
    await page.get_by_role("button", name="Ouvrir", exact=True).click()
    await expect(page.locator("#open-patient-error")).to_contain_text("Collez l'identifiant entier du patient")
    await expect(patient_field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#alerts-view")).to_be_visible()
    await patient_field.fill(f" {str(patient).upper()} ")
    await patient_field.press("Enter")
    await expect(page.locator("#patient-view")).to_be_visible()
    await expect(page.locator("#patient-view")).to_contain_text("Aucun questionnaire reçu pour ce patient.")
    assert page.url.endswith(f"#patient/{patient}")

    await page.get_by_role("button", name="Saisir le questionnaire (appel téléphonique)").click()
    dialog = page.locator("#phone-dialog")
    await expect(dialog).to_be_visible()
    nausea_frequency = dialog.locator("[data-link-id='nausea.frequency']")
    nausea_severity = dialog.locator("[data-link-id='nausea.severity']")
    temperature = dialog.locator("[data-link-id='temperature']")
    await expect(nausea_frequency).to_be_visible(timeout=5_000)
    # A long form: its buttons stay in sight at the dialog's foot, not only after scrolling through every question.
    await expect(dialog.get_by_role("button", name="Enregistrer les réponses")).to_be_in_viewport(ratio=1)
    # Branching as the questionnaire says: severity once the frequency is not "Jamais"; the temperature after a fever.
    await expect(nausea_severity).to_be_hidden()
    await expect(temperature).to_be_hidden()
    await nausea_frequency.get_by_label("Jamais").check()
    await expect(nausea_severity).to_be_hidden()
    await nausea_frequency.get_by_label("Souvent").check()
    await expect(nausea_severity).to_be_visible()
    await dialog.locator("[data-link-id='fever']").get_by_label("Oui").check()
    await expect(temperature).to_be_visible()
    await temperature.locator("input").fill("38.6")

    # Severity left unanswered: the server refuses (PRO-CTCAE asks it after that frequency), and the form says where.
    await dialog.get_by_role("button", name="Enregistrer les réponses").click()
    error = dialog.locator(".error-text")
    await expect(error).to_be_visible(timeout=5_000)
    await expect(error).to_contain_text("Vérifiez la réponse")
    await expect(error).to_contain_text("quel était le niveau de votre envie de vomir")
    await expect(nausea_severity).to_have_attribute("aria-invalid", "true")
    async with questionnaire.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 0

    await nausea_severity.get_by_label("Fort", exact=True).check()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "phone-entry.png"), full_page=True)
    await dialog.get_by_role("button", name="Enregistrer les réponses").click()
    await expect(dialog).to_have_count(0, timeout=5_000)
    await expect(page.locator(".toast-success")).to_contain_text("Réponses enregistrées")

    async with questionnaire.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT patient_id, answered_by, recorded_by, response FROM submissions")
    assert (stored["patient_id"], stored["answered_by"], stored["recorded_by"]) == (
        patient,
        "nurse_phone",
        "ide-claire",
    )
    sent = {i["linkId"]: i["answer"][0] for i in stored["response"]["item"]}
    assert sent == {
        "nausea.frequency": {"valueCoding": {"system": sent["nausea.frequency"]["valueCoding"]["system"], "code": "3"}},
        "nausea.severity": {"valueCoding": {"system": sent["nausea.severity"]["valueCoding"]["system"], "code": "3"}},
        "fever": {"valueBoolean": True},
        "temperature": {"valueDecimal": 38.6},
    }

    # Back to the list: the red alert, given by the nurse on the phone.
    await page.get_by_role("button", name="Retour").click()
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    row = rows(page).first
    await expect(row).to_have_attribute("data-level", "red")
    await expect(row.locator(".col-source")).to_contain_text("téléphone")
    # The patient view names the nurse who took the answers.
    await row.locator("[data-action=open-patient]").click()
    detail = page.locator("#patient-view .submission-detail h3").first
    await expect(detail).to_contain_text("Infirmier·ère (par téléphone) · ide-claire", timeout=5_000)


async def test_answers_a_session_cut_short_are_kept_for_the_same_nurse_only_and_never_in_storage(
    phone_ward: tuple[str, Any, Any], tokens: TokenService, browser: Browser
) -> None:
    url, questionnaire, _ = phone_ward
    patient = uuid.uuid4()
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="fr-FR")
    short = tokens.issue_staff_token("ide-claire", {"nurse"}, ttl_s=10)
    await context.add_init_script(  # the first page only: a later sign-in goes through the form, as a nurse's does
        "if (!sessionStorage.getItem('test.signed-in')) { sessionStorage.setItem('test.signed-in', '1'); "
        f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(short).decode()}); }}"
    )
    page = await context.new_page()

    async def sign_in_as(staff_id: str, ttl_s: int = 3600) -> None:
        await expect(page.locator("#signin-screen")).to_be_visible(timeout=30_000)
        await page.locator("#token-input").fill(tokens.issue_staff_token(staff_id, {"nurse"}, ttl_s=ttl_s))
        await page.locator("#token-form [type=submit]").click()
        await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)

    async def phone_form() -> Any:
        await page.goto(f"{url}/dashboard/#patient/{patient}")
        await page.get_by_role("button", name="Saisir le questionnaire (appel téléphonique)").click()
        dialog = page.locator("#phone-dialog")
        await expect(dialog.locator("[data-link-id='nausea.frequency']")).to_be_visible(timeout=5_000)
        return dialog

    async def noted_then_cut_short() -> None:
        dialog = await phone_form()
        await dialog.locator("[data-link-id='nausea.frequency']").get_by_label("Souvent").check()
        await dialog.locator("[data-link-id='nausea.severity']").get_by_label("Fort", exact=True).check()
        await dialog.locator("[data-link-id='fever']").get_by_label("Oui").check()
        await dialog.locator("[data-link-id='temperature'] input").fill("38.6")
        # Her token runs out during the call.
        await expect(page.locator("#signin-message")).to_contain_text("saisie téléphonique", timeout=30_000)
        storage = await page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
        assert "38.6" not in storage and "nausea" not in storage  # health data: in memory only

    try:
        await page.goto(f"{url}/dashboard/")
        await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
        await noted_then_cut_short()

        # Another nurse signs in at that screen: she finds an empty form, and Claire's answers are gone for good.
        await sign_in_as("ide-karim")
        dialog = await phone_form()
        await expect(dialog.locator("[data-link-id='temperature']")).to_be_hidden()
        assert await dialog.locator("input[type=radio]:checked").count() == 0
        await dialog.get_by_role("button", name="Annuler").click()

        # Claire again, her session cut short again: this time she signs back in herself and takes up her answers.
        await page.locator("#sign-out").click()
        await sign_in_as("ide-claire", ttl_s=10)
        await noted_then_cut_short()
        await sign_in_as("ide-claire")
        await expect(page.locator(".toast").filter(has_text="conservée")).to_be_visible(timeout=5_000)
        dialog = await phone_form()
        await expect(dialog.locator(".error-text")).to_contain_text("conservées")
        await expect(dialog.locator("[data-link-id='temperature'] input")).to_have_value("38.6")
        await dialog.get_by_role("button", name="Enregistrer les réponses").click()
        await expect(dialog).to_have_count(0, timeout=5_000)
    finally:
        await context.close()
    async with questionnaire.pool.acquire() as conn:
        rows_ = await conn.fetch("SELECT recorded_by, response FROM submissions")
    assert [r["recorded_by"] for r in rows_] == ["ide-claire"]
    assert {i["linkId"] for i in rows_[0]["response"]["item"]} == {
        "nausea.frequency",
        "nausea.severity",
        "fever",
        "temperature",
    }
