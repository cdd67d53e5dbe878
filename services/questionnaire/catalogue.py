"""The catalogue of questionnaire definitions the tablets are offered: every version of each, loaded once at
start-up from a folder of FHIR R4 Questionnaire files (the one place of the domain that reads files), then
looked up by canonical URL, version or id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from services.questionnaire.fhir_questionnaire import InvalidDefinition, QuestionnaireDefinition
from shared.repeating import quoted

DEFAULT_DEFINITIONS_DIR: Path = Path(__file__).resolve().parent / "definitions"


class UnknownQuestionnaire(LookupError):
    """No loaded definition matches a canonical URL, version or id."""


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
                    f"No questionnaire has the id {quoted(questionnaire_id)}; known ids: {self._known_ids()}."
                )
            return definition
        url, has_version, version = canonical.partition("|")
        versions = self._by_url.get(url)
        if versions is None:
            known = ", ".join(sorted(self._by_url))
            raise UnknownQuestionnaire(f"No questionnaire has the canonical URL {quoted(url)}; known URLs: {known}.")
        if not has_version:
            return self._latest(url)
        if version not in versions:
            known = ", ".join(sorted(versions, key=_version_key))
            raise UnknownQuestionnaire(
                f"Questionnaire {quoted(url)} has no version {quoted(version)}; known versions: {known}."
            )
        return versions[version]

    def _latest(self, url: str) -> QuestionnaireDefinition:
        return max(self._by_url[url].values(), key=lambda d: _version_key(d.version))

    def _known_ids(self) -> str:
        return ", ".join(sorted(self._url_by_id))
