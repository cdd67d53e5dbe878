"""An alert as the scoring handlers hold it: which merges are a "reopened by a new answer" step of its history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.alerting.repository import AlertRecord
from shared.events.alerts import AlertReason, AlertStatus

RAISED = datetime(2026, 11, 23, 9, tzinfo=UTC)
LATER = RAISED + timedelta(hours=2)
NAUSEA = (AlertReason(code="nausea", rule="red.grade3", level="red", grade=3),)


def _record(status: AlertStatus) -> AlertRecord:
    record = AlertRecord.raised(uuid.uuid4(), "red", NAUSEA, "patient", uuid.uuid4(), None, RAISED)
    record.status, record.is_new, record.changed = status, False, False
    return record


def test_a_taken_alert_put_back_to_open_was_reopened_by_the_answer_then() -> None:
    record = _record("acknowledged")
    record.merge("red", "open", NAUSEA, "patient", uuid.uuid4(), None, LATER)
    assert record.reopened_by_finding_at == LATER


@pytest.mark.parametrize(("before", "after"), [("open", "open"), ("acknowledged", "acknowledged")])
def test_a_merge_that_leaves_its_status_is_no_step(before: AlertStatus, after: AlertStatus) -> None:
    record = _record(before)
    record.merge("red", after, NAUSEA, "patient", uuid.uuid4(), None, LATER)
    assert record.reopened_by_finding_at is None


def test_a_second_answer_in_the_same_batch_leaves_the_step_at_the_first() -> None:
    record = _record("acknowledged")
    record.merge("red", "open", NAUSEA, "patient", uuid.uuid4(), None, LATER)
    record.merge("red", "open", NAUSEA, "patient", uuid.uuid4(), None, LATER + timedelta(seconds=1))
    assert record.reopened_by_finding_at == LATER
