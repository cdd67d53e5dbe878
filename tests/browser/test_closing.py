"""Closing an alert on the dashboard, across nurses and sessions (real services, Debian's headless Chromium).

Nothing is closed unseen: a new answer that turns the alert red while the closing dialog is open shows in the
dialog, with a warning, and the outcome must be chosen again; a change the page has not heard of yet is refused by
the server (412) and shown the same way. A colleague's alert can be closed, naming her. A nurse who signs out
leaves nothing of hers to the next. A session about to run out says so, and one that runs out mid-closing gives
the closing back to the same nurse (and to nobody else) when she signs in again; the dialog says it too, since its
backdrop covers the page's banner. The patient view takes and closes its alert with the same dialog and checks;
a close refused there (412, 409) leaves the view behind the dialog showing the alert as it is now, and her own steps
coming back on the live stream are not news to it. A list the previous nurse asked for and that
comes back after she signed out is never shown to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime
from typing import Any, TypedDict
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, Route, expect

from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

NAUSEA_GRADE_2 = {"nausea.frequency": "2", "nausea.severity": "2"}
NOTE = "Appelée, nausées grade 3, je rappelle le médecin à 15 h"
PARIS = ZoneInfo("Europe/Paris")


async def dashboard(ward: Ward, staff_id: str = "ide-claire", ttl_s: int = 12 * 3600) -> Page:
    """A nurse's dashboard signed in with a token of the given lifetime."""
    token = ward.tokens.issue_staff_token(staff_id, {"nurse"}, ttl_s=ttl_s)
    context = await ward.tab()
    # Only for the first page of the tab: a later sign-in goes through the form, as a nurse's does.
    await context.add_init_script(
        "if (!sessionStorage.getItem('test.signed-in')) { sessionStorage.setItem('test.signed-in', '1'); "
        f"sessionStorage.setItem('oncofollow.staffToken', {orjson.dumps(token).decode()}); }}"
    )
    return await ward.open_dashboard(context)


async def sign_in(ward: Ward, page: Page, staff_id: str) -> None:
    await expect(page.locator("#signin-screen")).to_be_visible()
    await page.locator("#token-input").fill(ward.tokens.issue_staff_token(staff_id, {"nurse"}))
    # Pasted, then Enter, as in any sign-in form: it signs in rather than adding a line to the token.
    await page.locator("#token-input").press("Enter")
    await expect(page.locator("#staff-id")).to_have_text(staff_id)
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "live", timeout=10_000)


async def stored(ward: Ward, patient: uuid.UUID) -> Any:
    async with ward.alerting.pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT id, level, status, outcome, acknowledged_by, resolved_by FROM alerts WHERE patient_id = $1",
            patient,
        )


async def take_and_open_closing(page: Page) -> Any:
    # The row by its alert: taking it moves it down the list (a taken alert has stopped waiting).
    alert_id = await rows(page).first.get_attribute("data-alert-id")
    row = page.locator(f'#alert-rows [data-alert-id="{alert_id}"]')
    await row.locator("[data-action=ack]").click()
    await expect(row).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    await row.locator("[data-action=resolve]").click()
    dialog = page.locator("#resolve-dialog")
    await expect(dialog).to_be_visible()
    return dialog


async def test_the_closing_dialog_shows_the_alert_turning_red_and_asks_again(ward: Ward) -> None:
    patient = uuid.uuid4()
    await ward.submit(NAUSEA_GRADE_2, patient=patient)
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    dialog = await take_and_open_closing(page)
    await expect(page.locator("#resolve-context")).to_contain_text("ORANGE")
    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    await dialog.locator("textarea[name=note]").fill(NOTE)
    confirm = dialog.locator("[data-action=confirm-resolve]")
    await expect(confirm).to_be_enabled()

    # While she is about to confirm, the patient reports grade 3 nausea: the alert turns red and open again.
    await ward.submit(RED_NAUSEA, patient=patient)
    await expect(page.locator("#resolve-context")).to_contain_text("ROUGE", timeout=5_000)
    await expect(page.locator("#resolve-context")).to_contain_text("grade 3")
    await expect(page.locator("#resolve-error")).to_contain_text(
        "Nouvelle réponse : l'alerte est passée en ROUGE. Vérifiez avant de clôturer"
    )
    await expect(page.locator("#resolve-owner")).to_contain_text("Alerte rouverte")
    # Her first choice was about the orange alert: she must choose again; her note stays.
    await expect(confirm).to_be_disabled()
    await expect(dialog.locator("select[name=outcome]")).to_have_value("")
    await expect(dialog.locator("textarea[name=note]")).to_have_value(NOTE)
    assert (await stored(ward, patient))["status"] == "open"

    await dialog.locator("select[name=outcome]").select_option("phone_call")
    await confirm.click()
    await expect(dialog).to_be_hidden(timeout=5_000)
    await expect(rows(page)).to_have_count(0, timeout=5_000)
    closed = await stored(ward, patient)
    assert (closed["level"], closed["status"], closed["outcome"]) == ("red", "resolved", "phone_call")


class Served(TypedDict):
    """What the page was answered for a list: route.fulfill's arguments."""

    status: int
    headers: dict[str, str]
    body: bytes


class ReplicaBehind:
    """The list as a replica behind serves it: once ``frozen``, every GET /v1/alerts is answered with the last list
    served before, whatever the database says since."""

    def __init__(self) -> None:
        self.frozen = False
        self.last: Served | None = None  # status, headers and body of the last list served unfrozen

    async def serve(self, route: Route) -> None:
        with contextlib.suppress(PlaywrightError):  # the tab closed meanwhile: the test is over
            if route.request.method != "GET":
                await route.fallback()
                return
            fetched = await route.fetch()
            answer: Served = {"status": fetched.status, "headers": fetched.headers, "body": await fetched.body()}
            # Asked before the freeze perhaps, but read after it: the database may have changed since.
            if self.frozen and self.last is not None:
                answer = self.last
            elif not self.frozen:
                self.last = answer
            await route.fulfill(**answer)

    async def served(self) -> bool:
        return self.last is not None


async def test_a_change_the_page_has_not_heard_of_is_refused_and_shown(ward: Ward) -> None:
    patient = uuid.uuid4()
    await ward.submit(NAUSEA_GRADE_2, patient=patient)
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    replica = ReplicaBehind()
    await page.route(lambda url: urlsplit(url).path == "/v1/alerts", replica.serve)
    dialog = await take_and_open_closing(page)
    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    # The alert changes and this page does not hear of it (a slow network, a replica behind). Without the replica
    # its own acknowledgement, coming back on the live stream after the change, reloads the list: the dialog then
    # shows the change itself and asks for the outcome again, and the close below waits on a disabled button.
    await eventually(replica.served)  # the list the acknowledgement reloads
    replica.frozen = True
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute("UPDATE alerts SET level = 'red', updated_at = now() WHERE patient_id = $1", patient)
    await expect(page.locator("#resolve-context")).to_contain_text("ORANGE")

    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(page.locator("#resolve-error")).to_contain_text("l'alerte est passée en ROUGE", timeout=5_000)
    await expect(page.locator("#resolve-context")).to_contain_text("ROUGE")
    await expect(dialog.locator("[data-action=confirm-resolve]")).to_be_disabled()
    assert (await stored(ward, patient))["status"] == "acknowledged"
    replica.frozen = False  # it catches up

    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(dialog).to_be_hidden(timeout=5_000)
    closed = await stored(ward, patient)
    assert (closed["level"], closed["status"]) == ("red", "resolved")


async def test_the_patient_view_takes_and_closes_its_alert_with_the_list_s_dialog_and_shows_it_closed(
    ward: Ward,
) -> None:
    replica = ReplicaBehind()
    page, patient, alert_id, current, dialog = await _closing_in_the_patient_view(ward, replica)
    assert (await stored(ward, patient))["acknowledged_by"] == "ide-claire"
    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    # The alert changes and this page has not heard of it (a replica behind, as in the list's case above): the close
    # names the version the view showed (412).
    await eventually(replica.served)
    replica.frozen = True
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute("UPDATE alerts SET level = 'red', updated_at = now() WHERE patient_id = $1", patient)
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(page.locator("#resolve-error")).to_contain_text("l'alerte est passée en ROUGE", timeout=5_000)
    await expect(dialog.locator("[data-action=confirm-resolve]")).to_be_disabled()
    assert (await stored(ward, patient))["status"] == "acknowledged"
    replica.frozen = False

    # The live stream is cut as she closes, so that her close comes back to the page after the view has reloaded.
    cut = await _cut_live_stream(page, ward)
    await dialog.locator("select[name=outcome]").select_option("phone_call")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(dialog).to_be_hidden(timeout=5_000)
    # The view shows it closed: no alert in progress any more, and its history says who closed it and how.
    item = page.locator(f'#patient-view [data-prior-alert-id="{alert_id}"]')
    await expect(item).to_have_attribute("data-status", "resolved", timeout=5_000)
    await expect(item.locator(".history-steps")).to_contain_text("Clôturée par ide-claire")
    await expect(item.locator(".history-steps")).to_contain_text("Appel téléphonique")
    await expect(current).to_have_count(0)
    await expect(item).to_be_focused()
    await expect(page.locator("#patient-view")).to_be_visible()
    closed = await stored(ward, patient)
    assert (closed["level"], closed["status"], closed["outcome"], closed["resolved_by"]) == (
        "red",
        "resolved",
        "phone_call",
        "ide-claire",
    )
    # Her own close comes back, replayed on reconnection: it tells the view nothing it does not show.
    cut.reconnect()
    resolved_seq = await _stream_seq(ward, "alert.resolved", alert_id)
    await page.wait_for_function(
        "seq => Number(sessionStorage.getItem('oncofollow.lastEventId')) >= seq", arg=resolved_seq, timeout=5_000
    )
    await expect(page.locator("#patient-view .stale-patient")).to_have_count(0)


async def test_the_patient_view_behind_the_closing_dialog_shows_the_alert_the_server_refused_to_close(
    ward: Ward,
) -> None:
    page, patient, alert_id, current, dialog = await _a_close_refused_in_the_patient_view(ward)
    # The view behind the dialog shows the alert as it is now, not as it was: red, open again, the new answers.
    await expect(current.locator(".current-alert-head .level-badge")).to_contain_text("ROUGE", timeout=5_000)
    await expect(current).to_contain_text("Pas encore prise")
    await expect(current.locator(".reasons")).to_contain_text("grade 3")
    await expect(current.locator(".submission-detail")).to_have_count(2)
    await expect(current.locator("[data-action=ack]")).to_be_visible()
    await expect(current.locator("[data-action=resolve]")).to_have_count(0)
    await expect(page.locator("#patient-view table.trend .level-cell")).to_have_count(2)
    item = page.locator(f'#patient-view [data-prior-alert-id="{alert_id}"]')
    await expect(item).to_have_attribute("data-status", "open")
    await expect(item.locator(".level-badge")).to_contain_text("ROUGE")
    # The dialog stays open, her place in it kept: the outcome to choose again, her note as she wrote it.
    await expect(dialog).to_be_visible()
    await expect(page.locator("#patient-view")).to_be_visible()
    await expect(dialog.locator("select[name=outcome]")).to_be_focused()
    await expect(dialog.locator("select[name=outcome]")).to_have_value("")
    await expect(dialog.locator("textarea[name=note]")).to_have_value(NOTE)
    assert (await stored(ward, patient))["status"] == "open"

    await dialog.locator("select[name=outcome]").select_option("phone_call")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(dialog).to_be_hidden(timeout=5_000)
    await expect(item).to_have_attribute("data-status", "resolved", timeout=5_000)
    await expect(item.locator(".history-steps")).to_contain_text("Clôturée par ide-claire")
    await expect(current).to_have_count(0)
    await expect(item).to_be_focused()
    closed = await stored(ward, patient)
    assert (closed["level"], closed["status"], closed["outcome"]) == ("red", "resolved", "phone_call")


async def test_a_nurse_who_cancels_a_refused_close_finds_the_patient_view_as_it_is_now(ward: Ward) -> None:
    _, patient, alert_id, current, dialog = await _a_close_refused_in_the_patient_view(ward)
    await expect(current.locator(".current-alert-head .level-badge")).to_contain_text("ROUGE", timeout=5_000)
    await dialog.locator("[data-action=cancel-dialog]").click()
    await expect(dialog).to_be_hidden()
    await expect(current).to_contain_text("Pas encore prise")
    await expect(current.locator(".reasons")).to_contain_text("grade 3")
    # "Clôturer" is gone with the alert open again: the focus goes to what the view offers for it now.
    await expect(current.locator(f'[data-action=ack][data-alert-id="{alert_id}"]')).to_be_focused()
    assert (await stored(ward, patient))["status"] == "open"


async def test_a_nurse_who_cancels_before_the_patient_view_has_reloaded_keeps_her_place(ward: Ward) -> None:
    # The view's reload after the 412 arrives only after she cancelled: the render that replaces the button she was
    # given back the focus with ("Clôturer") gives it to what the view offers now ("Je prends"), not to the page.
    held = asyncio.Event()
    reloads: list[Route] = []

    async def hold_the_reload(route: Route) -> None:
        reloads.append(route)
        await held.wait()
        with contextlib.suppress(PlaywrightError):
            await route.continue_()

    page, patient, alert_id, current, dialog = await _closing_in_the_patient_view(ward)
    await page.route(lambda url: urlsplit(url).path == f"/v1/patients/{patient}/timeline", hold_the_reload)
    await _refused_as_changed(page, ward, patient, dialog)
    deadline = time.monotonic() + 5
    while not reloads:  # the view's reload has been asked for, and is held
        assert time.monotonic() < deadline, "the patient view was not reloaded after the 412"
        await asyncio.sleep(0.02)
    await dialog.locator("[data-action=cancel-dialog]").click()
    await expect(dialog).to_be_hidden()
    await expect(current.locator("[data-action=resolve]")).to_be_focused()  # the view not reloaded yet
    held.set()
    await expect(current.locator(".current-alert-head .level-badge")).to_contain_text("ROUGE", timeout=5_000)
    await expect(current.locator(f'[data-action=ack][data-alert-id="{alert_id}"]')).to_be_focused()


async def _a_close_refused_in_the_patient_view(ward: Ward) -> tuple[Page, uuid.UUID, str, Locator, Locator]:
    """A nurse closing an orange alert from its patient view, refused (412): a new answer turned it red meanwhile,
    and her page had not heard of it."""
    page, patient, alert_id, current, dialog = await _closing_in_the_patient_view(ward)
    await _refused_as_changed(page, ward, patient, dialog)
    return page, patient, alert_id, current, dialog


async def _refused_as_changed(page: Page, ward: Ward, patient: uuid.UUID, dialog: Locator) -> None:
    """The close of the open dialog refused (412): the patient reported grade 3 nausea meanwhile, merged into the
    alert (red, and open again), and this page has not heard of it (its live stream is cut)."""
    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    await dialog.locator("textarea[name=note]").fill(NOTE)
    await _cut_live_stream(page, ward)
    await ward.submit(RED_NAUSEA, patient=patient)
    await _stored_level(ward, patient, "red")
    await expect(page.locator("#patient-view .current-alert-head .level-badge")).to_contain_text("ORANGE")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(page.locator("#resolve-error")).to_contain_text("l'alerte est passée en ROUGE", timeout=5_000)
    await expect(page.locator("#resolve-context")).to_contain_text("ROUGE")


async def test_the_patient_view_shows_closed_an_alert_a_colleague_closed_while_the_dialog_was_open(
    ward: Ward,
) -> None:
    page, patient, alert_id, current, dialog = await _closing_in_the_patient_view(ward)
    await dialog.locator("select[name=outcome]").select_option("no_action_needed")
    # Karim closes it meanwhile, and this page has not heard of it: the server refuses her close (409).
    await _cut_live_stream(page, ward)
    await _closed_through_the_api(ward, alert_id, "ide-karim")
    await dialog.locator("[data-action=confirm-resolve]").click()

    await expect(dialog).to_be_hidden(timeout=5_000)
    await expect(page.locator("#toasts")).to_contain_text("Cette alerte est déjà clôturée.")
    item = page.locator(f'#patient-view [data-prior-alert-id="{alert_id}"]')
    await expect(item).to_have_attribute("data-status", "resolved", timeout=5_000)
    await expect(item.locator(".history-steps")).to_contain_text("Clôturée par ide-karim")
    await expect(current).to_have_count(0)
    await expect(item).to_be_focused()
    assert (await stored(ward, patient))["resolved_by"] == "ide-karim"


async def _closed_through_the_api(ward: Ward, alert_id: str, staff_id: str) -> None:
    """A nurse closes the alert from another screen (a call made, phone_call)."""
    async with httpx.AsyncClient(base_url=ward.url) as api:
        closed = await api.post(
            f"/v1/alerts/{alert_id}/resolve",
            json={"outcome": "phone_call"},
            headers={"Authorization": f"Bearer {ward.tokens.issue_staff_token(staff_id, {'nurse'})}"},
        )
    assert closed.status_code == 200, closed.text


async def _closing_in_the_patient_view(
    ward: Ward, replica: ReplicaBehind | None = None
) -> tuple[Page, uuid.UUID, str, Locator, Locator]:
    """A new patient's orange alert, opened in its patient view, taken there, and its closing dialog open; the page's
    lists served by ``replica`` from before it is taken."""
    patient = uuid.uuid4()
    await ward.submit(NAUSEA_GRADE_2, patient=patient)
    page = await dashboard(ward)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    if replica is not None:
        await page.route(lambda url: urlsplit(url).path == "/v1/alerts", replica.serve)
    alert_id = await rows(page).first.get_attribute("data-alert-id")
    assert alert_id
    await rows(page).first.locator("[data-action=open-patient]").click()
    current = page.locator('#patient-view section[aria-labelledby="current-alert-title"]')
    await expect(current).to_contain_text("Pas encore prise", timeout=5_000)
    await current.locator("[data-action=ack]").click()
    await expect(current).to_contain_text("Prise par ide-claire", timeout=5_000)
    closing = current.locator("[data-action=resolve]")
    await expect(closing).to_be_focused()  # what comes next for this alert
    await closing.click()
    dialog = page.locator("#resolve-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#resolve-context")).to_contain_text("ORANGE")
    return page, patient, alert_id, current, dialog


async def _stored_level(ward: Ward, patient: uuid.UUID, level: str) -> None:
    """Once the alert has that level in the database (a new answer is merged into it asynchronously)."""
    deadline = time.monotonic() + 5
    while (await stored(ward, patient))["level"] != level:
        assert time.monotonic() < deadline, f"the alert never turned {level}"
        await asyncio.sleep(0.05)


class _CutStream:
    """The page's live stream ended by the server, its reconnection held until ``reconnect``."""

    def __init__(self) -> None:
        self._released = asyncio.Event()

    async def hold(self, route: Route) -> None:
        await self._released.wait()
        await route.continue_()

    def reconnect(self) -> None:
        self._released.set()


async def _cut_live_stream(page: Page, ward: Ward) -> _CutStream:
    cut = _CutStream()
    await page.route(lambda url: urlsplit(url).path == "/v1/alerts/stream", cut.hold)
    ward.alerting.closing.set()  # what a stopping server does: its live streams end at once
    await expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "live", timeout=5_000)
    ward.alerting.closing.clear()
    return cut


async def _stream_seq(ward: Ward, event_type: str, alert_id: str | None) -> int:
    """The ALERTS stream sequence of the latest ``event_type`` event, once it is this alert's."""
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(Exception):
            message = await ward.alerting.js.get_last_msg("ALERTS", event_type)
            if orjson.loads(message.data)["data"]["alert_id"] == alert_id:
                return int(message.seq)
        assert time.monotonic() < deadline, f"no {event_type} for {alert_id} on ALERTS"
        await asyncio.sleep(0.05)


async def test_claire_closes_karim_s_alert_in_his_place(ward: Ward) -> None:
    patient = uuid.uuid4()
    await ward.submit(RED_NAUSEA, patient=patient)
    karim = await dashboard(ward, "ide-karim")
    await expect(rows(karim)).to_have_count(1, timeout=5_000)
    await rows(karim).first.locator("[data-action=ack]").click()
    await expect(rows(karim).first).to_have_attribute("data-status", "acknowledged", timeout=5_000)
    await karim.context.close()  # he goes off shift

    claire = await dashboard(ward, "ide-claire")
    row = rows(claire).first
    await expect(row).to_contain_text("Prise par ide-karim", timeout=5_000)
    await row.locator("[data-action=resolve]").click()
    dialog = claire.locator("#resolve-dialog")
    await expect(dialog).to_be_visible()
    await expect(claire.locator("#resolve-owner")).to_have_text("Prise par ide-karim : vous clôturez à sa place.")
    await dialog.locator("select[name=outcome]").select_option("phone_call")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(rows(claire)).to_have_count(0, timeout=5_000)
    closed = await stored(ward, patient)
    assert (closed["status"], closed["acknowledged_by"], closed["resolved_by"]) == (
        "resolved",
        "ide-karim",
        "ide-claire",
    )


async def test_the_next_nurse_finds_nothing_of_the_previous_one(ward: Ward) -> None:
    page = await dashboard(ward, "ide-claire")
    first, second = uuid.uuid4(), uuid.uuid4()
    await ward.submit(RED_NAUSEA, patient=first)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await ward.submit(RED_NAUSEA, patient=second)
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    await expect(page.locator("#red-banner-text")).to_contain_text("Nouvelle alerte ROUGE")
    # She closes one alert (a toast names its patient) and takes the other (the activity line names it).
    await take_and_open_closing(page)
    await page.locator("#resolve-dialog select[name=outcome]").select_option("phone_call")
    await page.locator("#resolve-dialog [data-action=confirm-resolve]").click()
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await rows(page).first.locator("[data-action=ack]").click()
    await expect(page.locator("#live-announcer")).to_contain_text("Alerte prise : ")
    await expect(page.locator("#toasts .toast")).not_to_have_count(0)
    # A patient id half pasted into "Dossier d'un patient", refused.
    await page.locator("#open-patient-id").fill(str(first)[:8])
    await page.locator("#open-patient-form").get_by_role("button", name="Ouvrir").click()
    await expect(page.locator("#open-patient-error")).to_be_visible()

    await page.locator("#sign-out").click()
    await expect(page.locator("#signin-screen")).to_be_visible()
    for trace in ("#live-announcer", "#last-updated", "#red-banner-text", "#toasts", "#alert-summary"):
        await expect(page.locator(trace)).to_have_text("")
    await expect(page.locator("#resolve-context")).to_have_text("")
    await expect(page.locator("#open-patient-id")).to_have_value("")
    await expect(page.locator("#open-patient-error")).to_be_hidden()

    await sign_in(ward, page, "ide-karim")
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await expect(page.locator("#live-announcer")).not_to_contain_text("prise en charge")
    await expect(page.locator("#red-banner")).to_be_hidden()
    await expect(page.locator("#toasts .toast")).to_have_count(0)


class HeldLists:
    """The page's list requests (GET /v1/alerts) answered with the list as it was when asked, but only when the test
    lets each through: a slow network."""

    def __init__(self) -> None:
        self.waiting: asyncio.Queue[asyncio.Event] = asyncio.Queue()
        self.holding = True

    async def on(self, page: Page) -> HeldLists:
        await page.route(lambda url: urlsplit(url).path == "/v1/alerts", self._hold)
        return self

    async def _hold(self, route: Route) -> None:
        try:
            answer = await route.fetch()
        except PlaywrightError:  # the tab closed while it was asked (the test is over): nothing to answer
            return
        if self.holding:
            release = asyncio.Event()
            await self.waiting.put(release)
            await release.wait()
        with contextlib.suppress(PlaywrightError):  # the page gave up on it (aborted at sign-out)
            await route.fulfill(response=answer)

    async def next(self) -> asyncio.Event:
        return await asyncio.wait_for(self.waiting.get(), timeout=10)

    def release_all(self) -> None:
        self.holding = False
        while not self.waiting.empty():
            self.waiting.get_nowait().set()


async def test_a_list_the_previous_nurse_asked_for_is_never_shown_to_the_next(ward: Ward) -> None:
    await ward.submit(RED_NAUSEA)
    page = await dashboard(ward, "ide-claire")
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    alert_id = await rows(page).first.get_attribute("data-alert-id")
    held = await HeldLists().on(page)
    # Claire takes the alert; the list her page asks for then (the alert, hers) is slow to come back.
    await rows(page).first.locator("[data-action=ack]").click()
    claire_s_list = await held.next()
    await page.locator("#sign-out").click()
    await expect(page.locator("#signin-screen")).to_be_visible()
    # Meanwhile the alert is closed; Karim signs in at the same screen before Claire's list comes back.
    await _closed_through_the_api(ward, alert_id, "ide-claire")
    await sign_in(ward, page, "ide-karim")

    claire_s_list.set()
    await page.wait_for_timeout(500)  # time enough for that answer to be shown, if it were
    await expect(rows(page)).to_have_count(0)
    await expect(page.locator("#alert-rows")).not_to_contain_text("ide-claire")
    await expect(page.locator("#alert-summary")).to_have_text("")
    # Karim's own list, when it comes, is the list as it is now.
    held.release_all()
    await expect(page.locator("#alert-rows")).to_contain_text("Aucune alerte en attente", timeout=5_000)
    await expect(page.locator("#toasts .toast")).to_have_count(0)
    # A list the page asks for after this (a live event) must not outlive the test in a held route.
    await page.unroute_all(behavior="ignoreErrors")


def _paris_minutes(*instants: float) -> set[str]:
    return {datetime.fromtimestamp(t, PARIS).strftime("%H:%M") for t in instants}


async def test_a_session_about_to_end_says_when(ward: Ward) -> None:
    long = await dashboard(ward, ttl_s=12 * 3600)
    await expect(long.locator("#session-banner")).to_be_hidden()

    # The token is issued somewhere while the page opens (seconds on a busy machine): it ends 120 s after that.
    opened = time.time()
    short = await dashboard(ward, ttl_s=120)
    ready = time.time()
    banner = short.locator("#session-banner")
    await expect(banner).to_be_visible()
    text = await banner.locator("#session-banner-text").inner_text()
    assert text.startswith("Votre session se termine à ") and text.endswith(" — reconnectez-vous pour continuer.")
    assert text.removeprefix("Votre session se termine à ")[:5] in _paris_minutes(opened + 120 - 1, ready + 120 + 1)


SESSION_WARNING_S = 5 * 60  # the dashboard warns this long before the staff token expires
# The innermost element saying when the session ends that the nurse can see and read: on screen, not hidden behind
# anything (a modal dialog's backdrop); null when there is none.
UNCOVERED_SESSION_WARNING = """() => {
  const saying = [...document.querySelectorAll("body *")].filter(
    (e) => e.textContent.trim().startsWith("Votre session se termine à"));
  for (const element of saying.filter((e) => !saying.some((other) => other !== e && e.contains(other)))) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (hit && (hit === element || element.contains(hit))) return element.textContent.trim();
  }
  return null;
}"""


async def test_the_session_end_stays_readable_while_the_closing_dialog_is_open(ward: Ward) -> None:
    await ward.submit(RED_NAUSEA)
    opened = time.time()
    page = await dashboard(ward, ttl_s=SESSION_WARNING_S + 8)
    ready = time.time()
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    dialog = await take_and_open_closing(page)
    # The warning comes while she is closing the alert: the dialog's backdrop covers the page's banner.
    await expect(page.locator("#session-banner")).to_be_visible(timeout=15_000)  # shown, though maybe covered
    await page.wait_for_function(f"() => ({UNCOVERED_SESSION_WARNING})() !== null", timeout=15_000)
    text = await page.evaluate(UNCOVERED_SESSION_WARNING)
    assert text.removeprefix("Votre session se termine à ")[:5] in _paris_minutes(
        opened + SESSION_WARNING_S + 7, ready + SESSION_WARNING_S + 9
    )
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("select[name=outcome]")).to_be_focused()  # the warning took nothing from her

    # Closed, the dialog leaves the page's banner in view, readable as before.
    await dialog.locator("[data-action=cancel-dialog]").click()
    await expect(dialog).to_be_hidden()
    assert await page.evaluate(UNCOVERED_SESSION_WARNING) == await page.locator("#session-banner-text").inner_text()


async def _closing_cut_short_by_expiry(ward: Ward) -> tuple[Page, uuid.UUID]:
    patient = uuid.uuid4()
    await ward.submit(RED_NAUSEA, patient=patient)
    page = await dashboard(ward, "ide-claire", ttl_s=15)
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    dialog = await take_and_open_closing(page)
    await dialog.locator("select[name=outcome]").select_option("phone_call")
    await dialog.locator("textarea[name=note]").fill(NOTE)
    # Her token runs out while she writes.
    await expect(page.locator("#signin-screen")).to_be_visible(timeout=30_000)
    await expect(page.locator("#signin-message")).to_contain_text("rétablie")
    storage = await page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert "grade 3" not in storage and "phone_call" not in storage
    return page, patient


async def test_a_closing_cut_short_by_an_expired_session_comes_back_to_the_same_nurse(ward: Ward) -> None:
    page, patient = await _closing_cut_short_by_expiry(ward)
    await sign_in(ward, page, "ide-claire")
    dialog = page.locator("#resolve-dialog")
    await expect(dialog).to_be_visible(timeout=5_000)
    await expect(dialog.locator("select[name=outcome]")).to_have_value("phone_call")
    await expect(dialog.locator("textarea[name=note]")).to_have_value(NOTE)
    await expect(page.locator("#resolve-error")).to_contain_text("conservée")
    await dialog.locator("[data-action=confirm-resolve]").click()
    await expect(dialog).to_be_hidden(timeout=5_000)
    assert (await stored(ward, patient))["outcome"] == "phone_call"


async def test_a_closing_cut_short_is_never_shown_to_another_nurse(ward: Ward) -> None:
    page, _ = await _closing_cut_short_by_expiry(ward)
    await sign_in(ward, page, "ide-karim")
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await expect(page.locator("#resolve-dialog")).to_be_hidden()
    assert NOTE not in await page.locator("body").inner_text()
    assert await page.locator("#resolve-note").input_value() == ""
    # Karim's sign-in dropped it: Claire, back after him, starts afresh too.
    await page.locator("#sign-out").click()
    await sign_in(ward, page, "ide-claire")
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await expect(page.locator("#resolve-dialog")).to_be_hidden()
