"""What the migration runner reads in a migration's text before running it: whether it runs outside a transaction,
and which index it builds concurrently."""

from __future__ import annotations

import pytest

from shared.db.pool import MigrationError, concurrent_index, outside_transaction


@pytest.mark.parametrize(
    ("sql", "outside"),
    [
        ("-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\n", True),
        ("-- migrate: no-transaction   \r\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\n", True),
        ("CREATE TABLE t (x int);\n", False),
        ("-- A comment that mentions migrate: no-transaction later on the line.\nCREATE TABLE t (x int);\n", False),
        # Only the first line counts: further down, it is a comment like any other.
        ("CREATE TABLE t (x int);\n-- migrate: no-transaction\n", False),
    ],
)
def test_a_migration_runs_outside_a_transaction_only_when_its_first_line_says_so(sql: str, outside: bool) -> None:
    assert outside_transaction("service/002_x.sql", sql) is outside


@pytest.mark.parametrize("first", ["-- migrate: no transaction", "-- migrate:no-transaction", "--MIGRATE: notx"])
def test_a_directive_the_runner_does_not_know_is_refused_rather_than_run_in_a_transaction(first: str) -> None:
    with pytest.raises(MigrationError, match="not a directive the runner knows; write '-- migrate: no-transaction'"):
        outside_transaction("service/002_x.sql", f"{first}\nCREATE INDEX CONCURRENTLY a ON t (x);\n")


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (
            "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_open ON alerts (opened_at);",
            "alerts_open",
        ),
        (
            "-- migrate: no-transaction\n-- why\n/* and a block */\n"
            "create unique index concurrently Alerts_Key on alerts (k)",
            "alerts_key",
        ),
        ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "Alerts ""open""" ON alerts (opened_at)', 'Alerts "open"'),
        (
            "CREATE INDEX CONCURRENTLY\n  IF NOT EXISTS\n  heartbeats_device\n  ON heartbeats (device_id)",
            "heartbeats_device",
        ),
        ("-- migrate: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS alerts_open;", None),
        ("-- migrate: no-transaction\nREINDEX INDEX CONCURRENTLY alerts_open;", None),
    ],
)
def test_the_index_a_migration_builds_concurrently_is_named_as_postgresql_stores_it(
    sql: str, index: str | None
) -> None:
    assert concurrent_index("service/002_x.sql", sql) == index


def test_a_concurrent_build_must_name_its_index() -> None:
    with pytest.raises(MigrationError, match="name the index it builds"):
        concurrent_index("service/002_x.sql", "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY ON alerts (k);")
