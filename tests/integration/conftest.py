"""Both services in-process against the test's own NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.clock import PinnableClock
from shared.testing.services import in_process

pytestmark = pytest.mark.integration


@dataclass
class Platform:
    questionnaire: httpx.AsyncClient
    alerting: httpx.AsyncClient
    questionnaire_platform: Any
    alerting_platform: Any
    tokens: TokenService
    # Each service's clock: the real time unless a test pins it (a day it checks, far from midnight).
    alerting_clock: PinnableClock
    questionnaire_clock: PinnableClock

    def device(self, patient_id: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_device_token(patient_id, 'tablet-test')}"}

    def staff(self, role: str = "nurse", staff_id: str = "nurse-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token(staff_id, {role})}"}


@pytest.fixture
async def platform(service_env: dict[str, str], tokens: TokenService) -> AsyncIterator[Platform]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env)
    # The escalation check's start-up round runs before the test (in_process waits for it), its next an hour later:
    # an alert a test writes overdue keeps the escalation level it was written with (a test that escalates runs
    # escalate_overdue itself, or replicas of its own).
    a_settings = AlertingSettings(**env, ESCALATION_CHECK_S="3600")
    a_clock, q_clock = PinnableClock(), PinnableClock()
    async with (
        in_process(build_questionnaire(q_settings, clock=q_clock)) as (q_client, q_platform),
        in_process(build_alerting(a_settings, clock=a_clock)) as (a_client, a_platform),
    ):
        yield Platform(q_client, a_client, q_platform, a_platform, tokens, a_clock, q_clock)


@pytest.fixture
def devices_clock() -> PinnableClock:
    """The ``devices`` service's clock: the real time unless a test pins it (a day it checks, far from midnight)."""
    return PinnableClock()


@pytest.fixture
async def devices(
    service_env: dict[str, str], devices_clock: PinnableClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The devices service alone, in-process: its client and its platform."""
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    settings = DevicesSettings(**env, SILENCE_CHECK_S="3600")
    async with in_process(build_devices(settings, clock=devices_clock)) as (client, platform):
        yield client, platform
