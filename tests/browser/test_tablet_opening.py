"""The tablet page that cannot start says so, in French, at the text size the patient chose, and offers to try again
(index.html's #opening-notice, opening.js, tablet.css), in a real headless Chromium against the real questionnaire
service: a module that does not load (its own or one it imports; a 404, or a connection that fails), an error thrown
while it starts, a module that never comes, a browser that runs no script at all; and never on a normal opening.

The failures are Playwright's routes on a fresh tablet (no service worker yet: the page's requests reach the
routes); through the worker, after an update, it is tests/browser/test_tablet_offline.py. The 10 s the notice waits
for a page that has not started (tablet.css) are sped up fivefold (CDP ``Animation.setPlaybackRate``), so that a
test checks past them without waiting them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from shared.auth import TokenService
from tests.browser.conftest import ARTIFACTS, CALL_15_PIECES, on_one_line
from tests.browser.test_tablet_comfort import PORTRAIT_THEN_LANDSCAPE, TEAM_PHONE, WHOLE, tablet_service

pytestmark = pytest.mark.browser

TITLE = "La page n'a pas pu s'ouvrir complètement"
WHAT_TO_DO = "Vérifiez que la tablette est connectée à internet, puis touchez « Réessayer »."
ON_THE_SHEET = (
    "Si la page ne s'ouvre toujours pas, appelez l'équipe soignante de votre service. Son numéro est sur la fiche "
    "donnée avec la tablette."
)
NUMBER_SHOWN = (
    "Si la page ne s'ouvre toujours pas, appelez l'équipe soignante de votre service. Son numéro est aussi sur la "
    "fiche donnée avec la tablette."
)
EMERGENCY = "En cas d'urgence, appelez le 15."
MODULES = ("app.js", "comfort.js", "listen.js")  # what index.html loads as modules
LATE = 10  # seconds tablet.css waits for a page that has not started
ROOT_PX = (22, 28, 35, 44)  # the root's text size at 100, 130, 160 and 200 % (tablet.css, comfort.js's steps)
SPEED = 5  # how much faster the page's animations run here: 2 s, still well past a normal opening on a busy machine


def kept(name: str, value: Any) -> str:
    """An init script: what the tablet kept in localStorage at an earlier opening (comfort.js's keys)."""
    return f"localStorage.setItem('oncofollow.tablet.{name}', {orjson.dumps(orjson.dumps(value).decode()).decode()})"


# Whether the notice was ever drawn, sampled at every frame from the page's start (an opening may flash it).
RECORD_NOTICE = """
window.__noticeSeen = false;
const sample = () => {
  const notice = document.getElementById("opening-notice");
  if (notice && notice.checkVisibility({ visibilityProperty: true })) window.__noticeSeen = true;
  requestAnimationFrame(sample);
};
requestAnimationFrame(sample);
"""


Tablets = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def tablets(browser: Browser) -> AsyncIterator[Tablets]:
    """New tablets as lent (portrait unless told, French, Paris): nothing kept from an earlier opening, no service
    worker yet, so that Playwright's routes see every request (a worker's own are out of their reach). Closed when
    the test ends."""
    opened: list[BrowserContext] = []

    async def tablet(**options: Any) -> BrowserContext:
        as_lent = {"viewport": {"width": 800, "height": 1280}, "locale": "fr-FR", "timezone_id": "Europe/Paris"}
        context = await browser.new_context(**(as_lent | options))
        opened.append(context)
        return context

    try:
        yield tablet
    finally:
        for context in opened:
            await context.close()


async def faster(page: Page) -> None:
    """The page's animations (the notice's 10 s) SPEED times faster, for this page and the documents it opens."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Animation.enable")
    await cdp.send("Animation.setPlaybackRate", {"playbackRate": SPEED})


def notice(page: Page) -> Any:
    return page.locator("#opening-notice")


async def says_it_cannot_open(page: Page, *, within_s: float) -> None:
    """The notice in sight, whole, and what a screen reader is given: an alert, a heading, a link to try again."""
    await expect(notice(page)).to_be_visible(timeout=within_s * 1000)
    await expect(page.get_by_role("alert")).to_have_count(1)
    await expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    await expect(notice(page).locator("p.lead").first).to_have_text(WHAT_TO_DO)
    retry = page.get_by_role("link", name="Réessayer", exact=True)
    await expect(retry).to_be_visible()
    await expect(retry).to_have_attribute("href", "./")  # a plain link: it works with no script at all
    box = await retry.bounding_box()
    assert box is not None and box["height"] >= 48
    await expect(retry).to_be_in_viewport(ratio=1)  # in sight without scrolling, at 200% text too
    # The one sentence a patient must see here: in sight without scrolling as well.
    await expect(notice(page).get_by_text(EMERGENCY, exact=True)).to_be_in_viewport(ratio=1)
    await expect(page.locator(".screen:visible")).to_have_count(0)


async def not_read(page: Page) -> None:
    """The notice in the page, hidden, and nothing of it given to a screen reader."""
    await expect(notice(page)).to_be_attached()
    await expect(notice(page)).to_be_hidden()
    await expect(page.get_by_role("alert")).to_have_count(0)
    await expect(page.get_by_role("heading", name=TITLE)).to_have_count(0)
    await expect(page.get_by_role("link", name="Réessayer")).to_have_count(0)


async def test_no_module_loads_the_notice_says_so_at_once_at_the_size_chosen_and_retrying_opens_the_page(
    service_env: dict[str, str], tablets: Tablets, tokens: TokenService
) -> None:
    async with tablet_service(service_env) as url:
        page = await (await tablets()).new_page()
        # Text at 200% and the team's number, as an earlier opening kept them; config.json cannot be read now.
        await page.add_init_script(kept("textSize", 3))
        await page.add_init_script(kept("teamPhone", TEAM_PHONE))
        failing = {*MODULES, "config.json"}

        async def connection(route: Route) -> None:
            if route.request.url.rsplit("/", 1)[-1] in failing:
                await route.abort("connectionfailed")
            else:
                await route.continue_()

        await page.route(re.compile(r".*/tablet/[^/]*$"), connection)
        # The fleet manager's enrolment link, opened on a connection that fails mid-opening.
        token = tokens.issue_device_token(uuid.uuid4(), "tablet-opening")
        began = time.monotonic()
        await page.goto(f"{url}/tablet/#device_token={token}")

        # At once (not after the 10 s a page that has not started is given), though no module ran.
        await says_it_cannot_open(page, within_s=3)
        assert time.monotonic() - began < LATE / 2
        assert await page.evaluate("getComputedStyle(document.documentElement).fontSize") == "44px"
        # The number last known (the deployment's config.json unread), to call, and the sentence that goes with it.
        call = notice(page).get_by_role("link", name=f"Appeler l'équipe soignante : {TEAM_PHONE}")
        await expect(call).to_be_visible()
        await expect(call).to_have_attribute("href", "tel:0149812111")
        await expect(notice(page).get_by_text(NUMBER_SHOWN)).to_be_visible()
        await expect(notice(page).get_by_text(ON_THE_SHEET)).to_be_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "tablet-opening-failed-200.png"))

        # The connection is back: « Réessayer » opens the page, enrolled with the link's token it had not yet taken.
        failing.clear()
        await page.get_by_role("link", name="Réessayer").click()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        await not_read(page)
        assert await page.evaluate("localStorage.getItem('oncofollow.tablet.token')") == orjson.dumps(token).decode()


async def test_a_module_imported_that_is_not_found_says_so_with_the_team_s_number_and_retrying_opens_the_page(
    service_env: dict[str, str], tablets: Tablets, tokens: TokenService
) -> None:
    async with tablet_service(service_env, TEAM_PHONE=TEAM_PHONE) as url:
        page = await (await tablets()).new_page()
        # A module app.js imports, missing (the server mid-update): app.js cannot run; the others do.
        missing = True

        async def flow(route: Route) -> None:
            if missing:
                await route.fulfill(status=404, body="Not Found", content_type="text/plain")
            else:
                await route.continue_()

        await page.route("**/tablet/flow.js", flow)
        await page.goto(f"{url}/tablet/#device_token={tokens.issue_device_token(uuid.uuid4(), 'tablet-opening')}")
        await says_it_cannot_open(page, within_s=3)
        # Nothing kept on this tablet yet: the deployment's number (TEAM_PHONE), read from config.json.
        call = notice(page).get_by_role("link", name=f"Appeler l'équipe soignante : {TEAM_PHONE}")
        await expect(call).to_be_visible()
        await expect(notice(page).get_by_text(NUMBER_SHOWN)).to_be_visible()

        missing = False
        await page.get_by_role("link", name="Réessayer").click()
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        await not_read(page)


async def test_a_module_failing_after_home_is_drawn_sets_home_aside_for_screen_readers_and_the_keyboard(
    service_env: dict[str, str], tablets: Tablets, tokens: TokenService
) -> None:
    """listen.js is a module of its own: app.js draws home without it, then the notice covers home. What is under the
    notice is out of reach too: no screen reader reads home's buttons, no key press lands on them."""
    async with tablet_service(service_env) as url:
        page = await (await tablets()).new_page()
        await page.route(
            "**/tablet/listen.js", lambda route: route.fulfill(status=404, body="Not Found", content_type="text/plain")
        )
        await page.goto(f"{url}/tablet/#device_token={tokens.issue_device_token(uuid.uuid4(), 'tablet-aside')}")
        await expect(page.locator("body[data-screen=screen-home]")).to_be_attached(timeout=5_000)
        await expect(notice(page)).to_be_visible(timeout=3_000)
        await expect(page.get_by_role("alert")).to_have_count(1)
        await expect(page.get_by_role("button", name="Répondre au questionnaire")).to_have_count(0)
        for _ in range(6):
            await page.keyboard.press("Tab")
            inside = await page.evaluate(
                "() => document.activeElement === document.body || "
                "document.getElementById('opening-notice').contains(document.activeElement)"
            )
            assert inside, "a key press reached the page under the notice"


async def test_an_error_thrown_while_the_page_starts_says_so_at_once(
    service_env: dict[str, str], tablets: Tablets
) -> None:
    async with tablet_service(service_env) as url:
        # An old browser without an API the page uses as it starts (URLSearchParams, for the enrolment's fragment).
        old = await (await tablets()).new_page()
        await old.add_init_script("delete window.URLSearchParams")
        await old.goto(f"{url}/tablet/")
        await says_it_cannot_open(old, within_s=3)
        # No number known (none set, none kept): the printed sheet given with the tablet has it.
        await expect(notice(old).get_by_text(ON_THE_SHEET)).to_be_visible()
        await expect(notice(old).locator(".team-phone")).to_be_hidden()

        # app.js cut short: it no longer parses, and nothing of it runs. On a tablet of its own: the first one's
        # app.js registered the worker before it failed.
        cut = await (await tablets()).new_page()

        async def cut_short(route: Route) -> None:
            response = await route.fetch()
            body = await response.body()
            await route.fulfill(response=response, body=body[: len(body) // 2])

        await cut.route("**/tablet/app.js", cut_short)
        await cut.goto(f"{url}/tablet/")
        await says_it_cannot_open(cut, within_s=3)


async def test_never_on_a_normal_opening_and_after_10_s_on_one_that_has_not_started_even_with_no_script(
    service_env: dict[str, str], tablets: Tablets, tokens: TokenService
) -> None:
    async with tablet_service(service_env) as url:
        # A normal opening, followed well past the time the notice waits: never drawn, nor read.
        page = await (await tablets()).new_page()
        await faster(page)
        await page.add_init_script(RECORD_NOTICE)
        await page.goto(f"{url}/tablet/#device_token={tokens.issue_device_token(uuid.uuid4(), 'tablet-opening')}")
        await expect(page.locator("#screen-home")).to_be_visible(timeout=5_000)
        await page.wait_for_timeout(1.5 * LATE / SPEED * 1000)
        await not_read(page)
        assert await page.evaluate("window.__noticeSeen") is False
        assert await page.evaluate("document.getAnimations().length") == 0

        # app.js never comes (a connection that stalls): after the 10 s, the notice, at the size chosen; once the
        # page does start, it goes. On a tablet of its own: the worker the first one registered would answer it.
        stalled = await (await tablets()).new_page()
        await faster(stalled)
        await stalled.add_init_script(kept("textSize", 1))
        release = asyncio.Event()

        async def stall(route: Route) -> None:
            with contextlib.suppress(TimeoutError):  # bounded: a test that failed before the release still ends
                await asyncio.wait_for(release.wait(), timeout=10)
            await route.continue_()

        await stalled.route("**/tablet/app.js", stall)
        began = time.monotonic()
        await stalled.goto(f"{url}/tablet/", wait_until="commit")
        await says_it_cannot_open(stalled, within_s=5)
        assert time.monotonic() - began > 0.8 * LATE / SPEED  # not before the 10 s (sped up)
        assert await stalled.evaluate("getComputedStyle(document.documentElement).fontSize") == "28px"
        release.set()
        await expect(stalled.locator("#screen-setup")).to_be_visible(timeout=5_000)
        await not_read(stalled)

        # A browser that runs no script at all: the notice still shows, after the 10 s, with its plain link.
        page = await (await tablets(java_script_enabled=False)).new_page()
        await faster(page)
        await page.goto(f"{url}/tablet/")
        await expect(notice(page)).to_be_hidden()
        await says_it_cannot_open(page, within_s=5)
        async with page.expect_navigation():
            await page.get_by_role("link", name="Réessayer").click()
        await expect(page).to_have_url(f"{url}/tablet/")


# The notice's heading, first sentence and « Réessayer » as drawn: each one's width and height on the screen.
NOTICE_BOXES = """
() => ["h1", "p.lead", "#opening-retry"].map((selector) => {
  const box = document.querySelector(`#opening-notice ${selector}`).getBoundingClientRect();
  return [Math.round(box.width), Math.round(box.height)];
})
"""


@pytest.mark.parametrize("screen", [{"width": 800, "height": 1280}, {"width": 1280, "height": 800}])
async def test_with_no_script_at_all_the_notice_is_drawn_at_the_largest_text_size_never_below_the_one_chosen(
    service_env: dict[str, str], tablets: Tablets, screen: dict[str, int]
) -> None:
    """No script ran, so nothing could read the size the patient chose (localStorage): the notice is drawn as it is
    at 200 %, the largest, with « Réessayer » in sight without scrolling, in portrait as in landscape."""
    async with tablet_service(service_env) as url:
        page = await (await tablets(java_script_enabled=False, viewport=screen)).new_page()
        await faster(page)
        await page.goto(f"{url}/tablet/")
        await says_it_cannot_open(page, within_s=5)
        drawn = await page.evaluate(NOTICE_BOXES)
        # As opening.js draws it for a patient who chose 200 % (the test sets the size as it would; the page's own
        # scripts still do not run).
        await page.evaluate("() => document.documentElement.setAttribute('data-text-size', '3')")
        assert await page.evaluate("getComputedStyle(document.documentElement).fontSize") == "44px"
        assert drawn == await page.evaluate(NOTICE_BOXES)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"tablet-opening-no-script-{screen['width']}.png"))


# The root's text size and the emergency sentence's, in px.
EMERGENCY_SIZE = """
() => [document.documentElement, document.querySelector("#opening-notice .emergency")].map((element) =>
  parseFloat(getComputedStyle(element).fontSize))
"""


async def opened_without_its_app(context: BrowserContext, url: str, size: int) -> Page:
    """The page opened at text size ``size`` (A−/A+ steps), its app.js not found: the notice in sight."""
    page = await context.new_page()
    await page.add_init_script(kept("textSize", size))
    await page.route(
        "**/tablet/app.js", lambda route: route.fulfill(status=404, body="Not Found", content_type="text/plain")
    )
    await page.goto(f"{url}/tablet/")
    await says_it_cannot_open(page, within_s=3)
    return page


@pytest.mark.parametrize("screen", [{"width": 1280, "height": 800}, {"width": 800, "height": 1280}])
async def test_the_emergency_sentence_is_in_sight_without_scrolling_at_every_text_size(
    service_env: dict[str, str], tablets: Tablets, screen: dict[str, int]
) -> None:
    """« En cas d'urgence, appelez le 15. » is the one sentence a patient must see on the notice: in sight without
    scrolling at every size A− and A+ offer, in landscape as in portrait, on the longest notice (the team's number
    known: its sentence and its button too), and never smaller than the text chosen. At 200 % in landscape it was
    below the screen's foot, after the team's part; at 160 % too with the team's number, and in portrait. « appelez le
    15 » on one line at every size."""
    async with tablet_service(service_env, TEAM_PHONE=TEAM_PHONE) as url:
        context = await tablets(viewport=screen)
        for size, root_px in enumerate(ROOT_PX):
            page = await opened_without_its_app(context, url, size)
            call = notice(page).get_by_role("link", name=f"Appeler l'équipe soignante : {TEAM_PHONE}")
            await expect(call).to_be_visible()
            await expect(notice(page).get_by_text(NUMBER_SHOWN)).to_be_visible()
            root, emergency = await page.evaluate(EMERGENCY_SIZE)
            assert root == root_px, (size, root)
            assert emergency >= root, f"the emergency sentence at {emergency}px, under the {root}px chosen"
            await expect(notice(page).get_by_text(EMERGENCY, exact=True)).to_be_in_viewport(ratio=1)
            # « appelez le 15 » on one line: « le 15. » alone at the start of a line is read apart from « appelez ».
            [pieces] = await page.evaluate(CALL_15_PIECES, "#opening-notice .emergency")
            assert pieces and on_one_line(pieces), f"« appelez le 15 » broken at {root}px: {pieces}"
            if size == len(ROOT_PX) - 1:
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / f"tablet-opening-failed-200-{screen['width']}.png"))
            await page.close()


# The notice's heading's text size, and a screen's (« pas encore prête », in the page though not shown), in px.
HEADING_SIZES = """
() => ["#opening-notice h1", "#screen-setup h1"].map((selector) =>
  parseFloat(getComputedStyle(document.querySelector(selector)).fontSize))
"""


async def test_the_notice_s_heading_grows_as_the_screens_do_and_its_sentence_and_the_15_stay_whole_on_screen(
    service_env: dict[str, str], tablets: Tablets
) -> None:
    """« La page n'a pas pu s'ouvrir complètement » is a heading as every screen's: it grows less than the text, as
    theirs do (at 1.6 times the text it was 70 px high at 200 %, where theirs are 53), so that what the patient must
    read and do keeps the room. At every size, in portrait (as lent) and in landscape, its heading is the size of the
    screens' headings, and its heading, « Vérifiez que la tablette est connectée… », « Réessayer » and « En cas
    d'urgence, appelez le 15. » are whole on the screen on arrival: in sight, nothing cut, nothing wider than the
    screen, no sentence under the size chosen."""
    async with tablet_service(service_env, TEAM_PHONE=TEAM_PHONE) as url:
        context = await tablets()
        for size, root_px in enumerate(ROOT_PX):
            page = await opened_without_its_app(context, url, size)
            notice_heading, screen_heading = await page.evaluate(HEADING_SIZES)
            assert notice_heading == screen_heading, (root_px, notice_heading, screen_heading)
            for screen in PORTRAIT_THEN_LANDSCAPE:
                await page.set_viewport_size(screen)
                at = f"{screen['width']}×{screen['height']} at {root_px}px"
                for selector in ("h1", "p.lead", "#opening-retry", ".emergency"):
                    seen = await page.evaluate(WHOLE, f"#opening-notice {selector}")
                    assert 0 <= seen["top"] and seen["bottom"] <= seen["height"], (at, selector, seen)
                    assert 0 <= seen["left"] and seen["right"] <= seen["width"], (at, selector, seen)
                    assert max(seen["runs_out"]) <= 1, ("cut", at, selector, seen)
                    assert seen["page_width"] <= seen["width"], ("wider than the screen", at, seen)
                    assert seen["text"] >= seen["root"], (at, selector, seen)
                [pieces] = await page.evaluate(CALL_15_PIECES, "#opening-notice .emergency")
                assert pieces and on_one_line(pieces), f"« appelez le 15 » broken: {at} {pieces}"
                if size == len(ROOT_PX) - 1:
                    ARTIFACTS.mkdir(exist_ok=True)
                    await page.screenshot(path=str(ARTIFACTS / f"tablet-opening-heading-200-{screen['width']}.png"))
            await page.close()
