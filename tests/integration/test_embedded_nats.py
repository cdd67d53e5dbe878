"""The embedded NATS server the tests, benchmarks and `make run` start: a port another process takes between
picking and binding does not fail the run, and a failed start says why."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devservers import EmbeddedNats, PortTaken, free_ports, nats_server_binary, port_is_open
from shared.messaging.connection import servers_not_syncing_always
from shared.settings import ServiceSettings
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port some other process listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def test_ports_it_picked_are_picked_again_when_one_was_taken(tmp_path: Path, listener: socket.socket) -> None:
    server = EmbeddedNats(tmp_path)
    taken = listener.getsockname()[1]
    server.monitor_port = taken  # as if another process had bound it since it was picked
    try:
        server.start()
        assert server.monitor_port != taken
        assert port_is_open(server.port) and port_is_open(server.monitor_port)
    finally:
        server.stop()


def test_ports_it_was_given_are_kept_and_the_failure_quotes_the_server_log(
    tmp_path: Path, listener: socket.socket
) -> None:
    server = EmbeddedNats(tmp_path, monitor_port=listener.getsockname()[1])
    try:
        with pytest.raises(PortTaken, match="address already in use"):
            server.start()
    finally:
        server.stop()


async def test_every_server_of_a_cluster_must_fsync_before_acknowledging(tmp_path: Path) -> None:
    # A production cluster is only as durable as each node acknowledging a write: REQUIRE_NATS_SYNC_ALWAYS asks
    # every monitoring address NATS_MONITOR_URL lists, and names those that do not fsync or cannot be asked.
    durable = EmbeddedNats(tmp_path / "durable").start()  # the shipped configuration: sync_interval always
    port, monitor, nowhere = free_ports(3)
    lax = await asyncio.create_subprocess_exec(
        *(nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)),
        *("-sd", str(tmp_path / "lax")),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def listening() -> bool:
        return port_is_open(monitor)

    try:
        await eventually(listening, within=10, interval=0.05)
        lax_url, nowhere_url = f"http://127.0.0.1:{monitor}", f"http://127.0.0.1:{nowhere}"
        settings = ServiceSettings(NATS_MONITOR_URL=f"{durable.monitor_url}, {lax_url},{nowhere_url}")
        assert settings.nats_monitor_urls == [durable.monitor_url, lax_url, nowhere_url]
        assert await servers_not_syncing_always(settings.nats_monitor_urls) == [
            f"{lax_url} (sync_always is off)",
            f"{nowhere_url} (cannot be asked: ConnectError)",
        ]
        assert await servers_not_syncing_always([durable.monitor_url]) == []
    finally:
        lax.terminate()
        await asyncio.wait_for(lax.wait(), timeout=10)
        durable.stop()
