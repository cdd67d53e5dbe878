"""The nurse's HTTP API: the triage list, one alert, acknowledge, resolve, and the live alert stream."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from nats.aio.msg import Msg
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from services.alerting import repository
from services.alerting.domain import TransitionRefused, check_acknowledge, check_reopen, check_resolve
from services.alerting.repository import StepAction
from services.alerting.service_levels import ServiceLevels
from shared.audit import StreamAccessTrail, StreamedAccess, audit_staff, audit_staff_patients, record_access
from shared.auth import InvalidToken, StaffPrincipal
from shared.db.outbox import add_event
from shared.db.staff import remember_staff
from shared.events.alerts import AlertAcknowledgedV1, AlertReason, AlertReopenedV1, AlertResolvedV1, Outcome
from shared.events.catalog import CATALOG, make_event
from shared.http.app import NowDep, Platform, PlatformDep
from shared.http.limits import MAX_OFFSET
from shared.http.openapi import ProblemMember, authenticates, problem_responses, raises
from shared.http.problems import Problem
from shared.http.security import bearer_principal, require_staff
from shared.http.sse import EventStream, frame
from shared.messaging.fanout import StreamFanout

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

Nurse = Annotated[StaffPrincipal, Depends(require_staff("nurse"))]
Level = Literal["red", "orange"]
Status = Literal["open", "acknowledged", "resolved"]


class AlertView(BaseModel):
    id: UUID
    patient_id: UUID
    level: Level
    status: Status
    reasons: list[AlertReason]
    answered_by: str
    submission_ids: list[UUID]
    message_ids: list[UUID]
    rule_set: str
    raised_at: datetime
    updated_at: datetime
    waiting_since: datetime = Field(
        description="Since when it has waited for a nurse: when it was raised, or when a new finding sent it back "
        "to open after a nurse had taken it (then also its service-level clock's start)"
    )
    waiting_seconds: int = Field(description="From waiting_since until a nurse took it (or now, while open)")
    acknowledged_by: str | None = Field(description="Who has it: the nurse who took it, or who reopened it since")
    acknowledged_at: datetime | None = Field(
        description="When a nurse took it, ending its wait (a close without taking it first counts as taking it); "
        "a nurse's reopen keeps it (reopened_at says when she reopened it)"
    )
    resolved_by: str | None
    resolved_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    due_at: datetime = Field(description="When the service level runs out (acknowledgement due)")
    overdue: bool = Field(description="Still open after its service level")
    escalation_level: int = Field(description="0, then 1 and 2 as escalations are published")
    next_session_at: datetime | None = Field(default=None, description="The patient's next chemotherapy session")
    reopened_by: str | None = None
    reopened_at: datetime | None = None
    reopened_by_finding_at: datetime | None = Field(
        default=None, description="When a new finding last sent it back to open after a nurse had taken it"
    )
    previously_acknowledged_by: str | None = Field(default=None, description="Who had it then")
    acknowledged_by_name: str | None = Field(
        default=None, description="acknowledged_by's display name, as her latest token gave it (null: none known)"
    )
    resolved_by_name: str | None = Field(default=None, description="resolved_by's display name (null: none known)")
    reopened_by_name: str | None = Field(default=None, description="reopened_by's display name (null: none known)")
    previously_acknowledged_by_name: str | None = Field(
        default=None, description="previously_acknowledged_by's display name (null: none known)"
    )
    answered_at: datetime | None = Field(
        default=None,
        description="When the latest answers or message it holds were given (a questionnaire's `authored`): a tablet "
        "that was offline sends them when it is back, hours or days later",
    )
    latest_answers_authored: datetime | None = Field(
        default=None,
        description="The questionnaire answers it received last (those that raised it, or the latest merged into it "
        "while it was open): when they were given, their `authored` (null: it holds none)",
    )
    latest_answers_received_at: datetime | None = Field(
        default=None,
        description="When those answers reached this service: long after latest_answers_authored when the tablet was "
        "offline, even if the answers that raised the alert came in time",
    )
    latest_answers_by: str | None = Field(
        default=None,
        description="Who gave those answers, as `answered_by` (`patient`, `relative`, `nurse_phone`…; null: it holds "
        "none): answers a nurse took by phone are never late, whatever their `authored`",
    )


_NAMES = frozenset(f"{column}_name" for column in repository.STAFF_COLUMNS)
_COMPUTED = (
    frozenset(
        {
            "id",
            "waiting_since",
            "waiting_seconds",
            "reasons",
            "due_at",
            "overdue",
            "next_session_at",
            "answered_at",
            "latest_answers_authored",
            "latest_answers_received_at",
            "latest_answers_by",
        }
    )
    | _NAMES
)


def alert_view(row: Any, now: datetime, levels: ServiceLevels, names: Mapping[str, str] | None = None) -> AlertView:
    """The alert as the API shows it; ``names``: staff display names by id (``repository.staff_names``)."""
    waiting_since = row["reopened_by_finding_at"] or row["raised_at"]
    end = row["acknowledged_at"] or now
    due_at = levels.due_after(row["level"], row["level_since"])
    return AlertView(
        **{k: row[k] for k in AlertView.model_fields if k not in _COMPUTED},
        id=row["id"],
        reasons=[AlertReason.model_validate(r) for r in row["reasons"]],
        waiting_since=waiting_since,
        waiting_seconds=max(0, int((end - waiting_since).total_seconds())),
        due_at=due_at,
        overdue=row["status"] == "open" and now >= due_at,
        next_session_at=row.get("next_session_at"),
        answered_at=row.get("answered_at"),
        latest_answers_authored=row.get("latest_answers_authored"),
        latest_answers_received_at=row.get("latest_answers_received_at"),
        latest_answers_by=row.get("latest_answers_by"),
        **{f"{column}_name": (names or {}).get(row.get(column) or "") for column in repository.STAFF_COLUMNS},
    )


async def service_levels(platform: PlatformDep) -> ServiceLevels:
    levels: ServiceLevels = platform.extras["service_levels"]
    return levels


LevelsDep = Annotated[ServiceLevels, Depends(service_levels)]


class AlertsByLevel(BaseModel):
    red: int
    orange: int


class AlertsByStatus(BaseModel):
    open: int
    acknowledged: int
    resolved: int


class AlertTotals(BaseModel):
    """Every alert the filter matches, not only this page's: a client that pages knows what it has not read."""

    total: int
    by_level: AlertsByLevel
    by_status: AlertsByStatus
    overdue: int = Field(description="Open past their service level (the items' `overdue`)")


class AlertList(BaseModel):
    items: list[AlertView]
    count: int = Field(description="Items in this page")
    totals: AlertTotals = Field(description="Alerts matching the filter, on every page")


@router.get("", response_model=AlertList, summary="Alerts in triage order (red first, then longest waiting)")
async def list_alerts(
    nurse: Nurse,
    platform: PlatformDep,
    levels_: LevelsDep,
    now: NowDep,
    level: Annotated[list[Level] | None, Query()] = None,
    status: Annotated[list[Status] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    statuses = status or ["open", "acknowledged"]
    levels = level or ["red", "orange"]
    # One snapshot for the page and the totals, so that they agree.
    async with platform.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rows = await repository.list_alerts(conn, statuses=statuses, levels=levels, limit=limit, offset=offset)
        totals = await repository.alert_totals(
            conn,
            statuses=statuses,
            levels=levels,
            red_overdue_if_since=levels_.overdue_if_since("red", now),
            orange_overdue_if_since=levels_.overdue_if_since("orange", now),
        )
        await audit_staff_patients(conn, nurse, "alerts.list", "alerts", (r["patient_id"] for r in rows))
        names = await repository.staff_names(conn, rows)
    items = [alert_view(r, now, levels_, names) for r in rows]
    return AlertList(items=items, count=len(items), totals=_totals(totals))


def _totals(row: Any) -> AlertTotals:
    return AlertTotals(
        total=row["total"],
        by_level=AlertsByLevel(red=row["red"], orange=row["orange"]),
        by_status=AlertsByStatus(open=row["open"], acknowledged=row["acknowledged"], resolved=row["resolved"]),
        overdue=row["overdue"],
    )


def _last_event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return None
    if not _EVENT_ID.fullmatch(raw) or int(raw) > MAX_EVENT_ID:  # ASCII digits only: "²".isdigit() is True
        raise Problem(400, "Last-Event-ID must be the id of an event this stream sent (a whole number).")
    return int(raw)


_EVENT_ID = re.compile(r"[0-9]{1,20}")
MAX_EVENT_ID = 2**64 - 1  # JetStream's stream sequences are unsigned 64-bit


class StreamToken(BaseModel):
    token: str
    expires_in: int


STREAM_TOKEN_TTL_S = 60


@router.post("/stream-token", response_model=StreamToken, summary="A 60-second token to open the live stream")
async def stream_token(nurse: Nurse, platform: PlatformDep) -> Any:
    """For browsers: ``new EventSource('/v1/alerts/stream?stream_token=…')`` cannot send an Authorization
    header, and the staff token must not go in a URL. This one only opens a stream, once, within a minute."""
    return StreamToken(
        token=platform.tokens.issue_stream_token(nurse, STREAM_TOKEN_TTL_S), expires_in=STREAM_TOKEN_TTL_S
    )


STREAM_TOKEN_SCHEME = {
    "type": "apiKey",
    "in": "query",
    "name": "stream_token",
    "description": f"For browsers, whose EventSource cannot send an Authorization header (and a staff token must "
    f"not travel in a URL): a nurse's token that opens this stream only, once, valid {STREAM_TOKEN_TTL_S} seconds. "
    "`POST /v1/alerts/stream-token` with the nurse's bearer token answers it (`token`, `expires_in`); open the "
    "stream with `?stream_token=<token>` within that time, and ask for a new one for each reconnection (a token "
    "used once is a 401 `stream-token-used`). The stream it opens ends when the staff token that "
    "asked for it expires, as one opened with that bearer token would. Sent, it is the credential read, and the "
    "Authorization header is not.",
}


@dataclass(frozen=True)
class StreamReader:
    nurse: StaffPrincipal
    # The id of the stream token that opens the stream (None: a bearer token): it opens one stream, once.
    stream_token_id: str | None = None


@authenticates("streamToken", STREAM_TOKEN_SCHEME)
@raises(401, 403)
async def stream_reader(
    request: Request,
    platform: PlatformDep,
    stream_token: Annotated[str | None, Query(include_in_schema=False)] = None,  # documented as streamToken
) -> StreamReader:
    if stream_token is None:
        principal = await bearer_principal(request, platform)
        return StreamReader(await require_staff("nurse")(principal))
    try:
        nurse = platform.tokens.verify_stream(stream_token)
    except InvalidToken:
        raise Problem(
            401,
            "The stream token is invalid or expired; ask for a new one (POST /v1/alerts/stream-token).",
            kind="invalid-token",
        ) from None
    return StreamReader(await require_staff("nurse")(nurse), nurse.token_id)


STREAM_TOKEN_USED = (
    "This stream token has opened a stream already: each one opens one stream, once. Ask for a new one "
    "(POST /v1/alerts/stream-token) for each opening, a reconnection included."
)


RESET_FRAME = frame("{}", event="reset")


def encode_alert_event(msg: Msg) -> tuple[bytes, str | None]:
    """An alert event as the dashboards receive it, encoded once for all of them, and whose it is."""
    envelope = orjson.loads(msg.data)
    data = {"type": envelope["type"], "id": envelope["id"], "time": envelope["time"], "data": envelope["data"]}
    encoded = frame(orjson.dumps(data).decode(), event=envelope["type"], event_id=str(msg.metadata.sequence.stream))
    return encoded, envelope["data"].get("patient_id")


STREAM_DESCRIPTION = (
    "Server-Sent Events: each event's `event:` is its type (`alert.raised`, `alert.updated`, …), its `id:` the "
    "JetStream stream sequence, its `data:` a JSON object with the event's `type`, `id`, `time` and `data`. An "
    "`event: reset` means the gap since Last-Event-ID is older than the stream keeps: reload the list, then "
    "follow. Comment lines are keep-alives."
)


STREAM_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One event of the stream, as its lines give it.",
    "required": ["data"],
    "properties": {
        "event": {
            "type": "string",
            "enum": ["reset", *sorted(t for t in CATALOG if t.startswith("alert."))],
            "description": "The event's type, or `reset`.",
        },
        "data": {
            "type": "string",
            "description": "A JSON object: the event's `type`, `id`, `time` and `data` (`{}` for a reset).",
        },
        "id": {
            "type": "string",
            "pattern": "^[0-9]{1,20}$",
            "description": "The JetStream stream sequence, for Last-Event-ID (none on a reset).",
        },
    },
}


@router.get(
    "/stream",
    summary="Live alert events (Server-Sent Events; ids are JetStream stream sequences)",
    status_code=200,
    response_class=EventStream,
    responses={
        200: {
            "description": STREAM_DESCRIPTION,
            # The stream as a whole is text; each event (OpenAPI 3.2's itemSchema, which tools reading an event
            # stream's schema as one event's find beside it) is a frame of encode_alert_event, or the reset.
            "content": {EventStream.media_type: {"schema": {"type": "string"}, "itemSchema": STREAM_EVENT_SCHEMA}},
        }
    },
)
async def alert_stream(
    request: Request,
    platform: PlatformDep,
    reader: Annotated[StreamReader, Depends(stream_reader)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since: Annotated[str | None, Query(description="Same as Last-Event-ID, for clients that cannot set it")] = None,
) -> EventStream:
    after = _last_event_id(last_event_id, since)
    nurse = reader.nurse
    feed: StreamFanout = platform.extras["alert_feed"]
    trail: StreamAccessTrail = platform.extras["stream_trail"]
    async with platform.pool.acquire() as conn, conn.transaction():
        # A stream token travels in a URL (proxy logs, the browser's history): once used, it opens nothing more, on
        # any replica. Marked in the transaction of the opening's audit row: a stream refused uses up no token.
        if reader.stream_token_id is not None and not await repository.use_stream_token(conn, reader.stream_token_id):
            raise Problem(401, STREAM_TOKEN_USED, kind="stream-token-used")
        await record_access(conn, actor=nurse.staff_id, roles=nurse.roles, action="alerts.stream", resource="alerts")

    async def before_sending(patients: Sequence[str]) -> None:
        # Each patient whose alert the stream shows is in the nurse's trail before it is shown.
        await trail.submit(StreamedAccess(nurse, "alerts.stream", "alerts", patients))

    return EventStream(
        feed.follow(after, reset_frame=RESET_FRAME, before_sending=before_sending),
        until=nurse.session_ends_at,
        closing=platform.closing,
    )


class SubmissionView(BaseModel):
    submission_id: UUID
    questionnaire_id: str
    authored: datetime
    received_at: datetime = Field(
        description="When this service received and scored these answers: long after `authored` when the tablet "
        "was offline (the symptoms may have changed since)"
    )
    answered_by: str
    recorded_by: str | None = Field(
        default=None, description="answered_by nurse_phone: the staff id of the nurse who took the answers by phone"
    )
    recorded_by_name: str | None = Field(default=None, description="recorded_by's display name (null: none known)")
    answers: dict[str, Any]
    grades: dict[str, int]
    ecog: int | None
    level: str
    rule_set: str


class MessageView(BaseModel):
    id: UUID
    answered_by: str
    body: str = Field(description="Empty when the message is photos only")
    sent_at: datetime
    photo_ids: list[UUID] = Field(
        description="The photos the message shows, oldest first: GET /v1/photos/{id} on the questionnaire service "
        "(a nurse's token; audited there)"
    )


class AlertStepView(BaseModel):
    action: StepAction = Field(
        description="acknowledged, resolved, reopened (by a nurse), or reopened_by_finding (a new answer needing "
        "a nurse again put the acknowledged alert back to open)"
    )
    at: datetime
    staff_id: str | None = Field(description="Who took the step (none when a new finding reopened the alert)")
    staff_name: str | None = Field(default=None, description="staff_id's display name (null: none known)")
    outcome: str | None = Field(description="resolved: the outcome code")
    note: str | None = Field(description="resolved: the nurse's note")
    reason: str | None = Field(description="reopened: why, as the nurse gave it")


def steps_by_alert(rows: Iterable[Any]) -> dict[UUID, list[AlertStepView]]:
    """The rows of ``repository.alert_steps``, per alert, in their order (oldest first)."""
    steps: dict[UUID, list[AlertStepView]] = {}
    for row in rows:
        steps.setdefault(row["alert_id"], []).append(AlertStepView(**{k: row[k] for k in AlertStepView.model_fields}))
    return steps


class AlertDetail(AlertView):
    submissions: list[SubmissionView]
    messages: list[MessageView]
    photo_count: int = Field(description="How many photos the alert's messages show")
    photo_ids: list[UUID] = Field(description="Those photos' ids, in the order of their messages")
    steps: list[AlertStepView] = Field(
        description="What was done, oldest first (as in the patient's timeline); kept when the alert is reopened"
    )


_TIMESTAMP = TypeAdapter(datetime)


def alert_etag(updated_at: datetime) -> str:
    """An alert's version: its ``updated_at`` as the API writes it, quoted, so that a client holding a list item
    can send it back in ``If-Match`` as well as one holding the ETag of ``GET /v1/alerts/{id}``."""
    return f'"{_TIMESTAMP.dump_python(updated_at, mode="json")}"'


_ENTITY_TAGS = re.compile(r'\s*(?:W/)?"[\x21\x23-\x7e]*"\s*(?:,\s*(?:W/)?"[\x21\x23-\x7e]*"\s*)*')
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e]*)"')
MAX_ENTITY_TAGS = 16


def seen_versions(if_match: str | None) -> list[datetime] | None:
    """The versions (``updated_at``) an ``If-Match`` accepts; None when any will do (no header, or ``*``)."""
    if if_match is None or if_match.strip() == "*":
        return None
    if not _ENTITY_TAGS.fullmatch(if_match):
        raise _bad_if_match()
    versions = []
    for weak, tag in _ENTITY_TAG.findall(if_match)[:MAX_ENTITY_TAGS]:
        try:
            version = datetime.fromisoformat(tag)
            if weak or version.tzinfo is None:  # a weak tag never matches strongly; a local time is no instant
                raise ValueError(tag)
            versions.append(version.astimezone(UTC))  # out of range ("0001-01-01T00:00+01:00"): OverflowError
        except (ValueError, OverflowError):
            raise _bad_if_match() from None
    return versions


def _bad_if_match() -> Problem:
    return Problem(
        400,
        "If-Match must hold the ETag of the alert you showed (its updated_at in quotes, as GET /v1/alerts/{id} "
        'returns it: "2026-11-23T18:45:00.123456Z"), or be left out.',
        kind="invalid-if-match",
    )


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    summary="One alert: its scored answers, messages and steps (history)",
    responses=problem_responses(404),
)
async def get_alert(
    alert_id: UUID, nurse: Nurse, platform: PlatformDep, levels: LevelsDep, now: NowDep, response: Response
) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.get_alert(conn, alert_id)
        if row is None:
            raise Problem(404, "There is no alert with this id.")
        scores = await repository.scores_for(conn, row["submission_ids"])
        messages = await repository.messages_for(conn, row["message_ids"])
        steps = await repository.alert_steps(conn, [alert_id])
        await audit_staff(conn, nurse, "alert.read", f"alert/{alert_id}", row["patient_id"])
        names = await repository.staff_names(conn, [row])
    response.headers["ETag"] = alert_etag(row["updated_at"])
    photo_ids = [p for m in messages for p in m["photo_ids"]]
    return AlertDetail(
        **alert_view(row, now, levels, names).model_dump(),
        submissions=[SubmissionView(**dict(s)) for s in scores],
        messages=[MessageView(**dict(m)) for m in messages],
        photo_count=len(photo_ids),
        photo_ids=photo_ids,
        steps=steps_by_alert(steps).get(alert_id, []),
    )


async def _refuse(conn: Any, alert_id: UUID, check: Any) -> Any:
    """Explain why a conditional update matched nothing: 404, or the 409 of the lifecycle rule. Returns the alert
    as it is now when neither applies (it changed between the update and this read)."""
    current = await repository.get_alert(conn, alert_id)
    if current is None:
        raise Problem(404, "There is no alert with this id.")
    try:
        check(current["status"])
    except TransitionRefused as exc:
        raise Problem(409, str(exc), kind="alert-conflict", alert_status=current["status"]) from None
    return current


async def _record_step(
    conn: Any,
    platform: Platform,
    nurse: StaffPrincipal,
    row: Any,
    event_type: str,
    payload: Any,
    action: str,
    step: repository.NurseStep,
) -> None:
    """A lifecycle step is kept in the alert's history, published (through the outbox) and audited in the
    transaction that made it."""
    alert_id = row["id"]
    await remember_staff(conn, nurse.staff_id, nurse.name, step.at)
    await repository.add_nurse_step(conn, alert_id, nurse.staff_id, step)
    event = make_event(event_type, payload, source=platform.source, time=step.at, subject=str(alert_id))
    await add_event(conn, event, schema=platform.schema)
    await record_access(
        conn,
        actor=nurse.staff_id,
        roles=nurse.roles,
        action=action,
        resource=f"alert/{alert_id}",
        patient_id=row["patient_id"],
    )


@router.post(
    "/{alert_id}/ack",
    response_model=AlertView,
    summary="Acknowledge ('je prends'): assigns it to you",
    responses=problem_responses(404, 409),
)
async def ack_alert(alert_id: UUID, nurse: Nurse, platform: PlatformDep, levels: LevelsDep, now: NowDep) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.acknowledge(conn, alert_id, nurse.staff_id, now)
        if row is None:
            await _refuse(conn, alert_id, check_acknowledge)
            raise Problem(409, "This alert cannot be acknowledged now.", kind="alert-conflict")
        acknowledged = AlertAcknowledgedV1(
            alert_id=alert_id,
            patient_id=row["patient_id"],
            submission_ids=tuple(row["submission_ids"]),
            message_ids=tuple(row["message_ids"]),
            acknowledged_by=nurse.staff_id,
            acknowledged_at=now,
        )
        step = repository.NurseStep("acknowledged", now)
        await _record_step(conn, platform, nurse, row, "alert.acknowledged", acknowledged, "alert.acknowledge", step)
        names = await repository.staff_names(conn, [row])
    return alert_view(row, now, levels, names)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome = Field(description="What was done: the outcome code (CLINICAL.md §4).")
    note: str | None = Field(default=None, max_length=2000)


# What the 412 of a close holds (``_changed_since_seen``), as the operations answering an alert give it.
ALERT_NOW = ProblemMember(
    AlertView,
    "412 `alert-changed`: the alert as it is now (its `updated_at` is the new ETag), to show before the nurse "
    "confirms the close again.",
)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertView,
    summary="Close the alert with an outcome code",
    responses=problem_responses(404, 409, 412, members={412: {"alert": ALERT_NOW}}),
)
async def resolve_alert(
    alert_id: UUID,
    resolution: Resolution,
    nurse: Nurse,
    platform: PlatformDep,
    levels: LevelsDep,
    now: NowDep,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The ETag (updated_at) of the alert the nurse saw: an alert changed since is not closed (412)",
        ),
    ] = None,
) -> Any:
    seen = seen_versions(if_match)
    async with platform.pool.acquire() as conn:
        async with conn.transaction():
            row = await repository.resolve(
                conn, alert_id, nurse.staff_id, resolution.outcome, resolution.note, now, seen=seen
            )
            if row is None:
                current = await _refuse(conn, alert_id, check_resolve)
                if seen is None:
                    # Closed, then reopened by a colleague between this close's update and the read above: the
                    # close named no version, so there is no version to have changed from (a 412), but the
                    # alert the nurse meant to close is someone else's again.
                    raise Problem(
                        409,
                        "A colleague closed and reopened this alert while you were closing it: look at it again "
                        "before closing it.",
                        kind="alert-conflict",
                        alert_status=current["status"],
                    )
                changed = await _changed_since_seen(conn, nurse, current, now, levels)
            else:
                resolved = AlertResolvedV1(
                    alert_id=alert_id,
                    patient_id=row["patient_id"],
                    submission_ids=tuple(row["submission_ids"]),
                    message_ids=tuple(row["message_ids"]),
                    outcome=resolution.outcome,
                    resolved_by=nurse.staff_id,
                    resolved_at=now,
                )
                step = repository.NurseStep("resolved", now, outcome=resolution.outcome, note=resolution.note)
                await _record_step(conn, platform, nurse, row, "alert.resolved", resolved, "alert.resolve", step)
                names = await repository.staff_names(conn, [row])
    if row is None:
        raise changed
    return alert_view(row, now, levels, names)


async def _changed_since_seen(
    conn: Any, nurse: StaffPrincipal, current: Any, now: datetime, levels: ServiceLevels
) -> Problem:
    """The 412 of a close whose ``If-Match`` names a version the alert has left: it holds the alert as it is now,
    for the nurse to see before she decides again (a read of the patient's data, so audited)."""
    await audit_staff(conn, nurse, "alert.read", f"alert/{current['id']}", current["patient_id"])
    return Problem(
        412,
        "The alert changed after the version you showed (a new answer, or a colleague's step): show it as it is "
        "now and confirm the close again, with its new ETag in If-Match.",
        kind="alert-changed",
        headers={"ETag": alert_etag(current["updated_at"])},
        alert=alert_view(current, now, levels, await repository.staff_names(conn, [current])).model_dump(mode="json"),
    )


class Reopening(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=500, description="Why it is reopened: kept in the alert's history, never published."
    )

    @field_validator("reason")
    @classmethod
    def _blank_is_none(cls, reason: str | None) -> str | None:
        return (reason or "").strip() or None


@router.post(
    "/{alert_id}/reopen",
    response_model=AlertView,
    summary="Reopen a resolved alert (it becomes yours)",
    responses=problem_responses(404, 409),
)
async def reopen_alert(
    alert_id: UUID, nurse: Nurse, platform: PlatformDep, levels: LevelsDep, now: NowDep, body: Reopening | None = None
) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.reopen(conn, alert_id, nurse.staff_id, now)
        if row is None:
            await _refuse(conn, alert_id, check_reopen)
            raise Problem(409, "This alert cannot be reopened now.", kind="alert-conflict")
        reopened = AlertReopenedV1(
            alert_id=alert_id,
            patient_id=row["patient_id"],
            submission_ids=tuple(row["submission_ids"]),
            previous_outcome=row["previous_outcome"],
            reopened_by=nurse.staff_id,
            reopened_at=now,
        )
        step = repository.NurseStep("reopened", now, reason=body.reason if body else None)
        await _record_step(conn, platform, nurse, row, "alert.reopened", reopened, "alert.reopen", step)
        names = await repository.staff_names(conn, [row])
    return alert_view(row, now, levels, names)
