#!/usr/bin/env python3
"""Live alert stream benchmark: POST /v1/submissions → ``alert.raised`` in every connected dashboard.

    python bench/dashboards.py                                    # 200 dashboards, 100 submissions/s for 30 s
    python bench/dashboards.py --dashboards 200 --rates 50,100,200 --duration 10
    python bench/dashboards.py --memory-dashboards 1000           # also RSS with 1000 dashboards connected
    python bench/dashboards.py --questionnaire-url http://127.0.0.1:8001 --alerting-url http://127.0.0.1:8002 \\
        --nats-url nats://127.0.0.1:4222 --alerting-pid PID       # against `make run` (one alerting process)

It starts NATS, PostgreSQL, the questionnaire service and ONE alerting process (bench/submissions.py's
functions), then connects ``--dashboards`` Server-Sent Events clients to ``GET /v1/alerts/stream`` the way the
dashboard page does (a stream token from ``POST /v1/alerts/stream-token``, then ``?stream_token=…``). The clients
live in ``--client-processes`` separate processes: one asyncio.Protocol per connection on uvloop, no task per
event, which decodes the chunked body, keeps only ``id:`` and ``data:`` lines and records, per dashboard, when
the ``alert.raised`` of each ``submission_id`` arrived (``time.monotonic``, shared by every process of the
machine). Then it drives RED submissions in open loop (bench/submissions.py's load workers: request k is due at
t0 + k/rate, every latency from that due time) and reports the latency of every (submission, dashboard) pair,
the latency until a submission's alert had reached every dashboard, missing and duplicated pairs, the alerting
process's CPU, and its RSS with 0 and with N dashboards connected (memory per dashboard). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))  # `common` and `submissions` beside it, when imported from elsewhere

import common  # noqa: E402
import orjson  # noqa: E402
from common import STATUS_CONN_ERROR, STATUS_TIMEOUT, fmt, ms, summary_ms  # noqa: E402
from submissions import (  # noqa: E402
    AlertObserver,
    HttpConnection,
    Settings,
    Target,
    Timetable,
    WorkerPlan,
    build_requests,
    check_args,
    drive_load,
    open_target,
    run_phase,
    submissions_config,
)

from shared.auth import TokenService  # noqa: E402

STREAM_PATH = "/v1/alerts/stream"
STREAM_TOKEN_PATH = "/v1/alerts/stream-token"
RAISED = "alert.raised"
RAISED_FIELD = b'"type":"alert.raised"'
SUBMISSION_FIELD = b'"submission_id":"'
MAX_DASHBOARDS = 5_000
MAX_HEAD_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 120.0  # one command to a client process (a REPORT of a long phase is a few MB of JSON)
RSS_SAMPLES = 5
CLIENT_CPU = "dashboard clients"
MACHINE = "machine"


# --------------------------------------------------------------------------------------------------
# The dashboards (run in client processes: `dashboards.py --client PLAN_JSON`)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientPlan:
    first: int  # global number of this process's first dashboard (its staff id is bench-nurse-<n>)
    dashboards: int
    host: str
    port: int
    stream_token: bool  # the browser's way (stream token in the URL) rather than the staff token in a header
    connect_concurrency: int
    auth_secret: str
    auth_issuer: str
    auth_audience: str


class Tally:
    """What all the dashboards of one process have seen of the submissions the coordinator expects."""

    def __init__(self) -> None:
        self.expected: set[str] = set()
        self.pairs = 0  # (expected submission, dashboard) pairs seen


class Dashboard(asyncio.Protocol):
    """One live stream: the HTTP head, then a chunked body of SSE events, parsed in data_received."""

    def __init__(self, request: bytes, connected: asyncio.Future[int], tally: Tally) -> None:
        self.request = request
        self.connected = connected
        self.tally = tally
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport instances
        self.head = bytearray()
        self.in_body = False
        self.chunked = True
        self.raw = bytearray()  # the body still chunk-encoded
        self.text = bytearray()  # decoded SSE text not yet split into events
        self.data_left = 0  # bytes left in the current chunk
        self.crlf_left = 0  # the CRLF after a chunk
        self.seen: dict[str, float] = {}  # submission_id → arrival (time.monotonic)
        self.last_seq = 0
        self.duplicates = 0  # the same submission's alert.raised twice on this stream
        self.out_of_order = 0  # an event id not above the previous one
        self.other_events = 0  # alert.updated, alert.escalated, …
        self.unparsable = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        common.set_nodelay(transport.get_extra_info("socket"))
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed before the response head"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEAD_BYTES:
                    self.transport.close()
                return
            head = bytes(self.head[:end]).lower()
            data = bytes(self.head[end + 4 :])
            self.head = bytearray()
            self.in_body = True
            self.chunked = b"\r\ntransfer-encoding: chunked" in head
            status = int(head[9:12])
            if not self.connected.done():
                self.connected.set_result(status)
            if status != 200:
                self.transport.close()
                return
        if self.chunked:
            self._dechunk(data)
        else:
            self.text += data
        if self.text:
            self._events(now)

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        pos = 0
        while pos < len(raw):
            if self.data_left:
                take = min(self.data_left, len(raw) - pos)
                self.text += raw[pos : pos + take]
                pos += take
                self.data_left -= take
                if not self.data_left:
                    self.crlf_left = 2
            elif self.crlf_left:
                take = min(self.crlf_left, len(raw) - pos)
                pos += take
                self.crlf_left -= take
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(bytes(raw[pos:end]).split(b";")[0], 16)
                pos = end + 2
                if size == 0:  # the server ended the stream
                    break
                self.data_left = size
        del raw[:pos]

    def _events(self, now: float) -> None:
        # Lines may end with CRLF or LF (both are SSE); an event ends with an empty line.
        text = bytes(self.text).replace(b"\r\n", b"\n")
        blocks = text.split(b"\n\n")
        self.text = bytearray(blocks.pop())
        for block in blocks:
            seq = -1
            data = b""
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data = line[5:].lstrip(b" ")
                elif line.startswith(b"id:"):
                    with contextlib.suppress(ValueError):
                        seq = int(line[3:])
            if data:  # not a ": ping" comment
                self._event(now, seq, data)

    def _event(self, now: float, seq: int, data: bytes) -> None:
        if seq >= 0:
            if seq <= self.last_seq:
                self.out_of_order += 1
            else:
                self.last_seq = seq
        # The service writes compact JSON (orjson): find the two fields without parsing the whole event.
        at = data.find(SUBMISSION_FIELD) if RAISED_FIELD in data else -1
        kind: str
        submission_id: str | None
        if at >= 0:
            start = at + len(SUBMISSION_FIELD)
            kind, submission_id = RAISED, data[start : data.find(b'"', start)].decode()
        else:
            try:
                event = orjson.loads(data)
                kind = event["type"]
                submission_id = event["data"].get("submission_id") if kind == RAISED else None
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                self.unparsable += 1
                return
        if kind != RAISED:
            self.other_events += 1
            return
        if not submission_id:
            return
        if submission_id in self.seen:
            self.duplicates += 1
            return
        self.seen[submission_id] = now
        if submission_id in self.tally.expected:
            self.tally.pairs += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _post_stream_token(host: str, port: int, staff_token: str) -> bytes:
    return (
        f"POST {STREAM_TOKEN_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {staff_token}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def open_dashboards(plan: ClientPlan, tally: Tally) -> tuple[list[Dashboard], Counter[str]]:
    loop = asyncio.get_running_loop()
    tokens = TokenService(plan.auth_secret, plan.auth_issuer, plan.auth_audience)
    slots = asyncio.Semaphore(max(1, plan.connect_concurrency))
    opened: list[Dashboard] = []
    errors: Counter[str] = Counter()

    async def one(n: int) -> None:
        staff_token = tokens.issue_staff_token(f"bench-nurse-{n}", {"nurse"}, ttl_s=6 * 3600)
        async with slots:
            if plan.stream_token:
                connection = await HttpConnection.open(plan.host, plan.port)
                try:
                    status, body, _ = await connection.exchange(_post_stream_token(plan.host, plan.port, staff_token))
                finally:
                    connection.close()
                if status != 200:
                    raise ConnectionError(f"stream-token {status}")
                target, auth = f"{STREAM_PATH}?stream_token={orjson.loads(body)['token']}", ""
            else:
                target, auth = STREAM_PATH, f"Authorization: Bearer {staff_token}\r\n"
            request = (
                f"GET {target} HTTP/1.1\r\nHost: {plan.host}:{plan.port}\r\nAccept: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\n{auth}\r\n"
            ).encode()
            connected: asyncio.Future[int] = loop.create_future()
            _, dashboard = await loop.create_connection(
                lambda: Dashboard(request, connected, tally), plan.host, plan.port
            )
            status = await asyncio.wait_for(connected, CONNECT_TIMEOUT_S)
            if status != 200:
                dashboard.close()
                raise ConnectionError(f"stream {status}")
            opened.append(dashboard)

    outcomes = await asyncio.gather(*(one(plan.first + i) for i in range(plan.dashboards)), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            errors[f"{type(outcome).__name__}: {outcome}"[:80]] += 1
    return opened, errors


def _reply(document: dict[str, Any]) -> None:
    common.write_stdout(orjson.dumps(document) + b"\n")


async def client_serve(plan: ClientPlan) -> None:
    """Open the dashboards, say so, then answer the coordinator's commands on stdin, one JSON line each."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    dashboards, errors = await open_dashboards(plan, tally)
    _reply({"connected": len(dashboards), "failed": sum(errors.values()), "errors": dict(errors)})
    commands = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        for _ in range(1_000_000):
            line = await commands.readline()
            if not line:
                return  # the coordinator went away
            command, _, argument = line.decode().strip().partition(" ")
            if command == "EXPECT":
                tally.expected = set(orjson.loads(argument))
                tally.pairs = sum(1 for d in dashboards for s in d.seen if s in tally.expected)
                _reply({"ok": True})
            elif command == "STATUS":
                _reply({"pairs": tally.pairs, "open": sum(not d.closed for d in dashboards)})
            elif command == "REPORT":
                # Per expected submission, its arrival in each dashboard of this process (null: never).
                expected = sorted(tally.expected)
                _reply(
                    {
                        "arrivals": {s: [d.seen.get(s) for d in dashboards] for s in expected},
                        "unexpected": sum(1 for d in dashboards for s in d.seen if s not in tally.expected),
                        "duplicates": sum(d.duplicates for d in dashboards),
                        "out_of_order": sum(d.out_of_order for d in dashboards),
                        "other_events": sum(d.other_events for d in dashboards),
                        "unparsable": sum(d.unparsable for d in dashboards),
                        "open": sum(not d.closed for d in dashboards),
                        "cpu_s": time.process_time(),
                    }
                )
                for d in dashboards:
                    d.seen.clear()
                    d.duplicates = d.out_of_order = d.other_events = d.unparsable = 0
                tally.expected, tally.pairs = set(), 0
            elif command == "QUIT":
                return
            else:
                _reply({"error": f"unknown command {command!r}"})
    finally:
        for d in dashboards:
            d.close()
        await asyncio.sleep(0.1)


def client_main(plan_json: str) -> int:
    try:
        plan = ClientPlan(**orjson.loads(plan_json))
        common.run_event_loop(client_serve(plan))
        return 0
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------------------------------
# The coordinator's side of the client processes
# --------------------------------------------------------------------------------------------------


class ClientProcess:
    def __init__(self, process: asyncio.subprocess.Process, dashboards: int) -> None:
        self.process = process
        self.dashboards = dashboards  # asked for
        self.connected = 0

    @classmethod
    async def spawn(cls, plan: ClientPlan) -> ClientProcess:
        return cls(await common.spawn_script(SCRIPT, "--client", plan, limit=1 << 28), plan.dashboards)

    async def read(self, limit_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), limit_s)
        if not line:
            raise RuntimeError(f"a dashboard client process exited (code {await self.process.wait()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def call(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.read()

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError, AssertionError):
                assert self.process.stdin is not None
                self.process.stdin.write(b"QUIT\n")
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await asyncio.wait_for(self.process.wait(), 5.0)


@dataclass
class Dashboards:
    """Every client process of one group of dashboards."""

    clients: list[ClientProcess] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    connect_s: float = 0.0

    @property
    def connected(self) -> int:
        return sum(c.connected for c in self.clients)

    async def call_all(self, command: str) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(c.call(command) for c in self.clients)))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.clients), return_exceptions=True)


async def connect_dashboards(
    target: Target, args: argparse.Namespace, count: int, processes: int, first: int
) -> Dashboards:
    host, port = common.require_loopback(target.alerting_url, "--alerting-url")
    group = Dashboards()
    processes = max(1, min(processes, count))
    started = time.monotonic()
    try:
        for i in range(processes):
            share = count // processes + (1 if i < count % processes else 0)
            plan = ClientPlan(
                first=first + sum(c.dashboards for c in group.clients),
                dashboards=share,
                host=host,
                port=port,
                stream_token=not args.bearer,
                connect_concurrency=args.connect_concurrency,
                auth_secret=args.auth_secret,
                auth_issuer=args.auth_issuer,
                auth_audience=args.auth_audience,
            )
            group.clients.append(await ClientProcess.spawn(plan))
        for client in group.clients:
            hello = await client.read(60.0 + client.dashboards / 10)
            client.connected = int(hello["connected"])
            group.errors.update(hello["errors"])
    except BaseException:
        await group.stop()
        raise
    group.connect_s = time.monotonic() - started
    return group


async def post_probe(target: Target, settings: Settings) -> str:
    """One RED submission sent from here: its id."""
    host, port = common.require_loopback(target.questionnaire_url, "--questionnaire-url")
    plan = WorkerPlan(
        index=0,
        workers=1,
        rate=1.0,
        count=1,
        duration_s=1.0,
        host=host,
        port=port,
        connections=1,
        timeout_s=10.0,
        auth_secret=settings.auth_secret,
        auth_issuer=settings.auth_issuer,
        auth_audience=settings.auth_audience,
    )
    (_, _, request) = build_requests(plan)[0]
    connection = await HttpConnection.open(host, port)
    try:
        status, body, _ = await asyncio.wait_for(connection.exchange(request), 10.0)
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise RuntimeError(f"the probe submission got {status}: {body[:300]!r}")
    return str(orjson.loads(body)["id"])


async def barrier(target: Target, settings: Settings, groups: Sequence[Dashboards], limit_s: float = 30.0) -> float:
    """Post one submission and wait until every connected dashboard has its alert: they are all subscribed.

    Returns how long it took (s). Raises if some dashboard never got it."""
    clients = [c for g in groups for c in g.clients]
    wanted = sum(c.connected for c in clients)
    started = time.monotonic()
    probe = await post_probe(target, settings)
    await asyncio.gather(*(c.call("EXPECT " + orjson.dumps([probe]).decode()) for c in clients))
    deadline = time.monotonic() + limit_s
    seen = 0
    while time.monotonic() < deadline:
        seen = sum(s["pairs"] for s in await asyncio.gather(*(c.call("STATUS") for c in clients)))
        if seen >= wanted:
            break
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    await asyncio.gather(*(c.call("REPORT") for c in clients))  # and forget the probe
    if seen < wanted:
        raise RuntimeError(f"the probe alert reached {seen} of {wanted} dashboards within {limit_s:g}s")
    return took


# --------------------------------------------------------------------------------------------------
# Memory and CPU of the alerting process
# --------------------------------------------------------------------------------------------------


def _status_kib(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


async def sample_rss(pid: int | None) -> dict[str, int] | None:
    """The median VmRSS and RssAnon (KiB) of RSS_SAMPLES readings 0.2 s apart, and the peak so far."""
    if pid is None:
        return None
    samples = []
    for _ in range(RSS_SAMPLES):
        samples.append(_status_kib(pid))
        await asyncio.sleep(0.2)
    if not all(samples):
        return None
    return {
        "rss_kib": int(statistics.median(s["VmRSS"] for s in samples)),
        "rss_anon_kib": int(statistics.median(s.get("RssAnon", 0) for s in samples)),
        "peak_kib": max(s.get("VmHWM", 0) for s in samples),
    }


def _per_dashboard(base: dict[str, int] | None, loaded: dict[str, int] | None, n: int) -> float | None:
    if base is None or loaded is None or n <= 0:
        return None
    return round((loaded["rss_kib"] - base["rss_kib"]) / n, 1)


def _snapshot(target: Target) -> dict[str, float]:
    used = target.cpu.snapshot()
    busy = common.machine_busy_s()
    if busy is not None:
        used[MACHINE] = busy
    return used


def _cpu_split(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of one process."""
    fields = None if pid is None else common.proc_stat_fields(pid)
    if fields is None:
        return None
    return int(fields[11]) / common.CLOCK_TICKS, int(fields[12]) / common.CLOCK_TICKS


def _cpu_s(pid: int | None) -> float | None:
    split = _cpu_split(pid)
    return None if split is None else split[0] + split[1]


# --------------------------------------------------------------------------------------------------
# One rate
# --------------------------------------------------------------------------------------------------


async def run_rate(
    target: Target,
    settings: Settings,
    observer: AlertObserver,
    group: Dashboards,
    rate: float,
    duration: float,
    alerting_pid: int | None,
) -> dict[str, Any]:
    split_before = _cpu_split(alerting_pid)
    cpu_before = _cpu_s(alerting_pid)
    t0, parts, marks = await drive_load(target, settings, rate, duration, lambda: _snapshot(target))
    count = round(rate * duration)
    table = Timetable.of(parts, t0, rate, count)
    due, status, latency, send_lag, ids = table.due, table.status, table.latency, table.send_lag, table.ids
    accepted = [k for k in range(count) if 200 <= status[k] < 300 and ids[k]]
    last_response = max((due[k] + latency[k] for k in accepted), default=t0 + duration)
    expected = [ids[k] for k in accepted]

    # Drain: until every accepted submission's alert reached every dashboard, or the drain timeout.
    clients = group.clients
    await asyncio.gather(*(c.call("EXPECT " + orjson.dumps(expected).decode()) for c in clients))
    wanted = len(expected) * group.connected
    deadline = max(t0 + duration, last_response) + settings.drain_timeout_s
    for _ in range(1_000_000):
        target.check_alive()
        seen = sum(s["pairs"] for s in await asyncio.gather(*(c.call("STATUS") for c in clients)))
        if seen >= wanted or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    drained_at = time.monotonic()
    marks["drained"] = _snapshot(target)
    cpu_drained = _cpu_s(alerting_pid)
    split_drained = _cpu_split(alerting_pid)
    reports = await group.call_all("REPORT")
    settled = await observer.settled(settings.settle_timeout_s)

    # Every (submission, dashboard) pair: arrival − due time.
    pair_latencies: list[float] = []
    first_latencies: list[float] = []
    every_latencies: list[float] = []  # until the last dashboard had it (complete submissions only)
    spread: list[float] = []  # first dashboard → last dashboard
    after_nats: list[float] = []  # alert.raised seen on NATS → in a dashboard
    nats_latencies: list[float] = []
    by_second_every: dict[int, list[float]] = {}  # second of the timetable → its submissions' "every" latencies
    by_second_nats: dict[int, list[float]] = {}
    missing_pairs = 0
    incomplete = 0
    for k in accepted:
        sid = ids[k]
        times: list[float | None] = []
        for client, report in zip(clients, reports, strict=True):
            times += report["arrivals"].get(sid) or [None] * client.connected
        arrived = [t for t in times if t is not None]
        missing_pairs += group.connected - len(arrived)
        at_nats = observer.seen.get(sid)
        if at_nats is not None:
            nats_latencies.append(at_nats - due[k])
            by_second_nats.setdefault(int(k / rate), []).append(at_nats - due[k])
            after_nats += [t - at_nats for t in arrived]
        pair_latencies += [t - due[k] for t in arrived]
        if not arrived:
            incomplete += 1
            continue
        first_latencies.append(min(arrived) - due[k])
        spread.append(max(arrived) - min(arrived))
        if len(arrived) == group.connected:
            every_latencies.append(max(arrived) - due[k])
            by_second_every.setdefault(int(k / rate), []).append(max(arrived) - due[k])
        else:
            incomplete += 1
    statuses = Counter(status)
    window = marks.get("load_end", marks["drained"])
    cpu_pct = common.cpu_percent(marks["start"], window, duration)
    clients_pct = [cpu_pct.pop(name) for name in list(cpu_pct) if name.startswith(CLIENT_CPU)]
    if clients_pct:
        cpu_pct[CLIENT_CPU] = round(sum(clients_pct), 1)
    cpu_pct["load generator"] = round(100.0 * sum(p["cpu_window_s"] for p in parts) / duration, 1)
    # The machine's busy time minus every process above: someone else using the machine during the run.
    machine = cpu_pct.pop(MACHINE, None)
    if machine is not None:
        cpu_pct["other processes"] = round(machine - sum(cpu_pct.values()), 1)
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "requests": count,
        "accepted_2xx": len(accepted),
        "failed_requests": count - len(accepted),
        "non_2xx_by_status": {str(c): n for c, n in sorted(statuses.items()) if c >= 300 or 0 < c < 200},
        "timeouts": statuses.get(STATUS_TIMEOUT, 0),
        "connection_errors": statuses.get(STATUS_CONN_ERROR, 0),
        "dashboards": group.connected,
        "pairs_expected": len(accepted) * group.connected,
        "pairs_arrived": len(pair_latencies),
        "pairs_missing": missing_pairs,
        "submissions_not_in_every_dashboard": incomplete,
        "duplicates": sum(r["duplicates"] for r in reports),
        "out_of_order_ids": sum(r["out_of_order"] for r in reports),
        "other_events_per_dashboard": round(sum(r["other_events"] for r in reports) / max(1, group.connected), 1),
        "unparsable_events": sum(r["unparsable"] for r in reports),
        "dashboards_still_open": sum(r["open"] for r in reports),
        "post_to_202_ms": summary_ms([latency[k] for k in accepted]),
        "post_to_dashboard_ms": summary_ms(pair_latencies),
        "post_to_first_dashboard_ms": summary_ms(first_latencies),
        "post_to_every_dashboard_ms": summary_ms(every_latencies),
        "first_to_last_dashboard_ms": summary_ms(spread),
        "post_to_nats_ms": summary_ms(nats_latencies),
        "nats_to_dashboard_ms": summary_ms(after_nats),
        "wait_to_send_ms": summary_ms([lag for lag in send_lag if lag >= 0]),
        "drain_s": round(drained_at - max(t0 + duration, last_response), 2),
        "settled": settled,
        "alerting_cpu_s_load_window": (
            round(window["alerting"] - marks["start"]["alerting"], 2) if "alerting" in window else None
        ),
        "alerting_cpu_s_until_drained": (
            round(cpu_drained - cpu_before, 2) if cpu_drained is not None and cpu_before is not None else None
        ),
        "alerting_user_sys_s_until_drained": (
            [round(split_drained[i] - split_before[i], 2) for i in (0, 1)] if split_drained and split_before else None
        ),
        "cpu_percent_during_load": cpu_pct,
        # Whether a backlog builds up: per second of the timetable, p50 and max in ms.
        "by_second": [
            {
                "second": second,
                "every_p50": ms(statistics.median(by_second_every.get(second) or [0.0])),
                "every_max": ms(max(by_second_every.get(second) or [0.0])),
                "nats_p50": ms(statistics.median(by_second_nats.get(second) or [0.0])),
                "nats_max": ms(max(by_second_nats.get(second) or [0.0])),
            }
            for second in range(math.ceil(duration))
        ],
    }


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


async def run_all(target: Target, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    alerting_pid: int | None = target.cpu.pids.get("alerting", args.alerting_pid)
    observer = AlertObserver()
    await observer.start(target.nats_url)
    groups: list[Dashboards] = []
    memory: dict[str, Any] = {"pid": alerting_pid, "points": []}
    results: list[dict[str, Any]] = []
    try:
        if args.warmup > 0:
            print(
                f"warm-up: {args.warmup_rate:g}/s for {args.warmup:g}s with 5 dashboards …", file=sys.stderr, flush=True
            )
            warm = await connect_dashboards(target, args, min(5, args.dashboards), 1, first=900_000)
            try:
                await run_phase(target, observer, settings, args.warmup_rate, args.warmup)
            finally:
                await warm.stop()
            await observer.settled(settings.settle_timeout_s)
            await asyncio.sleep(2.0)
        base = await sample_rss(alerting_pid)
        memory["idle_0"] = base
        print(f"alerting RSS with 0 dashboards: {_kib(base)}", file=sys.stderr, flush=True)

        print(f"connecting {args.dashboards} dashboards …", file=sys.stderr, flush=True)
        main = await connect_dashboards(target, args, args.dashboards, args.client_processes, first=0)
        groups.append(main)
        for i, client in enumerate(main.clients):
            target.cpu.pids[f"{CLIENT_CPU} {i + 1}"] = client.process.pid
        if main.connected < args.dashboards:
            raise RuntimeError(f"{main.connected} of {args.dashboards} dashboards connected: {dict(main.errors)}")
        took = await barrier(target, settings, groups)
        await asyncio.sleep(2.0)
        loaded = await sample_rss(alerting_pid)
        memory["points"].append(_memory_point(base, loaded, main.connected, main.connect_s, took))
        print(
            f"  {main.connected} connected in {main.connect_s:.1f}s, probe in all of them after {took * 1000:.0f} ms; "
            f"RSS {_kib(loaded)}, {_per_dashboard(base, loaded, main.connected)} KiB per dashboard",
            file=sys.stderr,
            flush=True,
        )
        cpu_idle_0 = _cpu_s(alerting_pid)
        await asyncio.sleep(args.idle)
        cpu_idle_1 = _cpu_s(alerting_pid)
        if cpu_idle_0 is not None and cpu_idle_1 is not None:
            memory["idle_cpu_percent"] = round(100.0 * (cpu_idle_1 - cpu_idle_0) / args.idle, 1)

        for total in args.memory_dashboards:
            extra_count = total - main.connected
            if extra_count <= 0:
                continue
            print(f"connecting {extra_count} more dashboards ({total} in all) …", file=sys.stderr, flush=True)
            extra = await connect_dashboards(target, args, extra_count, args.client_processes, first=100_000)
            groups.append(extra)
            try:
                if extra.connected < extra_count:
                    raise RuntimeError(
                        f"{extra.connected} of {extra_count} more dashboards connected: {dict(extra.errors)}"
                    )
                took = await barrier(target, settings, groups)
                await asyncio.sleep(2.0)
                sample = await sample_rss(alerting_pid)
                connected = main.connected + extra.connected
                memory["points"].append(_memory_point(base, sample, connected, extra.connect_s, took))
                print(
                    f"  {connected} connected, probe in all of them after {took * 1000:.0f} ms; RSS {_kib(sample)}, "
                    f"{_per_dashboard(base, sample, connected)} KiB per dashboard",
                    file=sys.stderr,
                    flush=True,
                )
            finally:
                groups.remove(extra)
                await extra.stop()
        if args.memory_dashboards:
            await asyncio.sleep(3.0)  # the server notices the closed streams

        for rate in args.rates:
            print(f"rate {rate:g}/s for {args.duration:g}s, {main.connected} dashboards …", file=sys.stderr, flush=True)
            result = await run_rate(target, settings, observer, main, rate, args.duration, alerting_pid)
            print(f"  {_one_line(result)}", file=sys.stderr, flush=True)
            results.append(result)
            target.check_alive()
        memory["after_load"] = await sample_rss(alerting_pid)
    finally:
        for group in groups:
            await group.stop()
        await observer.close()
    return {"memory": memory, "results": results}


def _memory_point(
    base: dict[str, int] | None, loaded: dict[str, int] | None, n: int, connect_s: float, probe_s: float
) -> dict[str, Any]:
    return {
        "dashboards": n,
        "rss": loaded,
        "kib_per_dashboard": _per_dashboard(base, loaded, n),
        "anon_kib_per_dashboard": (
            round((loaded["rss_anon_kib"] - base["rss_anon_kib"]) / n, 1) if base and loaded and n else None
        ),
        "connect_s": round(connect_s, 2),
        "probe_in_all_ms": round(probe_s * 1000.0, 1),
    }


def _kib(sample: dict[str, int] | None) -> str:
    return "–" if sample is None else f"{sample['rss_kib'] / 1024:.1f} MiB"


def _one_line(r: dict[str, Any]) -> str:
    every = r["post_to_every_dashboard_ms"]
    pair = r["post_to_dashboard_ms"]
    return (
        f"{r['accepted_2xx']}/{r['requests']} accepted; pair p50 {fmt(pair['p50'])} p99 {fmt(pair['p99'])} ms; "
        f"every-dashboard p99 {fmt(every['p99'])} ms; missing {r['pairs_missing']}, duplicates {r['duplicates']}; "
        f"alerting CPU {r['alerting_cpu_s_load_window']} s"
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    c = report["config"]
    mem = report["memory"]
    lines = [
        *common.report_intro(report, "Dashboards"),
        f"- dashboards: {c['dashboards']} SSE clients on {c['client_processes']} process(es), "
        f"{'bearer header' if c['bearer'] else 'stream token (as the page)'}; open-loop RED submissions "
        f"for {c['duration_s']:g}s per rate after a {c['warmup_s']:g}s warm-up",
        "- latencies in ms from each submission's scheduled send time; a pair is (submission, dashboard); "
        "every = until the alert had reached the last dashboard",
        "",
        "| offered/s | accepted | dashboards | pair p50 | pair p95 | pair p99 | pair max | every p50 | every p99 "
        "| every max | first→last p99 | NATS→dash p99 | POST→NATS p99 | 202 p99 | missing pairs | duplicates "
        "| failed POSTs | alerting CPU s (%) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        pair, every = r["post_to_dashboard_ms"], r["post_to_every_dashboard_ms"]
        cpu = r["alerting_cpu_s_load_window"]
        cpu_text = "–" if cpu is None else f"{cpu:.1f} ({100 * cpu / r['duration_s']:.0f}%)"
        lines.append(
            f"| {r['offered_rate']:g} | {r['accepted_2xx']} | {r['dashboards']} | {fmt(pair['p50'])} "
            f"| {fmt(pair['p95'])} | {fmt(pair['p99'])} | {fmt(pair['max'])} | {fmt(every['p50'])} "
            f"| {fmt(every['p99'])} | {fmt(every['max'])} | {fmt(r['first_to_last_dashboard_ms']['p99'])} "
            f"| {fmt(r['nats_to_dashboard_ms']['p99'])} | {fmt(r['post_to_nats_ms']['p99'])} "
            f"| {fmt(r['post_to_202_ms']['p99'])} | {r['pairs_missing']} | {r['duplicates']} "
            f"| {r['failed_requests']} | {cpu_text} |"
        )
    lines += common.cpu_table(
        report["results"],
        f"CPU during the load window, % of one core (the machine has {100 * (m['usable_cpus'] or 1)}%):",
    )
    base = mem.get("idle_0")
    lines += [
        "",
        "Memory of the alerting process (VmRSS, median of 5 readings; idle, after the warm-up and after "
        "every dashboard had received a probe alert):",
        "",
        "| dashboards | RSS MiB | RssAnon MiB | KiB per dashboard (RSS) | KiB per dashboard (anon) | connect s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    if base:
        lines.append(f"| 0 | {base['rss_kib'] / 1024:.1f} | {base['rss_anon_kib'] / 1024:.1f} | – | – | – |")
    for point in mem["points"]:
        rss = point["rss"] or {}
        lines.append(
            f"| {point['dashboards']} | {rss.get('rss_kib', 0) / 1024:.1f} | {rss.get('rss_anon_kib', 0) / 1024:.1f} "
            f"| {point['kib_per_dashboard']} | {point['anon_kib_per_dashboard']} | {point['connect_s']:g} |"
        )
    after = mem.get("after_load")
    if after:
        lines.append(
            f"\nAfter the load: RSS {after['rss_kib'] / 1024:.1f} MiB, peak (VmHWM) {after['peak_kib'] / 1024:.1f} MiB."
        )
    if "idle_cpu_percent" in mem:
        lines.append(f"Alerting CPU with the dashboards connected and no load: {mem['idle_cpu_percent']}% of a core.")
    bad = [r["offered_rate"] for r in report["results"] if r["pairs_missing"] or r["duplicates"]]
    if bad:
        lines.append(f"\nMissing or duplicated events at {bad}/s: see pairs_missing, duplicates in the JSON.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if any(not 1 <= n <= MAX_DASHBOARDS for n in counts):
        raise argparse.ArgumentTypeError(f"dashboard counts are comma-separated integers in 1..{MAX_DASHBOARDS}")
    return counts


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dashboards", type=int, default=200, help="SSE clients during the load (default 200)")
    p.add_argument("--client-processes", type=int, default=2, help="processes holding the dashboards (default 2)")
    p.add_argument("--connect-concurrency", type=int, default=32, help="dashboards connecting at once, per process")
    p.add_argument("--bearer", action="store_true", help="send the staff token as a header, not a stream token")
    p.add_argument(
        "--memory-dashboards",
        type=_counts,
        default=[],
        help="also measure RSS with this many dashboards connected, before the load (e.g. 1000)",
    )
    rates = p.add_mutually_exclusive_group()
    rates.add_argument("--rate", type=float, help="one offered rate, submissions/s (default 100)")
    rates.add_argument("--rates", type=common.rates_arg, help="offered rates, comma-separated")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per rate (default 30)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, not reported (default 3)")
    p.add_argument("--warmup-rate", type=float, default=100.0, help="warm-up rate (default 100/s)")
    p.add_argument("--idle", type=float, default=5.0, help="seconds idle with the dashboards connected (CPU)")
    p.add_argument("--workers", type=int, default=1, help="load-generating processes (default 1)")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections for the POSTs")
    p.add_argument("--timeout", type=float, default=10.0, help="POST timeout from its due time (default 10s)")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="wait for alerts after the last response (30s)")
    p.add_argument("--settle-timeout", type=float, default=60.0, help="wait for consumers to catch up (60s)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--log-dir", type=Path, help="keep the embedded services' logs here (default: a temp dir)")
    p.add_argument("--questionnaire-url", help="use a running questionnaire service (e.g. http://127.0.0.1:8001)")
    p.add_argument("--alerting-url", help="use a running alerting service, ONE process (e.g. http://127.0.0.1:8002)")
    p.add_argument("--nats-url", help="the NATS server the running services use (e.g. nats://127.0.0.1:4222)")
    p.add_argument("--alerting-pid", type=int, help="the running alerting process, for its RSS and CPU")
    common.add_service_env_arg(p, "extra environment for the embedded services; repeatable")
    common.add_auth_args(p)
    args = p.parse_args(argv)
    args.rates = args.rates or [args.rate or 100.0]
    if any(not 0 < r <= common.MAX_RATE for r in args.rates):
        p.error(f"rates are in (0, {common.MAX_RATE:g}]")
    if not 1 <= args.dashboards <= MAX_DASHBOARDS or not 1 <= args.client_processes <= 8:
        p.error(f"--dashboards is in 1..{MAX_DASHBOARDS}, --client-processes in 1..8")
    if not 1 <= args.connect_concurrency <= 1000:
        p.error("--connect-concurrency is in 1..1000")
    if not 0 < args.idle <= 300:
        p.error("--idle is in (0, 300]")
    if not check_args(p, args) and args.alerting_pid is not None:
        p.error("--alerting-pid goes with --alerting-url (the embedded one is known)")
    return args


def _raise_fd_limit(needed: int) -> None:
    """Each dashboard is a socket here and in the alerting process (which inherits this limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--client"] and len(argv) == 2:
        return client_main(argv[1])
    args = parse_args(argv)
    started = common.begin()
    _raise_fd_limit(2 * max([args.dashboards, *args.memory_dashboards]) + 1024)
    settings = Settings.from_args(args)
    target: Target | None = None
    try:
        with contextlib.ExitStack() as stack:
            # ONE alerting process: every dashboard is on the same fan-out.
            target = open_target(stack, args, {"questionnaire": 1, "alerting": 1})
            outcome = asyncio.run(run_all(target, args, settings))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the dashboards, the load, the services and the servers", file=sys.stderr)
        return 130
    report = {
        **common.report_head("dashboards", started),
        "config": {
            "target": target.description,
            "dashboards": args.dashboards,
            "client_processes": args.client_processes,
            "bearer": args.bearer,
            "memory_dashboards": args.memory_dashboards,
            **submissions_config(args),
        },
        **outcome,
    }
    common.emit(report, markdown(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
