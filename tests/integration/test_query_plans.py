"""The hot queries stay index lookups when the tables grow after their plan was made.

asyncpg keeps every statement prepared, and after five executions PostgreSQL may keep one generic plan
for it, costed with the table's size at that moment. A service starts on empty or nearly empty tables,
so a query that such a plan turns into a sequential scan would go on reading the whole table, every
batch, until autovacuum next analyzes it (in the benchmark, the alerts table was read in full dozens of
times a second). Each query here is run until its plan is settled on an empty or a small table, then
once more after the table has grown, in a transaction whose own statistics
(``pg_stat_xact_user_tables``) say whether the table was read in full.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.alerting import repository as alerting
from services.devices import repository as devices
from services.questionnaire import repository as questionnaire
from shared.db.housekeeping import PURGE_IDEMPOTENCY_KEYS, PURGE_INBOX, PURGE_OUTBOX, purge_chunk
from shared.db.outbox import MARK_AND_FETCH
from shared.db.pool import apply_migrations, init_connection, session_settings

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parents[2] / "services"
ROWS = 3000
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)

FILL_ALERTS = (
    "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, "
    "rule_set, raised_at, updated_at, level_since) SELECT gen_random_uuid(), gen_random_uuid(), 'red', 'open', "
    "'[]', 'patient', '{}', '{}', 'test', $1, $1, $1 FROM generate_series(1, $2)"
)
FILL_SCORES = (
    "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, grades, "
    "level, rule_set) SELECT gen_random_uuid(), gen_random_uuid(), 'reconnect-symptoms', $1, 'patient', '{}', "
    "'{}', 'none', 'test' FROM generate_series(1, $2)"
)
FILL_EXPECTED = (
    "INSERT INTO expected_levels (patient_id, term, grade, until, set_by) "
    "SELECT gen_random_uuid(), 'nausea', 2, $1, 'nurse-1' FROM generate_series(1, $2)"
)
# A step for each of as many new alerts (a step needs its alert).
FILL_STEPS = (
    "WITH new AS (INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, submission_ids, "
    "message_ids, rule_set, raised_at, updated_at, level_since, acknowledged_by, acknowledged_at) "
    "SELECT gen_random_uuid(), gen_random_uuid(), 'red', 'acknowledged', '[]', 'patient', '{}', '{}', 'test', $1, $1, "
    "$1, 'nurse-1', $1 FROM generate_series(1, $2) RETURNING id, acknowledged_at) "
    "INSERT INTO alert_steps (alert_id, action, at, staff_id) SELECT id, 'acknowledged', acknowledged_at, 'nurse-1' "
    "FROM new"
)

FILL_SUBMISSIONS = (
    "INSERT INTO submissions (id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, "
    "response) SELECT gen_random_uuid(), gen_random_uuid(), 'reconnect-symptoms', '1.0.0', 'patient', $1, "
    "'{}' FROM generate_series(1, $2)"
)
FILL_OUTBOX = (
    "INSERT INTO outbox (id, subject, body, published_at) "
    "SELECT gen_random_uuid(), 'alert.raised', '\\x7b7d', $1 FROM generate_series(1, $2)"
)
FILL_IDEMPOTENCY_KEYS = (
    "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) "
    "SELECT 's', gen_random_uuid()::text, 'h', 202, '{}', $1 FROM generate_series(1, $2)"
)
FILL_INBOX = (
    "INSERT INTO inbox (consumer, event_id, processed_at) "
    "SELECT 'alerting-c', gen_random_uuid()::text, $1 FROM generate_series(1, $2)"
)
FILL_PHOTOS = (
    "INSERT INTO photos (id, patient_id, received_at, width, height, jpeg) "
    "SELECT gen_random_uuid(), gen_random_uuid(), $1, 1, 1, '\\xffd8' FROM generate_series(1, $2)"
)
# Loans that ended, each on a tablet of its own (a loan needs its tablet): the history the loans table builds up.
FILL_LOANS = (
    "WITH t AS (INSERT INTO tablets (id, serial_number, model, state, registered_at, registered_by, state_changed_at) "
    "SELECT gen_random_uuid(), upper(gen_random_uuid()::text), 'Galaxy Tab A9', 'returned', $1, 'fleet-1', $1 "
    "FROM generate_series(1, $2) RETURNING id) "
    "INSERT INTO loans (id, tablet_id, patient_id, token_id, agreement_signed_at, agreement_witnessed_by, accessories, "
    "expected_return_on, loaned_at, loaned_by, ended_at, end_kind, return_channel) "
    "SELECT gen_random_uuid(), id, gen_random_uuid(), gen_random_uuid()::text, $1::timestamptz - interval '1 year', "
    "'nurse-1', '{charger}', $1::date, $1::timestamptz - interval '1 year', 'fleet-1', $1, 'returned', 'post' FROM t"
)


ONE_RETURNED_LOAN = (
    "WITH t AS (INSERT INTO tablets (id, serial_number, model, state, registered_at, registered_by, state_changed_at) "
    "VALUES ($1, upper($1::uuid::text), 'Galaxy Tab A9', 'returned', $3, 'fleet-1', $3) RETURNING id) "
    "INSERT INTO loans (id, tablet_id, patient_id, token_id, agreement_signed_at, agreement_witnessed_by, accessories, "
    "expected_return_on, loaned_at, loaned_by, ended_at, end_kind, return_channel) "
    "SELECT $2, id, gen_random_uuid(), $2::uuid::text, $3, 'nurse-1', '{charger}', $3::date, $3, 'fleet-1', $3, "
    "'returned', 'post' FROM t"
)


async def _receipt_of_a_returned_loan(conn: asyncpg.Connection) -> object:
    """The receipt of a loan that is there: its lookup of the tablet's next loan runs for a loan found only."""
    tablet_id, loan_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(ONE_RETURNED_LOAN, tablet_id, loan_id, NOW)
    return await devices.loan_for_receipt(conn, loan_id)


async def _tablet_back_from_a_loan(conn: asyncpg.Connection) -> object:
    """A tablet that is there, read with whether its last loan came back damaged and unchecked (a lookup of its loans
    that runs for a tablet found only)."""
    tablet_id = uuid.uuid4()
    await conn.execute(ONE_RETURNED_LOAN, tablet_id, uuid.uuid4(), NOW)
    return await devices.get_tablet(conn, tablet_id)


Query = Callable[[asyncpg.Connection], Awaitable[object]]
PATIENTS = [uuid.uuid4() for _ in range(5)]

CASES: dict[str, tuple[str, str, str, Query]] = {
    "active_alerts": (
        "alerting",
        "alerts",
        FILL_ALERTS,
        lambda c: alerting.active_alerts(c, [uuid.uuid4() for _ in range(5)]),
    ),
    "awaiting_acknowledgement": (
        "alerting",
        "alerts",
        FILL_ALERTS,
        lambda c: alerting.awaiting_acknowledgement(c, NOW - timedelta(days=1)),
    ),
    # The scoring batch's one read: each of its three tables, grown after the plan was made.
    **{
        f"scoring_context ({table})": (
            "alerting",
            table,
            fill,
            lambda c: alerting.scoring_context(c, PATIENTS, [(p, NOW) for p in PATIENTS], NOW - timedelta(days=1)),
        )
        for table, fill in (("alerts", FILL_ALERTS), ("scores", FILL_SCORES), ("expected_levels", FILL_EXPECTED))
    },
    # The patient view's history: the steps of the patient's alerts.
    "alert_steps": (
        "alerting",
        "alert_steps",
        FILL_STEPS,
        lambda c: alerting.alert_steps(c, [uuid.uuid4() for _ in range(5)]),
    ),
    "mark_scored": (
        "questionnaire",
        "submissions",
        FILL_SUBMISSIONS,
        lambda c: questionnaire.mark_scored(c, [(uuid.uuid4(), NOW) for _ in range(5)]),
    ),
    "mark_seen": (
        "questionnaire",
        "submissions",
        FILL_SUBMISSIONS,
        lambda c: questionnaire.mark_seen(c, [(uuid.uuid4(), NOW) for _ in range(5)]),
    ),
    "outbox_relay_round": (
        "alerting",
        "outbox",
        FILL_OUTBOX,
        lambda c: c.fetch(MARK_AND_FETCH, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], 500),
    ),
    # A chunk of the housekeeping purge finds its rows by age, whatever the table holds besides.
    "purge_outbox": ("alerting", "outbox", FILL_OUTBOX, lambda c: purge_chunk(c, PURGE_OUTBOX, 7, 5000)),
    "purge_idempotency_keys": (
        "alerting",
        "idempotency_keys",
        FILL_IDEMPOTENCY_KEYS,
        lambda c: purge_chunk(c, PURGE_IDEMPOTENCY_KEYS, 30, 5000),
    ),
    "purge_inbox": (
        "alerting",
        "inbox",
        FILL_INBOX,
        lambda c: purge_chunk(c, PURGE_INBOX, "alerting-c", 38, 5000),
    ),
    "purge_orphan_photos": (
        "questionnaire",
        "photos",
        FILL_PHOTOS,
        lambda c: purge_chunk(c, questionnaire.PURGE_ORPHAN_PHOTOS, 7, 5000),
    ),
    # A tablet's loans: its history on the fleet page, since when it is back (a wipe's earliest date), and the
    # receipt's "next loan of this tablet" (loans.tablet_id, migration devices 005).
    "tablet_loan_history": ("devices", "loans", FILL_LOANS, lambda c: devices.history(c, uuid.uuid4())),
    "back_in_hand_since": ("devices", "loans", FILL_LOANS, lambda c: devices.back_in_hand_since(c, uuid.uuid4())),
    "loan_receipt": ("devices", "loans", FILL_LOANS, _receipt_of_a_returned_loan),
    # Every read of a tablet says whether its last loan came back damaged and is still to check (migration 008).
    "tablet_last_loan": ("devices", "loans", FILL_LOANS, _tablet_back_from_a_loan),
    # The fleet page's loans to look at: the open ones through the open-loan index, the ended ones with accessories
    # still missing through their own (migration devices 006).
    "loans_needing_attention": (
        "devices",
        "loans",
        FILL_LOANS,
        lambda c: devices.loans_needing_attention(c, NOW.date(), 30),
    ),
}

# Planned for their values each time (``housekeeping.purge_chunk``), the purge's chunks are as good as the table's
# statistics, which autovacuum keeps; without any (a table never analyzed), a third of it is taken to be old, and
# reading it all is the cheaper guess. Likewise the fleet page's loans to look at: without statistics, a third of the
# loans are taken to have accessories missing (in truth a handful), and a read of the whole table to be cheaper than
# two indexes; the page asks a few times an hour, and the loans table, growing by a few loans a day, is analyzed by
# autovacuum long before it is large.
ANALYZED = {"purge_outbox", "purge_idempotency_keys", "purge_inbox", "purge_orphan_photos", "loans_needing_attention"}


@pytest.mark.parametrize("rows_at_first", [0, 50])
@pytest.mark.parametrize("case", list(CASES))
async def test_query_reads_by_index_after_the_table_grew(database_url: str, case: str, rows_at_first: int) -> None:
    schema, table, fill, query = CASES[case]
    conn = await asyncpg.connect(database_url, server_settings=session_settings(schema))
    try:
        await init_connection(conn)
        await apply_migrations(conn, schema, SERVICES / schema / "migrations")
        if rows_at_first:
            await conn.execute(fill, NOW, rows_at_first)
        for _ in range(8):  # past the five custom plans after which PostgreSQL may settle on a generic one
            async with conn.transaction():
                await query(conn)
        await conn.execute(fill, NOW, ROWS)
        if case in ANALYZED:
            await conn.execute(f"ANALYZE {table}")
        count = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = $1"
        async with conn.transaction():
            before = await conn.fetchval(count, table)
            await query(conn)
            scans = await conn.fetchval(count, table) - before
        assert scans == 0, f"{case} read the whole {table} table"
    finally:
        await conn.close()
