"""Misspelt setting names: which environment variables look like a setting but are none, and what a service does
with them at start-up (a warning; in production, no start)."""

from __future__ import annotations

import logging
import re

import pytest

from services.alerting.main import AlertingSettings
from services.devices.main import DevicesSettings
from services.questionnaire.main import QuestionnaireSettings
from shared.devservers import ROOT
from shared.setting_names import (
    OTHER_PROGRAMS_PREFIXES,
    PLATFORM_VARIABLES,
    SETTING_NAMES,
    Misspelling,
    meant_production,
    misspelt_settings,
)
from shared.settings import MisspeltSettings, ServiceSettings, from_environment

PRODUCTION = {
    "ENVIRONMENT": "production",
    "AUTH_SECRET": "s" * 40,
    "REQUIRE_NATS_SYNC_ALWAYS": "true",
    "STAFF_TOKEN_ISSUER": "https://sso.hospital.example/realms/oncology",
    "STAFF_TOKEN_AUDIENCE": "oncofollow-api",
}


def test_the_list_of_setting_names_is_every_service_settings_and_no_more() -> None:
    # A setting added to a service but not to the list would read as a misspelling in the other services.
    aliases = {
        field.alias or name.upper()
        for settings in (QuestionnaireSettings, AlertingSettings, DevicesSettings)
        for name, field in settings.model_fields.items()
    }
    assert set(SETTING_NAMES) == aliases


def test_every_variable_the_platform_reads_is_a_setting_or_listed_as_the_platform_s() -> None:
    # run.py's NATS_PORT, unlisted, would read as a misspelt NATS_URL.
    read = re.compile(r"""(?:environ\.get|environ\[|env\.get|getenv|setdefault)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
    names = {
        name
        for folder in ("shared", "services", "scripts", "bench", "tests")
        for path in (ROOT / folder).rglob("*.py")
        for name in read.findall(path.read_text(encoding="utf-8"))
    }
    assert names, "the pattern finds no variable: the code reads them another way"
    unlisted = names - SETTING_NAMES - PLATFORM_VARIABLES
    assert sorted(name for name in unlisted if not name.startswith(OTHER_PROGRAMS_PREFIXES)) == []


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        # A letter missing, extra, wrong or swapped
        ("OPENING_HOUR", "OPENING_HOURS"),
        ("ENVIROMENT", "ENVIRONMENT"),
        ("STAFF_TOKEN_ISUER", "STAFF_TOKEN_ISSUER"),
        ("QUESTIONAIRE_PUBLIC_URL", "QUESTIONNAIRE_PUBLIC_URL"),
        ("NATS_URI", "NATS_URL"),
        ("DATABASE_URI", "DATABASE_URL"),
        ("CLINIC_CLOSED_DAY", "CLINIC_CLOSED_DAYS"),
        ("STAFF_TOKEN_ALGORITHM", "STAFF_TOKEN_ALGORITHMS"),
        # An underscore lost or added, a name in lower case
        ("OPENINGHOURS", "OPENING_HOURS"),
        ("CLINIC_TIME_ZONE", "CLINIC_TIMEZONE"),
        ("MAX_INFLIGHT", "MAX_IN_FLIGHT"),
        ("opening_hour", "OPENING_HOURS"),
        ("OPENING__HOURS", "OPENING_HOURS"),
        # A unit left out, spelt out or wrong
        ("ESCALATION_CHECK", "ESCALATION_CHECK_S"),
        ("ESCALATION_CHECK_SECONDS", "ESCALATION_CHECK_S"),
        ("ESCALATION_CHECK_MS", "ESCALATION_CHECK_S"),
        ("RED_ACKNOWLEDGE_WITHIN_MINUTES", "RED_ACKNOWLEDGE_WITHIN_MIN"),
        ("RED_ACKNOWLEDGE_WITHIN", "RED_ACKNOWLEDGE_WITHIN_MIN"),
        ("DB_LOCK_TIMEOUT_S", "DB_LOCK_TIMEOUT_MS"),
        ("SILENCE_THRESHOLD", "SILENCE_THRESHOLD_DAYS"),
        # The same words in another order, with a plural S more or less
        ("HOURS_OPENING", "OPENING_HOURS"),
        ("ACKNOWLEDGE_RED_WITHIN_MINUTES", "RED_ACKNOWLEDGE_WITHIN_MIN"),
        ("ALERT_RULE_FILES", "ALERT_RULES_FILE"),
        # A word more or less on a name of three words or more
        ("ACKNOWLEDGE_WITHIN_MIN", "RED_ACKNOWLEDGE_WITHIN_MIN"),
        ("NATS_SYNC_ALWAYS", "REQUIRE_NATS_SYNC_ALWAYS"),
        ("CLOSED_DAYS", "CLINIC_CLOSED_DAYS"),
        ("STAFF_TOKEN_ISSUER_URL", "STAFF_TOKEN_ISSUER"),
        ("OIDC_CLIENT_ID", "DASHBOARD_OIDC_CLIENT_ID or FLEET_OIDC_CLIENT_ID"),
        # A service's name before a setting's: settings take none
        ("ALERTING_ESCALATION_CHECK_S", "ESCALATION_CHECK_S"),
        ("QUESTIONNAIRE_TEAM_PHONE", "TEAM_PHONE"),
    ],
)
def test_a_variable_close_to_a_setting_is_told_with_the_setting_it_probably_meant(variable: str, meant: str) -> None:
    [found] = misspelt_settings({variable: "x", "OPENING_HOURS": "08:00-18:00", "PATH": "/usr/bin"})
    assert str(found) == f"{variable} is not a setting; did you mean {meant}?"


@pytest.mark.parametrize(
    "variable", ["DASHBOARD_OIDC_CLIENT_SECRET", "ALERTING_FOO", "ESCALATION_RED_MINUTE", "STAFF_PASSWORD"]
)
def test_a_name_under_a_prefix_only_settings_use_is_told_even_close_to_none(variable: str) -> None:
    assert misspelt_settings([variable]) == (Misspelling(variable, ()),)
    assert str(misspelt_settings([variable])[0]) == f"{variable} is not a setting of any service"


# Variables a machine, a container, a pod or a developer's shell commonly holds: none is told.
ORDINARY = """
PATH HOME HOSTNAME LANG LANGUAGE LC_ALL TERM SHELL USER LOGNAME PWD OLDPWD SHLVL TZ TMPDIR EDITOR PAGER DISPLAY _
PYTHONPATH PYTHONUNBUFFERED PYTHONDONTWRITEBYTECODE PYTHONHASHSEED PYTHONWARNINGS PYTHONIOENCODING VIRTUAL_ENV
PYENV_ROOT PIP_CERT PIP_DEFAULT_TIMEOUT PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_NO_CACHE_DIR
PIP_DISABLE_PIP_VERSION_CHECK UV_CACHE_DIR OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_EXPORTER_OTLP_ENDPOINT
OTEL_EXPORTER_OTLP_HEADERS OTEL_TRACES_SAMPLER OTEL_METRIC_EXPORT_INTERVAL OTEL_SDK_DISABLED OTEL_PROPAGATORS
KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT KUBERNETES_SERVICE_PORT_HTTPS KUBERNETES_PORT
KUBERNETES_PORT_443_TCP KUBERNETES_PORT_443_TCP_PROTO KUBERNETES_PORT_443_TCP_PORT KUBERNETES_PORT_443_TCP_ADDR
NATS_SERVICE_HOST NATS_SERVICE_PORT NATS_PORT_4222_TCP_ADDR NATS_HEADLESS_SERVICE_HOST QUESTIONNAIRE_SERVICE_HOST
QUESTIONNAIRE_SERVICE_PORT_HTTP QUESTIONNAIRE_PORT_8001_TCP ALERTING_SERVICE_HOST ALERTING_PORT DEVICES_SERVICE_PORT
DASHBOARD_SERVICE_HOST STAFF_PORT_80_TCP_PROTO OTEL_COLLECTOR_SERVICE_HOST POSTGRES_SERVICE_HOST POSTGRES_PORT
WEB_CONCURRENCY FORWARDED_ALLOW_IPS UVICORN_HOST UVICORN_PORT UVICORN_WORKERS GUNICORN_CMD_ARGS PORT HOST ENV
APP_ENV NODE_ENV DEBUG SECRET_KEY VERSION RELEASE GIT_COMMIT CI GITHUB_ACTIONS GITHUB_SHA GITHUB_TOKEN GITLAB_CI
BUILD_NUMBER HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy SSL_CERT_FILE SSL_CERT_DIR
REQUESTS_CA_BUNDLE CURL_CA_BUNDLE AWS_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY AWS_REGION GOOGLE_APPLICATION_CREDENTIALS AZURE_CLIENT_ID AZURE_CLIENT_SECRET PGHOST PGPORT
PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGDATA POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB DB_HOST DB_PORT DB_NAME
DB_USER DB_PASSWORD DB_POOL_SIZE DATABASE_HOST DATABASE_NAME DATABASE_USER DATABASE_PASSWORD DATABASE_PORT
PGDATABASE REDIS_URL NATS_USER NATS_PASSWORD NATS_CREDS NATS_NKEY NATS_CERT NATS_KEY NATS_CA NATS_CONTEXT
NATS_TIMEOUT NATS_SERVER NATS_STORE_DIR NATS_TOKEN SENTRY_DSN SENTRY_ENVIRONMENT DD_ENV DD_SERVICE LOGLEVEL
LOG_FORMAT SSH_AUTH_SOCK XDG_CONFIG_HOME XDG_DATA_HOME DBUS_SESSION_BUS_ADDRESS DEBIAN_FRONTEND RUST_BACKTRACE
JAVA_HOME PLAYWRIGHT_BROWSERS_PATH PYTEST_ADDOPTS PYTEST_CURRENT_TEST PYTEST_XDIST_WORKER FORCE_COLOR NO_COLOR
COLUMNS MAKEFLAGS MAKELEVEL MALLOC_ARENA_MAX OMP_NUM_THREADS TIMEZONE TIME_ZONE ENVIRONMENT_NAME
DEPLOYMENT_ENVIRONMENT POD_NAME POD_NAMESPACE NODE_NAME SERVICE_NAME JWT_SECRET JWT_ISSUER JWT_AUDIENCE AUTH_TOKEN
API_KEY CLIENT_ID CLIENT_SECRET MAX_WORKERS MAX_CONNECTIONS REQUEST_TIMEOUT
""".split()


def test_ordinary_variables_the_platform_s_own_and_every_service_s_settings_are_never_told() -> None:
    platform = [*SETTING_NAMES, *PLATFORM_VARIABLES, "opening_hours", "Nats_Url"]
    assert misspelt_settings(dict.fromkeys([*ORDINARY, *platform], "x")) == ()


def test_only_names_are_told_never_values() -> None:
    secret = "postgresql://oncofollow:hunter2-very-secret@db/oncofollow"
    found = misspelt_settings({"DATABASE_URI": secret, "AUTH_SECRETS": secret})
    assert [str(m) for m in found] == [
        "AUTH_SECRETS is not a setting; did you mean AUTH_SECRET?",
        "DATABASE_URI is not a setting; did you mean DATABASE_URL?",
    ]


@pytest.mark.parametrize(
    ("environ", "production"),
    [
        ({"ENVIRONMENT": "production", "OPENING_HOUR": "x"}, True),
        ({"environment": "production", "OPENING_HOUR": "x"}, True),
        # Misspelt, ENVIRONMENT would start a development service (its tokens, its secret) where production was meant.
        ({"ENVIROMENT": "production"}, True),
        ({"ENVIRONMENT": "development", "OPENING_HOUR": "x"}, False),
        ({"ENVIROMENT": "development"}, False),
        ({"OPENING_HOUR": "production"}, False),
    ],
)
def test_production_is_asked_by_environment_or_by_its_misspelling(environ: dict[str, str], production: bool) -> None:
    assert meant_production(environ, misspelt_settings(environ)) is production


class TestStartUp:
    """``from_environment``: how every service builds its settings (build_service in each main.py)."""

    def test_outside_production_each_misspelling_is_a_warning_and_the_service_starts(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("ENVIRONMENT", "development")
        monkeypatch.setenv("OPENING_HOUR", "07:30-19:00")
        monkeypatch.setenv("ESCALATION_CHECK_SECONDS", "secret-value-5")
        with caplog.at_level(logging.WARNING, logger="shared.settings"):
            settings = from_environment(AlertingSettings, "alerting")
        assert settings.opening_hours == "08:00-18:00"  # what the misspelling costs: the default
        assert [r.getMessage() for r in caplog.records if r.name == "shared.settings"] == [
            "ESCALATION_CHECK_SECONDS is not a setting; did you mean ESCALATION_CHECK_S?",
            "OPENING_HOUR is not a setting; did you mean OPENING_HOURS?",
        ]
        assert "secret-value" not in caplog.text

    def test_in_production_a_misspelling_stops_the_start_saying_what_was_meant(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in {**PRODUCTION, "RED_ACKNOWLEDGE_WITHIN_MINUTES": "15"}.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(MisspeltSettings) as refused:
            from_environment(AlertingSettings, "alerting")
        assert str(refused.value).splitlines()[0] == (
            "RED_ACKNOWLEDGE_WITHIN_MINUTES is not a setting; did you mean RED_ACKNOWLEDGE_WITHIN_MIN?"
        )
        monkeypatch.delenv("RED_ACKNOWLEDGE_WITHIN_MINUTES")
        assert from_environment(AlertingSettings, "alerting").red_acknowledge_within_min == 60

    def test_a_setting_of_another_service_is_no_mistake(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # make run starts every service in one environment.
        for name, value in {**PRODUCTION, "ESCALATION_CHECK_S": "5", "TEAM_PHONE": "01 49 81 21 11"}.items():
            monkeypatch.setenv(name, value)
        assert from_environment(DevicesSettings, "devices").environment == "production"
        assert from_environment(ServiceSettings, "any").environment == "production"

    def test_a_variable_the_operator_names_in_not_settings_is_never_told(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A false alarm (another program's variable in a shared environment) must not keep production down.
        for name, value in {**PRODUCTION, "STAFF_PORTAL_URL": "https://intranet", "OPENING_HOUR": "7"}.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(MisspeltSettings, match="name it in NOT_SETTINGS"):
            from_environment(AlertingSettings, "alerting")
        monkeypatch.setenv("NOT_SETTINGS", "staff_portal_url, OPENING_HOUR")
        assert from_environment(AlertingSettings, "alerting").environment == "production"
        assert misspelt_settings({"NOT_SETTINGS": "OPENING_HOUR", "OPENING_HOUR": "7", "STAFF_X": ""}) == (
            Misspelling("STAFF_X", ()),
        )
