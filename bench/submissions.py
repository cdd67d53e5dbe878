#!/usr/bin/env python3
"""Open-loop benchmark of the submission path: POST /v1/submissions → 202, and → ``alert.raised``.

    python bench/submissions.py                                   # its own NATS, PostgreSQL and services
    python bench/submissions.py --rates 100 --duration 3          # a quick smoke run
    python bench/submissions.py --questionnaire-url http://127.0.0.1:8001 \\
        --alerting-url http://127.0.0.1:8002 --nats-url nats://127.0.0.1:4222    # against `make run`

Requests follow a fixed timetable (request k is due at t0 + k/rate) whatever the responses, and every
latency is measured from that due time, so a slow server cannot slow the load down (no coordinated
omission). The HTTP load comes from separate worker processes (``--workers``) with a small HTTP/1.1
keep-alive client on raw asyncio streams; this process only subscribes to ``alert.raised`` on NATS,
matches ``data.submission_id`` to the ids the 202s returned, and samples CPU per process from /proc.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/submissions.py` without PYTHONPATH or an editable install

import orjson  # noqa: E402

from shared.auth import TokenService  # noqa: E402
from shared.devservers import EmbeddedNats, EmbeddedPostgres  # noqa: E402
from shared.settings import DEV_AUTH_SECRET  # noqa: E402
from shared.testing.fhir import RED_NAUSEA, Answer, questionnaire_response  # noqa: E402
from shared.testing.services import ServiceProcess  # noqa: E402

SUBMISSIONS_PATH = "/v1/submissions"
ALERT_SUBJECT = "alert.raised"
STATUS_TIMEOUT = -1  # no response within --timeout of the due time
STATUS_CONN_ERROR = 0  # connection refused / reset, or a response we could not parse
# What a failed exchange can raise (TimeoutError, an OSError, is caught before these).
CLIENT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError, TypeError)
DISPATCH_TICK_S = 0.002
MAX_REQUESTS_PER_PHASE = 500_000
MAX_RATE = 50_000.0
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
class WorkerPlan:
    index: int
    workers: int
    rate: float
    count: int  # requests in the phase, all workers together; this worker sends k = index, index+workers, …
    duration_s: float
    host: str
    port: int
    connections: int
    timeout_s: float
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
    """One keep-alive HTTP/1.1 connection, one request at a time (enough for the 202s of one endpoint)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


class ConnectionPool:
    """At most ``limit`` connections; a request due while all are busy waits for one (and that counts).

    Idle connections are reused most-recent first and dropped after ``max_idle_s`` (uvicorn closes
    keep-alive connections idle for 5 s; reusing one the server is closing would fail the request).
    """

    def __init__(self, host: str, port: int, limit: int, max_idle_s: float = 3.0) -> None:
        self.host = host
        self.port = port
        self.max_idle_s = max_idle_s
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[tuple[float, HttpConnection]] = []
        self.opened = 0

    async def acquire(self, fresh: bool = False) -> tuple[HttpConnection, bool]:
        """A connection and whether it was reused."""
        await self._slots.acquire()
        now = time.monotonic()
        while self._idle and not fresh:
            since, connection = self._idle.pop()
            if now - since <= self.max_idle_s:
                return connection, True
            connection.close()
        try:
            connection = await HttpConnection.open(self.host, self.port)
        except BaseException:
            self._slots.release()
            raise
        self.opened += 1
        return connection, False

    def release(self, connection: HttpConnection, reusable: bool) -> None:
        if reusable:
            self._idle.append((time.monotonic(), connection))
        else:
            connection.close()
        self._slots.release()

    def close(self) -> None:
        for _, connection in self._idle:
            connection.close()
        self._idle.clear()


async def drive(plan: WorkerPlan, requests: list[tuple[int, float, bytes]], t0: float) -> dict[str, Any]:
    """Send every request at its due time (t0 + offset, time.monotonic), whatever the responses."""
    loop = asyncio.get_running_loop()
    pool = ConnectionPool(plan.host, plan.port, max(1, plan.connections))
    n = len(requests)
    status = [STATUS_TIMEOUT] * n
    start_lag = [-1.0] * n  # from due time to the request's task running: the generator's own lateness
    send_lag = [-1.0] * n  # from due time to the request written on a connection (incl. waiting for one)
    latency = [-1.0] * n  # from due time to the whole response read
    ids = [""] * n
    retried = [0]
    errors: Counter[str] = Counter()

    async def exchange(i: int, due: float) -> tuple[int, bytes]:
        for attempt in range(2):
            connection, reused = await pool.acquire(fresh=attempt > 0)
            reusable = False
            try:
                send_lag[i] = time.monotonic() - due
                code, body, reusable = await connection.exchange(requests[i][2])
                return code, body
            except (ConnectionError, asyncio.IncompleteReadError):
                # A kept-alive connection the server closed meanwhile: once more on a new one (the
                # Idempotency-Key makes a repeat harmless); a new connection failing is an error.
                if not reused or attempt > 0:
                    raise
                retried[0] += 1
            finally:
                pool.release(connection, reusable)
        raise ConnectionError("unreachable")

    async def one(i: int) -> None:
        due = t0 + requests[i][1]
        start_lag[i] = time.monotonic() - due
        try:
            async with asyncio.timeout(max(0.0, due + plan.timeout_s - time.monotonic())):
                code, body = await exchange(i, due)
            latency[i] = time.monotonic() - due
            status[i] = code
            if 200 <= code < 300:
                ids[i] = str(orjson.loads(body)["id"])
        except TimeoutError:
            status[i] = STATUS_TIMEOUT
        except CLIENT_ERRORS as exc:
            status[i] = STATUS_CONN_ERROR
            errors[type(exc).__name__] += 1

    cpu_start = time.process_time()
    cpu_window: list[float] = []
    loop.call_later(
        max(0.0, t0 + plan.duration_s - time.monotonic()), lambda: cpu_window.append(time.process_time() - cpu_start)
    )
    tasks: list[asyncio.Task[None]] = []
    i = 0
    while i < n:
        now = time.monotonic()
        while i < n and t0 + requests[i][1] <= now:
            tasks.append(loop.create_task(one(i)))
            i += 1
        if i < n:
            # Ticks of at least DISPATCH_TICK_S: sub-millisecond sleeps would spin the loop (timers have 1 ms
            # resolution) and steal CPU from the services; a request sent up to a tick late is still timed
            # from its due time.
            await asyncio.sleep(max(DISPATCH_TICK_S, t0 + requests[i][1] - time.monotonic()))
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=plan.timeout_s + 5.0)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5.0)
    pool.close()
    return {
        "k": [r[0] for r in requests],
        "status": status,
        "start_lag": start_lag,
        "send_lag": send_lag,
        "latency": latency,
        "ids": ids,
        "connections_opened": pool.opened,
        "retried_on_stale_connection": retried[0],
        "connection_error_kinds": dict(errors),
        "cpu_window_s": cpu_window[0] if cpu_window else time.process_time() - cpu_start,
        "cpu_total_s": time.process_time(),
    }


def worker_main(plan_json: str) -> int:
    """READY on stdout once the requests are built; t0 on stdin; the results as one JSON document."""
    try:
        plan = WorkerPlan(**orjson.loads(plan_json))
        requests = build_requests(plan)
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        readable, _, _ = select.select([sys.stdin], [], [], 300.0)
        line = sys.stdin.readline() if readable else ""
        if not line.strip():
            return 2  # the coordinator went away
        t0 = float(line)
        try:
            import uvloop

            result = uvloop.run(drive(plan, requests, t0))
        except ImportError:
            result = asyncio.run(drive(plan, requests, t0))
        # The event loop may have left stdout non-blocking: a large write would then stop at the pipe's size.
        fd = sys.stdout.fileno()
        os.set_blocking(fd, True)
        pending = memoryview(orjson.dumps(result))
        while pending:
            pending = pending[os.write(fd, pending) :]
        return 0
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------------------------------
# Measuring: percentiles, CPU from /proc, the machine
# --------------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values_s)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 2)

    return {
        "p50": ms(percentile(ordered, 50)),
        "p95": ms(percentile(ordered, 95)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1] if ordered else None),
        "mean": ms(sum(ordered) / len(ordered) if ordered else None),
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, CPU s of waited-for children) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    children = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return int(fields[1]), own, children


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[0] == parent:
                found.append(int(entry))
    return found


def _tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process and its children, live ones and exited ones (e.g. PostgreSQL backends)."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    total = stat[1] + stat[2]
    for child in _children_of(pid):
        child_stat = _proc_stat(child)
        if child_stat is not None:
            total += child_stat[1] + child_stat[2]
    return total


@dataclass
class CpuTracker:
    """CPU seconds used so far by each process group we can see (services, NATS, PostgreSQL, ourselves)."""

    pids: dict[str, int] = field(default_factory=dict)
    postmaster: int | None = None

    def snapshot(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            total = _tree_cpu(pid)  # uvicorn --workers N: the work is in the children
            if total is not None:
                used[name] = total
        if self.postmaster is not None:
            total = _tree_cpu(self.postmaster)
            if total is not None:
                used["postgres"] = total
        used["bench coordinator"] = time.process_time()
        return used


def postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory_gib = round(kib / 1024 / 1024, 1)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if head.returncode == 0:
            commit = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "commit": commit,
    }


UVICORN_ARGS = ("--loop", "uvloop", "--http", "httptools")


def _workers(service: str, processes: dict[str, int]) -> tuple[str, ...]:
    count = processes.get(service, 1)
    return ("--workers", str(count)) if count > 1 else ()


# --------------------------------------------------------------------------------------------------
# The system under test: embedded servers and uvicorn processes, or running ones
# --------------------------------------------------------------------------------------------------


def http_ready(base_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def require_loopback(url: str, what: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback or parts.port is None:
        raise SystemExit(f"{what} must be a loopback address with a port (got {url!r}): this benchmark stays local")
    return ("127.0.0.1" if host == "localhost" else host), parts.port


@dataclass
class Target:
    questionnaire_url: str
    alerting_url: str
    nats_url: str
    description: str
    cpu: CpuTracker
    services: list[ServiceProcess] = field(default_factory=list)

    def check_alive(self) -> None:
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited during the run:\n{service.log_tail()}")


def start_embedded(
    stack: contextlib.ExitStack,
    workdir: Path,
    extra_env: dict[str, str],
    log_dir: Path | None,
    processes: dict[str, int],
) -> Target:
    print(f"starting NATS, PostgreSQL and the services in {workdir} …", file=sys.stderr, flush=True)
    nats_server = EmbeddedNats(workdir / "nats")
    stack.callback(nats_server.stop)
    nats_server.start()
    postgres = EmbeddedPostgres(workdir / "postgres")
    stack.callback(postgres.stop)
    postgres.start()
    env = {
        "ENVIRONMENT": "development",
        "NATS_URL": nats_server.url,
        "NATS_MONITOR_URL": nats_server.monitor_url,
        "DATABASE_URL": postgres.url,
        **extra_env,
    }
    services = [
        ServiceProcess(name, env, log_dir or workdir / "logs", extra_args=UVICORN_ARGS + _workers(name, processes))
        for name in SERVICES
    ]
    for service in services:
        stack.callback(service.stop)
        service.spawn()
    for service in services:
        service.wait_ready(90.0)
    pids = {s.name: s.process.pid for s in services if s.process is not None}
    if nats_server.process is not None:
        pids["nats-server"] = nats_server.process.pid
    return Target(
        questionnaire_url=services[0].url,
        alerting_url=services[1].url,
        nats_url=nats_server.url,
        description=(
            "embedded: nats-server (sync_interval: always) + PostgreSQL 16 (pgserver, synchronous_commit on) "
            "+ 2 uvicorn processes (--loop uvloop --http httptools --no-access-log)"
            + (f", env {extra_env}" if extra_env else "")
        ),
        cpu=CpuTracker(pids=pids, postmaster=postmaster_pid(workdir / "postgres")),
        services=services,
    )


def use_running(args: argparse.Namespace) -> Target:
    for url, what in ((args.questionnaire_url, "questionnaire"), (args.alerting_url, "alerting")):
        if not http_ready(url.rstrip("/")):
            raise SystemExit(f"the {what} service at {url} does not answer /readyz with 200")
    return Target(
        questionnaire_url=args.questionnaire_url.rstrip("/"),
        alerting_url=args.alerting_url.rstrip("/"),
        nats_url=args.nats_url,
        description=f"running services: {args.questionnaire_url}, {args.alerting_url}, {args.nats_url}",
        cpu=CpuTracker(),
    )


# --------------------------------------------------------------------------------------------------
# The coordinator
# --------------------------------------------------------------------------------------------------


class AlertObserver:
    """A core NATS subscription on alert.raised: when each submission's alert became visible."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.unparsable = 0
        self._nc: Any = None

    async def start(self, url: str) -> None:
        import nats

        self._nc = await nats.connect(
            servers=[url], name="bench-observer", connect_timeout=5, max_reconnect_attempts=60, reconnect_time_wait=0.5
        )
        await self._nc.subscribe(
            ALERT_SUBJECT, cb=self._on_message, pending_msgs_limit=2_000_000, pending_bytes_limit=1 << 30
        )
        await self._nc.flush(timeout=5)

    async def _on_message(self, msg: Any) -> None:
        at = time.monotonic()
        try:
            submission_id = orjson.loads(msg.data)["data"].get("submission_id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.unparsable += 1
            return
        if submission_id and submission_id not in self.seen:
            self.seen[str(submission_id)] = at

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


async def _spawn_worker(plan: WorkerPlan) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--worker",
        orjson.dumps(asdict(plan)).decode(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def run_phase(
    target: Target, observer: AlertObserver, settings: Settings, rate: float, duration: float
) -> dict[str, Any]:
    count = round(rate * duration)
    if count < 1 or count > MAX_REQUESTS_PER_PHASE:
        raise SystemExit(f"{rate}/s for {duration}s is {count} requests: keep it within 1..{MAX_REQUESTS_PER_PHASE}")
    host, port = require_loopback(target.questionnaire_url, "--questionnaire-url")
    workers = max(1, min(settings.workers, count))
    plans = [
        WorkerPlan(
            index=i,
            workers=workers,
            rate=rate,
            count=count,
            duration_s=duration,
            host=host,
            port=port,
            connections=max(1, settings.connections // workers),
            timeout_s=settings.timeout_s,
            auth_secret=settings.auth_secret,
            auth_issuer=settings.auth_issuer,
            auth_audience=settings.auth_audience,
        )
        for i in range(workers)
    ]
    processes: list[asyncio.subprocess.Process] = []
    marker: asyncio.Task[None] | None = None
    try:
        for plan in plans:
            processes.append(await _spawn_worker(plan))
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), timeout=120.0 + count / 5000)
            if line.strip() != b"READY":
                raise RuntimeError(f"a load worker failed to start (exit {await process.wait()})")
        t0 = time.monotonic() + 0.3
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{t0!r}\n".encode())
            await process.stdin.drain()
        cpu_marks: dict[str, dict[str, float]] = {}
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        cpu_marks["start"] = target.cpu.snapshot()
        sends_end = t0 + duration

        async def mark_load_end() -> None:
            await asyncio.sleep(max(0.0, sends_end - time.monotonic()))
            cpu_marks["load_end"] = target.cpu.snapshot()

        marker = asyncio.create_task(mark_load_end())
        reads = [asyncio.ensure_future(p.stdout.read()) for p in processes if p.stdout is not None]
        try:
            _, unfinished = await asyncio.wait(reads, timeout=duration + settings.timeout_s + 60.0)
        finally:
            for read in reads:
                read.cancel()  # no-op for the finished ones
        if unfinished:
            raise RuntimeError("the load workers did not finish in time")
        outputs = [read.result() for read in reads]
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=30.0)
        await marker
    finally:
        if marker is not None:
            marker.cancel()
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(TimeoutError, ProcessLookupError):
                    await asyncio.wait_for(process.wait(), timeout=5.0)
    if not all(outputs):
        raise RuntimeError(f"a load worker failed (exit codes {[p.returncode for p in processes]})")
    parts = [orjson.loads(out) for out in outputs]

    due = [0.0] * count
    statuses = [STATUS_TIMEOUT] * count
    latencies = [-1.0] * count
    lags = [-1.0] * count
    start_lags = [-1.0] * count
    ids = [""] * count
    for part in parts:
        for j, k in enumerate(part["k"]):
            due[k] = t0 + k / rate
            statuses[k] = part["status"][j]
            latencies[k] = part["latency"][j]
            lags[k] = part["send_lag"][j]
            start_lags[k] = part["start_lag"][j]
            ids[k] = part["ids"][j]
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
    counts = Counter(statuses)
    non_2xx = {str(code): n for code, n in sorted(counts.items()) if code >= 300 or 0 < code < 200}
    load_window = cpu_marks.get("load_end", cpu_marks["settled"])
    generator_window = sum(p["cpu_window_s"] for p in parts)
    generator_total = sum(p["cpu_total_s"] for p in parts)
    cpu_load_pct = {
        name: round(100.0 * (load_window[name] - cpu_marks["start"][name]) / duration, 1)
        for name in load_window
        if name in cpu_marks["start"]
    }
    cpu_load_pct["load generator"] = round(100.0 * generator_window / duration, 1)
    cpu_ms_per_submission = {
        name: round(1000.0 * (cpu_marks["settled"][name] - cpu_marks["start"][name]) / max(1, len(accepted)), 3)
        for name in cpu_marks["settled"]
        if name in cpu_marks["start"]
    }
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
        "alerts_observed": len(alert_latencies),
        "alerts_missing": len(accepted) - len(alert_latencies),
        "alerts_rps": round(len(alert_latencies) / max(duration, last_alert - t0), 1) if last_alert else 0.0,
        "generator_lag_ms": summary_ms([lag for lag in start_lags if lag >= 0]),
        "wait_to_send_ms": summary_ms([lag for lag in lags if lag >= 0]),
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
    observer = AlertObserver()
    await observer.start(target.nats_url)
    results: list[dict[str, Any]] = []
    try:
        if args.warmup > 0:
            print(f"warm-up: {args.warmup_rate:g}/s for {args.warmup:g}s …", file=sys.stderr, flush=True)
            warm = await run_phase(target, observer, settings, args.warmup_rate, args.warmup)
            print(f"  warm-up: {_one_line(warm)}", file=sys.stderr, flush=True)
        for rate in args.rates:
            print(f"rate {rate:g}/s for {args.duration:g}s …", file=sys.stderr, flush=True)
            result = await run_phase(target, observer, settings, rate, args.duration)
            print(f"  {_one_line(result)}", file=sys.stderr, flush=True)
            results.append(result)
            target.check_alive()
    finally:
        await observer.close()
    return results


def _one_line(r: dict[str, Any]) -> str:
    return (
        f"{r['accepted_2xx']}/{r['requests']} accepted ({r['achieved_rps']}/s), "
        f"202 p99 {_fmt(r['post_to_202_ms']['p99'])} ms, alert p99 {_fmt(r['post_to_alert_ms']['p99'])} ms, "
        f"alerts missing {r['alerts_missing']}, errors {r['non_2xx'] + r['timeouts'] + r['connection_errors']}, "
        f"settled {r['settled']}"
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    c = report["config"]
    lines = [
        f"## Submissions benchmark, {report['started_at']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"{m['implementation']} {m['python']}, Linux {m['kernel']}, commit {m['commit']}",
        f"- target: {c['target']}",
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
            f"| {r['offered_rate']:g} | {r['achieved_rps']:g} | {_fmt(post['p50'])} | {_fmt(post['p95'])} "
            f"| {_fmt(post['p99'])} | {_fmt(alert['p50'])} | {_fmt(alert['p95'])} | {_fmt(alert['p99'])} "
            f"| {r['alerts_rps']:g} | {r['non_2xx']} | {r['timeouts']} | {r['connection_errors']} "
            f"| {r['alerts_missing']} | {_fmt(r['generator_lag_ms']['p99'])} | {_fmt(r['wait_to_send_ms']['p99'])} |"
        )
    groups: list[str] = []
    for r in report["results"]:
        groups += [g for g in r["cpu_percent_during_load"] if g not in groups]
    lines += [
        "",
        "CPU during the load window, % of one core (the machine has "
        f"{100 * (m['usable_cpus'] or 1)}%), and CPU ms per accepted submission until the pipeline settled:",
        "",
        "| offered/s | " + " | ".join(groups) + " | sum |",
        "|---:|" + "---:|" * (len(groups) + 1),
    ]
    for r in report["results"]:
        pct = r["cpu_percent_during_load"]
        lines.append(
            f"| {r['offered_rate']:g} | "
            + " | ".join(f"{pct[g]:.0f}%" if g in pct else "–" for g in groups)
            + f" | {sum(pct.values()):.0f}% |"
        )
    for r in report["results"]:
        per = r["cpu_ms_per_submission"]
        lines.append(
            f"| {r['offered_rate']:g} (ms/sub) | "
            + " | ".join(f"{per[g]:.2f}" if g in per else "–" for g in groups)
            + f" | {sum(per.values()):.2f} |"
        )
    unsettled = [r["offered_rate"] for r in report["results"] if not r["settled"]]
    if unsettled:
        lines += ["", f"Not settled before the next rate (backlog carried over): {unsettled}."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    rates = [float(x) for x in text.split(",") if x.strip()]
    if not rates or any(not 0 < r <= MAX_RATE for r in rates):
        raise argparse.ArgumentTypeError(f"rates are comma-separated numbers in (0, {MAX_RATE:g}]")
    return rates


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("use NAME=VALUE")
    return name, value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=_rates, default=_rates("250,500,1000,2000"), help="offered rates, requests/s")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per rate (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, not reported (default 3)")
    p.add_argument("--warmup-rate", type=float, default=100.0, help="warm-up rate (default 100/s)")
    p.add_argument("--workers", type=int, default=1, help="load-generating processes (default 1)")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections, all workers (default 256)")
    p.add_argument("--timeout", type=float, default=10.0, help="request timeout from its due time (default 10s)")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="wait for alerts after the last response (30s)")
    p.add_argument("--settle-timeout", type=float, default=60.0, help="wait for consumers to catch up (60s)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--log-dir", type=Path, help="keep the embedded services' logs here (default: a temp dir)")
    p.add_argument("--questionnaire-url", help="use a running questionnaire service (e.g. http://127.0.0.1:8001)")
    p.add_argument("--alerting-url", help="use a running alerting service (e.g. http://127.0.0.1:8002)")
    p.add_argument("--nats-url", help="the NATS server the running services use (e.g. nats://127.0.0.1:4222)")
    p.add_argument(
        "--service-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the embedded services (e.g. DB_POOL_MAX=20); repeatable",
    )
    p.add_argument("--questionnaire-processes", type=int, default=1, help="uvicorn --workers for questionnaire")
    p.add_argument("--alerting-processes", type=int, default=1, help="uvicorn --workers for alerting")
    p.add_argument("--auth-secret", default=os.environ.get("AUTH_SECRET") or DEV_AUTH_SECRET)
    p.add_argument("--auth-issuer", default=os.environ.get("AUTH_ISSUER") or "oncofollow-dev")
    p.add_argument("--auth-audience", default=os.environ.get("AUTH_AUDIENCE") or "oncofollow")
    args = p.parse_args(argv)
    given = [args.questionnaire_url, args.alerting_url, args.nats_url]
    if any(given) and not all(given):
        p.error("--questionnaire-url, --alerting-url and --nats-url go together")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 120 or not 0 < args.warmup_rate <= MAX_RATE:
        p.error("--duration is in (0, 600], --warmup in [0, 120], --warmup-rate in (0, 50000]")
    if not 1 <= args.workers <= 16 or not 1 <= args.connections <= 10_000:
        p.error("--workers is in 1..16 and --connections in 1..10000")
    if not 0 < args.timeout <= 120 or not 0 <= args.drain_timeout <= 600 or not 0 <= args.settle_timeout <= 600:
        p.error("--timeout is in (0, 120], --drain-timeout and --settle-timeout in [0, 600]")
    if all(given):
        require_loopback(args.questionnaire_url, "--questionnaire-url")
        require_loopback(args.alerting_url, "--alerting-url")
        require_loopback(args.nats_url, "--nats-url")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return worker_main(argv[1])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    settings = Settings(
        workers=args.workers,
        connections=args.connections,
        timeout_s=args.timeout,
        drain_timeout_s=args.drain_timeout,
        settle_timeout_s=args.settle_timeout,
        auth_secret=args.auth_secret,
        auth_issuer=args.auth_issuer,
        auth_audience=args.auth_audience,
    )
    target: Target | None = None
    try:
        with contextlib.ExitStack() as stack:
            if args.questionnaire_url:
                target = use_running(args)
            else:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oncofollow-bench-")))
                processes = {"questionnaire": args.questionnaire_processes, "alerting": args.alerting_processes}
                target = start_embedded(stack, workdir, dict(args.service_env), args.log_dir, processes)
            results = asyncio.run(run_all(target, args, settings))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the load, the services and the servers", file=sys.stderr)
        return 130
    report = {
        "benchmark": "submissions",
        "format": 1,
        "started_at": started,
        "machine": machine_info(),
        "config": {
            "target": target.description,
            "rates": args.rates,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "warmup_rate": args.warmup_rate,
            "workers": args.workers,
            "connections": args.connections,
            "timeout_s": args.timeout,
            "drain_timeout_s": args.drain_timeout,
            "settle_timeout_s": args.settle_timeout,
            "payload": "questionnaire_response(RED_NAUSEA), a new patient and Idempotency-Key per request",
        },
        "results": results,
    }
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"\nJSON written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
