"""Questionnaire rules: the catalogue of FHIR R4 Questionnaire definitions, and the normalisation of a
submitted FHIR R4 QuestionnaireResponse into the answers the ``questionnaire.submitted`` event carries.

Pure: no network, no database, no asyncio. The only I/O is reading the definition files at start-up
(``QuestionnaireCatalogue.from_directory``); the clock is read only when the caller does not pass ``now``.

Questionnaires are data, so nothing below knows the linkIds of the default questionnaire. What an item
*means* comes from its ``code``:

* ``pro-ctcae-attribute`` ``<term>.<attribute>``: one attribute of a PRO-CTCAE term, scored by the
  ordinal value (0-4) of the chosen answer option;
* ``red-flag`` ``fever`` / ``temperature`` / ``bleeding`` / ``unable_to_eat_or_drink`` / ``wants_call``;
* any code of the ``ecog`` system: the self-rated ECOG performance status.

Every bad input raises ``InvalidSubmission`` with one plain English sentence for the developer of the
tablet client and a JSON pointer into the request body, so the API can answer a 4xx problem+json.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import ge, gt, le, lt
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias
from uuid import UUID

from shared.events.questionnaire import AnsweredBy, RedFlags, TermAnswer

DEFAULT_DEFINITIONS_DIR: Path = Path(__file__).resolve().parent / "definitions"

_BASE = "https://oncofollow.example/fhir"
ATTRIBUTE_SYSTEM = f"{_BASE}/CodeSystem/pro-ctcae-attribute"
RED_FLAG_SYSTEM = f"{_BASE}/CodeSystem/red-flag"
ECOG_SYSTEM = f"{_BASE}/CodeSystem/ecog"
ORDINAL_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
MIN_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE_URL = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT_URL = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
UCUM_SYSTEM = "http://unitsofmeasure.org"

MAX_ITEMS = 200  # a full default response has ~50 items; more is a broken or hostile client
MAX_CLOCK_SKEW = timedelta(minutes=5)  # tablets' clocks drift; further ahead is a wrong clock
# A tablet keeps answers while it is offline, for days; a year back is a wrong clock (and year 1 is no date the
# database can store).
MAX_AUTHORED_AGE = timedelta(days=366)
ACCEPTED_STATUSES = ("completed", "amended")
# The event contract's bounds (RedFlags.temperature_c); checked here so that a definition without
# minValue/maxValue still gives a 4xx rather than a validation error deep in the service.
TEMPERATURE_RANGE_C = (30.0, 45.0)

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
_NO_ANSWER_TYPES = frozenset({"group", "display"})
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    ">": gt,
    "<": lt,
    ">=": ge,
    "<=": le,
}
_OPERATORS = frozenset({"exists", "=", "!=", *_ORDERINGS})
_SOURCE_KINDS: tuple[tuple[str, AnsweredBy], ...] = (
    ("Patient/", "patient"),
    ("RelatedPerson/", "relative"),
    ("Practitioner/", "nurse_phone"),
    ("PractitionerRole/", "nurse_phone"),
)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TERM_CODE = re.compile(r"[a-z][a-z0-9_]*")
# RFC 3339 date-time with a mandatory offset, as FHIR's instant/dateTime spell it.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


# --------------------------------------------------------------------------------------------- errors


class InvalidSubmission(ValueError):
    """A QuestionnaireResponse the service refuses (a 4xx: the client must change the request)."""

    def __init__(self, detail: str, pointer: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer  # RFC 6901 JSON pointer into the request body; "" is the whole body


class UnknownQuestionnaire(LookupError):
    """No loaded definition matches a canonical URL, version or id."""


class InvalidDefinition(ValueError):
    """A definition file the service cannot serve; raised at start-up so that nobody answers it."""


class _UnknownQuestionnaireInSubmission(InvalidSubmission, UnknownQuestionnaire):
    """Raised by normalise_response: callers catching either exception type see it, with its pointer."""


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
        return _is_enabled(self, {})

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


def _is_number(value: Any) -> bool:
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
        if item_type not in _QUESTION_TYPES | _NO_ANSWER_TYPES:
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
            if not _is_number(ordinal):
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
            if _is_number(value):
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
        if item_type not in ("decimal", "integer") or not _is_number(value):
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


# ----------------------------------------------------------------------------------------- catalogue


def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    # Dotted numeric versions compare as numbers ("1.10.0" > "1.9.0"); other parts as text.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+]", version))


def _load_file(path: Path) -> QuestionnaireDefinition:
    try:
        resource = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDefinition(f"{path}: not valid UTF-8 JSON ({exc})") from exc
    return QuestionnaireDefinition.from_resource(resource, origin=str(path))


class QuestionnaireCatalogue:
    """Every loaded definition, by canonical URL and version; read-only once built."""

    def __init__(self, definitions: Iterable[QuestionnaireDefinition]) -> None:
        self._by_url: dict[str, dict[str, QuestionnaireDefinition]] = {}
        self._url_by_id: dict[str, str] = {}
        for definition in definitions:
            self._add(definition)

    def _add(self, definition: QuestionnaireDefinition) -> None:
        # One id <-> one url, so that "Questionnaire/<id>" and the canonical URL name the same thing.
        known_url = self._url_by_id.setdefault(definition.id, definition.url)
        if known_url != definition.url:
            raise InvalidDefinition(f"questionnaire id '{definition.id}' is used by {known_url} and {definition.url}")
        versions = self._by_url.setdefault(definition.url, {})
        other = next(iter(versions.values()), None)
        if other is not None and other.id != definition.id:
            raise InvalidDefinition(f"{definition.url} is used by ids '{other.id}' and '{definition.id}'")
        if definition.version in versions:
            raise InvalidDefinition(f"{definition.canonical} is defined twice")
        versions[definition.version] = definition

    @classmethod
    def from_directory(cls, directory: Path) -> QuestionnaireCatalogue:
        """Loads every ``*.json`` file of ``directory`` (not recursive); each must be a Questionnaire."""
        if not directory.is_dir():
            raise InvalidDefinition(f"{directory}: questionnaire definitions directory not found")
        paths = sorted(directory.glob("*.json"))
        if not paths:
            raise InvalidDefinition(f"{directory}: no *.json questionnaire definition in this directory")
        return cls(_load_file(path) for path in paths)

    def all(self) -> list[QuestionnaireDefinition]:
        """The latest version of each questionnaire, by id."""
        return sorted((self._latest(url) for url in self._by_url), key=lambda d: d.id)

    def get(self, questionnaire_id: str) -> QuestionnaireDefinition | None:
        """The latest version of the questionnaire with this id, or None."""
        url = self._url_by_id.get(questionnaire_id)
        return None if url is None else self._latest(url)

    def resolve(self, canonical: str) -> QuestionnaireDefinition:
        """``url|version`` (that version), ``url`` or ``Questionnaire/<id>`` (the latest version)."""
        if canonical.startswith("Questionnaire/"):
            questionnaire_id = canonical.removeprefix("Questionnaire/")
            definition = self.get(questionnaire_id)
            if definition is None:
                raise UnknownQuestionnaire(
                    f"No questionnaire has the id '{questionnaire_id}'; known ids: {self._known_ids()}."
                )
            return definition
        url, has_version, version = canonical.partition("|")
        versions = self._by_url.get(url)
        if versions is None:
            known = ", ".join(sorted(self._by_url))
            raise UnknownQuestionnaire(f"No questionnaire has the canonical URL '{url}'; known URLs: {known}.")
        if not has_version:
            return self._latest(url)
        if version not in versions:
            known = ", ".join(sorted(versions, key=_version_key))
            raise UnknownQuestionnaire(f"Questionnaire '{url}' has no version '{version}'; known versions: {known}.")
        return versions[version]

    def _latest(self, url: str) -> QuestionnaireDefinition:
        return max(self._by_url[url].values(), key=lambda d: _version_key(d.version))

    def _known_ids(self) -> str:
        return ", ".join(sorted(self._url_by_id))


# ------------------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class NormalisedSubmission:
    questionnaire_id: str
    questionnaire_version: str
    authored: datetime  # timezone-aware
    answered_by: AnsweredBy
    # The patient the response names (its subject, or else a Patient source: a patient answers only for
    # themselves); the API checks it against the device token.
    subject_patient_id: UUID | None
    terms: tuple[TermAnswer, ...]  # in the questionnaire's order; only the terms the response answers
    red_flags: RedFlags
    ecog: int | None


@dataclass(frozen=True)
class _Answer:
    value: AnswerValue
    ordinal: float | None  # the chosen option's ordinal value, for choice answers
    pointer: str


@dataclass(frozen=True)
class _GivenItem:
    pointer: str  # where the item is in the request body
    answers: tuple[_Answer, ...]


def normalise_response(
    catalogue: QuestionnaireCatalogue, response: Mapping[str, Any], *, now: datetime | None = None
) -> NormalisedSubmission:
    """Checks a FHIR R4 QuestionnaireResponse (parsed JSON) and extracts what the event carries.

    Raises InvalidSubmission for every bad input; an unknown questionnaire raises an exception that is
    both an InvalidSubmission (pointer "/questionnaire") and an UnknownQuestionnaire.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # a programming error, not a client's
    body = _require_response(response)
    definition = _questionnaire(catalogue, body)
    authored = _authored(body, now if now is not None else datetime.now(UTC))
    subject_patient_id = _subject_patient_id(body)
    answered_by = _answered_by(body, subject_patient_id)
    given = _ItemCollector(definition).collect(body)
    answered_terms = _answered_terms(definition, given)
    _check_branching(definition, given, answered_terms)
    return NormalisedSubmission(
        questionnaire_id=definition.id,
        questionnaire_version=definition.version,
        authored=authored,
        answered_by=answered_by,
        subject_patient_id=subject_patient_id if subject_patient_id is not None else _source_patient_id(body),
        terms=_term_answers(definition, given, answered_terms),
        red_flags=_red_flags(definition, given),
        ecog=_ecog(definition, given),
    )


def _show(value: Any) -> str:
    """A short JSON rendering of a client value for an error sentence (never a whole payload)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


# -- the envelope --


def _require_response(response: Any) -> Mapping[str, Any]:
    if not isinstance(response, Mapping):
        raise InvalidSubmission("The request body must be a JSON object (a FHIR QuestionnaireResponse).", "")
    if response.get("resourceType") != "QuestionnaireResponse":
        raise InvalidSubmission(
            f'resourceType must be "QuestionnaireResponse", not {_show(response.get("resourceType"))}.',
            "/resourceType",
        )
    status = response.get("status")
    if status not in ACCEPTED_STATUSES:
        raise InvalidSubmission(
            f'status must be "completed" or "amended", not {_show(status)}: only finished answers are taken.',
            "/status",
        )
    return response


def _questionnaire(catalogue: QuestionnaireCatalogue, body: Mapping[str, Any]) -> QuestionnaireDefinition:
    canonical = body.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        raise InvalidSubmission(
            "questionnaire is required: the canonical URL of the questionnaire answered, "
            'e.g. "https://oncofollow.example/fhir/Questionnaire/reconnect-symptoms|1.0.0".',
            "/questionnaire",
        )
    try:
        return catalogue.resolve(canonical)
    except UnknownQuestionnaire as exc:
        raise _UnknownQuestionnaireInSubmission(str(exc), "/questionnaire") from exc


def _authored(body: Mapping[str, Any], now: datetime) -> datetime:
    raw = body.get("authored")
    example = 'e.g. "2026-03-01T09:30:00+01:00"'
    if raw is None:
        raise InvalidSubmission(f"authored is required: when the answers were given, {example}.", "/authored")
    match = _RFC3339.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise InvalidSubmission(
            f"authored must be an RFC 3339 date-time with a time zone, {example}; got {_show(raw)}.",
            "/authored",
        )
    try:
        authored = datetime.fromisoformat(raw)  # the regex above made it strict; this checks the calendar
    except ValueError:
        raise InvalidSubmission(f"authored {_show(raw)} is not a real date and time.", "/authored") from None
    if authored < now - MAX_AUTHORED_AGE:
        raise InvalidSubmission(
            f"authored {_show(raw)} is more than a year ago (server time "
            f"{now.astimezone(UTC).isoformat(timespec='seconds')}); check the tablet's clock.",
            "/authored",
        )
    if authored > now + MAX_CLOCK_SKEW:
        raise InvalidSubmission(
            f"authored {_show(raw)} is more than 5 minutes in the future (server time "
            f"{now.astimezone(UTC).isoformat(timespec='seconds')}); check the tablet's clock.",
            "/authored",
        )
    return authored


def _patient_uuid(reference: str, pointer: str, field: str) -> UUID:
    raw_id = reference.removeprefix("Patient/")
    try:
        patient_id = UUID(raw_id)
    except ValueError:
        patient_id = None
    # UUID() also takes braces, "urn:uuid:" and missing hyphens; only the canonical form is an id here.
    if patient_id is None or str(patient_id) != raw_id.lower():
        raise InvalidSubmission(
            f'{field} must be "Patient/<uuid>" (the patient\'s pseudonymous id); got {_show(reference)}.',
            pointer,
        )
    return patient_id


def _reference(body: Mapping[str, Any], field: str) -> str | None:
    element = body.get(field)
    if element is None:
        return None
    reference = element.get("reference") if isinstance(element, Mapping) else None
    if not isinstance(reference, str) or not reference:
        raise InvalidSubmission(
            f'{field} must be a Reference with a "reference" string, e.g. {{"reference": "Patient/<uuid>"}}.',
            f"/{field}",
        )
    return reference


def _subject_patient_id(body: Mapping[str, Any]) -> UUID | None:
    reference = _reference(body, "subject")
    if reference is None:
        return None
    return _patient_uuid(reference, "/subject/reference", "subject.reference")


def _answered_by(body: Mapping[str, Any], subject_patient_id: UUID | None) -> AnsweredBy:
    """Who answered, from ``source`` (FHIR: the person who answered, not the one who typed)."""
    reference = _reference(body, "source")
    if reference is None:
        return "patient"  # the tablet is the patient's own; a proxy or a nurse says so
    for prefix, kind in _SOURCE_KINDS:
        if reference.startswith(prefix) and len(reference) > len(prefix):
            if kind == "patient":
                _check_patient_source(reference, subject_patient_id)
            return kind
    raise InvalidSubmission(
        f"source {_show(reference)} must reference Patient/<uuid> (the patient), RelatedPerson/<id> "
        "(a relative) or Practitioner/<id> or PractitionerRole/<id> (a nurse on the phone).",
        "/source/reference",
    )


def _source_patient_id(body: Mapping[str, Any]) -> UUID | None:
    reference = _reference(body, "source")
    if reference is None or not reference.startswith("Patient/"):
        return None
    return _patient_uuid(reference, "/source/reference", "source.reference")


def _check_patient_source(reference: str, subject_patient_id: UUID | None) -> None:
    source_id = _patient_uuid(reference, "/source/reference", "source.reference")
    if subject_patient_id is not None and source_id != subject_patient_id:
        raise InvalidSubmission(
            f"source {_show(reference)} is a different patient from subject; a patient answers only for "
            "themselves (use RelatedPerson/<id> for a relative).",
            "/source/reference",
        )


# -- the items --


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


class _ItemCollector:
    """Walks the response's items, nested as in the definition or flat, and types every answer."""

    def __init__(self, definition: QuestionnaireDefinition) -> None:
        self._definition = definition
        self._given: dict[str, _GivenItem] = {}

    def collect(self, body: Mapping[str, Any]) -> dict[str, _GivenItem]:
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
        if item.type in _NO_ANSWER_TYPES:
            if "answer" in element:
                raise InvalidSubmission(
                    f"Item '{item.link_id}' is a {item.type} and cannot have answers; answer the questions "
                    "it contains instead.",
                    f"{pointer}/answer",
                )
            self._given[item.link_id] = _GivenItem(pointer, ())
            if "item" in element:
                self._walk(element["item"], f"{pointer}/item", parent=item.link_id)
            return
        if "item" in element:
            raise InvalidSubmission(
                f"Item '{item.link_id}' is a question and cannot contain items; only groups nest items.",
                f"{pointer}/item",
            )
        self._given[item.link_id] = _GivenItem(pointer, self._answers(item, element, pointer))

    def _item_definition(self, element: Mapping[str, Any], pointer: str, parent: str | None) -> ItemDefinition:
        link_id = element.get("linkId")
        if not isinstance(link_id, str) or not link_id:
            raise InvalidSubmission("Each item needs a linkId string.", f"{pointer}/linkId")
        definition = self._definition
        item = definition.items.get(link_id)
        if item is None:
            raise InvalidSubmission(
                f"Item linkId {_show(link_id)} is not in questionnaire '{definition.id}' version {definition.version}.",
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

    def _answers(self, item: ItemDefinition, element: Mapping[str, Any], pointer: str) -> tuple[_Answer, ...]:
        raw = element.get("answer", [])
        if not isinstance(raw, list):
            raise InvalidSubmission(f"answer of item '{item.link_id}' must be a list.", f"{pointer}/answer")
        limit = MAX_ITEMS if item.repeats else 1
        if len(raw) > limit:
            raise InvalidSubmission(
                f"Item '{item.link_id}' takes one answer, but {len(raw)} were given.", f"{pointer}/answer"
            )
        return tuple(_answer(item, a, f"{pointer}/answer/{i}") for i, a in enumerate(raw))


def _answer(item: ItemDefinition, raw: Any, pointer: str) -> _Answer:
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
        return _Answer(value, None, pointer)
    if item.type == "integer" and key == "valueInteger" and _is_number(value) and isinstance(value, int):
        return _Answer(_in_bounds(item, value, pointer), None, pointer)
    if item.type == "decimal" and key in ("valueDecimal", "valueInteger") and _is_number(value):
        return _Answer(_in_bounds(item, float(value), pointer), None, pointer)
    if item.type == "decimal" and key == "valueQuantity":
        return _Answer(_in_bounds(item, _quantity(item, value, pointer), pointer), None, pointer)
    if item.type in ("string", "text") and key == "valueString" and isinstance(value, str):
        return _Answer(value, None, pointer)
    raise InvalidSubmission(
        f"Item '{item.link_id}' is a {item.type} question; answer it with {_expected_value(item)}, "
        f"not {key} {_show(value)}.",
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


def _choice_answer(item: ItemDefinition, coding: Any, pointer: str) -> _Answer:
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
    return _Answer(option.coding, option.ordinal, pointer)


def _not_an_option(item: ItemDefinition, code: str, system: str | None) -> str:
    if item.option_for(code, None) is not None:  # the right code from another scale or code system
        systems = ", ".join(sorted({json.dumps(o.coding.system) for o in item.options if o.coding.system}))
        return (
            f"Code {_show(code)} of item '{item.link_id}' is from system {_show(system)}, "
            f"but its options are from {systems}."
        )
    allowed = ", ".join(f"'{o.coding.code}'" for o in item.options)
    return f"Code {_show(code)} is not an option of item '{item.link_id}'; its options are {allowed}."


def _quantity(item: ItemDefinition, quantity: Any, pointer: str) -> float:
    unit = item.unit
    if unit is None:
        raise InvalidSubmission(
            f"Item '{item.link_id}' has no unit; answer it with valueDecimal, not valueQuantity.", pointer
        )
    value: Any = quantity.get("value") if isinstance(quantity, Mapping) else None
    if not _is_number(value):
        raise InvalidSubmission(f"valueQuantity of item '{item.link_id}' needs a numeric \"value\".", pointer)
    # UCUM code first (the machine form); the human "unit" text as a fallback ("°C" for "Cel").
    code, system, text = (quantity.get(k) for k in ("code", "system", "unit"))
    accepted_texts = {unit.code, unit.display} - {None}
    by_code = code == unit.code and system in (None, unit.system)
    by_text = code is None and text in accepted_texts
    if not (by_code or by_text):
        raise InvalidSubmission(
            f"valueQuantity of item '{item.link_id}' must be in {_unit_name(unit)} "
            f'(code "{unit.code}", system "{unit.system}"); got {_show(code or text)}.',
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
            f"The answer {_show(value)} to item '{item.link_id}' is outside {_bounds(item)}.", pointer
        )
    return value


def _bounds(item: ItemDefinition) -> str:
    unit = f" {_unit_name(item.unit)}" if item.unit else ""
    if item.min_value is not None and item.max_value is not None:
        return f"{item.min_value:g}-{item.max_value:g}{unit}"
    if item.min_value is not None:
        return f"the minimum {item.min_value:g}{unit}"
    return f"the maximum {item.max_value:g}{unit}"


# -- branching (enableWhen) --


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
            return any(_is_number(answer) and compare(answer, expected) for answer in answers)


def _same(answer: AnswerValue, expected: AnswerValue) -> bool:
    if isinstance(answer, Coding) and isinstance(expected, Coding):
        systems_agree = expected.system is None or answer.system is None or answer.system == expected.system
        return answer.code == expected.code and systems_agree
    return answer == expected


def _is_enabled(item: ItemDefinition, effective: Mapping[str, Sequence[AnswerValue]]) -> bool:
    if not item.enable_when:
        return True
    results = (_condition_holds(c, effective.get(c.question, ())) for c in item.enable_when)
    return all(results) if item.enable_behavior == "all" else any(results)


class _Enablement:
    """Whether the response enables an item, worked out only for the items asked about (and what they
    depend on), since a patient answers a few terms of many.

    Conditions only refer to earlier items (checked at load), so the recursion ends; a disabled question
    counts as unanswered (FHIR).
    """

    def __init__(self, definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem]) -> None:
        self._items = definition.items
        self._given = given
        self._known: dict[str, bool] = {}

    def __getitem__(self, link_id: str) -> bool:
        known = self._known.get(link_id)
        if known is not None:
            return known
        item = self._items[link_id]
        on = item.parent is None or self[item.parent]
        if on and item.enable_when:
            effective = {q: self._effective(q) for q in item.depends_on}
            on = _is_enabled(item, effective) if any(effective.values()) else item.enabled_while_unanswered
        self._known[link_id] = on
        return on

    def _effective(self, link_id: str) -> tuple[AnswerValue, ...]:
        given = self._given.get(link_id)
        if given is None or not given.answers or not self[link_id]:
            return ()
        return tuple(answer.value for answer in given.answers)


def _check_branching(
    definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem], answered_terms: set[str]
) -> None:
    """Answered items must be enabled; enabled items must be answered if required or part of an answered term."""
    enabled = _Enablement(definition, given)
    answered = {link_id for link_id, item in given.items() if item.answers}
    must_answer = definition.required_questions.union(*(definition.terms[term].values() for term in answered_terms))
    position = definition.position
    for link_id in sorted(answered | must_answer, key=position.__getitem__):  # the first problem is the one told
        item = definition.items[link_id]
        if link_id in answered:
            if not enabled[link_id]:
                raise InvalidSubmission(_disabled_detail(definition, item, enabled), given[link_id].pointer)
        elif item.is_question and enabled[link_id]:
            raise InvalidSubmission(
                _missing_detail(item, definition.term_of.get(link_id)), _missing_pointer(item, given)
            )


def _answered_terms(definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem]) -> set[str]:
    """Terms with at least one answer: those must be complete (NCI: ask all attributes of a term)."""
    term_of = definition.term_of
    return {term_of[link] for link, item in given.items() if item.answers and link in term_of}


def _disabled_detail(definition: QuestionnaireDefinition, item: ItemDefinition, enabled: _Enablement) -> str:
    if item.parent is not None and not enabled[item.parent]:
        return f"Item '{item.link_id}' must not be answered: its group '{item.parent}' is not enabled by this response."
    joiner = " and " if item.enable_behavior == "all" else " or "
    conditions = joiner.join(c.describe() for c in item.enable_when)
    why = " (PRO-CTCAE branching)" if item.link_id in definition.term_of else ""
    return (
        f"Item '{item.link_id}' must not be answered: it is only asked when {conditions}{why}, "
        "which this response does not satisfy."
    )


def _missing_detail(item: ItemDefinition, term: str | None) -> str:
    if term is None:
        return f"Item '{item.link_id}' is required and missing."
    return (
        f"Item '{item.link_id}' is missing: the response answers term '{term}', and every question of a term "
        "that the PRO-CTCAE branching asks must be answered."
    )


def _missing_pointer(item: ItemDefinition, given: Mapping[str, _GivenItem]) -> str:
    # The missing answer belongs in its group if the response sent the group, else at the top level.
    if item.parent is not None and item.parent in given:
        return f"{given[item.parent].pointer}/item"
    return "/item"


# -- what the event carries --


def _term_answers(
    definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem], answered_terms: set[str]
) -> tuple[TermAnswer, ...]:
    answers: list[TermAnswer] = []
    for term, attributes in definition.terms.items():
        if term not in answered_terms:
            continue  # not asked this time: nothing to report, not an error
        scores: dict[str, int] = {}
        for attribute, link_id in attributes.items():
            # Branching checked: an unanswered attribute here is one PRO-CTCAE skipped, scored 0 (CDISC).
            chosen = given[link_id].answers if link_id in given else ()
            scores[attribute] = int(chosen[0].ordinal or 0) if chosen else 0
        answers.append(TermAnswer(term=term, **scores))
    return tuple(answers)


def _single(given: Mapping[str, _GivenItem], link_id: str | None) -> _Answer | None:
    if link_id is None or link_id not in given or not given[link_id].answers:
        return None
    return given[link_id].answers[0]


def _red_flags(definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem]) -> RedFlags:
    answers = {code: _single(given, link) for code, link in definition.red_flags.items()}
    fever = _yes(answers.get("fever"))
    temperature = _temperature(definition, answers.get("temperature"), fever=fever)
    return RedFlags(
        fever=fever,
        temperature_c=temperature,
        bleeding=_yes(answers.get("bleeding")),
        unable_to_eat_or_drink=_yes(answers.get("unable_to_eat_or_drink")),
        wants_call=_yes(answers.get("wants_call")),
    )


def _yes(answer: _Answer | None) -> bool:
    return answer is not None and answer.value is True


def _temperature(definition: QuestionnaireDefinition, answer: _Answer | None, *, fever: bool) -> float | None:
    """The measured temperature, checked against the event contract whatever the definition says."""
    if answer is None:
        return None
    value = answer.value
    assert isinstance(value, float)  # a decimal item's answers are floats (_answer)
    fever_link = definition.red_flags.get("fever")
    temperature_link = definition.red_flags["temperature"]
    # Where the questionnaire asks "fever?" first, a temperature comes with a yes; one that asks only for the
    # measured value takes it on its own (CLINICAL.md §1: "or the measured value").
    if fever_link is not None and not fever:
        raise InvalidSubmission(
            f"Item '{temperature_link}' is answered but '{fever_link}' is not true; "
            f"send '{fever_link}' = true with a temperature.",
            answer.pointer,
        )
    low, high = TEMPERATURE_RANGE_C
    if not low <= value <= high:
        raise InvalidSubmission(
            f"The temperature {_show(value)} °C in item '{temperature_link}' is outside {low:g}-{high:g} °C.",
            answer.pointer,
        )
    return value


def _ecog(definition: QuestionnaireDefinition, given: Mapping[str, _GivenItem]) -> int | None:
    answer = _single(given, definition.ecog_link_id)
    return None if answer is None or answer.ordinal is None else int(answer.ordinal)
