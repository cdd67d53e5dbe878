"""Unit tests of the pages' pure ES modules, run in the real headless Chromium (Node is not on the CI machine), with
the runner of es_modules.py: each case is one ``page.evaluate`` of a JavaScript expression, with the module as ``m``
and the case's data as ``arg``.

Covered: shared/web/questionnaire_form.js (enableWhen, the response items, the 422 pointer), shared/web/page.js,
and the tablet's services/questionnaire/tablet/flow.js (which screen comes next, the progress bar, the edit from
the review, the review's groups, the choice the "who answers" screen shows), sending.js (when a request is given up,
when and how late a send is tried again, and what the patient reads when answers are refused) and sizing.js (which
screens are short for the text size chosen)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.es_modules import modules_page, run

pytestmark = pytest.mark.browser

FORM = "/web/questionnaire_form.js"
PAGE = "/web/page.js"
FLOW = "/tablet/flow.js"
SENDING = "/tablet/sending.js"
SIZING = "/tablet/sizing.js"


@pytest.fixture(scope="module")
async def modules(browser: Browser) -> AsyncIterator[Page]:
    async with modules_page(browser) as page:
        yield page


# --- definitions the cases use ---------------------------------------------------------------------

FREQ = "https://oncofollow.example/fhir/CodeSystem/pro-ctcae-frequency"
SEV = "https://oncofollow.example/fhir/CodeSystem/pro-ctcae-severity"
ATTRIBUTE = "https://oncofollow.example/fhir/CodeSystem/pro-ctcae-attribute"


def coding(code: str, system: str | None = FREQ) -> dict[str, Any]:
    return {"system": system, "code": code} if system else {"code": code}


def choice(link_id: str, system: str = FREQ, **extra: Any) -> dict[str, Any]:
    options = [{"valueCoding": {"system": system, "code": str(n), "display": f"d{n}"}} for n in range(5)]
    return {"linkId": link_id, "type": "choice", "text": link_id, "answerOption": options, **extra}


def not_never(question: str, system: str = FREQ) -> dict[str, Any]:
    return {"question": question, "operator": "!=", "answerCoding": {"system": system, "code": "0"}}


# A PRO-CTCAE term (frequency, severity after "not never", interference after both), a fever and its temperature,
# a group shown only when asked for, with a group inside, and an optional question last.
DEFINITION: list[dict[str, Any]] = [
    {
        "linkId": "pain",
        "type": "group",
        "text": "Douleur",
        "item": [
            choice("pain.frequency"),
            choice("pain.severity", SEV, enableWhen=[not_never("pain.frequency")]),
            choice(
                "pain.interference",
                enableWhen=[not_never("pain.frequency"), not_never("pain.severity", SEV)],
                enableBehavior="all",
            ),
        ],
    },
    {
        "linkId": "red_flags",
        "type": "group",
        "text": "Signes",
        "item": [
            {"linkId": "fever", "type": "boolean", "text": "Fièvre ?"},
            {
                "linkId": "temperature",
                "type": "decimal",
                "text": "Température",
                "enableWhen": [{"question": "fever", "operator": "=", "answerBoolean": True}],
            },
        ],
    },
    {"linkId": "more", "type": "boolean", "text": "Autre chose ?"},
    {
        "linkId": "details",
        "type": "group",
        "text": "Détails",
        "enableWhen": [{"question": "more", "operator": "=", "answerBoolean": True}],
        "item": [
            {"linkId": "details.note", "type": "display", "text": "Dites-nous en plus."},
            {"linkId": "details.what", "type": "string", "text": "Quoi ?"},
            {
                "linkId": "details.inner",
                "type": "group",
                "text": "Combien",
                "item": [
                    {"linkId": "details.count", "type": "integer", "text": "Combien de fois ?"},
                ],
            },
        ],
    },
    {"linkId": "ecog", "type": "choice", "text": "Facultatif", "answerOption": choice("x")["answerOption"]},
]

QUESTIONS = [
    "pain.frequency",
    "pain.severity",
    "pain.interference",
    "fever",
    "temperature",
    "more",
    "details.what",
    "details.count",
    "ecog",
]

# The linkIds evaluate() enables, given answers {linkId: [values]}.
ENABLED = """(() => {
  const flat = m.flatten(arg.definition);
  const { shown } = m.evaluate(flat, (item) => arg.answers[item.linkId] || []);
  return [...shown].filter(([, on]) => on).map(([id]) => id);
})()"""


# --- questionnaire_form.js: enableWhen ----------------------------------------------------------

HOLDS_CASES = [
    # (operator, answer[x] of the condition, answers given, holds?)
    ("=", {"answerCoding": coding("2")}, [coding("2")], True),
    ("=", {"answerCoding": coding("2")}, [coding("3")], False),
    ("=", {"answerCoding": coding("2")}, [coding("2", None)], True),  # an answer without system matches the code
    ("=", {"answerCoding": coding("2", None)}, [coding("2")], True),
    ("=", {"answerCoding": coding("2")}, [coding("2", SEV)], False),  # another code system is another answer
    ("=", {"answerCoding": coding("2")}, [coding("1"), coding("2")], True),  # any of several answers
    ("=", {"answerBoolean": True}, [True], True),
    ("=", {"answerBoolean": True}, [False], False),
    ("=", {"answerInteger": 1}, [True], False),  # no loose equality
    ("=", {"answerString": "oui"}, ["oui"], True),
    ("=", {"answerCoding": coding("2")}, ["2"], False),  # a string is not a Coding
    ("!=", {"answerCoding": coding("0")}, [coding("3")], True),
    ("!=", {"answerCoding": coding("0")}, [coding("0")], False),
    ("!=", {"answerCoding": coding("0")}, [], False),  # waits for the answer (FHIR would hold: see holds())
    ("=", {"answerBoolean": True}, [], False),
    (">", {"answerDecimal": 38}, [38.5], True),
    (">", {"answerDecimal": 38}, [38], False),
    (">", {"answerDecimal": 38}, ["39"], False),  # orderings compare numbers only
    ("<", {"answerDecimal": 36}, [35.9], True),
    ("<", {"answerDecimal": 36}, [36], False),
    (">=", {"answerInteger": 3}, [3], True),
    (">=", {"answerInteger": 3}, [2], False),
    ("<=", {"answerInteger": 3}, [3], True),
    ("<=", {"answerInteger": 3}, [4], False),
    (">", {"answerDecimal": 38}, [], False),
    ("exists", {"answerBoolean": True}, [coding("1")], True),
    ("exists", {"answerBoolean": True}, [], False),
    ("exists", {"answerBoolean": False}, [], True),
    ("exists", {"answerBoolean": False}, [1], False),
    ("~", {"answerBoolean": True}, [True], False),  # not a FHIR operator
    ("=", {}, [True], False),  # no answer[x]
]


@pytest.mark.parametrize(("operator", "value", "answers", "expected"), HOLDS_CASES)
async def test_holds(modules: Page, operator: str, value: dict[str, Any], answers: list[Any], expected: bool) -> None:
    condition = {"question": "q", "operator": operator, **value}
    assert (
        await run(modules, FORM, "m.holds(arg.condition, arg.answers)", {"condition": condition, "answers": answers})
        is expected
    )


def _two_conditions(behavior: str | None) -> list[dict[str, Any]]:
    target: dict[str, Any] = {
        "linkId": "t",
        "type": "boolean",
        "text": "t",
        "enableWhen": [
            {"question": "a", "operator": "=", "answerBoolean": True},
            {"question": "b", "operator": "=", "answerBoolean": True},
        ],
    }
    if behavior:
        target["enableBehavior"] = behavior
    return [{"linkId": "a", "type": "boolean", "text": "a"}, {"linkId": "b", "type": "boolean", "text": "b"}, target]


@pytest.mark.parametrize(
    ("behavior", "a", "b", "enabled"),
    [
        ("any", True, False, True),
        ("any", False, True, True),
        ("any", False, False, False),
        ("all", True, True, True),
        ("all", True, False, False),
        ("all", False, True, False),
        (None, True, False, False),  # no enableBehavior: all
        (None, True, True, True),
    ],
)
async def test_enable_behavior(modules: Page, behavior: str | None, a: bool, b: bool, enabled: bool) -> None:
    shown = await run(
        modules, FORM, ENABLED, {"definition": _two_conditions(behavior), "answers": {"a": [a], "b": [b]}}
    )
    assert ("t" in shown) is enabled


@pytest.mark.parametrize(
    ("answers", "enabled"),
    [
        # Nothing answered: the first question of each term, not what depends on an answer.
        ({}, ["pain", "pain.frequency", "red_flags", "fever", "more", "ecog"]),
        (
            {"pain.frequency": [coding("3")], "pain.severity": [coding("2", SEV)]},
            ["pain", "pain.frequency", "pain.severity", "pain.interference", "red_flags", "fever", "more", "ecog"],
        ),
        # "Never": no severity, and its answer (kept in the draft) counts as none, so no interference either.
        (
            {"pain.frequency": [coding("0")], "pain.severity": [coding("2", SEV)]},
            ["pain", "pain.frequency", "red_flags", "fever", "more", "ecog"],
        ),
        ({"fever": [True]}, ["pain", "pain.frequency", "red_flags", "fever", "temperature", "more", "ecog"]),
        # A group enabled by an answer shows what it holds, groups inside it included.
        (
            {"more": [True]},
            [
                "pain",
                "pain.frequency",
                "red_flags",
                "fever",
                "more",
                "details",
                "details.note",
                "details.what",
                "details.inner",
                "details.count",
                "ecog",
            ],
        ),
        ({"more": [False], "details.count": [2]}, ["pain", "pain.frequency", "red_flags", "fever", "more", "ecog"]),
    ],
)
async def test_evaluate_follows_enable_when_through_nested_groups(
    modules: Page, answers: dict[str, Any], enabled: list[str]
) -> None:
    assert await run(modules, FORM, ENABLED, {"definition": DEFINITION, "answers": answers}) == enabled


async def test_evaluate_gives_the_answers_of_enabled_questions_only(modules: Page) -> None:
    answers = {"fever": [False], "temperature": [38.5], "more": [True], "details.count": [2], "details.what": "x"}
    given = await run(
        modules,
        FORM,
        """(() => {
          const { answers } = m.evaluate(m.flatten(arg.definition), (item) => arg.answers[item.linkId]);
          return Object.fromEntries(answers);
        })()""",
        {"definition": DEFINITION, "answers": answers},
    )
    # Not the temperature (fever: no), nothing for a group or a display text; unanswered is [], so is a non-list.
    assert given == {
        "pain.frequency": [],
        "fever": [False],
        "more": [True],
        "details.what": [],
        "details.count": [2],
        "ecog": [],
    }


# --- questionnaire_form.js: the rest ------------------------------------------------------------------


async def test_flatten_is_depth_first_with_each_parent(modules: Page) -> None:
    flat = await run(modules, FORM, "m.flatten(arg).map(({ item, parent }) => [item.linkId, parent])", DEFINITION)
    assert flat[:4] == [
        ["pain", None],
        ["pain.frequency", "pain"],
        ["pain.severity", "pain"],
        ["pain.interference", "pain"],
    ]
    assert flat[-5:] == [
        ["details.note", "details"],
        ["details.what", "details"],
        ["details.inner", "details"],
        ["details.count", "details.inner"],
        ["ecog", None],
    ]
    assert await run(modules, FORM, "m.flatten(undefined)") == []


@pytest.mark.parametrize(
    ("item", "is_question", "must_answer"),
    [
        ({"type": "group"}, False, False),
        ({"type": "display"}, False, False),
        ({"type": "boolean"}, True, False),
        ({"type": "decimal", "required": True}, True, True),
        ({"type": "choice", "code": [{"system": ATTRIBUTE, "code": "severity"}]}, True, True),
        ({"type": "choice", "code": [{"system": "http://loinc.org", "code": "x"}]}, True, False),
    ],
)
async def test_is_question_and_must_answer(
    modules: Page, item: dict[str, Any], is_question: bool, must_answer: bool
) -> None:
    assert await run(modules, FORM, "[m.isQuestion(arg), m.mustAnswer(arg)]", item) == [is_question, must_answer]


@pytest.mark.parametrize(
    ("extension", "bounds"),
    [
        ([], {"min": None, "max": None, "unit": None}),
        (
            [
                {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueDecimal": 30},
                {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueDecimal": 45.5},
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unit",
                    "valueCoding": {"code": "Cel", "display": "°C"},
                },
            ],
            {"min": 30, "max": 45.5, "unit": "°C"},
        ),
        (
            [
                {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                {"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unit", "valueCoding": {"code": "kg"}},
            ],
            {"min": 0, "max": None, "unit": "kg"},
        ),
    ],
)
async def test_number_bounds(modules: Page, extension: list[dict[str, Any]], bounds: dict[str, Any]) -> None:
    assert await run(modules, FORM, "m.numberBounds(arg)", {"type": "decimal", "extension": extension}) == bounds


@pytest.mark.parametrize(
    ("item", "value", "answer"),
    [
        ({"type": "choice"}, {"system": FREQ, "code": "3"}, {"valueCoding": {"system": FREQ, "code": "3"}}),
        ({"type": "choice"}, {"system": None, "code": "3"}, {"valueCoding": {"code": "3"}}),
        ({"type": "boolean"}, False, {"valueBoolean": False}),
        ({"type": "integer"}, 4, {"valueInteger": 4}),
        ({"type": "decimal"}, 38.6, {"valueDecimal": 38.6}),
        ({"type": "string"}, "un peu", {"valueString": "un peu"}),
        ({"type": "text"}, "long", {"valueString": "long"}),
    ],
)
async def test_answer_of_each_type(modules: Page, item: dict[str, Any], value: Any, answer: dict[str, Any]) -> None:
    assert await run(modules, FORM, "m.answerOf(arg.item, arg.value)", {"item": item, "value": value}) == answer


async def test_response_items_are_the_enabled_answered_questions_flat_in_order(modules: Page) -> None:
    answers = {
        "ecog": [coding("1", None)],
        "pain.frequency": [coding("0")],
        "pain.severity": [coding("2", SEV)],  # turned off by "never": not sent
        "fever": [True],
        "temperature": [38.6],
        "more": [True],
        "details.count": [2],
        "details.what": [],  # unanswered: not sent
    }
    items = await run(
        modules,
        FORM,
        """(() => {
          const flat = m.flatten(arg.definition);
          const { shown, answers } = m.evaluate(flat, (item) => arg.answers[item.linkId] || []);
          return m.responseItems(flat, shown, answers);
        })()""",
        {"definition": DEFINITION, "answers": answers},
    )
    assert items == [
        {"linkId": "pain.frequency", "answer": [{"valueCoding": coding("0")}]},
        {"linkId": "fever", "answer": [{"valueBoolean": True}]},
        {"linkId": "temperature", "answer": [{"valueDecimal": 38.6}]},
        {"linkId": "more", "answer": [{"valueBoolean": True}]},
        {"linkId": "details.count", "answer": [{"valueInteger": 2}]},
        {"linkId": "ecog", "answer": [{"valueCoding": {"code": "1"}}]},
    ]


async def test_questionnaire_response(modules: Page) -> None:
    definition = {"url": "https://oncofollow.example/fhir/Questionnaire/q", "version": "1.0.0"}
    bare = await run(modules, FORM, "m.questionnaireResponse(arg, [])", definition)
    assert set(bare) == {"resourceType", "questionnaire", "status", "authored", "item"}
    assert (bare["questionnaire"], bare["status"], bare["item"]) == (f"{definition['url']}|1.0.0", "completed", [])
    assert bare["authored"].endswith("Z")
    full = await run(
        modules,
        FORM,
        "m.questionnaireResponse(arg, [{ linkId: 'a' }], { subject: 'Patient/p', source: 'RelatedPerson/r', "
        "authored: '2026-01-02T03:04:05Z' })",
        definition,
    )
    assert (full["subject"], full["source"], full["authored"], full["item"]) == (
        {"reference": "Patient/p"},
        {"reference": "RelatedPerson/r"},
        "2026-01-02T03:04:05Z",
        [{"linkId": "a"}],
    )


SENT = [{"linkId": "pain.frequency"}, {"linkId": "fever"}, {"linkId": "temperature"}]


@pytest.mark.parametrize(
    ("problem", "link_id"),
    [
        ({"pointer": "/item/1"}, "fever"),
        ({"pointer": "/item/2/answer/0/valueDecimal"}, "temperature"),
        ({"pointer": "/item/0", "detail": "Item 'other' is missing"}, "pain.frequency"),  # the pointer first
        # A missing question has no index of its own: its detail names it.
        (
            {"pointer": "/item", "detail": "Item 'pain.severity' is missing: the response answers term 'pain', …"},
            "pain.severity",
        ),
        ({"pointer": "/item/9", "detail": "Item 'temperature' must not be answered"}, "temperature"),
        ({"pointer": "/item/9"}, None),
        ({"pointer": "/authored", "detail": "authored is in the future"}, None),
        ({"detail": "Item 'fever' is missing"}, None),  # no pointer: not about an item
        (None, None),
    ],
)
async def test_refused_link_id(modules: Page, problem: dict[str, Any] | None, link_id: str | None) -> None:
    assert (
        await run(modules, FORM, "m.refusedLinkId(arg.problem, arg.sent)", {"problem": problem, "sent": SENT})
        == link_id
    )


# --- page.js ------------------------------------------------------------------------------------


async def test_h_sets_attributes_dataset_and_text_never_html(modules: Page) -> None:
    html = await run(
        modules,
        PAGE,
        """m.h("button", { class: "btn", type: "button", disabled: true, hidden: false, title: null, tabindex: 0,
                        dataset: { action: "ack", none: null, n: 3 } },
                "<b>x</b>", 1, null, false, undefined, [["a", m.h("i", null, "b")]]).outerHTML""",
    )
    assert html == (
        '<button class="btn" type="button" disabled="" tabindex="0" data-action="ack" data-n="3">'
        "&lt;b&gt;x&lt;/b&gt;1a<i>b</i></button>"
    )


async def test_append_returns_the_parent(modules: Page) -> None:
    assert await run(modules, PAGE, "m.append(document.createElement('p'), ['a', 2]).outerHTML") == "<p>a2</p>"


async def test_new_key_is_a_fresh_uuid_or_a_prefixed_random_hex_without_random_uuid(modules: Page) -> None:
    keys = await run(modules, PAGE, "[m.newKey(), m.newKey('tablet')]")
    uuid = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert all(re.match(uuid, key) for key in keys) and keys[0] != keys[1]
    # An older browser without crypto.randomUUID (or a page not in a secure context): the prefix and 128 random bits.
    fallback = await run(
        modules,
        PAGE,
        """(() => {
          const saved = Crypto.prototype.randomUUID;
          delete Crypto.prototype.randomUUID;
          try { return [m.newKey("tablet"), m.newKey("tablet")]; } finally { Crypto.prototype.randomUUID = saved; }
        })()""",
    )
    assert all(re.match(r"^tablet-[0-9a-f]{32}$", key) for key in fallback) and fallback[0] != fallback[1]


# --- the tablet's flow.js -----------------------------------------------------------------------

# flow.js over DEFINITION: arg.answers as the draft keeps them, arg.editing from startEdit (or null).
FLOW_PRELUDE = "(await import('/web/questionnaire_form.js')).flatten(arg.definition)"


async def flow(page: Page, expression: str, answers: dict[str, Any], **extra: Any) -> Any:
    return await run(
        page,
        FLOW,
        f"(async () => {{ const flat = {FLOW_PRELUDE}; return {expression}; }})()",
        {"definition": DEFINITION, "answers": answers, **extra},
    )


NEVER = {"pain.frequency": [coding("0")], "fever": [False], "more": [False]}
OFTEN = {"pain.frequency": [coding("3")], "pain.severity": [coding("2", SEV)], "pain.interference": [coding("1")]}


@pytest.mark.parametrize(
    ("answers", "at", "expected"),
    [
        ({}, None, "pain.frequency"),
        (NEVER, "pain.frequency", "fever"),  # "never": no severity
        ({"pain.frequency": [coding("3")]}, "pain.frequency", "pain.severity"),
        (NEVER, "fever", "more"),
        ({**NEVER, "fever": [True]}, "fever", "temperature"),
        ({**NEVER, "more": [True]}, "more", "details.what"),  # the display text is not a screen
        ({**NEVER, "more": [True]}, "details.what", "details.count"),  # into the group inside
        (NEVER, "more", "ecog"),
        (NEVER, "ecog", "review"),
    ],
)
async def test_next_screen_on_the_first_walk(
    modules: Page, answers: dict[str, Any], at: str | None, expected: str
) -> None:
    assert await flow(modules, "m.nextScreen(flat, arg.answers, arg.at)", answers, at=at) == expected


@pytest.mark.parametrize(
    ("answers", "at", "expected"),
    [
        (NEVER, None, "ecog"),  # from the review: the last question
        ({**NEVER, "more": [True]}, None, "ecog"),
        ({**NEVER, "more": [True]}, "ecog", "details.count"),
        (NEVER, "ecog", "more"),
        (NEVER, "fever", "pain.frequency"),  # no severity after "never"
        (OFTEN, "fever", "pain.interference"),
        (NEVER, "pain.frequency", "who"),
    ],
)
async def test_previous_screen(modules: Page, answers: dict[str, Any], at: str | None, expected: str) -> None:
    assert await flow(modules, "m.previousScreen(flat, arg.answers, arg.at)", answers, at=at) == expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (
            NEVER,
            [
                {"group": "pain", "title": "Douleur", "questions": ["pain.frequency"]},
                {"group": "red_flags", "title": "Signes", "questions": ["fever"]},
                {"group": None, "title": None, "questions": ["more", "ecog"]},
            ],
        ),
        (
            {**OFTEN, "fever": [True], "more": [True]},
            [
                {
                    "group": "pain",
                    "title": "Douleur",
                    "questions": ["pain.frequency", "pain.severity", "pain.interference"],
                },
                {"group": "red_flags", "title": "Signes", "questions": ["fever", "temperature"]},
                {"group": None, "title": None, "questions": ["more"]},
                {"group": "details", "title": "Détails", "questions": ["details.what"]},  # not its display text
                {"group": "details.inner", "title": "Combien", "questions": ["details.count"]},  # as its screen shows
                {"group": None, "title": None, "questions": ["ecog"]},
            ],
        ),
    ],
)
async def test_review_sections_put_each_group_s_title_above_its_questions(
    modules: Page, answers: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    assert await flow(modules, "m.reviewSections(flat, arg.answers)", answers) == expected


async def test_group_of_a_question_is_the_group_its_screen_shows(modules: Page) -> None:
    groups = await flow(
        modules,
        "arg.ids.map((id) => (m.groupOf(flat, id) || {}).linkId || null)",
        {},
        ids=["pain.severity", "details.count", "ecog", "nope"],
    )
    assert groups == ["pain", "details.inner", None, None]


# "Précédent" during an edit from the review: (answers before, answers now, question edited, at, screen before).
PREVIOUS_IN_EDIT_CASES = [
    # The question changed: back to the review, not the questions before it (nor, from the first, "who").
    (NEVER, NEVER, "fever", "fever", "review"),
    (NEVER, NEVER, "pain.frequency", "pain.frequency", "review"),
    (NEVER, NEVER, "ecog", "ecog", "review"),
    (OFTEN, OFTEN, "pain.severity", "pain.severity", "review"),  # pain.frequency was answered before the change
    # A question the change opened: back to the one before it within the change.
    (NEVER, {**NEVER, "fever": [True]}, "fever", "temperature", "fever"),
    (NEVER, {**NEVER, "pain.frequency": [coding("3")]}, "pain.frequency", "pain.severity", "pain.frequency"),
    (NEVER, {**NEVER, **OFTEN}, "pain.frequency", "pain.interference", "pain.severity"),
    (NEVER, {**NEVER, "more": [True]}, "more", "details.count", "details.what"),
    (NEVER, {**NEVER, "more": [True]}, "more", "details.what", "more"),
]


@pytest.mark.parametrize(("before", "now", "edited", "at", "expected"), PREVIOUS_IN_EDIT_CASES)
async def test_previous_screen_during_an_edit_stays_within_the_change(
    modules: Page, before: dict[str, Any], now: dict[str, Any], edited: str, at: str, expected: str
) -> None:
    assert (
        await flow(
            modules,
            "m.previousScreen(flat, arg.answers, arg.at, m.startEdit(flat, arg.before, arg.edited))",
            now,
            at=at,
            before=before,
            edited=edited,
        )
        == expected
    )


# Edits from the review: the answers when "Modifier" was touched (before), the answers now, the question edited.
EDIT_CASES = [
    # Nothing the change turns on: straight back to the review.
    (NEVER, {**NEVER, "fever": [False]}, "fever", "review"),
    (
        {**NEVER, "fever": [True], "temperature": [38.5]},
        {**NEVER, "fever": [True], "temperature": [39]},
        "fever",
        "review",
    ),
    # "Never" becomes "often": the severity it turns on, then (once answered, and not "none") the interference.
    (NEVER, {**NEVER, "pain.frequency": [coding("3")]}, "pain.frequency", "pain.severity"),
    (
        NEVER,
        {**NEVER, "pain.frequency": [coding("3")], "pain.severity": [coding("2", SEV)]},
        "pain.severity",
        "pain.interference",
    ),
    (
        NEVER,
        {**NEVER, "pain.frequency": [coding("3")], "pain.severity": [coding("0", SEV)]},
        "pain.severity",
        "review",
    ),
    # A question turned on that already has an answer is not asked again (severity "none": no interference).
    (
        NEVER,
        {**NEVER, "pain.frequency": [coding("3")], "pain.severity": [coding("0", SEV)]},
        "pain.frequency",
        "review",
    ),
    # A group turned on: each of its questions, then the review (not the optional question after it).
    (NEVER, {**NEVER, "more": [True]}, "more", "details.what"),
    (NEVER, {**NEVER, "more": [True], "details.what": ["x"]}, "details.what", "details.count"),
    # A question the change turned on and the patient passed (optional): the review, not that question in a loop.
    (NEVER, {**NEVER, "fever": [True]}, "temperature", "review"),
    # A question asked before the edit and left unanswered (the temperature, optional) is not asked again either.
    ({**NEVER, "fever": [True]}, {**NEVER, "fever": [True]}, "pain.frequency", "review"),
    # Who answers, changed from the review: a choice there opens no question, whatever the answers.
    (NEVER, NEVER, "who", "review"),
    ({**OFTEN, "fever": [True], "more": [True]}, {**OFTEN, "fever": [True], "more": [True]}, "who", "review"),
]


@pytest.mark.parametrize(("before", "now", "at", "expected"), EDIT_CASES)
async def test_next_screen_during_an_edit_from_the_review(
    modules: Page, before: dict[str, Any], now: dict[str, Any], at: str, expected: str
) -> None:
    assert (
        await flow(
            modules,
            "m.nextScreen(flat, arg.answers, arg.at, m.startEdit(flat, arg.before, arg.edited))",
            now,
            at=at,
            before=before,
            edited=at,
        )
        == expected
    )


async def test_start_edit_keeps_the_questions_asked_and_a_copy_of_the_answers(modules: Page) -> None:
    editing = await flow(
        modules,
        "(() => { const e = m.startEdit(flat, arg.answers, 'fever'); arg.answers.fever[0] = 'changed'; return e; })()",
        {**NEVER, "temperature": [38]},
    )
    assert editing == {
        "linkId": "fever",
        "asked": ["pain.frequency", "fever", "more", "ecog"],
        "before": {**NEVER, "temperature": [38]},  # not the answers changed afterwards
    }


@pytest.mark.parametrize(
    ("answers", "refused", "expected"),
    [
        (NEVER, None, None),  # nothing refused
        (NEVER, "pain.frequency", {"linkId": "pain.frequency", "number": 1}),
        (NEVER, "fever", {"linkId": "fever", "number": 2}),  # numbered as the review numbers it, among those asked
        ({**OFTEN, "fever": [True]}, "temperature", {"linkId": "temperature", "number": 5}),
        ({**NEVER, "fever": [True]}, "temperature", {"linkId": "temperature", "number": 3}),  # unanswered: to check too
        # Turned off by a change (no fever any more): not on the review, nothing of it sent, nothing to check.
        (NEVER, "temperature", None),
        (NEVER, "pain.severity", None),
        (NEVER, "gone-from-a-new-version", None),
    ],
)
async def test_review_to_check_is_the_refused_answer_while_the_answers_ask_it(
    modules: Page, answers: dict[str, Any], refused: str | None, expected: dict[str, Any] | None
) -> None:
    assert await flow(modules, "m.reviewToCheck(flat, arg.answers, arg.refused)", answers, refused=refused) == expected


@pytest.mark.parametrize(
    ("source", "label"),
    [("patient", "Moi-même"), ("relative", "Un proche"), (None, "Moi-même")],  # none chosen: sent as the patient
)
async def test_who_answers_on_the_review(modules: Page, source: str | None, label: str) -> None:
    assert await flow(modules, "m.whoAnswers(arg.source)", {}, source=source) == label


@pytest.mark.parametrize(
    ("source", "edited", "chosen"),
    [
        (None, None, None),  # the first walk, before a choice: none shown as made
        ("patient", None, "patient"),  # back with "Précédent" from the first question
        ("relative", None, "relative"),
        ("relative", "who", "relative"),  # "Modifier : qui répond" on the review
        ("patient", "who", "patient"),
        (None, "who", "patient"),  # none stored: the patient, as the review said ("Moi-même")
        ("relative", "fever", "relative"),  # a question's change that an earlier page left on "who"
    ],
)
async def test_who_chosen_is_the_choice_the_who_answers_screen_shows(
    modules: Page, source: str | None, edited: str | None, chosen: str | None
) -> None:
    editing = "m.startEdit(flat, arg.answers, arg.edited)" if edited else "null"
    got = await flow(modules, f"m.whoChosen(arg.source, {editing})", NEVER, source=source, edited=edited)
    assert got == chosen


@pytest.mark.parametrize(
    ("answers", "kept"),
    [
        (NEVER, NEVER),
        # "Never" again: the severity and the interference the patient gave before are forgotten.
        ({**OFTEN, "pain.frequency": [coding("0")]}, {"pain.frequency": [coding("0")]}),
        ({"fever": [False], "temperature": [38.5], "details.count": [1]}, {"fever": [False]}),
        ({"fever": [True], "temperature": [38.5]}, {"fever": [True], "temperature": [38.5]}),
    ],
)
async def test_kept_for_asked_forgets_the_answers_of_questions_turned_off(
    modules: Page, answers: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert await flow(modules, "m.keptForAsked(flat, arg.answers)", answers) == kept


@pytest.mark.parametrize(
    ("answers", "at", "edited", "expected"),
    [
        # First walk: the questions before this one are done, among those the answers enable so far.
        ({}, "pain.frequency", None, {"value": 0, "max": 4}),
        (NEVER, "more", None, {"value": 2, "max": 4}),
        (OFTEN | {"fever": [True]}, "temperature", None, {"value": 4, "max": 7}),
        # An edit: this screen and what the change opened are left; the rest is answered.
        (NEVER, "pain.frequency", "pain.frequency", {"value": 3, "max": 4}),
        ({**NEVER, "pain.frequency": [coding("3")]}, "pain.frequency", "pain.frequency", {"value": 3, "max": 5}),
        ({**NEVER, "pain.frequency": [coding("3")]}, "pain.severity", "pain.frequency", {"value": 4, "max": 5}),
        ({**NEVER, "more": [True]}, "more", "more", {"value": 3, "max": 6}),
    ],
)
async def test_progress(
    modules: Page, answers: dict[str, Any], at: str, edited: str | None, expected: dict[str, int]
) -> None:
    editing = "m.startEdit(flat, arg.before, arg.edited)" if edited else "null"
    assert (
        await flow(
            modules, f"m.progress(flat, arg.answers, arg.at, {editing})", answers, at=at, before=NEVER, edited=edited
        )
        == expected
    )


# --- the tablet's sending.js --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (None, True),
        (500, True),
        (503, True),
        (408, True),
        (429, True),
        (200, False),
        (202, False),
        (400, False),
        (401, False),
        (409, False),
        (413, False),
        (422, False),
    ],
)
async def test_send_again(modules: Page, status: int | None, again: bool) -> None:
    assert await run(modules, SENDING, "m.sendAgain(arg)", status) is again


@pytest.mark.parametrize(
    ("failures", "random", "delay"),
    [
        (1, 0.5, 2_000),
        (2, 0.5, 4_000),
        (3, 0.5, 8_000),
        (8, 0.5, 256_000),
        (9, 0.5, 300_000),  # at most 5 minutes apart
        (40, 0.5, 300_000),
        (1, 0.0, 1_600),  # ±20 %
        (9, 0.999999, 359_999.76),
        (0, 0.5, 2_000),  # never shorter than the first
    ],
)
async def test_retry_delay(modules: Page, failures: int, random: float, delay: float) -> None:
    got = await run(
        modules, SENDING, "m.retryDelay(arg.failures, () => arg.random)", {"failures": failures, "random": random}
    )
    assert got == pytest.approx(delay)


# A request that waits for its answer until the signal aborts it, as a fetch does.
HANGS = "(signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))"


async def test_give_up_after_aborts_a_request_that_hangs_and_leaves_one_answered_in_time_alone(modules: Page) -> None:
    hung = f"m.giveUpAfter(20, {HANGS}).then(() => 'answered', (error) => error.name)"
    assert await run(modules, SENDING, hung, None) == "TimeoutError"
    # Answered in time: its answer, and its signal never aborted later (the timer cleared).
    answered = """(async () => {
      let given;
      const answer = await m.giveUpAfter(20, async (signal) => { given = signal; return 'answered'; });
      await new Promise((resolve) => setTimeout(resolve, 60));
      return [answer, given.aborted];
    })()"""
    assert await run(modules, SENDING, answered, None) == ["answered", False]
    # Failed in time: its own error, not a time-out.
    failed = "m.giveUpAfter(20, async () => { throw new TypeError('Failed to fetch'); }).catch((error) => error.name)"
    assert await run(modules, SENDING, failed, None) == "TypeError"


PROBLEMS = "https://oncofollow.example/problems/"
CLOCK = "Vos réponses sont gardées. Vérifiez la date et l'heure dans les réglages de la tablette"
# Whom the "Appeler l'équipe soignante" button below it calls, in its words.
CALL = "Si vous ne savez pas le faire, appelez l'équipe soignante de votre service."


@pytest.mark.parametrize(
    ("problem", "updated", "says", "not_says"),
    [
        # A wrong clock: what to set right, the answers kept, whom to call; never "an answer is to be checked".
        ({"type": f"{PROBLEMS}in-the-future", "pointer": "/authored"}, False, ["en avance", CLOCK, CALL], "à vérifier"),
        ({"type": f"{PROBLEMS}too-far-in-the-past"}, False, ["plus d'un an de retard", CLOCK, CALL], "à vérifier"),
        # A service of before the types: the pointer alone says it is the date.
        (
            {"type": f"{PROBLEMS}invalid-questionnaire-response", "pointer": "/authored"},
            False,
            ["semble fausse", CLOCK, CALL],
            "à vérifier",
        ),
        ({"type": f"{PROBLEMS}invalid-questionnaire-response", "pointer": "/item/1"}, False, ["à vérifier"], CLOCK),
        ({}, False, ["à vérifier"], CLOCK),  # a body that was no problem (a proxy's page)
        (None, False, ["à vérifier"], CLOCK),
        # The questionnaire updated meanwhile: checked again first, whatever else was refused.
        ({"type": f"{PROBLEMS}in-the-future"}, True, ["a changé depuis que vous avez répondu"], CLOCK),
    ],
    ids=[
        "in-the-future",
        "too-far-in-the-past",
        "authored-untyped",
        "an-answer",
        "no-type",
        "no-body",
        "updated",
    ],
)
async def test_answers_refused_says_what_to_do_in_french(
    modules: Page, problem: dict[str, Any] | None, updated: bool, says: list[str], not_says: str
) -> None:
    text = await run(
        modules,
        SENDING,
        "m.answersRefused(arg.problem, { updated: arg.updated })",
        {"problem": problem, "updated": updated},
    )
    assert text.startswith("Vos réponses n'ont pas pu être envoyées. "), text
    for words in [*says, "Reprendre le questionnaire"]:
        assert words in text, text
    assert not_says not in text, text


@pytest.mark.parametrize(
    ("problem", "kind"),
    [
        ({"type": f"{PROBLEMS}in-the-future"}, "in-the-future"),
        ({"type": "about:blank"}, "about:blank"),
        ({"type": 7}, ""),
        ({}, ""),
        (None, ""),
    ],
)
async def test_problem_kind(modules: Page, problem: dict[str, Any] | None, kind: str) -> None:
    assert await run(modules, SENDING, "m.problemKind(arg)", problem) == kind


# --- the tablet's sizing.js ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "root", "fit"),
    [
        # A 1280×800 tablet in landscape: short at every text size (100, 130, 160, 200 %).
        (800, 22, "short"),
        (800, 44, "short"),
        (720, 22, "short"),  # under the browser's bars
        # In portrait, 1280 px high: tall up to 130 %, short from 160 % (36.6 times 35 px).
        (1280, 22, "tall"),
        (1280, 28, "tall"),
        (1280, 35, "short"),
        (1280, 44, "short"),
        (880, 22, "tall"),  # exactly 40 times the text
        # Nothing known (a page not laid out yet): the page as it always was.
        (0, 22, "tall"),
        (800, 0, "tall"),
        (800, float("nan"), "tall"),
    ],
)
async def test_screen_fit(modules: Page, height: float, root: float, fit: str) -> None:
    assert await run(modules, SIZING, "m.screenFit(arg.height, arg.root)", {"height": height, "root": root}) == fit
