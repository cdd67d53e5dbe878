"""A patient's photo, end to end against the real NATS and PostgreSQL: the tablet uploads it (re-encoded, no
metadata), a message names it, the alert knows it, a nurse reads it (audited); and every refusal stores nothing."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from typing import Any

import pytest
from PIL import Image

from services.questionnaire.photos import MAX_SIDE
from shared.testing.photos import GPS_IFD, photo_bytes, png_header_only
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
JPEG = {"Content-Type": "image/jpeg"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def upload(platform: Any, patient: uuid.UUID, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return await platform.questionnaire.post(
        "/v1/photos", content=data, headers={**platform.device(patient), **_key(), **JPEG, **(headers or {})}
    )


async def send(platform: Any, patient: uuid.UUID, body: dict[str, Any]) -> Any:
    return await platform.questionnaire.post("/v1/messages", json=body, headers={**platform.device(patient), **_key()})


def _problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    for word in words:
        assert word.lower() in problem["detail"].lower(), problem
    return problem


async def _counts(platform: Any) -> tuple[int, int, int]:
    async with platform.questionnaire_platform.pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM photos"),
            await conn.fetchval("SELECT count(*) FROM messages"),
            await conn.fetchval("SELECT count(*) FROM outbox"),
        )


async def _audit_rows(platform: Any, patient: uuid.UUID) -> list[Any]:
    async with platform.questionnaire_platform.pool.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT actor, action, resource FROM audit_log WHERE patient_id = $1 AND action = 'photo.read'",
                patient,
            )
        )


async def test_a_photo_goes_from_the_tablet_to_the_nurse_without_its_metadata(platform: Any) -> None:
    patient = uuid.uuid4()
    uploaded = await upload(platform, patient, photo_bytes(MAX_SIDE + 512, 1280, gps=True))
    assert uploaded.status_code == 201, uploaded.text
    photo = uploaded.json()
    assert (photo["width"], photo["height"]) == (MAX_SIDE, 1024)
    assert uploaded.headers["location"] == f"/v1/photos/{photo['id']}"

    sent = await send(platform, patient, {"text": "Rougeur autour du boîtier", "photo_ids": [photo["id"]]})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    async with platform.questionnaire_platform.pool.acquire() as conn:
        event, subject = await conn.fetchrow("SELECT convert_from(body, 'UTF8'), subject FROM outbox")
    assert photo["id"] in event and "jpeg" not in event.lower() and photo["id"] not in subject

    async def alert_with_photo() -> Any:
        listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        mine = [a for a in listed if a["patient_id"] == str(patient)]
        if not mine:
            return None
        return (await platform.alerting.get(f"/v1/alerts/{mine[0]['id']}", headers=platform.staff())).json()

    alert = await eventually(alert_with_photo)
    assert (alert["photo_count"], alert["photo_ids"]) == (1, [photo["id"]])
    assert alert["messages"][0]["id"] == message_id and alert["messages"][0]["photo_ids"] == [photo["id"]]
    timeline = await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())
    assert timeline.json()["messages"][0]["photo_ids"] == [photo["id"]]

    assert await _audit_rows(platform, patient) == []
    read = await platform.questionnaire.get(f"/v1/photos/{photo['id']}", headers=platform.staff("nurse", "nurse-7"))
    assert read.status_code == 200
    assert read.headers["content-type"] == "image/jpeg"
    assert read.headers["cache-control"] == "private, no-store"
    assert read.headers["x-content-type-options"] == "nosniff"
    image = Image.open(io.BytesIO(read.content))
    assert image.size == (MAX_SIDE, 1024) and not image.getexif().get_ifd(GPS_IFD) and len(image.getexif()) == 0
    assert b"SN-123456789" not in read.content
    rows = await _audit_rows(platform, patient)
    assert [(r["actor"], r["resource"]) for r in rows] == [("nurse-7", f"photo/{photo['id']}")]

    # The patient's own tablet shows what it sent (not audited: no staff); the message's status names the photo.
    own = await platform.questionnaire.get(f"/v1/photos/{photo['id']}", headers=platform.device(patient))
    assert own.status_code == 200 and own.content == read.content
    assert len(await _audit_rows(platform, patient)) == 1
    status = await platform.questionnaire.get(f"/v1/messages/{message_id}", headers=platform.device(patient))
    assert status.json()["photo_ids"] == [photo["id"]]


async def test_the_same_upload_sent_twice_stores_one_photo_which_a_message_may_show_alone(platform: Any) -> None:
    patient = uuid.uuid4()
    key = _key()
    first, second = await asyncio.gather(
        upload(platform, patient, photo_bytes(), key), upload(platform, patient, photo_bytes(), key)
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert (await _counts(platform))[0] == 1
    other = await upload(platform, patient, photo_bytes(32, 32), key)
    _problem(other, 422, "different request")

    # A message may be that photo alone, without text; without either it is refused.
    sent = await send(platform, patient, {"photo_ids": [first.json()["id"]]})
    assert sent.status_code == 202, sent.text
    _problem(await send(platform, patient, {"text": "  "}), 422, "add a photo")


REFUSED_UPLOADS = [
    ("not-an-image", b"%PDF-1.7 not a photo", {}, 422, "not an image"),
    ("gif", b"GIF89a", {"Content-Type": "image/gif"}, 415, "image/jpeg"),
    ("json", b"{}", {"Content-Type": "application/json"}, 415, "image/png"),
    ("png-as-jpeg", photo_bytes(fmt="PNG"), {}, 415, "sent as image/jpeg"),
    ("too-many-pixels", png_header_only(8000, 8000), {"Content-Type": "image/png"}, 422, "pixels"),
    ("truncated", photo_bytes(400, 300)[:900], {}, 422, "cut short"),
    ("empty", b"", {}, 422, "no photo"),
]


async def test_what_is_not_an_accepted_photo_or_not_a_tablets_is_refused_and_nothing_stored(platform: Any) -> None:
    # One test, one platform: each case is a request, not a start of both services.
    for case, body, headers, status, words in REFUSED_UPLOADS:
        response = await upload(platform, uuid.uuid4(), body, headers)
        assert response.status_code == status, (case, response.text)
        _problem(response, status, words)
    staff = await platform.questionnaire.post(
        "/v1/photos", content=photo_bytes(), headers={**platform.staff(), **_key(), **JPEG}
    )
    _problem(staff, 403, "device token")
    assert await _counts(platform) == (0, 0, 0)


async def test_a_photo_over_the_size_limit_is_a_413_and_other_routes_keep_theirs(platform: Any) -> None:
    limit = platform.questionnaire_platform.settings.max_photo_bytes
    too_big = photo_bytes() + b"\0" * limit
    _problem(await upload(platform, uuid.uuid4(), too_big), 413, "smaller photo")
    assert await _counts(platform) == (0, 0, 0)
    # Under the photo limit, a photo well over the JSON limit is taken; a message that big is still refused.
    noise = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))  # noise: a PNG that does not shrink
    out = io.BytesIO()
    noise.save(out, "PNG")
    big = out.getvalue()
    assert len(big) > platform.questionnaire_platform.settings.max_body_bytes
    ok = await upload(platform, uuid.uuid4(), big, {"Content-Type": "image/png"})
    assert ok.status_code == 201, ok.text
    long = await platform.questionnaire.post(
        "/v1/messages",
        content=b'{"text": "' + b"a" * len(big) + b'"}',
        headers={**platform.device(uuid.uuid4()), **_key()},
    )
    assert long.status_code == 413


async def test_a_message_naming_a_photo_not_its_own_is_refused(platform: Any) -> None:
    patient, other = uuid.uuid4(), uuid.uuid4()
    mine = (await upload(platform, patient, photo_bytes())).json()["id"]
    theirs = (await upload(platform, other, photo_bytes())).json()["id"]
    cases = [
        ({"text": "x", "photo_ids": [str(uuid.uuid4())]}, "upload the photo first", "/photo_ids/0"),
        ({"text": "x", "photo_ids": [mine, theirs]}, "upload the photo first", "/photo_ids/1"),
        ({"text": "x", "photo_ids": [mine, mine]}, "named twice", "/photo_ids/1"),
        ({"text": "x", "photo_ids": ["not-a-uuid"]}, "photo ids", "/photo_ids/0"),
        ({"text": "x", "photo_ids": [str(uuid.uuid4()) for _ in range(5)]}, "4 photo ids", "/photo_ids"),
    ]
    for body, words, pointer in cases:
        problem = _problem(await send(platform, patient, body), 422, words)
        assert problem["pointer"] == pointer, problem
    assert await _counts(platform) == (2, 0, 0)


async def test_a_tablet_cannot_read_another_patients_photo_and_an_unknown_id_is_not_audited(platform: Any) -> None:
    patient = uuid.uuid4()
    photo = (await upload(platform, patient, photo_bytes())).json()["id"]
    _problem(await platform.questionnaire.get(f"/v1/photos/{photo}", headers=platform.device(uuid.uuid4())), 404)
    _problem(await platform.questionnaire.get(f"/v1/photos/{uuid.uuid4()}", headers=platform.staff()), 404)
    _problem(await platform.questionnaire.get(f"/v1/photos/{photo}", headers=platform.staff("fleet")), 403)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'photo.read'") == 0
