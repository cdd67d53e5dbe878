"""The nurse dashboard in a real headless Chromium (Debian's), against the real services over HTTP.

A submission posted by a tablet appears on the open page without a reload; acknowledging in one browser
updates another; a resolved alert leaves the list; a dropped connection catches up; an overdue alert is
shown as such. ``test-artifacts/dashboard.png`` is left for a person to look at.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from playwright.async_api import expect

from services.alerting.escalation import escalate_overdue
from tests.browser.conftest import ARTIFACTS, Ward, rows

pytestmark = pytest.mark.browser


async def test_a_submission_appears_live_and_acknowledging_updates_every_dashboard(ward: Ward) -> None:
    claire = await ward.dashboard("ide-claire")
    karim = await ward.dashboard("ide-karim")
    await expect(rows(claire)).to_have_count(0)

    posted = time.monotonic()
    await ward.submit()
    await expect(rows(claire)).to_have_count(1, timeout=5_000)
    shown_after = time.monotonic() - posted
    await expect(rows(karim)).to_have_count(1, timeout=5_000)
    row = rows(claire).first
    await expect(row).to_have_attribute("data-level", "red")
    await expect(row).to_contain_text("Nausées")
    assert shown_after < 2.0, f"the alert took {shown_after:.2f}s to appear"

    await row.locator("[data-action=ack]").click()
    await expect(rows(karim).first).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    await expect(rows(karim).first).to_contain_text("ide-claire")

    await ward.submit({"nausea.frequency": "2", "nausea.severity": "2"})
    await expect(rows(claire)).to_have_count(2, timeout=5_000)
    ARTIFACTS.mkdir(exist_ok=True)
    await claire.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # A 1366-pixel screen at 125 % (1093 CSS px): no sideways scrolling, and each reason on one line, not squeezed
    # word by word by the fixed columns around it.
    await karim.set_viewport_size({"width": 1093, "height": 614})
    await expect(rows(karim)).to_have_count(2, timeout=5_000)
    assert await karim.evaluate("document.documentElement.scrollWidth <= innerWidth")
    lines = await karim.locator("#alert-rows .reason-text").evaluate_all(
        "(reasons) => reasons.map((r) => [r.textContent, r.getClientRects().length])"
    )
    assert lines and all(count == 1 for _, count in lines), lines

    await claire.locator("[data-status=acknowledged] [data-action=resolve]").click()
    dialog = claire.locator("#resolve-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("[data-action=confirm-resolve]")).to_be_disabled()
    await dialog.locator("select[name=outcome]").select_option("chemo_postponed")
    await dialog.locator("textarea[name=note]").fill("Bilan à refaire à J-1.")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(rows(claire)).to_have_count(1, timeout=5_000)
    await expect(rows(karim)).to_have_count(1, timeout=5_000)
    await expect(rows(karim).first).to_have_attribute("data-level", "orange")


async def test_a_dropped_connection_catches_up_with_what_it_missed(ward: Ward) -> None:
    page = await ward.dashboard()
    await ward.submit()
    await expect(rows(page)).to_have_count(1, timeout=5_000)

    # The network goes down and the server loses the connection: the page keeps trying to reconnect.
    await page.context.set_offline(True)
    ward.alerting.extras["alert_feed"].disconnect_all()
    await expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "live", timeout=10_000)
    for _ in range(2):
        await ward.submit()
    await page.context.set_offline(False)
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=15_000)
    await expect(rows(page)).to_have_count(3, timeout=5_000)


async def test_an_overdue_alert_is_shown_as_such(ward: Ward) -> None:
    page = await ward.dashboard()
    patient = await ward.submit()
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await expect(rows(page).first).to_have_attribute("data-overdue", "false")

    # Raised last Monday at 09:00 (Paris) and never taken: past both of its deadlines now.
    monday = datetime.fromisoformat("2026-11-16T09:00:00+01:00")
    pool = ward.alerting.pool
    async with pool.acquire() as conn:
        await conn.execute("UPDATE alerts SET raised_at = $2, level_since = $2 WHERE patient_id = $1", patient, monday)
    escalated = await escalate_overdue(pool, ward.clock(), ward.alerting.extras["service_levels"])
    assert [e.escalation_level for e in escalated] == [1, 2]
    await expect(rows(page).first).to_have_attribute("data-overdue", "true", timeout=5_000)
    await expect(rows(page).first).to_contain_text("EN RETARD")


async def test_a_refused_token_is_told_in_the_words_of_every_staff_page(ward: Ward) -> None:
    # The fleet page says the same (test_fleet_page.py): one sentence for each way a session is refused or ends.
    context = await ward.browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    ward.tabs.append(context)
    page = await context.new_page()
    await page.goto(f"{ward.url}/dashboard/")
    await page.locator("#token-input").fill("pas-un-jeton")
    await page.locator("#token-form [type=submit]").click()
    message = page.locator("#signin-message")
    await expect(message).to_have_text("Ce jeton n'est pas valide ou a expiré. Collez un nouveau jeton.")
    # Signed in, then the token stops working under way (revoked, say): the next request ends the session.
    await page.locator("#token-input").fill(ward.tokens.issue_staff_token("ide-claire", {"nurse"}))
    await page.locator("#token-form [type=submit]").click()
    # Once the page has done its start-up requests (the list, the live stream's token): the next is the nurse's.
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    await page.evaluate("sessionStorage.setItem('oncofollow.staffToken', 'pas-un-jeton')")
    # Clicked in the page: whichever request of hers comes first (this one, or one of the list's) ends the session.
    await page.evaluate("document.querySelector('[data-view=metrics]').click()")
    await expect(message).to_have_text("Votre session n'est plus valide. Collez un nouveau jeton.", timeout=5_000)
    await expect(page.locator("#app")).to_be_hidden()
