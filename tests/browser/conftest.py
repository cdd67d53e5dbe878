"""The browser tests' ward: the real questionnaire and alerting services, and nurses' dashboards in Debian's
headless Chromium (fr-FR, Europe/Paris), signed in as the sign-in form leaves them."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import ROOT
from shared.testing.clock import PinnableClock
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import in_process, served

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# What this machine's closed network needs (no background requests to Google's hosts).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), "Debian's chromium is missing: make browser (apt-get install chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Ward:
    url: str
    tablet: httpx.AsyncClient
    alerting: Any
    tokens: TokenService
    browser: Browser
    # The ward's one clock, both services': the real time unless a test sets it (a day it checks, far from midnight).
    # Answers are given, received and scored at the same time, as they are on a ward whose servers agree on it.
    clock: PinnableClock
    tabs: list[BrowserContext] = field(default_factory=list)

    async def tab(self) -> BrowserContext:
        """A new browser tab set up as the ward's computers are (fr-FR, Paris), closed when the test ends: a page
        left open would go on polling and reconnecting, in the one browser every test shares, until the session ends."""
        context = await self.browser.new_context(
            viewport={"width": 1366, "height": 800}, locale="fr-FR", timezone_id="Europe/Paris"
        )
        self.tabs.append(context)
        return context

    async def open_dashboard(self, tab: BrowserContext) -> Page:
        """The dashboard in that tab, once its live stream is connected."""
        page = await tab.new_page()
        await page.goto(f"{self.url}/dashboard/")
        await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)
        return page

    async def dashboard(self, staff_id: str = "ide-claire") -> Page:
        """A nurse's dashboard, signed in (the token in sessionStorage, as the sign-in form leaves it)."""
        token = self.tokens.issue_staff_token(staff_id, {"nurse"})
        tab = await self.tab()
        await tab.add_init_script(f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()})")
        return await self.open_dashboard(tab)

    async def submit(
        self, answers: dict[str, Any] = RED_NAUSEA, patient: uuid.UUID | None = None, authored: datetime | None = None
    ) -> uuid.UUID:
        """A questionnaire from a patient's tablet: a new patient's unless ``patient`` is given, answered now by the
        ward's clock unless ``authored`` says when (a tablet that was offline sends its answers late)."""
        patient = patient or uuid.uuid4()
        token = self.tokens.issue_device_token(patient, "tablet-browser")
        response = await self.tablet.post(
            "/v1/submissions",
            content=orjson.dumps(questionnaire_response(answers, authored=authored or self.clock())),
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/fhir+json",
            },
        )
        assert response.status_code == 202, response.text
        return patient


@pytest.fixture
async def ward(service_env: dict[str, str], tokens: TokenService, browser: Browser) -> AsyncIterator[Ward]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    clock = PinnableClock()
    async with (
        in_process(build_questionnaire(QuestionnaireSettings(**env), clock=clock)) as (tablet, _),
        served(build_alerting(AlertingSettings(**env, ESCALATION_CHECK_S="3600"), clock=clock)) as (url, alerting),
    ):
        ward = Ward(url, tablet, alerting, tokens, browser, clock)
        try:
            yield ward
        finally:
            for tab in ward.tabs:
                await tab.close()


def contrast(first: str, second: str) -> float:
    """WCAG's contrast ratio of two computed colours ("rgb(224, 123, 0)"): 4.5 for text, 3 for a focus frame."""

    def luminance(colour: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# Where « appelez le 15 » is drawn in each shown element `selector` names: the top and bottom of each piece of those
# words on the screen (one piece per line they take; a span around them makes pieces of one line too), or null for an
# element that does not say them.
CALL_15_PIECES = """(selector) => [...document.querySelectorAll(selector)]
  .filter((e) => e.checkVisibility())
  .map((element) => {
  const words = "appelez le 15";
  const nodes = [];
  let text = "";
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    nodes.push({ node, from: text.length });
    text += node.data;
  }
  const start = text.indexOf(words);
  if (start < 0) return null;
  const end = start + words.length;
  const first = nodes.findLast((n) => n.from <= start);
  const last = nodes.find((n) => n.from < end && end <= n.from + n.node.data.length);
  const range = document.createRange();
  range.setStart(first.node, start - first.from);
  range.setEnd(last.node, end - last.from);
  return [...range.getClientRects()].filter((r) => r.width > 0).map((r) => [r.top, r.bottom]);
})"""


def on_one_line(pieces: list[list[float]]) -> bool:
    """Whether pieces of text (CALL_15_PIECES's) sit on one line: each one level with the first."""
    top, bottom = pieces[0]
    return all(abs(t - top) < (bottom - top) / 2 for t, _ in pieces)


def rows(page: Page) -> Any:
    return page.locator("#alert-rows [data-alert-id]")


async def send_bar_in_sight(page: Page, screenshot: str) -> None:
    """The review's "Envoyer mes réponses" in sight without scrolling through the answers: on arrival (the top of a
    review several screens long) and scrolled to the end, in a bar no taller than a quarter of the screen, that
    hides no answer once the patient has scrolled to the end. Screenshots of its top and its end as the patient sees
    them."""
    screen = page.locator("#screen-review")
    send = screen.get_by_role("button", name="Envoyer mes réponses", exact=True)
    bar = screen.locator(".send-bar")
    await page.evaluate("window.scrollTo(0, 0)")
    tall, high = await page.evaluate("[document.documentElement.scrollHeight, innerHeight]")
    assert tall > 2 * high, f"a review of {tall}px on a {high}px screen tests no scrolling"
    await expect(send).to_be_in_viewport(ratio=1)
    height = (await bar.evaluate("(b) => b.getBoundingClientRect().height")) / high
    assert height <= 0.25, f"the send bar takes {height:.0%} of the screen"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / screenshot))
    # The first "Modifier" under the bar, reached with the keyboard, is scrolled above it (focus not obscured).
    hidden = await bar.evaluate(
        """(bar) => {
          const buttons = [...document.querySelectorAll("#edit-who, #review-list [data-edit]")];
          const index = buttons.findIndex((b) => b.getBoundingClientRect().bottom > bar.getBoundingClientRect().top);
          buttons[index - 1].focus();
          return buttons[index].getAttribute("aria-label");
        }"""
    )
    await page.keyboard.press("Tab")
    focused = page.locator("*:focus")
    await expect(focused).to_have_attribute("aria-label", hidden)
    reached, top = await bar.evaluate(
        "(bar) => [document.activeElement.getBoundingClientRect().bottom, bar.getBoundingClientRect().top]"
    )
    assert reached <= top, f"{hidden} reached with the keyboard is under the send bar ({reached} > {top})"
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    await expect(send).to_be_in_viewport(ratio=1)
    await page.screenshot(path=str(ARTIFACTS / screenshot.replace(".png", "-end.png")))
    # Scrolled to the end, nothing of the review is under the bar: its last answer, "Précédent", "Pas maintenant".
    under = await bar.evaluate(
        """(bar) => {
          const top = bar.getBoundingClientRect().top;
          const above = [document.querySelector("#review-list li:last-child"),
                         ...document.querySelectorAll("#screen-review button")];
          return above.filter((e) => e.checkVisibility() && !bar.contains(e))
            .map((e) => [e.textContent.trim().slice(0, 40), e.getBoundingClientRect().bottom - top])
            .filter(([, below]) => below > 0);
        }"""
    )
    assert under == [], f"under the send bar once scrolled to the end: {under}"
