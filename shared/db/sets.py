"""Set-wise SQL: rows passed as one array per column, for ``INSERT … SELECT * FROM unnest($1::…[], …)``."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any


def columns(rows: Sequence[Any], *fields: str) -> list[list[Any]]:
    """The named attributes of ``rows``, one list per field, in the order given."""
    return [list(map(attrgetter(name), rows)) for name in fields]
