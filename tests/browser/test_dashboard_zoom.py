"""The alert list on a ward PC zoomed in, in a real headless Chromium: a 1366×768 screen at 150 % leaves the page
about 911×430 CSS pixels (the browser's own bars take the rest), where the rows are cards. A nurse triaging must see
several alerts at once there, not one and a half: ``test-artifacts/dashboard-150.png`` shows what she sees. At 125 %
(about 1093×520) the rows stay a table, each as tall as its action (``test-artifacts/dashboard-125.png``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson
import pytest
from playwright.async_api import Page, expect

from shared.testing.waiting import eventually
from tests.browser.conftest import ARTIFACTS, Ward, rows
from tests.browser.test_triage_list import BEEP_COUNTER, insert_alerts

pytestmark = pytest.mark.browser

# Each card's box, the action's, and the bottom of whatever stays stuck at the top of the screen as the list
# scrolls under it (the red banner, a sticky header): a card under it is not seen.
LAYOUT = """() => {
  const stuck = [...document.querySelectorAll("body *")]
    .filter((e) => ["sticky", "fixed"].includes(getComputedStyle(e).position) && e.checkVisibility())
    .map((e) => e.getBoundingClientRect())
    .filter((r) => r.height > 0 && r.top <= 1)
    .reduce((bottom, r) => Math.max(bottom, r.bottom), 0);
  const cards = [...document.querySelectorAll("#alert-rows [data-alert-id]")].map((card) => {
    const box = card.getBoundingClientRect();
    const part = (selector) => {
      const e = card.querySelector(selector);
      const r = e && e.getBoundingClientRect();
      return r && r.width > 0 && r.height > 0 && r.top >= box.top && r.bottom <= box.bottom + 0.5
        ? { text: e.innerText.trim(), height: r.height } : null;
    };
    return {
      top: box.top, bottom: box.bottom,
      level: part(".level-badge"), patient: part(".patient-link"), reasons: part(".reason-text"),
      waiting: part(".waiting-since, .waited"), action: part("[data-action=ack], [data-action=resolve]"),
    };
  });
  return { stuck, height: innerHeight, cards, sideways: document.documentElement.scrollWidth > innerWidth };
}"""


async def layout(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(LAYOUT)
    return found


def in_full_view(shown: dict[str, Any]) -> list[dict[str, Any]]:
    # Within a CSS pixel: at a scale of 1.5, a scroll lands on a device pixel, two thirds of a CSS one.
    return [c for c in shown["cards"] if c["top"] >= shown["stuck"] - 1 and c["bottom"] <= shown["height"] + 1]


async def zoomed(ward: Ward, width: int, height: int, scale: float, init_script: str = "") -> Page:
    """A nurse's dashboard on a ward PC's screen at a zoom: ``width``×``height`` CSS pixels at ``scale``."""
    token = ward.tokens.issue_staff_token("ide-claire", {"nurse"})
    context = await ward.browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=scale,
        locale="fr-FR",
        timezone_id="Europe/Paris",
    )
    ward.tabs.append(context)
    if init_script:
        await context.add_init_script(init_script)
    await context.add_init_script(f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()})")
    page = await context.new_page()
    await page.goto(f"{ward.url}/dashboard/")
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    return page


async def test_at_150_percent_three_alerts_are_in_full_view_under_the_red_banner(ward: Ward) -> None:
    await insert_alerts(ward, 2, "orange", waited=timedelta(minutes=40))
    await insert_alerts(
        ward, 2, "orange", status="acknowledged", waited=timedelta(hours=2), taken_after=timedelta(minutes=7)
    )
    page = await zoomed(ward, 911, 430, 1.5)
    await expect(rows(page)).to_have_count(4, timeout=5_000)

    # On arrival, the header and the filters leave room for the first two alerts whole.
    arrival = await layout(page)
    assert not arrival["sideways"]
    assert len(in_full_view(arrival)) >= 2, arrival

    # A red alert arrives: its banner stays at the top while the nurse scrolls down the list.
    await ward.submit()
    await expect(rows(page)).to_have_count(5, timeout=5_000)
    await expect(page.locator("#red-banner")).to_be_visible()
    await page.evaluate("document.querySelector('#alert-rows [data-alert-id]').scrollIntoView()")
    shown = await layout(page)
    first = shown["cards"][0]
    await page.evaluate(f"window.scrollBy(0, {first['top'] - shown['stuck']})")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-150.png"))
    shown = await layout(page)
    seen = in_full_view(shown)
    assert len(seen) >= 3, f"{len(seen)} alerts in full view under {shown['stuck']:.0f} px stuck at the top: {shown}"
    # What she triages on is there and readable in each: the level, the patient, a reason, the wait, and an
    # action of at least 44 px.
    for card in seen[:3]:
        assert all(card[part] and card[part]["text"] for part in ("level", "patient", "reasons", "waiting")), card
        assert card["action"] and card["action"]["height"] >= 44, card
    assert not shown["sideways"]


# Per open alert: the deadline's text, how many lines it takes (its text's boxes, one per line), the height of what
# the wait cell holds, and its action's.
DEADLINES = """(rows) => rows.map((row) => {
  const due = row.querySelector(".due");
  const range = document.createRange();
  range.selectNodeContents(due);
  const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
  const held = [...row.querySelector(".col-waiting").children].reduce((sum, e) => sum + e.offsetHeight, 0);
  const action = row.querySelector("[data-action=ack]").offsetHeight;
  return { text: due.textContent, lines: lines.size, wait: held, action };
})"""


async def test_at_125_percent_a_deadline_on_another_day_stays_on_one_line(ward: Ward) -> None:
    # An orange alert is due by the close of the next business day: its deadline names the day.
    await insert_alerts(ward, 3, "orange", waited=timedelta(minutes=40))
    page = await zoomed(ward, 1093, 520, 1.25)
    await expect(rows(page)).to_have_count(3, timeout=5_000)
    await page.evaluate("document.querySelector('#alert-rows').scrollIntoView()")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-125.png"))
    for row in await rows(page).evaluate_all(DEADLINES):
        assert re.fullmatch(r"échéance \d\d/\d\d \d\d:\d\d", row["text"]), row
        # "échéance 25/11 09:00" on one line: the wait and its deadline are no taller than "Je prends", which sets
        # the row's height (two lines where the deadline broke into three made the row half as tall again).
        assert row["lines"] == 1, row
        assert row["wait"] <= row["action"], row


# The rows the red banner's visible parts lie on (their vertical centres), and its height.
BANNER_LINES = """(banner) => ({
  lines: new Set([...banner.children].filter((e) => e.checkVisibility())
    .map((e) => { const r = e.getBoundingClientRect(); return Math.round((r.top + r.bottom) / 2); })).size,
  height: banner.getBoundingClientRect().height,
})"""


async def test_at_150_and_125_percent_the_red_banner_is_one_line_and_says_the_sound_is_blocked(ward: Ward) -> None:
    # Nobody has clicked in these pages yet: the browser does not let them play the beep.
    at_150 = await zoomed(ward, 911, 430, 1.5, BEEP_COUNTER)
    at_125 = await zoomed(ward, 1093, 520, 1.25, BEEP_COUNTER)
    await ward.submit()
    for page in (at_150, at_125):
        await expect(page.locator("#red-banner")).to_be_visible(timeout=5_000)
        blocked = page.locator("#sound-blocked")
        await expect(blocked).to_be_visible()
        shown = await page.locator("#red-banner").evaluate(BANNER_LINES)
        # One line: its text, "Son bloqué", "Voir" and "×" side by side, no taller than a 36-pixel button and its
        # padding (two lines took 72 px, every one of them hiding alerts).
        assert shown["lines"] == 1 and shown["height"] <= 44, shown
        # Short on the screen, whole in its name (what a screen reader says, and the tooltip).
        await expect(blocked).to_have_text("Son bloqué")
        await expect(blocked).to_have_accessible_name("Son bloqué par le navigateur : cliquez ici pour l'autoriser")
        await expect(blocked).to_have_attribute("title", "Son bloqué par le navigateur : cliquez ici pour l'autoriser")
    ARTIFACTS.mkdir(exist_ok=True)
    await at_150.screenshot(path=str(ARTIFACTS / "dashboard-150-sound-blocked.png"))

    # Her click on it is the one the browser waited for: the sound is allowed, a beep says so, the hint goes.
    await at_150.locator("#sound-blocked").click()
    await expect(at_150.locator("#sound-blocked")).to_be_hidden()

    async def beeped() -> bool:
        return bool(await at_150.evaluate("window.__beeps"))

    await eventually(beeped)
    await expect(at_150.locator("#red-banner")).to_be_visible()
    # A click anywhere else in the page allows it as well: the hint does not stay to say otherwise.
    await at_125.locator("#alerts-heading").click()
    await expect(at_125.locator("#sound-blocked")).to_be_hidden()
