"""The alerting service: uvicorn services.alerting.main:app (port 8002)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, field_validator

from services.alerting import handlers
from services.alerting.api import encode_alert_event, router
from services.alerting.dashboard import PAGES
from services.alerting.dashboard import router as dashboard_router
from services.alerting.escalation import escalation_watch
from services.alerting.patients_api import router as patients_router
from services.alerting.service_levels import ServiceLevels
from services.alerting.team_api import router as team_router
from shared.audit import StreamAccessTrail
from shared.http.app import ServiceDefinition, create_service_app
from shared.messaging.consumer import Subscription
from shared.messaging.fanout import StreamFanout
from shared.messaging.topology import ConsumerSpec
from shared.opening_hours import OpeningHours
from shared.periodic import Clock, system_clock
from shared.settings import ServiceSettings, web_address

NAME = "alerting"

SUBSCRIPTIONS = (
    Subscription(
        ConsumerSpec(NAME, "QUESTIONNAIRES", "questionnaire.submitted"), handlers.on_questionnaire_submitted, batch=True
    ),
    Subscription(ConsumerSpec(NAME, "QUESTIONNAIRES", "message.sent"), handlers.on_message_sent, batch=True),
    Subscription(ConsumerSpec(NAME, "INCLUSION", "session.scheduled"), handlers.on_session_scheduled, batch=True),
)


class AlertingSettings(ServiceSettings):
    escalation_check_s: float = Field(default=30.0, gt=0, alias="ESCALATION_CHECK_S")
    # Development sign-in on the dashboard (pick a user): never in production, whatever this says.
    dashboard_dev_login: bool = Field(default=True, alias="DASHBOARD_DEV_LOGIN")
    # Where browsers reach the questionnaire service: the dashboard posts the answers a nurse takes by phone there
    # (that service's DASHBOARD_ORIGINS must name this one's origin).
    questionnaire_public_url: str = Field(default="http://127.0.0.1:8001", alias="QUESTIONNAIRE_PUBLIC_URL")

    @field_validator("questionnaire_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return web_address(value, "QUESTIONNAIRE_PUBLIC_URL")


def build_service(settings: AlertingSettings | None = None, *, clock: Clock = system_clock) -> ServiceDefinition:
    settings = settings or AlertingSettings()
    levels = ServiceLevels(OpeningHours.parse(settings.opening_hours, settings.timezone, settings.closed_days))
    feed = StreamFanout("ALERTS", "alert.>", encode_alert_event)
    stream_trail = StreamAccessTrail(max_batch=512)
    return ServiceDefinition(
        name=NAME,
        settings=settings,
        routers=(router, patients_router, team_router, dashboard_router),
        migrations=Path(__file__).parent / "migrations",
        subscriptions=SUBSCRIPTIONS,
        background=(feed.run, stream_trail.run, escalation_watch(levels, settings.escalation_check_s, clock)),
        extras={"service_levels": levels, "alert_feed": feed, "stream_trail": stream_trail, "clock": clock},
        description="Scoring, alerts, the nurse's triage workflow, the live alert stream and the nurse dashboard.",
        static={"/dashboard": PAGES},
        home="/dashboard/",
    )


def create_app(settings: AlertingSettings | None = None) -> FastAPI:
    return create_service_app(build_service(settings))


app = create_app()
