"""The triage list in a real headless Chromium: how long an alert in hand waited; every active alert is shown,
with true counts; the red alarm after a lost connection follows the list; a red alert back to open says so; the
team figures' period limit is said in French.

Hundreds of alerts are written straight into the alerts table (scoring that many submissions would take
minutes); the red alarm counts beeps as Web Audio oscillators started, after one click has let the page play.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from playwright.async_api import Page, expect

from shared.testing.clock import paris_noon_today
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

ORANGE_NAUSEA = {"nausea.frequency": "2", "nausea.severity": "2"}
ORANGE_FATIGUE = {"fatigue.severity": "2", "fatigue.interference": "2"}
# Typed: a red reason has no grade, an orange one has, and the two lists together would otherwise be typed object.
REASONS: dict[str, list[dict[str, Any]]] = {
    "red": [{"code": "fever", "rule": "red.fever", "level": "red"}],
    "orange": [{"code": "nausea", "rule": "orange.grade2", "level": "orange", "grade": 2}],
}
# Two oscillators per beep: the count only says whether the page sounded.
BEEP_COUNTER = """
window.__beeps = 0;
const started = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return started.apply(this, args); };
"""
PARIS = ZoneInfo("Europe/Paris")
# French numbers group thousands with a narrow no-break space.
GROUP = "[\u202f\u00a0 ]"


async def dashboard(
    ward: Ward, staff_id: str = "ide-claire", *, fake_clock: bool = False, at: datetime | None = None
) -> Page:
    """A signed-in dashboard that counts its beeps, clicked once (as a nurse does) so that it may play sound. Its
    clock: a fake one the test moves (``fake_clock``), or one flowing from ``at``, as the service's set there."""
    token = ward.tokens.issue_staff_token(staff_id, {"nurse"})
    context = await ward.tab()
    await context.add_init_script(BEEP_COUNTER)
    await context.add_init_script(f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()})")
    page = await context.new_page()
    if fake_clock:
        await page.clock.install()
    elif at is not None:
        await page.clock.install(time=at)
        await page.clock.resume()
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
    """``count`` alerts of new patients, the first raised ``waited`` ago (by the service's clock), each next one a
    second later."""
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
            ward.clock() - waited,
        )
    return [row["id"] for row in inserted]


def staff(ward: Ward, staff_id: str = "ide-karim") -> dict[str, str]:
    return {"Authorization": f"Bearer {ward.tokens.issue_staff_token(staff_id, {'nurse'})}"}


async def active_alert_of(ward: Ward, patient: uuid.UUID) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=ward.url) as client:

        async def listed() -> Any:
            items = (await client.get("/v1/alerts?limit=500", headers=staff(ward))).json()["items"]
            return next((a for a in items if a["patient_id"] == str(patient)), None)

        found: dict[str, Any] = await eventually(listed)
    return found


async def beeps(page: Page) -> int:
    count: int = await page.evaluate("window.__beeps")
    return count


def summary(page: Page) -> Any:
    return page.locator("#alert-summary")


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


# --- answers that arrived late say when they were given ----------------------------------------------


async def test_answers_sent_days_late_say_when_they_were_given(ward: Ward) -> None:
    # A tablet offline over the weekend sends Saturday's answers now: the row says they are not today's.
    late = await ward.submit(RED_NAUSEA, authored=ward.clock() - timedelta(days=2, hours=1))
    fresh = await ward.submit(RED_NAUSEA)
    page = await ward.dashboard()
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    late_row = page.locator(f"#alert-rows tr[data-patient-id='{late}']")
    note = late_row.locator(".col-source .late-answers")
    await expect(note).to_have_text(re.compile(r"Réponses du \d\d/\d\d à \d\d:\d\d · arrivées 2 j 1 h plus tard"))
    await expect(page.locator(f"#alert-rows tr[data-patient-id='{fresh}'] .late-answers")).to_have_count(0)


# --- every active alert, true counts ----------------------------------------------------------------


async def test_more_than_100_active_alerts_are_all_shown_with_true_counts(ward: Ward) -> None:
    await insert_alerts(ward, 3, "red")
    await insert_alerts(ward, 104)
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(107, timeout=10_000)
    await expect(summary(page)).to_have_text("3 rouges · 104 oranges · 0 en retard")
    await expect(page.locator("#alert-cut")).to_be_hidden()
    await page.locator("label[for=level-red]").click()
    await expect(page.locator("#alert-shown")).to_have_text("(3 affichées sur 107)")


async def test_a_new_alert_still_appears_when_100_are_shown(ward: Ward) -> None:
    await insert_alerts(ward, 100, waited=timedelta(hours=2))
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(100, timeout=10_000)
    newest = await ward.submit(ORANGE_FATIGUE)
    await expect(page.locator(f"#alert-rows tr[data-patient-id='{newest}']")).to_have_count(1, timeout=5_000)
    await expect(summary(page)).to_have_text("0 rouge · 101 oranges · 0 en retard")


async def test_beyond_its_cap_the_list_says_how_many_alerts_it_does_not_show(ward: Ward) -> None:
    await insert_alerts(ward, 2003)
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(2000, timeout=20_000)
    await expect(summary(page)).to_have_text(re.compile(f"^0 rouge · 2{GROUP}003 oranges · 0 en retard$"))
    await expect(page.locator("#alert-cut")).to_have_text(
        re.compile(f"^3 alertes actives ne sont pas affichées : la liste montre les 2{GROUP}000 plus urgentes")
    )


# --- the red alarm after a lost connection follows the list ---------------------------------------------


async def cut_off(ward: Ward, page: Page) -> None:
    await page.context.set_offline(True)
    ward.alerting.extras["alert_feed"].disconnect_all()
    await expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "live", timeout=10_000)


async def reconnect(page: Page) -> None:
    await page.context.set_offline(False)
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=15_000)


async def test_a_red_alert_raised_while_cut_off_sounds_after_reconnecting(ward: Ward) -> None:
    page = await dashboard(ward)  # no event received yet: nothing to replay from
    assert await page.evaluate("sessionStorage.getItem('oncofollow.lastEventId')") is None
    await cut_off(ward, page)
    patient = await ward.submit(RED_NAUSEA)
    await active_alert_of(ward, patient)
    silent = await beeps(page)

    await reconnect(page)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await expect(page.locator("#red-banner")).to_be_visible(timeout=5_000)
    await expect(page.locator("#red-banner-text")).to_have_text(
        f"Nouvelle alerte ROUGE — Patient {str(patient)[:8]} : Nausées (grade 3)"
    )
    assert await beeps(page) > silent


async def test_a_red_alert_raised_and_closed_while_cut_off_is_no_alarm(ward: Ward) -> None:
    page = await dashboard(ward)
    await ward.submit(ORANGE_NAUSEA)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    seen = int(await page.evaluate("sessionStorage.getItem('oncofollow.lastEventId')"))
    await cut_off(ward, page)
    patient = await ward.submit(RED_NAUSEA)
    alert = await active_alert_of(ward, patient)
    async with httpx.AsyncClient(base_url=ward.url) as client:
        assert (await client.post(f"/v1/alerts/{alert['id']}/ack", headers=staff(ward))).status_code == 200
        closed = await client.post(
            f"/v1/alerts/{alert['id']}/resolve", json={"outcome": "phone_call"}, headers=staff(ward)
        )
        assert closed.status_code == 200
    silent = await beeps(page)

    await reconnect(page)
    # Raised, acknowledged, resolved: the page has received the three events it missed, and read the list.
    await page.wait_for_function(
        "seq => Number(sessionStorage.getItem('oncofollow.lastEventId')) >= seq", arg=seen + 3, timeout=5_000
    )
    await expect(page.locator("#last-updated")).not_to_be_empty()
    await expect(rows(page)).to_have_count(1)
    await expect(summary(page)).to_have_text("0 rouge · 1 orange · 0 en retard")
    await expect(page.locator("#red-banner")).to_be_hidden()
    assert await beeps(page) == silent


# --- a red alert back to open says so ------------------------------------------------------------------


async def test_a_red_alert_taken_then_reopened_by_a_new_report_says_it_came_back(ward: Ward) -> None:
    # Noon, for the service and the page: reopened just before midnight and drawn just after, the row said another
    # day's time ("Rouverte le …").
    noon = ward.clock.set(paris_noon_today())
    patient = await ward.submit(RED_NAUSEA)
    alert = await active_alert_of(ward, patient)
    page = await dashboard(ward, "ide-claire", at=noon)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await rows(page).first.locator("[data-action=ack]").click()
    await expect(rows(page).first).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    silent = await beeps(page)

    await ward.submit(RED_NAUSEA, patient=patient)
    await expect(rows(page).first).to_have_attribute("data-status", "open", timeout=5_000)
    # She had it herself: she is told so, not shown her own name as if a colleague's.
    await expect(page.locator("#red-banner-text")).to_have_text(
        "Alerte ROUGE rouverte : nouvelle réponse (vous l'aviez prise) — "
        f"Patient {str(patient)[:8]} : Nausées (grade 3)"
    )
    await expect(page.locator("#live-announcer")).to_contain_text("Alerte ROUGE rouverte : nouvelle réponse")
    assert await beeps(page) > silent
    rows_alert_id = await rows(page).first.get_attribute("data-alert-id")
    reopened = (await active_alert_of(ward, patient))["reopened_by_finding_at"]
    at = datetime.fromisoformat(reopened).astimezone(PARIS).strftime("%H:%M")
    assert at.startswith("12:"), f"reopened at {at}, not by the service's clock"
    await expect(rows(page).first.locator(".reopened-note")).to_have_text(f"Rouverte à {at} · vous l'aviez prise")
    assert rows_alert_id == alert["id"]


# --- the team figures' period ---------------------------------------------------------------------------


async def test_a_period_over_366_days_is_refused_saying_how_long_it_may_be(ward: Ward) -> None:
    page = await dashboard(ward)
    await page.locator(".tabs a[data-view=metrics]").click()
    await expect(page.locator("#metrics-content .tiles")).to_be_visible(timeout=5_000)
    await page.locator("#period-from").fill("2024-01-01")
    await page.locator("#period-form button[type=submit]").click()
    await expect(page.locator("#toasts")).to_contain_text("Choisissez une période de 366 jours au plus.")
    # The server's refusal, if it comes to that, reads the same.
    detail = await page.evaluate(
        "import(location.origin + '/dashboard/api.js')"
        ".then((m) => m.api.metrics('2024-01-01', '2025-06-30')).then(() => 'accepted', (e) => e.detail)"
    )
    assert detail == "Choisissez une période de 366 jours au plus."


async def test_the_figures_give_the_share_of_patient_weeks_with_an_alert_beside_the_trials_range(ward: Ward) -> None:
    await ward.submit()  # a patient answering this week, with a red alert
    page = await dashboard(ward)
    await expect(rows(page)).not_to_have_count(0, timeout=5_000)
    await page.locator(".tabs a[data-view=metrics]").click()
    share = page.locator("#metrics-content .tile", has_text="Semaines-patients avec une alerte")
    await expect(share.locator(".tile-value")).to_have_text(re.compile(r"^\d{1,3}\s%$"), timeout=5_000)
    await expect(share.locator(".tile-hint")).to_contain_text("Repère : 13 à 37 % dans les essais publiés.")
    await expect(share.locator("dt")).to_have_text(["Alertes par semaine-patient"])


async def test_a_relative_s_later_report_is_shown_as_theirs_without_relabelling_the_patient_s_red_one(
    ward: Ward,
) -> None:
    patient = await ward.submit({**RED_NAUSEA, "fatigue.severity": "2", "fatigue.interference": "2"})
    first = await active_alert_of(ward, patient)
    # Her daughter answers the next day: fatigue at the same grade, which merges into the open alert.
    token = ward.tokens.issue_device_token(patient, "tablet-browser")
    relative = questionnaire_response(
        {"fatigue.severity": "2", "fatigue.interference": "2"}, source="RelatedPerson/daughter"
    )
    response = await ward.tablet.post(
        "/v1/submissions",
        content=orjson.dumps(relative),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text

    async def merged() -> Any:
        alert = await active_alert_of(ward, patient)
        return alert if len(alert["submission_ids"]) == 2 else None

    alert = await eventually(merged)
    assert alert["id"] == first["id"] and alert["answered_by"] == "patient"  # the red nausea is the patient's
    page = await dashboard(ward)
    row = page.locator(f"#alert-rows [data-alert-id='{alert['id']}']")
    await expect(row.locator(".reason-source")).to_have_text([" · Un proche"], timeout=5_000)
    await expect(row.locator(".reason", has=page.locator(".reason-source"))).to_contain_text("Fatigue")


async def test_a_click_under_way_while_a_live_event_redraws_the_list_still_takes_the_alert(ward: Ward) -> None:
    # The list is drawn again at each live event, any nurse's. A row that had not changed was replaced all the same,
    # and a button replaced between the nurse's press and her release takes no click: « Je prends » did nothing.
    page = await dashboard(ward)
    await ward.submit(RED_NAUSEA)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    first = rows(page).first
    first_id = await first.get_attribute("data-alert-id")
    button = await first.locator("[data-action=ack]").element_handle()
    assert button is not None
    box = await button.bounding_box()
    assert box is not None

    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await ward.submit(RED_NAUSEA)  # another patient's alert: the list is drawn again while the button is pressed
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    assert await rows(page).first.get_attribute("data-alert-id") == first_id  # the older alert stays first
    assert await button.evaluate("(b) => b.isConnected"), "the unchanged row's button was replaced"
    await page.mouse.up()

    await expect(page.locator("#live-announcer")).to_contain_text("Alerte prise : ")
    async with httpx.AsyncClient(base_url=ward.url) as client:
        taken = await client.get(f"/v1/alerts/{first_id}", headers=staff(ward))
    assert taken.json()["status"] == "acknowledged"
    # A row that changed is drawn anew: the taken one's button is now « Clôturer ».
    await expect(page.locator(f"#alert-rows [data-alert-id='{first_id}'] [data-action=resolve]")).to_be_visible()
    assert not await button.evaluate("(b) => b.isConnected")
