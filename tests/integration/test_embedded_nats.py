"""The embedded NATS server the tests, benchmarks and `make run` start: a port another process takes between
picking and binding does not fail the run, and a failed start says why."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devservers import EmbeddedNats, PortTaken, port_is_open

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
