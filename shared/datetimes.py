"""Dates and date-times that callers send: RFC 3339 (a date-time with its UTC offset, or a calendar day), never
a Unix time."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["CalendarDate", "OffsetDatetime"]


def _not_a_unix_time(value: object) -> object:
    # Pydantic's lax mode reads a JSON number, or a string of digits, as a Unix time: 1700000000 would be taken
    # for 14 November 2023, and a query's "2026" for 33 minutes past midnight on 1 January 1970. A client that
    # sends one has a bug: it is refused as any other malformed date-time. On the heartbeat path this is a type
    # check, and for strings a scan that stops at the first character that is not a digit ("2026-" at the dash).
    if type(value) is str:
        if not value.lstrip("+-").replace(".", "", 1).isdigit():
            return value
    elif type(value) not in (int, float):
        return value
    raise PydanticCustomError(
        "datetime_type",
        "Input should be an RFC 3339 date-time with its UTC offset, e.g. 2026-03-20T09:58:00+01:00, not a Unix time",
    )


OffsetDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_unix_time)]
"""An RFC 3339 date-time with its UTC offset (``Z`` or ``+01:00``); a number or a string of digits is refused."""


_CALENDAR_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _a_calendar_day(value: object) -> object:
    # Pydantic's lax mode takes, for a date, a Unix time that falls at midnight UTC (1796083200 is 1 December
    # 2026, as a number or a string) and a date-time at midnight ("2026-11-30T00:00:00"): a client sending either
    # means something else, or has a bug. A day is written as the dashboard and the tablets write it.
    if type(value) is date or (type(value) is str and _CALENDAR_DAY.fullmatch(value)):
        return value
    raise PydanticCustomError("date_type", "Input should be a calendar day written YYYY-MM-DD, e.g. 2026-03-20")


CalendarDate = Annotated[date, BeforeValidator(_a_calendar_day)]
"""A calendar day, ``YYYY-MM-DD`` (RFC 3339 ``full-date``); a number, a date-time or any other form is refused."""
