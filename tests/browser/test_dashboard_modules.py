"""Unit tests of the nurse dashboard's browser logic (services/alerting/dashboard/*.js), in the real headless Chromium
with the runner of es_modules.py: French dates, times, durations and waits (format.js), the rows' texts and the list's
counts (alerts.js), what a refreshed list rings, announces and says (cues.js), the live stream's position and
reconnection (stream.js), the team figures' period and tiles (metrics.js), the patient view's texts (patient.js),
and the page's own decisions apart from its DOM (session.js, views.js, live.js: their factories touch nothing until
app.js calls them, so importing them here is safe).

The page is an English browser on Kiritimati's clock (UTC+14, the day changes there ten to thirteen hours before
Paris): every text must still be French and on Paris time, whatever the computer is set to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.es_modules import modules_page, run

pytestmark = pytest.mark.browser

FORMAT = "/dashboard/format.js"
ALERTS = "/dashboard/alerts.js"
CUES = "/dashboard/cues.js"
STREAM = "/dashboard/stream.js"
METRICS = "/dashboard/metrics.js"

NNBSP = "\u202f"  # between French digit groups (Intl, fr-FR)
NBSP = "\u00a0"  # before "%"

REFERENCE = {
    "terms": {"nausea": "Nausées", "ecog": "État général (ECOG)", "diarrhea": "Diarrhée"},
    "red_flags": {"fever": "Fièvre ≥ 38 °C"},
    "rules": {
        "red.fever": "Fièvre",
        "red.very_severe": "Symptôme très sévère",
        "orange.worsened": "Aggravation depuis la dernière réponse",
    },
    "outcomes": {"phone_call": "Appel téléphonique"},
    "sources": {"patient": "Patient·e", "relative": "Un proche"},
    "levels": {"red": "ROUGE", "orange": "ORANGE"},
}


@pytest.fixture(scope="module")
async def dashboard(browser: Browser) -> AsyncIterator[Page]:
    async with modules_page(browser, locale="en-US", timezone_id="Pacific/Kiritimati") as page:
        # The labels GET /v1/reference gives; format.js holds them for every module of the page.
        await run(page, FORMAT, "m.setReference(arg)", REFERENCE)
        yield page


# --- format.js: Paris days and times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        ("2026-11-23T22:59:59Z", "2026-11-23"),  # 23:59:59 in Paris (UTC+1)
        ("2026-11-23T23:00:00Z", "2026-11-24"),  # midnight
        ("2026-07-01T21:59:59Z", "2026-07-01"),  # summer time (UTC+2)
        ("2026-07-01T22:00:00Z", "2026-07-02"),
        ("2026-12-31T23:00:00Z", "2027-01-01"),
    ],
)
async def test_paris_day(dashboard: Page, instant: str, day: str) -> None:
    assert await run(dashboard, FORMAT, "m.parisDay(new Date(arg))", instant) == day


@pytest.mark.parametrize(
    ("day", "days", "expected"),
    [
        ("2026-03-28", 1, "2026-03-29"),  # the night the clocks go forward
        ("2026-10-25", 1, "2026-10-26"),  # and back
        ("2026-03-01", -1, "2026-02-28"),
        ("2028-02-28", 1, "2028-02-29"),
        ("2026-12-31", 1, "2027-01-01"),
        ("2026-11-24", -29, "2026-10-26"),
        ("2026-11-24", 0, "2026-11-24"),
    ],
)
async def test_add_days(dashboard: Page, day: str, days: int, expected: str) -> None:
    assert await run(dashboard, FORMAT, "m.addDays(arg.day, arg.days)", {"day": day, "days": days}) == expected


@pytest.mark.parametrize(
    ("expression", "value", "text"),
    [
        ("formatTime", "2026-11-24T15:50:00Z", "16:50"),
        ("formatTime", "2026-11-24T23:05:00Z", "00:05"),  # not 24:05
        # The clocks go forward at 02:00: 01:59 then 03:00.
        ("formatTime", "2026-03-29T00:59:59Z", "01:59"),
        ("formatTime", "2026-03-29T01:00:00Z", "03:00"),
        # And back at 03:00: 02:30 comes twice.
        ("formatTime", "2026-10-25T00:30:00Z", "02:30"),
        ("formatTime", "2026-10-25T01:30:00Z", "02:30"),
        ("formatTime", "2026-10-25T02:30:00Z", "03:30"),
        ("formatTime", None, "—"),
        ("formatTime", "pas une date", "—"),
        ("formatClock", "2026-11-24T07:15:09Z", "08:15:09"),
        ("formatDay", "2026-11-23T23:30:00Z", "24/11"),  # already the 24th in Paris
        ("formatDay", "2026-07-01T22:30:00Z", "02/07"),
        ("formatDayYear", "2026-12-31T23:30:00Z", "01/01/2027"),
        ("formatDateTime", "2026-11-24T07:15:00Z", "24/11/2026 à 08:15"),
        ("formatDateTime", "", "—"),
        ("formatIsoDay", "2026-11-24", "24/11/2026"),  # a calendar date: no time zone shift
        ("formatIsoDay", "2026-11-24T23:30:00Z", "24/11/2026"),
        ("formatIsoDay", None, "—"),
        ("formatIsoDay", "bientôt", "bientôt"),
    ],
)
async def test_dates_and_times_in_paris(dashboard: Page, expression: str, value: str | None, text: str) -> None:
    assert await run(dashboard, FORMAT, f"m.{expression}(arg)", value) == text


NOW = "2026-11-24T10:00:00Z"  # 11:00 in Paris, a Tuesday


@pytest.mark.parametrize(
    ("value", "now", "text"),
    [
        ("2026-11-24T07:32:00Z", NOW, "08:32"),
        ("2026-11-23T23:00:00Z", NOW, "00:00"),  # today's first minute
        ("2026-11-23T22:59:00Z", NOW, "hier 23:59"),
        ("2026-11-22T23:00:00Z", NOW, "hier 00:00"),
        ("2026-11-22T22:59:00Z", NOW, "dim. 22/11 23:59"),
        ("2026-11-25T06:00:00Z", NOW, "demain 07:00"),
        ("2026-11-20T10:00:00Z", NOW, "ven. 20/11 11:00"),
        # A minute before midnight in Paris: a minute later is tomorrow.
        ("2026-11-24T23:01:00Z", "2026-11-24T22:59:00Z", "demain 00:01"),
        # Around the night the clocks go forward (a 23-hour day).
        ("2026-03-28T22:30:00Z", "2026-03-29T10:00:00Z", "hier 23:30"),
        ("2026-03-28T23:30:00Z", "2026-03-29T10:00:00Z", "00:30"),
        (None, NOW, "—"),
    ],
)
async def test_format_when(dashboard: Page, value: str | None, now: str, text: str) -> None:
    assert await run(dashboard, FORMAT, "m.formatWhen(arg.value, new Date(arg.now))", {"value": value, "now": now}) == (
        text
    )


@pytest.mark.parametrize(
    ("value", "now", "days"),
    [
        ("2026-11-24T23:30:00Z", "2026-11-24T22:30:00Z", 1),  # an hour later, but after midnight in Paris
        ("2026-11-24T22:30:00Z", "2026-11-24T08:00:00Z", 0),
        ("2026-11-29T08:00:00Z", NOW, 5),
        ("2026-11-21T08:00:00Z", NOW, -3),
        ("2026-03-29T10:00:00Z", "2026-03-28T12:00:00Z", 1),  # a 23-hour day
        ("2026-10-25T22:30:00Z", "2026-10-24T22:30:00Z", 0),  # a 25-hour day: 00:30 and 23:30 the same day
        (None, NOW, None),
    ],
)
async def test_days_from_today(dashboard: Page, value: str | None, now: str, days: int | None) -> None:
    assert (
        await run(dashboard, FORMAT, "m.daysFromToday(arg.value, new Date(arg.now))", {"value": value, "now": now})
        == days
    )


# --- format.js: durations, waits, numbers, plurals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "< 1 min"),
        (59.4, "< 1 min"),
        (59.5, "1 min"),  # rounded to the second first
        (60, "1 min"),
        (119, "1 min"),
        (3599, "59 min"),
        (3600, "1 h 00"),
        (11_100, "3 h 05"),
        (86_399, "23 h 59"),
        (86_400, "1 j"),
        (90_000, "1 j 1 h"),
        (90_059 + 3540, "1 j 1 h"),  # minutes are dropped past a day
        (187_200, "2 j 4 h"),
        (-5, "< 1 min"),
        ("120", "2 min"),
        (None, "—"),
        ("x", "—"),
    ],
)
async def test_format_duration(dashboard: Page, seconds: Any, text: str) -> None:
    assert await run(dashboard, FORMAT, "m.formatDuration(arg)", seconds) == text


@pytest.mark.parametrize(
    ("seconds_ago", "text"),
    [
        (0, "à l'instant"),
        (59.999, "à l'instant"),
        (60, "il y a 1 min"),
        (119.9, "il y a 1 min"),
        (3599, "il y a 59 min"),
        (3600, "depuis 1 h 00"),
        (11_100, "depuis 3 h 05"),
        (2 * 86_400 + 3600, "depuis 2 j 1 h"),
        (-120, "à l'instant"),  # a clock a little ahead: never "il y a -2 min"
    ],
)
async def test_format_waiting(dashboard: Page, seconds_ago: float, text: str) -> None:
    assert (
        await run(
            dashboard,
            FORMAT,
            "m.formatWaiting(new Date(Date.parse(arg.now) - arg.ago * 1000), new Date(arg.now))",
            {"now": NOW, "ago": seconds_ago},
        )
        == text
    )
    assert await run(dashboard, FORMAT, "m.formatWaiting(null)") == "—"


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        # French: 0 and 1 take the singular.
        ("m.plural(0, 'rouge', 'rouges')", "0 rouge"),
        ("m.plural(1, 'rouge', 'rouges')", "1 rouge"),
        ("m.plural(2, 'rouge', 'rouges')", "2 rouges"),
        ("m.plural(1234, 'rouge', 'rouges')", f"1{NNBSP}234 rouges"),
        ("m.formatInteger(1234567)", f"1{NNBSP}234{NNBSP}567"),
        ("m.formatInteger(0)", "0"),
        ("m.formatInteger(null)", "—"),
        ("m.formatDecimal(0.5)", "0,50"),
        ("m.formatDecimal(1.234)", "1,23"),
        ("m.formatDecimal(undefined)", "—"),
        ("m.formatPercent(0.25)", f"25{NBSP}%"),
        ("m.formatPercent(0)", f"0{NBSP}%"),
        ("m.formatPercent(null)", "—"),
    ],
)
async def test_numbers_and_plurals(dashboard: Page, expression: str, text: str) -> None:
    assert await run(dashboard, FORMAT, expression) == text


# --- format.js: labels and reasons ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("m.levelLabel('red')", "ROUGE"),
        ("m.levelLabel('purple')", "PURPLE"),  # a code the reference does not know: the code
        ("m.levelLabel(null)", ""),
        ("m.termLabel('nausea')", "Nausées"),
        ("m.termLabel('fever')", "Fièvre ≥ 38 °C"),  # a red flag
        ("m.termLabel('constructor')", "constructor"),  # not Object's own properties
        ("m.termLabel('__proto__')", "__proto__"),
        ("m.sourceLabel('relative')", "Un proche"),
        ("m.sourceLabel(null)", "—"),
        ("m.outcomeLabel('phone_call')", "Appel téléphonique"),
        ("m.outcomeLabel('new_outcome')", "new_outcome"),
        ("m.ruleLabel(undefined)", ""),
        ("m.patientShortId('1b4e28ba-2fa1-11d2-883f-0016d3cca427')", "Patient 1b4e28ba"),
    ],
)
async def test_labels(dashboard: Page, expression: str, text: str) -> None:
    assert await run(dashboard, FORMAT, expression) == text


@pytest.mark.parametrize(
    ("reason", "text", "note"),
    [
        ({"code": "nausea", "grade": 3, "rule": "red.grade3", "level": "red"}, "Nausées (grade 3)", None),
        ({"code": "nausea", "grade": 0}, "Nausées (grade 0)", None),
        ({"code": "ecog", "grade": 3}, "État général (ECOG) : 3", None),
        ({"code": "fever", "rule": "red.fever", "grade": None}, "Fièvre ≥ 38 °C", None),
        ({"code": "dysgeusia", "grade": 2}, "dysgeusia (grade 2)", None),  # unknown code: the code
        ({"code": "unknown", "rule": "red.fever"}, "Fièvre", None),  # else the rule's label
        ({"rule": "r"}, "r", None),
        (
            {"code": "diarrhea", "grade": 3, "rule": "orange.worsened"},
            "Diarrhée (grade 3)",
            "Aggravation depuis la dernière réponse",
        ),
        ({"code": "nausea", "grade": 4, "rule": "red.very_severe"}, "Nausées (grade 4)", "Symptôme très sévère"),
        (None, "", None),
        ("texte", "texte", None),
    ],
)
async def test_reason_text_and_note(dashboard: Page, reason: Any, text: str, note: str | None) -> None:
    assert await run(dashboard, FORMAT, "[m.reasonText(arg), m.reasonNote(arg)]", reason) == [text, note]


@pytest.mark.parametrize(
    ("alert", "name"),
    [
        ({"acknowledged_by": "ide-claire", "acknowledged_by_name": "Claire Martin"}, "Claire Martin"),
        ({"acknowledged_by": "ide-claire", "acknowledged_by_name": None}, "ide-claire"),
        ({"acknowledged_by": None}, None),
        (None, None),
    ],
)
async def test_staff_name(dashboard: Page, alert: dict[str, Any] | None, name: str | None) -> None:
    assert await run(dashboard, FORMAT, "m.staffName(arg, 'acknowledged_by')", alert) == name


async def test_a_reference_that_is_missing_or_malformed_shows_the_codes(dashboard: Page) -> None:
    labels = await run(
        dashboard,
        FORMAT,
        """(() => {
          const saved = m.getReference();
          try {
            m.setReference(null);
            const none = [m.levelLabel("red"), m.reasonText({ code: "nausea", grade: 3 })];
            m.setReference({ terms: "Nausées", levels: { red: 3 }, outcomes: [] });
            return [...none, m.levelLabel("red"), m.termLabel("nausea"), m.outcomeLabel("phone_call")];
          } finally { m.setReference(saved); }
        })()""",
    )
    assert labels == ["RED", "nausea (grade 3)", "RED", "nausea", "phone_call"]


# --- alerts.js: what a row says -----------------------------------------------------------------------------------

ALERT_NOW = "2026-11-24T15:50:00Z"  # 16:50 in Paris


@pytest.mark.parametrize(
    ("session", "now", "expected"),
    [
        ("2026-11-24T13:00:00Z", NOW, {"text": "Chimio le 24/11", "when": "aujourd'hui", "soon": True}),
        ("2026-11-25T07:00:00Z", NOW, {"text": "Chimio le 25/11", "when": "demain", "soon": True}),
        ("2026-11-26T07:00:00Z", NOW, {"text": "Chimio le 26/11", "when": "après-demain", "soon": True}),
        ("2026-11-27T07:00:00Z", NOW, {"text": "Chimio le 27/11", "when": None, "soon": False}),
        # At 23:30 in Paris, a session at 08:00 is tomorrow's (Kiritimati's computer thinks the same day).
        ("2026-11-25T07:00:00Z", "2026-11-24T22:30:00Z", {"text": "Chimio le 25/11", "when": "demain", "soon": True}),
        (
            "2026-03-30T06:00:00Z",
            "2026-03-28T12:00:00Z",
            {"text": "Chimio le 30/03", "when": "après-demain", "soon": True},
        ),
        (None, NOW, None),
        # A session already begun is not the next one (a list read before it, still on the screen): no text.
        ("2026-11-24T09:59:59Z", NOW, None),
        ("2026-11-23T13:00:00Z", NOW, None),
        ("2026-11-24T10:00:00Z", NOW, {"text": "Chimio le 24/11", "when": "aujourd'hui", "soon": True}),
    ],
)
async def test_next_session(dashboard: Page, session: str | None, now: str, expected: dict[str, Any] | None) -> None:
    assert (
        await run(
            dashboard, ALERTS, "m.nextSessionText(arg.session, new Date(arg.now))", {"session": session, "now": now}
        )
        == expected
    )


@pytest.mark.parametrize(
    ("due", "text"),
    [
        ("2026-11-24T16:50:00Z", "échéance 17:50"),
        ("2026-11-24T15:50:01Z", "échéance 16:50"),
        ("2026-11-24T15:50:00Z", "échéance dépassée (16:50)"),  # due now: already past
        ("2026-11-24T15:49:00Z", "échéance dépassée (16:49)"),
        ("2026-11-25T07:00:00Z", "échéance 25/11 08:00"),
        ("2026-11-24T23:30:00Z", "échéance 25/11 00:30"),  # tomorrow in Paris
        ("2026-11-23T16:00:00Z", "échéance dépassée (23/11 17:00)"),
        (None, None),
    ],
)
async def test_due_text(dashboard: Page, due: str | None, text: str | None) -> None:
    assert await run(dashboard, ALERTS, "m.dueText(arg.due, new Date(arg.now))", {"due": due, "now": ALERT_NOW}) == text


@pytest.mark.parametrize(
    ("alert", "text"),
    [
        ({"waiting_seconds": 240, "acknowledged_at": "2026-11-24T15:50:00Z"}, "a attendu 4 min · prise à 16:50"),
        ({"waiting_seconds": 0, "acknowledged_at": "2026-11-24T15:50:00Z"}, "a attendu < 1 min · prise à 16:50"),
        (
            {"waiting_seconds": 7500, "acknowledged_at": "2026-11-23T15:50:00Z"},
            "a attendu 2 h 05 · prise le 23/11 à 16:50",
        ),
        # A nurse's reopen of a closed alert keeps the wait and the first take, and says when.
        (
            {
                "waiting_seconds": 240,
                "acknowledged_at": "2026-11-24T15:50:00Z",
                "reopened_at": "2026-11-24T16:30:00Z",
            },
            "a attendu 4 min · prise à 16:50 · rouverte à 17:30",
        ),
        # Reopened, then taken again since: the take is the news.
        (
            {
                "waiting_seconds": 240,
                "acknowledged_at": "2026-11-24T15:50:00Z",
                "reopened_at": "2026-11-24T15:00:00Z",
            },
            "a attendu 4 min · prise à 16:50",
        ),
        ({"waiting_seconds": None, "acknowledged_at": None}, "—"),
    ],
)
async def test_waited_text(dashboard: Page, alert: dict[str, Any], text: str) -> None:
    assert await run(
        dashboard, ALERTS, "m.waitedText(arg.alert, new Date(arg.now))", {"alert": alert, "now": ALERT_NOW}
    ) == (text)


REOPENED = {"status": "open", "reopened_by_finding_at": "2026-11-24T15:52:00Z"}


@pytest.mark.parametrize(
    ("alert", "text"),
    [
        (
            {
                **REOPENED,
                "previously_acknowledged_by": "ide-claire",
                "previously_acknowledged_by_name": "Claire Martin",
            },
            "Rouverte à 16:52 · était prise par Claire Martin",
        ),
        ({**REOPENED, "previously_acknowledged_by": "ide-claire"}, "Rouverte à 16:52 · était prise par ide-claire"),
        ({**REOPENED, "reopened_by_finding_at": "2026-11-23T15:52:00Z"}, "Rouverte le 23/11 à 16:52"),
        ({**REOPENED, "status": "acknowledged"}, None),  # taken again since: nothing to say
        ({"status": "open", "reopened_by_finding_at": None}, None),
    ],
)
async def test_reopened_text(dashboard: Page, alert: dict[str, Any], text: str | None) -> None:
    assert (
        await run(dashboard, ALERTS, "m.reopenedText(arg.alert, new Date(arg.now))", {"alert": alert, "now": ALERT_NOW})
        == text
    )


@pytest.mark.parametrize(
    ("alert", "colleagues_see"),
    [
        (
            {
                **REOPENED,
                "previously_acknowledged_by": "ide-claire",
                "previously_acknowledged_by_name": "Claire Martin",
            },
            "Rouverte à 16:52 · était prise par Claire Martin",
        ),
        ({**REOPENED, "previously_acknowledged_by": "ide-claire"}, "Rouverte à 16:52 · était prise par ide-claire"),
    ],
)
async def test_reopened_text_seen_by_her(dashboard: Page, alert: dict[str, Any], colleagues_see: str) -> None:
    # She had it herself (taken on this screen or another): she is told so, not shown her own name; a colleague
    # (Karim) is shown hers.
    seen = [
        await run(
            dashboard,
            ALERTS,
            "m.reopenedText(arg.alert, new Date(arg.now), arg.me)",
            {"alert": alert, "now": ALERT_NOW, "me": me},
        )
        for me in ("ide-claire", "ide-karim")
    ]
    assert seen == ["Rouverte à 16:52 · vous l'aviez prise", colleagues_see]


# An alert raised at 08:00 this morning on timely answers (Paris 09:00).
MERGED: dict[str, Any] = {
    "submission_ids": ["s1", "s2"],
    "raised_at": "2026-11-24T08:00:00Z",
    "waiting_since": "2026-11-24T08:00:00Z",
}
LATEST_ANSWERS: dict[str, Any] = {
    **MERGED,
    "latest_answers_authored": "2026-11-22T08:40:00Z",
    "latest_answers_received_at": "2026-11-24T09:40:00Z",
}


@pytest.mark.parametrize(
    ("alert", "text"),
    [
        # Six hours or more between the answers and their alert.
        (
            {"answered_at": "2026-11-24T07:10:00Z", "waiting_since": "2026-11-24T13:10:00Z"},
            "Réponses de 08:10 · arrivées 6 h 00 plus tard",
        ),
        ({"answered_at": "2026-11-24T07:10:01Z", "waiting_since": "2026-11-24T13:10:00Z"}, None),
        (
            {"answered_at": "2026-11-22T08:40:00Z", "waiting_since": "2026-11-24T09:40:00Z"},
            "Réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard",
        ),
        (
            {"answered_at": "2026-11-22T08:40:00Z", "raised_at": "2026-11-24T09:40:00Z"},
            "Réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard",
        ),
        # New answers joined an open alert after it was raised: not late.
        ({"answered_at": "2026-11-24T15:00:00Z", "waiting_since": "2026-11-24T08:00:00Z"}, None),
        ({"answered_at": None, "waiting_since": "2026-11-24T08:00:00Z"}, None),
        # Judged on the answers received last, when the API gives them: here the only ones, which raised it.
        (
            {**LATEST_ANSWERS, "submission_ids": ["s1"], "answered_at": "2026-11-22T08:40:00Z"},
            "Réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard",
        ),
        # Sunday's answers joined an alert raised this morning on timely ones: the newest she reads are old.
        (
            {**LATEST_ANSWERS, "submission_ids": ["s1", "s2"], "answered_at": "2026-11-24T07:00:00Z"},
            "Dernières réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard",
        ),
        (
            {
                **MERGED,
                "latest_answers_authored": "2026-11-24T07:10:00Z",
                "latest_answers_received_at": "2026-11-24T13:10:00Z",
            },
            "Dernières réponses de 08:10 · arrivées 6 h 00 plus tard",
        ),
        # A nurse took the latest answers by phone: she heard them as they were given, never late (as in the patient
        # view), whether posted with an earlier date or scored hours after (the service was down overnight).
        ({**LATEST_ANSWERS, "latest_answers_by": "nurse_phone"}, None),
        ({**LATEST_ANSWERS, "submission_ids": ["s1"], "latest_answers_by": "nurse_phone"}, None),
        (
            {**LATEST_ANSWERS, "latest_answers_by": "relative"},
            "Dernières réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard",
        ),
        # Timely answers joined it: nothing to flag, whatever the alert's older fields would say.
        (
            {
                **MERGED,
                "answered_at": "2026-11-22T08:40:00Z",
                "waiting_since": "2026-11-24T09:40:00Z",
                "latest_answers_authored": "2026-11-24T09:39:00Z",
                "latest_answers_received_at": "2026-11-24T09:40:00Z",
            },
            None,
        ),
    ],
)
async def test_late_answers_text(dashboard: Page, alert: dict[str, Any], text: str | None) -> None:
    assert (
        await run(
            dashboard, ALERTS, "m.lateAnswersText(arg.alert, new Date(arg.now))", {"alert": alert, "now": ALERT_NOW}
        )
        == text
    )


@pytest.mark.parametrize(
    ("submission", "text"),
    [
        # Sunday's answers, scored on Tuesday: the same threshold and words as the alert's flag.
        (
            {"answered_by": "patient", "authored": "2026-11-22T08:40:00Z", "received_at": "2026-11-24T09:40:00Z"},
            "arrivé 2 j 1 h plus tard",
        ),
        (
            {"answered_by": "relative", "authored": "2026-11-24T07:10:00Z", "received_at": "2026-11-24T13:10:00Z"},
            "arrivé 6 h 00 plus tard",
        ),
        ({"answered_by": "patient", "authored": "2026-11-24T07:10:01Z", "received_at": "2026-11-24T13:10:00Z"}, None),
        # A nurse took them by phone: she heard them as they were given, however long before they were scored.
        (
            {"answered_by": "nurse_phone", "authored": "2026-11-22T08:40:00Z", "received_at": "2026-11-24T09:40:00Z"},
            None,
        ),
        ({"answered_by": "patient", "authored": "2026-11-22T08:40:00Z"}, None),  # an API without received_at
    ],
)
async def test_submission_late_text(dashboard: Page, submission: dict[str, Any], text: str | None) -> None:
    assert await run(dashboard, ALERTS, "m.submissionLateText(arg)", submission) == text


def alert(
    alert_id: str, level: str = "orange", status: str = "open", overdue: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "patient_id": f"{alert_id}-patient",
        "level": level,
        "status": status,
        "overdue": overdue,
        "reasons": [{"code": "nausea", "grade": 3, "level": level}],
        **extra,
    }


@pytest.mark.parametrize(
    ("alerts", "totals", "not_shown", "text"),
    [
        (
            [alert("a", "red"), alert("b", "red", overdue=True), alert("c")],
            None,
            0,
            "2 rouges · 1 orange · 1 en retard",
        ),
        ([alert("a", "red")], None, 0, "1 rouge · 0 orange · 0 en retard"),
        ([], None, 0, "0 rouge · 0 orange · 0 en retard"),
        # The list stops at its cap: the server's totals, grouped as French numbers are.
        (
            [alert("a", "red")],
            {"by_level": {"red": 3, "orange": 2100}, "overdue": 1500},
            2102,
            f"3 rouges · 2{NNBSP}100 oranges · 1{NNBSP}500 en retard",
        ),
        ([alert("a", "red", overdue=True)], None, 5, "1 rouge · 0 orange · 1 en retard"),  # no totals: the rows
    ],
)
async def test_summary_text(
    dashboard: Page, alerts: list[dict[str, Any]], totals: dict[str, Any] | None, not_shown: int, text: str
) -> None:
    assert (
        await run(
            dashboard,
            ALERTS,
            "m.summaryText(arg.alerts, arg.totals, arg.notShown)",
            {"alerts": alerts, "totals": totals, "notShown": not_shown},
        )
        == text
    )


@pytest.mark.parametrize(
    ("shown", "not_shown", "text"),
    [
        (
            2000,
            5,
            f"5 alertes actives ne sont pas affichées : la liste montre les 2{NNBSP}000 plus urgentes "
            "(rouges d'abord).",
        ),
        (
            2000,
            1,
            f"1 alerte active n'est pas affichée : la liste montre les 2{NNBSP}000 plus urgentes (rouges d'abord).",
        ),
        (12, 0, ""),
    ],
)
async def test_cut_text(dashboard: Page, shown: int, not_shown: int, text: str) -> None:
    assert await run(
        dashboard, ALERTS, "m.cutText(arg.shown, arg.notShown)", {"shown": shown, "notShown": not_shown}
    ) == (text)


@pytest.mark.parametrize(
    ("level", "status", "ids"),
    [
        ("all", "active", ["r-open", "r-taken", "o-open", "o-taken"]),
        ("red", "active", ["r-open", "r-taken"]),
        ("orange", "open", ["o-open"]),
        ("all", "acknowledged", ["r-taken", "o-taken"]),
        ("red", "acknowledged", ["r-taken"]),
    ],
)
async def test_filter_alerts_keeps_the_order(dashboard: Page, level: str, status: str, ids: list[str]) -> None:
    alerts = [
        alert("r-open", "red"),
        alert("r-taken", "red", "acknowledged"),
        alert("o-open"),
        alert("o-taken", "orange", "acknowledged"),
    ]
    assert (
        await run(
            dashboard,
            ALERTS,
            "m.filterAlerts(arg.alerts, arg.filters).map((a) => a.id)",
            {"alerts": alerts, "filters": {"level": level, "status": status}},
        )
        == ids
    )


ROW = """(() => {
  const row = m.alertRow(arg.alert, arg.me, new Date(arg.now));
  const text = (selector) => row.querySelector(selector)?.textContent ?? null;
  return {
    dataset: { ...row.dataset },
    classes: row.className,
    waiting: text(".col-waiting"),
    owner: text(".col-owner"),
    actions: [...row.querySelectorAll("[data-action]")].map((b) => b.dataset.action),
    mine: Boolean(row.querySelector(".taken-by-me")),
    session: text(".col-session"),
    source: text(".col-source"),
  };
})()"""


async def row(page: Page, alert: dict[str, Any], me: str | None = "ide-claire") -> dict[str, Any]:
    result: dict[str, Any] = await run(page, ALERTS, ROW, {"alert": alert, "me": me, "now": ALERT_NOW})
    return result


async def test_a_row_flags_late_answers_that_joined_it_while_open(dashboard: Page) -> None:
    shown = await row(dashboard, alert("a1", "red", answered_by="patient", **LATEST_ANSWERS))
    assert shown["source"] == "Patient·eDernières réponses du 22/11 à 09:40 · arrivées 2 j 1 h plus tard"
    timely = {**LATEST_ANSWERS, "latest_answers_authored": "2026-11-24T09:39:00Z"}
    assert (await row(dashboard, alert("a2", "red", answered_by="patient", **timely)))["source"] == "Patient·e"


async def test_an_open_overdue_red_row(dashboard: Page) -> None:
    shown = await row(
        dashboard,
        alert(
            "a1",
            "red",
            overdue=True,
            escalation_level=2,
            waiting_since="2026-11-24T13:45:00Z",
            due_at="2026-11-24T14:45:00Z",
            next_session_at="2026-11-25T07:00:00Z",
            answered_by="relative",
        ),
    )
    assert shown["dataset"] == {
        "alertId": "a1",
        "level": "red",
        "status": "open",
        "overdue": "true",
        "patientId": "a1-patient",
    }
    assert "is-overdue" in shown["classes"].split()
    assert shown["waiting"] == "depuis 2 h 05échéance dépassée (15:45)EN RETARD · niveau 2"
    assert shown["actions"] == ["open-patient", "ack"]
    assert shown["owner"] == "Je prends"
    assert shown["session"] == "Chimio le 25/11 (demain)"
    assert shown["source"] == "Un proche"


@pytest.mark.parametrize(
    ("me", "mine"),
    [("ide-claire", True), ("ide-karim", False), (None, False)],
)
async def test_a_taken_row_names_who_and_offers_clotures_to_all(dashboard: Page, me: str | None, mine: bool) -> None:
    shown = await row(
        dashboard,
        alert(
            "a2",
            status="acknowledged",
            acknowledged_by="ide-claire",
            acknowledged_by_name="Claire Martin",
            acknowledged_at="2026-11-24T15:50:00Z",
            waiting_seconds=240,
        ),
        me,
    )
    assert shown["waiting"] == "a attendu 4 min · prise à 16:50"
    # Whole for a screen reader, short on the screen (her own, "vous").
    assert shown["owner"] == f"Prise par Claire MartinPrise par {'vous' if mine else 'C. Martin'}Clôturer"
    assert shown["actions"] == ["open-patient", "resolve"]
    assert shown["mine"] is mine
    assert shown["session"] == "—"


async def test_a_row_a_finding_reopened(dashboard: Page) -> None:
    shown = await row(
        dashboard,
        alert(
            "a3",
            "red",
            waiting_since="2026-11-24T15:45:00Z",
            reopened_by_finding_at="2026-11-24T15:45:00Z",
            previously_acknowledged_by="ide-claire",
            previously_acknowledged_by_name="Claire Martin",
        ),
        me="ide-karim",
    )
    assert shown["owner"] == "Rouverte à 16:45 · était prise par Claire MartinJe prends"


async def test_a_row_a_finding_reopened_after_she_took_it_says_she_had_it(dashboard: Page) -> None:
    reopened = alert(
        "a3",
        "red",
        waiting_since="2026-11-24T15:45:00Z",
        reopened_by_finding_at="2026-11-24T15:45:00Z",
        previously_acknowledged_by="ide-claire",
        previously_acknowledged_by_name="Claire Martin",
    )
    shown = await row(dashboard, reopened, me="ide-claire")
    assert shown["owner"] == "Rouverte à 16:45 · vous l'aviez priseJe prends"
    assert shown["waiting"] == "il y a 5 min"  # its clock restarted at the reopening


TICKED = """(() => {
  const body = document.createElement("tbody");
  body.id = "alert-rows";
  document.body.append(body);
  try {
    body.append(m.alertRow(arg.alert, null, new Date(arg.drawn)));
    const session = () => body.querySelector(".col-session").textContent;
    const drawn = session();
    m.tickWaitingTimes(new Date(arg.ticked));
    return [drawn, session(), Boolean(body.querySelector(".col-session .soon"))];
  } finally {
    body.remove();
  }
})()"""


@pytest.mark.parametrize(
    ("drawn", "ticked", "shown"),
    [
        # Drawn at 07:55 on a quiet ward, the 08:00 session begins: the tick stops offering it as the next one.
        ("2026-11-24T06:55:00Z", "2026-11-24T07:00:30Z", ["Chimio le 24/11 (aujourd'hui)", "—", False]),
        # Drawn late in the evening, ticked past midnight: tomorrow's session is today's.
        (
            "2026-11-23T22:50:00Z",
            "2026-11-23T23:00:30Z",
            ["Chimio le 24/11 (demain)", "Chimio le 24/11 (aujourd'hui)", True],
        ),
        # Nothing changed: the same words.
        ("2026-11-24T06:00:00Z", "2026-11-24T06:30:00Z", ["Chimio le 24/11 (aujourd'hui)"] * 2 + [True]),
    ],
)
async def test_the_tick_refreshes_the_next_session(dashboard: Page, drawn: str, ticked: str, shown: list[Any]) -> None:
    row = alert("a4", next_session_at="2026-11-24T07:00:00Z")
    assert await run(dashboard, ALERTS, TICKED, {"alert": row, "drawn": drawn, "ticked": ticked}) == shown


# --- cues.js: what a refreshed list rings and announces -----------------------------------------------------------

T0, T1, T2 = "2026-11-24T15:00:00Z", "2026-11-24T15:10:00Z", "2026-11-24T15:20:00Z"
CLAIRE: dict[str, Any] = {
    "acknowledged_by": "ide-claire",
    "acknowledged_by_name": "Claire Martin",
    "acknowledged_at": T1,
}
# Claire had it when a new answer sent it back to open (the alert view names her).
CLAIRE_BEFORE: dict[str, Any] = {
    "previously_acknowledged_by": "ide-claire",
    "previously_acknowledged_by_name": "Claire Martin",
}
T3 = "2026-11-24T15:30:00Z"


def red(alert_id: str = "r", status: str = "open", **extra: Any) -> dict[str, Any]:
    return alert(alert_id, "red", status, **extra)


@pytest.mark.parametrize(
    ("previous", "now", "cause"),
    [
        (None, red(), "raised"),  # new since the last list (raised while the page was cut off too)
        (None, alert("o"), "raised"),
        (None, red(status="acknowledged", **CLAIRE), None),  # a colleague took it before this page saw it
        (alert("r"), red(), "level-rose"),
        (alert("r", status="acknowledged", **CLAIRE), red(reopened_by_finding_at=T2), "level-rose"),
        (alert("r"), red(status="acknowledged", **CLAIRE), None),  # rose but in hand: nobody to call
        (red(), red(), None),
        (alert("o"), alert("o"), None),
        (red(status="acknowledged", **CLAIRE), red(reopened_by_finding_at=T2), "reopened"),
        (red(status="acknowledged"), red(reopened_by_finding_at=T2), "reopened"),
        # An older reopening than the take we know of: a list read before our own "Je prends" came back.
        (red(status="acknowledged", **CLAIRE), red(reopened_by_finding_at=T0), None),
        (red(status="acknowledged", **CLAIRE), red(reopened_by_finding_at=T1), None),
        (red(status="acknowledged", **CLAIRE), red(), None),
        (red(), red(status="resolved"), None),
        # Open when the page last saw it, taken by a colleague and reopened by a new answer while it was cut off.
        (red(), red(reopened_by_finding_at=T2), "reopened"),
        (red(reopened_by_finding_at=T0), red(reopened_by_finding_at=T2), "reopened"),
        (red(reopened_by_finding_at=T2), red(reopened_by_finding_at=T2), None),  # the reopening it already knew of
        (red(reopened_by_finding_at=T2), red(reopened_by_finding_at=T0), None),  # an older list answering late
        (alert("o"), alert("o", reopened_by_finding_at=T2), "reopened"),
    ],
)
async def test_change_cause(
    dashboard: Page, previous: dict[str, Any] | None, now: dict[str, Any], cause: str | None
) -> None:
    assert await run(dashboard, CUES, "m.changeCause(arg.previous, arg.now)", {"previous": previous, "now": now}) == (
        cause
    )


CUES_OF = """(() => {
  const before = new Map(arg.before.map((alert) => [alert.id, alert]));
  const { announcements, red } = m.cues(before, arg.items);
  return { announced: announcements.map(({ cause, alertId }) => [cause, alertId]), red };
})()"""

FEVER = [{"code": "fever", "rule": "red.fever", "grade": None, "level": "red"}]
THREE = [
    {"code": "fever", "rule": "red.fever", "grade": None},
    {"code": "nausea", "grade": 3},
    {"code": "diarrhea", "grade": 3},
    {"code": "ecog", "grade": 3},
]


@pytest.mark.parametrize(
    ("before", "items", "announced", "banner"),
    [
        # Back after a dropped connection: the red alert raised meanwhile rings, the one closed meanwhile does not.
        (
            [red("closed")],
            [red("new", patient_id="aaaaaaaa-1", reasons=FEVER), alert("o-new")],
            [["raised", "new"], ["raised", "o-new"]],
            {"alertId": "new", "text": "Nouvelle alerte ROUGE — Patient aaaaaaaa : Fièvre ≥ 38 °C"},
        ),
        ([red("closed")], [], [], None),
        # A red alert still open, or taken meanwhile by a colleague: nothing new.
        ([red("a")], [red("a")], [], None),
        ([red("a")], [red("a", "acknowledged", **CLAIRE)], [], None),
        # Only orange: announced, no banner.
        ([], [alert("o1"), alert("o2")], [["raised", "o1"], ["raised", "o2"]], None),
        # The most urgent red one, in the list's order, names the banner; the first three reasons.
        (
            [alert("o1")],
            [red("r1", patient_id="bbbbbbbb-1", reasons=THREE), red("r2"), alert("o1")],
            [["raised", "r1"], ["raised", "r2"]],
            {
                "alertId": "r1",
                "text": "Nouvelle alerte ROUGE — Patient bbbbbbbb : Fièvre ≥ 38 °C, Nausées (grade 3), "
                "Diarrhée (grade 3)",
            },
        ),
        # An orange one first in the list is announced; the banner goes to the red one.
        ([alert("x")], [alert("o1"), red("x")], [["raised", "o1"], ["level-rose", "x"]], {"alertId": "x"}),
        # Back to open, red all along, taken by Claire: the banner says whose it was.
        (
            [red("a", "acknowledged", **CLAIRE)],
            [
                red(
                    "a",
                    patient_id="cccccccc-1",
                    reasons=FEVER,
                    reopened_by_finding_at=T2,
                    previously_acknowledged_by="ide-claire",
                    previously_acknowledged_by_name="Claire Martin",
                )
            ],
            [["reopened", "a"]],
            {
                "alertId": "a",
                "text": "Alerte ROUGE rouverte : nouvelle réponse (était prise par Claire Martin) — Patient cccccccc : "
                "Fièvre ≥ 38 °C",
            },
        ),
        # Open when the page last saw it: Claire took it and a new answer reopened it while the page was cut off.
        (
            [red("a", reopened_by_finding_at=None)],
            [
                red(
                    "a",
                    patient_id="ffffffff-1",
                    reasons=FEVER,
                    reopened_by_finding_at=T2,
                    previously_acknowledged_by="ide-claire",
                    previously_acknowledged_by_name="Claire Martin",
                )
            ],
            [["reopened", "a"]],
            {
                "alertId": "a",
                "text": "Alerte ROUGE rouverte : nouvelle réponse (était prise par Claire Martin) — Patient ffffffff : "
                "Fièvre ≥ 38 °C",
            },
        ),
        # Its level rose to red while Claire had it (the name from the list before, none in the alert).
        (
            [alert("a", status="acknowledged", **CLAIRE)],
            [red("a", patient_id="dddddddd-1", reasons=FEVER, reopened_by_finding_at=T2)],
            [["level-rose", "a"]],
            {
                "alertId": "a",
                "text": "Alerte passée en ROUGE (était prise par Claire Martin) — Patient dddddddd : Fièvre ≥ 38 °C",
            },
        ),
        # Open and orange when the page last saw it: Claire took it, a red answer reopened it while it was cut off.
        (
            [alert("a", reopened_by_finding_at=None)],
            [
                red(
                    "a",
                    patient_id="dddddddd-2",
                    reasons=FEVER,
                    reopened_by_finding_at=T2,
                    previously_acknowledged_by="ide-claire",
                    previously_acknowledged_by_name="Claire Martin",
                )
            ],
            [["level-rose", "a"]],
            {
                "alertId": "a",
                "text": "Alerte passée en ROUGE (était prise par Claire Martin) — Patient dddddddd : Fièvre ≥ 38 °C",
            },
        ),
        # Its level rose while open; Claire had it before a reopening the page already knew of: not hers now.
        (
            [alert("a", reopened_by_finding_at=T0, previously_acknowledged_by="ide-claire")],
            [
                red(
                    "a",
                    patient_id="eeeeeeee-2",
                    reasons=[],
                    reopened_by_finding_at=T0,
                    previously_acknowledged_by="ide-claire",
                    previously_acknowledged_by_name="Claire Martin",
                )
            ],
            [["level-rose", "a"]],
            {"alertId": "a", "text": "Alerte passée en ROUGE — Patient eeeeeeee"},
        ),
        # Its level rose while open: nobody had it.
        (
            [alert("a")],
            [red("a", patient_id="eeeeeeee-1", reasons=[])],
            [["level-rose", "a"]],
            {"alertId": "a", "text": "Alerte passée en ROUGE — Patient eeeeeeee"},
        ),
    ],
)
async def test_cues(
    dashboard: Page,
    before: list[dict[str, Any]],
    items: list[dict[str, Any]],
    announced: list[list[str]],
    banner: dict[str, str] | None,
) -> None:
    got = await run(dashboard, CUES, CUES_OF, {"before": before, "items": items})
    assert got["announced"] == announced
    if banner is None or got["red"] is None:
        assert got["red"] == banner
    else:
        assert {key: got["red"][key] for key in banner} == banner


@pytest.mark.parametrize(
    ("before", "items", "text"),
    [
        # Back to open, red all along: she had it (taken on this screen or another).
        (
            [red("a", "acknowledged", **CLAIRE)],
            [red("a", patient_id="cccccccc-1", reasons=FEVER, reopened_by_finding_at=T2, **CLAIRE_BEFORE)],
            "Alerte ROUGE rouverte : nouvelle réponse (vous l'aviez prise) — Patient cccccccc : Fièvre ≥ 38 °C",
        ),
        # Its level rose to red while she had it (her id from the list before, none in the alert).
        (
            [alert("a", status="acknowledged", **CLAIRE)],
            [red("a", patient_id="dddddddd-1", reasons=FEVER, reopened_by_finding_at=T2)],
            "Alerte passée en ROUGE (vous l'aviez prise) — Patient dddddddd : Fièvre ≥ 38 °C",
        ),
        # Open when the page last saw it; she took it on another screen, and a new answer reopened it meanwhile.
        (
            [red("a", reopened_by_finding_at=None)],
            [red("a", patient_id="ffffffff-1", reasons=FEVER, reopened_by_finding_at=T2, **CLAIRE_BEFORE)],
            "Alerte ROUGE rouverte : nouvelle réponse (vous l'aviez prise) — Patient ffffffff : Fièvre ≥ 38 °C",
        ),
    ],
)
async def test_cues_seen_by_her(
    dashboard: Page, before: list[dict[str, Any]], items: list[dict[str, Any]], text: str
) -> None:
    """The banner and the live announcement on Claire's dashboard; on Karim's, her name."""
    seen = [
        await run(
            dashboard,
            CUES,
            """(() => {
              const before = new Map(arg.before.map((alert) => [alert.id, alert]));
              const { announcements, red } = m.cues(before, arg.items, arg.me);
              return [red && red.text, m.announcementText(announcements, arg.items, arg.me)];
            })()""",
            {"before": before, "items": items, "me": me},
        )
        for me in ("ide-claire", "ide-karim")
    ]
    colleague = text.replace("(vous l'aviez prise)", "(était prise par Claire Martin)")
    # One reason: the banner's three and the announcement's two are the same.
    assert seen == [[text, text], [colleague, colleague]]


@pytest.mark.parametrize(
    ("pending", "alerts", "text"),
    [
        (
            [{"cause": "raised", "alertId": "a", "previous": None}],
            [red("a", patient_id="aaaaaaaa-1", reasons=THREE)],
            "Nouvelle alerte ROUGE — Patient aaaaaaaa : Fièvre ≥ 38 °C, Nausées (grade 3)",  # two reasons
        ),
        # Taken (or closed) by the time the list came: nothing to say.
        ([{"cause": "raised", "alertId": "a", "previous": None}], [red("a", "acknowledged")], None),
        ([{"cause": "raised", "alertId": "gone", "previous": None}], [], None),
        (
            [{"cause": "escalated", "alertId": "a", "payload": {"escalation_level": 1}}],
            [alert("a", patient_id="aaaaaaaa-1", escalation_level=2)],
            "Alerte en retard (niveau 2) : Patient aaaaaaaa",
        ),
        (
            [{"cause": "escalated", "alertId": "a", "payload": {"escalation_level": 1}}],
            [alert("a", patient_id="aaaaaaaa-1", escalation_level=0)],
            "Alerte en retard (niveau 1) : Patient aaaaaaaa",
        ),
        (
            [{"cause": "escalated", "alertId": "a", "payload": {}}],
            [alert("a", patient_id="aaaaaaaa-1")],
            "Alerte en retard : Patient aaaaaaaa",
        ),
        (
            [{"cause": "raised", "alertId": x, "previous": None} for x in ("a", "b")],
            [alert("a", patient_id="aaaaaaaa-1", reasons=[]), alert("b", patient_id="bbbbbbbb-1", reasons=[])],
            "Nouvelle alerte ORANGE — Patient aaaaaaaa ; Nouvelle alerte ORANGE — Patient bbbbbbbb",
        ),
        # More than three: the count, the first three.
        (
            [{"cause": "raised", "alertId": x, "previous": None} for x in "abcd"],
            [alert(x, patient_id=f"{x * 8}-1", reasons=[]) for x in "abcd"],
            "4 changements : Nouvelle alerte ORANGE — Patient aaaaaaaa ; Nouvelle alerte ORANGE — Patient bbbbbbbb ; "
            "Nouvelle alerte ORANGE — Patient cccccccc ; …",
        ),
        ([], [red("a")], None),
    ],
)
async def test_announcement_text(
    dashboard: Page, pending: list[dict[str, Any]], alerts: list[dict[str, Any]], text: str | None
) -> None:
    assert (
        await run(
            dashboard, CUES, "m.announcementText(arg.pending, arg.alerts)", {"pending": pending, "alerts": alerts}
        )
        == text
    )


@pytest.mark.parametrize(
    ("banner", "items", "stays"),
    [
        ("a", [red("a")], True),
        ("a", [red("a", "acknowledged")], False),  # a colleague took it: the banner goes
        ("a", [red("b")], False),  # closed
        ("", [], True),  # no banner: nothing to hide
    ],
)
async def test_banner_still_due(dashboard: Page, banner: str, items: list[dict[str, Any]], stays: bool) -> None:
    assert await run(
        dashboard, CUES, "m.bannerStillDue(arg.banner, arg.items)", {"banner": banner, "items": items}
    ) is (stays)


@pytest.mark.parametrize(
    ("updated", "ids", "merged"),
    [
        # Her "Je prends": the row in place, the fields the answer has over those it had (next_session_at kept).
        (
            {"id": "b", "status": "acknowledged", "acknowledged_by": "ide-claire"},
            ["a", "b", "c"],
            {"id": "b", "status": "acknowledged", "acknowledged_by": "ide-claire", "next_session_at": T0},
        ),
        ({"id": "b", "status": "resolved"}, ["a", "c"], None),  # closed: off the list
        ({"id": "d", "status": "acknowledged"}, ["a", "b", "c", "d"], {"id": "d", "status": "acknowledged"}),  # reopen
        ({"id": "d", "status": "resolved"}, ["a", "b", "c"], None),
        ({"status": "open"}, ["a", "b", "c"], None),  # no id: nothing
        (None, ["a", "b", "c"], None),
    ],
)
async def test_merge_alert(
    dashboard: Page, updated: dict[str, Any] | None, ids: list[str], merged: dict[str, Any] | None
) -> None:
    alerts = [{"id": x, "status": "open", "next_session_at": T0} for x in "abc"]
    got = await run(
        dashboard,
        CUES,
        """(() => {
          m.mergeAlert(arg.alerts, arg.updated);
          const id = arg.updated && arg.updated.id;
          return [arg.alerts.map((a) => a.id), arg.alerts.find((a) => a.id === id) ?? null];
        })()""",
        {"alerts": alerts, "updated": updated},
    )
    assert got == [ids, merged]


@pytest.mark.parametrize(
    ("before", "now", "text"),
    [
        (alert("a", status="acknowledged"), red("a"), "Nouvelle réponse : l'alerte est passée en ROUGE."),
        (red("a", "acknowledged"), red("a"), "Nouvelle réponse : l'alerte a été rouverte."),
        (
            red("a"),
            red("a", "acknowledged", acknowledged_by="ide-karim", acknowledged_by_name="Karim Benali"),
            "L'alerte a été prise entre-temps par Karim Benali.",
        ),
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", "acknowledged", **CLAIRE),
            "L'alerte a changé depuis que vous l'avez ouverte (nouvelle réponse).",
        ),
        # Shown taken by Claire, reopened by a new answer: who had it, as the banner says.
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte a été rouverte (elle était prise par Claire Martin).",
        ),
        # Shown open; while the page was cut off Karim took it and a new answer reopened it: only the time tells.
        (
            red("a", reopened_by_finding_at=T0),
            red(
                "a",
                reopened_by_finding_at=T2,
                previously_acknowledged_by="ide-karim",
                previously_acknowledged_by_name="Karim Benali",
            ),
            "Nouvelle réponse : l'alerte a été rouverte (elle était prise par Karim Benali).",
        ),
        # Shown taken by Claire; reopened while the page was cut off, and Claire took it again: the same owner.
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", "acknowledged", **{**CLAIRE, "acknowledged_at": T3}, reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte a été rouverte (elle était prise par Claire Martin), puis prise par Claire "
            "Martin.",
        ),
        # A reopening older than the taking shown is not news.
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", "acknowledged", **CLAIRE, reopened_by_finding_at=T0, **CLAIRE_BEFORE),
            "L'alerte a changé depuis que vous l'avez ouverte (nouvelle réponse).",
        ),
        # Orange and taken by Claire, reopened by a red answer.
        (
            alert("a", status="acknowledged", **CLAIRE),
            red("a", reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte est passée en ROUGE (elle était prise par Claire Martin).",
        ),
    ],
)
async def test_what_changed(dashboard: Page, before: dict[str, Any], now: dict[str, Any], text: str) -> None:
    assert await run(dashboard, CUES, "m.whatChanged(arg.before, arg.now)", {"before": before, "now": now}) == text


@pytest.mark.parametrize(
    ("before", "now", "text"),
    [
        # Her own alert: she knows she had it.
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte a été rouverte.",
        ),
        (
            alert("a", status="acknowledged", **CLAIRE),
            red("a", reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte est passée en ROUGE.",
        ),
        (
            red("a", "acknowledged", **CLAIRE),
            red("a", "acknowledged", **{**CLAIRE, "acknowledged_at": T3}, reopened_by_finding_at=T2, **CLAIRE_BEFORE),
            "Nouvelle réponse : l'alerte a été rouverte, puis prise par vous.",
        ),
        # Karim's, reopened and taken by her from another screen while this one was cut off.
        (
            red("a", reopened_by_finding_at=T0),
            red(
                "a",
                "acknowledged",
                **{**CLAIRE, "acknowledged_at": T3},
                reopened_by_finding_at=T2,
                previously_acknowledged_by="ide-karim",
                previously_acknowledged_by_name="Karim Benali",
            ),
            "Nouvelle réponse : l'alerte a été rouverte (elle était prise par Karim Benali), puis prise par vous.",
        ),
        # Shown open; she took it from another screen or tab, then closes it from this one: never her name.
        (red("a"), red("a", "acknowledged", **CLAIRE), "Vous avez pris cette alerte depuis un autre écran."),
    ],
)
async def test_what_changed_on_her_own_alert(
    dashboard: Page, before: dict[str, Any], now: dict[str, Any], text: str
) -> None:
    got = await run(
        dashboard,
        CUES,
        "m.whatChanged(arg.before, arg.now, arg.me)",
        {"before": before, "now": now, "me": "ide-claire"},
    )
    assert got == text


@pytest.mark.parametrize(
    ("alert", "taken"),
    [
        # She took it on another screen or tab, then pressed "Je prends" here: not "a colleague".
        (
            red("a", "acknowledged", **CLAIRE),
            {"mine": True, "text": "Vous avez déjà pris cette alerte depuis un autre écran."},
        ),
        (
            red("a", "acknowledged", acknowledged_by="ide-karim", acknowledged_by_name="Karim Benali"),
            {"mine": False, "text": "Karim Benali a déjà pris cette alerte."},
        ),
        (
            red("a", "acknowledged", acknowledged_by="ide-karim"),
            {"mine": False, "text": "ide-karim a déjà pris cette alerte."},
        ),
        (red("a"), None),  # the reloaded list does not show it taken: the API's own sentence
        (None, None),  # nor shows it at all
    ],
)
async def test_already_taken(dashboard: Page, alert: dict[str, Any] | None, taken: dict[str, Any] | None) -> None:
    got = await run(dashboard, CUES, "m.alreadyTaken(arg.alert, arg.me)", {"alert": alert, "me": "ide-claire"})
    assert got == taken


# --- stream.js: the position in the stream, and the reconnection -----------------------------------------------

LAST_EVENT_KEY = "oncofollow.lastEventId"


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(0, 500), (1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 10_000), (40, 10_000)],
)
async def test_reconnect_delay(dashboard: Page, attempt: int, delay: int) -> None:
    assert await run(dashboard, STREAM, "m.reconnectDelay(arg)", attempt) == delay


# A stream whose position was `arg.stored` in this tab, given `arg.messages` as EventSource delivers them.
RECEIVE = """(() => {
  sessionStorage.removeItem(arg.key);
  if (arg.stored !== null) sessionStorage.setItem(arg.key, arg.stored);
  const events = [];
  const stream = new m.AlertStream({ fetchToken: async () => "t", onEvent: (event) => events.push(event),
                                     onState() {}, onOpen() {}, onReset() {} });
  const initial = stream.lastEventId;
  for (const message of arg.messages) stream.receive(message);
  const result = { initial, position: stream.lastEventId, stored: sessionStorage.getItem(arg.key), events };
  stream.forgetPosition();
  result.forgotten = [stream.lastEventId, sessionStorage.getItem(arg.key)];
  return result;
})()"""


def message(data: Any, event_id: str = "", event_type: str = "message") -> dict[str, Any]:
    return {"type": event_type, "lastEventId": event_id, "data": data if isinstance(data, str) else json.dumps(data)}


ENVELOPE = {"id": "e1", "type": "alert.raised", "data": {"alert_id": "a"}}


@pytest.mark.parametrize(
    ("stored", "messages", "initial", "position", "events"),
    [
        # A reload in the same tab starts from where it was.
        ("17", [], "17", "17", []),
        ("pas un id", [], None, None, []),
        (
            None,
            [message(ENVELOPE, "42", "alert.raised")],
            None,
            "42",
            [{"type": "alert.raised", "streamId": "42", "envelope": ENVELOPE}],
        ),
        # An event without an "event:" field: its envelope's type.
        (
            "17",
            [message({**ENVELOPE, "type": "alert.updated"}, "18")],
            "17",
            "18",
            [{"type": "alert.updated", "streamId": "18", "envelope": {**ENVELOPE, "type": "alert.updated"}}],
        ),
        # Ids that are not the stream's sequence numbers never move the position.
        (
            "17",
            [
                message(ENVELOPE, "abc", "alert.raised"),
                message(ENVELOPE, "", "alert.raised"),
                message(ENVELOPE, "1" * 21, "alert.raised"),
                message(ENVELOPE, "-3", "alert.raised"),
            ],
            "17",
            "17",
            [{"type": "alert.raised", "streamId": None, "envelope": ENVELOPE}] * 4,
        ),
        # Data that is not an object: no envelope, and still an event (the list is reloaded).
        (
            None,
            [message("pas du JSON", "5"), message("3", "6", "alert.resolved")],
            None,
            "6",
            [
                {"type": "message", "streamId": "5", "envelope": None},
                {"type": "alert.resolved", "streamId": "6", "envelope": None},
            ],
        ),
    ],
)
async def test_stream_position(
    dashboard: Page,
    stored: str | None,
    messages: list[dict[str, Any]],
    initial: str | None,
    position: str | None,
    events: list[dict[str, Any]],
) -> None:
    got = await run(dashboard, STREAM, RECEIVE, {"key": LAST_EVENT_KEY, "stored": stored, "messages": messages})
    assert (got["initial"], got["position"], got["events"]) == (initial, position, events)
    assert got["stored"] == (position or stored)  # what a reload in this tab starts from
    assert got["forgotten"] == [None, None]  # sign-out: the next start only gets new events


# An AlertStream on a fake EventSource, a fake clock and fake timers: `arg.steps` says what happens to each
# connection ("open", "wait <ms>", "error", "token-fails", "token-refused", "retry"), and the result is what the
# page did: the stream URLs it opened, the delays it waited, the states it showed.
DRIVE = """(async () => {
  const saved = { EventSource: window.EventSource, setTimeout: window.setTimeout, now: Date.now };
  const realTimeout = saved.setTimeout.bind(window);
  const settle = () => new Promise((resolve) => realTimeout(resolve, 0));
  const opened = [], delays = [], states = [], timers = [];
  let clock = 1e12, source = null, tokens = arg.tokens.slice();
  window.EventSource = class {
    constructor(url) { opened.push(url.replace(/^.*\\?/, "")); this.listeners = {}; source = this; }
    addEventListener(type, listener) { this.listeners[type] = listener; }
    close() { this.closed = true; }
  };
  window.setTimeout = (callback, ms) => { delays.push(ms); timers.push(callback); return timers.length; };
  Date.now = () => clock;
  sessionStorage.removeItem(arg.key);
  if (arg.stored) sessionStorage.setItem(arg.key, arg.stored);
  class Refused extends Error {}
  const stream = new m.AlertStream({
    fetchToken: async () => {
      const token = tokens.shift() ?? "t";
      if (token === "fails") throw new Error("network");
      if (token === "refused") throw new Refused("401");
      return token;
    },
    onEvent() {}, onOpen() {}, onReset() {},
    onState: (state, detail) => states.push(detail && detail.failed ? `${state}!` : state),
    isFatal: (error) => error instanceof Refused,
  });
  try {
    stream.start();
    await settle();
    for (const step of arg.steps) {
      if (step === "open") source.listeners.open();
      else if (step === "error") source.listeners.error();
      else if (step.startsWith("wait ")) clock += Number(step.slice(5));
      else if (step.startsWith("event "))
        source.listeners["alert.raised"]({ type: "alert.raised", lastEventId: step.slice(6), data: "{}" });
      else if (step === "retry") { timers.shift()(); }
      await settle();
    }
    return { opened, delays, states: states.slice(), running: stream.running };
  } finally {
    stream.stop();
    Object.assign(window, { EventSource: saved.EventSource, setTimeout: saved.setTimeout });
    Date.now = saved.now;
  }
})()"""


async def drive(
    page: Page, steps: list[str], tokens: tuple[str, ...] = (), stored: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = await run(
        page, STREAM, DRIVE, {"key": LAST_EVENT_KEY, "steps": steps, "tokens": list(tokens), "stored": stored}
    )
    return result


async def test_the_stream_reconnects_from_its_last_event_with_a_new_token(dashboard: Page) -> None:
    got = await drive(dashboard, ["open", "event 41", "event 42", "error", "retry", "open"], ("t1", "t2"), "17")
    assert got["opened"] == ["stream_token=t1&since=17", "stream_token=t2&since=42"]
    assert got["states"] == ["reconnecting", "live", "reconnecting!", "live"]
    assert got["delays"] == [500]


async def test_a_first_stream_has_no_position(dashboard: Page) -> None:
    got = await drive(dashboard, ["open"], ("t1",))
    assert got["opened"] == ["stream_token=t1"]
    assert got["states"] == ["reconnecting", "live"]


async def test_failures_in_a_row_wait_longer_up_to_ten_seconds(dashboard: Page) -> None:
    # Connections that open and drop at once, a token that cannot be fetched, a connection up 9.999 s: the same
    # backoff (and the events of a connection given up are not heard).
    steps = ["open", "error", "retry", "error", "retry", "retry", "open", "wait 9999", "error"]
    steps += ["retry", "error", "retry", "error", "retry", "error"]
    got = await drive(dashboard, steps, ("t1", "t2", "fails", "t4", "t5", "t6", "t7"))
    assert got["delays"] == [500, 1000, 2000, 4000, 8000, 10_000, 10_000]
    assert got["running"] is True


async def test_a_connection_up_ten_seconds_starts_the_backoff_again(dashboard: Page) -> None:
    steps = ["error", "retry", "error", "retry", "open", "wait 10000", "error"]
    got = await drive(dashboard, steps)
    assert got["delays"] == [500, 1000, 500]


async def test_a_refused_stream_token_stops_the_stream(dashboard: Page) -> None:
    got = await drive(dashboard, ["open", "error", "retry"], ("t1", "refused"))
    assert got["delays"] == [500]
    assert got["states"] == ["reconnecting", "live", "reconnecting!", "offline"]
    assert got["running"] is False


# --- metrics.js: the period and the tiles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-11-24", "2026-11-24", 1),
        ("2026-01-01", "2026-12-31", 365),
        ("2028-01-01", "2028-12-31", 366),
        ("2026-03-28", "2026-03-30", 3),  # across the clocks going forward
        ("2026-10-24", "2026-10-26", 3),
    ],
)
async def test_period_days(dashboard: Page, start: str, end: str, days: int) -> None:
    assert await run(dashboard, METRICS, "m.periodDays(arg[0], arg[1])", [start, end]) == days


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        ("2025-11-24", "2026-11-24", None),  # 366 days: the API's limit
        ("2025-11-23", "2026-11-24", "Choisissez une période de 366 jours au plus."),
        ("2026-11-24", "2026-11-24", None),
        ("2026-11-25", "2026-11-24", "La date de début doit précéder la date de fin."),
        ("", "2026-11-24", "Choisissez les deux dates de la période."),
        ("2026-11-24", "", "Choisissez les deux dates de la période."),
    ],
)
async def test_period_problem(dashboard: Page, start: str, end: str, problem: str | None) -> None:
    assert await run(dashboard, METRICS, "m.periodProblem(arg[0], arg[1])", [start, end]) == problem


@pytest.mark.parametrize(
    ("days", "now", "period"),
    [
        (30, NOW, {"from": "2026-10-26", "to": "2026-11-24"}),
        (30, "2026-11-24T23:30:00Z", {"from": "2026-10-27", "to": "2026-11-25"}),  # already the 25th in Paris
        (1, NOW, {"from": "2026-11-24", "to": "2026-11-24"}),
        (7, "2026-03-30T10:00:00Z", {"from": "2026-03-24", "to": "2026-03-30"}),
    ],
)
async def test_last_days(dashboard: Page, days: int, now: str, period: dict[str, str]) -> None:
    assert (
        await run(dashboard, METRICS, "m.lastDays(arg.days, new Date(arg.now))", {"days": days, "now": now}) == period
    )


TILES = """(() => {
  const container = document.createElement("div");
  m.renderMetrics(container, arg);
  return {
    period: container.querySelector(".period-shown").textContent,
    tiles: [...container.querySelectorAll(".tile")].map((tile) => [
      tile.querySelector(".tile-title").textContent,
      tile.querySelector(".tile-value").textContent,
      [...tile.querySelectorAll("dd")].map((dd) => dd.textContent),
      tile.querySelector(".tile-hint")?.textContent ?? null,
      tile.classList.contains("tile-warning"),
    ]),
  };
})()"""


async def test_metrics_tiles(dashboard: Page) -> None:
    metrics = {
        "from": "2026-10-26",
        "to": "2026-11-24",
        "alerts_by_level": {"red": 3, "orange": 1204},
        "time_to_acknowledge": {"median_s": 840, "p90_s": 11_100, "within_service_level_share": 0.875, "count": 40},
        "time_to_close": {"median_s": 90_000, "p90_s": 187_200, "count": 38},
        "acted_share": 0.4,
        "patient_weeks_with_alert_share": 0.25,
        "alert_rate_per_patient_week": 0.3,
        "overdue_now": 2,
    }
    got = await run(dashboard, METRICS, TILES, metrics)
    assert got["period"] == "Période du 26/10/2026 au 24/11/2026"
    assert [tile[:3] for tile in got["tiles"]] == [
        ["Alertes par niveau", f"1{NNBSP}207", ["3", f"1{NNBSP}204"]],
        ["Délai de prise en charge", "14 min", ["14 min", "3 h 05", f"88{NBSP}%", "40"]],
        ["Délai de clôture", "1 j 1 h", ["1 j 1 h", "2 j 4 h", "38"]],
        ["Part des alertes suivies d'une action", f"40{NBSP}%", []],
        ["Semaines-patients avec une alerte", f"25{NBSP}%", ["0,30"]],
        ["Alertes en retard maintenant", "2", []],
    ]
    assert [tile[4] for tile in got["tiles"]] == [False] * 5 + [True]
    assert "pas de données sur la période" not in [tile[3] for tile in got["tiles"]]


async def test_metrics_tiles_of_an_empty_period(dashboard: Page) -> None:
    got = await run(
        dashboard,
        METRICS,
        TILES,
        {
            "from": "2026-11-24",
            "to": "2026-11-24",
            "time_to_acknowledge": {"median_s": None, "p90_s": None, "within_service_level_share": None, "count": 0},
            "time_to_close": {"median_s": None, "count": 0},
            "acted_share": None,
            "patient_weeks_with_alert_share": None,
            "overdue_now": 0,
        },
    )
    none = "pas de données sur la période"
    assert [[tile[1], tile[2], tile[3], tile[4]] for tile in got["tiles"]] == [
        ["0", ["0", "0"], None, False],
        ["—", ["—", "—", "—", "0"], none, False],
        ["—", ["—", "—", "0"], none, False],
        ["—", [], none, False],
        ["—", ["—"], none, False],
        ["0", [], "Non prises dans le délai prévu.", False],
    ]


# --- patient.js: the texts of the patient view ------------------------------------------------------------------

PATIENT = "/dashboard/patient.js"


@pytest.mark.parametrize(
    ("sessions", "next_session"),
    [
        (
            [
                {"scheduled_for": "2026-11-24T07:00:00Z"},  # began this morning: past, not the next one
                {"scheduled_for": "2026-12-08T07:00:00Z"},
                {"scheduled_for": "2026-12-01T07:00:00Z"},
            ],
            "2026-12-01T07:00:00.000Z",
        ),
        ([{"scheduled_for": "2026-11-23T21:00:00Z"}], None),  # last night's
        ([{"scheduled_for": "2026-11-24T13:00:00Z"}], "2026-11-24T13:00:00.000Z"),  # this afternoon's
        ([{"scheduled_for": NOW}], "2026-11-24T10:00:00.000Z"),
        ([{"scheduled_for": None}, {}], None),
        (None, None),
    ],
)
async def test_next_session_of_the_patient_view(
    dashboard: Page, sessions: list[dict[str, Any]] | None, next_session: str | None
) -> None:
    expression = "(d => d && d.toISOString())(m.nextSessionDate(arg.sessions, new Date(arg.now)))"
    assert await run(dashboard, PATIENT, expression, {"sessions": sessions, "now": NOW}) == next_session


@pytest.mark.parametrize(
    ("until", "day"),
    [
        # The API gives the instant it stops: midnight in Paris after the last day.
        ("2026-11-25T00:00:00+01:00", "2026-11-24"),
        ("2026-11-24T23:00:00Z", "2026-11-24"),
        ("2026-03-30T00:00:00+02:00", "2026-03-29"),  # after the clocks went forward
        ("2026-10-26T00:00:00+01:00", "2026-10-25"),  # after they went back
        ("2026-11-24", "2026-11-24"),  # a bare date is the last day itself
        (None, ""),
    ],
)
async def test_last_day_of_an_expected_level(dashboard: Page, until: str | None, day: str) -> None:
    assert await run(dashboard, PATIENT, "m.lastDayOf(arg)", until) == day


async def test_terms_in_the_questionnaires_order_then_unknown_ones_alphabetically(dashboard: Page) -> None:
    terms = ["zz_new", "diarrhea", "aa_new", "nausea", "ecog"]
    assert await run(dashboard, PATIENT, "m.orderTerms(arg)", terms) == [
        "nausea",
        "ecog",
        "diarrhea",
        "aa_new",
        "zz_new",
    ]


@pytest.mark.parametrize(
    ("alert", "text"),
    [
        ({**CLAIRE, "acknowledged_at": "2026-11-24T15:50:00Z"}, "Prise par Claire Martin le 24/11/2026 à 16:50"),
        ({"acknowledged_at": "2026-11-24T15:50:00Z"}, "Prise par — le 24/11/2026 à 16:50"),
        # A nurse reopened it after it was taken: hers since then.
        (
            {
                **CLAIRE,
                "acknowledged_at": "2026-11-24T15:50:00Z",
                "reopened_by": "ide-karim",
                "reopened_by_name": "Karim Benali",
                "reopened_at": "2026-11-25T08:00:00Z",
            },
            "Rouverte par Karim Benali le 25/11/2026 à 09:00",
        ),
        (
            {**CLAIRE, "acknowledged_at": "2026-11-24T15:50:00Z", "reopened_at": "2026-11-25T08:00:00Z"},
            "Rouverte par Claire Martin le 25/11/2026 à 09:00",
        ),
    ],
)
async def test_in_hand_text(dashboard: Page, alert: dict[str, Any], text: str) -> None:
    assert await run(dashboard, PATIENT, "m.inHandText(arg)", alert) == text


@pytest.mark.parametrize(
    ("submission", "text"),
    [
        ({"answered_by": "relative"}, "Un proche"),
        ({"answered_by": "nurse_phone", "recorded_by": "ide-claire"}, "nurse_phone · ide-claire"),
        (
            {"answered_by": "patient", "recorded_by": "ide-claire", "recorded_by_name": "Claire Martin"},
            "Patient·e · Claire Martin",
        ),
    ],
)
async def test_answered_by(dashboard: Page, submission: dict[str, Any], text: str) -> None:
    assert await run(dashboard, PATIENT, "m.answeredBy(arg)", submission) == text


@pytest.mark.parametrize(
    ("submission", "text"),
    [
        (
            {"answered_by": "patient", "authored": "2026-11-22T08:40:00Z", "received_at": "2026-11-24T09:40:00Z"},
            "Questionnaire du 22/11/2026 à 09:40 (arrivé 2 j 1 h plus tard) — Patient·e",
        ),
        (
            {"answered_by": "patient", "authored": "2026-11-24T09:39:00Z", "received_at": "2026-11-24T09:40:00Z"},
            "Questionnaire du 24/11/2026 à 10:39 — Patient·e",
        ),
    ],
)
async def test_questionnaire_title(dashboard: Page, submission: dict[str, Any], text: str) -> None:
    expression = "m.questionnaireTitle(arg).filter(Boolean).map((part) => part.textContent ?? part).join('')"
    assert await run(dashboard, PATIENT, expression, submission) == text


# --- session.js, views.js, live.js: the page's own decisions, apart from its DOM ---------------------------------

SESSION = "/dashboard/session.js"
VIEWS = "/dashboard/views.js"
LIVE = "/dashboard/live.js"
PATIENT_ID = "0b6f3c1e-6a52-4a8e-9d0b-5f3e2c1a7b90"
ALERT_ID = "5d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("status", "how", "text"),
    [
        (
            401,
            {"fromProvider": True, "providerToken": True},
            "Cette page n'a pas reconnu la connexion de l'hôpital. Réessayez, ou prévenez le support informatique.",
        ),
        # A reload with the provider's token, expired since: back to the hospital's account, not to a pasted token.
        (
            401,
            {"providerToken": True},
            "Votre session n'est plus valide. Reconnectez-vous avec le compte de l'hôpital.",
        ),
        (401, {"pasted": True}, "Ce jeton n'est pas valide ou a expiré. Collez un nouveau jeton."),
        # A token kept in the tab from before (a reload), or the session's under way: it has ended.
        (401, {}, "Votre session n'est plus valide. Collez un nouveau jeton."),
        (
            403,
            {"pasted": True},
            "Ce jeton n'a pas le rôle infirmier·ère coordinateur·rice nécessaire à cette page. Collez le jeton d'un "
            "compte qui l'a.",
        ),
        (
            403,
            {"fromProvider": True},
            "Votre compte de l'hôpital n'a pas le rôle infirmier·ère coordinateur·rice nécessaire à cette page. "
            "Demandez-le à l'administrateur des comptes de l'hôpital.",
        ),
    ],
)
async def test_refusal_text(dashboard: Page, status: int, how: dict[str, bool], text: str) -> None:
    expression = "m.refusalText(arg.status, 'rôle manquant', arg.how)"
    assert await run(dashboard, SESSION, expression, {"status": status, "how": how}) == text


@pytest.mark.parametrize("how", [{}, {"fromProvider": True}, {"providerToken": True}])
async def test_an_id_token_refused_at_sign_in_sends_the_nurse_to_the_it_support(
    dashboard: Page, how: dict[str, bool]
) -> None:
    # The API client's sentence for an id-token refusal, as the sign-in screen gets it: whichever way she signed in,
    # signing in again would bring the same token back, so « Reconnectez-vous » would send her round in circles.
    sentence = (
        "Contactez le support informatique : la connexion de l'hôpital envoie un jeton d'identité au lieu d'un jeton "
        "d'accès."
    )
    expression = "m.refusalText(401, arg.detail, arg.how)"
    assert await run(dashboard, SESSION, expression, {"detail": sentence, "how": how}) == sentence


@pytest.mark.parametrize(
    ("kept", "text"),
    [
        ({"closing": False, "phone": False}, ""),
        ({"closing": True, "phone": False}, " Votre clôture en cours sera rétablie quand vous vous reconnecterez."),
        (
            {"closing": None, "phone": True},
            " Votre saisie téléphonique en cours sera conservée si vous vous reconnectez dans les 15 minutes.",
        ),
        (
            {"closing": True, "phone": True},
            " Votre clôture en cours sera rétablie quand vous vous reconnecterez. Votre saisie téléphonique en cours "
            "sera conservée si vous vous reconnectez dans les 15 minutes.",
        ),
    ],
)
async def test_kept_text(dashboard: Page, kept: dict[str, bool | None], text: str) -> None:
    assert await run(dashboard, SESSION, "m.keptText(arg)", kept) == text


@pytest.mark.parametrize(
    ("fragment", "target"),
    [
        ("", {"view": "alerts"}),
        ("#alertes", {"view": "alerts"}),
        ("#indicateurs", {"view": "metrics"}),
        (f"#patient/{PATIENT_ID}", {"view": "patient", "patientId": PATIENT_ID, "alertId": None}),
        (f"#patient/{PATIENT_ID}/{ALERT_ID}", {"view": "patient", "patientId": PATIENT_ID, "alertId": ALERT_ID}),
        (f"#patient%2F{PATIENT_ID}", {"view": "patient", "patientId": PATIENT_ID, "alertId": None}),
        # An alert id that is not one: the patient all the same, with no alert in progress.
        (f"#patient/{PATIENT_ID}/<b>", {"view": "patient", "patientId": PATIENT_ID, "alertId": None}),
        ("#patient/Jeanne-Dupont", {"view": "alerts"}),  # not a pseudonymous id: the list
        ("#patient/", {"view": "alerts"}),
        ("#patient/%E0%A4%A", {"view": "alerts"}),  # a mangled address
        ("#inconnu", {"view": "alerts"}),
    ],
)
async def test_parse_route(dashboard: Page, fragment: str, target: dict[str, str | None]) -> None:
    assert await run(dashboard, VIEWS, "m.parseRoute(arg)", fragment) == target


@pytest.mark.parametrize(
    ("typed", "patient_id"),
    [
        (PATIENT_ID, PATIENT_ID),
        (f"  {PATIENT_ID.upper()}\n", PATIENT_ID),  # pasted from another system: case and spaces do not matter
        (PATIENT_ID[:8], None),  # the short id the list shows names no one for sure
        (PATIENT_ID.replace("-", ""), None),
        (f"#patient/{PATIENT_ID}", None),
        ("Jeanne Dupont", None),  # never a name: the platform knows patients by their pseudonymous id only
        ("", None),
    ],
)
async def test_patient_id_from_what_the_nurse_typed(dashboard: Page, typed: str, patient_id: str | None) -> None:
    assert await run(dashboard, VIEWS, "m.patientIdFrom(arg)", typed) == patient_id


@pytest.mark.parametrize(
    ("connection", "so_far", "text"),
    [
        ("reconnecting", {}, "Connexion…"),  # the first connection, not a lost one
        ("reconnecting", {"everLive": True}, "Connexion perdue — reconnexion…"),
        ("reconnecting", {"streamFailed": True}, "Connexion perdue — reconnexion…"),
        ("live", {}, "En direct"),
        ("offline", {"everLive": True}, "Hors ligne"),
        ("autre", {}, "autre"),
    ],
)
async def test_connection_text(dashboard: Page, connection: str, so_far: dict[str, bool], text: str) -> None:
    expression = "m.connectionText(arg.connection, arg.soFar)"
    assert await run(dashboard, LIVE, expression, {"connection": connection, "soFar": so_far}) == text


@pytest.mark.parametrize(
    ("payload", "concerns"),
    [
        ({"patient_id": PATIENT_ID}, True),
        ({"alert_id": "a-earlier"}, True),  # one of the alerts the view shows, whose event names no patient
        ({"alert_id": "elsewhere"}, False),
        ({"patient_id": "someone-else"}, False),
        ({}, False),
    ],
)
async def test_concerns_patient(dashboard: Page, payload: dict[str, str], concerns: bool) -> None:
    current = {"patientId": PATIENT_ID, "timeline": {"alerts": [{"id": "a-earlier"}]}}
    expression = "m.concernsPatient(arg.payload, arg.current)"
    assert await run(dashboard, LIVE, expression, {"payload": payload, "current": current}) is concerns
