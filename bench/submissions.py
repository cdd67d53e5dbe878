#!/usr/bin/env python3
"""Open-loop benchmark of the submission path: POST /v1/submissions → 202, and → ``alert.raised``.

    python bench/submissions.py                                   # its own NATS, PostgreSQL and services
    python bench/submissions.py --rates 100 --duration 3          # a quick smoke run
    python bench/submissions.py --questionnaire-url http://127.0.0.1:8001 \\
        --alerting-url http://127.0.0.1:8002 --nats-url nats://127.0.0.1:4222    # against `make run`

Requests follow a fixed timetable (request k is due at t0 + k/rate) whatever the responses, and every
latency is measured from that due time, so a slow server cannot slow the load down (no coordinated
omission). The HTTP load comes from separate worker processes (``--workers``) with a small HTTP/1.1
keep-alive client (callbacks on an asyncio.Protocol: ``common.LoadClient``); this process only subscribes
to ``alert.raised`` on NATS, matches ``data.submission_id`` to the ids the 202s returned, and samples CPU
per process from /proc.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))  # `common` beside it, when imported from elsewhere

import common  # noqa: E402
import orjson  # noqa: E402
from common import STATUS_CONN_ERROR, STATUS_TIMEOUT, fmt, summary_ms  # noqa: E402

from shared.auth import TokenService  # noqa: E402
from shared.testing.fhir import RED_NAUSEA, Answer, questionnaire_response  # noqa: E402

SUBMISSIONS_PATH = "/v1/submissions"
ALERT_SUBJECT = "alert.raised"
SUBMITTED_SUBJECT = "questionnaire.submitted"
SERVICES = ("questionnaire", "alerting")
# The durable consumers downstream of a submission: the run settles when both have nothing pending.
DOWNSTREAM_CONSUMERS = (
    ("alerting", "QUESTIONNAIRES", "questionnaire.submitted"),
    ("questionnaire", "ALERTS", "submission.scored"),
)


# --------------------------------------------------------------------------------------------------
# The load generator (runs in worker processes: `submissions.py --worker PLAN_JSON`)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerPlan(common.LoadPlan):
    auth_secret: str
    auth_issuer: str
    auth_audience: str


def build_requests(plan: WorkerPlan) -> list[tuple[int, float, bytes]]:
    """(k, due offset in s, raw HTTP/1.1 request): a new patient, token and Idempotency-Key each."""
    tokens = TokenService(plan.auth_secret, plan.auth_issuer, plan.auth_audience)
    host = f"{plan.host}:{plan.port}"
    answers: dict[str, Answer] = dict(RED_NAUSEA)
    requests: list[tuple[int, float, bytes]] = []
    for k in range(plan.index, plan.count, plan.workers):
        patient = uuid.uuid4()
        token = tokens.issue_device_token(patient, f"bench-{patient.hex[:12]}", ttl_s=3600)
        body = orjson.dumps(questionnaire_response(answers, patient_id=patient))
        head = (
            f"POST {SUBMISSIONS_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Idempotency-Key: bench-{uuid.uuid4().hex}\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append((k, k / plan.rate, head.encode() + body))
    return requests


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time, on asyncio streams: the dashboards
    benchmark's few setup requests (the load itself goes through ``common.LoadClient``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        common.set_nodelay(writer.get_extra_info("socket"))
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; returns (status, body, connection reusable)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        reusable = b"\r\nconnection: close" not in lower
        if b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._read_chunked()
        else:
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                return status, await self.reader.read(1 << 20), False
            end = lower.index(b"\r\n", at + 2)
            body = await self.reader.readexactly(int(lower[at + 17 : end]))
        return status, body, reusable

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        for _ in range(10_000):
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size + 2))
            parts[-1] = parts[-1][:-2]
        raise ValueError("too many chunks")

    def close(self) -> None:
        self.writer.close()


async def drive(plan: WorkerPlan, requests: list[tuple[int, float, bytes]], t0: float) -> dict[str, Any]:
    """Send every request at its due time (t0 + offset, time.monotonic), whatever the responses; keep the
    submission id of each 202 (matched to the alert.raised that names it)."""
    result = await common.drive_open_loop(plan, [(offset, raw) for _, offset, raw in requests], t0, keep_bodies=True)
    ids = []
    for body in result.pop("bodies"):
        try:
            ids.append(str(orjson.loads(body)["id"]) if body else "")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ids.append("")
    return {**result, "k": [r[0] for r in requests], "ids": ids}


def worker_main(plan_json: str) -> int:
    """READY on stdout once the requests are built; t0 on stdin; the results as one JSON document."""
    try:
        plan = WorkerPlan(**orjson.loads(plan_json))
        requests = build_requests(plan)
        t0 = common.worker_start()
        if t0 is None:
            return 2  # the coordinator went away
        common.write_stdout(orjson.dumps(common.run_event_loop(drive(plan, requests, t0))))
        return 0
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------------------------------
# The system under test: embedded servers and uvicorn processes, or running ones
# --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Target(common.SystemUnderTest):
    questionnaire_url: str
    alerting_url: str
    nats_url: str


def use_running(args: argparse.Namespace) -> Target:
    for url, what in ((args.questionnaire_url, "questionnaire"), (args.alerting_url, "alerting")):
        if not common.http_ready(url.rstrip("/")):
            raise SystemExit(f"the {what} service at {url} does not answer /readyz with 200")
    return Target(
        questionnaire_url=args.questionnaire_url.rstrip("/"),
        alerting_url=args.alerting_url.rstrip("/"),
        nats_url=args.nats_url,
        description=f"running services: {args.questionnaire_url}, {args.alerting_url}, {args.nats_url}",
        cpu=common.CpuTracker(),
    )


# --------------------------------------------------------------------------------------------------
# The coordinator
# --------------------------------------------------------------------------------------------------


class AlertObserver:
    """Core NATS subscriptions on alert.raised (and, with ``stages``, questionnaire.submitted): when each
    submission's events became visible, by submission id."""

    def __init__(self, *, stages: bool = False) -> None:
        self.seen: dict[str, float] = {}  # alert.raised
        self.submitted: dict[str, float] = {}  # questionnaire.submitted, with stages
        self.unparsable = 0
        self._stages = stages
        self._nc: Any = None

    async def start(self, url: str) -> None:
        import nats

        self._nc = await nats.connect(
            servers=[url], name="bench-observer", connect_timeout=5, max_reconnect_attempts=60, reconnect_time_wait=0.5
        )
        limits = {"pending_msgs_limit": 2_000_000, "pending_bytes_limit": 1 << 30}
        await self._nc.subscribe(ALERT_SUBJECT, cb=self._recorder(self.seen), **limits)
        if self._stages:
            await self._nc.subscribe(SUBMITTED_SUBJECT, cb=self._recorder(self.submitted), **limits)
        await self._nc.flush(timeout=5)

    def _recorder(self, arrivals: dict[str, float]) -> Callable[[Any], Awaitable[None]]:
        async def on_message(msg: Any) -> None:
            at = time.monotonic()
            try:
                submission_id = orjson.loads(msg.data)["data"].get("submission_id")
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                self.unparsable += 1
                return
            if submission_id and str(submission_id) not in arrivals:
                arrivals[str(submission_id)] = at

        return on_message

    async def settled(self, limit_s: float) -> bool:
        """Wait until the consumers downstream of a submission have nothing pending (or the timeout)."""
        from nats.errors import Error as NatsError
        from nats.js.errors import NotFoundError

        from shared.messaging.topology import ConsumerSpec

        js = self._nc.jetstream(timeout=2)
        deadline = time.monotonic() + limit_s
        quiet = 0
        while time.monotonic() < deadline:
            busy = False
            for service, stream, subject in DOWNSTREAM_CONSUMERS:
                try:
                    info = await js.consumer_info(stream, ConsumerSpec(service, stream, subject).durable)
                except NotFoundError:
                    continue
                except (NatsError, TimeoutError):
                    busy = True
                    continue
                busy = busy or bool(info.num_pending) or bool(info.num_ack_pending)
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return True
            await asyncio.sleep(0.3)
        return False

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()


@dataclass
class Settings:
    workers: int
    connections: int
    timeout_s: float
    drain_timeout_s: float
    settle_timeout_s: float
    auth_secret: str
    auth_issuer: str
    auth_audience: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        return cls(
            workers=args.workers,
            connections=args.connections,
            timeout_s=args.timeout,
            drain_timeout_s=args.drain_timeout,
            settle_timeout_s=args.settle_timeout,
            auth_secret=args.auth_secret,
            auth_issuer=args.auth_issuer,
            auth_audience=args.auth_audience,
        )


async def drive_load(
    target: Target, settings: Settings, rate: float, duration: float, snapshot: Callable[[], dict[str, float]]
) -> tuple[float, list[dict[str, Any]], dict[str, dict[str, float]]]:
    """The load workers over one timetable: (t0, their results, CPU snapshots at t0 and t0 + duration)."""
    plans = common.load_plans(
        WorkerPlan,
        target.questionnaire_url,
        "--questionnaire-url",
        rate,
        duration,
        settings,
        auth_secret=settings.auth_secret,
        auth_issuer=settings.auth_issuer,
        auth_audience=settings.auth_audience,
    )
    return await common.run_workers(SCRIPT, plans, snapshot)


@dataclass
class Timetable:
    """The workers' results in the order of the timetable (request k at index k)."""

    due: list[float]  # time.monotonic
    status: list[int]
    latency: list[float]
    send_lag: list[float]
    start_lag: list[float]
    ids: list[str]

    @classmethod
    def of(cls, parts: list[dict[str, Any]], t0: float, rate: float, count: int) -> Timetable:
        unknown = [-1.0] * count
        table = cls([0.0] * count, [STATUS_TIMEOUT] * count, unknown, unknown.copy(), unknown.copy(), [""] * count)
        for part in parts:
            for j, k in enumerate(part["k"]):
                table.due[k] = t0 + k / rate
                table.status[k] = part["status"][j]
                table.latency[k] = part["latency"][j]
                table.send_lag[k] = part["send_lag"][j]
                table.start_lag[k] = part["start_lag"][j]
                table.ids[k] = part["ids"][j]
        return table


async def run_phase(
    target: Target, observer: AlertObserver, settings: Settings, rate: float, duration: float
) -> dict[str, Any]:
    t0, parts, cpu_marks = await drive_load(target, settings, rate, duration, target.cpu.snapshot)
    count = round(rate * duration)
    sends_end = t0 + duration
    table = Timetable.of(parts, t0, rate, count)
    due, statuses, latencies, ids = table.due, table.status, table.latency, table.ids
    accepted = [k for k in range(count) if 200 <= statuses[k] < 300]
    last_response = max((due[k] + latencies[k] for k in accepted), default=sends_end)

    # Drain: wait for the alert of every accepted submission, up to --drain-timeout after the last response.
    drain_deadline = max(sends_end, last_response) + settings.drain_timeout_s
    waiting = {ids[k] for k in accepted}
    for _ in range(100_000):
        target.check_alive()
        waiting = {i for i in waiting if i not in observer.seen}
        if not waiting or time.monotonic() >= drain_deadline:
            break
        await asyncio.sleep(0.1)
    drained_at = time.monotonic()
    settled = await observer.settled(settings.settle_timeout_s)
    cpu_marks["settled"] = target.cpu.snapshot()
    settled_at = time.monotonic()

    alert_latencies = [observer.seen[ids[k]] - due[k] for k in accepted if ids[k] in observer.seen]
    last_alert = max((observer.seen[ids[k]] for k in accepted if ids[k] in observer.seen), default=None)
    # Where the time goes: until the questionnaire's event is on NATS, then until the alert is.
    both = [k for k in accepted if ids[k] in observer.submitted and ids[k] in observer.seen]
    submitted_latencies = [observer.submitted[ids[k]] - due[k] for k in both]
    scoring_latencies = [observer.seen[ids[k]] - observer.submitted[ids[k]] for k in both]
    stage_split = {
        "post_to_submitted_ms": summary_ms(submitted_latencies),
        "submitted_to_alert_ms": summary_ms(scoring_latencies),
    }
    counts = Counter(statuses)
    non_2xx = {str(code): n for code, n in sorted(counts.items()) if code >= 300 or 0 < code < 200}
    load_window = cpu_marks.get("load_end", cpu_marks["settled"])
    generator_window = sum(p["cpu_window_s"] for p in parts)
    generator_total = sum(p["cpu_total_s"] for p in parts)
    cpu_load_pct = common.cpu_percent(cpu_marks["start"], load_window, duration)
    cpu_load_pct["load generator"] = round(100.0 * generator_window / duration, 1)
    cpu_ms_per_submission = common.cpu_ms_per(cpu_marks["start"], cpu_marks["settled"], len(accepted))
    cpu_ms_per_submission["load generator"] = round(1000.0 * generator_total / max(1, count), 3)
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "requests": count,
        "accepted_2xx": len(accepted),
        "achieved_rps": round(len(accepted) / max(duration, last_response - t0), 1),
        "non_2xx": sum(non_2xx.values()),
        "non_2xx_by_status": non_2xx,
        "timeouts": counts.get(STATUS_TIMEOUT, 0),
        "connection_errors": counts.get(STATUS_CONN_ERROR, 0),
        "post_to_202_ms": summary_ms([latencies[k] for k in accepted]),
        "post_to_alert_ms": summary_ms(alert_latencies),
        **(stage_split if observer.submitted else {}),
        "alerts_observed": len(alert_latencies),
        "alerts_missing": len(accepted) - len(alert_latencies),
        "alerts_rps": round(len(alert_latencies) / max(duration, last_alert - t0), 1) if last_alert else 0.0,
        "generator_lag_ms": summary_ms([lag for lag in table.start_lag if lag >= 0]),
        "wait_to_send_ms": summary_ms([lag for lag in table.send_lag if lag >= 0]),
        "connections_opened": sum(p["connections_opened"] for p in parts),
        "retried_on_stale_connection": sum(p["retried_on_stale_connection"] for p in parts),
        "connection_error_kinds": dict(sum((Counter(p["connection_error_kinds"]) for p in parts), Counter())),
        "drain_s": round(drained_at - sends_end, 1),
        "settled": settled,
        "settle_s": round(settled_at - drained_at, 1),
        "cpu_percent_during_load": cpu_load_pct,
        "cpu_ms_per_submission": cpu_ms_per_submission,
    }


async def run_all(target: Target, args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    observer = AlertObserver(stages=args.stages)
    await observer.start(target.nats_url)
    try:
        return await common.warmup_and_rates(
            args,
            lambda _phase, rate, duration: run_phase(target, observer, settings, rate, duration),
            _one_line,
            target.check_alive,
        )
    finally:
        await observer.close()


def _one_line(r: dict[str, Any]) -> str:
    return (
        f"{r['accepted_2xx']}/{r['requests']} accepted ({r['achieved_rps']}/s), "
        f"202 p99 {fmt(r['post_to_202_ms']['p99'])} ms, alert p99 {fmt(r['post_to_alert_ms']['p99'])} ms, "
        f"alerts missing {r['alerts_missing']}, errors {r['non_2xx'] + r['timeouts'] + r['connection_errors']}, "
        f"settled {r['settled']}"
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    c = report["config"]
    lines = [
        *common.report_intro(report, "Submissions"),
        f"- load: open loop, {c['duration_s']:g}s per rate after a {c['warmup_s']:g}s warm-up at "
        f"{c['warmup_rate']:g}/s; {c['workers']} load process(es), ≤{c['connections']} keep-alive connections, "
        f"timeout {c['timeout_s']:g}s from the due time; alert drain timeout {c['drain_timeout_s']:g}s",
        "- latencies in ms from each request's scheduled send time; POST→alert = until alert.raised is seen on NATS",
        "",
        "| offered/s | achieved 2xx/s | 202 p50 | 202 p95 | 202 p99 | alert p50 | alert p95 | alert p99 "
        "| alerts/s | non-2xx | timeouts | conn. errors | alerts not seen | gen. lag p99 | wait to send p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        post, alert = r["post_to_202_ms"], r["post_to_alert_ms"]
        lines.append(
            f"| {r['offered_rate']:g} | {r['achieved_rps']:g} | {fmt(post['p50'])} | {fmt(post['p95'])} "
            f"| {fmt(post['p99'])} | {fmt(alert['p50'])} | {fmt(alert['p95'])} | {fmt(alert['p99'])} "
            f"| {r['alerts_rps']:g} | {r['non_2xx']} | {r['timeouts']} | {r['connection_errors']} "
            f"| {r['alerts_missing']} | {fmt(r['generator_lag_ms']['p99'])} | {fmt(r['wait_to_send_ms']['p99'])} |"
        )
    if any(r.get("post_to_submitted_ms") for r in report["results"]):
        lines += [
            "",
            "Where the time goes (--stages): POST → `questionnaire.submitted` seen on NATS (HTTP, commit, outbox "
            "relay), then → `alert.raised` (alerting consumer, scoring, its relay), ms:",
            "",
            "| offered/s | →submitted p50 | p95 | p99 | submitted→alert p50 | p95 | p99 |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["results"]:
            sub, scoring = r.get("post_to_submitted_ms") or {}, r.get("submitted_to_alert_ms") or {}
            lines.append(
                f"| {r['offered_rate']:g} | {fmt(sub.get('p50'))} | {fmt(sub.get('p95'))} | {fmt(sub.get('p99'))} "
                f"| {fmt(scoring.get('p50'))} | {fmt(scoring.get('p95'))} | {fmt(scoring.get('p99'))} |"
            )
    lines += common.cpu_table(
        report["results"],
        "CPU during the load window, % of one core (the machine has "
        f"{100 * (m['usable_cpus'] or 1)}%), and CPU ms per accepted submission until the pipeline settled:",
        per=("cpu_ms_per_submission", "ms/sub", 2),
    )
    unsettled = [r["offered_rate"] for r in report["results"] if not r["settled"]]
    if unsettled:
        lines += ["", f"Not settled before the next rate (backlog carried over): {unsettled}."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = common.rates_parser(__doc__, "250,500,1000,2000")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, not reported (default 3)")
    p.add_argument("--warmup-rate", type=float, default=100.0, help="warm-up rate (default 100/s)")
    p.add_argument("--workers", type=int, default=1, help="load-generating processes (default 1)")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections, all workers (default 256)")
    p.add_argument("--timeout", type=float, default=10.0, help="request timeout from its due time (default 10s)")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="wait for alerts after the last response (30s)")
    p.add_argument("--settle-timeout", type=float, default=60.0, help="wait for consumers to catch up (60s)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument(
        "--stages",
        action="store_true",
        help="also time questionnaire.submitted on NATS, to split the alert latency (costs some CPU; off by default)",
    )
    p.add_argument("--log-dir", type=Path, help="keep the embedded services' logs here (default: a temp dir)")
    p.add_argument("--questionnaire-url", help="use a running questionnaire service (e.g. http://127.0.0.1:8001)")
    p.add_argument("--alerting-url", help="use a running alerting service (e.g. http://127.0.0.1:8002)")
    p.add_argument("--nats-url", help="the NATS server the running services use (e.g. nats://127.0.0.1:4222)")
    common.add_service_env_arg(p, "extra environment for the embedded services (e.g. DB_POOL_MAX=20); repeatable")
    p.add_argument("--questionnaire-processes", type=int, default=1, help="uvicorn --workers for questionnaire")
    p.add_argument("--alerting-processes", type=int, default=1, help="uvicorn --workers for alerting")
    common.add_auth_args(p)
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """The checks of the options bench/dashboards.py shares; whether running services are given."""
    given = [args.questionnaire_url, args.alerting_url, args.nats_url]
    if any(given) and not all(given):
        p.error("--questionnaire-url, --alerting-url and --nats-url go together")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 120 or not 0 < args.warmup_rate <= common.MAX_RATE:
        p.error("--duration is in (0, 600], --warmup in [0, 120], --warmup-rate in (0, 50000]")
    if not 1 <= args.workers <= 16 or not 1 <= args.connections <= 10_000:
        p.error("--workers is in 1..16 and --connections in 1..10000")
    if not 0 < args.timeout <= 120 or not 0 <= args.drain_timeout <= 600 or not 0 <= args.settle_timeout <= 600:
        p.error("--timeout is in (0, 120], --drain-timeout and --settle-timeout in [0, 600]")
    if all(given):
        common.require_loopback(args.questionnaire_url, "--questionnaire-url")
        common.require_loopback(args.alerting_url, "--alerting-url")
        common.require_loopback(args.nats_url, "--nats-url")
    return all(given)


def open_target(stack: contextlib.ExitStack, args: argparse.Namespace, processes: dict[str, int]) -> Target:
    """The running services of --questionnaire-url etc., or embedded ones (stopped when the stack closes)."""
    if args.questionnaire_url:
        return use_running(args)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oncofollow-bench-")))
    extra_env = dict(args.service_env)
    print(f"starting NATS, PostgreSQL and the services in {workdir} …", file=sys.stderr, flush=True)
    servers = common.start_embedded_services(
        stack, workdir, extra_env, args.log_dir, {name: processes.get(name, 1) for name in SERVICES}
    )
    return Target(
        questionnaire_url=servers.services[0].url,
        alerting_url=servers.services[1].url,
        nats_url=servers.nats_url,
        description=(
            common.EMBEDDED_SERVERS
            + f"+ 2 uvicorn processes ({common.UVICORN_FLAGS})"
            + (f", env {extra_env}" if extra_env else "")
        ),
        cpu=servers.cpu,
        services=servers.services,
    )


def submissions_config(args: argparse.Namespace) -> dict[str, Any]:
    """The report's config of the load options bench/dashboards.py shares."""
    return {
        **common.load_config(args),
        "drain_timeout_s": args.drain_timeout,
        "settle_timeout_s": args.settle_timeout,
        "payload": "questionnaire_response(RED_NAUSEA), a new patient and Idempotency-Key per request",
    }


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return worker_main(argv[1])
    args = parse_args(argv)
    started = common.begin()
    settings = Settings.from_args(args)
    target: Target | None = None
    try:
        with contextlib.ExitStack() as stack:
            processes = {"questionnaire": args.questionnaire_processes, "alerting": args.alerting_processes}
            target = open_target(stack, args, processes)
            results = asyncio.run(run_all(target, args, settings))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the load, the services and the servers", file=sys.stderr)
        return 130
    report = {
        **common.report_head("submissions", started),
        "config": {"target": target.description, **submissions_config(args)},
        "results": results,
    }
    common.emit(report, markdown(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
