"""The one FastAPI app factory every service uses.

The lifespan opens the process's resources (asyncpg pool, NATS connection), applies migrations,
provisions the JetStream topology, and runs the outbox relay, the pull consumers and the dead-letter
forwarders until shutdown. Resources live in a typed ``Platform`` state, never in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from starlette.types import Message, Receive, Scope, Send

from shared import redaction
from shared.auth import TokenService
from shared.db.housekeeping import Purge, run_housekeeping
from shared.db.outbox import OutboxRelay
from shared.db.pool import apply_migrations, create_pool, pending_migrations
from shared.http.caching import NoStore
from shared.http.cors import OriginCors
from shared.http.limits import BodySizeLimit, ConcurrencyLimit
from shared.http.nosniff import NoSniff
from shared.http.openapi import document_problems
from shared.http.problems import install_problem_handlers, problem_response
from shared.http.queries import single_valued_query
from shared.http.routes import RequestOnlyRoute
from shared.http.transient import TransientRetry
from shared.logs import configure_logging
from shared.messaging.connection import connect, servers_not_syncing_always
from shared.messaging.consumer import ConsumerRunner, Subscription
from shared.messaging.deadletter import forward_exhausted
from shared.messaging.topology import UNLIMITED, ensure_topology
from shared.oidc import token_service
from shared.periodic import Clock, every, system_clock
from shared.pipeline_metrics import run_sampler
from shared.revocation import RevocationList
from shared.settings import ServiceSettings
from shared.telemetry import instrument_asyncpg, scrub_server_span, setup_metrics, setup_tracing

log = logging.getLogger(__name__)

# ES modules shared by more than one service's pages (served at /web/ by each): one copy of the logic they share.
WEB_MODULES = Path(__file__).resolve().parent.parent / "web"

BackgroundTask = Callable[["Platform", asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Platform:
    """What a request handler may use: the process's resources, typed."""

    name: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    nc: NATS
    js: JetStreamContext
    tokens: TokenService
    relay: OutboxRelay
    migrations: Path
    extras: Mapping[str, Any]
    revoked: RevocationList = field(default_factory=RevocationList)
    # Set when the process is told to stop: live streams end at once (their clients reconnect elsewhere or
    # later with their last event id) instead of holding the server's shutdown up.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    # One per scheduled job (the escalation check, the housekeeping...), set once its first round, run at start-up,
    # is over: rows a test writes after ``first_rounds_over`` are seen by no round before the job's next interval.
    first_rounds: list[asyncio.Event] = field(default_factory=list)

    def first_round_of_a_job(self) -> asyncio.Event:
        """The signal a new scheduled job sets when its first round is over (``periodic.every``'s ``first_round``)."""
        ran = asyncio.Event()
        self.first_rounds.append(ran)
        return ran

    async def first_rounds_over(self) -> None:
        """Wait until every scheduled job has run its first round: a test arranges its rows after that, not while
        a start-up check may read them (an alert written three days overdue, escalated under the test's eyes)."""
        await asyncio.gather(*(ran.wait() for ran in self.first_rounds))

    @property
    def clock(self) -> Clock:
        """What the service calls "now": the clock it was built with (its extras' ``"clock"``), the system's
        otherwise. Tests pin it, so that a day, an hour or a service level they check does not depend on when
        they run."""
        clock: Clock = self.extras.get("clock", system_clock)
        return clock

    @property
    def source(self) -> str:
        return f"/services/{self.name}"

    @property
    def schema(self) -> str:
        return self.name


@dataclass(frozen=True)
class ServiceDefinition:
    name: str  # also the PostgreSQL schema and the CloudEvents source
    settings: ServiceSettings
    routers: Sequence[APIRouter]
    migrations: Path
    subscriptions: Sequence[Subscription] = ()
    background: Sequence[BackgroundTask] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    version: str = "0.1.0"
    # Static pages served as they are (no build step): URL prefix -> directory; "/" redirects to ``home``.
    static: Mapping[str, Path] = field(default_factory=dict)
    # Headers the static pages are served with, from the running platform (a Content-Security-Policy naming the
    # origins the pages may reach, say); they replace any of the same name, on every answer, a refusal too.
    static_headers: Callable[[Platform], Awaitable[Mapping[str, str]]] | None = None
    home: str | None = None
    # Web origins whose pages may call this service (CORS, bearer tokens only: no credentials); none by default.
    cors_origins: Sequence[str] = ()
    # POST paths whose body is a file (a photo), not JSON, with their own size limit (limits.BodySizeLimit).
    raw_bodies: Mapping[str, int] = field(default_factory=dict)
    # Tables of the service's own that its hourly housekeeping purges, with the shared ones (outbox, inbox, keys).
    purges: Sequence[Purge] = ()


def scheduled_job(name: str, every_s: float, work: Callable[[Platform], Awaitable[object]]) -> BackgroundTask:
    """A background job of a service: ``work(platform)`` now, then every ``every_s`` seconds (``periodic.every``).
    The platform knows when its first round is over (``Platform.first_rounds_over``)."""

    def job(platform: Platform, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        # Not a coroutine function: the signal is the platform's as soon as the job is made, before it first runs.
        first_round = platform.first_round_of_a_job()
        return every(every_s, stop, lambda: work(platform), name=name, first_round=first_round)

    job.__name__ = name.replace(" ", "-")
    return job


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def request_now(platform: PlatformDep) -> datetime:
    """ "Now" for one request, read once from the service's clock (``Platform.clock``)."""
    return platform.clock()


# A route's "now": every date it computes or writes agrees with the service's other checks (its escalation, say).
NowDep = Annotated[datetime, Depends(request_now)]


@contextlib.asynccontextmanager
async def run_platform(service: ServiceDefinition, *, pipeline_metrics: bool = False) -> AsyncIterator[Platform]:
    """Open the resources, start the background work, and stop it all cleanly on exit.

    ``pipeline_metrics``: sample the outbox, the consumers and the dead letters for the metrics (only when
    something exports them: ``setup_metrics``)."""
    settings = service.settings
    pool = await create_pool(
        settings.database_url,
        service.name,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    subscriptions = [_tuned(s, settings) for s in service.subscriptions]
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    nc: NATS | None = None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, service.name, service.migrations)
        nc = await connect(settings.nats_servers, name=service.name)
        if settings.require_nats_sync_always:
            await _require_sync_always(settings)
        js = nc.jetstream(timeout=5)
        await ensure_topology(js, tuple(s.spec for s in subscriptions), replicas=settings.nats_stream_replicas)
        relay = OutboxRelay(nc, service.name, dsn=settings.database_url)
        platform = Platform(
            name=service.name,
            settings=settings,
            pool=pool,
            nc=nc,
            js=js,
            tokens=token_service(settings),
            relay=relay,
            migrations=service.migrations,
            extras=service.extras,
        )
        tasks.append(asyncio.create_task(relay.run(stop), name=f"{service.name}-outbox"))
        specs = tuple(s.spec for s in subscriptions)
        housekeeping = run_housekeeping(
            pool, stop, specs, purges=service.purges, first_round=platform.first_round_of_a_job()
        )
        tasks.append(asyncio.create_task(housekeeping, name=f"{service.name}-housekeeping"))
        async with pool.acquire() as conn:
            await platform.revoked.refresh(conn)  # no revoked token is accepted, even in the first second
        tasks.append(asyncio.create_task(platform.revoked.run(pool, stop), name=f"{service.name}-revocations"))
        for subscription in subscriptions:
            runner = ConsumerRunner(nc, js, pool, subscription)
            await forward_exhausted(nc, js, subscription.spec)
            tasks.append(asyncio.create_task(runner.run(stop), name=subscription.spec.durable))
        if pipeline_metrics:
            sampler = run_sampler(service.name, pool, js, specs, settings.pipeline_metrics_interval_s, stop)
            tasks.append(asyncio.create_task(sampler, name=f"{service.name}-pipeline-metrics"))
        for job in service.background:
            tasks.append(asyncio.create_task(job(platform, stop), name=getattr(job, "__name__", "job")))
        yield platform
    finally:
        stop.set()
        if tasks:
            # Let in-flight batches finish (their fetch wait is at most 1 s), then cancel what is left.
            _, late = await asyncio.wait(tasks, timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        await pool.close()


def _tuned(subscription: Subscription, settings: ServiceSettings) -> Subscription:
    backoff = settings.consumer_backoff
    if backoff is None:
        return subscription
    limit = subscription.spec.max_deliver
    deliveries = limit if limit == UNLIMITED else max(len(backoff) + 1, 2)
    spec = dataclasses.replace(subscription.spec, backoff_s=backoff, max_deliver=deliveries)
    return dataclasses.replace(subscription, spec=spec)


async def _require_sync_always(settings: ServiceSettings) -> None:
    monitors = settings.nats_monitor_urls
    if not monitors:
        raise RuntimeError("REQUIRE_NATS_SYNC_ALWAYS needs NATS_MONITOR_URL: every NATS server's monitoring address")
    failing = await servers_not_syncing_always(monitors)
    if failing:
        raise RuntimeError(
            "these NATS servers do not fsync before acknowledging (jetstream sync_interval: always): "
            + ", ".join(failing)
        )


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], object]) -> Iterator[None]:
    """Call ``callback`` on SIGINT or SIGTERM, then the handler in place (uvicorn's, which starts the shutdown).

    Uvicorn waits for open connections before it runs the lifespan's shutdown, and cancels them when its
    graceful-shutdown timeout is up, with a traceback for each: a live stream would never end by itself before.
    Only the main thread can set signal handlers; elsewhere (or with a signal ignored) nothing is chained."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    chained = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if callable(previous):

            def handler(signum: int, frame: FrameType | None, previous: Callable[..., Any] = previous) -> None:
                callback()
                previous(signum, frame)

            chained[sig] = previous
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in chained.items():
            signal.signal(sig, previous)


class WholeFiles(StaticFiles):
    """Static pages served whole, whatever ``Range`` a request names (RFC 9110 lets a server ignore it).

    They are a few kilobytes, which no client asks for in parts; and Starlette answered a range it could not
    serve (malformed, beyond the end, or in a unit it does not know, which RFC 9110 says to ignore) with a
    text/plain 400 or 416 rather than a problem.

    ``extra_headers`` are set on every answer, a refusal too (the policies a page's service sets for it)."""

    def __init__(
        self, *, extra_headers: Callable[[Platform], Awaitable[Mapping[str, str]]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._extra_headers = extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]}
            if self._extra_headers is not None:
                extra = [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in (await self._extra_headers(scope["state"]["platform"])).items()
                ]
                send = _with_headers(send, extra)
        await super().__call__(scope, receive, send)


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    names = {name for name, _ in extra}

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)

    return sending


def _tune_garbage_collector() -> None:
    """Measured on the heartbeat path (bench/heartbeats.py): with CPython's defaults the cyclic collector
    took 16% of the CPU, and its full collections (~80 ms each) made the p99. Everything loaded at start-up
    is frozen out of the collector's reach, and collections run less often (requests make little cyclic
    garbage: reference counting frees almost everything)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 1000)


def create_service_app(service: ServiceDefinition) -> FastAPI:
    # Log lines carry ids and codes only (never names, answers or message text), and an exception's traceback or
    # span event never what it quotes (a PostgreSQL error's DETAIL holds a row's values). Not before: a settings
    # error at start-up (build_service) is the operator's, and says in full what to set.
    redaction.install()
    configure_logging(service.name)
    recording = setup_tracing(service.name)
    if recording:
        instrument_asyncpg()
    exporting_metrics = setup_metrics(service.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with run_platform(service, pipeline_metrics=exporting_metrics) as platform:
            app.state.platform = platform
            _tune_garbage_collector()
            loop = asyncio.get_running_loop()
            with on_stop_signal(lambda: loop.call_soon_threadsafe(platform.closing.set)):
                yield {"platform": platform}

    app = FastAPI(
        title=f"oncofollow {service.name}",
        description=service.description,
        version=service.version,
        lifespan=lifespan,
        # FastAPI's own telemetry would add a second server span beside the OpenTelemetry instrumentation
        # below (which we assert in tests), and its logs could carry request values: both are off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # A body without a Content-Type is read as JSON, as on the tablet routes (tablets in the field may leave
        # it out); one declared as anything but JSON is a 415 (limits.BodySizeLimit). FastAPI's strict default
        # guards cookie-authenticated APIs from cross-site requests; these take bearer tokens only, which no
        # page of another site can send.
        strict_content_type=False,
    )
    install_problem_handlers(app)
    # Innermost: a request run again after a transient database error is not counted or size-checked twice.
    app.add_middleware(TransientRetry)
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_body_bytes, raw_bodies=service.raw_bodies)
    app.add_middleware(ConcurrencyLimit, max_in_flight=service.settings.max_in_flight)
    # Every API answer, a refusal of the limits above too: none is kept by a browser's or a proxy's cache.
    app.add_middleware(NoStore)
    # Every answer's type is the one it says. Starlette's 500 comes from outside every middleware: the problem
    # handlers give it the same headers. Not a wrapper around the whole app either: the FastAPI instrumentation
    # finds Starlette's ServerErrorMiddleware outermost or skips the app (no server spans, traces cut in two).
    app.add_middleware(NoSniff)
    if service.cors_origins:
        # Outermost: a preflight is answered before any limit, and every answer (a refusal too) carries the headers
        # the page needs to read it. A request without an Origin (a tablet's) passes through untouched.
        app.add_middleware(OriginCors, origins=service.cors_origins)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(platform: PlatformDep) -> Any:
        problems = []
        try:
            async with platform.pool.acquire(timeout=2) as conn:
                if await pending_migrations(conn, platform.schema, platform.migrations):
                    problems.append("migrations pending")
        except (OSError, asyncpg.PostgresError, TimeoutError):
            problems.append("database unreachable")
        if not platform.nc.is_connected:
            problems.append("nats disconnected")
        if problems:
            return problem_response(503, "Not ready: " + ", ".join(problems) + ".")
        return {"status": "ready"}

    from shared.http.audit_api import router as audit_router  # it depends on this module's PlatformDep

    framework_routes = list(app.router.routes)  # the docs, /healthz and /readyz
    for router in (*service.routers, audit_router):
        # A request-only route resolves nothing (and takes no query parameter); every other one refuses a query
        # parameter that takes one value sent twice.
        request_only = issubclass(router.route_class, RequestOnlyRoute)
        app.include_router(router, dependencies=None if request_only else [Depends(single_valued_query)])
    # Routing tries each route in turn: the service's own (its hottest first) go before the docs and probes,
    # none of whose paths they share. Measured: 10 µs less per tablet submission (of about 100 µs between
    # uvicorn and the endpoint), six fewer path matches.
    app.router.routes[:] = [r for r in app.router.routes if r not in framework_routes] + framework_routes
    for prefix, directory in service.static.items():
        pages = WholeFiles(directory=directory, html=True, extra_headers=service.static_headers)
        app.mount(prefix, pages, name=f"static:{prefix}")
    if service.home is not None:
        home = service.home

        @app.get("/", include_in_schema=False)
        async def go_home() -> RedirectResponse:
            return RedirectResponse(home)

    document_problems(app)  # every refusal documented as the RFC 9457 problem it is, not FastAPI's 422

    if recording:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            excluded_urls="healthz,readyz",
            exclude_spans=["receive", "send"],
            server_request_hook=scrub_server_span,
        )
    return app
