"""Expected levels in the patient view, in a real headless Chromium: a nurse expects a symptom, from the default
questionnaire or from a hospital's own one that the patient has answered about, and removes it again."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from shared.testing.waiting import eventually
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser


async def scored_elsewhere(ward: Ward, patient: uuid.UUID, term: str, grade: int) -> None:
    """Answers of a hospital's own questionnaire (QUESTIONNAIRE_DEFINITIONS_DIR), as the scoring stored them."""
    async with ward.alerting.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, grades, "
            "level, rule_set) VALUES ($1, $2, 'hospital-digestive', now() - interval '1 day', 'patient', '{}', "
            "jsonb_build_object($3::text, $4::int), 'none', 'default@1')",
            uuid.uuid4(),
            patient,
            term,
            grade,
        )


async def open_patient(page: Page) -> None:
    await expect(rows(page)).to_have_count(1, timeout=5_000)
    await rows(page).first.locator("[data-action=open-patient]").click()
    await expect(page.locator("#expected-form")).to_be_visible(timeout=5_000)


async def test_a_nurse_expects_a_symptom_of_a_hospital_questionnaire_then_removes_it(ward: Ward) -> None:
    patient = await ward.submit()
    await scored_elsewhere(ward, patient, "constipation", 2)
    page = await ward.dashboard("ide-claire")
    await open_patient(page)

    term = page.locator("#expected-term")
    # The default questionnaire's symptoms, in French, then the one only this patient's questionnaire asks about.
    await expect(term.locator("option[value=nausea]")).to_have_text("Nausées")
    await expect(term.locator("option").last).to_have_attribute("value", "constipation")

    await term.select_option("constipation")
    await page.locator("#expected-grade").select_option("2")
    await page.locator("[data-action=set-expected]").click()
    row = page.locator("#patient-view tr[data-expected-term=constipation]")
    await expect(row).to_be_visible(timeout=5_000)
    await expect(row.locator("td").first).to_have_text("2")
    await expect(row).to_contain_text("ide-claire")

    async with httpx.AsyncClient(base_url=ward.url) as api:
        token = ward.tokens.issue_staff_token("ide-claire", {"nurse"})
        headers = {"Authorization": f"Bearer {token}"}

        async def stored() -> list[tuple[str, int]]:
            timeline = (await api.get(f"/v1/patients/{patient}/timeline", headers=headers)).json()
            return [(e["term"], e["grade"]) for e in timeline["expected_levels"]]

        assert await eventually(stored) == [("constipation", 2)]

        await row.locator("[data-action=remove-expected]").click()
        await expect(row).to_be_hidden(timeout=5_000)
        assert await stored() == []
