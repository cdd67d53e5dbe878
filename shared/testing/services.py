"""Running the real services in tests: in-process (for span assertions) or as processes (for kill tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from shared.devservers import ROOT, free_port, listening_sockets, port_of
from shared.http.app import ServiceDefinition, create_service_app
from shared.http.protocol import ProblemHttpToolsProtocol, uvicorn_command


@contextlib.asynccontextmanager
async def in_process(service: ServiceDefinition) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The service's app with its lifespan running, and an HTTP client talking to it over ASGI; once its scheduled
    jobs' first rounds are over, so that what the test writes next no start-up check races."""
    app = create_service_app(service)
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        app.state.platform = state["platform"]
        await state["platform"].first_rounds_over()
        transport = httpx.ASGITransport(app=_with_state(app, state))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service.name}") as client:
            yield client, state["platform"]


def _with_state(app: Any, state: dict[str, Any]) -> Any:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    return asgi


class ServiceProcess:
    """``uvicorn services.<name>.main:app`` in its own process, on a free loopback port (tests, benchmark).

    The command line is ``make run``'s and the deployments' (``uvicorn_command``), ``extra_args`` added to it.
    """

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.env = env
        self.extra_args = extra_args
        self.log_dir = log_dir
        self.port = free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._ports_tried = 1
        self._was_ready = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *uvicorn_command(self.name, "127.0.0.1", self.port), *self.extra_args],
                env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self._port_taken_at_first_start():
                    # Another process took the port between ``free_port`` and the bind: nobody knows this one's
                    # address yet (a restart keeps its port: its clients know it), so another will do.
                    self._ports_tried += 1
                    self.port = free_port()
                    self.log_path = self.log_dir / f"{self.name}-{self.port}.log"
                    self.spawn()
                    continue
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    self._was_ready = True
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def _port_taken_at_first_start(self) -> bool:
        return not self._was_ready and self._ports_tried < 3 and "address already in use" in self.log_tail()

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def wait_killed(self, timeout: float = 30.0) -> int:
        """Wait for the process to die by itself (a fault point SIGKILLs it)."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_together(*processes: ServiceProcess, timeout: float = 30.0) -> None:
    """Start the processes side by side: each spends about a second importing, which need not be paid in turn.
    If one does not come up, all are stopped."""
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready(timeout)
    except BaseException:
        stop_together(*processes)
        raise


def stop_together(*processes: ServiceProcess) -> None:
    """Stop the processes as ``stop`` does, their graceful shutdowns running side by side rather than in turn."""
    running = [p.process for p in processes if p.process is not None and p.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def served(
    service: ServiceDefinition, listening: socket.socket | None = None, *, wrap: Callable[[Any], Any] | None = None
) -> AsyncIterator[tuple[str, Any]]:
    """The service behind a real uvicorn server in this process (streaming responses, spans in memory), on a free
    port, or on ``listening`` (a socket from ``listening_sockets``, for two services that must know each other's
    address before either starts: the port is held from then on, never taken by another process meanwhile).
    ``wrap``: an ASGI middleware the server runs the app in (a test's network faults: a stalled or dropped answer).
    Given once its scheduled jobs' first rounds are over, as ``in_process``."""
    import asyncio

    import uvicorn

    app = create_service_app(service)
    sock = listening if listening is not None else listening_sockets(1)[0]
    port = port_of(sock)
    server = uvicorn.Server(
        uvicorn.Config(
            wrap(app) if wrap is not None else app,
            host="127.0.0.1",
            port=port,
            http=ProblemHttpToolsProtocol,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Live streams never end by themselves: past this, uvicorn cancels them and shuts down.
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before starting")
            await asyncio.sleep(0.02)
        await app.state.platform.first_rounds_over()
        yield f"http://127.0.0.1:{port}", app.state.platform
    finally:
        server.should_exit = True
        await task
