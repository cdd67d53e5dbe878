"""The alerting service: uvicorn services.alerting.main:app (port 8002)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.alerting import handlers
from services.alerting.api import router
from shared.http.app import ServiceDefinition, create_service_app
from shared.messaging.consumer import Subscription
from shared.messaging.topology import ConsumerSpec
from shared.settings import ServiceSettings

NAME = "alerting"

SUBSCRIPTIONS = (
    Subscription(
        ConsumerSpec(NAME, "QUESTIONNAIRES", "questionnaire.submitted"), handlers.on_questionnaire_submitted, batch=True
    ),
    Subscription(ConsumerSpec(NAME, "QUESTIONNAIRES", "message.sent"), handlers.on_message_sent, batch=True),
    Subscription(ConsumerSpec(NAME, "INCLUSION", "session.scheduled"), handlers.on_session_scheduled, batch=True),
)


class AlertingSettings(ServiceSettings):
    pass


def build_service(settings: AlertingSettings | None = None) -> ServiceDefinition:
    return ServiceDefinition(
        name=NAME,
        settings=settings or AlertingSettings(),
        routers=(router,),
        migrations=Path(__file__).parent / "migrations",
        subscriptions=SUBSCRIPTIONS,
        description="Scoring, alerts, the nurse's triage workflow and the live alert stream.",
    )


def create_app(settings: AlertingSettings | None = None) -> FastAPI:
    return create_service_app(build_service(settings))


app = create_app()
