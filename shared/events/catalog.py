"""The event catalogue: every event the platform publishes, who owns it and who consumes it.

It drives publishing (subject, stream, dataschema), decoding on the consumer side (payload model,
upcasters) and the generated AsyncAPI document (``deploy/asyncapi/asyncapi.yaml``).
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.events.alerts import (
    AlertAcknowledgedV1,
    AlertEscalatedV1,
    AlertRaisedV1,
    AlertReopenedV1,
    AlertResolvedV1,
    AlertUpdatedV1,
    SubmissionScoredV1,
)
from shared.events.devices import (
    TabletInactiveV1,
    TabletLoanedV1,
    TabletLostV1,
    TabletReturnedV1,
    TabletWipedV1,
)
from shared.events.envelope import CloudEvent, dataschema_for, schema_version
from shared.events.inclusion import SessionScheduledV1
from shared.events.questionnaire import MessageSentV1, QuestionnaireSubmittedV1

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EventSpec:
    type: str  # = the NATS subject
    stream: str
    payload: builtins.type[BaseModel]
    version: int
    owner: str
    consumers: tuple[str, ...]
    summary: str
    # upcasters[n] turns a version-n payload into version n+1; decoding chains them.
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)

    @functools.cached_property
    def dataschema(self) -> str:
        return dataschema_for(self.type, self.version)


CATALOG: dict[str, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec(
            "questionnaire.submitted",
            "QUESTIONNAIRES",
            QuestionnaireSubmittedV1,
            1,
            owner="questionnaire",
            consumers=("alerting",),
            summary="A patient's symptom questionnaire was received and committed.",
        ),
        EventSpec(
            "message.sent",
            "QUESTIONNAIRES",
            MessageSentV1,
            1,
            owner="questionnaire",
            consumers=("alerting",),
            summary="A patient wrote a free-text message to the care team.",
        ),
        EventSpec(
            "submission.scored",
            "ALERTS",
            SubmissionScoredV1,
            1,
            owner="alerting",
            consumers=("questionnaire",),
            summary="A submission was scored (composite grades, level), with or without an alert.",
        ),
        EventSpec(
            "alert.raised",
            "ALERTS",
            AlertRaisedV1,
            1,
            owner="alerting",
            consumers=("dashboard",),
            summary="A rule fired and a new alert is open for the nurses.",
        ),
        EventSpec(
            "alert.updated",
            "ALERTS",
            AlertUpdatedV1,
            1,
            owner="alerting",
            consumers=("dashboard",),
            summary="A new finding was merged into an alert that was still open.",
        ),
        EventSpec(
            "alert.acknowledged",
            "ALERTS",
            AlertAcknowledgedV1,
            1,
            owner="alerting",
            consumers=("questionnaire", "dashboard"),
            summary="A nurse took the alert ('je prends'); the tablet shows 'seen by your nurse'.",
        ),
        EventSpec(
            "alert.resolved",
            "ALERTS",
            AlertResolvedV1,
            1,
            owner="alerting",
            consumers=("questionnaire", "dashboard"),
            summary="A nurse closed the alert with an outcome code (closing an alert not taken first also means its "
            "answers were seen).",
        ),
        EventSpec(
            "alert.escalated",
            "ALERTS",
            AlertEscalatedV1,
            1,
            owner="alerting",
            consumers=("dashboard",),
            summary="An alert was not acknowledged within its service level (escalation level 1, then 2).",
        ),
        EventSpec(
            "alert.reopened",
            "ALERTS",
            AlertReopenedV1,
            1,
            owner="alerting",
            consumers=("dashboard",),
            summary="A nurse reopened a resolved alert.",
        ),
        EventSpec(
            "tablet.loaned",
            "TABLETS",
            TabletLoanedV1,
            1,
            owner="devices",
            consumers=(),
            summary="A tablet was loaned to a patient; the loan issued its device token.",
        ),
        EventSpec(
            "tablet.returned",
            "TABLETS",
            TabletReturnedV1,
            1,
            owner="devices",
            consumers=("questionnaire",),
            summary="A loaned tablet came back; its device token is revoked.",
        ),
        EventSpec(
            "tablet.lost",
            "TABLETS",
            TabletLostV1,
            1,
            owner="devices",
            consumers=("questionnaire",),
            summary="A tablet was reported lost or stolen; the device token of its loan is revoked.",
        ),
        EventSpec(
            "tablet.wiped",
            "TABLETS",
            TabletWipedV1,
            1,
            owner="devices",
            consumers=(),
            summary="A tablet was wiped (with its proof) and may be made ready for another loan.",
        ),
        EventSpec(
            "tablet.inactive",
            "TABLETS",
            TabletInactiveV1,
            1,
            owner="devices",
            consumers=(),
            summary="A loaned tablet has been silent too long, or before a questionnaire is due (once per silence).",
        ),
        EventSpec(
            "session.scheduled",
            "INCLUSION",
            SessionScheduledV1,
            1,
            owner="inclusion",
            consumers=("alerting", "devices"),
            summary="A chemotherapy session was planned or moved; a questionnaire is due before it.",
        ),
    )
}


class UnknownEvent(LookupError):
    pass


class NewerEventVersion(ValueError):
    """A payload version a newer release of the service reads: during a rolling deploy, the replicas of that
    release will, so the event is retried rather than dead-lettered."""


def spec_for(event_type: str) -> EventSpec:
    try:
        return CATALOG[event_type]
    except KeyError:
        raise UnknownEvent(f"event type {event_type!r} is not in the catalogue") from None


_AnyEvent = CloudEvent[Any]  # parametrised once: a subscript per event costs more than its validation's share


def make_event(
    event_type: str,
    data: BaseModel,
    *,
    source: str,
    time: datetime,
    subject: str | None = None,
    event_id: str | None = None,
    causationid: str | None = None,
    correlationid: str | None = None,
) -> CloudEvent[Any]:
    """An event of the catalogue, dated ``time``: the publishing service's "now" (``Platform.clock``), the one that
    dates the rows it describes."""
    spec = spec_for(event_type)
    if not isinstance(data, spec.payload):
        raise TypeError(f"{event_type} carries {spec.payload.__name__}, not {type(data).__name__}")
    return _AnyEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event_type,
        subject=subject,
        time=time,
        dataschema=spec.dataschema,
        causationid=causationid,
        correlationid=correlationid,
        data=data,
    )


def decode_event(envelope: Mapping[str, Any]) -> CloudEvent[Any]:
    """Validate an envelope and its payload against the catalogue, upcasting old payload versions."""
    spec = spec_for(str(envelope.get("type")))
    version = schema_version(str(envelope.get("dataschema", "")))
    if version > spec.version:
        raise NewerEventVersion(f"{spec.type} version {version} is newer than this service knows ({spec.version})")
    if version < 1 or any(v not in spec.upcasters for v in range(version, spec.version)):
        raise ValueError(f"{spec.type} version {version} is not one this service can read")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ValueError("event data must be a JSON object")
    while version < spec.version:
        data = spec.upcasters[version](data)
        version += 1
    payload = spec.payload.model_validate(data)
    return _AnyEvent.model_validate({**envelope, "dataschema": spec.dataschema, "data": payload})
