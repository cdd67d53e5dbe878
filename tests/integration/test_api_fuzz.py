"""Property-based fuzzing of every operation of the three HTTP APIs, against the services running as processes
(the command line of ``make run``), each with a NATS server and a database of its own.

schemathesis generates requests for every operation from the service's own OpenAPI document (the one it serves at
/openapi.json, checked when it starts): the document's examples, its coverage cases at the edges of each schema,
then random ones, valid and invalid. They are sent with the token of the operation's caller, or sometimes none, a
forged or expired one, or one of the wrong kind or role. Every answer is checked:

- never a 5xx;
- its status is one the document lists for the operation, with the documented content type, headers and schema;
- an invalid request (schemathesis' negative cases) is refused with a 4xx, and nothing is given without a token;
- every 4xx is an RFC 9457 problem (``application/problem+json``, ``type``, ``title``, ``status``, ``detail``);
- a 4xx stores nothing and publishes nothing: the service's tables (its outbox with them) count as many rows
  after it as before.

Some resources (a submission, alerts, tablets and loans) are put in place first, and some valid requests are made
more like a client's (their ids, dates around now, answers the questionnaire has), so that the fuzz reaches past
the 404s and the first checks. The live stream is fuzzed too: schemathesis reads an event stream for the request's
timeout (a second here), then checks the events it got.

``FUZZ_EXAMPLES`` (default 6) is the number of random examples per operation; the fuzz is deterministic unless
``FUZZ_RANDOM=1`` (``make fuzz``: randomised, 200 examples).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth import DevicePrincipal, TokenService
from shared.events.questionnaire import TermAnswer
from shared.testing.events import questionnaire_submitted
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.fuzz import (
    BackgroundLoop,
    TableCounts,
    grown,
    problem_failures,
    questionnaire_response_like,
    recent,
)
from shared.testing.servers import nats_server, with_database
from shared.testing.services import ServiceProcess

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
RANDOMISED = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


# --- Who calls each operation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The callers an operation is for: ``device`` (a tablet's token) and/or staff holding one of ``roles``."""

    device: bool = False
    roles: frozenset[str] = frozenset()

    @property
    def anyone(self) -> bool:
        return not self.device and not self.roles

    def wrong_tokens(self) -> list[tuple[str, str | None]]:
        """Valid tokens this caller does not hold: a tablet's, or a staff member's without the role."""
        wrong: list[tuple[str, str | None]] = [("staff", role) for role in ALL_ROLES if role not in self.roles]
        return wrong if self.device else [("device", None), *wrong]


def staff(*roles: str) -> Caller:
    return Caller(roles=frozenset(roles))


ALL_ROLES = ("nurse", "arc", "partner_patient", "social_worker", "fleet", "admin")
ANYONE = Caller()  # no token needed
ANY_TOKEN = Caller(device=True, roles=frozenset(ALL_ROLES))
TABLET = Caller(device=True)

CALLERS: dict[str, dict[str, Caller]] = {
    "questionnaire": {
        "GET /v1/questionnaires": ANY_TOKEN,
        "GET /v1/questionnaires/{questionnaire_id}": ANY_TOKEN,
        "POST /v1/submissions": TABLET,
        "GET /v1/submissions/{submission_id}": Caller(device=True, roles=frozenset({"nurse"})),
        "POST /v1/messages": TABLET,
        "GET /v1/messages/{message_id}": TABLET,
        "POST /v1/photos": TABLET,
        "GET /v1/photos/{photo_id}": Caller(device=True, roles=frozenset({"nurse", "admin"})),
        "POST /v1/patients/{patient_id}/submissions": staff("nurse"),
        "GET /v1/audit": staff("admin"),
    },
    "alerting": {
        "GET /v1/alerts": staff("nurse"),
        "POST /v1/alerts/stream-token": staff("nurse"),
        "GET /v1/alerts/stream": staff("nurse"),
        "GET /v1/alerts/{alert_id}": staff("nurse"),
        "POST /v1/alerts/{alert_id}/ack": staff("nurse"),
        "POST /v1/alerts/{alert_id}/resolve": staff("nurse"),
        "POST /v1/alerts/{alert_id}/reopen": staff("nurse"),
        "GET /v1/patients/{patient_id}/timeline": staff("nurse"),
        "PUT /v1/patients/{patient_id}/expected-levels/{term}": staff("nurse"),
        "DELETE /v1/patients/{patient_id}/expected-levels/{term}": staff("nurse"),
        "GET /v1/metrics": staff("nurse"),
        "GET /v1/dashboard/config": ANYONE,
        "POST /v1/dashboard/dev-token": ANYONE,
        "GET /v1/me": staff(*ALL_ROLES),
        "GET /v1/reference": ANYONE,
        "GET /v1/audit": staff("admin"),
    },
    "devices": {
        "POST /v1/heartbeats": TABLET,
        "POST /v1/tablets": staff("fleet"),
        "GET /v1/tablets": staff("fleet", "arc", "nurse"),
        "GET /v1/tablets/{tablet_id}": staff("fleet", "arc", "nurse"),
        "POST /v1/tablets/{tablet_id}/actions/{action}": staff("fleet"),
        "POST /v1/tablets/{tablet_id}/loan": staff("fleet"),
        "POST /v1/tablets/{tablet_id}/return": staff("fleet"),
        "POST /v1/loans/{loan_id}/accessories": staff("fleet"),
        "POST /v1/loans/{loan_id}/enrolment-code": staff("fleet"),
        "POST /v1/enrolments": ANYONE,
        "GET /v1/loans/{loan_id}/receipt": staff("fleet"),
        "POST /v1/tablets/{tablet_id}/wipe": staff("fleet"),
        "POST /v1/tablets/{tablet_id}/lost": staff("fleet"),
        "GET /v1/fleet": staff("fleet", "arc", "nurse"),
        "GET /v1/me": staff("fleet"),
        "GET /v1/audit": staff("admin"),
    },
}

# Who the fuzz presents itself as: mostly the operation's caller, sometimes nobody, a forged or expired token, a
# token of the wrong kind, or a staff member without the role.
RIGHT, NONE, FORGED, EXPIRED, WRONG = "right", "none", "forged", "expired", "wrong"
GENERATED = "generated"
IDENTITIES = [RIGHT] * 6 + [NONE, FORGED, EXPIRED, WRONG]


# --- The running service ---------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    tokens: TokenService
    counts: TableCounts
    device_token: str
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> ids that exist
    questionnaire: dict[str, Any] = field(default_factory=dict)  # the FHIR Questionnaire the tablets answer

    @property
    def patient_id(self) -> str:
        """The patient of the device token."""
        tablet = self.tokens.verify(self.device_token)
        assert isinstance(tablet, DevicePrincipal)
        return str(tablet.patient_id)

    def bearer(self, caller: Caller, identity: str, chance: random.Random) -> str | None:
        if identity == NONE:
            return None
        if identity == FORGED:
            return "Bearer " + chance.choice(["not-a-token", "eyJhbGciOiJub25lIn0.e30.", self.device_token[:-4]])
        if identity == EXPIRED:
            return "Bearer " + self.tokens.issue_staff_token("nurse-9", {"nurse", "fleet", "admin"}, ttl_s=-60)
        if identity == WRONG:
            wrong = caller.wrong_tokens()
            kind, role = chance.choice(wrong)
            if kind == "device":
                return "Bearer " + self.device_token
            assert role is not None  # a staff token's role: only the tablet's comes without one
            return "Bearer " + self.tokens.issue_staff_token(f"{role}-9", {role})
        if caller.device and (not caller.roles or chance.random() < 0.5):
            return "Bearer " + self.device_token
        role = chance.choice(sorted(caller.roles or ALL_ROLES))
        return "Bearer " + self.tokens.issue_staff_token(f"{role}-1", {role})


def _tablet_json(target_url: str, path: str, token: str, body: Any = None) -> Any:
    response = httpx.post(target_url + path, json=body or {}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


def _seed_questionnaire(url: str, tokens: TokenService) -> tuple[str, dict[str, list[str]]]:
    patient = uuid.uuid4()
    device = tokens.issue_device_token(patient, "tablet-fuzz")
    response = httpx.post(
        f"{url}/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={
            "Authorization": f"Bearer {device}",
            "Idempotency-Key": "fuzz-seed-0001",
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 202, response.text
    return device, {"submission_id": [response.json()["id"]], "questionnaire_id": ["reconnect-symptoms"]}


def _seed_alerting(url: str, tokens: TokenService, nats_url: str, loop: BackgroundLoop) -> dict[str, list[str]]:
    import nats

    patients = [uuid.uuid4() for _ in range(3)]

    async def publish() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            for patient in patients:
                event = questionnaire_submitted(TermAnswer(term="nausea", frequency=3, severity=3), patient_id=patient)
                await js.publish("questionnaire.submitted", event.to_json(), headers={"Nats-Msg-Id": event.id})
        finally:
            await nc.close()

    loop.run(publish())
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-1', {'nurse'})}"}
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{url}/v1/alerts", headers=nurse).json()["items"]
        if len(alerts) == len(patients):
            break
        time.sleep(0.1)
    assert len(alerts) == len(patients), alerts
    ids = [a["id"] for a in alerts]
    # One taken, one closed, one left open: every lifecycle step has an alert it applies to.
    assert httpx.post(f"{url}/v1/alerts/{ids[1]}/ack", headers=nurse).status_code == 200
    assert httpx.post(f"{url}/v1/alerts/{ids[2]}/ack", headers=nurse).status_code == 200
    closed = httpx.post(f"{url}/v1/alerts/{ids[2]}/resolve", json={"outcome": "phone_call"}, headers=nurse)
    assert closed.status_code == 200, closed.text
    return {
        "alert_id": ids,
        "patient_id": [str(p) for p in patients],
        "term": ["nausea", "fatigue", "fever"],
    }


def _seed_devices(url: str, tokens: TokenService) -> tuple[str, dict[str, list[str]]]:
    fleet = tokens.issue_staff_token("fleet-1", {"fleet"})
    tablets = []
    for n in range(6):
        body = {
            "serial_number": f"FUZZ{n}{uuid.uuid4().hex[:8]}",
            "model": "Galaxy Tab A9",
            "accessories": [{"kind": k} for k in ("charger", "cable", "case", "sim", "manual")],
        }
        tablets.append(_tablet_json(url, "/v1/tablets", fleet, body)["id"])
    loans, device_token = [], ""
    for tablet in tablets[4:]:  # ready to lend
        _tablet_json(url, f"/v1/tablets/{tablet}/actions/provision", fleet)
    for n, tablet in enumerate(tablets[1:4]):
        _tablet_json(url, f"/v1/tablets/{tablet}/actions/provision", fleet)
        loan = {
            "patient_id": str(uuid.uuid4()),
            "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
            "accessories": ["charger", "cable", "manual"],
        }
        granted = _tablet_json(url, f"/v1/tablets/{tablet}/loan", fleet, loan)
        loans.append(granted["loan"]["id"])
        if n == 0:
            # The tablet whose token sends the fuzz's heartbeats: not offered to the fuzz's returns and losses.
            device_token = granted["device_token"]
    returned = tablets[3]
    _tablet_json(url, f"/v1/tablets/{returned}/return", fleet, {"channel": "day_hospital", "accessories_returned": []})
    # Registered, lent, returned and ready ones; the tablet of the heartbeats' token (tablets[1]) is not offered.
    return device_token, {"tablet_id": [tablets[0], *tablets[2:]], "loan_id": loans[1:]}


def _documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, as its app makes it: the tests are collected from it, before any service
    runs; the fixture checks that the running service serves this very document at /openapi.json."""
    from services.alerting.main import AlertingSettings
    from services.alerting.main import build_service as build_alerting
    from services.devices.main import DevicesSettings
    from services.devices.main import build_service as build_devices
    from services.questionnaire.main import QuestionnaireSettings
    from services.questionnaire.main import build_service as build_questionnaire
    from shared.http.app import create_service_app

    unused: dict[str, Any] = {"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": "postgresql://127.0.0.1:1/unused"}
    builds = {
        "questionnaire": lambda: build_questionnaire(QuestionnaireSettings(**unused)),
        "alerting": lambda: build_alerting(AlertingSettings(**unused)),
        "devices": lambda: build_devices(DevicesSettings(**unused)),
    }
    return {name: create_service_app(build()).openapi() for name, build in builds.items()}


DOCUMENTS = _documents()


class Targets:
    """The service under fuzz, started when its first operation comes (with its own NATS and database), and
    stopped when the next service's operations begin."""

    def __init__(self, postgres_url: str, tokens: TokenService, workdir: Path) -> None:
        self.postgres_url = postgres_url
        self.tokens = tokens
        self.workdir = workdir
        self.loop = BackgroundLoop()
        self.current: Target | None = None
        self.failed: dict[str, str] = {}
        self._stack = contextlib.ExitStack()

    def get(self, name: str) -> Target:
        if name in self.failed:
            pytest.fail(f"{name} did not start for the fuzz: {self.failed[name]}")
        if self.current is None or self.current.name != name:
            self.stop()
            try:
                self.current = self._start(name)
            except Exception as exc:
                self.stop()
                self.failed[name] = f"{type(exc).__name__}: {exc}"
                raise
        return self.current

    def _start(self, name: str) -> Target:
        stack = self._stack
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        nats_url, _ = stack.enter_context(nats_server(workdir))
        database = f"fuzz_{uuid.uuid4().hex[:12]}"
        self.loop.run(_admin(self.postgres_url, f'CREATE DATABASE "{database}"'))
        stack.callback(lambda: self.loop.run(_admin(self.postgres_url, f'DROP DATABASE "{database}" WITH (FORCE)')))
        database_url = with_database(self.postgres_url, database)
        # Background work that would write while a refusal is counted runs at start-up, then only hourly.
        env = {
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "ENVIRONMENT": "test",
            "ESCALATION_CHECK_S": "3600",
            "SILENCE_CHECK_S": "3600",
        }
        process = ServiceProcess(name, env, workdir)
        stack.callback(process.stop)
        process.start()
        served = httpx.get(f"{process.url}/openapi.json").json()
        assert served == DOCUMENTS[name], "the service serves another document than the one the fuzz was made from"
        if name == "questionnaire":
            device, known = _seed_questionnaire(process.url, self.tokens)
        elif name == "alerting":
            device = self.tokens.issue_device_token(uuid.uuid4(), "tablet-fuzz")
            known = _seed_alerting(process.url, self.tokens, nats_url, self.loop)
        else:
            device, known = _seed_devices(process.url, self.tokens)
        # A consumer's inbox is written by the events it takes, whatever the requests do.
        counts = TableCounts(self.loop, database_url, name, excluded=frozenset({"inbox"}))
        stack.callback(counts.close)
        target = Target(name, process.url, self.tokens, counts, device, known)
        if name == "questionnaire":
            target.questionnaire = httpx.get(
                f"{process.url}/v1/questionnaires/reconnect-symptoms", headers={"Authorization": f"Bearer {device}"}
            ).json()
        return target

    def stop(self) -> None:
        self.current = None
        self._stack.close()
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self.stop()
        self.loop.close()


async def _admin(postgres_url: str, statement: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _negated(case: Any) -> set[str]:
    """The parameters (header, query, path names in lower case) schemathesis made invalid in this case."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return set()
    data = meta.phase.data
    named = [getattr(data, "parameter", None), *(m.parameter for m in getattr(data, "mutations", ()))]
    return {name.lower() for name in named if isinstance(name, str)}


def _closer_to_a_client(case: Any, target: Target, chance: random.Random) -> None:
    """A valid request made more like a client's, half the time: ids that exist, dates around now, answers the
    questionnaire has (shared.testing.fuzz). Invalid requests are left as they are: they must stay invalid."""
    now = datetime.now(UTC)
    for param, ids in target.known.items():
        if param in (case.path_parameters or {}) and chance.random() < 0.5:
            case.path_parameters[param] = chance.choice(ids)
    if "Idempotency-Key" in (case.headers or {}) and chance.random() < 0.7:
        case.headers["Idempotency-Key"] = f"fuzz-{chance.getrandbits(64):016x}"  # not one used before
    if case.query and chance.random() < 0.5:
        case.query = recent(case.query, chance, now)
    if case.operation.label == "POST /v1/submissions" and chance.random() < 0.7:
        case.body = questionnaire_response_like(chance, target.questionnaire, target.patient_id, now)
    elif isinstance(case.body, dict | list) and chance.random() < 0.5:
        case.body = recent(case.body, chance, now)


# What the fuzz sent and what came back: operation label -> status -> requests (summed up at the end).
ANSWERED: dict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module")
def fuzz_targets(
    request: pytest.FixtureRequest, postgres_url: str, tokens: TokenService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Targets]:
    targets = Targets(postgres_url, tokens, tmp_path_factory.mktemp("fuzz"))
    yield targets
    targets.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not ANSWERED:
        return
    total = sum(sum(c.values()) for c in ANSWERED.values())
    mode = "randomised" if RANDOMISED else "deterministic"
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nAPI fuzz: {total} requests, {EXAMPLES} random examples per operation ({mode})")
        for label, statuses in sorted(ANSWERED.items()):
            reporter.write_line(f"  {label}: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())))


@pytest.fixture
def fuzz_target(request: pytest.FixtureRequest, fuzz_targets: Targets) -> Target:
    """The service whose operation this test item fuzzes (its name is the item's first brackets)."""
    found = re.search(r"\[(\w+)\]\[", request.node.name)
    assert found is not None, request.node.name
    return fuzz_targets.get(found.group(1))


def _schema(name: str) -> Any:
    schema = schemathesis.openapi.from_dict(DOCUMENTS[name])
    operations = set()
    for found in schema.get_all_operations():
        if isinstance(found, Err):
            raise found.err()  # an operation the document does not describe well enough to fuzz
        operations.add(found.ok().label)
    assert operations == set(CALLERS[name]), f"{name}: every operation needs its caller in CALLERS"
    return schema


@schemathesis.pytest.parametrize(**{name: _schema(name) for name in CALLERS})
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOMISED,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=RANDOMISED,
)
def test_every_answer_is_documented_and_every_refusal_a_problem_that_changes_nothing(
    case: Any, fuzz_target: Target
) -> None:
    target = fuzz_target
    assert case.operation.schema.raw_schema["info"]["title"] == f"oncofollow {target.name}"
    caller = CALLERS[target.name][case.operation.label]
    # Drawn from the case itself (schemathesis' coverage cases and @schema.given do not go together): the same
    # case is always sent as the same caller.
    chance = random.Random(hashlib.sha256(repr(case).encode()).digest())
    identity = RIGHT if caller.anyone else chance.choice(IDENTITIES)
    if identity == WRONG and not caller.wrong_tokens():
        identity = RIGHT
    checks = CHECKS
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    negated = _negated(case)
    if "authorization" in negated and (negated != {"authorization"} or chance.random() < 0.4):
        # An invalid case about the token (left out, or not a token), perhaps among other things: sent as
        # schemathesis made it (a value invalid only before it is sent, such as [false] for ?actor=false, is then
        # not the only thing wrong with it).
        identity = GENERATED
    else:
        if negated == {"authorization"}:
            # Schemathesis makes many of its invalid cases with a token left out or malformed and nothing else wrong:
            # with the token put back, most of them are valid cases that reach past the token.
            checks = [check for check in CHECKS if check is not negative_data_rejection]
            valid = True
        authorization = target.bearer(caller, identity, chance)
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if authorization is not None:
            case.headers["Authorization"] = authorization
    if valid:
        _closer_to_a_client(case, target, chance)

    before = target.counts.now()
    timeout = 1.0 if case.operation.path.endswith("/stream") else 30.0
    response = case.call(base_url=target.url, timeout=timeout)
    case.validate_response(response, checks=checks)

    status = response.status_code
    ANSWERED[f"{target.name} {case.operation.label}"][status] += 1
    if identity != RIGHT:
        assert status >= 400, f"{case.operation.label} answered {status} to a request with a {identity} token"
    if 400 <= status < 500:
        content_type = ",".join(response.headers.get("content-type", []))
        faults = problem_failures(status, content_type, response.content)
        assert not faults, f"{case.operation.label}: {faults}\n{case.as_curl_command()}"
        changed = grown(before, target.counts.now())
        assert not changed, (
            f"{case.operation.label} refused with {status} but changed {changed}: {response.text}\n"
            f"{case.as_curl_command()}"
        )
