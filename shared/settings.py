"""Configuration from environment variables only, one pydantic-settings class per service.

Every service subclasses ``ServiceSettings``; the class fails fast on missing or insecure values
outside development, so a production process never starts with the development signing secret.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logs import configure_logging
from shared.opening_hours import ClosedDays, OpeningHours
from shared.setting_names import meant_production, misspelt_settings

log = logging.getLogger(__name__)

# The database timeouts' ceiling: beyond an hour, a limit limits nothing a request or a batch would do.
MAX_DB_TIMEOUT_MS = 3_600_000
DEV_AUTH_SECRET = "dev-only-secret-change-me-0123456789abcdef"
Environment = Literal["development", "test", "production"]
# What a hospital identity provider may sign staff tokens with: public-key signatures only. Never "none", and never
# HS*: a shared secret would let whoever holds it (the provider) mint any token the secret checks.
STAFF_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _url(value: str | None, name: str, *, issuer: bool = False) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    if issuer and (parts.query or parts.fragment):
        raise ValueError(f"{name} is an issuer identifier: a URL without query or fragment (OpenID Connect)")
    return value


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    environment: Environment = Field(default="development", alias="ENVIRONMENT")
    nats_url: str = Field(default="nats://127.0.0.1:4222", alias="NATS_URL")
    database_url: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgres", alias="DATABASE_URL")
    db_pool_min: int = Field(default=2, alias="DB_POOL_MIN")
    db_pool_max: int = Field(default=10, alias="DB_POOL_MAX")
    # How long a statement of the pool's may wait for a lock, and run, in milliseconds (0: no limit). Past it, the
    # transaction is run again a few times (shared.db.transient), then refused with a 503 or left to the consumer's
    # backoff. A lock held long (a manual transaction, a migration) then costs a few requests a 503 each instead of
    # holding every pooled connection until the requests pile up behind it.
    db_lock_timeout_ms: int = Field(default=2000, alias="DB_LOCK_TIMEOUT_MS")
    db_statement_timeout_ms: int = Field(default=0, alias="DB_STATEMENT_TIMEOUT_MS")

    auth_secret: str = Field(default=DEV_AUTH_SECRET, alias="AUTH_SECRET")
    auth_issuer: str = Field(default="oncofollow-dev", alias="AUTH_ISSUER")
    auth_audience: str = Field(default="oncofollow", alias="AUTH_AUDIENCE")
    # The hospital's identity provider (OpenID Connect), which issues the staff tokens in production: its issuer
    # (the tokens' iss), the audience its tokens for this platform name, where it publishes its keys (found from
    # the issuer's /.well-known/openid-configuration when unset), where a token holds its roles (a dotted path),
    # the algorithms accepted, and how long a fetch of its keys may take.
    staff_token_issuer: str | None = Field(default=None, alias="STAFF_TOKEN_ISSUER")
    staff_token_audience: str | None = Field(default=None, alias="STAFF_TOKEN_AUDIENCE")
    staff_token_jwks_url: str | None = Field(default=None, alias="STAFF_TOKEN_JWKS_URL")
    staff_token_roles_claim: str = Field(default="roles", alias="STAFF_TOKEN_ROLES_CLAIM")
    staff_token_algorithms: str = Field(default="RS256,ES256", alias="STAFF_TOKEN_ALGORITHMS")
    # The claim holding a staff member's display name (shown to colleagues: "prise par Claire Martin"); a token
    # without it falls back to preferred_username, then to the bare id.
    staff_token_name_claim: str = Field(default="name", alias="STAFF_TOKEN_NAME_CLAIM")
    staff_token_fetch_timeout_s: float = Field(default=3.0, gt=0, le=30, alias="STAFF_TOKEN_FETCH_TIMEOUT_S")
    # While the provider cannot be reached, how often a staff page's sign-in screen asks its service again whether
    # it is back (the service asks the provider at most once every 5 s, however many screens ask).
    staff_sign_in_recheck_s: float = Field(default=30.0, ge=0.5, le=3600, alias="STAFF_SIGN_IN_RECHECK_S")

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
    # The weekdays those hours apply to (opening_hours.parse_weekdays).
    opening_days: str = Field(default="mon-fri", alias="OPENING_DAYS")
    # Weekdays the team is away: a country's public holidays, "none", and closure dates (opening_hours.ClosedDays).
    closed_days: str = Field(default="FR", alias="CLINIC_CLOSED_DAYS")
    # How often the event pipeline (outbox, consumers, dead letters) is sampled for its metrics; only with a
    # metrics exporter (shared.pipeline_metrics). Each round is one SQL statement and a few JetStream requests.
    pipeline_metrics_interval_s: float = Field(default=15.0, ge=0.1, le=3600.0, alias="PIPELINE_METRICS_INTERVAL_S")

    @field_validator("db_lock_timeout_ms", "db_statement_timeout_ms")
    @classmethod
    def _readable_timeout(cls, value: int, info: ValidationInfo) -> int:
        name = {"db_lock_timeout_ms": "DB_LOCK_TIMEOUT_MS", "db_statement_timeout_ms": "DB_STATEMENT_TIMEOUT_MS"}
        if not 0 <= value <= MAX_DB_TIMEOUT_MS:
            raise ValueError(
                f"{name[info.field_name or '']} is in milliseconds, from 0 (no limit) to {MAX_DB_TIMEOUT_MS} "
                f"(an hour); got {value}"
            )
        return value

    @field_validator("closed_days")
    @classmethod
    def _known_closed_days(cls, value: str) -> str:
        ClosedDays.parse(value)  # at start-up, not at the first submission: its ValueError says what is wrong
        return value

    @model_validator(mode="after")
    def _readable_opening_hours(self) -> ServiceSettings:
        self.clinic_hours()  # its ValueError says what is wrong with OPENING_HOURS, OPENING_DAYS or CLINIC_TIMEZONE
        return self

    def clinic_hours(self) -> OpeningHours:
        """When the nurses watch the alerts: the same for the tablet's notice and for the service levels."""
        return OpeningHours.parse(self.opening_hours, self.timezone, self.closed_days, self.opening_days)

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

    @field_validator("staff_token_issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        return _url(value, "STAFF_TOKEN_ISSUER", issuer=True)

    @field_validator("staff_token_jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return _url(value, "STAFF_TOKEN_JWKS_URL")

    @field_validator("staff_token_algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("STAFF_TOKEN_ALGORITHMS must name at least one algorithm, such as RS256")
        for name in names:
            if name.lower() == "none" or name.upper().startswith("HS"):
                shown = "none" if name.lower() == "none" else name.upper()
                raise ValueError(
                    f"STAFF_TOKEN_ALGORITHMS: {shown} is refused: staff tokens of an identity provider are signed "
                    "with its private key (RS256, ES256…)"
                )
            if name not in STAFF_TOKEN_ALGORITHMS:
                known = ", ".join(sorted(STAFF_TOKEN_ALGORITHMS))
                raise ValueError(f"STAFF_TOKEN_ALGORITHMS: unknown algorithm {name!r}; use {known}")
        return ",".join(names)

    @field_validator("staff_token_name_claim")
    @classmethod
    def _name_claim(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            raise ValueError(f"STAFF_TOKEN_NAME_CLAIM must be a claim name, such as name, got {value!r}")
        return value

    @field_validator("staff_token_roles_claim")
    @classmethod
    def _roles_claim(cls, value: str) -> str:
        if not value.strip() or any(not part for part in value.split(".")):
            raise ValueError(
                f"STAFF_TOKEN_ROLES_CLAIM must be a claim name or a dotted path (realm_access.roles), got {value!r}"
            )
        return value

    @property
    def staff_token_algorithm_list(self) -> tuple[str, ...]:
        return tuple(self.staff_token_algorithms.split(","))

    @property
    def dev_staff_tokens(self) -> bool:
        """Staff tokens signed with AUTH_SECRET (make token, the dashboard's development sign-in): never in
        production, where staff tokens come from the identity provider and AUTH_SECRET signs only what the
        platform mints itself (device and stream tokens)."""
        return self.environment != "production"

    @property
    def consumer_backoff(self) -> tuple[float, ...] | None:
        if not self.consumer_backoff_s:
            return None
        return tuple(float(v) for v in self.consumer_backoff_s.split(","))

    @property
    def nats_monitor_urls(self) -> list[str]:
        """Every NATS server's monitoring address (comma-separated): each one of a cluster is checked."""
        return [u.strip() for u in (self.nats_monitor_url or "").split(",") if u.strip()]

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
            if not self.staff_token_issuer or not self.staff_token_audience:
                raise ValueError(
                    "STAFF_TOKEN_ISSUER and STAFF_TOKEN_AUDIENCE must name the hospital's identity provider in "
                    "production: staff tokens come from it"
                )
            for name, url in (
                ("STAFF_TOKEN_ISSUER", self.staff_token_issuer),
                ("STAFF_TOKEN_JWKS_URL", self.staff_token_jwks_url),
            ):
                if url is not None and urlsplit(url).scheme != "https":
                    raise ValueError(
                        f"{name} must be an https URL in production: the provider's keys are fetched from it"
                    )
        return self

    @model_validator(mode="after")
    def _identity_provider_whole(self) -> ServiceSettings:
        if (self.staff_token_issuer is None) != (self.staff_token_audience is None):
            raise ValueError("STAFF_TOKEN_ISSUER and STAFF_TOKEN_AUDIENCE go together: set both, or neither")
        if self.staff_token_issuer is None and self.staff_token_jwks_url is not None:
            raise ValueError("STAFF_TOKEN_JWKS_URL needs STAFF_TOKEN_ISSUER and STAFF_TOKEN_AUDIENCE")
        if self.staff_token_issuer is not None and self.staff_token_issuer == self.auth_issuer:
            raise ValueError(
                "STAFF_TOKEN_ISSUER must differ from AUTH_ISSUER: a token the platform signs must never read as "
                "one of the identity provider's"
            )
        return self


Settings = TypeVar("Settings", bound=ServiceSettings)


_REFUSED_IN_PRODUCTION = (
    "In production a service does not start while a variable looks like a misspelt setting: rename or remove it, "
    "or, if it is another program's, name it in NOT_SETTINGS (comma-separated)."
)


class MisspeltSettings(Exception):
    """Environment variables that look like settings but are none, in production: the service does not start. Not a
    ValueError: its message (names only, never values) is printed in full even once logs are redacted."""


def from_environment(settings_class: type[Settings], service: str) -> Settings:
    """A service's settings from its environment, once its variables are checked for misspelt setting names
    (shared.setting_names): each one is a warning, and in production a refusal to start, so that a deployment with
    ``OPENING_HOUR`` (or an escalation delay's name mistyped) never runs on the default in silence. Only the
    variables' names are told: their values may be secrets."""
    configure_logging(service)  # the warnings below say which service they come from, and when
    misspellings = misspelt_settings(os.environ)
    if misspellings and meant_production(os.environ, misspellings):
        told = [str(m) for m in misspellings]
        raise MisspeltSettings("\n".join([*told, _REFUSED_IN_PRODUCTION]))
    for misspelling in misspellings:
        log.warning("%s", misspelling)
    return settings_class()


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
