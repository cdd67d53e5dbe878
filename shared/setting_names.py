"""Every environment variable the platform reads, and which of the others look like a misspelling of one.

The services read their settings from environment variables whose names have no common prefix, and a name the
settings classes do not know is ignored: a misspelt one (``OPENING_HOUR``) would leave its setting at the default in
silence. ``make run`` starts every service in one environment, so a service also sees the other services' settings:
those are no mistake, hence one list for the whole platform here (a service never imports another one).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

# The aliases of QuestionnaireSettings, AlertingSettings and DevicesSettings (ServiceSettings' included); a unit
# test checks that this is exactly their union.
SETTING_NAMES = frozenset(
    {
        # shared.settings.ServiceSettings
        "AUTH_AUDIENCE",
        "AUTH_ISSUER",
        "AUTH_SECRET",
        "CLINIC_CLOSED_DAYS",
        "CLINIC_TIMEZONE",
        "CONSUMER_BACKOFF_S",
        "DATABASE_URL",
        "DB_LOCK_TIMEOUT_MS",
        "DB_POOL_MAX",
        "DB_POOL_MIN",
        "DB_STATEMENT_TIMEOUT_MS",
        "ENVIRONMENT",
        "MAX_BODY_BYTES",
        "MAX_IN_FLIGHT",
        "NATS_MONITOR_URL",
        "NATS_STREAM_REPLICAS",
        "NATS_URL",
        "OPENING_DAYS",
        "OPENING_HOURS",
        "PIPELINE_METRICS_INTERVAL_S",
        "REQUIRE_NATS_SYNC_ALWAYS",
        "STAFF_SIGN_IN_RECHECK_S",
        "STAFF_TOKEN_ALGORITHMS",
        "STAFF_TOKEN_AUDIENCE",
        "STAFF_TOKEN_FETCH_TIMEOUT_S",
        "STAFF_TOKEN_ISSUER",
        "STAFF_TOKEN_JWKS_URL",
        "STAFF_TOKEN_NAME_CLAIM",
        "STAFF_TOKEN_ROLES_CLAIM",
        # services.questionnaire.main.QuestionnaireSettings
        "DASHBOARD_ORIGINS",
        "DEVICES_PUBLIC_URL",
        "MAX_PHOTO_BYTES",
        "ORPHAN_PHOTO_DAYS",
        "QUESTIONNAIRE_DEFINITIONS_DIR",
        "TEAM_PHONE",
        # services.alerting.main.AlertingSettings
        "ALERT_RULES_FILE",
        "DASHBOARD_DEV_LOGIN",
        "DASHBOARD_OIDC_CLIENT_ID",
        "DASHBOARD_OIDC_SCOPES",
        "ESCALATION_CHECK_S",
        "QUESTIONNAIRE_PUBLIC_URL",
        "RED_ACKNOWLEDGE_WITHIN_MIN",
        # services.devices.main.DevicesSettings
        "FLEET_OIDC_CLIENT_ID",
        "FLEET_OIDC_SCOPES",
        "HEARTBEAT_RETENTION_DAYS",
        "SILENCE_BEFORE_DUE_DAYS",
        "SILENCE_CHECK_S",
        "SILENCE_THRESHOLD_DAYS",
        "TABLET_ORIGINS",
    }
)

_SERVICES = ("QUESTIONNAIRE", "ALERTING", "DEVICES")
# Comma-separated names an operator vouches are no setting (another program's, in a shared environment): never
# reported, so that a name this check takes wrongly for a misspelling does not keep a production service from starting.
NOT_SETTINGS_VARIABLE = "NOT_SETTINGS"

# What else of the platform reads the environment, and so may be in a service's (make run, the tests): no setting,
# but no mistake either. NATS_PORT or QUESTIONNAIRE_PROCESSES would otherwise read as misspellings of settings.
PLATFORM_VARIABLES = frozenset(
    {
        # scripts/run.py (make run)
        "DATA_DIR",
        "BIND_HOST",
        "NATS_PORT",
        "NATS_MONITOR_PORT",
        *(f"{service}_PORT" for service in _SERVICES),
        *(f"{service}_PROCESSES" for service in _SERVICES),
        # shared.http.app, shared.faults, shared.devservers
        "LOG_LEVEL",
        "FAULT_POINT",
        "FAULT_MARKER",
        "XDG_RUNTIME_DIR",
        # the tests (shared.testing, tests/), make test and make fuzz
        "TEST_DATABASE_URL",
        "TEST_NATS_URL",
        "TEST_WORKERS",
        "FUZZ_RANDOM",
        "FUZZ_EXAMPLES",
        "UPDATE_SCHEMA_SNAPSHOTS",
        # shared.settings.from_environment: the operator's answer to a false alarm
        NOT_SETTINGS_VARIABLE,
    }
)

# Whole families of variables that are other programs' and never a platform's setting: OpenTelemetry's SDK reads
# OTEL_* itself (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT...).
OTHER_PROGRAMS_PREFIXES = ("OTEL_",)
# The variables Kubernetes gives every pod for each Service of its namespace ("service links"): a Service named
# questionnaire or nats yields QUESTIONNAIRE_PORT=tcp://..., NATS_SERVICE_HOST, NATS_PORT_4222_TCP_ADDR...
_SERVICE_LINK = re.compile(r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_[A-Z]+)?)?)")

# Prefixes only the platform's settings use (or the services' names): under one, a name no setting has is a mistake
# even when it is close to none (DASHBOARD_OIDC_CLIENT_SECRET: there is no such setting; ALERTING_ESCALATION_CHECK_S:
# settings take no service prefix). Not NATS_, DB_, AUTH_, MAX_ or DATABASE_: other programs' variables share those.
PLATFORM_PREFIXES = (
    "STAFF_",
    "DASHBOARD_",
    "FLEET_",
    "CLINIC_",
    "OPENING_",
    "SILENCE_",
    "ESCALATION_",
    "HEARTBEAT_",
    "QUESTIONNAIRE_",
    "ALERTING_",
    "DEVICES_",
)


def _slips_allowed(setting: str) -> int:
    """How many slips of the keyboard (a letter missing, extra or wrong, two letters swapped) leave a name close to
    ``setting``: one in a name of less than 10 letters (NATS_URI), two in a longer one (ESCALATION_CHECK,
    DB_LOCK_TIMEOUT_S). Slips, not difflib's ratio: the ratio finds DATABASE_USER (which other programs read) close
    to DATABASE_URL (0.88); three slips apart, it is not."""
    return 1 if len(setting) < 10 else 2


# Ways of writing one unit: ESCALATION_CHECK_SECONDS is ESCALATION_CHECK_S spelt out.
_UNITS = {
    **dict.fromkeys(("S", "SEC", "SECS", "SECOND", "SECONDS"), "S"),
    **dict.fromkeys(("MS", "MSEC", "MILLIS", "MILLISECOND", "MILLISECONDS"), "MS"),
    **dict.fromkeys(("MIN", "MINS", "MINUTE", "MINUTES"), "MIN"),
    **dict.fromkeys(("DAY", "DAYS"), "DAY"),
}


@dataclass(frozen=True)
class Misspelling:
    """An environment variable that is no setting but looks like one: ``meant`` names the likeliest settings (several
    when equally likely, none when only its prefix gives it away)."""

    variable: str
    meant: tuple[str, ...]

    def __str__(self) -> str:
        if not self.meant:
            return f"{self.variable} is not a setting of any service"
        return f"{self.variable} is not a setting; did you mean {' or '.join(self.meant)}?"


def misspelt_settings(
    environ: Mapping[str, str] | Iterable[str],
    settings: Collection[str] = SETTING_NAMES,
    others: Collection[str] = PLATFORM_VARIABLES,
) -> tuple[Misspelling, ...]:
    """The variables of ``environ`` (its names only: values may be secrets) that no one reads but that look like
    one of ``settings``: close to one, the same words in another order or with a word more or less, or a name
    under a prefix only settings use. ``others``: names the platform reads that are no setting."""
    vouched = environ.get(NOT_SETTINGS_VARIABLE, "") if isinstance(environ, Mapping) else ""
    known = {name.strip().upper() for name in (*settings, *others, *vouched.split(","))}
    found = []
    for variable in sorted(environ):
        # pydantic-settings reads names whatever their case: opening_hours is OPENING_HOURS.
        name = variable.upper()
        if name in known or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or _someone_elses(name):
            continue
        meant = _likeliest(name, settings)
        if meant or name.startswith(PLATFORM_PREFIXES):
            found.append(Misspelling(variable, meant))
    return tuple(found)


def meant_production(environ: Mapping[str, str], misspellings: Iterable[Misspelling]) -> bool:
    """Whether ``environ`` asks for production, ENVIRONMENT's misspellings included: ENVIROMENT=production would
    otherwise start a development service (development tokens and secret) where production was meant."""
    names = {"ENVIRONMENT"} | {m.variable.upper() for m in misspellings if "ENVIRONMENT" in m.meant}
    return any(value == "production" for variable, value in environ.items() if variable.upper() in names)


def _someone_elses(name: str) -> bool:
    return name.startswith(OTHER_PROGRAMS_PREFIXES) or _SERVICE_LINK.fullmatch(name) is not None


def _likeliest(name: str, settings: Iterable[str]) -> tuple[str, ...]:
    """The settings ``name`` is closest to, the best-matched first kind of closeness deciding (see ``_closeness``)."""
    # ALERTING_ESCALATION_CHECK_S: settings take no service prefix, the rest may be one.
    service, _, rest = name.partition("_")
    names = (name, rest) if service in _SERVICES and rest else (name,)
    ranked = [(rank, s) for s in settings for n in names if (rank := _closeness(n, s.upper())) is not None]
    if not ranked:
        return ()
    best = min(rank for rank, _ in ranked)
    return tuple(sorted({s for rank, s in ranked if rank == best}))


def _closeness(name: str, setting: str) -> tuple[int, int] | None:
    """How close ``name`` is to ``setting`` (the lower, the closer), None when it is not."""
    if name == setting:
        return (0, 0)
    slips = _slips(name, setting, _slips_allowed(setting))
    if slips is not None:  # OPENING_HOUR, STAFF_TOKEN_ISUER, NATS_URI, OPENINGHOURS
        return (1, slips)
    words, setting_words = _words(name), _words(setting)
    if sorted(words) == sorted(setting_words):  # HOURS_OPENING, ESCALATION_CHECK_SECONDS, OPENING__HOURS
        return (2, 0)
    # A word more or less (NATS_SYNC_ALWAYS, STAFF_TOKEN_ISSUER_URL), only against names of three words or more: a
    # word more or less than DATABASE_URL or NATS_URL (READONLY_DATABASE_URL, URL) is often another program's.
    shorter, longer = sorted((words, setting_words), key=len)
    if len(setting_words) >= 3 and len(shorter) >= 2 and len(longer) == len(shorter) + 1:
        if any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer))):
            return (3, 0)
    return None


@functools.cache
def _words(name: str) -> tuple[str, ...]:
    """The name's words, each in one spelling: a unit whichever way it is written, and no plural S. Kept once worked
    out: a start-up compares every variable with every setting."""
    words = []
    for word in name.split("_"):
        if not word:
            continue  # OPENING__HOURS, a trailing underscore
        word = _UNITS.get(word, word)
        if len(word) > 3 and word.endswith("S") and not word.endswith("SS"):
            word = word[:-1]
        words.append(word)
    return tuple(words)


def _slips(a: str, b: str, most: int) -> int | None:
    """The fewest letters to leave out, add, change or swap with the next to turn ``a`` into ``b`` (the optimal
    string alignment distance), None when more than ``most``. Computed only near the diagonal: a start-up compares
    every variable with every setting."""
    if abs(len(a) - len(b)) > most:
        return None
    far = most + 1  # any count beyond ``most`` is as good as another
    rows = [[min(j, far) for j in range(len(b) + 1)]]
    for i in range(1, len(a) + 1):
        row = [min(i, far)] + [far] * len(b)
        for j in range(max(1, i - most), min(len(b), i + most) + 1):
            best = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, rows[-2][j - 2] + 1)
            row[j] = min(best, far)
        if min(row) == far:
            return None
        rows.append(row)
    return rows[-1][-1] if rows[-1][-1] < far else None
