"""The services the tests start never lose their port to another process: one running in this process holds its
port from the moment its address is known, and one started as a process picks another port if its own was taken
between picking and binding (a whole pytest worker's run once ended on "address already in use")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.devservers import listening_sockets, port_is_open, port_of
from shared.testing.oidc import FakeIdentityProvider
from shared.testing.services import ServiceProcess, served

pytestmark = pytest.mark.integration


def another_process_binds(port: int, *, reuse: bool = False) -> socket.socket:
    """What another process does with a port it was given by the system: bind it (on every address, as a server
    does, so that a later bind on loopback fails too). ``reuse``: past the connections a stopped server leaves
    waiting on the port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    return s


@pytest.fixture
def intruders() -> Iterator[list[socket.socket]]:
    taken: list[socket.socket] = []
    yield taken
    for s in taken:
        s.close()


async def test_a_port_held_for_a_service_cannot_be_taken_before_it_serves_there(
    service_env: dict[str, str], intruders: list[socket.socket]
) -> None:
    (listening,) = listening_sockets(1)
    port = port_of(listening)
    # Before the service starts, the port is told to another service (its settings), and another process tries it.
    with pytest.raises(OSError):
        intruders.append(another_process_binds(port))
    settings = QuestionnaireSettings(NATS_URL=service_env["NATS_URL"], DATABASE_URL=service_env["DATABASE_URL"])
    async with served(build_questionnaire(settings), listening) as (url, _):
        assert url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/readyz")).status_code == 200
    # Stopped, it lets the port go.
    intruders.append(another_process_binds(port, reuse=True))


async def test_a_service_process_whose_port_was_taken_before_it_bound_starts_on_another(
    service_env: dict[str, str], tmp_path: Path, intruders: list[socket.socket]
) -> None:
    service = ServiceProcess("questionnaire", service_env, tmp_path)
    taken = service.port
    intruders.append(another_process_binds(taken))
    try:
        await asyncio.to_thread(service.start)
        assert service.port != taken
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{service.url}/readyz")).status_code == 200
        # The log of the start that failed says why, for whoever reads the test's logs.
        assert "address already in use" in (tmp_path / f"questionnaire-{taken}.log").read_text()
    finally:
        service.stop()


async def test_a_service_process_restarted_keeps_its_port_and_says_so_when_it_is_taken(
    service_env: dict[str, str], tmp_path: Path, intruders: list[socket.socket]
) -> None:
    """Its clients know its address: a restart never moves it, even when the port was taken meanwhile."""
    service = ServiceProcess("questionnaire", service_env, tmp_path)
    try:
        await asyncio.to_thread(service.start)
        first = service.port
        service.stop()
        intruders.append(another_process_binds(first, reuse=True))
        with pytest.raises(RuntimeError, match="address already in use"):
            await asyncio.to_thread(service.start)
        assert service.port == first
    finally:
        service.stop()


def test_an_identity_provider_not_started_refuses_connections_and_keeps_its_port(
    intruders: list[socket.socket],
) -> None:
    idp = FakeIdentityProvider()
    assert not port_is_open(idp.port)  # out of reach, as a provider that is down
    with pytest.raises(OSError):
        intruders.append(another_process_binds(idp.port))
    with idp:
        assert httpx.get(f"{idp.base}/nowhere", timeout=5).status_code == 404
