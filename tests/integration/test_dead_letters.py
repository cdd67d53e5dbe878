"""A poison message ends in dlq.<subject>, and the consumer keeps going."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from nats.js.api import Header

from shared.events.questionnaire import TermAnswer
from shared.testing.events import questionnaire_submitted
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


def _impossible_submission() -> bytes:
    """Valid JSON and a valid envelope, but answers no PRO-CTCAE branching can produce (F=0, S=3)."""
    return questionnaire_submitted(TermAnswer(term="nausea", frequency=0, severity=3)).to_json()


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{not json", "undecodable"), (_impossible_submission(), "poison")],
    ids=["undecodable", "impossible-answers"],
)
async def test_poison_message_is_dead_lettered_and_consumer_continues(platform: Any, body: bytes, reason: str) -> None:
    js = platform.questionnaire_platform.js
    ack = await js.publish("questionnaire.submitted", body, headers={Header.MSG_ID: str(uuid.uuid4())})

    async def dead_letter() -> Any:
        try:
            return await js.get_last_msg("DEAD_LETTERS", "dlq.questionnaire.submitted")
        except Exception:
            return None

    letter = await eventually(dead_letter)
    assert letter.data == body
    assert letter.headers["Dlq-Reason"] == reason
    assert letter.headers["Dlq-Stream-Seq"] == str(ack.seq)
    assert letter.headers["Dlq-Consumer"] == "alerting-questionnaire-submitted"

    patient = uuid.uuid4()
    response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202

    async def alert_for_patient() -> bool:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return any(a["patient_id"] == str(patient) for a in items)

    await eventually(alert_for_patient)
    info = await js.consumer_info("QUESTIONNAIRES", "alerting-questionnaire-submitted")
    assert info.num_ack_pending == 0
    assert (await js.stream_info("DEAD_LETTERS")).state.messages == 1
