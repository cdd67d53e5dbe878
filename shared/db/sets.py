"""Set-wise SQL: rows passed as one array per column, for ``INSERT … SELECT * FROM unnest($1::…[], …)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any


def columns(rows: Sequence[Any], *fields: str) -> list[list[Any]]:
    """The named attributes of ``rows``, one list per field, in the order given."""
    return [list(map(attrgetter(name), rows)) for name in fields]


@dataclass(frozen=True)
class RowTable:
    """Where an ingress stores its requests' rows: a table, and its columns with their PostgreSQL types
    (the row dataclass has an attribute of each column's name)."""

    table: str
    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)
