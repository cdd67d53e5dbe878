"""What a refusal says of a value the schema refused (``shared.repeating.validation_message``): the same sentence
whatever the caller wrote, so nothing of it."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError

from shared.datetimes import CalendarDate, OffsetDatetime
from shared.repeating import validation_message

# Two texts a patient or a relative might write, of one length: a parser's explanation that depends on them (where
# it stopped, what it found there) tells them apart.
WRITTEN = ("Jean Dupont a très mal", "Marie Durand a mal ici")


class Condition(StrEnum):
    GOOD = "good"
    WORN = "worn"


# The kinds of value the services' request models and parameters check.
KINDS: dict[str, Any] = {
    "uuid": UUID,
    "uuid in a list": list[UUID],
    "date-time": AwareDatetime,
    "RFC 3339 date-time": OffsetDatetime,
    "date": date,
    "calendar day": CalendarDate,
    "integer": int,
    "number": float,
    "boolean": bool,
    "enum": Condition,
    "literal": Literal["phone_call", "advice_given"],
    "pattern": Annotated[str, Field(pattern=r"^(patient|relative)$")],
    "too long": Annotated[str, Field(max_length=5)],
}


def _sentences(kind: Any, text: str) -> list[str]:
    value = [text] if getattr(kind, "__origin__", None) is list else text
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(kind).validate_python(value)
    return [validation_message(error) for error in refused.value.errors()]


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_a_refused_value_is_described_the_same_whatever_was_written(kind: Any) -> None:
    first, second = (_sentences(kind, text) for text in WRITTEN)
    assert first == second
    for sentence in first:
        assert sentence and not any(word in sentence for word in ("Dupont", "Durand", "très mal"))


def test_a_uuid_says_what_one_looks_like() -> None:
    [sentence] = _sentences(UUID, WRITTEN[0])
    assert sentence.startswith("Input should be a UUID") and "8-4-4-4-12" in sentence
