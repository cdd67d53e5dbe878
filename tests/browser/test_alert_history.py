"""The patient view's history of each alert, in a real headless Chromium: who took it, how it was closed and
with what note, who reopened it and why, and when a new answer reopened it; the free text shown as text, and
the keyboard's focus kept in the view after reopening."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Page, expect

from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

PARIS = ZoneInfo("Europe/Paris")
# Markup in a note is text to show, never HTML to run.
NOTE = "Dose réduite de 20 % <img src=x onerror=window.__injected=1>"
REASON = "Rappel de la patiente : nausées la nuit"


def staff(ward: Ward, staff_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ward.tokens.issue_staff_token(staff_id, {'nurse'})}"}


async def steps_of(api: httpx.AsyncClient, ward: Ward, patient: uuid.UUID, alert_id: str) -> list[dict[str, Any]]:
    timeline = (await api.get(f"/v1/patients/{patient}/timeline", headers=staff(ward, "ide-claire"))).json()
    return next(a["steps"] for a in timeline["alerts"] if a["id"] == alert_id)


def when(at: str) -> str:
    local = datetime.fromisoformat(at).astimezone(PARIS)
    return f"{local:%d/%m/%Y} à {local:%H:%M}"


async def open_patient(page: Page) -> None:
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await rows(page).first.locator("[data-action=open-patient]").click()
    await expect(page.locator("#patient-view .history")).to_be_visible(timeout=5_000)


async def test_the_history_keeps_karim_s_close_and_shows_claire_s_reopen_done_by_keyboard(ward: Ward) -> None:
    patient = await ward.submit({"nausea.frequency": "2", "nausea.severity": "2"})
    async with httpx.AsyncClient(base_url=ward.url) as api:

        async def raised() -> Any:
            items = (await api.get("/v1/alerts", headers=staff(ward, "ide-karim"))).json()["items"]
            return next((a["id"] for a in items if a["patient_id"] == str(patient)), None)

        alert_id = await eventually(raised)
        karim = staff(ward, "ide-karim")
        assert (await api.post(f"/v1/alerts/{alert_id}/ack", headers=karim)).status_code == 200
        closing = {"outcome": "dose_modified", "note": NOTE}
        assert (await api.post(f"/v1/alerts/{alert_id}/resolve", json=closing, headers=karim)).status_code == 200
        # The patient writes again the next day: a new alert, from which Claire opens the patient.
        await ward.submit({"fatigue.severity": "2", "fatigue.interference": "2"}, patient=patient)
        page = await ward.dashboard("ide-claire")
        await open_patient(page)

        item = page.locator(f'#patient-view [data-prior-alert-id="{alert_id}"]')
        taken, closed = await steps_of(api, ward, patient, alert_id)
        await expect(item.locator(".history-steps li")).to_have_text(
            [
                f"Prise par ide-karim le {when(taken['at'])}",
                f"Clôturée par ide-karim le {when(closed['at'])} : Dose modifiée",
                f"Note : {NOTE}",
            ]
        )

        # Keyboard only: "Rouvrir", the reason, then the dialog's confirm button.
        await item.locator("[data-action=reopen]").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#reopen-reason")).to_be_focused()
        await page.keyboard.type(REASON)
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await expect(page.locator("[data-action=confirm-reopen]")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#reopen-dialog")).to_be_hidden(timeout=5_000)

        reopened = (await steps_of(api, ward, patient, alert_id))[2]
        await expect(item.locator(".history-steps li")).to_have_text(
            [
                f"Prise par ide-karim le {when(taken['at'])}",
                f"Clôturée par ide-karim le {when(closed['at'])} : Dose modifiée",
                f"Note : {NOTE}",
                f"Rouverte par ide-claire le {when(reopened['at'])} — Motif : {REASON}",
            ],
            timeout=5_000,
        )
        # Focus stays in the view, on the alert she reopened, not thrown back to the top of the page.
        await expect(item).to_be_focused()
        assert await page.evaluate("document.activeElement !== document.body")
        assert await item.locator("img").count() == 0
        assert await page.evaluate("window.__injected === undefined")


async def test_the_history_says_when_a_new_answer_reopened_a_taken_alert(ward: Ward) -> None:
    patient = await ward.submit(RED_NAUSEA)
    page = await ward.dashboard("ide-claire")
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await rows(page).first.locator("[data-action=ack]").click()
    await expect(rows(page).first).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    await ward.submit(RED_NAUSEA, patient=patient)
    await expect(rows(page).first).to_have_attribute("data-status", "open", timeout=5_000)
    alert_id = await rows(page).first.get_attribute("data-alert-id")
    assert alert_id
    await open_patient(page)
    async with httpx.AsyncClient(base_url=ward.url) as api:
        taken, again = await steps_of(api, ward, patient, alert_id)
    item = page.locator(f'#patient-view [data-prior-alert-id="{alert_id}"]')
    # The alert in progress is in the list too: its title is the history, not "Alertes précédentes".
    await expect(page.locator("#history-title")).to_have_text("Historique des alertes")
    await expect(item.locator(".history-steps li")).to_have_text(
        [
            f"Prise par ide-claire le {when(taken['at'])}",
            f"Rouverte par une nouvelle réponse le {when(again['at'])}",
        ]
    )
