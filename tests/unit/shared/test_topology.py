"""Which stream stores a subject: the outbox relay batches per stream with it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from nats.js.api import StreamConfig

from shared.events.catalog import CATALOG
from shared.messaging.topology import STREAMS, ConsumerSpec, StreamSpec, stream_for, stream_update, subject_matches


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


def _config(stream: StreamSpec, replicas: int) -> StreamConfig:
    return stream.config(replicas)


def test_a_stream_as_the_code_wants_it_is_left_alone() -> None:
    stream = STREAMS[0]
    assert stream_update(_config(stream, 3), _config(stream, 3)) is None


def test_replicas_are_added_but_never_taken_away() -> None:
    stream = STREAMS[0]
    grown = stream_update(_config(stream, 1), _config(stream, 3))
    assert grown is not None and grown.num_replicas == 3
    # A process started without NATS_STREAM_REPLICAS=3 on the production cluster must not shrink its R3 streams.
    assert stream_update(_config(stream, 3), _config(stream, 1)) is None
    # Whatever else it changes keeps the replicas the stream has.
    longer = replace(_config(stream, 1), max_age=(stream.max_age_s + 60) * 1.0)
    changed = stream_update(_config(stream, 3), longer)
    assert changed is not None and changed.num_replicas == 3 and changed.max_age == longer.max_age


def test_a_failed_delivery_is_retried_after_the_consumer_s_backoff_entry_for_it_then_its_last() -> None:
    spec = ConsumerSpec("alerting", "QUESTIONNAIRES", "questionnaire.submitted")
    assert spec.backoff_s == (30.0, 60.0, 300.0, 900.0)
    delays = [spec.redelivery_delay(delivered) for delivered in (1, 2, 3, 4, 5, 40)]
    assert delays == [30.0, 60.0, 300.0, 900.0, 900.0, 900.0]
    # A transient failure is retried over as long as a crash would be: about 36 minutes before the last delivery.
    waits = [spec.redelivery_delay(delivered) for delivered in range(1, spec.max_deliver)]
    assert sum(waits) == 30 + 60 + 300 + 900 + 900
    # A schedule set by CONSUMER_BACKOFF_S is the one followed.
    short = ConsumerSpec("alerting", "QUESTIONNAIRES", "questionnaire.submitted", backoff_s=(1.0, 2.5))
    assert [short.redelivery_delay(delivered) for delivered in (1, 2, 3)] == [1.0, 2.5, 2.5]
