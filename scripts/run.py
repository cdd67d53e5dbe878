"""`make run`: NATS + PostgreSQL (embedded unless NATS_URL / DATABASE_URL are set) and the services.

Data lives under .data/ and survives a restart. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.devservers import ROOT, EmbeddedNats, EmbeddedPostgres
from shared.http.protocol import uvicorn_command

DEFAULT_PORTS = {"questionnaire": 8001, "alerting": 8002, "devices": 8004}
# Processes per service (uvicorn workers sharing the port, the durable consumers and the outbox), e.g.
# QUESTIONNAIRE_PROCESSES=2. One each by default: on two cores a second questionnaire process takes more
# submissions in but leaves less CPU to scoring, and alerts come later (see README, Benchmark).
DEFAULT_PROCESSES = {"questionnaire": 1, "alerting": 1, "devices": 1}


def main() -> int:
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "development")
    # Another copy of the platform on this machine (a second checkout, the test of this script) takes other ports
    # and another data folder.
    data = Path(env.get("DATA_DIR") or ROOT / ".data").resolve()
    try:
        ports = {name: int(env.get(f"{name.upper()}_PORT") or port) for name, port in DEFAULT_PORTS.items()}
        nats_port = int(env.get("NATS_PORT") or 4222)
        nats_monitor_port = int(env.get("NATS_MONITOR_PORT") or 8222)
    except ValueError as exc:
        print(f"a *_PORT variable is not a port number: {exc}", file=sys.stderr)
        return 2
    # The dashboard (alerting, 8002) posts a nurse's phone answers to the questionnaire service (8001), another origin.
    origins = f"http://127.0.0.1:{ports['alerting']},http://localhost:{ports['alerting']}"
    env.setdefault("DASHBOARD_ORIGINS", origins)
    env.setdefault("QUESTIONNAIRE_PUBLIC_URL", f"http://127.0.0.1:{ports['questionnaire']}")
    # The tablet's page (questionnaire, 8001) sends its heartbeats to the devices service (8004), another origin.
    env.setdefault("DEVICES_PUBLIC_URL", f"http://127.0.0.1:{ports['devices']}")
    tablet_origins = f"http://127.0.0.1:{ports['questionnaire']},http://localhost:{ports['questionnaire']}"
    env.setdefault("TABLET_ORIGINS", tablet_origins)
    nats = pg = None
    if "NATS_URL" not in env:
        nats = EmbeddedNats(data / "nats", port=nats_port, monitor_port=nats_monitor_port).start()
        env["NATS_URL"] = nats.url
        env.setdefault("NATS_MONITOR_URL", nats.monitor_url)
        print(f"NATS JetStream   {nats.url} (monitoring {nats.monitor_url}, data {data / 'nats'})")
    else:
        print(f"NATS JetStream   {env['NATS_URL']} (given)")
    if "DATABASE_URL" not in env:
        pg = EmbeddedPostgres(data / "postgres").start()
        env["DATABASE_URL"] = pg.url
        print(f"PostgreSQL 16    {pg.url}")
    else:
        print("PostgreSQL       DATABASE_URL (given)")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    *uvicorn_command(name, env.get("BIND_HOST", "127.0.0.1"), port),
                    "--workers",
                    env.get(f"{name.upper()}_PROCESSES", str(DEFAULT_PROCESSES[name])),
                ],
                env={**env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                # Their own process group: Ctrl-C reaches this script, which stops them in order.
                start_new_session=True,
            )
        for name, port in ports.items():
            _wait_ready(name, port, processes[name])
            print(f"{name:<16} http://127.0.0.1:{port}  (API docs: http://127.0.0.1:{port}/docs)")
        dashboard = f"http://127.0.0.1:{ports['alerting']}/dashboard/"
        print(f"{'nurse dashboard':<16} {dashboard}  (development sign-in: pick a user)")
        tablet = f"http://127.0.0.1:{ports['questionnaire']}/tablet/"
        # A loan's link enrols with a one-time code; the token link is for a patient without a loan (make token).
        print(f"{'patient tablet':<16} {tablet}  (enrol it with a loan's link from the fleet page, #enrol=<code>,")
        print(f"{'':<16} or {tablet}#device_token=<make token PATIENT=…>)")
        fleet = f"http://127.0.0.1:{ports['devices']}/fleet/"
        print(f"{'fleet page':<16} {fleet}  (a fleet token: make -s token ROLE=fleet; a loan shows its QR code)")
        print("Ready. Tokens: make token PATIENT=<uuid> | make token ROLE=nurse. Ctrl-C stops everything.")
        # Set explicitly: started in the background by a script, a process inherits SIGINT ignored.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in processes.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        for p in processes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if nats:
            nats.stop()
        if pg:
            pg.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_ready(name: str, port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} failed to start (exit {process.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} not ready after {timeout}s")


if __name__ == "__main__":
    sys.exit(main())
