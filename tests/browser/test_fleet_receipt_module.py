"""The patient's return receipt's French sentences (services/devices/fleet/receipt.js), run in the real headless
Chromium with the runner of es_modules.py, in an English browser on UTC+14: the days printed must be the day
hospital's (Paris), whatever the computer's language and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.es_modules import modules_page, run

pytestmark = pytest.mark.browser

RECEIPT = "/fleet/receipt.js"
PENDING = "L'effacement des données est prévu ; une nouvelle attestation peut être imprimée une fois fait."


@pytest.fixture(scope="module")
async def modules(browser: Browser) -> AsyncIterator[Page]:
    async with modules_page(browser, locale="en-US", timezone_id="Pacific/Kiritimati") as page:
        yield page


def wipe(method: str, proof: str, at: str = "2026-11-24T09:30:00Z", name: str | None = "Sophie Leroy") -> Any:
    return {"method": method, "proof": proof, "wiped_at": at, "wiped_by": "parc-sophie", "wiped_by_name": name}


@pytest.mark.parametrize(
    ("done", "sentence"),
    [
        (
            wipe("factory_reset", "1234"),
            "Les données de la tablette ont été effacées le 24/11/2026 par réinitialisation d'usine "
            "(preuve : fiche n° 1234), par Sophie Leroy.",
        ),
        # A bare number of a remote wipe is the MDM job's; no name known: the id.
        (
            wipe("mdm_remote_wipe", "4411", name=None),
            "Les données de la tablette ont été effacées le 24/11/2026 par effacement à distance (MDM) "
            "(preuve : tâche MDM n° 4411), par parc-sophie.",
        ),
        # A proof that is not a bare number is printed as typed.
        (
            wipe("reimaged", "MDM-job-4411"),
            "Les données de la tablette ont été effacées le 24/11/2026 par réinstallation complète du système "
            "(preuve : MDM-job-4411), par Sophie Leroy.",
        ),
        # 23:30 UTC is already the next day in Paris (and two days on in Kiritimati).
        (
            wipe("factory_reset", "2026/0457", at="2026-11-24T23:30:00Z"),
            "Les données de la tablette ont été effacées le 25/11/2026 par réinitialisation d'usine "
            "(preuve : fiche n° 2026/0457), par Sophie Leroy.",
        ),
        (None, PENDING),
    ],
    ids=["sheet", "mdm-job-no-name", "as-typed", "paris-day", "pending"],
)
async def test_the_wipe_sentence(modules: Page, done: Any, sentence: str) -> None:
    assert await run(modules, RECEIPT, "m.wipeSentence(arg)", {"wipe": done}) == sentence


async def test_the_title_promises_an_erasure_only_once_done(modules: Page) -> None:
    assert await run(modules, RECEIPT, "m.receiptTitle(arg)", {"wipe": wipe("factory_reset", "1")}) == (
        "Attestation de restitution et d'effacement des données"
    )
    assert await run(modules, RECEIPT, "m.receiptTitle(arg)", {"wipe": None}) == (
        "Attestation de restitution de la tablette"
    )


async def test_a_calendar_date_is_printed_as_written(modules: Page) -> None:
    assert await run(modules, RECEIPT, "[m.receiptDay('2027-11-24'), m.receiptDay('nonsense')]") == ["24/11/2027", "—"]


@pytest.mark.parametrize(
    ("condition", "note", "sentence"),
    [
        ("damaged", "écran fissuré en bas à droite.", "État au retour : endommagée (écran fissuré en bas à droite)."),
        ("worn", None, "État au retour : usée."),
        ("good", None, "État au retour : bon état."),
        (None, None, None),  # not recorded: the receipt has no such line rather than a guess
    ],
    ids=["damaged-with-note", "worn", "good", "not-recorded"],
)
async def test_the_condition_at_return(modules: Page, condition: str | None, note: str | None, sentence: Any) -> None:
    loan = {"return_condition": condition, "return_condition_note": note}
    assert await run(modules, RECEIPT, "m.conditionSentence(arg)", loan) == sentence
