"""An alert taken on another screen while this one had not heard of it (its live stream cut), in a real headless
Chromium: her "Je prends" here is refused (409), and the toast says who took it, her own screen included, never
"a colleague" for herself."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Ward, rows
from tests.browser.test_closing import _cut_live_stream

pytestmark = pytest.mark.browser


async def taken_through_the_api(ward: Ward, alert_id: str, staff_id: str) -> None:
    headers = {"Authorization": f"Bearer {ward.tokens.issue_staff_token(staff_id, {'nurse'})}"}
    async with httpx.AsyncClient(base_url=ward.url) as client:
        taken = await client.post(f"/v1/alerts/{alert_id}/ack", headers=headers)
    assert taken.status_code == 200, taken.text


async def test_je_prends_on_an_alert_taken_elsewhere_says_who_took_it_herself_included(ward: Ward) -> None:
    mine, karims = await ward.submit(), await ward.submit()
    page = await ward.dashboard("ide-claire")
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    row_of = {patient: page.locator(f"#alert-rows tr[data-patient-id='{patient}']") for patient in (mine, karims)}
    ids = {patient: await row.get_attribute("data-alert-id") for patient, row in row_of.items()}
    await _cut_live_stream(page, ward)
    toasts = page.locator("#toasts .toast-text")

    # Karim takes one: this page still shows it open (the refusal reloads the list, the other one still open).
    await taken_through_the_api(ward, str(ids[karims]), "ide-karim")
    await row_of[karims].locator("[data-action=ack]").click()
    await expect(toasts.last).to_have_text("ide-karim a déjà pris cette alerte.", timeout=5_000)
    await expect(row_of[karims]).to_have_attribute("data-status", "acknowledged")

    # She takes the other on the computer of the next room, then presses "Je prends" here.
    await taken_through_the_api(ward, str(ids[mine]), "ide-claire")
    await row_of[mine].locator("[data-action=ack]").click()
    await expect(toasts.last).to_have_text("Vous avez déjà pris cette alerte depuis un autre écran.", timeout=5_000)
    await expect(row_of[mine]).to_have_attribute("data-status", "acknowledged")
