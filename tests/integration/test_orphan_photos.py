"""A photo no message names is deleted ORPHAN_PHOTO_DAYS after its upload, by the housekeeping, in chunks; a photo a
message names is kept with the patient's record; a message naming a photo gone so is refused, as an unknown one."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.questionnaire.repository import orphan_photos_purge
from shared.db.housekeeping import purge, run_housekeeping
from shared.db.pool import apply_migrations, create_pool, init_connection, session_settings
from shared.testing.migrations import schema_before
from shared.testing.photos import photo_bytes

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "questionnaire" / "migrations"
DAYS = 7
PHOTO = (
    "INSERT INTO photos (id, patient_id, received_at, width, height, jpeg) "
    "VALUES ($1, $2, now() - make_interval(days => $3), 1, 1, '\\xffd8')"
)
MESSAGE = (
    "INSERT INTO messages (id, patient_id, answered_by, body, sent_at, photo_ids) "
    "VALUES (gen_random_uuid(), $1, 'patient', '', now(), $2::jsonb)"
)


@pytest.fixture
async def photos_schema(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Connection]:
    """The questionnaire's tables, without starting the service (its own housekeeping would race the test's)."""
    conn = await asyncpg.connect(database_url, server_settings=session_settings("questionnaire"))
    await init_connection(conn)
    await apply_migrations(conn, "questionnaire", MIGRATIONS)
    yield conn
    await conn.close()


async def _photo(conn: asyncpg.Connection, patient: uuid.UUID, age_days: float) -> uuid.UUID:
    photo = uuid.uuid4()
    await conn.execute(PHOTO, photo, patient, age_days)
    return photo


async def _name(conn: asyncpg.Connection, patient: uuid.UUID, *photos: uuid.UUID) -> None:
    await conn.execute(MESSAGE, patient, [str(p) for p in photos])


async def _left(conn: asyncpg.Connection) -> set[uuid.UUID]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM photos")}


async def test_an_old_orphan_goes_a_young_one_and_any_a_message_names_stay(photos_schema: asyncpg.Connection) -> None:
    conn = photos_schema
    patient = uuid.uuid4()
    old_orphan = await _photo(conn, patient, DAYS + 1)
    young_orphan = await _photo(conn, patient, DAYS - 1)
    old_named, old_named_too, young_named = [await _photo(conn, patient, age) for age in (DAYS + 1, 400, 1)]
    await _name(conn, patient, old_named, young_named)
    await _name(conn, patient, old_named_too)
    # Past ORPHAN_PHOTO_DAYS by less than the purge's hour: refused to a message already, deleted at the next round.
    just_past = await _photo(conn, patient, DAYS + 0.5 / 24)

    removed = await purge(conn, purges=[orphan_photos_purge(DAYS)])

    assert removed["orphan_photos"] == 1
    assert await _left(conn) == {young_orphan, old_named, old_named_too, young_named, just_past}
    assert old_orphan not in await _left(conn)
    # A message is kept, so its photos are, however old.
    assert await purge(conn, purges=[orphan_photos_purge(1)]) == {
        "outbox": 0,
        "idempotency_keys": 0,
        "inbox": 0,
        "orphan_photos": 2,
    }
    assert await _left(conn) == {old_named, old_named_too, young_named}


async def test_the_service_s_housekeeping_purges_them_and_logs_the_count_only(
    photos_schema: asyncpg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    patient = uuid.uuid4()
    orphan = await _photo(photos_schema, patient, DAYS + 1)
    pool = await create_pool(database_url, "questionnaire", min_size=1, max_size=1)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="shared.db.housekeeping")
    try:
        round_ = asyncio.create_task(run_housekeeping(pool, stop, purges=[orphan_photos_purge(DAYS)]))
        for _ in range(100):
            if not await _left(photos_schema):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await round_
    finally:
        await pool.close()
    assert await _left(photos_schema) == set()
    logged = [r.getMessage() for r in caplog.records if r.name == "shared.db.housekeeping"]
    assert any("'orphan_photos': 1" in line for line in logged), logged
    assert not any(str(orphan) in line or str(patient) in line for line in logged)


CHUNK = 20


async def test_the_purge_deletes_orphans_a_chunk_a_transaction_and_a_round_stops_at_its_budget(
    photos_schema: asyncpg.Connection,
) -> None:
    conn = photos_schema
    await conn.execute(
        "INSERT INTO photos (id, patient_id, received_at, width, height, jpeg) SELECT gen_random_uuid(), "
        "gen_random_uuid(), now() - make_interval(days => 30), 1, 1, '\\xffd8' FROM generate_series(1, $1)",
        2 * CHUNK + 5,
    )
    purges = [orphan_photos_purge(DAYS)]
    # Out of time after a chunk: the round stops there, and the next one goes on.
    assert (await purge(conn, purges=purges, chunk_rows=CHUNK, budget_s=0))["orphan_photos"] == CHUNK
    seen: list[str] = []
    conn.add_query_logger(lambda record: seen.append(record.query.split()[0].rstrip(";").upper()))
    assert (await purge(conn, purges=purges, chunk_rows=CHUNK))["orphan_photos"] == CHUNK + 5
    await asyncio.sleep(0)  # asyncpg calls its query loggers at the next turn of the loop
    # Outbox and keys: one chunk each (nothing to delete); the photos: two (20, then 5), each its own transaction.
    assert [s for s in seen if s in ("BEGIN", "DELETE", "COMMIT")] == ["BEGIN", "DELETE", "COMMIT"] * 4, seen
    assert await _left(conn) == set()


async def test_the_photos_messages_named_before_the_migration_are_kept(database_url: str, tmp_path: Path) -> None:
    conn = await schema_before(database_url, "questionnaire", MIGRATIONS, "005", tmp_path)
    try:
        patient = uuid.uuid4()
        named = await _photo(conn, patient, 100)
        await _photo(conn, patient, 100)  # no message names this one
        await _name(conn, patient, named)
        await apply_migrations(conn, "questionnaire", MIGRATIONS)
        assert (await purge(conn, purges=[orphan_photos_purge(DAYS)]))["orphan_photos"] == 1
        assert await _left(conn) == {named}
    finally:
        await conn.close()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_a_message_naming_a_photo_no_message_named_in_time_is_refused_and_stores_nothing(platform: Any) -> None:
    patient = uuid.uuid4()
    device = platform.device(patient)

    async def upload() -> str:
        response = await platform.questionnaire.post(
            "/v1/photos", content=photo_bytes(), headers={**device, **_key(), "Content-Type": "image/jpeg"}
        )
        assert response.status_code == 201, response.text
        photo: str = response.json()["id"]
        return photo

    async def send(*photos: str) -> Any:
        return await platform.questionnaire.post(
            "/v1/messages", json={"text": "x", "photo_ids": list(photos)}, headers={**device, **_key()}
        )

    purged, late, sent = await upload(), await upload(), await upload()
    assert (await send(sent)).status_code == 202
    pool = platform.questionnaire_platform.pool
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE photos SET received_at = now() - make_interval(days => $2) WHERE id = ANY($1::uuid[])",
            [uuid.UUID(p) for p in (purged, sent)],
            DAYS + 1,
        )
        # Past the days by a minute: the purge has not taken it yet, the message is refused all the same.
        await conn.execute(
            "UPDATE photos SET received_at = now() - make_interval(days => $2, mins => 1) WHERE id = $1",
            uuid.UUID(late),
            DAYS,
        )
        assert (await purge(conn, purges=[orphan_photos_purge(DAYS)]))["orphan_photos"] == 1
        before = [await conn.fetchval(f"SELECT count(*) FROM {table}") for table in ("messages", "outbox")]

    for photo in (purged, late):
        refused = await send(photo)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"].endswith("/unknown-photo") and problem["pointer"] == "/photo_ids/0", problem
        assert "upload the photo first" in problem["detail"] and f"within {DAYS} days" in problem["detail"]
    async with pool.acquire() as conn:
        assert [await conn.fetchval(f"SELECT count(*) FROM {table}") for table in ("messages", "outbox")] == before
    # A photo a message named is kept, and may be named again, however old.
    assert (await send(sent)).status_code == 202
