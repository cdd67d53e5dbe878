"""The triage list in a real headless Chromium: how long an alert in hand waited.

Alerts are written straight into the alerts table (faster than scoring submissions).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

REASONS = {
    "red": [{"code": "fever", "rule": "red.fever", "level": "red"}],
    "orange": [{"code": "nausea", "rule": "orange.grade2", "level": "orange", "grade": 2}],
}
# Two oscillators per beep: the count only says whether the page sounded.
BEEP_COUNTER = """
window.__beeps = 0;
const started = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return started.apply(this, args); };
"""


async def dashboard(ward: Ward, staff_id: str = "ide-claire", *, fake_clock: bool = False) -> Page:
    """A signed-in dashboard that counts its beeps, clicked once (as a nurse does) so that it may play sound."""
    token = ward.tokens.issue_staff_token(staff_id, {"nurse"})
    context = await ward.browser.new_context(
        viewport={"width": 1366, "height": 800}, locale="fr-FR", timezone_id="Europe/Paris"
    )
    await context.add_init_script(BEEP_COUNTER)
    await context.add_init_script(f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()})")
    page = await context.new_page()
    if fake_clock:
        await page.clock.install()
    await page.goto(f"{ward.url}/dashboard/")
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
    await page.mouse.click(5, 790)
    return page


async def insert_alerts(
    ward: Ward,
    count: int,
    level: str = "orange",
    *,
    status: str = "open",
    waited: timedelta = timedelta(minutes=5),
    taken_after: timedelta | None = None,
) -> list[uuid.UUID]:
    """``count`` alerts of new patients, the first raised ``waited`` ago, each next one a second later."""
    async with ward.alerting.pool.acquire() as conn:
        inserted = await conn.fetch(
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, "
            "updated_at, level_since, acknowledged_by, acknowledged_at) "
            "SELECT gen_random_uuid(), gen_random_uuid(), $2, $3, $4, 'patient', 'test', r, r, r, $5, "
            "r + $6::interval FROM generate_series(1, $1) AS g, "
            "LATERAL (SELECT $7::timestamptz + make_interval(secs => g - 1) AS r) t ORDER BY g RETURNING id",
            count,
            level,
            status,
            REASONS[level],
            "ide-karim" if taken_after is not None else None,
            taken_after,
            datetime.now(UTC) - waited,
        )
    return [row["id"] for row in inserted]


# --- an alert in hand waited until it was taken -------------------------------------------------------


async def test_an_alert_in_hand_shows_how_long_it_waited_and_does_not_tick(ward: Ward) -> None:
    taken = await insert_alerts(
        ward, 1, "red", status="acknowledged", waited=timedelta(hours=3), taken_after=timedelta(minutes=4)
    )
    waiting = await insert_alerts(ward, 1, "red", waited=timedelta(minutes=20))
    page = await dashboard(ward, fake_clock=True)
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    open_row = page.locator(f"#alert-rows tr[data-alert-id='{waiting[0]}']")
    taken_row = page.locator(f"#alert-rows tr[data-alert-id='{taken[0]}']")
    await expect(open_row.locator(".col-waiting")).to_contain_text("il y a 20 min")
    waited = taken_row.locator(".col-waiting")
    await expect(waited).to_contain_text(re.compile(r"a attendu 4 min · prise (à|le \d\d/\d\d à) \d\d:\d\d"))
    before = await waited.inner_text()

    await page.clock.fast_forward("10:00")  # the list's 30-second tick runs
    await expect(open_row.locator(".col-waiting")).to_contain_text("il y a 30 min")
    assert await waited.inner_text() == before
