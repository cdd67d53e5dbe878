"""Every way a caller can get it wrong: a clear 4xx problem, nothing stored, nothing published."""

from __future__ import annotations

import asyncio
import gzip
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest

from shared.auth import TokenService
from shared.settings import DEV_AUTH_SECRET
from shared.testing.fhir import QUESTIONNAIRE, RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _post(platform: Any, body: bytes | AsyncIterator[bytes], headers: dict[str, str]) -> Any:
    return platform.questionnaire.post("/v1/submissions", content=body, headers=headers)


def _headers(platform: Any, patient: uuid.UUID) -> dict[str, str]:
    return {**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())}


async def _assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["type"].startswith("https://")
    for word in words:
        assert word.lower() in problem["detail"].lower(), problem
    return dict(problem)


async def _nothing_stored_or_published(platform: Any) -> None:
    await asyncio.sleep(0.3)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 0
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    info = await platform.questionnaire_platform.js.stream_info("QUESTIONNAIRES")
    assert info.state.messages == 0


async def _three_writes(
    platform: Any,
    alert_id: str,
    tablet: dict[str, str],
    staff: dict[str, str],
    message: bytes = b'{"text": "bonjour"}',
) -> tuple[Any, Any, Any]:
    """A submission and a message with the tablet's headers, and a close of the alert with a nurse's token plus
    ``staff``: the answers to each."""
    submission = await _post(platform, orjson.dumps(questionnaire_response(RED_NAUSEA)), tablet)
    sent = await platform.questionnaire.post("/v1/messages", content=message, headers=tablet)
    resolve = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", content=b'{"outcome": "phone_call"}', headers={**platform.staff(), **staff}
    )
    return submission, sent, resolve


async def _refused_writes_left_nothing(platform: Any, outbox_before: int, patient: uuid.UUID, alert_id: str) -> None:
    """A refused submission, message and close: no row, no event, and the alert still open."""
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == outbox_before
        assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 0
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
    alert = await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())
    assert alert.json()["status"] == "open"


def _with(answers: dict[str, Any], **changes: Any) -> bytes:
    response = questionnaire_response(answers)
    response.update(changes)
    return orjson.dumps(response)


# A tablet whose clock is wrong: an hour ahead (more than the 5 minutes allowed), or back in a year long gone.
_AHEAD = datetime.now(UTC) + timedelta(hours=1)
_LONG_AGO = datetime.now(UTC) - timedelta(days=400)


@pytest.mark.parametrize(
    ("body", "status", "words", "kind"),
    [
        (b'{"resourceType": "QuestionnaireResponse", ', 400, ["not valid JSON"], "malformed-json"),
        (
            _with(RED_NAUSEA, questionnaire="https://elsewhere.example/Questionnaire/x|1"),
            422,
            ["questionnaire"],
            "unknown-questionnaire",
        ),
        (
            _with(RED_NAUSEA, questionnaire=QUESTIONNAIRE.replace("1.0.0", "9.9.9")),
            422,
            ["9.9.9"],
            "unknown-questionnaire",
        ),
        (
            orjson.dumps(questionnaire_response({"nausea.frequency": "3", "headache.severity": "2"})),
            422,
            ["headache"],
            "invalid-questionnaire-response",
        ),
        (
            orjson.dumps(questionnaire_response({"nausea.frequency": "7"})),
            422,
            ["nausea.frequency", "7"],
            "invalid-questionnaire-response",
        ),
        (
            orjson.dumps(questionnaire_response({"nausea.frequency": "0", "nausea.severity": "3"})),
            422,
            ["nausea.severity"],
            "invalid-questionnaire-response",
        ),
        (
            orjson.dumps(questionnaire_response({"nausea.frequency": "2"})),
            422,
            ["nausea.severity"],
            "invalid-questionnaire-response",
        ),
        (orjson.dumps({"resourceType": "Patient"}), 422, ["QuestionnaireResponse"], "invalid-questionnaire-response"),
        (b"[1, 2, 3]", 422, [], "invalid-questionnaire-response"),
        (
            orjson.dumps(questionnaire_response(RED_NAUSEA, authored=_AHEAD)),
            422,
            ["more than 5 minutes in the future", "check the clock of the device that sent the answers"],
            "in-the-future",
        ),
        (
            orjson.dumps(questionnaire_response(RED_NAUSEA, authored=_LONG_AGO)),
            422,
            ["more than a year ago", "check the clock of the device that sent the answers"],
            "too-far-in-the-past",
        ),
    ],
    ids=[
        "malformed-json",
        "unknown-questionnaire",
        "unknown-version",
        "unknown-linkId",
        "answer-outside-options",
        "branching-impossible",
        "required-attribute-missing",
        "wrong-resource",
        "not-an-object",
        "authored-in-the-future",
        "authored-more-than-a-year-ago",
    ],
)
async def test_invalid_submission_is_refused(
    platform: Any, body: bytes, status: int, words: list[str], kind: str
) -> None:
    response = await _post(platform, body, _headers(platform, uuid.uuid4()))
    problem = await _assert_problem(response, status, *words)
    assert problem["type"] == f"https://oncofollow.example/problems/{kind}", problem
    await _nothing_stored_or_published(platform)


async def test_body_over_the_limit_is_413(platform: Any) -> None:
    body = orjson.dumps({**questionnaire_response(RED_NAUSEA), "text": {"div": "x" * 70_000}})
    response = await _post(platform, body, _headers(platform, uuid.uuid4()))
    await _assert_problem(response, 413, "larger than")
    await _nothing_stored_or_published(platform)


async def test_streamed_body_over_the_limit_is_413(platform: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(3):
            yield b" " * 30_000

    response = await _post(platform, chunks(), _headers(platform, uuid.uuid4()))
    await _assert_problem(response, 413, "larger than")
    await _nothing_stored_or_published(platform)


async def test_tokens_and_patients(platform: Any) -> None:
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    await _assert_problem(await _post(platform, body, key), 401, "bearer token")
    bad = {**key, "Authorization": "Bearer not-a-token"}
    await _assert_problem(await _post(platform, body, bad), 401, "invalid")
    other = platform.tokens.issue_device_token(uuid.uuid4(), "t")
    forged = {**key, "Authorization": f"Bearer {other[:-4]}AAAA"}
    await _assert_problem(await _post(platform, body, forged), 401, "invalid")
    staff = {**key, **platform.staff("nurse")}
    await _assert_problem(await _post(platform, body, staff), 403, "device token")

    me, someone_else = uuid.uuid4(), uuid.uuid4()
    for_other = orjson.dumps(questionnaire_response(RED_NAUSEA, patient_id=someone_else))
    await _assert_problem(await _post(platform, for_other, _headers(platform, me)), 403, "own patient")
    other_author = questionnaire_response(RED_NAUSEA)
    other_author.pop("subject", None)
    other_author["source"] = {"reference": f"Patient/{someone_else}"}
    await _assert_problem(await _post(platform, orjson.dumps(other_author), _headers(platform, me)), 403, "own patient")
    missing_key = platform.device(me)
    await _assert_problem(await _post(platform, body, missing_key), 400, "Idempotency-Key")
    await _nothing_stored_or_published(platform)


async def test_a_tablet_cannot_read_another_patients_submission(platform: Any) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    created = await _post(platform, orjson.dumps(questionnaire_response(RED_NAUSEA)), _headers(platform, owner))
    assert created.status_code == 202
    sid = created.json()["id"]
    mine = await platform.questionnaire.get(f"/v1/submissions/{sid}", headers=platform.device(owner))
    assert mine.status_code == 200
    theirs = await platform.questionnaire.get(f"/v1/submissions/{sid}", headers=platform.device(other))
    await _assert_problem(theirs, 404)
    fleet = await platform.questionnaire.get(f"/v1/submissions/{sid}", headers=platform.staff("fleet"))
    await _assert_problem(fleet, 403, "nurse")
    nurse = await platform.questionnaire.get(f"/v1/submissions/{sid}", headers=platform.staff("nurse"))
    assert nurse.status_code == 200
    async with platform.questionnaire_platform.pool.acquire() as conn:
        audit = await conn.fetch("SELECT actor, action, resource FROM audit_log")
    assert [tuple(r) for r in audit] == [("nurse-1", "submission.read", f"submission/{sid}")]


async def test_a_nurse_asking_for_an_unknown_submission_gets_a_404_that_stores_nothing(platform: Any) -> None:
    # Found by the API fuzz: the 404 left an audit row ("submission/unknown", no patient), the one refusal of the
    # services that stored something; a read that shows no patient's data is no access to audit.
    unknown = await platform.questionnaire.get(f"/v1/submissions/{uuid.uuid4()}", headers=platform.staff("nurse"))
    await _assert_problem(unknown, 404)
    # Its FHIR export too (it left that same row, "submission/unknown" with no patient, which no trail shows).
    for role in ("nurse", "admin"):
        export = await platform.questionnaire.get(
            f"/v1/submissions/{uuid.uuid4()}", headers={**platform.staff(role), "Accept": "application/fhir+json"}
        )
        await _assert_problem(export, 404)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_idempotency_key_reused_for_other_content_is_422(platform: Any) -> None:
    patient = uuid.uuid4()
    headers = _headers(platform, patient)
    first = await _post(platform, orjson.dumps(questionnaire_response(RED_NAUSEA)), headers)
    assert first.status_code == 202
    other = await _post(platform, orjson.dumps(questionnaire_response({"nausea.frequency": "0"})), headers)
    await _assert_problem(other, 422, "Idempotency-Key")


@pytest.mark.parametrize(
    ("payload", "words"),
    [({"text": ""}, ["add a photo"]), ({"text": "x" * 2001}, ["2000"]), ({"texte": "bonjour"}, ["text"])],
)
async def test_invalid_message_is_refused(platform: Any, payload: dict[str, Any], words: list[str]) -> None:
    response = await platform.questionnaire.post("/v1/messages", json=payload, headers=_headers(platform, uuid.uuid4()))
    await _assert_problem(response, 422, *words)
    await _nothing_stored_or_published(platform)


async def _red_alert(platform: Any) -> str:
    response = await _post(platform, orjson.dumps(questionnaire_response(RED_NAUSEA)), _headers(platform, uuid.uuid4()))
    assert response.status_code == 202

    async def alert_id() -> str | None:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return items[0]["id"] if items else None

    return str(await eventually(alert_id))


async def test_nurse_endpoints_refuse_wrong_callers_and_wrong_steps(platform: Any) -> None:
    alert_id = await _red_alert(platform)
    await _assert_problem(await platform.alerting.get("/v1/alerts"), 401)
    fleet = await platform.alerting.get("/v1/alerts", headers=platform.staff("fleet"))
    await _assert_problem(fleet, 403, "nurse")
    tablet = await platform.alerting.get("/v1/alerts", headers=platform.device(uuid.uuid4()))
    await _assert_problem(tablet, 403, "staff")
    await _assert_problem(
        await platform.alerting.get("/v1/alerts?level=purple", headers=platform.staff()), 422, "level"
    )
    await _assert_problem(await platform.alerting.get(f"/v1/alerts/{uuid.uuid4()}", headers=platform.staff()), 404)

    no_outcome = await platform.alerting.post(f"/v1/alerts/{alert_id}/resolve", json={}, headers=platform.staff())
    await _assert_problem(no_outcome, 422, "outcome")
    bad_outcome = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", json={"outcome": "prayed"}, headers=platform.staff()
    )
    await _assert_problem(bad_outcome, 422, "outcome")
    resolved = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", json={"outcome": "phone_call"}, headers=platform.staff()
    )
    assert resolved.status_code == 200
    ack = await platform.alerting.post(f"/v1/alerts/{alert_id}/ack", headers=platform.staff())
    await _assert_problem(ack, 409, "resolved")
    again = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", json={"outcome": "phone_call"}, headers=platform.staff()
    )
    await _assert_problem(again, 409, "already resolved")


async def test_two_nurses_acknowledging_at_once_one_wins(platform: Any) -> None:
    alert_id = await _red_alert(platform)
    first, second = await asyncio.gather(
        platform.alerting.post(f"/v1/alerts/{alert_id}/ack", headers=platform.staff(staff_id="nurse-a")),
        platform.alerting.post(f"/v1/alerts/{alert_id}/ack", headers=platform.staff(staff_id="nurse-b")),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    await _assert_problem(loser, 409, "already acknowledged")
    async with platform.alerting_platform.pool.acquire() as conn:
        acks = await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'alert.acknowledged'")
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledge'")
    assert acks == 1 and audit == 1


async def test_a_nul_character_is_refused_before_anything_is_stored(platform: Any) -> None:
    # PostgreSQL cannot store it in text or jsonb: stored, it failed the statement of every request committed
    # with it, other patients' included.
    patient = uuid.uuid4()
    message = await platform.questionnaire.post(
        "/v1/messages", content=orjson.dumps({"text": "bonjour\x00"}), headers=_headers(platform, patient)
    )
    problem = await _assert_problem(message, 422, "NUL character")
    assert problem["type"].endswith("/nul-character")
    submission = _with(RED_NAUSEA, source={"reference": "RelatedPerson/\x00"})
    await _assert_problem(await _post(platform, submission, _headers(platform, patient)), 422, "NUL character")
    listed = await platform.questionnaire.get("/v1/questionnaires?q=%00", headers=platform.device(patient))
    await _assert_problem(listed, 400, "NUL character")
    await _nothing_stored_or_published(platform)


async def test_a_backslash_before_the_letters_u0000_is_text_like_any_other(platform: Any) -> None:
    text = "le code \\u0000 affiché par la tablette"
    response = await platform.questionnaire.post(
        "/v1/messages", content=orjson.dumps({"text": text}), headers=_headers(platform, uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT body FROM messages") == text


async def test_staff_requests_out_of_range_get_a_4xx_never_a_500(platform: Any) -> None:
    nurse, admin = platform.staff("nurse"), platform.staff("admin", "admin-1")
    levels = f"/v1/patients/{uuid.uuid4()}/expected-levels/nausea"
    today = datetime.now(UTC).date().isoformat()
    # true is not a grade (it used to be taken as grade 1, which silences grade-1 nausea for the patient).
    await _assert_problem(await platform.alerting.put(levels, json={"grade": True, "until": today}, headers=nurse), 422)
    malformed = await platform.alerting.put(levels, content=b"{", headers={**nurse, "Content-Type": "application/json"})
    await _assert_problem(malformed, 400, "not valid JSON")
    too_far = await platform.alerting.get("/v1/alerts?offset=9223372036854775808", headers=nurse)
    await _assert_problem(too_far, 422, "offset")
    beyond = await platform.alerting.get("/v1/audit?before_id=9223372036854775808", headers=admin)
    await _assert_problem(beyond, 422, "before_id")
    year_9999 = await platform.alerting.get("/v1/metrics?from=9999-12-01&to=9999-12-31", headers=nurse)
    await _assert_problem(year_9999, 422, "Choose 'from' between 2000-01-01 and 2099-12-31")
    year_1 = await platform.alerting.get("/v1/metrics?to=0001-01-01", headers=nurse)  # 'from' would be 29 days before
    await _assert_problem(year_1, 422, "Choose 'to' between 2000-01-01 and 2099-12-31")
    assert year_1.json()["pointer"] == "/to"
    year_1 = await platform.alerting.get("/v1/audit", params={"since": "0001-01-01T00:00:00+01:00"}, headers=admin)
    await _assert_problem(year_1, 422, "out of the range")
    # A year alone, or a number, read as a Unix time, would be a moment in 1970 or 2023: a date-time it is not.
    for since in ("2026", "1700000000"):
        unix = await platform.alerting.get("/v1/audit", params={"since": since}, headers=admin)
        await _assert_problem(unix, 422, "RFC 3339", "not a Unix time")
    # A day is YYYY-MM-DD. Pydantic's lax mode took a Unix time falling at midnight UTC (as a number or a string)
    # and a date-time at midnight for that day: an expected level set until a day the nurse never chose.
    in_three_days = datetime.now(UTC).date() + timedelta(days=3)
    midnight = int(datetime.combine(in_three_days, datetime.min.time(), UTC).timestamp())
    for until in (midnight, str(midnight), f"{in_three_days.isoformat()}T00:00:00"):
        not_a_day = await platform.alerting.put(levels, json={"grade": 1, "until": until}, headers=nurse)
        await _assert_problem(not_a_day, 422, "calendar day written YYYY-MM-DD")
    not_a_day = await platform.alerting.get("/v1/metrics", params={"to": str(midnight)}, headers=nurse)
    await _assert_problem(not_a_day, 422, "calendar day written YYYY-MM-DD")
    with_nul = await platform.questionnaire.get("/v1/audit", params={"actor": "a\x00b"}, headers=admin)
    await _assert_problem(with_nul, 400, "NUL character")
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM expected_levels") == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
    ],
)
async def test_a_body_declared_as_anything_but_json_is_415(platform: Any, content_type: str) -> None:
    # The JSON itself is right: only its declared type is not. It used to be stored all the same by the tablet
    # routes, and refused by the others with a 422 about the body's shape that said nothing of the header.
    patient = uuid.uuid4()
    alert_id = await _red_alert(platform)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM outbox")
    tablet = {**_headers(platform, patient), "Content-Type": content_type}
    for response in await _three_writes(platform, alert_id, tablet, {"Content-Type": content_type}):
        problem = await _assert_problem(response, 415, "application/json", "application/fhir+json")
        assert problem["type"].endswith("/unsupported-media-type")
        assert problem["accepted"] == ["application/json", "application/fhir+json"]
        assert response.headers["accept-post"] == "application/json, application/fhir+json"
    await _refused_writes_left_nothing(platform, before, patient, alert_id)


async def test_a_body_with_two_content_types_one_not_json_is_415(platform: Any) -> None:
    # The app reads the first header; the check used to read the last: either order got past it.
    alert_id = await _red_alert(platform)
    (auth,) = platform.staff().items()
    for types in (("text/plain", "application/json"), ("application/json", "text/plain")):
        headers = [auth, *(("Content-Type", t) for t in types)]
        response = await platform.alerting.post(
            f"/v1/alerts/{alert_id}/resolve", content=b'{"outcome": "phone_call"}', headers=headers
        )
        await _assert_problem(response, 415, "text/plain")
    alert = await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())
    assert alert.json()["status"] == "open"


async def test_a_json_body_is_read_with_a_json_content_type_or_without_one(platform: Any) -> None:
    patient = uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    for content_type in ("application/fhir+json", "application/json", "Application/JSON; charset=UTF-8", None):
        headers = _headers(platform, patient) | ({"Content-Type": content_type} if content_type else {})
        assert (await _post(platform, body, headers)).status_code == 202, content_type
    alert_id = await _red_alert(platform)
    # A body-less step declares no body, whatever its Content-Type says.
    ack = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/ack", headers={**platform.staff(), "Content-Type": "text/plain"}
    )
    assert ack.status_code == 200, ack.text
    # No Content-Type: read as JSON on every route (it used to be a 422 "valid dictionary" on the staff routes).
    resolved = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", content=b'{"outcome": "phone_call"}', headers=platform.staff()
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["outcome"] == "phone_call"


async def test_a_body_that_is_not_utf8_is_a_clear_400_on_every_route(platform: Any) -> None:
    body = b'{"outcome": "phone_call", "note": "caf\xe9"}'  # Latin-1
    headers = {**platform.staff(), "Content-Type": "application/json"}
    resolve = await platform.alerting.post(f"/v1/alerts/{uuid.uuid4()}/resolve", content=body, headers=headers)
    problem = await _assert_problem(resolve, 400, "not valid JSON", "UTF-8")
    assert problem["type"].endswith("/malformed-json")
    message = await platform.questionnaire.post(
        "/v1/messages", content=b'{"text": "caf\xe9"}', headers=_headers(platform, uuid.uuid4())
    )
    await _assert_problem(message, 400, "not valid JSON")
    await _nothing_stored_or_published(platform)


async def test_an_unreadable_body_has_one_shape_whoever_reads_it(platform: Any) -> None:
    # The tablets' routes read their own bodies, the staff routes let FastAPI read them: a client handles the 400
    # of either the same way, its pointer the whole body as a validation problem's pointer is a member.
    staff = {**platform.staff(), "Content-Type": "application/json"}
    resolve = f"/v1/alerts/{uuid.uuid4()}/resolve"
    answers = {
        "submission, not JSON": await platform.questionnaire.post(
            "/v1/submissions", content=b'{"resourceType": ', headers=_headers(platform, uuid.uuid4())
        ),
        "message, not UTF-8": await platform.questionnaire.post(
            "/v1/messages", content=b'{"text": "caf\xe9"}', headers=_headers(platform, uuid.uuid4())
        ),
        "resolve, not JSON": await platform.alerting.post(resolve, content=b'{"outcome": ', headers=staff),
        "resolve, not UTF-8": await platform.alerting.post(resolve, content=b'{"note": "caf\xe9"}', headers=staff),
    }
    for case, response in answers.items():
        problem = await _assert_problem(response, 400, "not valid JSON")
        utf8 = "UTF-8" in case
        assert ("UTF-8" in problem["detail"]) is utf8, (case, problem)
        assert problem["type"].endswith("/malformed-json"), (case, problem)
        assert problem["pointer"] == "/", (case, problem)
        assert problem["errors"] == [{"pointer": "/", "detail": problem["detail"]}], (case, problem)
        assert set(problem) == {"type", "title", "status", "detail", "instance", "pointer", "errors"}, (case, problem)
    await _nothing_stored_or_published(platform)


@pytest.mark.parametrize("depth", [300, 1000])
async def test_a_submission_nested_too_deeply_to_store_is_422(platform: Any, depth: int) -> None:
    # Valid JSON (orjson reads 1,024 levels) that the jsonb codec cannot write (254 at most): it used to fail at
    # the database, as a 422 about an out-of-range value, or (deeper) a 500 when asyncpg's error message about
    # the value overflowed Python's stack.
    body = (
        orjson.dumps(questionnaire_response(RED_NAUSEA))[:-1] + b', "extension": ' + b"[" * depth + b"]" * depth + b"}"
    )
    submitted = await _post(platform, body, _headers(platform, uuid.uuid4()))
    problem = await _assert_problem(submitted, 422, "nested too deeply")
    assert problem["type"].endswith("/too-deeply-nested")
    await _nothing_stored_or_published(platform)


async def test_a_submission_nested_within_the_limit_is_stored_as_sent(platform: Any) -> None:
    response = questionnaire_response(RED_NAUSEA)
    response["extension"] = [{"url": "https://example.org/deep", "valueString": "é", "nested": [[[]]] * 2}]
    body = orjson.dumps(response)[:-1] + b', "contained": ' + b"[" * 200 + b"]" * 200 + b"}"
    submitted = await _post(platform, body, _headers(platform, uuid.uuid4()))
    assert submitted.status_code == 202, submitted.text
    async with platform.questionnaire_platform.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT response::text FROM submissions WHERE id = $1", uuid.UUID(submitted.json()["id"])
        )
    assert orjson.loads(stored) == orjson.loads(body)


async def test_a_token_whose_times_or_ids_cannot_be_kept_is_401(platform: Any) -> None:
    # Signed with the right key (the identity provider's), but /v1/me could not show its expiry (a 500), a NUL
    # in its subject failed every audited request (a 422 about the request, which held none), and so did a
    # subject longer than OIDC allows (a 500: too long for an entry of the audit trail's index on actor).
    def token(staff_id: str, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        signed = jwt.encode(
            {
                "iss": "oncofollow-dev",
                "aud": "oncofollow",
                "iat": now,
                "exp": now + 3600,
                "jti": str(uuid.uuid4()),
                "sub": staff_id,
                "typ": "staff",
                "roles": ["nurse", "admin"],
                **claims,
            },
            DEV_AUTH_SECRET,
            algorithm="HS256",
        )
        return {"Authorization": f"Bearer {signed}"}

    unusable = (token("nurse-1", exp=10**12), token("nurse-1", exp=1e300), token("nurse\x00-1"))
    for headers in (*unusable, token(secrets.token_urlsafe(4000))):
        await _assert_problem(await platform.alerting.get("/v1/me", headers=headers), 401, "invalid")
        await _assert_problem(await platform.alerting.get("/v1/alerts", headers=headers), 401, "invalid")
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


@pytest.mark.parametrize(
    "byte_range", ["bytes=999999-", "bytes=-0", "bytes=5-1", "bytes=a-b", "chars=0-1", "bytes=0-9"]
)
async def test_the_dashboard_pages_are_served_whole_whatever_range_is_asked(platform: Any, byte_range: str) -> None:
    # The pages are a few kilobytes, which no client asks in parts. Starlette's static files answered a Range
    # they could not serve with a text/plain 400 or 416 (one in a unit they did not know too, which RFC 9110
    # says to ignore): the only 4xx of the services that was not a problem.
    whole = await platform.alerting.get("/dashboard/index.html")
    asked = await platform.alerting.get("/dashboard/index.html", headers={"Range": byte_range})
    assert asked.status_code == 200, asked.text
    assert asked.content == whole.content and "content-range" not in asked.headers


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip", "x-custom"])
async def test_a_compressed_body_is_415_with_what_to_send_instead(platform: Any, coding: str) -> None:
    # The services read the body as it comes: a gzip body used to be "not valid JSON" (of no help to the tablet's
    # developer), and JSON labelled as compressed was stored as if the label were not there.
    patient = uuid.uuid4()
    alert_id = await _red_alert(platform)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM outbox")
    message = b'{"text": "bonjour"}'
    tablet = {**_headers(platform, patient), "Content-Type": "application/json", "Content-Encoding": coding}
    compressed = gzip.compress(message) if coding == "gzip" else message
    for response in await _three_writes(platform, alert_id, tablet, {"Content-Encoding": coding}, compressed):
        problem = await _assert_problem(response, 415, "Content-Encoding", "uncompressed")
        assert problem["type"].endswith("/unsupported-content-encoding")
        assert response.headers["accept-encoding"] == "identity"
    await _refused_writes_left_nothing(platform, before, patient, alert_id)


async def test_a_body_sent_with_the_identity_coding_is_read(platform: Any) -> None:
    headers = {**_headers(platform, uuid.uuid4()), "Content-Encoding": "identity"}
    sent = await platform.questionnaire.post("/v1/messages", content=b'{"text": "bonjour"}', headers=headers)
    assert sent.status_code == 202, sent.text


async def test_a_write_with_two_keys_or_two_tokens_is_refused_not_guessed(platform: Any) -> None:
    # The first of two headers used to count, silently: a retry's key, or whose tablet it is, would then depend on the
    # order some proxy kept them in.
    patient, other = uuid.uuid4(), uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    fhir = ("Content-Type", "application/fhir+json")
    token, other_token = platform.device(patient)["Authorization"], platform.device(other)["Authorization"]
    two_keys = [
        ("Authorization", token),
        ("Idempotency-Key", str(uuid.uuid4())),
        ("Idempotency-Key", str(uuid.uuid4())),
    ]
    two_tokens = [("Authorization", token), ("Authorization", other_token), ("Idempotency-Key", str(uuid.uuid4()))]
    for headers, named in ((two_keys, "Idempotency-Key"), (two_tokens, "Authorization")):
        response = await platform.questionnaire.post("/v1/submissions", content=body, headers=[*headers, fhir])
        problem = await _assert_problem(response, 400, f"Send the {named} header once")
        assert problem["type"].endswith("/repeated-header")
    alert_id = await _red_alert(platform)
    staff = platform.staff()["Authorization"]
    resolve = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve",
        json={"outcome": "phone_call"},
        headers=[("Authorization", staff), ("Authorization", staff)],
    )
    await _assert_problem(resolve, 400, "Send the Authorization header once")
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = ANY($1)", [patient, other]) == 0
    assert (await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())).json()["status"] == "open"


@pytest.mark.parametrize(
    "path",
    ["/v1/questionnaires/%C3%A9t%C3%A9", "/v1/questionnaires/a%20b%1B%7F%25", "/v1/questionnaires/%F0%9F%8F%86%5B%5D"],
    ids=["accented", "space-control-percent", "emoji-brackets"],
)
async def test_a_problems_instance_is_the_path_as_a_uri_reference(platform: Any, path: str) -> None:
    # Found by the API fuzz: the instance was the decoded path ("/v1/questionnaires/été", with its spaces and control
    # characters as they are), which is no URI reference, as the Problem schema says it is.
    tablet = platform.device(uuid.uuid4())
    problem = await _assert_problem(await platform.questionnaire.get(path, headers=tablet), 404)
    assert problem["instance"] == path
    text = {**tablet, "Content-Type": "text/plain"}  # refused by the request guard, before the app
    refused = await platform.questionnaire.post(path.replace("questionnaires", "messages"), content=b"x", headers=text)
    assert (await _assert_problem(refused, 415))["instance"] == path.replace("questionnaires", "messages")


async def test_a_query_parameter_that_takes_one_value_sent_twice_is_refused_not_guessed(platform: Any) -> None:
    # Found by the API fuzz: the last of the values counted, silently (?limit=5&limit=500 was a page of 500), as the
    # first of two Idempotency-Keys once did; which one the caller meant would be a guess.
    nurse, admin = platform.staff("nurse"), platform.staff("admin")
    for client, url, headers, name in (
        (platform.alerting, "/v1/alerts?limit=5&limit=500", nurse, "limit"),
        (platform.alerting, "/v1/metrics?from=2026-01-01&to=2026-01-31&from=2026-01-02", nurse, "from"),
        (platform.questionnaire, "/v1/audit?actor=ide-1&action=x&actor=ide-2", admin, "actor"),
    ):
        problem = await _assert_problem(await client.get(url, headers=headers), 400, f"Send the {name} query")
        assert problem["type"].endswith("/repeated-parameter") and problem["pointer"] == f"/{name}"
    # A parameter that takes a list takes it as repeated values.
    listed = await platform.alerting.get("/v1/alerts?status=open&status=acknowledged&limit=5", headers=nurse)
    assert listed.status_code == 200, listed.text
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_a_validation_problem_names_where_at_its_top_as_every_other_refusal_does(
    platform: Any, devices: tuple[Any, Any], tokens: TokenService
) -> None:
    # The tablet and the staff pages read a problem's top-level `pointer` to show what to correct: FastAPI's
    # validation problems had it only in `errors[]` (a JSON syntax error's a character offset, "/1").
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-1', {'fleet'})}"}
    tablet = {"serial_number": "R52W70ABCDE", "model": "Galaxy Tab A9", "accessories": ["toaster"]}
    resolve = f"/v1/alerts/{uuid.uuid4()}/resolve"
    for refused, status, pointer in (
        (await platform.alerting.post(resolve, json={"outcome": "a guess"}, headers=platform.staff()), 422, "/outcome"),
        (await platform.questionnaire.get("/v1/submissions/12", headers=platform.staff()), 422, "/submission_id"),
        (await devices[0].post("/v1/tablets", json=tablet, headers=fleet), 422, "/accessories/0"),
        (await platform.alerting.post(resolve, content=b"{not json", headers=platform.staff()), 400, "/"),
    ):
        problem = await _assert_problem(refused, status)
        assert problem["pointer"] == pointer == problem["errors"][0]["pointer"], problem
    await _nothing_stored_or_published(platform)
    async with devices[1].pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tablets") == 0
