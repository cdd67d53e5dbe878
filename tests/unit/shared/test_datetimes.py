"""What callers may send as a day or a moment: RFC 3339, never a Unix time pydantic's lax mode would read."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.datetimes import CalendarDate, OffsetDatetime

DAY = TypeAdapter(CalendarDate)
MOMENT = TypeAdapter(OffsetDatetime)
MIDNIGHT_1_DECEMBER_2026 = 1796083200  # a Unix time pydantic takes for date(2026, 12, 1)


def test_a_day_written_yyyy_mm_dd_is_that_day() -> None:
    assert DAY.validate_json('"2026-11-30"') == date(2026, 11, 30)
    assert DAY.validate_python(date(2026, 11, 30)) == date(2026, 11, 30)


@pytest.mark.parametrize(
    "sent",
    [
        MIDNIGHT_1_DECEMBER_2026,
        str(MIDNIGHT_1_DECEMBER_2026),
        float(MIDNIGHT_1_DECEMBER_2026),
        "2026-11-30T00:00:00",
        "2026-11-30T00:00:00Z",
        "20261130",
        "2026-11-30 ",
        "２０２６-11-30",  # full-width digits
        "2026-02-30",
        True,
    ],
)
def test_anything_else_is_not_a_day(sent: object) -> None:
    with pytest.raises(ValidationError):
        DAY.validate_python(sent)


def test_a_moment_needs_its_offset_and_is_never_a_unix_time() -> None:
    assert MOMENT.validate_json('"2026-03-20T09:58:00+01:00"') == datetime(2026, 3, 20, 8, 58, tzinfo=UTC)
    for sent in (1700000000, "1700000000", "2026", "2026-03-20T09:58:00"):
        with pytest.raises(ValidationError):
            MOMENT.validate_python(sent)
