"""The alerting service: uvicorn services.alerting.main:app (port 8002)."""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, ValidationError, field_validator, model_validator

from services.alerting import handlers, repository
from services.alerting.api import encode_alert_event, router
from services.alerting.dashboard import PAGES, page_headers
from services.alerting.dashboard import router as dashboard_router
from services.alerting.domain import DEFAULT_RULE_SET, RuleSet, RuleSetDefinition
from services.alerting.escalation import escalation_watch
from services.alerting.patients_api import router as patients_router
from services.alerting.service_levels import ServiceLevels
from services.alerting.team_api import router as team_router
from shared.audit import StreamAccessTrail
from shared.http import sign_in
from shared.http.app import WEB_MODULES, ServiceDefinition, create_service_app
from shared.messaging.consumer import Subscription
from shared.messaging.fanout import StreamFanout
from shared.messaging.topology import ConsumerSpec
from shared.periodic import Clock, system_clock
from shared.settings import ServiceSettings, from_environment, web_address

NAME = "alerting"


def subscriptions(rules: RuleSet = DEFAULT_RULE_SET, clock: Clock = system_clock) -> tuple[Subscription, ...]:
    # The clock is bound once here, not looked up per message: the handlers run on the hot path.
    return (
        Subscription(
            ConsumerSpec(NAME, "QUESTIONNAIRES", "questionnaire.submitted"),
            functools.partial(handlers.on_questionnaire_submitted, rules=rules, clock=clock),
            batch=True,
        ),
        Subscription(
            ConsumerSpec(NAME, "QUESTIONNAIRES", "message.sent"),
            functools.partial(handlers.on_message_sent, rules=rules, clock=clock),
            batch=True,
        ),
        Subscription(ConsumerSpec(NAME, "INCLUSION", "session.scheduled"), handlers.on_session_scheduled, batch=True),
    )


# What this service consumes (the AsyncAPI document is generated from it); the running service's handlers score with
# the rule set its settings name and the clock it is built with.
SUBSCRIPTIONS = subscriptions()


def load_rule_set(path: Path) -> RuleSet:
    """A hospital's rule set from its JSON file (``RuleSetDefinition``); a ValueError says what is wrong."""
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"ALERT_RULES_FILE {path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ValueError(f"ALERT_RULES_FILE {path}: not valid JSON ({exc})") from None
    try:
        return RuleSetDefinition.model_validate(definition).rule_set()
    except ValidationError as exc:
        faults = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '/'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"ALERT_RULES_FILE {path}: {faults}") from None


class AlertingSettings(ServiceSettings):
    escalation_check_s: float = Field(default=30.0, gt=0, alias="ESCALATION_CHECK_S")
    # Development sign-in on the dashboard (pick a user): never in production, whatever this says.
    dashboard_dev_login: bool = Field(default=True, alias="DASHBOARD_DEV_LOGIN")
    # Sign-in with the hospital's identity provider (OpenID Connect, authorization code + PKCE): the dashboard's
    # client id there (a public client: no secret), and the scopes it asks for. Unset, no such button.
    dashboard_oidc_client_id: str | None = Field(default=None, alias="DASHBOARD_OIDC_CLIENT_ID")
    dashboard_oidc_scopes: str = Field(default=sign_in.DEFAULT_SCOPES, alias="DASHBOARD_OIDC_SCOPES")

    @field_validator("dashboard_oidc_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        return sign_in.client_id(value, "DASHBOARD_OIDC_CLIENT_ID", "the dashboard's")

    @field_validator("dashboard_oidc_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        return sign_in.scopes(value, "DASHBOARD_OIDC_SCOPES")

    @model_validator(mode="after")
    def _client_needs_provider(self) -> AlertingSettings:
        sign_in.needs_provider(
            self.dashboard_oidc_client_id, self.staff_token_issuer, "DASHBOARD_OIDC_CLIENT_ID", "the dashboard"
        )
        return self

    # CLINICAL.md §4: a RED alert is to be taken within this much opening time (ORANGE: by the next business day's end).
    red_acknowledge_within_min: int = Field(default=60, ge=5, le=24 * 60, alias="RED_ACKNOWLEDGE_WITHIN_MIN")
    # A hospital's own thresholds (CLINICAL.md §3 "default rule set"), as JSON; without it, the defaults.
    alert_rules_file: Path | None = Field(default=None, alias="ALERT_RULES_FILE")

    @field_validator("alert_rules_file")
    @classmethod
    def _readable_rules(cls, value: Path | None) -> Path | None:
        if value is not None:
            load_rule_set(value)  # at start-up, not at the first submission
        return value

    def rule_set(self) -> RuleSet:
        return DEFAULT_RULE_SET if self.alert_rules_file is None else load_rule_set(self.alert_rules_file)

    # Where browsers reach the questionnaire service: the dashboard posts the answers a nurse takes by phone there
    # (that service's DASHBOARD_ORIGINS must name this one's origin).
    questionnaire_public_url: str = Field(default="http://127.0.0.1:8001", alias="QUESTIONNAIRE_PUBLIC_URL")

    @field_validator("questionnaire_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return web_address(value, "QUESTIONNAIRE_PUBLIC_URL")


def build_service(settings: AlertingSettings | None = None, *, clock: Clock = system_clock) -> ServiceDefinition:
    settings = settings or from_environment(AlertingSettings, NAME)
    levels = ServiceLevels(settings.clinic_hours(), red_within=timedelta(minutes=settings.red_acknowledge_within_min))
    feed = StreamFanout("ALERTS", "alert.>", encode_alert_event)
    stream_trail = StreamAccessTrail(max_batch=512)
    return ServiceDefinition(
        name=NAME,
        settings=settings,
        routers=(router, patients_router, team_router, dashboard_router),
        migrations=Path(__file__).parent / "migrations",
        subscriptions=subscriptions(settings.rule_set(), clock),
        background=(feed.run, stream_trail.run, escalation_watch(levels, settings.escalation_check_s, clock)),
        extras={"service_levels": levels, "alert_feed": feed, "stream_trail": stream_trail, "clock": clock},
        description="Scoring, alerts, the nurse's triage workflow, the live alert stream and the nurse dashboard.",
        static={"/dashboard": PAGES, "/web": WEB_MODULES},
        static_headers=page_headers,
        home="/dashboard/",
        purges=(repository.STREAM_TOKEN_USES_PURGE,),
    )


def create_app(settings: AlertingSettings | None = None) -> FastAPI:
    return create_service_app(build_service(settings))


app = create_app()
