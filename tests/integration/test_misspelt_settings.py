"""A service started as it is deployed (uvicorn services.<name>.main:app) with a misspelt setting's name in its
environment: in production it does not start, and says which setting was probably meant; elsewhere it warns."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shared.devservers import ROOT, free_port
from shared.http.protocol import uvicorn_command

pytestmark = pytest.mark.integration

SERVICES = ("questionnaire", "alerting", "devices")
# A value that must never be shown: a variable's value may be a secret.
VALUE = "value-that-must-not-be-shown"


def _environment(**variables: str) -> dict[str, str]:
    # A NATS and a PostgreSQL no one listens at: a service that did start would fail on them, not hang on them.
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        **variables,
    }


@pytest.mark.parametrize("service", SERVICES)
def test_in_production_a_misspelt_setting_stops_the_start_with_what_was_meant(service: str) -> None:
    env = _environment(
        ENVIRONMENT="production",
        AUTH_SECRET="s" * 40,
        REQUIRE_NATS_SYNC_ALWAYS="true",
        STAFF_TOKEN_ISSUER="https://sso.hospital.example/realms/oncology",
        STAFF_TOKEN_AUDIENCE="oncofollow-api",
        OPENING_HOUR=VALUE,
    )
    started = subprocess.run(
        [sys.executable, "-m", *uvicorn_command(service, "127.0.0.1", free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = started.stdout + started.stderr
    assert started.returncode != 0, output
    assert "OPENING_HOUR is not a setting; did you mean OPENING_HOURS?" in output, output
    assert VALUE not in output
    # Refused before anything else: the service never got as far as its servers.
    assert "Waiting for application startup" not in output, output


@pytest.mark.parametrize("service", SERVICES)
def test_outside_production_a_misspelt_setting_is_a_warning(service: str) -> None:
    env = _environment(ENVIRONMENT="development", ESCALATION_CHECK_SECONDS=VALUE)
    loaded = subprocess.run(
        [sys.executable, "-c", f"import services.{service}.main"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    # Like every later line of the service's: when, and which service (make run interleaves three).
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\d [\d:,]+ {service} WARNING shared.settings: "
        "ESCALATION_CHECK_SECONDS is not a setting; did you mean ESCALATION_CHECK_S[?]$",
        loaded.stderr,
        re.MULTILINE,
    ), loaded.stderr
    assert VALUE not in loaded.stdout + loaded.stderr
