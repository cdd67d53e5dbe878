"""`make run` as a person uses it: the platform starts from nothing, the README's main flow works against it, Ctrl-C
stops every process it started, and a second start finds the data of the first.

`scripts/run.py` runs as `make run` runs it (its own NATS and PostgreSQL, embedded), on free ports and in a data
folder of the test's own, so that it can run beside a developer's `make run` and the other test workers.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.devservers import ROOT, free_ports, port_is_open

START_TIMEOUT_S = 120.0


@dataclass
class Running:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    printed: list[str]

    def wait_for(self, text: str, timeout: float) -> None:
        """Reads the script's output until a line holds ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                output = "".join(self.printed)
                raise AssertionError(f"make run ended (exit {self.process.wait()}) before {text!r}:\n{output}")
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout}s; printed so far:\n{''.join(self.printed)}")

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, as a person at the terminal gives it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)


def start(env: dict[str, str]) -> Running:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a test run's own Ctrl-C is not this one's
    )
    lines: queue.Queue[str | None] = queue.Queue()
    printed: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return Running(process, lines, printed)


def children_of(pid: int) -> set[int]:
    """The processes ``pid`` started, and theirs (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def postmaster_pid(data: Path) -> int:
    return int((data / "postgres" / "postmaster.pid").read_text().splitlines()[0])


# Processes a failed test may have left behind, killed at its end so that they do not outlive the test session.
_seen: set[int] = set()


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], dict[str, int], Path]]:
    ports = dict(zip(["questionnaire", "alerting", "devices", "nats", "nats_monitor"], free_ports(5), strict=True))
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "DATABASE_", "OTEL_", "TEST_"))}
    env |= {
        "DATA_DIR": str(data),
        "QUESTIONNAIRE_PORT": str(ports["questionnaire"]),
        "ALERTING_PORT": str(ports["alerting"]),
        "DEVICES_PORT": str(ports["devices"]),
        "NATS_PORT": str(ports["nats"]),
        "NATS_MONITOR_PORT": str(ports["nats_monitor"]),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("ENVIRONMENT", None)
    yield env, ports, data
    for pid in _seen:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    _seen.clear()


def token(*args: str) -> str:
    """A development token, as `make token` prints it."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_token.py"), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def red_alert_of(client: httpx.Client, base: str, nurse: str, patient: str, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        listed = client.get(f"{base}/v1/alerts", headers={"Authorization": f"Bearer {nurse}"})
        assert listed.status_code == 200, listed.text
        mine = [a for a in listed.json()["items"] if a["patient_id"] == patient]
        if mine or time.monotonic() > deadline:
            assert mine, f"no alert for the patient within {timeout}s"
            return mine[0]
        time.sleep(0.2)


def test_make_run_starts_serves_the_main_flow_stops_everything_and_keeps_its_data(
    run_env: tuple[dict[str, str], dict[str, int], Path],
) -> None:
    env, ports, data = run_env
    questionnaire = f"http://127.0.0.1:{ports['questionnaire']}"
    alerting = f"http://127.0.0.1:{ports['alerting']}"
    patient = str(uuid.uuid4())
    tablet = token("--patient", patient)
    nurse = token("--role", "nurse", "--name", "Claire Martin")

    first = start(env)
    try:
        first.wait_for("Ready.", START_TIMEOUT_S)
        printed = "".join(first.printed)
        # What it started and where, as the README's table says.
        for line in (
            f"nats://127.0.0.1:{ports['nats']}",
            f"{questionnaire}  (API docs",
            f"{alerting}  (API docs",
            f"http://127.0.0.1:{ports['devices']}  (API docs",
            f"{questionnaire}/tablet/  (enrol it with a loan's link from the fleet page, #enrol=<code>",
            f"{questionnaire}/tablet/#device_token=<make token",
            f"{alerting}/dashboard/",
            f"http://127.0.0.1:{ports['devices']}/fleet/",
        ):
            assert line in printed, printed
        with httpx.Client(timeout=10) as client:
            for page in (
                f"{questionnaire}/tablet/",
                f"{alerting}/dashboard/",
                f"http://127.0.0.1:{ports['devices']}/fleet/",
            ):
                assert client.get(page).status_code == 200, page
            # The README's main flow: the questionnaire, the daughter's answers, the red alert.
            definition = client.get(
                f"{questionnaire}/v1/questionnaires/reconnect-symptoms", headers={"Authorization": f"Bearer {tablet}"}
            )
            assert definition.status_code == 200, definition.text
            assert definition.json()["resourceType"] == "Questionnaire"
            answers = {
                "resourceType": "QuestionnaireResponse",
                "questionnaire": definition.json()["url"] + "|" + definition.json()["version"],
                "status": "completed",
                "authored": datetime.now(UTC).isoformat(),
                "item": [
                    {"linkId": "fever", "answer": [{"valueBoolean": True}]},
                    {"linkId": "temperature", "answer": [{"valueDecimal": 38.6}]},
                ],
            }
            posted = client.post(
                f"{questionnaire}/v1/submissions",
                json=answers,
                headers={"Authorization": f"Bearer {tablet}", "Idempotency-Key": f"run-{patient}"},
            )
            assert posted.status_code == 202, posted.text
            alert = red_alert_of(client, alerting, nurse, patient)
            assert alert["level"] == "red"
        children = children_of(first.process.pid)
        postgres = postmaster_pid(data)
        _seen.update(children | {postgres})
        assert children and alive(postgres)
    finally:
        code = first.stop()
    assert code == 0, "".join(first.printed)
    assert "stopping" in "".join(first.printed)
    # Ctrl-C leaves nothing running: no service, no NATS, no PostgreSQL, no port still taken.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children | {postgres}):
        time.sleep(0.1)
    assert not [pid for pid in children | {postgres} if alive(pid)]
    assert not [name for name, port in ports.items() if port_is_open(port)]

    # A second start keeps what the first stored: the alert is still there, with its patient.
    second = start(env)
    try:
        second.wait_for("Ready.", START_TIMEOUT_S)
        with httpx.Client(timeout=10) as client:
            kept = red_alert_of(client, alerting, nurse, patient, timeout=0)
        assert kept["id"] == alert["id"]
    finally:
        assert second.stop() == 0, "".join(second.printed)
