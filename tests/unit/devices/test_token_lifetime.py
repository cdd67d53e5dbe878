"""The stream that carries the loans' ends keeps them as long as a device token can live: a consumer that reads it
again from its start (the questionnaire's revoked tokens, rebuilt) learns of every token it must still refuse."""

from datetime import UTC, date, datetime, timedelta

from services.devices.api import _token_expiry
from services.devices.domain import default_expected_return
from shared.messaging.topology import STREAMS


def test_the_tablets_stream_keeps_every_loan_s_end_longer_than_its_token_lives() -> None:
    tablets = next(s for s in STREAMS if s.name == "TABLETS")
    # Every loan day of four years (a leap year among them), lent for the longest a loan may last.
    first = date(2027, 1, 1)
    longest = max(
        datetime.fromtimestamp(_token_expiry(default_expected_return(day)), UTC)
        - datetime.combine(day, datetime.min.time(), UTC)
        for day in (first + timedelta(days=n) for n in range(4 * 366))
    )
    assert longest > timedelta(days=400)  # a year and the margin: the figure the stream must cover
    assert tablets.max_age_s > longest.total_seconds()
