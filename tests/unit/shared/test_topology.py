"""Which stream stores a subject: the outbox relay batches per stream with it."""

from __future__ import annotations

import pytest

from shared.events.catalog import CATALOG
from shared.messaging.topology import STREAMS, stream_for, subject_matches


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("alert.>", "alert.raised", True),
        ("alert.>", "alert.raised.extra", True),
        ("alert.>", "alert", False),
        ("alert.*", "alert.raised", True),
        ("alert.*", "alert.raised.extra", False),
        ("alert.raised", "alert.raised", True),
        ("alert.raised", "alert.acked", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.d", False),
        ("alert.>", "alerts.raised", False),
    ],
)
def test_subject_matches_follows_nats_wildcards(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_each_catalogued_event_type_is_stored_by_exactly_one_stream() -> None:
    for event_type in CATALOG:
        owners = [spec.name for spec in STREAMS if spec.takes(event_type)]
        assert len(owners) == 1, f"{event_type}: {owners}"
        assert stream_for(event_type) == owners[0]


def test_a_subject_no_stream_takes_has_no_stream() -> None:
    assert stream_for("nothing.here") is None
    assert stream_for("dlq.questionnaire.submitted") == "DEAD_LETTERS"
