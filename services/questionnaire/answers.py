"""A QuestionnaireResponse's items and their answers, walked and typed against the questionnaire's definition,
and the error every bad input of a submission raises. Pure: no I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.questionnaire.fhir_questionnaire import (
    NO_ANSWER_TYPES,
    AnswerValue,
    Coding,
    ItemDefinition,
    QuestionnaireDefinition,
    is_number,
)
from shared.repeating import key_name, show

MAX_ITEMS = 200  # a full default response has ~50 items; more is a broken or hostile client


class InvalidSubmission(ValueError):
    """A QuestionnaireResponse the service refuses (a 4xx: the client must change the request)."""

    def __init__(self, detail: str, pointer: str | None = None, *, kind: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer  # RFC 6901 JSON pointer into the request body; "" is the whole body
        # The problem type, for a refusal a client must tell apart from a wrong answer (a wrong clock, which the
        # tablet's owner, not the patient's answers, must put right); None: the response's content is invalid.
        self.kind = kind


@dataclass(frozen=True)
class Answer:
    value: AnswerValue
    ordinal: float | None  # the chosen option's ordinal value, for choice answers
    pointer: str


@dataclass(frozen=True)
class GivenItem:
    pointer: str  # where the item is in the request body
    answers: tuple[Answer, ...]


def _check_size(items: Any) -> None:
    """Refuses oversized bodies before any per-item work (iterative: no recursion on hostile nesting)."""
    count = 0
    pending = [items]
    while pending:
        elements = pending.pop()
        if not isinstance(elements, list):
            continue  # the walk reports malformed parts with their pointer
        for element in elements:
            count += 1
            if count > MAX_ITEMS:
                raise InvalidSubmission(
                    f"The response has more than {MAX_ITEMS} items (nested ones included); "
                    "no questionnaire here is that long.",
                    "/item",
                )
            if isinstance(element, Mapping):
                pending.append(element.get("item"))
                answers = element.get("answer")
                if isinstance(answers, list):
                    pending.extend(a.get("item") for a in answers if isinstance(a, Mapping))


class ItemCollector:
    """Walks the response's items, nested as in the definition or flat, and types every answer."""

    def __init__(self, definition: QuestionnaireDefinition) -> None:
        self._definition = definition
        self._given: dict[str, GivenItem] = {}

    def collect(self, body: Mapping[str, Any]) -> dict[str, GivenItem]:
        items = body.get("item")
        if items is None or items == []:
            raise InvalidSubmission("The response has no items: send at least one answered question.", "/item")
        _check_size(items)
        self._walk(items, "/item", parent=None)
        if not any(given.answers for given in self._given.values()):
            raise InvalidSubmission("The response has no answers: send at least one answered question.", "/item")
        return self._given

    def _walk(self, items: Any, pointer: str, parent: str | None) -> None:
        if not isinstance(items, list):
            raise InvalidSubmission("item must be a list of items.", pointer)
        for index, element in enumerate(items):
            self._visit(element, f"{pointer}/{index}", parent)

    def _visit(self, element: Any, pointer: str, parent: str | None) -> None:
        if not isinstance(element, Mapping):
            raise InvalidSubmission("Each item must be a JSON object with a linkId.", pointer)
        item = self._item_definition(element, pointer, parent)
        if item.type in NO_ANSWER_TYPES:
            if "answer" in element:
                raise InvalidSubmission(
                    f"Item '{item.link_id}' is a {item.type} and cannot have answers; answer the questions "
                    "it contains instead.",
                    f"{pointer}/answer",
                )
            self._given[item.link_id] = GivenItem(pointer, ())
            if "item" in element:
                self._walk(element["item"], f"{pointer}/item", parent=item.link_id)
            return
        if "item" in element:
            raise InvalidSubmission(
                f"Item '{item.link_id}' is a question and cannot contain items; only groups nest items.",
                f"{pointer}/item",
            )
        self._given[item.link_id] = GivenItem(pointer, self._answers(item, element, pointer))

    def _item_definition(self, element: Mapping[str, Any], pointer: str, parent: str | None) -> ItemDefinition:
        link_id = element.get("linkId")
        if not isinstance(link_id, str) or not link_id:
            raise InvalidSubmission("Each item needs a linkId string.", f"{pointer}/linkId")
        definition = self._definition
        item = definition.items.get(link_id)
        if item is None:
            raise InvalidSubmission(
                f"Item linkId {show(link_id)} is not in questionnaire '{definition.id}' version {definition.version}.",
                f"{pointer}/linkId",
            )
        earlier = self._given.get(link_id)
        if earlier is not None:
            raise InvalidSubmission(
                f"Item '{link_id}' appears twice (first at {earlier.pointer}); send each linkId once.",
                f"{pointer}/linkId",
            )
        if parent is not None and item.parent != parent:
            where = f"in group '{item.parent}'" if item.parent else "at the top level"
            raise InvalidSubmission(
                f"Item '{link_id}' is nested in '{parent}', but the questionnaire has it {where}; "
                "nest it there or send it at the top level.",
                pointer,
            )
        return item

    def _answers(self, item: ItemDefinition, element: Mapping[str, Any], pointer: str) -> tuple[Answer, ...]:
        raw = element.get("answer", [])
        if not isinstance(raw, list):
            raise InvalidSubmission(f"answer of item '{item.link_id}' must be a list.", f"{pointer}/answer")
        limit = MAX_ITEMS if item.repeats else 1
        if len(raw) > limit:
            raise InvalidSubmission(
                f"Item '{item.link_id}' takes one answer, but {len(raw)} were given.", f"{pointer}/answer"
            )
        return tuple(_answer(item, a, f"{pointer}/answer/{i}") for i, a in enumerate(raw))


def _answer(item: ItemDefinition, raw: Any, pointer: str) -> Answer:
    if not isinstance(raw, Mapping):
        raise InvalidSubmission(f"Each answer of item '{item.link_id}' must be a JSON object.", pointer)
    if "item" in raw:
        raise InvalidSubmission(
            f"Answers of item '{item.link_id}' cannot contain items in this questionnaire.", f"{pointer}/item"
        )
    keys = [key for key in raw if key.startswith("value")]
    if len(keys) != 1:
        raise InvalidSubmission(
            f"Each answer of item '{item.link_id}' needs exactly one value[x] ({_expected_value(item)}).",
            pointer,
        )
    key = keys[0]
    value = raw[key]
    if item.type == "choice" and key == "valueCoding":
        return _choice_answer(item, value, pointer)
    if item.type == "boolean" and key == "valueBoolean" and isinstance(value, bool):
        return Answer(value, None, pointer)
    if item.type == "integer" and key == "valueInteger" and is_number(value) and isinstance(value, int):
        return Answer(_in_bounds(item, value, pointer), None, pointer)
    if item.type == "decimal" and key in ("valueDecimal", "valueInteger") and is_number(value):
        return Answer(_in_bounds(item, float(value), pointer), None, pointer)
    if item.type == "decimal" and key == "valueQuantity":
        return Answer(_in_bounds(item, _quantity(item, value, pointer), pointer), None, pointer)
    if item.type in ("string", "text") and key == "valueString" and isinstance(value, str):
        return Answer(value, None, pointer)
    raise InvalidSubmission(
        f"Item '{item.link_id}' is a {item.type} question; answer it with {_expected_value(item)}, "
        f"not {key_name(key)} {show(value)}.",
        pointer,
    )


def _expected_value(item: ItemDefinition) -> str:
    return {
        "choice": "valueCoding with the code of one of its options",
        "boolean": "valueBoolean (true or false)",
        "decimal": "valueDecimal, valueInteger or valueQuantity"
        + (f" in {_unit_name(item.unit)}" if item.unit else ""),
        "integer": "valueInteger",
        "string": "valueString",
        "text": "valueString",
    }[item.type]


def _choice_answer(item: ItemDefinition, coding: Any, pointer: str) -> Answer:
    code = coding.get("code") if isinstance(coding, Mapping) else None
    system = coding.get("system") if isinstance(coding, Mapping) else None
    if not isinstance(code, str) or not (system is None or isinstance(system, str)):
        raise InvalidSubmission(
            f'valueCoding of item \'{item.link_id}\' needs a "code" string (and optionally a "system").',
            f"{pointer}/valueCoding",
        )
    option = item.option_for(code, system)
    if option is None:
        raise InvalidSubmission(_not_an_option(item, code, system), f"{pointer}/valueCoding")
    return Answer(option.coding, option.ordinal, pointer)


def _not_an_option(item: ItemDefinition, code: str, system: str | None) -> str:
    if item.option_for(code, None) is not None:  # the right code from another scale or code system
        systems = ", ".join(sorted({json.dumps(o.coding.system) for o in item.options if o.coding.system}))
        return (
            f"Code {show(code)} of item '{item.link_id}' is from system {show(system)}, "
            f"but its options are from {systems}."
        )
    allowed = ", ".join(f"'{o.coding.code}'" for o in item.options)
    return f"Code {show(code)} is not an option of item '{item.link_id}'; its options are {allowed}."


def _quantity(item: ItemDefinition, quantity: Any, pointer: str) -> float:
    unit = item.unit
    if unit is None:
        raise InvalidSubmission(
            f"Item '{item.link_id}' has no unit; answer it with valueDecimal, not valueQuantity.", pointer
        )
    value: Any = quantity.get("value") if isinstance(quantity, Mapping) else None
    if not is_number(value):
        raise InvalidSubmission(f"valueQuantity of item '{item.link_id}' needs a numeric \"value\".", pointer)
    # UCUM code first (the machine form); the human "unit" text as a fallback ("°C" for "Cel").
    code, system, text = (quantity.get(k) for k in ("code", "system", "unit"))
    accepted_texts = {unit.code, unit.display} - {None}
    by_code = code == unit.code and system in (None, unit.system)
    by_text = code is None and text in accepted_texts
    if not (by_code or by_text):
        raise InvalidSubmission(
            f"valueQuantity of item '{item.link_id}' must be in {_unit_name(unit)} "
            f'(code "{unit.code}", system "{unit.system}"); got {show(code or text)}.',
            pointer,
        )
    return float(value)


def _unit_name(unit: Coding) -> str:
    return unit.display or unit.code


def _in_bounds(item: ItemDefinition, value: float, pointer: str) -> float:
    low = item.min_value if item.min_value is not None else -math.inf
    high = item.max_value if item.max_value is not None else math.inf
    if not low <= value <= high:
        raise InvalidSubmission(
            f"The answer {show(value)} to item '{item.link_id}' is outside {_bounds(item)}.", pointer
        )
    return value


def _bounds(item: ItemDefinition) -> str:
    unit = f" {_unit_name(item.unit)}" if item.unit else ""
    if item.min_value is not None and item.max_value is not None:
        return f"{item.min_value:g}-{item.max_value:g}{unit}"
    if item.min_value is not None:
        return f"the minimum {item.min_value:g}{unit}"
    return f"the maximum {item.max_value:g}{unit}"
