"""Every catalogued event round-trips through its envelope, and its payload schema only grows.

A payload's JSON Schema is committed per version under ``tests/contract/schemas/<type>.v<version>.json``.
Within a version a change must be additive (new optional fields): consumers still decode what older
producers sent, and events stay in the streams for days. Anything else (removing, renaming or retyping
a field, making one required) is a new version plus an upcaster in the catalogue.

After an additive change: ``UPDATE_SCHEMA_SNAPSHOTS=1 pytest tests/contract/test_events.py``, and commit
the snapshot. New events and versions are written the same way.
"""

from __future__ import annotations

import json
import os
import types
import typing
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.events.catalog import CATALOG, EventSpec, decode_event, make_event
from shared.events.envelope import raw_envelope, schema_version

SNAPSHOTS = Path(__file__).resolve().parent / "schemas"
UPDATE = os.environ.get("UPDATE_SCHEMA_SNAPSHOTS") == "1"
HERE = "tests/contract/test_events.py"

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC).isoformat()
PATIENT = "6f1d1c1e-3a5b-4c53-9d1a-2f9a8e0b7c11"
ALERT = "0b8e7a52-52f4-4c8e-a1b7-2b7f6f0c9d21"
SUBMISSION = "a3c2e1f0-9b8d-4e6f-8a7b-1c2d3e4f5a6b"
MESSAGE = "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"
LOAN = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
TABLET = "7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b"
SESSION = "8f9a0b1c-2d3e-4f4a-8b5c-6d7e8f9a0b1c"
TOKEN = "2b9c1d7e-8f3a-4b5c-9d6e-7f8a9b0c1d2e"
REASON = {"code": "fever", "rule": "red-flag-fever", "level": "red"}

# One valid payload per (event type, version), with codes and pseudonymous ids only. Keep the samples
# of old versions when a version is added: they are the fixtures the upcasters must still decode.
SAMPLES: dict[tuple[str, int], dict[str, Any]] = {
    ("questionnaire.submitted", 1): {
        "submission_id": SUBMISSION,
        "patient_id": PATIENT,
        "questionnaire_id": "reconnect-symptoms",
        "questionnaire_version": "1.0.0",
        "authored": NOW,
        "answered_by": "patient",
        "terms": [{"term": "nausea", "frequency": 2, "severity": 1}],
        "red_flags": {"fever": True, "temperature_c": 38.6},
        "ecog": 1,
    },
    ("message.sent", 1): {
        "message_id": MESSAGE,
        "patient_id": PATIENT,
        "sent_at": NOW,
        "answered_by": "relative",
        "text": "sample text",
    },
    ("submission.scored", 1): {
        "submission_id": SUBMISSION,
        "patient_id": PATIENT,
        "level": "red",
        "grades": {"nausea": 2},
        "alert_id": ALERT,
        "rule_set": "reconnect-2025",
        "scored_at": NOW,
    },
    ("alert.raised", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "level": "red",
        "reasons": [REASON],
        "answered_by": "patient",
        "submission_id": SUBMISSION,
        "rule_set": "reconnect-2025",
        "raised_at": NOW,
    },
    ("alert.updated", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "level": "red",
        "status": "open",
        "reasons": [REASON, {"code": "nausea", "rule": "grade-3", "level": "orange", "grade": 3}],
        "answered_by": "patient",
        "message_id": MESSAGE,
        "rule_set": "reconnect-2025",
        "updated_at": NOW,
    },
    ("alert.acknowledged", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "submission_ids": [SUBMISSION],
        "acknowledged_by": "nurse-7",
        "acknowledged_at": NOW,
    },
    ("alert.resolved", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "submission_ids": [SUBMISSION],
        "outcome": "phone_call",
        "resolved_by": "nurse-7",
        "resolved_at": NOW,
    },
    ("alert.escalated", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "level": "red",
        "escalation_level": 1,
        "due_at": NOW,
        "escalated_at": NOW,
    },
    ("alert.reopened", 1): {
        "alert_id": ALERT,
        "patient_id": PATIENT,
        "submission_ids": [SUBMISSION],
        "previous_outcome": "no_action_needed",
        "reopened_by": "nurse-7",
        "reopened_at": NOW,
    },
    ("tablet.loaned", 1): {
        "loan_id": LOAN,
        "tablet_id": TABLET,
        "patient_id": PATIENT,
        "token_id": TOKEN,
        "accessories": ["charger", "cable", "manual"],
        "expected_return_on": "2027-03-14",
        "loaned_at": NOW,
        "loaned_by": "fleet-1",
    },
    ("tablet.returned", 1): {
        "loan_id": LOAN,
        "tablet_id": TABLET,
        "patient_id": PATIENT,
        "token_id": TOKEN,
        "channel": "post",
        "missing_accessories": ["cable"],
        "returned_at": NOW,
        "recorded_by": "fleet-1",
    },
    ("tablet.lost", 1): {
        "tablet_id": TABLET,
        "stolen": False,
        "loan_id": LOAN,
        "patient_id": PATIENT,
        "token_id": TOKEN,
        "reported_at": NOW,
        "reported_by": "fleet-1",
    },
    ("tablet.wiped", 1): {"tablet_id": TABLET, "method": "factory_reset", "wiped_at": NOW, "wiped_by": "fleet-1"},
    ("tablet.inactive", 1): {
        "tablet_id": TABLET,
        "loan_id": LOAN,
        "patient_id": PATIENT,
        "reason": "questionnaire_due",
        "silent_since": NOW,
        "last_seen_at": NOW,
        "next_questionnaire_due": NOW,
        "detected_at": NOW,
    },
    ("session.scheduled", 1): {
        "session_id": SESSION,
        "patient_id": PATIENT,
        "scheduled_for": NOW,
        "cycle": 2,
    },
}

EVENTS = sorted(CATALOG)


def sample(spec: EventSpec) -> BaseModel:
    data = SAMPLES.get((spec.type, spec.version))
    assert data is not None, (
        f"add a sample {spec.type} v{spec.version} payload to SAMPLES in tests/contract/test_events.py"
    )
    return spec.payload.model_validate(data)


@pytest.mark.parametrize("event_type", EVENTS)
def test_round_trip_through_the_envelope(event_type: str) -> None:
    spec = CATALOG[event_type]
    payload = sample(spec)
    event = make_event(
        event_type,
        payload,
        source=f"/services/{spec.owner}",
        time=datetime.fromisoformat(NOW),
        subject=str(uuid.uuid4()),
        causationid=str(uuid.uuid4()),
        correlationid=str(uuid.uuid4()),
    )
    decoded = decode_event(raw_envelope(event.to_json()))
    assert type(decoded.data) is spec.payload
    assert decoded.data == payload
    assert decoded == event
    assert decoded.to_json() == event.to_json()


@pytest.mark.parametrize("event_type", EVENTS)
def test_dataschema_carries_the_version(event_type: str) -> None:
    spec = CATALOG[event_type]
    event = make_event(event_type, sample(spec), source=f"/services/{spec.owner}", time=datetime.fromisoformat(NOW))
    assert event.dataschema == spec.dataschema
    assert event.type == event_type
    assert schema_version(event.dataschema) == spec.version
    assert event.dataschema.endswith(f":{event_type}:{spec.version}")


def _models(annotation: Any) -> set[type[BaseModel]]:
    """The pydantic models an annotation mentions, at any depth (tuple[AlertReason, ...], X | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = {annotation}
        for field in annotation.model_fields.values():
            found |= _models(field.annotation)
        return found
    found = set()
    for arg in typing.get_args(annotation):
        found |= _models(arg)
    if isinstance(annotation, types.UnionType):
        for arg in annotation.__args__:
            found |= _models(arg)
    return found


@pytest.mark.parametrize("event_type", EVENTS)
def test_payload_models_are_frozen(event_type: str) -> None:
    spec = CATALOG[event_type]
    for model in sorted(_models(spec.payload), key=lambda m: m.__name__):
        assert model.model_config.get("frozen") is True, f"{model.__name__} (in {event_type}) must be frozen"
    payload = sample(spec)
    first = next(iter(type(payload).model_fields))
    with pytest.raises(ValidationError):
        setattr(payload, first, getattr(payload, first))


def breaking_changes(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """What in ``new`` would reject or misread data valid under ``old`` (a conservative check)."""
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_props.items():
        if name not in new_props:
            problems.append(f"{where}{name}: removed")
        elif new_props[name] != schema:
            problems.append(f"{where}{name}: changed from {json.dumps(schema)} to {json.dumps(new_props[name])}")
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"{where}{name}: now required")
    for key in sorted(set(old) | set(new)):
        if key in ("properties", "required", "$defs", "description", "title"):
            continue
        if old.get(key) != new.get(key):
            problems.append(f"{where}{key}: changed from {old.get(key)!r} to {new.get(key)!r}")
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name, schema in old_defs.items():
        if name not in new_defs:
            problems.append(f"$defs/{name}: removed")
        else:
            problems += breaking_changes(schema, new_defs[name], f"$defs/{name}/")
    return problems


def test_breaking_change_detection() -> None:
    old: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, {**old, "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}) == []
    assert breaking_changes(old, {**old, "properties": {}}) == ["a: removed"]
    assert breaking_changes(old, {**old, "properties": {"a": {"type": "integer"}}})
    assert breaking_changes(old, {**old, "properties": {**old["properties"], "b": {}}, "required": ["a", "b"]}) == [
        "b: now required"
    ]


@pytest.mark.parametrize("event_type", EVENTS)
def test_payload_schema_matches_its_snapshot(event_type: str) -> None:
    spec = CATALOG[event_type]
    path = SNAPSHOTS / f"{spec.type}.v{spec.version}.json"
    current = spec.payload.model_json_schema()
    text = json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if not path.exists():
        if UPDATE:
            path.write_text(text, encoding="utf-8")
            return
        pytest.fail(
            f"no schema snapshot for {spec.type} v{spec.version}: write it with "
            f"UPDATE_SCHEMA_SNAPSHOTS=1 pytest {HERE} and commit {path.name}"
        )
    committed = json.loads(path.read_text(encoding="utf-8"))
    if committed == current:
        return
    problems = breaking_changes(committed, current)
    if problems:
        pytest.fail(
            f"{spec.payload.__name__} changed incompatibly within version {spec.version} of {spec.type}:\n  "
            + "\n  ".join(problems)
            + f"\nEvents already in the streams were written against {path.name}. Keep v{spec.version} as it "
            f"was; add {spec.payload.__name__.removesuffix(f'V{spec.version}')}V{spec.version + 1}, set "
            f"version={spec.version + 1} in shared/events/catalog.py and an upcaster from v{spec.version}."
        )
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    pytest.fail(
        f"{spec.payload.__name__} changed within version {spec.version} of {spec.type}. The change looks "
        f"additive (only new optional fields); if so, refresh the snapshot with UPDATE_SCHEMA_SNAPSHOTS=1 "
        f"pytest {HERE} and commit {path.name}. Otherwise bump the version and add an upcaster."
    )
