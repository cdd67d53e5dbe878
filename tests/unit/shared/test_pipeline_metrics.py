"""The pipeline metrics: what each gauge reports for a snapshot, and the sampling interval's setting."""

from __future__ import annotations

import pytest
from opentelemetry.util.types import AnyValue
from pydantic import ValidationError

from shared import pipeline_metrics as pm
from shared.settings import ServiceSettings

SNAPSHOT = pm.PipelineSnapshot(
    service="alerting",
    sampled_at=100.0,
    max_age_s=30.0,
    outbox_pending=3,
    outbox_oldest_age_s=12.5,
    consumers=(
        pm.ConsumerSample("alerting-questionnaire-submitted", pending=7, ack_pending=2, redelivered=1),
        pm.ConsumerSample("alerting-tablet-lost", pending=0, ack_pending=0, redelivered=0),
    ),
    dead_letters={"dlq.tablet.lost": 0, "dlq.questionnaire.submitted": 4},
)


def _reported(snapshot: pm.PipelineSnapshot | None, now: float) -> dict[str, list[tuple[float, dict[str, AnyValue]]]]:
    return {
        name: [(o.value, dict(o.attributes or {})) for o in observed]
        for name, observed in pm.observations(snapshot, now).items()
    }


def test_a_fresh_snapshot_is_one_observation_per_gauge_and_series() -> None:
    service = {"service": "alerting"}
    submitted = {**service, "consumer": "alerting-questionnaire-submitted"}
    lost = {**service, "consumer": "alerting-tablet-lost"}
    assert _reported(SNAPSHOT, now=120.0) == {
        "oncofollow.outbox.pending": [(3, service)],
        "oncofollow.outbox.oldest_pending_age": [(12.5, service)],
        "oncofollow.consumer.pending": [(7, submitted), (0, lost)],
        "oncofollow.consumer.ack_pending": [(2, submitted), (0, lost)],
        "oncofollow.consumer.redelivered": [(1, submitted), (0, lost)],
        "oncofollow.dead_letters": [
            (4, {**service, "subject": "dlq.questionnaire.submitted"}),
            (0, {**service, "subject": "dlq.tablet.lost"}),
        ],
    }


@pytest.mark.parametrize(("snapshot", "now"), [(None, 0.0), (SNAPSHOT, 130.5)], ids=["no-sample", "stale-sample"])
def test_no_sample_or_a_stale_one_reports_nothing(snapshot: pm.PipelineSnapshot | None, now: float) -> None:
    reported = _reported(snapshot, now)
    assert set(reported) == set(pm.GAUGES)
    assert all(observed == [] for observed in reported.values())


def test_a_snapshot_is_fresh_up_to_its_maximum_age() -> None:
    assert SNAPSHOT.fresh(130.0)
    assert not SNAPSHOT.fresh(130.01)


def test_the_gauges_name_their_units() -> None:
    assert pm.GAUGES["oncofollow.outbox.pending"][0] == "{event}"
    assert pm.GAUGES["oncofollow.outbox.oldest_pending_age"][0] == "s"


class TestIntervalSetting:
    def test_every_15_seconds_by_default(self) -> None:
        assert ServiceSettings().pipeline_metrics_interval_s == 15.0

    def test_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PIPELINE_METRICS_INTERVAL_S", "0.5")
        assert ServiceSettings().pipeline_metrics_interval_s == 0.5

    @pytest.mark.parametrize("value", ["0", "-1", "0.01", "7200", "soon"])
    def test_refuses_what_is_no_sensible_interval(self, value: str) -> None:
        with pytest.raises(ValidationError, match="PIPELINE_METRICS_INTERVAL_S"):
            ServiceSettings(PIPELINE_METRICS_INTERVAL_S=value)
