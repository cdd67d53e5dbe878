"""CloudEvents 1.0 envelope, structured JSON mode.

The envelope ``id`` is also the ``Nats-Msg-Id`` header (JetStream de-duplication) and the consumer's
inbox key, so one event keeps one identity from the outbox row to every consumer.

The envelope's ``time`` has no default: a service dates what it publishes by its own clock (``Platform.clock``),
the clock that dates the rows the event describes, so that an event and its rows agree when a test pins it.
"""

from __future__ import annotations

import uuid
from typing import Any, Generic, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)

CONTENT_TYPE = "application/cloudevents+json"
SCHEMA_PREFIX = "urn:oncofollow:event"


def dataschema_for(event_type: str, version: int) -> str:
    return f"{SCHEMA_PREFIX}:{event_type}:{version}"


def schema_version(dataschema: str) -> int:
    """The payload version carried in ``dataschema`` (``urn:oncofollow:event:<type>:<version>``)."""
    try:
        return int(dataschema.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"dataschema {dataschema!r} carries no version") from None


class CloudEvent(BaseModel, Generic[T]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    correlationid: str | None = None
    causationid: str | None = None
    data: T

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def raw_envelope(body: bytes) -> dict[str, Any]:
    """Parse the JSON of an envelope without validating its payload (decode happens per catalogue entry)."""
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError("an event envelope must be a JSON object")
    return value
