"""What the benchmarks in bench/ share: the machine, CPU from /proc, percentiles, the embedded servers,
the load worker processes and the report. Imported as ``common`` (bench/ is the scripts' directory)."""

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
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/x.py` without PYTHONPATH or an editable install

import orjson  # noqa: E402

from shared.devservers import EmbeddedNats, EmbeddedPostgres  # noqa: E402
from shared.http.protocol import UVICORN_OPTIONS  # noqa: E402
from shared.settings import DEV_AUTH_SECRET  # noqa: E402
from shared.testing.services import ServiceProcess  # noqa: E402

T = TypeVar("T")

STATUS_TIMEOUT = -1  # no response within --timeout of the due time
STATUS_CONN_ERROR = 0  # connection refused / reset, or a response we could not parse
DISPATCH_TICK_S = 0.002
MAX_REQUESTS_PER_PHASE = 500_000
MAX_RATE = 50_000.0
# Added to the services' own command line (uvicorn_command: the problem-answering httptools protocol, no access
# log), which ServiceProcess runs; UVICORN_FLAGS is how the reports describe both.
UVICORN_ARGS = ("--loop", "uvloop")
UVICORN_FLAGS = " ".join((*UVICORN_ARGS, *UVICORN_OPTIONS[:3]))
EMBEDDED_SERVERS = (
    "embedded: nats-server (sync_interval: always) + PostgreSQL 16 (pgserver, synchronous_commit on, "
    "commit_delay 200 µs) "
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# Percentiles
# --------------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 2)


def summary_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values_s)
    return {
        "p50": ms(percentile(ordered, 50)),
        "p95": ms(percentile(ordered, 95)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1] if ordered else None),
        "mean": ms(sum(ordered) / len(ordered) if ordered else None),
    }


# --------------------------------------------------------------------------------------------------
# CPU from /proc, the machine
# --------------------------------------------------------------------------------------------------


def proc_stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, CPU s of waited-for children) of a live process."""
    fields = proc_stat_fields(pid)
    if fields is None:
        return None
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


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat), to see what else ran meanwhile."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
        return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    return None


def cpu_percent(
    start: dict[str, float], end: dict[str, float], duration: float, skip: str | None = None
) -> dict[str, float]:
    """CPU of each group between two snapshots, in % of one core."""
    return {
        name: round(100.0 * (end[name] - start[name]) / duration, 1) for name in end if name in start and name != skip
    }


def cpu_ms_per(start: dict[str, float], end: dict[str, float], n: int, skip: str | None = None) -> dict[str, float]:
    """CPU ms of each group between two snapshots per one of ``n`` (at least one)."""
    return {
        name: round(1000.0 * (end[name] - start[name]) / max(1, n), 3) for name in end if name in start and name != skip
    }


def postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


# A fixed amount of pure-Python work, timed before and after a run: how fast the machine was then. A shared
# or throttled VM can be slower for minutes at a time (measured: a loop like this one took up to twice as long),
# and then every figure of the run is worse; two runs are only comparable when their probes agree.
SPEED_PROBE_LOOPS = 2_000_000
_speed_probes_ms: list[float] = []


def speed_probe_ms() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(SPEED_PROBE_LOOPS):
        total += i
    return round(1000.0 * (time.perf_counter() - started), 1)


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
        "speed_probe_ms": {"before": _speed_probes_ms[0] if _speed_probes_ms else None, "after": speed_probe_ms()},
    }


# --------------------------------------------------------------------------------------------------
# The system under test: embedded servers and uvicorn processes, or running ones
# --------------------------------------------------------------------------------------------------


def uvicorn_args(processes: int) -> tuple[str, ...]:
    return UVICORN_ARGS + (("--workers", str(processes)) if processes > 1 else ())


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


@dataclass(kw_only=True)
class SystemUnderTest:
    description: str
    cpu: CpuTracker
    services: list[ServiceProcess] = field(default_factory=list)  # the ones started here

    def check_alive(self) -> None:
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited during the run:\n{service.log_tail()}")


@dataclass
class Embedded:
    """nats-server, PostgreSQL and the services on them, all stopped when the stack closes."""

    nats_url: str
    database_url: str
    services: list[ServiceProcess]
    cpu: CpuTracker


def start_embedded_services(
    stack: contextlib.ExitStack,
    workdir: Path,
    extra_env: dict[str, str],
    log_dir: Path | None,
    processes: dict[str, int],
) -> Embedded:
    """NATS, PostgreSQL, then each service (uvicorn --workers processes[name]), once all are ready."""
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
        ServiceProcess(name, env, log_dir or workdir / "logs", extra_args=uvicorn_args(count))
        for name, count in processes.items()
    ]
    for service in services:
        stack.callback(service.stop)
        service.spawn()
    for service in services:
        service.wait_ready(90.0)  # /readyz: NATS and PostgreSQL reachable, migrations applied
    pids = {s.name: s.process.pid for s in services if s.process is not None}
    if nats_server.process is not None:
        pids["nats-server"] = nats_server.process.pid
    return Embedded(
        nats_url=nats_server.url,
        database_url=postgres.url,
        services=services,
        cpu=CpuTracker(pids=pids, postmaster=postmaster_pid(workdir / "postgres")),
    )


# --------------------------------------------------------------------------------------------------
# Worker processes: `SCRIPT --worker PLAN_JSON` (this side and theirs)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What one load worker sends; the plans of each benchmark add their own fields."""

    index: int
    workers: int
    rate: float
    count: int  # requests in the phase, all workers together; this worker sends k = index, index+workers, …
    duration_s: float
    host: str
    port: int
    connections: int
    timeout_s: float


P = TypeVar("P", bound=LoadPlan)


def load_plans(
    plan_type: type[P],
    url: str,
    what: str,
    rate: float,
    duration: float,
    settings: Any,
    **extra: Any,
) -> list[P]:
    """One plan per worker (``settings.workers``, at most one per request) for ``rate`` over ``duration``,
    the ``settings.connections`` shared out between them."""
    count = round(rate * duration)
    if count < 1 or count > MAX_REQUESTS_PER_PHASE:
        raise SystemExit(f"{rate}/s for {duration}s is {count} requests: keep it within 1..{MAX_REQUESTS_PER_PHASE}")
    host, port = require_loopback(url, what)
    workers = max(1, min(settings.workers, count))
    return [
        plan_type(
            index=i,
            workers=workers,
            rate=rate,
            count=count,
            duration_s=duration,
            host=host,
            port=port,
            connections=max(1, settings.connections // workers),
            timeout_s=settings.timeout_s,
            **extra,
        )
        for i in range(workers)
    ]


def set_nodelay(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when there is one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def write_stdout(data: bytes) -> None:
    # The event loop may have left stdout non-blocking: a large write would then stop at the pipe's size.
    fd = sys.stdout.fileno()
    os.set_blocking(fd, True)
    pending = memoryview(data)
    while pending:
        pending = pending[os.write(fd, pending) :]


def worker_start() -> float | None:
    """READY on stdout (the requests are built); then t0 from stdin, or None if the coordinator went away."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    readable, _, _ = select.select([sys.stdin], [], [], 300.0)
    line = sys.stdin.readline() if readable else ""
    return float(line) if line.strip() else None


async def spawn_script(script: Path, flag: str, plan: Any, **options: Any) -> asyncio.subprocess.Process:
    """``python SCRIPT FLAG PLAN_JSON`` with pipes on stdin and stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        flag,
        orjson.dumps(asdict(plan)).decode(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **options,
    )


async def run_workers(
    script: Path, plans: Sequence[LoadPlan], snapshot: Callable[[], dict[str, float]]
) -> tuple[float, list[dict[str, Any]], dict[str, dict[str, float]]]:
    """One phase of load workers (``script --worker``), one timetable: (t0, their results, CPU snapshots
    "start" at t0 and "load_end" at t0 + duration)."""
    count, duration, timeout_s = plans[0].count, plans[0].duration_s, plans[0].timeout_s
    processes: list[asyncio.subprocess.Process] = []
    marker: asyncio.Task[None] | None = None
    outputs: list[bytes] = []
    cpu_marks: dict[str, dict[str, float]] = {}
    try:
        for plan in plans:
            processes.append(await spawn_script(script, "--worker", plan))
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
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        cpu_marks["start"] = snapshot()

        async def mark_load_end() -> None:
            await asyncio.sleep(max(0.0, t0 + duration - time.monotonic()))
            cpu_marks["load_end"] = snapshot()

        marker = asyncio.create_task(mark_load_end())
        reads = [asyncio.ensure_future(p.stdout.read()) for p in processes if p.stdout is not None]
        try:
            _, unfinished = await asyncio.wait(reads, timeout=duration + timeout_s + 60.0)
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
    return t0, [orjson.loads(out) for out in outputs], cpu_marks


async def warmup_and_rates(
    args: argparse.Namespace,
    run: Callable[[int, float, float], Awaitable[dict[str, Any]]],
    one_line: Callable[[dict[str, Any]], str],
    check_alive: Callable[[], None],
) -> list[dict[str, Any]]:
    """The warm-up (phase 0, not reported), then each of ``args.rates`` (phases 1, 2, …): their results."""
    results: list[dict[str, Any]] = []
    if args.warmup > 0:
        print(f"warm-up: {args.warmup_rate:g}/s for {args.warmup:g}s …", file=sys.stderr, flush=True)
        warm = await run(0, args.warmup_rate, args.warmup)
        print(f"  warm-up: {one_line(warm)}", file=sys.stderr, flush=True)
    for phase, rate in enumerate(args.rates, 1):
        print(f"rate {rate:g}/s for {args.duration:g}s …", file=sys.stderr, flush=True)
        result = await run(phase, rate, args.duration)
        print(f"  {one_line(result)}", file=sys.stderr, flush=True)
        results.append(result)
        check_alive()
    return results


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def report_head(benchmark: str, started: str) -> dict[str, Any]:
    return {"benchmark": benchmark, "format": 1, "started_at": started, "machine": machine_info()}


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The report's config of the load options every benchmark has."""
    return {
        "rates": args.rates,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "warmup_rate": args.warmup_rate,
        "workers": args.workers,
        "connections": args.connections,
        "timeout_s": args.timeout,
    }


def report_intro(report: dict[str, Any], title: str) -> list[str]:
    """The markdown's title, machine and target lines."""
    m = report["machine"]
    return [
        f"## {title} benchmark, {report['started_at']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"{m['implementation']} {m['python']}, Linux {m['kernel']}, commit {m['commit']}",
        f"- machine speed probe (a fixed Python loop; lower is faster): {_probe_text(m.get('speed_probe_ms'))}",
        f"- target: {report['config']['target']}",
    ]


def _probe_text(probe: dict[str, float | None] | None) -> str:
    if not probe:
        return "not taken"
    return f"{fmt(probe.get('before'))} ms before the run, {fmt(probe.get('after'))} ms after"


def cpu_table(results: Sequence[dict[str, Any]], intro: str, per: tuple[str, str, int] | None = None) -> list[str]:
    """The CPU table's lines (a blank one and ``intro`` first): % of one core during the load by group, and
    CPU ms per unit by group if ``per`` is (result key, row label, decimals)."""
    groups: list[str] = []
    for r in results:
        groups += [g for g in r["cpu_percent_during_load"] if g not in groups]
    lines = ["", intro, "", "| offered/s | " + " | ".join(groups) + " | sum |", "|---:|" + "---:|" * (len(groups) + 1)]
    for r in results:
        pct = r["cpu_percent_during_load"]
        lines.append(
            f"| {r['offered_rate']:g} | "
            + " | ".join(f"{pct[g]:.0f}%" if g in pct else "–" for g in groups)
            + f" | {sum(pct.values()):.0f}% |"
        )
    if per is not None:
        key, label, decimals = per
        for r in results:
            values = r[key]
            lines.append(
                f"| {r['offered_rate']:g} ({label}) | "
                + " | ".join(f"{values[g]:.{decimals}f}" if g in values else "–" for g in groups)
                + f" | {sum(values.values()):.{decimals}f} |"
            )
    return lines


def emit(report: dict[str, Any], text: str, json_path: Path | None) -> None:
    """The markdown on stdout, and the report as JSON to ``--json`` if given."""
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"\nJSON written to {json_path}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def rates_arg(text: str) -> list[float]:
    rates = [float(x) for x in text.split(",") if x.strip()]
    if not rates or any(not 0 < r <= MAX_RATE for r in rates):
        raise argparse.ArgumentTypeError(f"rates are comma-separated numbers in (0, {MAX_RATE:g}]")
    return rates


def rates_parser(doc: str | None, default_rates: str) -> argparse.ArgumentParser:
    """The command line with the script's docstring, --rates (``default_rates``) and --duration (10 s)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=rates_arg, default=rates_arg(default_rates), help="offered rates, requests/s")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per rate (default 10)")
    return p


def env_pair_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("use NAME=VALUE")
    return name, value


def add_service_env_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--service-env", type=env_pair_arg, action="append", default=[], metavar="NAME=VALUE", help=help)


def add_auth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auth-secret", default=os.environ.get("AUTH_SECRET") or DEV_AUTH_SECRET)
    p.add_argument("--auth-issuer", default=os.environ.get("AUTH_ISSUER") or "oncofollow-dev")
    p.add_argument("--auth-audience", default=os.environ.get("AUTH_AUDIENCE") or "oncofollow")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def begin() -> str:
    """SIGTERM as Ctrl-C (everything started is stopped on the way out); the start time for the report."""
    signal.signal(signal.SIGTERM, _interrupt)
    _speed_probes_ms.append(speed_probe_ms())
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# The open-loop HTTP client of the load workers
# --------------------------------------------------------------------------------------------------

STATUS_PENDING = -2  # in flight or waiting for a connection (never reported)
EXPIRY_CHECK_S = 0.05  # how often requests past their timeout are looked for
MAX_IDLE_S = 3.0  # uvicorn closes keep-alive connections idle for 5 s


class CallbackConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time; parses just enough of a response
    (status, Content-Length, Connection: close) and hands it to the client."""

    __slots__ = ("buffer", "client", "current", "got_bytes", "reused", "transport")

    def __init__(self, client: LoadClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.current = -1  # the request in flight on it
        self.reused = False
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        try:
            status = int(buffer[9:12])
            head = buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            elif status == 204 or status == 304 or status < 200:
                length = 0
            else:
                raise ValueError("a response without Content-Length")  # never from uvicorn for these
        except ValueError as exc:
            self.buffer = b""
            self.client.on_error(self, exc)
            return
        if len(buffer) < end + 4 + length:
            self.buffer = buffer
            return
        self.buffer = b""
        body = buffer[end + 4 : end + 4 + length] if self.client.keep_bodies else b""
        self.client.on_response(self, status, body, b"\r\nconnection: close" not in head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.on_lost(self, exc)


class LoadClient:
    """At most ``limit`` connections; a request due while all are busy waits for one (and that counts).

    Everything runs in callbacks: no task per request, so that the generator stays cheap beside the
    services on a 2-core machine. A reused connection the server had closed is retried once on a new one:
    every benchmark's requests are idempotent (a heartbeat's tablet and sent_at, a submission's
    Idempotency-Key). ``keep_bodies`` keeps the body of each 2xx response."""

    def __init__(
        self, plan: LoadPlan, requests: Sequence[tuple[float, bytes]], t0: float, *, keep_bodies: bool = False
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.limit = plan.host, plan.port, max(1, plan.connections)
        self.timeout_s = plan.timeout_s
        self.requests = requests
        self.t0 = t0
        n = len(requests)
        self.status = [STATUS_PENDING] * n
        self.start_lag = [-1.0] * n  # due time → handed to the client: the generator's own lateness
        self.send_lag = [-1.0] * n  # due time → written on a connection (incl. waiting for one)
        self.latency = [-1.0] * n  # due time → whole response read
        self.keep_bodies = keep_bodies
        self.bodies: list[bytes] = [b""] * n if keep_bodies else []
        self.retried_once = bytearray(n)
        self.pending = 0
        self.idle: list[tuple[float, CallbackConnection]] = []
        self.busy: set[CallbackConnection] = set()
        self.backlog: deque[int] = deque()
        self.open = 0  # connected or connecting
        self.opened = 0
        self.retried = 0
        self.errors: Counter[str] = Counter()
        self._connects: set[asyncio.Task[None]] = set()

    def due(self, i: int) -> float:
        return self.t0 + self.requests[i][0]

    def submit(self, i: int, now: float) -> None:
        self.pending += 1
        self.start_lag[i] = now - self.due(i)
        while self.idle:
            since, connection = self.idle.pop()
            if now - since <= MAX_IDLE_S and connection.transport is not None:
                self._send(connection, i, reused=True)
                return
            if connection.transport is not None:
                connection.transport.close()
        if self.open < self.limit:
            self._connect(i)
        else:
            self.backlog.append(i)

    def _connect(self, i: int) -> None:
        self.open += 1
        self.opened += 1
        task = self.loop.create_task(self._open(i))
        self._connects.add(task)
        task.add_done_callback(self._connects.discard)

    async def _open(self, i: int) -> None:
        try:
            _, connection = await self.loop.create_connection(lambda: CallbackConnection(self), self.host, self.port)
        except OSError as exc:
            self.open -= 1
            self._finish(i, STATUS_CONN_ERROR, type(exc).__name__)
            self._serve_backlog_with_new_connection()
            return
        self._send(connection, i, reused=False)

    def _send(self, connection: CallbackConnection, i: int, *, reused: bool) -> None:
        if self.status[i] != STATUS_PENDING:  # timed out while it waited
            self._free(connection)
            return
        assert connection.transport is not None
        connection.current, connection.reused, connection.got_bytes = i, reused, False
        self.busy.add(connection)
        self.send_lag[i] = time.monotonic() - self.due(i)
        connection.transport.write(self.requests[i][1])

    def _finish(self, i: int, status: int, error: str | None = None) -> None:
        if self.status[i] != STATUS_PENDING:
            return
        self.status[i] = status
        self.pending -= 1
        if status > 0:
            self.latency[i] = time.monotonic() - self.due(i)
        if error is not None:
            self.errors[error] += 1

    def _free(self, connection: CallbackConnection) -> None:
        """A connection with nothing in flight: the next waiting request, or the idle list."""
        while self.backlog:
            j = self.backlog.popleft()
            if self.status[j] == STATUS_PENDING:
                self._send(connection, j, reused=True)
                return
        self.idle.append((time.monotonic(), connection))

    def _serve_backlog_with_new_connection(self) -> None:
        while self.backlog and self.open < self.limit:
            j = self.backlog.popleft()
            if self.status[j] == STATUS_PENDING:
                self._connect(j)
                return

    def on_response(self, connection: CallbackConnection, status: int, body: bytes, reusable: bool) -> None:
        i, connection.current = connection.current, -1
        self.busy.discard(connection)
        if i >= 0:
            if self.keep_bodies and 200 <= status < 300 and self.status[i] == STATUS_PENDING:
                self.bodies[i] = body
            self._finish(i, status)
        if reusable:
            self._free(connection)
        elif connection.transport is not None:
            connection.transport.close()

    def on_error(self, connection: CallbackConnection, exc: Exception) -> None:
        i, connection.current = connection.current, -1
        self.busy.discard(connection)
        if i >= 0:
            self._finish(i, STATUS_CONN_ERROR, type(exc).__name__)
        if connection.transport is not None:
            connection.transport.abort()

    def on_lost(self, connection: CallbackConnection, exc: Exception | None) -> None:
        self.open -= 1
        self.busy.discard(connection)
        self.idle = [(since, c) for since, c in self.idle if c is not connection]
        connection.transport = None
        i, connection.current = connection.current, -1
        if i >= 0 and self.status[i] == STATUS_PENDING:
            if connection.reused and not connection.got_bytes and not self.retried_once[i]:
                self.retried_once[i] = 1
                self.retried += 1
                self._connect(i)
                return
            self._finish(i, STATUS_CONN_ERROR, type(exc).__name__ if exc else "ConnectionClosed")
        self._serve_backlog_with_new_connection()

    def expire(self, now: float) -> None:
        """Requests without a response ``timeout_s`` after their due time: timeouts (their connection is closed)."""
        limit = now - self.timeout_s
        while self.backlog and self.due(self.backlog[0]) <= limit:
            self._finish(self.backlog.popleft(), STATUS_TIMEOUT)
        for connection in [c for c in self.busy if c.current >= 0 and self.due(c.current) <= limit]:
            self._finish(connection.current, STATUS_TIMEOUT)
            connection.current = -1
            self.busy.discard(connection)
            if connection.transport is not None:
                connection.transport.abort()

    def close(self) -> None:
        for i, status in enumerate(self.status):
            if status == STATUS_PENDING:
                self.status[i] = STATUS_TIMEOUT
        for task in self._connects:
            task.cancel()
        for connection in [c for _, c in self.idle] + list(self.busy):
            if connection.transport is not None:
                connection.transport.abort()
        self.idle.clear()
        self.busy.clear()


async def drive_open_loop(
    plan: LoadPlan, requests: Sequence[tuple[float, bytes]], t0: float, *, keep_bodies: bool = False
) -> dict[str, Any]:
    """Hand every request (due offset in s, raw HTTP/1.1 request) to the client at its due time
    (t0 + offset, time.monotonic), whatever the responses; returns per-request results."""
    loop = asyncio.get_running_loop()
    client = LoadClient(plan, requests, t0, keep_bodies=keep_bodies)
    cpu_start = time.process_time()
    cpu_window: list[float] = []
    loop.call_later(
        max(0.0, t0 + plan.duration_s - time.monotonic()), lambda: cpu_window.append(time.process_time() - cpu_start)
    )
    n = len(requests)
    i = 0
    next_expiry = t0 + EXPIRY_CHECK_S
    while i < n:
        now = time.monotonic()
        while i < n and t0 + requests[i][0] <= now:
            client.submit(i, now)
            i += 1
        if now >= next_expiry:
            client.expire(now)
            next_expiry = now + EXPIRY_CHECK_S
        if i < n:
            # Ticks of at least DISPATCH_TICK_S: sub-millisecond sleeps would spin the loop (timers have 1 ms
            # resolution) and steal CPU from the services; a request handed over up to a tick late is still
            # timed from its due time.
            await asyncio.sleep(max(DISPATCH_TICK_S, t0 + requests[i][0] - time.monotonic()))
    deadline = t0 + (requests[-1][0] if requests else 0.0) + plan.timeout_s + 1.0
    while client.pending and time.monotonic() < deadline:
        client.expire(time.monotonic())
        await asyncio.sleep(EXPIRY_CHECK_S)
    client.close()
    return {
        "status": client.status,
        "start_lag": client.start_lag,
        "send_lag": client.send_lag,
        "latency": client.latency,
        "connections_opened": client.opened,
        "retried_on_stale_connection": client.retried,
        "connection_error_kinds": dict(client.errors),
        **({"bodies": client.bodies} if keep_bodies else {}),
        "cpu_window_s": cpu_window[0] if cpu_window else time.process_time() - cpu_start,
        "cpu_total_s": time.process_time(),
    }
