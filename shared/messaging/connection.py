"""One NATS connection per process, with unlimited reconnects and a durability check."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import nats
from nats.aio.client import Client as NATS

log = logging.getLogger(__name__)


async def connect(servers: list[str], name: str) -> NATS:
    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", type(exc).__name__)

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    return await nats.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        pending_size=64 * 1024 * 1024,
        drain_timeout=5,
    )


async def server_syncs_always(monitor_url: str) -> bool:
    """True when the server fsyncs before acking. ``/varz`` reports ``sync_always``, not sync_interval."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        varz = (await client.get(f"{monitor_url.rstrip('/')}/varz")).json()
    return bool(varz.get("jetstream", {}).get("config", {}).get("sync_always", False))


async def servers_not_syncing_always(monitor_urls: Sequence[str]) -> list[str]:
    """Each server of a cluster that does not say it fsyncs before acking, or cannot be asked, with why: a stream
    replicated on three nodes is only as durable as the ones that acknowledge a write."""
    failing = []
    for url in monitor_urls:
        try:
            if not await server_syncs_always(url):
                failing.append(f"{url} (sync_always is off)")
        except (httpx.HTTPError, ValueError) as exc:
            failing.append(f"{url} (cannot be asked: {type(exc).__name__})")
    return failing
