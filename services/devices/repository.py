"""SQL for the devices schema (parameterised only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db.sets import columns
from shared.events.inclusion import SessionPlan

# Whether the tablet's last loan came back damaged and nobody has recorded a check of it since (migration 008):
# what domain.damage_check_due decides from, with the tablet's state.
LAST_RETURN_DAMAGED_UNCHECKED = (
    "coalesce((SELECT d.return_condition = 'damaged' AND d.damage_check IS NULL FROM loans d "
    "WHERE d.tablet_id = t.id ORDER BY d.loaned_at DESC LIMIT 1), false)"
)
TABLET_COLUMNS = (
    "t.id, t.serial_number, t.model, t.state, t.registered_at, t.registered_by, t.state_changed_at, "
    "t.last_seen_at, t.last_used_at, t.battery_percent, t.app_version, "
    f"{LAST_RETURN_DAMAGED_UNCHECKED} AS last_return_damaged_unchecked"
)
LOAN_COLUMNS = (
    "l.id, l.tablet_id, l.patient_id, l.agreement_signed_at, l.agreement_witnessed_by, l.accessories, "
    "l.expected_return_on, l.loaned_at, l.loaned_by, l.ended_at, l.end_kind, l.return_channel, "
    "l.missing_accessories, l.inactive_reported_since, l.inactive_reason, l.return_condition, l.return_condition_note, "
    "l.damage_checked_at, l.damage_checked_by, l.damage_check"
)


class DuplicateSerial(Exception):
    pass


async def insert_tablet(
    conn: asyncpg.Connection,
    *,
    tablet_id: UUID,
    serial_number: str,
    model: str,
    accessories: Sequence[tuple[str, str | None]],
    by: str,
    at: datetime,
) -> None:
    try:
        await conn.execute(
            "INSERT INTO tablets (id, serial_number, model, state, registered_at, registered_by, state_changed_at) "
            "VALUES ($1, $2, $3, 'pending_provisioning', $4, $5, $4)",
            tablet_id,
            serial_number,
            model,
            at,
            by,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateSerial(serial_number) from None
    if accessories:
        await conn.execute(
            "INSERT INTO accessories (tablet_id, kind, serial_number) SELECT $1, * FROM unnest($2::text[], $3::text[])",
            tablet_id,
            [kind for kind, _ in accessories],
            [serial for _, serial in accessories],
        )


async def lock_tablet(conn: asyncpg.Connection, tablet_id: UUID) -> asyncpg.Record | None:
    """The tablet's row, locked until the end of the transaction: requests on one tablet take turns."""
    return await conn.fetchrow(f"SELECT {TABLET_COLUMNS} FROM tablets t WHERE t.id = $1 FOR UPDATE", tablet_id)


async def record_transition(
    conn: asyncpg.Connection,
    tablet_id: UUID,
    *,
    action: str,
    from_state: str,
    to_state: str,
    by: str,
    at: datetime,
    reason: str | None,
) -> None:
    await conn.execute(
        "WITH moved AS (UPDATE tablets SET state = $4, state_changed_at = $6 WHERE id = $1) "
        "INSERT INTO transitions (tablet_id, action, from_state, to_state, at, by_staff, reason) "
        "VALUES ($1, $2, $3, $4, $6, $5, $7)",
        tablet_id,
        action,
        from_state,
        to_state,
        by,
        at,
        reason,
    )


async def record_damage_check(conn: asyncpg.Connection, tablet_id: UUID, *, how: str, by: str, at: datetime) -> None:
    """On the tablet's last loan (the damaged return being looked at): how, by whom, when."""
    await conn.execute(
        "UPDATE loans SET damage_check = $2, damage_checked_by = $3, damage_checked_at = $4 WHERE id = "
        "(SELECT id FROM loans WHERE tablet_id = $1 ORDER BY loaned_at DESC LIMIT 1)",
        tablet_id,
        how,
        by,
        at,
    )


async def registered_accessories(conn: asyncpg.Connection, tablet_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT kind, serial_number FROM accessories WHERE tablet_id = $1 ORDER BY kind", tablet_id)


async def insert_loan(
    conn: asyncpg.Connection,
    *,
    loan_id: UUID,
    tablet_id: UUID,
    patient_id: UUID,
    token_id: str,
    agreement_signed_at: datetime,
    agreement_witnessed_by: str,
    accessories: Sequence[str],
    expected_return_on: date,
    at: datetime,
    by: str,
) -> None:
    await conn.execute(
        "INSERT INTO loans (id, tablet_id, patient_id, token_id, agreement_signed_at, agreement_witnessed_by, "
        "accessories, expected_return_on, loaned_at, loaned_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        loan_id,
        tablet_id,
        patient_id,
        token_id,
        agreement_signed_at,
        agreement_witnessed_by,
        list(accessories),
        expected_return_on,
        at,
        by,
    )


async def open_loan(conn: asyncpg.Connection, tablet_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {LOAN_COLUMNS}, l.token_id FROM loans l WHERE l.tablet_id = $1 AND l.ended_at IS NULL", tablet_id
    )


async def end_loan(
    conn: asyncpg.Connection,
    loan_id: UUID,
    *,
    kind: str,
    at: datetime,
    channel: str | None = None,
    missing: Sequence[str] = (),
    condition: str | None = None,
    condition_note: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE loans SET ended_at = $2, end_kind = $3, return_channel = $4, missing_accessories = $5, "
        "return_condition = $6, return_condition_note = $7 WHERE id = $1",
        loan_id,
        at,
        kind,
        channel,
        list(missing),
        condition,
        condition_note,
    )


async def get_loan(conn: asyncpg.Connection, loan_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {LOAN_COLUMNS} FROM loans l WHERE l.id = $1", loan_id)


async def accessories_came_back(conn: asyncpg.Connection, loan_id: UUID, kinds: Sequence[str]) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE loans l SET missing_accessories = ARRAY(SELECT unnest(l.missing_accessories) EXCEPT "
        f"SELECT unnest($2::text[]) ORDER BY 1) WHERE l.id = $1 RETURNING {LOAN_COLUMNS}",
        loan_id,
        list(kinds),
    )


async def back_in_hand_since(conn: asyncpg.Connection, tablet_id: UUID) -> datetime | None:
    """Since when the fleet has had the tablet back from where it needs a wipe: the end of its last loan (its
    return, or its loss), or its last report as lost or stolen, or its last trip to repair."""
    return await conn.fetchval(
        "SELECT greatest((SELECT max(ended_at) FROM loans WHERE tablet_id = $1), "
        "(SELECT max(at) FROM transitions WHERE tablet_id = $1 AND to_state IN ('lost', 'stolen', 'in_repair')))",
        tablet_id,
    )


async def insert_wipe(
    conn: asyncpg.Connection, tablet_id: UUID, *, method: str, proof: str, at: datetime, by: str
) -> None:
    await conn.execute(
        "INSERT INTO wipes (tablet_id, method, proof, wiped_at, wiped_by) VALUES ($1, $2, $3, $4, $5)",
        tablet_id,
        method,
        proof,
        at,
        by,
    )


async def loan_for_receipt(conn: asyncpg.Connection, loan_id: UUID) -> asyncpg.Record | None:
    """A loan with its tablet's serial number and model, and when the tablet was next loaned (null: not since)."""
    return await conn.fetchrow(
        f"SELECT {LOAN_COLUMNS}, t.serial_number, t.model, "
        "(SELECT min(n.loaned_at) FROM loans n WHERE n.tablet_id = l.tablet_id AND n.loaned_at > l.loaned_at) "
        "AS next_loaned_at FROM loans l JOIN tablets t ON t.id = l.tablet_id WHERE l.id = $1",
        loan_id,
    )


async def wipes_since(conn: asyncpg.Connection, tablet_id: UUID, since: datetime) -> list[asyncpg.Record]:
    """The tablet's wipes dated from ``since`` on, oldest first, each with its author's known display name."""
    return await conn.fetch(
        "SELECT w.method, w.proof, w.wiped_at, w.wiped_by, s.display_name AS wiped_by_name "
        "FROM wipes w LEFT JOIN staff s ON s.id = w.wiped_by WHERE w.tablet_id = $1 AND w.wiped_at >= $2 "
        "ORDER BY w.wiped_at, w.id",
        tablet_id,
        since,
    )


async def get_tablet(conn: asyncpg.Connection, tablet_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {TABLET_COLUMNS} FROM tablets t WHERE t.id = $1", tablet_id)


async def list_tablets(
    conn: asyncpg.Connection, *, states: Sequence[str] | None, serial: str | None = None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {TABLET_COLUMNS}, l.id AS loan_id, l.patient_id, l.expected_return_on, l.loaned_at, "
        "l.missing_accessories, l.inactive_reported_since, l.inactive_reason "
        "FROM tablets t LEFT JOIN loans l ON l.tablet_id = t.id AND l.ended_at IS NULL "
        "WHERE ($1::text[] IS NULL OR t.state = ANY($1)) AND ($4::text IS NULL OR t.serial_number = $4) "
        "ORDER BY t.serial_number LIMIT $2 OFFSET $3",
        list(states) if states else None,
        limit,
        offset,
        serial,
    )


async def history(conn: asyncpg.Connection, tablet_id: UUID) -> dict[str, list[asyncpg.Record]]:
    return {
        "transitions": await conn.fetch(
            "SELECT action, from_state, to_state, at, by_staff, reason FROM transitions WHERE tablet_id = $1 "
            "ORDER BY id",
            tablet_id,
        ),
        "loans": await conn.fetch(
            f"SELECT {LOAN_COLUMNS} FROM loans l WHERE l.tablet_id = $1 ORDER BY l.loaned_at DESC", tablet_id
        ),
        "wipes": await conn.fetch(
            "SELECT method, proof, wiped_at, wiped_by FROM wipes WHERE tablet_id = $1 ORDER BY wiped_at DESC",
            tablet_id,
        ),
        "accessories": await registered_accessories(conn, tablet_id),
    }


@dataclass(frozen=True)
class HeartbeatRow:
    tablet_id: UUID
    token_id: str
    sent_at: datetime
    received_at: datetime
    battery_percent: int
    app_version: str
    last_used_at: datetime | None


async def record_heartbeats(conn: asyncpg.Connection, rows: Sequence[HeartbeatRow]) -> set[str]:
    """Record the heartbeats of tablets on an open loan under that loan's token; returns the token ids
    that were recognised (any other heartbeat is refused: its loan ended, or it was never issued here).

    A retried heartbeat (same tablet, same ``sent_at``) is recorded once; the tablet keeps its latest.
    """
    recognised = await conn.fetch(
        "WITH incoming AS ("
        "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], "
        "                       $6::text[], $7::timestamptz[]) "
        "  AS h(tablet_id, token_id, sent_at, received_at, battery_percent, app_version, last_used_at)"
        "), valid AS ("
        "  SELECT h.* FROM incoming h JOIN loans l ON l.token_id = h.token_id AND l.tablet_id = h.tablet_id "
        "  AND l.ended_at IS NULL"
        "), stored AS ("
        "  INSERT INTO heartbeats (tablet_id, sent_at, received_at, battery_percent, app_version, last_used_at) "
        "  SELECT tablet_id, sent_at, received_at, battery_percent, app_version, last_used_at FROM valid "
        "  ON CONFLICT DO NOTHING"
        "), latest AS ("
        "  SELECT DISTINCT ON (tablet_id) * FROM valid ORDER BY tablet_id, sent_at DESC"
        "), updated AS ("
        "  UPDATE tablets t SET last_seen_at = latest.received_at, battery_percent = latest.battery_percent, "
        "  app_version = latest.app_version, last_used_at = GREATEST(t.last_used_at, latest.last_used_at) "
        "  FROM latest WHERE t.id = latest.tablet_id "
        "  AND (t.last_seen_at IS NULL OR t.last_seen_at <= latest.received_at)"
        ") SELECT DISTINCT token_id FROM valid",
        *columns(rows, "tablet_id", "token_id", "sent_at", "received_at", "battery_percent", "app_version"),
        [r.last_used_at for r in rows],
    )
    return {r["token_id"] for r in recognised}


async def upsert_sessions(conn: asyncpg.Connection, plans: Sequence[SessionPlan]) -> None:
    """Each session's plan, unless the one stored was made later (``latest_plans``)."""
    await conn.execute(
        "INSERT INTO sessions (session_id, patient_id, scheduled_for, cancelled, planned_at) "
        "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bool[], $5::timestamptz[]) "
        "ON CONFLICT (session_id) DO UPDATE SET scheduled_for = EXCLUDED.scheduled_for, "
        "cancelled = EXCLUDED.cancelled, patient_id = EXCLUDED.patient_id, planned_at = EXCLUDED.planned_at "
        "WHERE sessions.planned_at <= EXCLUDED.planned_at",
        [p.session.session_id for p in plans],
        [p.session.patient_id for p in plans],
        [p.session.scheduled_for for p in plans],
        [p.session.cancelled for p in plans],
        [p.planned_at for p in plans],
    )


async def silence_candidates(conn: asyncpg.Connection, now: datetime, quiet_since: datetime) -> list[asyncpg.Record]:
    """Open loans whose tablet has been quiet since ``quiet_since`` at least, locked (skipping those another
    replica is deciding about), with the patient's next session."""
    return await conn.fetch(
        "SELECT l.id AS loan_id, l.tablet_id, l.patient_id, l.loaned_at, t.last_seen_at, "
        "l.inactive_reported_since, "
        "(SELECT min(s.scheduled_for) FROM sessions s WHERE s.patient_id = l.patient_id AND NOT s.cancelled "
        " AND s.scheduled_for >= $1) AS next_session "
        "FROM loans l JOIN tablets t ON t.id = l.tablet_id "
        "WHERE l.ended_at IS NULL AND GREATEST(l.loaned_at, coalesce(t.last_seen_at, l.loaned_at)) <= $2 "
        "FOR UPDATE OF l SKIP LOCKED",
        now,
        quiet_since,
    )


async def mark_reported(conn: asyncpg.Connection, reports: Sequence[tuple[UUID, datetime, str]]) -> None:
    await conn.execute(
        "UPDATE loans l SET inactive_reported_since = r.since, inactive_reason = r.reason "
        "FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS r(loan_id, since, reason) WHERE l.id = r.loan_id",
        [r[0] for r in reports],
        [r[1] for r in reports],
        [r[2] for r in reports],
    )


async def fleet_figures(
    conn: asyncpg.Connection, today: date, soon_days: int, period_days: int, awaiting_check: Sequence[str]
) -> dict[str, Any]:
    states = await conn.fetch("SELECT state, count(*) AS n FROM tablets GROUP BY state")
    damaged = await conn.fetchval(
        f"SELECT count(*) FROM tablets t WHERE t.state = ANY($1::text[]) AND {LAST_RETURN_DAMAGED_UNCHECKED}",
        list(awaiting_check),
    )
    loans = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE ended_at IS NULL) AS open, "
        "count(*) FILTER (WHERE ended_at IS NULL AND expected_return_on < $1) AS overdue, "
        "count(*) FILTER (WHERE ended_at IS NULL AND expected_return_on >= $1 "
        "                 AND expected_return_on < $1::date + $2::int) AS due_soon, "
        "count(*) FILTER (WHERE cardinality(missing_accessories) > 0) AS with_missing_accessories, "
        "coalesce(sum(cardinality(missing_accessories)), 0) AS missing_accessories, "
        "avg(extract(epoch FROM ended_at - loaned_at) / 86400) FILTER (WHERE ended_at IS NOT NULL) "
        "  AS mean_ended_loan_days, "
        "count(*) FILTER (WHERE ended_at IS NULL AND inactive_reported_since IS NOT NULL AND "
        "  inactive_reported_since >= (SELECT coalesce(last_seen_at, '-infinity') FROM tablets t "
        "                              WHERE t.id = loans.tablet_id)) AS silent "
        "FROM loans",
        today,
        soon_days,
    )
    # Loaned days within the period, against the days the fleet (not retired) was available in it.
    usage = await conn.fetchrow(
        "WITH period AS (SELECT ($1::date - $2::int)::timestamptz AS start, $1::date::timestamptz + interval '1 day' "
        "  AS stop) "
        "SELECT coalesce(sum(extract(epoch FROM LEAST(coalesce(l.ended_at, p.stop), p.stop) "
        "       - GREATEST(l.loaned_at, p.start)) / 86400) FILTER (WHERE l.loaned_at < p.stop "
        "       AND coalesce(l.ended_at, p.stop) > p.start), 0) AS loaned_days, "
        "  (SELECT count(*) FROM tablets WHERE state <> 'retired') * $2::int AS available_days "
        "FROM period p LEFT JOIN loans l ON true GROUP BY p.start, p.stop",
        today,
        period_days,
    )
    return {
        "states": {r["state"]: r["n"] for r in states},
        "loans": dict(loans),
        "usage": dict(usage),
        "damaged_to_check": damaged,
    }


async def loans_needing_attention(conn: asyncpg.Connection, today: date, soon_days: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {LOAN_COLUMNS}, t.serial_number, t.last_seen_at FROM loans l JOIN tablets t ON t.id = l.tablet_id "
        "WHERE (l.ended_at IS NULL "
        "       AND (l.expected_return_on < $1::date + $2::int "
        # Silent now: reported, and not seen since (a heartbeat ends a silence without clearing its report).
        "            OR l.inactive_reported_since >= coalesce(t.last_seen_at, '-infinity'))) "
        "OR cardinality(l.missing_accessories) > 0 ORDER BY l.expected_return_on",
        today,
        soon_days,
    )


async def purge_heartbeats(conn: asyncpg.Connection, keep_days: int) -> int:
    # PostgreSQL's now(), not the service's clock the heartbeats are received by: keeping the table small is the
    # disk's business, by the real time, as the shared housekeeping's purges.
    status = await conn.execute(
        "DELETE FROM heartbeats WHERE received_at < now() - make_interval(days => $1)", keep_days
    )
    return int(status.split()[-1])


# --- Enrolment codes -----------------------------------------------------------------------------------------------


async def put_enrolment_code(
    conn: asyncpg.Connection, loan_id: UUID, *, code_hash: bytes, at: datetime, by: str, expires_at: datetime
) -> None:
    """The loan's one live code: a new one replaces the last (which is then unknown), used or not."""
    await conn.execute(
        "INSERT INTO enrolment_codes (loan_id, code_hash, made_at, made_by, expires_at) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (loan_id) DO UPDATE SET code_hash = EXCLUDED.code_hash, made_at = EXCLUDED.made_at, "
        "made_by = EXCLUDED.made_by, expires_at = EXCLUDED.expires_at, used_at = NULL, used_key_hash = NULL",
        loan_id,
        code_hash,
        at,
        by,
        expires_at,
    )


async def lock_enrolment_code(conn: asyncpg.Connection, code_hash: bytes) -> asyncpg.Record | None:
    """The code and its loan, locked: two tablets racing with one code are served one after the other."""
    return await conn.fetchrow(
        "SELECT c.loan_id, c.expires_at, c.used_at, c.used_key_hash, l.tablet_id, l.patient_id, l.token_id, "
        "l.loaned_at, l.expected_return_on, l.ended_at "
        "FROM enrolment_codes c JOIN loans l ON l.id = c.loan_id WHERE c.code_hash = $1 FOR UPDATE OF c",
        code_hash,
    )


async def spend_enrolment_code(conn: asyncpg.Connection, loan_id: UUID, *, at: datetime, key_hash: bytes) -> None:
    await conn.execute(
        "UPDATE enrolment_codes SET used_at = $2, used_key_hash = $3 WHERE loan_id = $1", loan_id, at, key_hash
    )
