"""A poison message ends in dlq.<subject>, and the consumer keeps going."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import Header

from shared.events.questionnaire import TermAnswer
from shared.messaging.deadletter import DLQ_STREAM, dead_letter, dead_letter_at, dead_letters
from shared.messaging.topology import ensure_topology
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

    async def nothing_held() -> bool:
        info = await js.consumer_info("QUESTIONNAIRES", "alerting-questionnaire-submitted")
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

    # The consumer acks after its commit: the alert can be read a moment before the ack reaches the server.
    await eventually(nothing_held)
    assert (await js.stream_info("DEAD_LETTERS")).state.messages == 1


async def test_hundreds_of_dead_letters_are_listed_each_once_in_order_in_a_few_requests(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        assert await dead_letters(js) == []  # no DEAD_LETTERS stream yet: nothing to list
        await ensure_topology(js, ())
        count = 300

        async def one(i: int) -> None:
            await dead_letter(
                js,
                subject="message.sent" if i % 3 else "questionnaire.submitted",
                data=b"{not json" if i % 50 == 0 else orjson.dumps({"type": "message.sent", "id": f"event-{i}"}),
                headers={"traceparent": f"00-{i:032x}-{i:016x}-01"},
                stream="QUESTIONNAIRES",
                stream_seq=i,
                consumer="alerting-message-sent",
                deliveries=5,
                reason="retries_exhausted",
            )

        for first in range(1, count + 1, 50):
            await asyncio.gather(*(one(i) for i in range(first, first + 50)))
        gone = {1, 7, 150, count}  # replayed or discarded already, the first and the last among them
        for seq in gone:
            await js.delete_msg(DLQ_STREAM, seq)

        sent_before = nc.stats["out_msgs"]
        listed = await dead_letters(js)
        requests = nc.stats["out_msgs"] - sent_before

        assert [letter.seq for letter in listed] == [seq for seq in range(1, count + 1) if seq not in gone]
        assert len({letter.origin for letter in listed}) == count - len(gone)  # each dead letter once
        assert requests <= 10, f"{requests} requests to list {len(listed)} dead letters"
        for letter in (listed[0], listed[48], listed[-1]):  # each as a read of it alone gives it, payload included
            assert letter == await dead_letter_at(js, letter.seq)
        assert len({letter.at for letter in listed}) > 1 and all(letter.at for letter in listed)
        # Nothing acknowledged, deleted, or left behind.
        assert (await js.stream_info(DLQ_STREAM)).state.messages == count - len(gone)
        assert await js.consumers_info(DLQ_STREAM) == []

        sent_before = nc.stats["out_msgs"]
        assert await dead_letters(js, batch=64) == listed  # several pulls, one after the other
        assert nc.stats["out_msgs"] - sent_before <= 10
        assert [letter.seq for letter in await dead_letters(js, limit=5)] == [2, 3, 4, 5, 6]
        assert await js.consumers_info(DLQ_STREAM) == []
    finally:
        await nc.close()
