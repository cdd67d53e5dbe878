"""What the API fuzz (tests/integration/test_api_fuzz.py) needs beside schemathesis: the service's tables counted
before and after a refused request, and the shape every refusal must have.

Hypothesis runs the fuzz synchronously; the counts are read with asyncpg on an event loop of their own, in a
thread, so that they never touch the loop of the test session.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import uuid
from collections.abc import Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson

from shared.http.problems import MEDIA_TYPE

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine on it from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class TableCounts:
    """The row count of every table of a service's schema, in one statement (a few small tables in a test).

    ``excluded``: tables written by something else than the request under test (a consumer's inbox)."""

    def __init__(self, loop: BackgroundLoop, database_url: str, schema: str, excluded: frozenset[str]) -> None:
        self._loop = loop
        self._conn: asyncpg.Connection = loop.run(asyncpg.connect(database_url))
        tables = loop.run(
            self._conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE' ORDER BY table_name",
                schema,
            )
        )
        self.tables = tuple(r["table_name"] for r in tables if r["table_name"] not in excluded)
        if not self.tables:
            raise RuntimeError(f"schema {schema!r} has no table: are its migrations applied?")
        counts = ", ".join(f'(SELECT count(*) FROM "{schema}"."{t}") AS "{t}"' for t in self.tables)
        self._query = f"SELECT {counts}"

    def now(self) -> dict[str, int]:
        row = self._loop.run(self._conn.fetchrow(self._query))
        return dict(row)

    def close(self) -> None:
        self._loop.run(self._conn.close())


def grown(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """The tables whose count changed: ``{table: (before, after)}``."""
    return {t: (before[t], after[t]) for t in before if after.get(t) != before[t]}


def problem_failures(status: int, content_type: str | None, body: bytes) -> list[str]:
    """What is wrong with a refusal (a 4xx) as an RFC 9457 problem: nothing, or one sentence per fault."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != MEDIA_TYPE:
        return [f"a {status} answered as {content_type!r}, not {MEDIA_TYPE}"]
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [f"a {status} whose body is not JSON: {body[:200]!r}"]
    if not isinstance(problem, dict):
        return [f"a {status} whose body is not a JSON object: {body[:200]!r}"]
    faults = []
    for member in ("type", "title", "detail"):
        value = problem.get(member)
        if not isinstance(value, str) or not value.strip():
            faults.append(f"a {status} problem without a {member}: {problem}")
    if problem.get("status") != status:
        faults.append(f"a {status} problem whose status member is {problem.get('status')!r}")
    return faults


# --- Valid requests go further ----------------------------------------------------------------------------------
# Generated from the documents alone, valid requests rarely get past the rules the documents cannot say (a date
# within a day of now, an answer the questionnaire has): some of them are brought closer to what a client sends.

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def recent(value: Any, chance: random.Random, now: datetime) -> Any:
    """``value`` with some of its dates and date-times (at any depth) moved to around now."""
    if isinstance(value, dict):
        return {k: recent(v, chance, now) for k, v in value.items()}
    if isinstance(value, list):
        return [recent(v, chance, now) for v in value]
    if not isinstance(value, str) or chance.random() < 0.3:
        return value
    if _DAY.match(value):
        return (now.date() + timedelta(days=chance.randint(-3, 40))).isoformat()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None or "T" not in value.upper():
        return value
    return (now - timedelta(seconds=chance.randint(-60, 2 * 86_400))).isoformat()


# What a tablet should not send, one at a time: answers out of the options or of another type, extreme numbers.
_WRONG_ANSWERS: tuple[Any, ...] = (
    {"valueCoding": {"code": "5"}},
    {"valueCoding": {"code": "", "system": "x"}},
    {"valueCoding": {}},
    {"valueCoding": {"code": 3}},
    {"valueBoolean": "true"},
    {"valueDecimal": 1e308},
    {"valueDecimal": -1e308},
    {"valueDecimal": 10**40},
    {"valueDecimal": -0.0},
    {"valueDecimal": 29.99},
    {"valueDecimal": 45.01},
    {"valueDecimal": "38,5"},
    {"valueInteger": 2},
    {"valueString": "3"},
    {"valueBoolean": True},
    {},
)


def questionnaire_response_like(
    chance: random.Random, questionnaire: dict[str, Any], patient_id: str, now: datetime
) -> dict[str, Any]:
    """A QuestionnaireResponse to ``questionnaire`` (a FHIR Questionnaire) as a tablet sends it: answers among the
    options, the branching (enableWhen) respected, who answered; and, one time in three, one thing wrong in it."""
    answers: dict[str, dict[str, Any]] = {}
    everything = _items(questionnaire["item"])
    items = [item for item in everything if item.get("type") != "group"]
    for item in items:
        conditions = item.get("enableWhen")
        if conditions and not _enabled(item, answers):
            continue
        if conditions or chance.random() < 0.4:  # every enabled question of an answered term is answered
            answers[item["linkId"]] = _valid_answer(item, chance)
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": chance.choice(["completed", "amended"]),
        "authored": (now - timedelta(seconds=chance.randint(-60, 30 * 86_400))).isoformat(),
        "item": [{"linkId": link_id, "answer": [answer]} for link_id, answer in answers.items()],
    }
    if chance.random() < 0.5:
        response["source"] = {
            "reference": chance.choice([f"Patient/{patient_id}", "RelatedPerson/daughter", "Practitioner/ide-1"])
        }
    if chance.random() < 0.3:
        response["subject"] = {"reference": f"Patient/{patient_id}"}
    if chance.random() < 0.35:
        _one_thing_wrong(response, items, _parents(everything), chance, now)
    return response


def _one_thing_wrong(
    response: dict[str, Any],
    items: list[dict[str, Any]],
    parents: dict[str, str],
    chance: random.Random,
    now: datetime,
) -> None:
    answered = response["item"]
    wrong = chance.randrange(9)
    if wrong == 0 and answered:
        chance.choice(answered)["answer"] = [chance.choice(_WRONG_ANSWERS)]
    elif wrong == 1 and answered:
        entry = chance.choice(answered)
        entry["answer"] = entry["answer"] * 2
    elif wrong == 2:  # an item whose condition is not met, or unknown
        link_id = chance.choice([item["linkId"] for item in items if item.get("enableWhen")] + ["nausea", "x.y"])
        answered.append({"linkId": link_id, "answer": [{"valueCoding": {"code": "1"}}]})
    elif wrong == 3 and answered:
        answered.append(chance.choice(answered))
    elif wrong == 4:
        response["questionnaire"] = chance.choice([response["questionnaire"].split("|")[0] + "|9.9.9", "x", ""])
    elif wrong == 5:
        response["authored"] = (now + timedelta(days=chance.choice([1, -400]))).isoformat()
    elif wrong == 6:
        response["source"] = {"reference": chance.choice(["Device/1", "", "Patient/1", 3])}
    elif wrong == 7:
        response["subject"] = {"reference": f"Patient/{uuid.uuid4()}"}
    else:  # the answers in their groups, as the questionnaire nests them
        groups: dict[str, list[dict[str, Any]]] = {}
        for entry in answered:
            groups.setdefault(parents.get(entry["linkId"], ""), []).append(entry)
        nested: list[dict[str, Any]] = []
        for group, entries in groups.items():
            nested.extend(entries if not group else [{"linkId": group, "item": entries}])
        response["item"] = nested


def _enabled(item: dict[str, Any], answers: dict[str, dict[str, Any]]) -> bool:
    results = []
    for condition in item["enableWhen"]:
        given = answers.get(condition["question"])
        if "answerBoolean" in condition:
            expected: Any = condition["answerBoolean"]
            actual: Any = None if given is None else given.get("valueBoolean")
        else:
            expected = condition["answerCoding"]["code"]
            actual = None if given is None else given.get("valueCoding", {}).get("code")
        if actual is None:
            results.append(False)
        else:
            results.append(actual == expected if condition["operator"] == "=" else actual != expected)
    return any(results) if item.get("enableBehavior") == "any" else all(results)


def _valid_answer(item: dict[str, Any], chance: random.Random) -> dict[str, Any]:
    if item["type"] == "choice":
        return {"valueCoding": chance.choice(item["answerOption"])["valueCoding"]}
    if item["type"] == "boolean":
        return {"valueBoolean": chance.random() < 0.5}
    if item["type"] == "decimal":
        return {"valueDecimal": chance.choice([30, 36.6, 37.9, 38, 38.6, 40.2, 45])}
    return {"valueInteger": chance.randint(0, 4)}


def _parents(items: list[dict[str, Any]]) -> dict[str, str]:
    return {child["linkId"]: item["linkId"] for item in items for child in item.get("item", [])}


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        found.append(item)
        found.extend(_items(item.get("item", [])))
    return found
