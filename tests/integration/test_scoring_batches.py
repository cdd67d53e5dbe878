"""The set-wise scoring handler against the real database: a patient's submissions sharing one batch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.alerting import handlers
from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.events.catalog import make_event
from shared.events.questionnaire import QuestionnaireSubmittedV1, TermAnswer
from shared.messaging.consumer import Consumed

pytestmark = pytest.mark.integration


def _consumed(patient: uuid.UUID, authored: datetime, ecog: int | None) -> Consumed:
    submission = QuestionnaireSubmittedV1(
        submission_id=uuid.uuid4(),
        patient_id=patient,
        questionnaire_id="reconnect-symptoms",
        questionnaire_version="1.0.0",
        authored=authored,
        answered_by="patient",
        terms=(TermAnswer(term="fatigue", severity=1, interference=0),),
        ecog=ecog,
    )
    event = make_event("questionnaire.submitted", submission, source="/services/questionnaire", time=authored)
    return Consumed(event, {})


async def test_batch_is_applied_in_authored_order_with_in_batch_previous_and_merge(platform: Any) -> None:
    patient, other = uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    first = _consumed(patient, t0, ecog=1)  # no finding
    second = _consumed(patient, t0 + timedelta(days=3), ecog=2)  # ECOG worse by 1 than `first`: orange
    third = _consumed(patient, t0 + timedelta(days=6), ecog=3)  # ECOG 3: orange again, merges
    calm = _consumed(other, t0, ecog=0)
    pool = platform.alerting_platform.pool
    async with pool.acquire() as conn, conn.transaction():
        # Delivered out of order, all in one batch.
        await handlers.on_questionnaire_submitted([third, calm, second, first], conn)

    async with pool.acquire() as conn:
        alerts = await conn.fetch("SELECT * FROM alerts")
        scores = {r["submission_id"]: r for r in await conn.fetch("SELECT * FROM scores")}
        subjects = [r["subject"] for r in await conn.fetch("SELECT subject FROM outbox ORDER BY seq")]
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert["patient_id"] == patient and alert["level"] == "orange"
    assert alert["submission_ids"] == [second.event.data.submission_id, third.event.data.submission_id]
    assert [r["rule"] for r in alert["reasons"]] == ["orange.ecog"]
    assert scores[first.event.data.submission_id]["level"] == "none"
    assert scores[second.event.data.submission_id]["alert_id"] == alert["id"]
    assert scores[third.event.data.submission_id]["alert_id"] == alert["id"]
    assert subjects.count("alert.raised") == 1 and subjects.count("alert.updated") == 1
    assert subjects.count("submission.scored") == 4


@pytest.mark.parametrize("batches", [[[0], [1], [2]], [[2, 1, 0]]], ids=["three-batches", "one-batch"])
async def test_an_ecog_decline_counts_from_the_last_submission_that_answered_it(
    platform: Any, batches: list[list[int]]
) -> None:
    # ECOG is optional: 0, then a submission without it, then 2 is worse by 2, not a first answer.
    patient = uuid.uuid4()
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    submissions = [_consumed(patient, t0 + timedelta(days=3 * n), ecog) for n, ecog in enumerate((0, None, 2))]
    pool = platform.alerting_platform.pool
    for batch in batches:
        async with pool.acquire() as conn, conn.transaction():
            await handlers.on_questionnaire_submitted([submissions[i] for i in batch], conn)
    async with pool.acquire() as conn:
        alerts = await conn.fetch("SELECT level, reasons, submission_ids FROM alerts WHERE patient_id = $1", patient)
    assert [(a["level"], [r["rule"] for r in a["reasons"]]) for a in alerts] == [("orange", ["orange.ecog"])]
    assert alerts[0]["submission_ids"] == [submissions[2].event.data.submission_id]


async def test_a_hospital_s_rule_set_scores_and_labels_what_it_decides(platform: Any, tmp_path: Path) -> None:
    # The ward raises ORANGE for a self-rated ECOG of 4 only; the platform's defaults raise it from 3.
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"id": "chu-lyon", "version": "2", "ecog_orange_at": 4}), encoding="utf-8")
    settings = AlertingSettings(ALERT_RULES_FILE=str(rules_file))
    subscription = next(
        s for s in build_alerting(settings).subscriptions if s.spec.subject == "questionnaire.submitted"
    )
    assert subscription.batch  # its handler takes the batch as it is: the same function as subscription.handler
    scoring = subscription.batch_handler()
    ward, defaults = uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    pool = platform.alerting_platform.pool
    async with pool.acquire() as conn, conn.transaction():
        await scoring([_consumed(ward, t0, ecog=3)], conn)
        await handlers.on_questionnaire_submitted([_consumed(defaults, t0, ecog=3)], conn)
    async with pool.acquire() as conn:
        scored = {
            r["patient_id"]: (r["rule_set"], r["level"])
            for r in await conn.fetch(
                "SELECT patient_id, rule_set, level FROM scores WHERE patient_id = ANY($1)", [ward, defaults]
            )
        }
        alerted = await conn.fetch(
            "SELECT patient_id, rule_set FROM alerts WHERE patient_id = ANY($1)", [ward, defaults]
        )
    assert scored == {ward: ("chu-lyon@2", "none"), defaults: ("default@1", "orange")}
    assert [(a["patient_id"], a["rule_set"]) for a in alerted] == [(defaults, "default@1")]
