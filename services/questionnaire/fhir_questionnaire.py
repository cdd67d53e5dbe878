"""A FHIR R4 Questionnaire as this service reads it: the definition's model, its checks when it is loaded
(what the rest of the service relies on), and FHIR's enableWhen semantics. Pure: no I/O.

Questionnaires are data, so nothing here knows the linkIds of the default questionnaire. What an item
*means* comes from its ``code``:

* ``pro-ctcae-attribute`` ``<term>.<attribute>``: one attribute of a PRO-CTCAE term, scored by the
  ordinal value (0-4) of the chosen answer option;
* ``red-flag`` ``fever`` / ``temperature`` / ``bleeding`` / ``unable_to_eat_or_drink`` / ``wants_call``;
* any code of the ``ecog`` system: the self-rated ECOG performance status.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import ge, gt, le, lt
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

_BASE = "https://oncofollow.example/fhir"
ATTRIBUTE_SYSTEM = f"{_BASE}/CodeSystem/pro-ctcae-attribute"
RED_FLAG_SYSTEM = f"{_BASE}/CodeSystem/red-flag"
ECOG_SYSTEM = f"{_BASE}/CodeSystem/ecog"
ORDINAL_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
MIN_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT_URL = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
UCUM_SYSTEM = "http://unitsofmeasure.org"

ATTRIBUTES = ("frequency", "severity", "interference", "amount")
# The attribute patterns the published composite grading has a table for (research/clinical.md §3.2.1);
# "amount" is scored on the interference row, so it stands alone.
_SCORABLE_PATTERNS = frozenset(
    frozenset(pattern)
    for pattern in (
        {"frequency"},
        {"severity"},
        {"interference"},
        {"amount"},
        {"frequency", "severity"},
        {"frequency", "interference"},
        {"severity", "interference"},
        {"frequency", "severity", "interference"},
    )
)
_RED_FLAG_TYPES = {
    "fever": "boolean",
    "temperature": "decimal",
    "bleeding": "boolean",
    "unable_to_eat_or_drink": "boolean",
    "wants_call": "boolean",
}
_QUESTION_TYPES = frozenset({"boolean", "decimal", "integer", "string", "text", "choice"})
NO_ANSWER_TYPES = frozenset({"group", "display"})
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    ">": gt,
    "<": lt,
    ">=": ge,
    "<=": le,
}
_OPERATORS = frozenset({"exists", "=", "!=", *_ORDERINGS})
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TERM_CODE = re.compile(r"[a-z][a-z0-9_]*")


class InvalidDefinition(ValueError):
    """A definition file the service cannot serve; raised at start-up so that nobody answers it."""


# ------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str
    display: str | None = field(default=None, compare=False)  # for messages; never part of identity


AnswerValue: TypeAlias = bool | int | float | str | Coding


@dataclass(frozen=True)
class AnswerOption:
    coding: Coding
    display: str
    ordinal: float | None


@dataclass(frozen=True)
class EnableWhen:
    question: str
    operator: str
    answer: AnswerValue

    def describe(self) -> str:
        shown = self.answer.code if isinstance(self.answer, Coding) else self.answer
        return f"'{self.question}' {self.operator} {json.dumps(shown, ensure_ascii=False)}"


@dataclass(frozen=True)
class ItemDefinition:
    link_id: str
    type: str
    parent: str | None  # linkId of the enclosing group, None at the top level
    repeats: bool
    required: bool
    options: tuple[AnswerOption, ...]
    enable_when: tuple[EnableWhen, ...]
    enable_behavior: Literal["all", "any"]
    unit: Coding | None
    min_value: float | None
    max_value: float | None
    codes: tuple[Coding, ...]

    @property
    def is_question(self) -> bool:
        return self.type in _QUESTION_TYPES

    @functools.cached_property
    def depends_on(self) -> frozenset[str]:
        """The questions its enableWhen conditions look at."""
        return frozenset(condition.question for condition in self.enable_when)

    @functools.cached_property
    def enabled_while_unanswered(self) -> bool:
        """Whether its own conditions hold while none of the questions they look at is answered: what most
        items of a response come to, since a patient answers a few terms of many."""
        return is_enabled(self, {})

    def option_for(self, code: str, system: str | None) -> AnswerOption | None:
        for option in self.options:
            if option.coding.code == code and (system is None or system == option.coding.system):
                return option
        return None


@dataclass(frozen=True)
class QuestionnaireDefinition:
    id: str
    version: str
    url: str
    resource: Mapping[str, Any]  # the Questionnaire JSON as loaded, served verbatim by the API
    title: str
    items: Mapping[str, ItemDefinition]  # by linkId, in document order (parents before children)
    terms: Mapping[str, Mapping[str, str]]  # PRO-CTCAE term -> attribute -> linkId, in document order
    red_flags: Mapping[str, str]  # red-flag code -> linkId
    ecog_link_id: str | None

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    @functools.cached_property
    def term_of(self) -> Mapping[str, str]:
        """PRO-CTCAE term of each linkId that asks one of its attributes (computed once per definition)."""
        return {link: term for term, attributes in self.terms.items() for link in attributes.values()}

    @functools.cached_property
    def position(self) -> Mapping[str, int]:
        """Each linkId's place in document order."""
        return {link: i for i, link in enumerate(self.items)}

    @functools.cached_property
    def required_questions(self) -> frozenset[str]:
        return frozenset(link for link, item in self.items.items() if item.required and item.is_question)

    @classmethod
    def from_resource(cls, resource: Any, *, origin: str = "<memory>") -> QuestionnaireDefinition:
        """Validates and indexes one Questionnaire; raises InvalidDefinition naming origin and place."""
        return _DefinitionParser(resource, origin).parse()


# ------------------------------------------------------------------------------- definition parsing


def _extension(element: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for extension in element.get("extension") or ():
        if isinstance(extension, Mapping) and extension.get("url") == url:
            return extension
    return None


def is_number(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _DefinitionParser:
    """One pass over a Questionnaire: checks what this service relies on, builds the indexes."""

    def __init__(self, resource: Any, origin: str) -> None:
        self._resource = resource
        self._origin = origin
        self._items: dict[str, ItemDefinition] = {}
        self._terms: dict[str, dict[str, str]] = {}
        self._red_flags: dict[str, str] = {}
        self._ecog: str | None = None

    def _fail(self, pointer: str, message: str) -> InvalidDefinition:
        return InvalidDefinition(f"{self._origin} at '{pointer or '/'}': {message}")

    def parse(self) -> QuestionnaireDefinition:
        resource = self._resource
        if not isinstance(resource, dict):
            raise self._fail("", "a Questionnaire must be a JSON object")
        if resource.get("resourceType") != "Questionnaire":
            raise self._fail("/resourceType", "resourceType must be 'Questionnaire'")
        id_ = self._string(resource, "id", "")
        if not _FHIR_ID.fullmatch(id_):
            raise self._fail("/id", f"'{id_}' is not a FHIR id (letters, digits, '-', '.'; at most 64)")
        url = self._string(resource, "url", "")
        if not url.startswith(("http://", "https://")) or "|" in url:
            raise self._fail("/url", "url must be an absolute http(s) URL without '|'")
        version = self._string(resource, "version", "")
        if "|" in version:
            raise self._fail("/version", "version must not contain '|'")
        if resource.get("status") not in ("draft", "active", "retired", "unknown"):
            raise self._fail("/status", "status must be draft, active, retired or unknown")
        title = self._string(resource, "title", "")
        self._parse_items(resource.get("item"), "/item", parent=None)
        self._check_patterns()
        return QuestionnaireDefinition(
            id=id_,
            version=version,
            url=url,
            resource=resource,
            title=title,
            items=MappingProxyType(self._items),
            terms=MappingProxyType({term: MappingProxyType(a) for term, a in self._terms.items()}),
            red_flags=MappingProxyType(self._red_flags),
            ecog_link_id=self._ecog,
        )

    def _string(self, element: Mapping[str, Any], key: str, pointer: str) -> str:
        value = element.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self._fail(f"{pointer}/{key}", f"'{key}' must be a non-empty string")
        return value

    def _parse_items(self, raw: Any, pointer: str, parent: str | None) -> None:
        if not isinstance(raw, list) or not raw:
            raise self._fail(pointer, "'item' must be a non-empty list")
        for index, element in enumerate(raw):
            self._parse_item(element, f"{pointer}/{index}", parent)

    def _parse_item(self, element: Any, pointer: str, parent: str | None) -> None:
        if not isinstance(element, dict):
            raise self._fail(pointer, "an item must be a JSON object")
        link_id = self._string(element, "linkId", pointer)
        if link_id in self._items:
            raise self._fail(f"{pointer}/linkId", f"linkId '{link_id}' is used twice")
        item_type = element.get("type")
        if item_type not in _QUESTION_TYPES | NO_ANSWER_TYPES:
            raise self._fail(f"{pointer}/type", f"item type {item_type!r} is not supported")
        self._string(element, "text", pointer)  # the tablet has nothing to show without it
        if "answerValueSet" in element:
            raise self._fail(pointer, "answerValueSet is not supported; list the answerOption inline")
        # enableWhen is parsed before the item is registered, so that it can only refer to earlier
        # items: that rules out cycles and lets the response be checked in one pass in document order.
        enable_when = self._parse_enable_when(element, pointer)
        item = ItemDefinition(
            link_id=link_id,
            type=item_type,
            parent=parent,
            repeats=self._flag(element, "repeats", pointer),
            required=self._flag(element, "required", pointer),
            options=self._parse_options(element, item_type, pointer),
            enable_when=enable_when,
            enable_behavior=self._parse_enable_behavior(element, len(enable_when), pointer),
            unit=self._parse_unit(element, item_type, pointer),
            min_value=self._parse_bound(element, MIN_VALUE_URL, item_type, pointer),
            max_value=self._parse_bound(element, MAX_VALUE_URL, item_type, pointer),
            codes=self._parse_codes(element, pointer),
        )
        self._items[link_id] = item
        self._index_meaning(item, pointer)
        if item_type == "group":
            self._parse_items(element.get("item"), f"{pointer}/item", parent=link_id)
        elif "item" in element:
            raise self._fail(f"{pointer}/item", "only groups may contain items (no nested questions)")

    def _flag(self, element: Mapping[str, Any], key: str, pointer: str) -> bool:
        value = element.get(key, False)
        if not isinstance(value, bool):
            raise self._fail(f"{pointer}/{key}", f"'{key}' must be true or false")
        return value

    def _parse_options(self, element: Mapping[str, Any], item_type: str, pointer: str) -> tuple[AnswerOption, ...]:
        raw = element.get("answerOption")
        if item_type != "choice":
            if raw is not None:
                raise self._fail(f"{pointer}/answerOption", "only choice items may have answerOption")
            return ()
        if not isinstance(raw, list) or not raw:
            raise self._fail(f"{pointer}/answerOption", "a choice item needs a non-empty answerOption list")
        options = tuple(self._parse_option(o, f"{pointer}/answerOption/{i}") for i, o in enumerate(raw))
        codes = [(o.coding.system, o.coding.code) for o in options]
        if len(set(codes)) != len(codes):
            raise self._fail(f"{pointer}/answerOption", "two answer options have the same code")
        return options

    def _parse_option(self, raw: Any, pointer: str) -> AnswerOption:
        coding = raw.get("valueCoding") if isinstance(raw, dict) else None
        if not isinstance(coding, dict):
            raise self._fail(pointer, "an answer option must be a valueCoding")
        code = self._string(coding, "code", f"{pointer}/valueCoding")
        display = self._string(coding, "display", f"{pointer}/valueCoding")
        system = coding.get("system")
        if system is not None and not isinstance(system, str):
            raise self._fail(f"{pointer}/valueCoding/system", "system must be a string")
        # The ordinal value may sit on the option (R4 answerOption) or on its Coding.
        ordinal_extension = _extension(raw, ORDINAL_VALUE_URL) or _extension(coding, ORDINAL_VALUE_URL)
        ordinal = None
        if ordinal_extension is not None:
            ordinal = ordinal_extension.get("valueDecimal")
            if not is_number(ordinal):
                raise self._fail(f"{pointer}/extension", "the ordinalValue extension needs a valueDecimal")
        return AnswerOption(Coding(system, code), display, ordinal)

    def _parse_enable_when(self, element: Mapping[str, Any], pointer: str) -> tuple[EnableWhen, ...]:
        raw = element.get("enableWhen")
        if raw is None:
            return ()
        if not isinstance(raw, list) or not raw:
            raise self._fail(f"{pointer}/enableWhen", "enableWhen must be a non-empty list")
        return tuple(self._parse_condition(c, f"{pointer}/enableWhen/{i}") for i, c in enumerate(raw))

    def _parse_condition(self, raw: Any, pointer: str) -> EnableWhen:
        if not isinstance(raw, dict):
            raise self._fail(pointer, "an enableWhen condition must be a JSON object")
        question = self._string(raw, "question", pointer)
        target = self._items.get(question)
        if target is None or not target.is_question:
            raise self._fail(
                f"{pointer}/question",
                f"'{question}' is not a question that comes earlier in the questionnaire",
            )
        operator = raw.get("operator")
        if operator not in _OPERATORS:
            raise self._fail(f"{pointer}/operator", f"operator {operator!r} is not a FHIR enableWhen operator")
        answers = [key for key in raw if key.startswith("answer")]
        if len(answers) != 1:
            raise self._fail(pointer, "an enableWhen condition needs exactly one answer[x]")
        return EnableWhen(question, operator, self._condition_answer(raw, answers[0], target, operator, pointer))

    def _condition_answer(
        self, raw: Mapping[str, Any], key: str, target: ItemDefinition, operator: str, pointer: str
    ) -> AnswerValue:
        value = raw[key]
        where = f"{pointer}/{key}"
        if operator == "exists":
            if key != "answerBoolean" or not isinstance(value, bool):
                raise self._fail(where, "the 'exists' operator needs answerBoolean")
            return value
        if operator in _ORDERINGS and target.type not in ("decimal", "integer"):
            raise self._fail(f"{pointer}/operator", f"'{operator}' only applies to decimal or integer questions")
        if target.type == "choice" and key == "answerCoding" and isinstance(value, dict):
            coding = Coding(value.get("system"), str(value.get("code")))
            if target.option_for(coding.code, coding.system) is None:
                raise self._fail(where, f"'{coding.code}' is not an option of '{target.link_id}'")
            return coding
        if target.type == "boolean" and key == "answerBoolean" and isinstance(value, bool):
            return value
        if target.type in ("decimal", "integer") and key in ("answerDecimal", "answerInteger"):
            if is_number(value):
                return value
        if target.type in ("string", "text") and key == "answerString" and isinstance(value, str):
            return value
        raise self._fail(where, f"{key} does not fit the {target.type} question '{target.link_id}'")

    def _parse_enable_behavior(
        self, element: Mapping[str, Any], conditions: int, pointer: str
    ) -> Literal["all", "any"]:
        behavior = element.get("enableBehavior")
        if behavior is None and conditions <= 1:
            return "all"  # one condition: both behaviours agree
        if behavior == "all" or behavior == "any":
            return behavior
        # FHIR que-12: several conditions need an explicit behaviour.
        raise self._fail(f"{pointer}/enableBehavior", "enableBehavior must be 'all' or 'any'")

    def _parse_unit(self, element: Mapping[str, Any], item_type: str, pointer: str) -> Coding | None:
        extension = _extension(element, UNIT_URL)
        if extension is None:
            return None
        coding = extension.get("valueCoding")
        if item_type not in ("decimal", "integer") or not isinstance(coding, dict):
            raise self._fail(f"{pointer}/extension", "a unit (valueCoding) only applies to decimal or integer")
        code = self._string(coding, "code", f"{pointer}/extension")
        return Coding(coding.get("system"), code, coding.get("display"))

    def _parse_bound(self, element: Mapping[str, Any], url: str, item_type: str, pointer: str) -> float | None:
        extension = _extension(element, url)
        if extension is None:
            return None
        value = extension.get("valueDecimal", extension.get("valueInteger"))
        if item_type not in ("decimal", "integer") or not is_number(value):
            raise self._fail(f"{pointer}/extension", f"{url} needs a number on a decimal or integer item")
        return float(value)

    def _parse_codes(self, element: Mapping[str, Any], pointer: str) -> tuple[Coding, ...]:
        raw = element.get("code", [])
        if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
            raise self._fail(f"{pointer}/code", "'code' must be a list of Codings")
        return tuple(Coding(c.get("system"), self._string(c, "code", f"{pointer}/code")) for c in raw)

    # -- meaning: which items feed TermAnswer, RedFlags and ecog --

    def _index_meaning(self, item: ItemDefinition, pointer: str) -> None:
        for coding in item.codes:
            if coding.system == ATTRIBUTE_SYSTEM:
                self._index_attribute(item, coding.code, pointer)
            elif coding.system == RED_FLAG_SYSTEM:
                self._index_red_flag(item, coding.code, pointer)
            elif coding.system == ECOG_SYSTEM:
                self._index_ecog(item, pointer)

    def _index_attribute(self, item: ItemDefinition, code: str, pointer: str) -> None:
        term, _, attribute = code.partition(".")
        if not _TERM_CODE.fullmatch(term) or attribute not in ATTRIBUTES:
            raise self._fail(f"{pointer}/code", f"'{code}' is not '<term>.<{'|'.join(ATTRIBUTES)}>'")
        if attribute in self._terms.get(term, {}):
            raise self._fail(f"{pointer}/code", f"attribute '{code}' is asked twice")
        self._require_scored_choice(item, pointer)
        self._terms.setdefault(term, {})[attribute] = item.link_id

    def _index_red_flag(self, item: ItemDefinition, code: str, pointer: str) -> None:
        expected_type = _RED_FLAG_TYPES.get(code)
        if expected_type is None:
            raise self._fail(f"{pointer}/code", f"'{code}' is not a red flag ({', '.join(_RED_FLAG_TYPES)})")
        if item.type != expected_type or item.repeats:
            raise self._fail(f"{pointer}/type", f"red flag '{code}' must be a non-repeating {expected_type}")
        if code in self._red_flags:
            raise self._fail(f"{pointer}/code", f"red flag '{code}' is asked twice")
        self._red_flags[code] = item.link_id

    def _index_ecog(self, item: ItemDefinition, pointer: str) -> None:
        if self._ecog is not None:
            raise self._fail(f"{pointer}/code", "the ECOG performance status is asked twice")
        self._require_scored_choice(item, pointer)
        self._ecog = item.link_id

    def _require_scored_choice(self, item: ItemDefinition, pointer: str) -> None:
        # Scores travel as integers 0-4 in the event; anything else would fail later, per submission.
        if item.type != "choice" or item.repeats:
            raise self._fail(f"{pointer}/type", f"'{item.link_id}' must be a non-repeating choice")
        for option in item.options:
            ordinal = option.ordinal
            if ordinal is None or not float(ordinal).is_integer() or not 0 <= ordinal <= 4:
                raise self._fail(
                    f"{pointer}/answerOption",
                    f"option '{option.coding.code}' of '{item.link_id}' needs an ordinalValue from 0 to 4",
                )

    def _check_patterns(self) -> None:
        for term, attributes in self._terms.items():
            if frozenset(attributes) not in _SCORABLE_PATTERNS:
                raise self._fail(
                    "/item",
                    f"term '{term}' asks {sorted(attributes)}, which no PRO-CTCAE composite table scores",
                )


# ----------------------------------------------------------------------------------- enableWhen (FHIR R4)


def _condition_holds(condition: EnableWhen, answers: Sequence[AnswerValue]) -> bool:
    """FHIR R4 enableWhen semantics; "!=" holds when *no* answer equals (so also when unanswered)."""
    expected = condition.answer
    match condition.operator:
        case "exists":
            return bool(answers) == expected
        case "=":
            return any(_same(answer, expected) for answer in answers)
        case "!=":
            return not any(_same(answer, expected) for answer in answers)
        case _:  # an ordering; load-time validation allowed it on numeric questions only
            compare = _ORDERINGS[condition.operator]
            return any(is_number(answer) and compare(answer, expected) for answer in answers)


def _same(answer: AnswerValue, expected: AnswerValue) -> bool:
    if isinstance(answer, Coding) and isinstance(expected, Coding):
        systems_agree = expected.system is None or answer.system is None or answer.system == expected.system
        return answer.code == expected.code and systems_agree
    return answer == expected


def is_enabled(item: ItemDefinition, effective: Mapping[str, Sequence[AnswerValue]]) -> bool:
    if not item.enable_when:
        return True
    results = (_condition_holds(c, effective.get(c.question, ())) for c in item.enable_when)
    return all(results) if item.enable_behavior == "all" else any(results)
