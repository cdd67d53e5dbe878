"""The devices service: uvicorn services.devices.main:app (port 8004)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from services.devices import handlers
from services.devices.api import enrolment_router, router
from services.devices.domain import SilencePolicy
from services.devices.fleet_api import router as fleet_router
from services.devices.fleet_page import PAGES, page_headers, page_router
from services.devices.heartbeats import HeartbeatWriter, heartbeat_router
from services.devices.silence import heartbeat_retention, silence_watch
from shared.http import sign_in
from shared.http.app import WEB_MODULES, ServiceDefinition, create_service_app
from shared.messaging.consumer import Subscription
from shared.messaging.topology import ConsumerSpec
from shared.periodic import Clock, system_clock
from shared.settings import ServiceSettings, from_environment, web_address, web_origins

NAME = "devices"

SUBSCRIPTIONS = (
    Subscription(ConsumerSpec(NAME, "INCLUSION", "session.scheduled"), handlers.on_session_scheduled, batch=True),
)


class DevicesSettings(ServiceSettings):
    silence_threshold_days: float = Field(default=7.0, gt=0, alias="SILENCE_THRESHOLD_DAYS")
    silence_before_due_days: float = Field(default=2.0, gt=0, alias="SILENCE_BEFORE_DUE_DAYS")
    silence_check_s: float = Field(default=60.0, gt=0, alias="SILENCE_CHECK_S")
    heartbeat_retention_days: int = Field(default=7, ge=1, alias="HEARTBEAT_RETENTION_DAYS")
    # The web origins of the tablet's page (the questionnaire service as the tablets reach it), whose heartbeats
    # come from another origin (CORS: bearer tokens, never cookies). None by default: no page of another origin may.
    tablet_origins: Annotated[tuple[str, ...], NoDecode] = Field(default=(), alias="TABLET_ORIGINS")

    # Where the tablets reach the questionnaire service: a loan's enrolment link (and its QR code) opens its
    # /tablet/ page there, so a wrong address here is a QR code that leads nowhere; refused at start-up.
    questionnaire_public_url: str = Field(default="http://127.0.0.1:8001", alias="QUESTIONNAIRE_PUBLIC_URL")

    @field_validator("questionnaire_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return web_address(value, "QUESTIONNAIRE_PUBLIC_URL")

    # Sign-in on the fleet page with the hospital's identity provider (OpenID Connect, authorization code + PKCE):
    # the page's own client id there (a public client: no secret), and the scopes it asks for; checked as the
    # dashboard's are (shared.http.sign_in). Unset, no such button: the fleet manager pastes a token.
    fleet_oidc_client_id: str | None = Field(default=None, alias="FLEET_OIDC_CLIENT_ID")
    fleet_oidc_scopes: str = Field(default=sign_in.DEFAULT_SCOPES, alias="FLEET_OIDC_SCOPES")

    @field_validator("fleet_oidc_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        return sign_in.client_id(value, "FLEET_OIDC_CLIENT_ID", "the fleet page's")

    @field_validator("fleet_oidc_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        return sign_in.scopes(value, "FLEET_OIDC_SCOPES")

    @model_validator(mode="after")
    def _client_needs_provider(self) -> DevicesSettings:
        sign_in.needs_provider(
            self.fleet_oidc_client_id, self.staff_token_issuer, "FLEET_OIDC_CLIENT_ID", "the fleet page"
        )
        return self

    @field_validator("tablet_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> tuple[str, ...]:
        return web_origins(value, "TABLET_ORIGINS")

    @property
    def silence_policy(self) -> SilencePolicy:
        before_due = timedelta(days=self.silence_before_due_days)
        return SilencePolicy(
            threshold=timedelta(days=self.silence_threshold_days), due_window=before_due, due_silence=before_due
        )


def build_service(settings: DevicesSettings | None = None, *, clock: Clock = system_clock) -> ServiceDefinition:
    settings = settings or from_environment(DevicesSettings, NAME)
    heartbeats = HeartbeatWriter(max_batch=512)
    return ServiceDefinition(
        name=NAME,
        settings=settings,
        routers=(heartbeat_router, enrolment_router, router, fleet_router, page_router),
        migrations=Path(__file__).parent / "migrations",
        subscriptions=SUBSCRIPTIONS,
        background=(
            heartbeats.run,
            silence_watch(settings.silence_policy, settings.silence_check_s, clock),
            heartbeat_retention(settings.heartbeat_retention_days),
        ),
        extras={"heartbeats": heartbeats, "clock": clock},
        description="The tablet fleet: inventory, loans and device tokens, returns, wipes, heartbeats, silences.",
        cors_origins=settings.tablet_origins,
        static={"/fleet": PAGES, "/web": WEB_MODULES},
        static_headers=page_headers,
    )


def create_app(settings: DevicesSettings | None = None) -> FastAPI:
    return create_service_app(build_service(settings))


app = create_app()
