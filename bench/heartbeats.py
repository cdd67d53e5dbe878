#!/usr/bin/env python3
"""Open-loop benchmark of the heartbeat path: POST /v1/heartbeats → 204, on ONE devices service process.

    python bench/heartbeats.py                                    # its own NATS, PostgreSQL and devices service
    python bench/heartbeats.py --rates 500 --duration 3           # a quick smoke run
    python bench/heartbeats.py --devices-url http://127.0.0.1:8004 \\
        --database-url postgresql://…                             # against `make run`

It creates a fleet of ``--tablets`` tablets, each on an open loan, directly in the ``devices`` schema (one
set-wise INSERT each for tablets and loans), with a device token per loan whose ``jti`` is the loan's
``token_id``. Then, for each offered rate, request k is due at t0 + k/rate whatever the responses (open loop,
latency measured from the due time, as in bench/submissions.py): a random tablet of the fleet, its token, and a
new ``sent_at``. The HTTP load comes from ``--workers`` separate processes, each with a callback-based HTTP/1.1
keep-alive client (an asyncio.Protocol on uvloop, pre-encoded requests, no task per request). After each rate
and at the end it counts the heartbeat rows of the fleet in PostgreSQL: rows == 204s (nothing lost, nothing
twice). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))  # `common` beside it, when imported from elsewhere

import common  # noqa: E402
import orjson  # noqa: E402
from common import STATUS_CONN_ERROR, STATUS_TIMEOUT, fmt, summary_ms  # noqa: E402

from shared.auth import TokenService  # noqa: E402

HEARTBEATS_PATH = "/v1/heartbeats"
SCHEMA = "devices"
OUTCOMES = {STATUS_TIMEOUT: "timeout", STATUS_CONN_ERROR: "connection error"}
MAX_TABLETS = 1_000_000
MACHINE = "whole machine"
OTHERS = "other processes"


# --------------------------------------------------------------------------------------------------
# The load generator (runs in worker processes: `heartbeats.py --worker PLAN_JSON`)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatPlan(common.LoadPlan):
    phase: int
    fleet_path: str  # JSON list of device tokens
    seed: int
    sent_at_epoch: float  # wall clock of request 0's sent_at; request k's is this + k/rate


def sent_at_of(plan: HeartbeatPlan, k: int) -> datetime:
    """Request k's sent_at: strictly increasing with k and from one phase to the next, so no two requests
    carry the same (tablet, sent_at) and every 204 must be its own row."""
    return datetime.fromtimestamp(plan.sent_at_epoch + k / plan.rate, UTC)


def build_requests(plan: HeartbeatPlan) -> tuple[list[tuple[float, bytes]], list[int]]:
    """(due offset in s, raw HTTP/1.1 request) for a random tablet of the fleet and a new sent_at each,
    and the index of each request's tablet in the fleet. The warm-up (phase 0) takes the tablets in a random
    order, each once before any twice, so that the service has seen every token (its verified-token cache)."""
    tokens: list[str] = orjson.loads(Path(plan.fleet_path).read_bytes())
    rng = random.Random(f"{plan.seed}-{plan.phase}-{plan.index}")
    order = list(range(len(tokens)))
    random.Random(f"{plan.seed}-fleet").shuffle(order)  # the same in every worker
    host = f"{plan.host}:{plan.port}"
    heads: dict[int, str] = {}
    requests: list[tuple[float, bytes]] = []
    tablets: list[int] = []
    for k in range(plan.index, plan.count, plan.workers):
        tablet = order[k % len(order)] if plan.phase == 0 else rng.randrange(len(tokens))
        tablets.append(tablet)
        head = heads.get(tablet)
        if head is None:
            head = heads[tablet] = (
                f"POST {HEARTBEATS_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {tokens[tablet]}\r\n"
                "Content-Type: application/json\r\nContent-Length: "
            )
        sent_at = sent_at_of(plan, k)
        reading: dict[str, Any] = {"battery_percent": rng.randrange(101), "app_version": "1.4.2", "sent_at": sent_at}
        if k % 2:
            reading["last_used_at"] = sent_at - timedelta(minutes=rng.randrange(1, 600))
        body = orjson.dumps(reading)
        requests.append((k / plan.rate, f"{head}{len(body)}\r\n\r\n".encode() + body))
    return requests, tablets


async def drive(plan: HeartbeatPlan, requests: list[tuple[float, bytes]], t0: float) -> dict[str, Any]:
    return await common.drive_open_loop(plan, requests, t0)


def worker_main(plan_json: str) -> int:
    """READY on stdout once the requests are built; t0 on stdin; the results as one JSON document."""
    try:
        plan = HeartbeatPlan(**orjson.loads(plan_json))
        requests, tablets = build_requests(plan)
        t0 = common.worker_start()
        if t0 is None:
            return 2  # the coordinator went away
        result = common.run_event_loop(drive(plan, requests, t0))
        result["tablet"] = tablets
        common.write_stdout(orjson.dumps(result))
        return 0
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------------------------------
# The system under test: embedded servers and the devices process, or running ones
# --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Target(common.SystemUnderTest):
    devices_url: str
    database_url: str


def start_embedded(
    stack: contextlib.ExitStack, workdir: Path, extra_env: dict[str, str], log_dir: Path | None, processes: int
) -> Target:
    print(f"starting NATS, PostgreSQL and the devices service in {workdir} …", file=sys.stderr, flush=True)
    servers = common.start_embedded_services(stack, workdir, extra_env, log_dir, {SCHEMA: processes})
    return Target(
        devices_url=servers.services[0].url,
        database_url=servers.database_url,
        description=(
            common.EMBEDDED_SERVERS
            + f"+ devices service, {processes} uvicorn process(es) ({common.UVICORN_FLAGS})"
            + (f", env {extra_env}" if extra_env else "")
        ),
        cpu=servers.cpu,
        services=servers.services,
    )


def use_running(args: argparse.Namespace) -> Target:
    url = args.devices_url.rstrip("/")
    if not common.http_ready(url):
        raise SystemExit(f"the devices service at {url} does not answer /readyz with 200")
    return Target(
        devices_url=url, database_url=args.database_url, description=f"running: {url}", cpu=common.CpuTracker()
    )


def cpu_snapshot(target: Target) -> dict[str, float]:
    return {**target.cpu.snapshot(), MACHINE: common.machine_busy_s() or 0.0}


# --------------------------------------------------------------------------------------------------
# The fleet and the rows
# --------------------------------------------------------------------------------------------------


async def create_fleet(
    database_url: str, count: int, tokens: TokenService, serial_prefix: str
) -> tuple[list[uuid.UUID], list[str]]:
    """``count`` loaned tablets, each with an open loan whose token_id is the jti of its token: (ids, tokens)."""
    import asyncpg

    tablets = [uuid.uuid4() for _ in range(count)]
    patients = [uuid.uuid4() for _ in range(count)]
    pairs = zip(tablets, patients, strict=True)
    issued = [tokens.issue_device_token(patient, str(tablet)) for tablet, patient in pairs]
    token_ids = [tokens.verify(token).token_id for token in issued]
    now = datetime.now(UTC)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO {SCHEMA}.tablets (id, serial_number, model, state, registered_at, registered_by, "
                "state_changed_at) SELECT id, $2 || lpad(n::text, 7, '0'), 'Bench Tab', 'loaned', $3, 'bench', $3 "
                "FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)",
                tablets,
                serial_prefix,
                now,
            )
            await conn.execute(
                f"INSERT INTO {SCHEMA}.loans (id, tablet_id, patient_id, token_id, agreement_signed_at, "
                "agreement_witnessed_by, accessories, expected_return_on, loaned_at, loaned_by) "
                "SELECT gen_random_uuid(), t, p, j, $4, 'bench', '{}', $5, $4, 'bench' "
                "FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS l(t, p, j)",
                tablets,
                patients,
                token_ids,
                now,
                (now + timedelta(days=365)).date(),
            )
        await conn.execute(f"ANALYZE {SCHEMA}.tablets, {SCHEMA}.loans")
    finally:
        await conn.close()
    return tablets, issued


class Ledger:
    """The heartbeat rows of this run's fleet, the database's commits, and what each request got."""

    def __init__(self, database_url: str, serial_prefix: str, tablets: list[uuid.UUID]) -> None:
        self.database_url = database_url
        self.serial_prefix = serial_prefix
        self.tablets = tablets
        # (tablet id, sent_at, outcome) of every request sent: outcome "204", another status, "timeout"…
        self.sent: tuple[list[uuid.UUID], list[datetime], list[str]] = ([], [], [])
        self._conn: Any = None

    async def open(self) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.database_url)

    async def rows(self) -> int:
        return int(
            await self._conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.heartbeats h JOIN {SCHEMA}.tablets t ON t.id = h.tablet_id "
                "WHERE t.serial_number LIKE $1 || '%'",
                self.serial_prefix,
            )
        )

    async def commits(self) -> int:
        # Cumulative statistics are flushed at most once a second: read them after a pause.
        await self._conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await self._conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        )

    def record(self, plan: HeartbeatPlan, part: dict[str, Any]) -> None:
        ids, sent_ats, outcomes = self.sent
        for j, (tablet, status) in enumerate(zip(part["tablet"], part["status"], strict=True)):
            ids.append(self.tablets[tablet])
            sent_ats.append(sent_at_of(plan, plan.index + j * plan.workers))
            outcomes.append(OUTCOMES.get(status, str(status)))

    async def verify(self) -> dict[str, Any]:
        """Each request's (tablet, sent_at) looked up in heartbeats: every 204 has its row, no other HTTP
        answer has one, and the fleet has no row beyond those (the primary key forbids a row twice)."""
        found = await self._conn.fetch(
            f"SELECT o.outcome, count(*) AS requests, count(h.tablet_id) AS rows "
            f"FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS o(tablet_id, sent_at, outcome) "
            f"LEFT JOIN {SCHEMA}.heartbeats h ON h.tablet_id = o.tablet_id AND h.sent_at = o.sent_at "
            "GROUP BY o.outcome ORDER BY o.outcome",
            *self.sent,
        )
        by_outcome = {r["outcome"]: {"requests": r["requests"], "rows": r["rows"]} for r in found}
        rows = await self.rows()
        matched = sum(v["rows"] for v in by_outcome.values())
        ok = by_outcome.get("204", {"requests": 0, "rows": 0})
        lost = ok["requests"] - ok["rows"]
        refused_with_row = sum(v["rows"] for o, v in by_outcome.items() if o.isdigit() and o != "204")
        return {
            "heartbeat_rows": rows,
            "responses_204": ok["requests"],
            "lost_204s": lost,
            "rows_of_refused_requests": refused_with_row,
            "rows_of_unanswered_requests": sum(v["rows"] for o, v in by_outcome.items() if not o.isdigit()),
            "rows_matching_no_request": rows - matched,
            "by_outcome": by_outcome,
            "verified": lost == 0 and refused_with_row == 0 and rows == matched,
        }

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


# --------------------------------------------------------------------------------------------------
# The coordinator
# --------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    workers: int
    connections: int
    timeout_s: float
    seed: int
    fleet_path: Path


async def _load(
    target: Target, settings: Settings, phase: int, rate: float, duration: float
) -> tuple[float, list[HeartbeatPlan], list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Run the worker processes over one phase: (t0, their results, CPU snapshots at start and load end)."""
    plans = common.load_plans(
        HeartbeatPlan,
        target.devices_url,
        "--devices-url",
        rate,
        duration,
        settings,
        phase=phase,
        fleet_path=str(settings.fleet_path),
        seed=settings.seed,
        sent_at_epoch=time.time(),
    )
    t0, parts, cpu_marks = await common.run_workers(SCRIPT, plans, lambda: cpu_snapshot(target))
    return t0, plans, parts, cpu_marks


async def run_phase(
    target: Target, ledger: Ledger, settings: Settings, phase: int, rate: float, duration: float
) -> dict[str, Any]:
    rows_before, commits_before = await ledger.rows(), await ledger.commits()
    t0, plans, parts, cpu_marks = await _load(target, settings, phase, rate, duration)
    await asyncio.sleep(1.1)  # a timed-out request may still commit; statistics are flushed once a second
    rows_after, commits_after = await ledger.rows(), await ledger.commits()
    cpu_marks["settled"] = cpu_snapshot(target)

    statuses: list[int] = []
    latencies: list[float] = []
    seconds = [Counter[int]() for _ in range(math.ceil(duration))]  # statuses by second of due time
    latencies_by_second: list[list[float]] = [[] for _ in seconds]
    last_204 = t0
    for plan, part in zip(plans, parts, strict=True):
        ledger.record(plan, part)
        statuses += part["status"]
        for j, (status, latency) in enumerate(zip(part["status"], part["latency"], strict=True)):
            due = (plan.index + j * plan.workers) / rate
            second = min(int(due), len(seconds) - 1)
            seconds[second][status] += 1
            if status == 204:
                latencies.append(latency)
                latencies_by_second[second].append(latency)
                last_204 = max(last_204, t0 + due + latency)
    timeline = [
        {"second": i, "requests": sum(c.values()), "accepted_204": c.get(204, 0), **summary_ms(latencies_by_second[i])}
        for i, c in enumerate(seconds)
    ]
    counts = Counter(statuses)
    accepted = counts.get(204, 0)
    non_204 = {str(code): n for code, n in sorted(counts.items()) if code > 0 and code != 204}
    load_window = cpu_marks["load_end"]
    generator_window = sum(p["cpu_window_s"] for p in parts)
    generator_total = sum(p["cpu_total_s"] for p in parts)
    cpu_load_pct = common.cpu_percent(cpu_marks["start"], load_window, duration, skip=MACHINE)
    cpu_load_pct["load generator"] = round(100.0 * generator_window / duration, 1)
    machine_pct = 100.0 * (load_window[MACHINE] - cpu_marks["start"][MACHINE]) / duration
    # Everything else on the machine (other people's work, the kernel): results with much here are noisy.
    cpu_load_pct[OTHERS] = round(max(0.0, machine_pct - sum(cpu_load_pct.values())), 1)
    cpu_ms_per_heartbeat = common.cpu_ms_per(cpu_marks["start"], cpu_marks["settled"], accepted, skip=MACHINE)
    cpu_ms_per_heartbeat["load generator"] = round(1000.0 * generator_total / max(1, len(statuses)), 3)
    commits = commits_after - commits_before
    rows = rows_after - rows_before
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "requests": len(statuses),
        "accepted_204": accepted,
        "achieved_rps": round(accepted / max(duration, last_204 - t0), 1),
        "non_204": sum(non_204.values()),
        "non_204_by_status": non_204,
        "timeouts": counts.get(STATUS_TIMEOUT, 0),
        "connection_errors": counts.get(STATUS_CONN_ERROR, 0),
        "connection_error_kinds": dict(sum((Counter(p["connection_error_kinds"]) for p in parts), Counter())),
        "latency_204_ms": summary_ms(latencies),
        "generator_lag_ms": summary_ms([lag for p in parts for lag in p["start_lag"] if lag >= 0]),
        "wait_to_send_ms": summary_ms([lag for p in parts for lag in p["send_lag"] if lag >= 0]),
        "connections_opened": sum(p["connections_opened"] for p in parts),
        "retried_on_stale_connection": sum(p["retried_on_stale_connection"] for p in parts),
        "rows_written": rows,
        "rows_minus_204": rows - accepted,
        "db_commits_approx": commits,
        "rows_per_commit_approx": round(rows / commits, 1) if commits > 0 else None,
        "cpu_percent_during_load": cpu_load_pct,
        "cpu_ms_per_heartbeat": cpu_ms_per_heartbeat,
        "timeline_1s": timeline,  # by second of due time: requests, 204s and their latency (ms)
    }


async def run_all(target: Target, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    tokens = TokenService(args.auth_secret, args.auth_issuer, args.auth_audience)
    serial_prefix = f"HBB-{uuid.uuid4().hex[:8].upper()}-"  # serial numbers are kept in upper case
    print(f"creating {args.tablets} tablets on open loans ({serial_prefix}*) …", file=sys.stderr, flush=True)
    started = time.monotonic()
    tablets, issued = await create_fleet(target.database_url, args.tablets, tokens, serial_prefix)
    settings.fleet_path.write_bytes(orjson.dumps(issued))
    fleet_s = round(time.monotonic() - started, 1)
    print(f"  fleet ready in {fleet_s}s", file=sys.stderr, flush=True)
    ledger = Ledger(target.database_url, serial_prefix, tablets)
    await ledger.open()
    try:
        results = await common.warmup_and_rates(
            args,
            lambda phase, rate, duration: run_phase(target, ledger, settings, phase, rate, duration),
            _one_line,
            target.check_alive,
        )
        await asyncio.sleep(1.0)  # the service may still be writing heartbeats whose requests timed out
        verification = await ledger.verify()
    finally:
        await ledger.close()
    return {
        "fleet": {"tablets": args.tablets, "serial_prefix": serial_prefix, "created_in_s": fleet_s},
        "results": results,
        "verification": verification,
    }


def _one_line(r: dict[str, Any]) -> str:
    return (
        f"{r['accepted_204']}/{r['requests']} → 204 ({r['achieved_rps']}/s), "
        f"p50 {fmt(r['latency_204_ms']['p50'])} / p99 {fmt(r['latency_204_ms']['p99'])} ms, "
        f"non-204 {r['non_204_by_status'] or 0}, timeouts {r['timeouts']}, conn. errors {r['connection_errors']}, "
        f"rows {r['rows_written']}, ≈{r['rows_per_commit_approx']} rows/commit"
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    c = report["config"]
    v = report["verification"]
    lines = [
        *common.report_intro(report, "Heartbeats"),
        f"- fleet: {report['fleet']['tablets']} tablets on open loans; each request a random one, a new sent_at",
        f"- load: open loop, {c['duration_s']:g}s per rate after a {c['warmup_s']:g}s warm-up at "
        f"{c['warmup_rate']:g}/s (the tablets in turn); {c['workers']} load process(es), "
        f"≤{c['connections']} keep-alive connections, timeout {c['timeout_s']:g}s from the due time",
        "- latencies in ms from each request's scheduled send time to the whole 204 read",
        "",
        "| offered/s | achieved 204/s | p50 | p95 | p99 | max | non-204 | timeouts | conn. errors "
        "| rows written | rows − 204s | rows/commit ≈ | gen. lag p99 | wait to send p99 |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lat = r["latency_204_ms"]
        by_status = ", ".join(f"{n}×{code}" for code, n in r["non_204_by_status"].items()) or "0"
        per_commit = r["rows_per_commit_approx"]
        lines.append(
            f"| {r['offered_rate']:g} | {r['achieved_rps']:g} | {fmt(lat['p50'])} | {fmt(lat['p95'])} "
            f"| {fmt(lat['p99'])} | {fmt(lat['max'])} | {by_status} | {r['timeouts']} | {r['connection_errors']} "
            f"| {r['rows_written']} | {r['rows_minus_204']} | {'–' if per_commit is None else per_commit} "
            f"| {fmt(r['generator_lag_ms']['p99'])} | {fmt(r['wait_to_send_ms']['p99'])} |"
        )
    lines += common.cpu_table(
        report["results"],
        "CPU during the load window, % of one core (the machine has "
        f"{100 * (m['usable_cpus'] or 1)}%; {OTHERS}: the rest of the machine's busy time, from /proc/stat), "
        "and CPU ms per 204 (load generator: per request):",
        per=("cpu_ms_per_heartbeat", "ms/hb", 3),
    )
    unanswered = sum(n["requests"] for o, n in v["by_outcome"].items() if not o.isdigit())
    lines += [
        "",
        f"Verification in SQL (warm-up included): {v['heartbeat_rows']} heartbeat rows for the fleet; "
        f"{v['responses_204']} responses 204, of which {v['lost_204s']} without their row; "
        f"{v['rows_of_refused_requests']} rows for requests refused with another status; "
        f"{v['rows_of_unanswered_requests']} rows for the {unanswered} requests without an answer (timeouts "
        f"and connection errors: written after the client gave up, or never); {v['rows_matching_no_request']} rows "
        "matching no request. "
        + ("OK: nothing lost, nothing twice." if v["verified"] else "FAILED: see the figures above."),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = common.rates_parser(__doc__, "1000,2000,3000,4000")
    p.add_argument("--tablets", type=int, default=10_000, help="tablets on open loans in the fleet (default 10000)")
    p.add_argument(
        "--warmup",
        type=float,
        help="seconds of warm-up, not reported (default: one heartbeat per tablet at --warmup-rate); 0: none",
    )
    p.add_argument("--warmup-rate", type=float, default=1000.0, help="warm-up rate (default 1000/s)")
    p.add_argument("--workers", type=int, default=1, help="load-generating processes (default 1)")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections, all workers (default 256)")
    p.add_argument("--timeout", type=float, default=10.0, help="request timeout from its due time (default 10s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the tablet choice and readings (default 1)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--log-dir", type=Path, help="keep the embedded service's log here (default: a temp dir)")
    p.add_argument("--devices-url", help="use a running devices service (e.g. http://127.0.0.1:8004)")
    p.add_argument("--database-url", help="the PostgreSQL DSN that running service uses (the fleet is written there)")
    common.add_service_env_arg(p, "extra environment for the embedded service (e.g. DB_POOL_MAX=20); repeatable")
    p.add_argument("--devices-processes", type=int, default=1, help="uvicorn --workers for devices (default 1)")
    common.add_auth_args(p)
    args = p.parse_args(argv)
    if bool(args.devices_url) != bool(args.database_url):
        p.error("--devices-url and --database-url go together")
    if not 1 <= args.tablets <= MAX_TABLETS:
        p.error(f"--tablets is in 1..{MAX_TABLETS}")
    if not 0 < args.warmup_rate <= common.MAX_RATE:
        p.error(f"--warmup-rate is in (0, {common.MAX_RATE:g}]")
    if args.warmup is None:
        args.warmup = args.tablets / args.warmup_rate
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 600:
        p.error("--duration is in (0, 600], --warmup in [0, 600]")
    if not 1 <= args.workers <= 16 or not 1 <= args.connections <= 10_000 or not 1 <= args.devices_processes <= 16:
        p.error("--workers and --devices-processes are in 1..16, --connections in 1..10000")
    if not 0 < args.timeout <= 120:
        p.error("--timeout is in (0, 120]")
    if args.devices_url:
        common.require_loopback(args.devices_url, "--devices-url")
    return args


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return worker_main(argv[1])
    args = parse_args(argv)
    started = common.begin()
    target: Target | None = None
    try:
        with contextlib.ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oncofollow-bench-hb-")))
            settings = Settings(
                workers=args.workers,
                connections=args.connections,
                timeout_s=args.timeout,
                seed=args.seed,
                fleet_path=workdir / "fleet-tokens.json",
            )
            if args.devices_url:
                target = use_running(args)
            else:
                target = start_embedded(stack, workdir, dict(args.service_env), args.log_dir, args.devices_processes)
            outcome = asyncio.run(run_all(target, args, settings))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the load, the service and the servers", file=sys.stderr)
        return 130
    report = {
        **common.report_head("heartbeats", started),
        "config": {
            "target": target.description,
            **common.load_config(args),
            "seed": args.seed,
            "devices_processes": args.devices_processes,
            "payload": "a random tablet of the fleet, its device token, a new sent_at; last_used_at on odd k",
        },
        **outcome,
    }
    common.emit(report, markdown(report), args.json)
    return 0 if outcome["verification"]["verified"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
