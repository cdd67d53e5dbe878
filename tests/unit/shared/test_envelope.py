"""The CloudEvents envelope and decoding through the catalogue, upcasters included."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import catalog
from shared.events.catalog import UnknownEvent, decode_event, make_event
from shared.events.envelope import raw_envelope, schema_version
from shared.events.questionnaire import MessageSentV1

SENT = datetime(2026, 11, 22, tzinfo=UTC)


def _message() -> MessageSentV1:
    return MessageSentV1(
        message_id=uuid.uuid4(),
        patient_id=uuid.uuid4(),
        sent_at=SENT,
        answered_by="patient",
        text="Bonjour",
    )


def test_round_trip_keeps_identity_and_version() -> None:
    event = make_event("message.sent", _message(), source="/services/questionnaire", time=SENT, subject="m-1")
    decoded = decode_event(raw_envelope(event.to_json()))
    assert decoded.id == event.id and decoded.type == "message.sent" and decoded.subject == "m-1"
    assert decoded.time == SENT
    assert decoded.dataschema == "urn:oncofollow:event:message.sent:1" and schema_version(decoded.dataschema) == 1
    assert decoded.data == event.data


def test_payload_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError):
        make_event("questionnaire.submitted", _message(), source="/x", time=SENT)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: {**e, "type": "patient.teleported"},
        lambda e: {**e, "dataschema": "urn:oncofollow:event:message.sent:7"},
        lambda e: {**e, "data": {"message_id": "not-a-uuid"}},
        lambda e: {**e, "data": "text"},
        lambda e: {**e, "specversion": "0.3"},
    ],
    ids=["unknown-type", "future-version", "invalid-payload", "payload-not-object", "other-specversion"],
)
def test_undecodable_envelopes(mutate: Any) -> None:
    envelope = orjson.loads(make_event("message.sent", _message(), source="/x", time=SENT).to_json())
    with pytest.raises((ValueError, ValidationError, UnknownEvent)):
        decode_event(mutate(envelope))


def test_old_versions_are_upcast_on_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    class MessageSentV2(BaseModel):
        model_config = ConfigDict(frozen=True)
        message_id: uuid.UUID
        body: str

    spec = catalog.CATALOG["message.sent"]
    upgraded = replace(
        spec,
        payload=MessageSentV2,
        version=2,
        upcasters={1: lambda d: {"message_id": d["message_id"], "body": d["text"]}},
    )
    v1 = orjson.loads(make_event("message.sent", _message(), source="/x", time=SENT).to_json())
    monkeypatch.setitem(catalog.CATALOG, "message.sent", upgraded)
    decoded = decode_event(v1)
    assert isinstance(decoded.data, MessageSentV2) and decoded.data.body == "Bonjour"
    assert decoded.dataschema.endswith(":2")
