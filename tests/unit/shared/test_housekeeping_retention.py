"""How long each table keeps its rows: an inbox row as long as its event could be delivered again."""

from __future__ import annotations

from shared.db.housekeeping import Retention, inbox_days
from shared.messaging.topology import DAY, STREAMS, ConsumerSpec


def test_a_consumer_s_inbox_rows_outlive_the_stream_it_reads_by_the_outbox_s_retention_and_a_day() -> None:
    retention = Retention()
    for stream in STREAMS:
        spec = ConsumerSpec("svc", stream.name, "x.y")
        assert inbox_days(spec, retention) * DAY == stream.max_age_s + (retention.outbox_days + 1) * DAY
    assert inbox_days(None, retention) * DAY == max(s.max_age_s for s in STREAMS) + 8 * DAY
