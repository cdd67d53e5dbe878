"""Configuration from environment variables only, one pydantic-settings class per service.

Every service subclasses ``ServiceSettings``; the class fails fast on missing or insecure values
outside development, so a production process never starts with the development signing secret.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.opening_hours import ClosedDays, OpeningHours

DEV_AUTH_SECRET = "dev-only-secret-change-me-0123456789abcdef"
Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    environment: Environment = Field(default="development", alias="ENVIRONMENT")
    nats_url: str = Field(default="nats://127.0.0.1:4222", alias="NATS_URL")
    database_url: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgres", alias="DATABASE_URL")
    db_pool_min: int = Field(default=2, alias="DB_POOL_MIN")
    db_pool_max: int = Field(default=10, alias="DB_POOL_MAX")

    auth_secret: str = Field(default=DEV_AUTH_SECRET, alias="AUTH_SECRET")
    auth_issuer: str = Field(default="oncofollow-dev", alias="AUTH_ISSUER")
    auth_audience: str = Field(default="oncofollow", alias="AUTH_AUDIENCE")

    max_body_bytes: int = Field(default=64 * 1024, alias="MAX_BODY_BYTES")
    # Requests in flight per process beyond which the service answers 503 + Retry-After.
    max_in_flight: int = Field(default=256, ge=1, alias="MAX_IN_FLIGHT")
    # Start-up check that the NATS server fsyncs before acking (jetstream sync_interval: always).
    require_nats_sync_always: bool = Field(default=False, alias="REQUIRE_NATS_SYNC_ALWAYS")
    nats_monitor_url: str | None = Field(default=None, alias="NATS_MONITOR_URL")
    # 3 on the production cluster (R3 streams); 1 on a single server.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5, alias="NATS_STREAM_REPLICAS")
    # Redelivery delays of every durable consumer (the first is also ack_wait), e.g. "30,60,300,900".
    consumer_backoff_s: str | None = Field(default=None, alias="CONSUMER_BACKOFF_S")
    # When the coordinating nurses watch the alerts (Monday to Friday), for service levels and patient notices.
    opening_hours: str = Field(default="08:00-18:00", alias="OPENING_HOURS")
    timezone: str = Field(default="Europe/Paris", alias="CLINIC_TIMEZONE")
    # Weekdays the team is away: a country's public holidays, "none", and closure dates (opening_hours.ClosedDays).
    closed_days: str = Field(default="FR", alias="CLINIC_CLOSED_DAYS")
    # How often the event pipeline (outbox, consumers, dead letters) is sampled for its metrics; only with a
    # metrics exporter (shared.pipeline_metrics). Each round is one SQL statement and a few JetStream requests.
    pipeline_metrics_interval_s: float = Field(default=15.0, ge=0.1, le=3600.0, alias="PIPELINE_METRICS_INTERVAL_S")

    @field_validator("closed_days")
    @classmethod
    def _known_closed_days(cls, value: str) -> str:
        ClosedDays.parse(value)  # at start-up, not at the first submission: its ValueError says what is wrong
        return value

    @model_validator(mode="after")
    def _readable_opening_hours(self) -> ServiceSettings:
        # Its ValueError says what is wrong with OPENING_HOURS or CLINIC_TIMEZONE.
        OpeningHours.parse(self.opening_hours, self.timezone, self.closed_days)
        return self

    @field_validator("consumer_backoff_s")
    @classmethod
    def _readable_backoff(cls, value: str | None) -> str | None:
        if value:
            try:
                delays = [float(v) for v in value.split(",")]
            except ValueError:
                delays = []
            if not delays or any(not d > 0 for d in delays):
                raise ValueError(f"{value!r} is not a list of delays in seconds, such as '30,60,300,900'")
        return value

    @property
    def consumer_backoff(self) -> tuple[float, ...] | None:
        if not self.consumer_backoff_s:
            return None
        return tuple(float(v) for v in self.consumer_backoff_s.split(","))

    @property
    def nats_servers(self) -> list[str]:
        return [s.strip() for s in self.nats_url.split(",") if s.strip()]

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> ServiceSettings:
        if self.environment == "production":
            if self.auth_secret == DEV_AUTH_SECRET or len(self.auth_secret) < 32:
                raise ValueError("AUTH_SECRET must be set to a random value of 32+ characters in production")
            if not self.require_nats_sync_always:
                raise ValueError("REQUIRE_NATS_SYNC_ALWAYS must be true in production")
        return self


_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)$")


def _web_address(value: str, what: str, *, path_allowed: bool) -> str:
    """``scheme://host[:port]`` (and a path, where allowed), lower-cased host, no trailing slash; a ValueError that
    names the variable and the value otherwise."""
    wrong = ValueError(
        f"{what}: {value!r} is not an http(s) address such as https://soins.example.org"
        + (" (a path may follow)" if path_allowed else ":8443 (scheme, host and port only)")
    )
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise wrong from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme.lower() not in ("http", "https")
        or not _HOST.match(host)
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or value.strip().endswith("?")
        or (parts.path not in ("", "/") and not path_allowed)
    ):
        raise wrong
    netloc = f"[{host.strip('[]')}]" if ":" in host else host
    address = f"{parts.scheme.lower()}://{netloc}" + (f":{port}" if port is not None else "")
    return address + (parts.path.rstrip("/") if path_allowed else "")


def web_origins(value: str | tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    """A comma-separated list of web origins (``scheme://host[:port]``), each as a browser sends it in ``Origin``."""
    if value is None or isinstance(value, tuple):
        return tuple(_web_address(v, what, path_allowed=False) for v in value or ())
    if not value.strip():
        return ()
    return tuple(_web_address(v, what, path_allowed=False) for v in value.split(","))


def web_address(value: str, what: str) -> str:
    """An http(s) address a browser reaches a service at (a path allowed, for a reverse proxy)."""
    return _web_address(value, what, path_allowed=True)
