"""The alert list on a ward PC zoomed in, in a real headless Chromium: a 1366×768 screen at 150 % leaves the page
about 911×430 CSS pixels (the browser's own bars take the rest), where the rows are cards. A nurse triaging must see
several alerts at once there, not one and a half: ``test-artifacts/dashboard-150.png`` shows what she sees. At 125 %
(about 1093×520) the rows stay a table, each as tall as its action (``test-artifacts/dashboard-125.png``); a row and a
card of each state (taken, overdue, reopened, late, phoned in…) are in ``dashboard-125-states.png`` and
``dashboard-150-states.png``, drawn in a Chromium that shows its scrollbar, as a ward PC's does."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, Page, expect

from shared.testing.clock import paris_noon_today
from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Ward, rows
from tests.browser.test_triage_list import BEEP_COUNTER, REASONS, insert_alerts

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
      waiting: part(".waiting-since, .waited"), due: part(".due"),
      action: part("[data-action=ack], [data-action=resolve]"),
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


@pytest.fixture(scope="module")
async def ward_pc(browser: Browser) -> AsyncIterator[Browser]:
    """Chromium showing its scrollbars, as a ward PC's browser does: headless, Playwright hides them
    (``--hide-scrollbars``), and a page then has the screen's whole width, where a nurse's has 15 px less once the
    list is longer than the screen."""
    launched = await browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, ignore_default_args=["--hide-scrollbars"]
    )
    yield launched
    await launched.close()


async def zoomed(
    ward: Ward,
    width: int,
    height: int,
    scale: float,
    init_script: str = "",
    browser: Browser | None = None,
    at: datetime | None = None,
) -> Page:
    """A nurse's dashboard on a ward PC's screen at a zoom: ``width``×``height`` CSS pixels at ``scale``, in
    ``browser`` (the ward's, without scrollbars, unless told); its clock flowing from ``at``, as the service's set
    there, if given."""
    token = ward.tokens.issue_staff_token("ide-claire", {"nurse"})
    context = await (browser or ward.browser).new_context(
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
    if at is not None:
        await page.clock.install(time=at)
        await page.clock.resume()
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


# An orange alert is due at the close of the next business day: one raised three days ago, on a Friday, is not due
# until Monday 18:00 (nor, after a public holiday, until the day after), so "three days" is overdue on no Monday
# morning. Nine days and 23 hours is past its deadline at any hour of any week, and its wait is the widest the page
# writes ("depuis 9 j 23 h").
OVERDUE_AT_ANY_HOUR = timedelta(days=9, hours=23, minutes=30)


def at_noon(ward: Ward) -> datetime:
    """The service's clock set to flow from noon today in Paris (the page's is given it too, ``zoomed(at=...)``):
    just after midnight, an alert raised 40 min ago was yesterday's, and its row said so ("hier à …"), or its deadline
    fell today (a time without a day); one raised just before midnight and drawn just after, the same."""
    return ward.clock.set(paris_noon_today())


async def test_at_125_percent_a_deadline_on_another_day_stays_on_one_line(ward: Ward) -> None:
    # An orange alert is due by the close of the next business day: its deadline names the day (raised today).
    noon = at_noon(ward)
    await insert_alerts(ward, 3, "orange", waited=timedelta(minutes=40))
    page = await zoomed(ward, 1093, 520, 1.25, at=noon)
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


async def insert_alert(
    ward: Ward,
    level: str,
    *,
    status: str = "open",
    waited: timedelta,
    taken_by: str | None = None,
    escalation: int = 0,
    answered_by: str = "patient",
    reopened_from: str | None = None,
    reasons: list[dict[str, Any]] | None = None,
) -> uuid.UUID:
    """One alert straight into the table: open, taken (``taken_by``, 7 min after it was raised), escalated, or sent
    back to open by a new answer 20 min after it was raised (or halfway through a shorter wait) while
    ``reopened_from`` had it."""
    raised = ward.clock() - waited
    async with ward.alerting.pool.acquire() as conn:
        found: uuid.UUID = await conn.fetchval(
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, updated_at, "
            "level_since, acknowledged_by, acknowledged_at, escalation_level, previously_acknowledged_by, "
            "reopened_by_finding_at) VALUES (gen_random_uuid(), gen_random_uuid(), $1, $2, $3, $8, 'test', $4, $4, "
            "$4, $5, $6, $7, $9, $10) RETURNING id",
            level,
            status,
            reasons or REASONS[level],
            raised,
            taken_by,
            raised + timedelta(minutes=7) if taken_by else None,
            escalation,
            answered_by,
            reopened_from,
            raised + min(timedelta(minutes=20), waited / 2) if reopened_from else None,
        )
    return found


TWO_REASONS = [*REASONS["red"], {"code": "nausea", "rule": "red.grade3", "level": "red", "grade": 3}]


async def insert_every_state(ward: Ward) -> dict[str, str]:
    """An alert in each state a row or a card can be in, by patient id: open (one reason, two), taken by her or by
    Karim Benali, overdue, phoned in, answered by a relative, reopened today or two days ago (while Karim had it), and
    raised by answers that arrived two days and an hour late. Each patient's next session is tomorrow."""
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO staff (id, display_name, last_seen_at) VALUES ('ide-karim', 'Karim Benali', now())"
        )
    states = {
        await insert_alert(ward, "orange", waited=timedelta(minutes=40)): "open",
        await insert_alert(ward, "red", waited=timedelta(minutes=5), reasons=TWO_REASONS): "open with two reasons",
        await insert_alert(
            ward, "orange", status="acknowledged", waited=timedelta(hours=1), taken_by="ide-claire"
        ): "mine",
        await insert_alert(
            ward, "orange", status="acknowledged", waited=timedelta(hours=1), taken_by="ide-karim"
        ): "karim's",
        await insert_alert(ward, "orange", waited=OVERDUE_AT_ANY_HOUR, escalation=1): "overdue",
        await insert_alert(ward, "orange", waited=timedelta(minutes=30), answered_by="nurse_phone"): "by phone",
        await insert_alert(ward, "orange", waited=timedelta(minutes=30), answered_by="relative"): "by a relative",
        # Raised and reopened today: "Rouverte à 16:52".
        await insert_alert(ward, "red", waited=timedelta(minutes=30), reopened_from="ide-karim"): "reopened",
        # Reopened 47 h 40 min ago, whatever the hour: "Rouverte le 23/11 à 02:06", another day's.
        await insert_alert(ward, "red", waited=timedelta(days=2), reopened_from="ide-karim"): "reopened another day",
    }
    async with ward.alerting.pool.acquire() as conn:
        by_patient = {
            str(row["patient_id"]): states[row["id"]]
            for row in await conn.fetch("SELECT id, patient_id FROM alerts WHERE id = ANY($1)", list(states))
        }
    # A tablet offline over the weekend sends its answers now: they say they came late.
    by_patient[str(await ward.submit(RED_NAUSEA, authored=ward.clock() - timedelta(days=2, hours=1)))] = "late"
    # Every patient's next session tomorrow: "Chimio le 25/11 (demain)", the widest the column gets.
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sessions (session_id, patient_id, scheduled_for) "
            "SELECT gen_random_uuid(), patient, now() + interval '1 day' FROM unnest($1::uuid[]) AS patient",
            list(by_patient),
        )
    return by_patient


# Each row's height, its action's, and what its action's cell adds around it (padding, the row's rule).
ROW_HEIGHTS = """(rows) => rows.map((row) => {
  const action = row.querySelector("[data-action=ack], [data-action=resolve]");
  const cell = getComputedStyle(action.closest("td"));
  const around = ["paddingTop", "paddingBottom", "borderTopWidth", "borderBottomWidth"]
    .reduce((sum, side) => sum + parseFloat(cell[side]), 0);
  return { patient: row.dataset.patientId, height: row.getBoundingClientRect().height, action: action.offsetHeight,
           around, text: row.textContent };
})"""

# What of `selector` in its row is on the screen: its text's lines (one box per line), whether it lies whole inside
# its cell, and its title. Its text may be part of a longer one, the rest of it read by a screen reader only.
SHOWN = """(e) => {
  const range = document.createRange();
  range.selectNodeContents(e);
  const boxes = [...range.getClientRects()].filter((r) => r.width > 1);
  const cell = e.closest("td").getBoundingClientRect();
  const inside = boxes.every((r) => r.left >= cell.left - 0.5 && r.right <= cell.right + 0.5);
  const note = e.closest("[title]");
  return { lines: new Set(boxes.map((r) => Math.round(r.top))).size, inside, title: note && note.title,
           uncut: e.scrollWidth <= e.clientWidth + 1 };
}"""

WARD_PC_SCROLL = """() => ({ bar: innerWidth - document.documentElement.clientWidth,
  sideways: document.documentElement.scrollWidth - document.documentElement.clientWidth })"""


async def test_at_125_percent_a_row_is_as_tall_as_its_action_whatever_its_state(ward: Ward, ward_pc: Browser) -> None:
    noon = at_noon(ward)
    states = await insert_every_state(ward)
    page = await zoomed(ward, 1093, 520, 1.25, browser=ward_pc, at=noon)
    await expect(rows(page)).to_have_count(len(states), timeout=10_000)
    # The seven columns fit the screen: "Prise en charge" was partly off it, 38 px to scroll sideways. The browser's
    # scrollbar is there, as on the ward's PC, and takes its 15 px of the width (innerWidth counts them).
    scroll = await page.evaluate(WARD_PC_SCROLL)
    assert scroll["bar"] >= 10 and scroll["sideways"] <= 0, scroll
    for row in await rows(page).evaluate_all(ROW_HEIGHTS):
        state = states[row["patient"]]
        # "Prise par K. Benali" beside "Clôturer", "EN RETARD" in the deadline's line, "Infirmier·ère (par téléphone)"
        # on two lines, "Rouverte à …" beside "Je prends", late answers' "Du 23/11 à 09:40": no line under the others
        # (a taken row was 85 px, an overdue one 100, a phoned-in one 77, a reopened one 143, one reopened another
        # day 66, a late one 117, where an open one is 61).
        assert row["height"] <= row["action"] + row["around"] + 2, (state, row)
        # Cut on the screen at most: every fact is still in the row's text, what a screen reader reads.
        if state == "karim's":
            assert "Prise par Karim Benali" in row["text"], row
        if state == "overdue":
            # The service's escalation check ran its start-up round before the alert was written (the ward is
            # served once it has), and runs again in an hour: the level is the one written.
            assert re.search(r"échéance dépassée \(\d\d/\d\d \d\d:\d\d\)", row["text"]), row
            assert re.search(r"EN RETARD · niveau 1", row["text"]), row
        if state.startswith("reopened"):
            when = r"à \d\d:\d\d" if state == "reopened" else r"le \d\d/\d\d à \d\d:\d\d"
            assert re.search(rf"Rouverte {when} · était prise par Karim Benali", row["text"]), row
            note = page.locator(f"#alert-rows tr[data-patient-id='{row['patient']}'] .reopened-note")
            # Its time whole on the screen, never "23:3…", and with its day on one line ("23/11 02:06"); its title
            # says it all.
            time = await note.locator(".reopened-time").evaluate(SHOWN)
            assert time["lines"] == 1 and time["inside"], (state, time)
            assert re.fullmatch(rf"Rouverte {when} · était prise par Karim Benali", time["title"]), (state, time)
            if state == "reopened":
                assert re.fullmatch(r"Rouverte à \d\d:\d\d", await note.locator(".reopened-when").inner_text()), row
            # Nothing of the note clamped away under the lines it shows.
            assert await note.evaluate("(e) => e.scrollHeight <= e.clientHeight + 1"), (state, row)
        if state == "late":
            sentence = r"Réponses du \d\d/\d\d à \d\d:\d\d · arrivées 2 j 1 h plus tard"
            assert re.search(sentence, row["text"]), row
            # When they were given, on one line under "Patient·e"; all of it, and what to do, in its title.
            given = page.locator(f"#alert-rows tr[data-patient-id='{row['patient']}'] .late-given")
            await expect(given).to_have_text(re.compile(r"^du \d\d/\d\d à \d\d:\d\d$"))
            shown = await given.evaluate(SHOWN)
            assert shown["lines"] == 1 and shown["inside"] and shown["uncut"], shown
            assert re.fullmatch(rf"{sentence}\. Vérifiez avec le patient comment il va maintenant\.", shown["title"]), (
                shown
            )
    # What she sees of the list, its scrollbar at the right (a full-page capture would drop it, and the page's
    # right edge with it).
    await page.evaluate("document.querySelector('.alerts-table').scrollIntoView()")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-125-states.png"))
    taken = page.locator(".taken-by", has_text="Karim Benali")
    await expect(taken).to_have_attribute("title", "Prise par Karim Benali")
    # What she sees beside "Clôturer": the first name an initial.
    await expect(taken.locator("[aria-hidden=true]")).to_have_text("Prise par K. Benali")
    await expect(page.locator(".taken-by-me [aria-hidden=true]")).to_have_text("Prise par vous")
    # Each badge's title says its past deadline (the one reopened two days ago is overdue too, unless a weekend
    # stopped its clock).
    badges = await page.locator(".overdue-badge").all()
    assert badges
    for badge in badges:
        await expect(badge).to_have_attribute("title", re.compile(r"^échéance dépassée \("))


async def test_at_150_percent_a_card_is_three_lines_high_whatever_its_state(ward: Ward, ward_pc: Browser) -> None:
    noon = at_noon(ward)
    states = await insert_every_state(ward)
    page = await zoomed(ward, 911, 430, 1.5, browser=ward_pc, at=noon)
    await expect(rows(page)).to_have_count(len(states), timeout=10_000)
    shown = await layout(page)
    assert not (await page.evaluate(WARD_PC_SCROLL))["sideways"] > 0
    patients = await rows(page).evaluate_all("(rows) => rows.map((row) => row.dataset.patientId)")
    for patient, card in zip(patients, shown["cards"], strict=True):
        state = states[patient]
        height = card["bottom"] - card["top"]
        # Three lines: the level, the patient and the 44-pixel action; the reasons and who answered; the wait, its
        # deadline and the next session (101 px, 102 with "EN RETARD"). "Rouverte à …" on a line of its own, or a
        # line of details too long for one ("EN RETARD", "Infirmier·ère (par téléphone)", "Un proche", late answers)
        # made cards of 122 to 148 px, a whole card fewer on the screen.
        assert height <= 102, (state, height, card)
        # Nothing she triages on gives way for it: the level, the patient, the reasons, the wait (and the deadline
        # of an alert nobody has), the action.
        assert all(card[part] and card[part]["text"] for part in ("level", "patient", "reasons", "waiting")), card
        if state not in ("mine", "karim's"):
            assert card["due"] and card["due"]["text"].startswith("échéance"), (state, card)
        assert card["action"] and card["action"]["height"] >= 44, (state, card)
    # What she sees of the list, its scrollbar at the right (a full-page capture would drop it, and the page's
    # right edge with it).
    await page.evaluate("document.querySelector('.alerts-table').scrollIntoView()")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-150-states.png"))


# Four findings whose French labels are long, one answered by a relative, two with a note: "Incapable de manger ou de
# boire (24 h)", "Engourdissements, fourmillements (grade 2) Aggravation depuis le dernier questionnaire"…
LONG_REASONS = [
    {"code": "unable_to_eat_or_drink", "rule": "red.unable_to_eat_or_drink", "level": "red"},
    {"code": "hand_foot_syndrome", "rule": "red.very_severe", "level": "red", "grade": 3},
    {"code": "numbness_tingling", "rule": "orange.worsened", "level": "orange", "grade": 2},
    {"code": "mouth_sores", "rule": "red.grade3", "level": "red", "grade": 3, "answered_by": "relative"},
]
LONG_REASON_TEXTS = [
    "Incapable de manger ou de boire (24 h)",
    "Syndrome main-pied (grade 3)",
    "Intensité déclarée « très fort » (la plus haute)",
    "Engourdissements, fourmillements (grade 2)",
    "Aggravation depuis le dernier questionnaire",
    "Plaies bouche / gorge (grade 3)",
]


async def insert_long_and_late(ward: Ward) -> str:
    """A red alert raised by answers that arrived two days and an hour late, its reasons four long findings."""
    patient = await ward.submit(RED_NAUSEA, authored=ward.clock() - timedelta(days=2, hours=1))

    async def raised() -> bool:
        async with ward.alerting.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM alerts WHERE patient_id = $1", patient))

    await eventually(raised)
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute("UPDATE alerts SET reasons = $1 WHERE patient_id = $2", LONG_REASONS, patient)
    return str(patient)


# The reasons' list in a row or a card: its lines on the screen, whether it is cut, its title; and the late answers'
# note, whether it is on the screen whole.
LONG_CARD = """(row) => {
  // The lines shown: text boxes within the list's box, a box under all those before it starting a line (a note's
  // smaller text sits lower on the same line).
  const lines = (e) => {
    const range = document.createRange();
    range.selectNodeContents(e);
    const bottom = e.getBoundingClientRect().bottom + 0.5;
    const boxes = [...range.getClientRects()].filter((r) => r.width > 1 && r.height > 1 && r.bottom <= bottom)
      .sort((a, b) => a.top - b.top);
    let count = 0, end = -Infinity;
    for (const r of boxes) {
      if (r.top >= end - 1) count += 1;
      end = Math.max(end, r.bottom);
    }
    return count;
  };
  const reasons = row.querySelector(".reasons");
  const given = row.querySelector(".late-given");
  const box = row.getBoundingClientRect(), seen = given.getBoundingClientRect();
  return { height: box.height, lines: lines(reasons), cut: reasons.scrollWidth > reasons.clientWidth + 1
             || reasons.scrollHeight > reasons.clientHeight + 1,
           title: reasons.title, text: row.textContent, given: given.innerText.trim(),
           givenShown: seen.width > 0 && seen.left >= box.left && seen.right <= box.right + 0.5
             && given.scrollWidth <= given.clientWidth + 1,
           late: row.querySelector(".late-answers").title };
}"""


async def measured_in_the_list(row: Any) -> dict[str, Any] | None:
    """LONG_CARD of the row as drawn: a redraw (the live stream's news, the wait's tick) may replace the row between
    finding it and measuring it, and a row no longer in the page measures 0 px."""
    shown: dict[str, Any] = await row.evaluate(LONG_CARD)
    return shown if shown["height"] > 0 else None


async def test_a_card_of_long_reasons_and_late_answers_keeps_its_height_at_150_and_125_percent(
    ward: Ward, ward_pc: Browser
) -> None:
    patient = await insert_long_and_late(ward)
    late = (
        r"Réponses du \d\d/\d\d à \d\d:\d\d · arrivées 2 j 1 h plus tard\. "
        r"Vérifiez avec le patient comment il va maintenant\."
    )
    for width, height, scale, tallest in ((911, 430, 1.5, 102), (1093, 520, 1.25, None)):
        page = await zoomed(ward, width, height, scale, browser=ward_pc)
        row = page.locator(f"#alert-rows tr[data-patient-id='{patient}']")
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(row.locator(".reasons")).to_contain_text("Plaies bouche / gorge")
        shown = await eventually(functools.partial(measured_in_the_list, row))
        if tallest:
            # Three lines, as every card: the reasons' line cut with "…" (a fourth line took the late answers, or the
            # reasons' end, a whole card fewer on the screen).
            assert shown["height"] <= tallest and shown["lines"] == 1, shown
        else:
            # As tall as "Je prends", as every row (61 px): the reasons cut after their second line.
            heights = (await rows(page).evaluate_all(ROW_HEIGHTS))[0]
            assert heights["height"] <= heights["action"] + heights["around"] + 2, (heights, shown)
            assert shown["lines"] <= 2, shown
        assert shown["cut"], shown
        # What the screen leaves out is whole in the list's title and in what a screen reader reads.
        for text in LONG_REASON_TEXTS:
            assert text in shown["title"] and text in shown["text"], (text, shown)
        assert "Un proche" in shown["title"], shown
        # The late answers stay in sight in their short form, "Du 23/11 à 09:40", all of it in their title.
        assert re.fullmatch(r"[Dd]u \d\d/\d\d à \d\d:\d\d", shown["given"]) and shown["givenShown"], shown
        assert re.fullmatch(late, shown["late"]), shown
        ARTIFACTS.mkdir(exist_ok=True)
        await row.screenshot(path=str(ARTIFACTS / f"dashboard-{round(scale * 100)}-long-reasons.png"))


async def test_on_a_wide_tall_screen_every_reason_is_in_the_row_and_on_a_small_one_two_lines(
    ward: Ward, ward_pc: Browser
) -> None:
    """The two-line limit on reasons keeps every row as tall as its action on the ward PC at 125 %; on a 1920×1080
    screen at 100 % it hid a third reason behind "…", with room to spare."""
    patient = await insert_long_and_late(ward)
    for width, height, whole in ((1920, 1080, True), (1600, 900, True), (1366, 768, False)):
        page = await zoomed(ward, width, height, 1, browser=ward_pc)
        row = page.locator(f"#alert-rows tr[data-patient-id='{patient}']")
        await expect(row.locator(".reasons")).to_contain_text("Plaies bouche / gorge", timeout=10_000)
        shown = await eventually(functools.partial(measured_in_the_list, row))
        if whole:
            assert not shown["cut"] and shown["lines"] >= len(LONG_REASONS), (width, shown)  # a line each
        else:
            assert shown["cut"] and shown["lines"] <= 2, (width, shown)
        await page.context.close()


# The red banner's every form, in the words the list gives it (cues.js) and drawn as the list draws it (list.js), with
# three reasons and a colleague's long name: its longest.
BANNER_FORMS = """async () => {
  const { cueParts } = await import("./cues.js");
  const { showBannerText } = await import("./list.js");
  const reasons = [{ code: "fever", rule: "red.fever", level: "red" },
                   { code: "nausea", rule: "red.grade3", level: "red", grade: 3 },
                   { code: "unable_to_eat_or_drink", rule: "red.unable_to_eat_or_drink", level: "red" }];
  const alert = { level: "red", status: "open", patient_id: "5f4e6a8b-0000-4000-8000-000000000000", reasons,
                  previously_acknowledged_by: "ide-karim",
                  previously_acknowledged_by_name: "Marie-Christine Dufresne" };
  const taken = { level: "orange", status: "acknowledged", acknowledged_by: "ide-karim" };
  const forms = [["raised", null, "ide-claire"], ["level-rose", taken, "ide-claire"], ["reopened", taken, "ide-claire"],
                 ["reopened", taken, "ide-karim"]];
  const banner = document.getElementById("red-banner");
  const text = document.getElementById("red-banner-text");
  const lines = (e) => new Set([...e.children].filter((c) => c.checkVisibility())
    .map((c) => { const r = c.getBoundingClientRect(); return Math.round((r.top + r.bottom) / 2); })).size;
  return forms.map(([cause, previous, me]) => {
    showBannerText(text, cueParts(cause, alert, previous, 3, me));
    const seen = (selector) => { const e = text.querySelector(selector); if (!e) return null;
      const r = e.getBoundingClientRect(), box = text.getBoundingClientRect();
      return r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && e.scrollWidth <= e.clientWidth; };
    return { text: text.textContent, title: text.title, lines: lines(banner),
             height: banner.getBoundingClientRect().height, head: seen(".cue-head"), patient: seen(".cue-patient"),
             buttons: ["red-banner-show", "red-banner-close"]
               .every((id) => document.getElementById(id).getBoundingClientRect().right <= innerWidth) };
  });
}"""


async def test_at_150_and_125_percent_the_red_banner_is_one_line_in_each_of_its_forms(ward: Ward) -> None:
    at_150 = await zoomed(ward, 911, 430, 1.5, BEEP_COUNTER)
    at_125 = await zoomed(ward, 1093, 520, 1.25, BEEP_COUNTER)
    await ward.submit()
    for page in (at_150, at_125):
        await expect(page.locator("#red-banner")).to_be_visible(timeout=5_000)
        await expect(page.locator("#sound-blocked")).to_be_visible()
        # The banner as the list leaves it (its title says its text whole), then each longer form in it.
        text = await page.locator("#red-banner-text").text_content()
        await expect(page.locator("#red-banner-text")).to_have_attribute("title", text or "")
        forms = await page.evaluate(BANNER_FORMS)
        assert any("(vous l'aviez prise)" in form["text"] for form in forms), forms
        for form in forms:
            # One line (two took 72 px at 150 %, hiding an alert), "Voir" and "×" on the screen; what happened and
            # the patient in full sight; the text whole in the page, for a screen reader, and in its title.
            assert form["lines"] == 1 and form["height"] <= 44 and form["buttons"], form
            assert form["head"] and form["patient"], form
            assert form["title"] == form["text"] and "Patient 5f4e6a8b : Fièvre ≥ 38 °C, " in form["text"], form
    ARTIFACTS.mkdir(exist_ok=True)
    await at_150.screenshot(path=str(ARTIFACTS / "dashboard-150-banner.png"))
