"""Tablet-facing HTTP API: questionnaires (FHIR R4), submissions, messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from services.questionnaire import repository
from services.questionnaire.domain import (
    InvalidSubmission,
    QuestionnaireCatalogue,
    UnknownQuestionnaire,
    normalise_response,
)
from shared.audit import record_access
from shared.auth import DevicePrincipal, StaffPrincipal
from shared.events.catalog import make_event
from shared.events.questionnaire import MessageSentV1, QuestionnaireSubmittedV1
from shared.http import idempotency
from shared.http.app import Platform, PlatformDep
from shared.http.bodies import parse_json, storable_json
from shared.http.ingress import IngressRequest, IngressWriter
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.responses import json_response
from shared.http.routes import RequestOnlyRoute
from shared.http.security import DeviceDep, PrincipalDep, device_principal
from shared.opening_hours import OpeningHours

router = APIRouter(prefix="/v1", tags=["questionnaire"])
# The tablets' submissions, the hottest endpoint, on a route FastAPI hands the request to directly.
submission_router = APIRouter(prefix="/v1", tags=["questionnaire"], route_class=RequestOnlyRoute)

FHIR_JSON = "application/fhir+json"
MAX_MESSAGE_CHARS = 2000

STATUS_LABELS = {
    "received": "Vos réponses ont bien été reçues.",
    "scored": "Vos réponses ont été analysées et transmises à l'équipe.",
    "seen": "Votre infirmière a vu vos réponses.",
}


async def catalogue(platform: PlatformDep) -> QuestionnaireCatalogue:
    found: QuestionnaireCatalogue = platform.extras["catalogue"]
    return found


@dataclass(frozen=True)
class Writers:
    """The group-commit writers of this service's two kinds of tablet input."""

    submissions: IngressWriter[repository.SubmissionRow]
    messages: IngressWriter[repository.MessageRow]


def ingress_writers(schema: str) -> Writers:
    return Writers(IngressWriter(schema, repository.SUBMISSIONS), IngressWriter(schema, repository.MESSAGES))


async def writers_of(platform: PlatformDep) -> Writers:
    found: Writers = platform.extras["writers"]
    return found


async def opening_hours(platform: PlatformDep) -> OpeningHours:
    hours: OpeningHours = platform.extras["opening_hours"]
    return hours


CatalogueDep = Annotated[QuestionnaireCatalogue, Depends(catalogue)]
OpeningHoursDep = Annotated[OpeningHours, Depends(opening_hours)]
WritersDep = Annotated[Writers, Depends(writers_of)]


def _fhir(body: Any, status: int = 200) -> Response:
    return json_response(body, status, media_type=FHIR_JSON)


class FhirJson(Response):
    """What the FHIR reads answer, for their documentation: FHIR R4 resources as application/fhir+json."""

    media_type = FHIR_JSON


def _fhir_resource(resource_type: str, description: str, required: list[str]) -> dict[int | str, Any]:
    """The documented 200 of a FHIR read: the resource, as application/fhir+json."""
    schema = {
        "type": "object",
        "description": f"A FHIR R4 {resource_type}.",
        "required": ["resourceType", *required],
        "properties": {"resourceType": {"const": resource_type}},
    }
    return {200: {"description": description, "content": {FHIR_JSON: {"schema": schema}}}}


@router.get(
    "/questionnaires",
    summary="All questionnaires, as a FHIR searchset Bundle",
    response_class=FhirJson,
    responses=_fhir_resource("Bundle", "A searchset Bundle, one entry per questionnaire.", ["type", "entry"]),
)
async def list_questionnaires(_: PrincipalDep, questionnaires: CatalogueDep) -> Response:
    entries = [{"resource": d.resource} for d in questionnaires.all()]
    return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


@router.get(
    "/questionnaires/{questionnaire_id}",
    summary="One questionnaire as a FHIR R4 Questionnaire",
    response_class=FhirJson,
    responses={
        **_fhir_resource("Questionnaire", "The questionnaire, its items in French.", ["id", "url", "version", "item"]),
        **problem_responses(404),
    },
)
async def get_questionnaire(questionnaire_id: str, _: PrincipalDep, questionnaires: CatalogueDep) -> Response:
    definition = questionnaires.get(questionnaire_id)
    if definition is None:
        raise Problem(404, f"There is no questionnaire with id {questionnaire_id!r}.")
    return _fhir(definition.resource)


# The body is validated against the questionnaire's own definition (domain.normalise_response), so the
# schema here documents its shape for client developers rather than checking it.
_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A FHIR R4 QuestionnaireResponse; `source` says who answered (Patient, RelatedPerson, "
    "Practitioner = a nurse by phone).",
    "required": ["resourceType", "questionnaire", "status", "authored", "item"],
    "properties": {
        "resourceType": {"const": "QuestionnaireResponse"},
        "questionnaire": {
            "type": "string",
            "example": "https://oncofollow.example/fhir/Questionnaire/reconnect-symptoms|1.0.0",
        },
        "status": {"enum": ["completed", "amended"]},
        "authored": {"type": "string", "format": "date-time"},
        "subject": {"type": "object", "properties": {"reference": {"type": "string", "example": "Patient/<uuid>"}}},
        "source": {"type": "object", "properties": {"reference": {"type": "string", "example": "RelatedPerson/1"}}},
        "item": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["linkId"],
                "properties": {
                    "linkId": {"type": "string", "example": "nausea.frequency"},
                    "answer": {"type": "array"},
                },
            },
        },
    },
}


class SubmissionAccepted(BaseModel):
    id: UUID
    status: str
    status_label: str
    notice: str


@submission_router.post(
    "/submissions",
    status_code=202,
    response_model=SubmissionAccepted,
    summary="Post a FHIR R4 QuestionnaireResponse (device token, Idempotency-Key)",
    # It reads its token, key and body itself: FastAPI sees none of them.
    responses=problem_responses(401, 403, 422),
    openapi_extra={
        "parameters": [idempotency.IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": _RESPONSE_SCHEMA}}},
    },
)
async def submit(request: Request) -> Any:
    # The hottest endpoint takes only the request (RequestOnlyRoute): its token, key and service resources
    # are read here, not resolved as FastAPI dependencies (which cost more per request than the work they do).
    device = await device_principal(request)
    platform: Platform = request.state.platform
    questionnaires: QuestionnaireCatalogue = platform.extras["catalogue"]
    hours: OpeningHours = platform.extras["opening_hours"]
    writers: Writers = platform.extras["writers"]
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    body = await request.body()
    response = parse_json(body)
    stored = storable_json(response)  # before any walk of it: at most 254 levels deep
    try:
        answers = normalise_response(questionnaires, response)
    except InvalidSubmission as exc:
        raise Problem(422, exc.detail, kind="invalid-questionnaire-response", pointer=exc.pointer) from None
    except UnknownQuestionnaire as exc:
        raise Problem(422, str(exc), kind="unknown-questionnaire", pointer="/questionnaire") from None
    if answers.subject_patient_id is not None and answers.subject_patient_id != device.patient_id:
        raise Problem(403, "A tablet can only submit answers for its own patient.", kind="wrong-patient")

    submission_id = uuid.uuid4()
    # SubmissionAccepted's shape, built as the dict it is stored and sent as (a model costs more here).
    accepted = {
        "id": str(submission_id),
        "status": "received",
        "status_label": STATUS_LABELS["received"],
        "notice": hours.patient_notice(datetime.now(UTC)),
    }
    event = make_event(
        "questionnaire.submitted",
        QuestionnaireSubmittedV1(
            submission_id=submission_id,
            patient_id=device.patient_id,
            questionnaire_id=answers.questionnaire_id,
            questionnaire_version=answers.questionnaire_version,
            authored=answers.authored,
            answered_by=answers.answered_by,
            terms=answers.terms,
            red_flags=answers.red_flags,
            ecog=answers.ecog,
        ),
        source=platform.source,
        subject=str(submission_id),
    )
    row = repository.SubmissionRow(
        id=submission_id,
        patient_id=device.patient_id,
        questionnaire_id=answers.questionnaire_id,
        questionnaire_version=answers.questionnaire_version,
        answered_by=answers.answered_by,
        authored=answers.authored,
        response=stored,
    )
    replay = await writers.submissions.write(
        IngressRequest(
            f"submissions:{device.patient_id}", key, idempotency.request_hash(body), 202, accepted, row, event
        )
    )
    if replay is not None:
        return json_response(replay.body, replay.status, headers=_location(replay.body))
    return json_response(accepted, 202, headers=_location(accepted))


def _location(body: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"/v1/submissions/{body['id']}"} if "id" in body else {}


class SubmissionStatus(BaseModel):
    id: UUID
    questionnaire_id: str
    answered_by: str
    authored: datetime
    received_at: datetime
    status: str
    status_label: str
    scored_at: datetime | None
    seen_at: datetime | None
    notice: str


@router.get("/submissions/{submission_id}", response_model=SubmissionStatus, responses=problem_responses(403, 404))
async def submission_status(
    submission_id: UUID, principal: PrincipalDep, platform: PlatformDep, hours: OpeningHoursDep
) -> Any:
    if isinstance(principal, StaffPrincipal) and not principal.has_any(frozenset({"nurse"})):
        raise Problem(403, "Your role does not allow this; it needs one of: nurse.", kind="missing-role")
    async with platform.pool.acquire() as conn:
        row = await repository.get_submission(conn, submission_id)
        if row is not None and isinstance(principal, StaffPrincipal):
            # A 404 shows no patient's data: nothing to audit (a refused request stores nothing).
            await _audit_staff_read(conn, platform, principal, row)
    visible = row is not None and (
        isinstance(principal, StaffPrincipal)
        or (isinstance(principal, DevicePrincipal) and row["patient_id"] == principal.patient_id)
    )
    if not visible or row is None:
        # Same answer for "absent" and "another patient's": a tablet learns nothing about other patients.
        raise Problem(404, "There is no submission with this id for you.")
    return SubmissionStatus(
        id=row["id"],
        questionnaire_id=row["questionnaire_id"],
        answered_by=row["answered_by"],
        authored=row["authored"],
        received_at=row["received_at"],
        status=row["status"],
        status_label=STATUS_LABELS[row["status"]],
        scored_at=row["scored_at"],
        seen_at=row["seen_at"],
        notice=hours.patient_notice(datetime.now(UTC)),
    )


async def _audit_staff_read(conn: Any, platform: Platform, staff: StaffPrincipal, row: Any) -> None:
    await record_access(
        conn,
        actor=staff.staff_id,
        roles=staff.roles,
        action="submission.read",
        resource=f"submission/{row['id']}",
        patient_id=row["patient_id"],
    )


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    answered_by: str = Field(default="patient", pattern="^(patient|relative)$")


class MessageAccepted(BaseModel):
    id: UUID
    status: str
    notice: str


@router.post(
    "/messages",
    status_code=202,
    response_model=MessageAccepted,
    summary="Write to the care team",
    responses=problem_responses(422),
    # The body is read and checked in the route (its errors are the message's own problems): documented here.
    openapi_extra={
        "parameters": [idempotency.IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": MessageIn.model_json_schema()}}},
    },
)
async def send_message(
    request: Request,
    device: DeviceDep,
    platform: PlatformDep,
    hours: OpeningHoursDep,
    writers: WritersDep,
) -> Any:
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    body = await request.body()
    try:
        message = MessageIn.model_validate(parse_json(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/" + "/".join(str(p) for p in first["loc"])
        raise Problem(
            422,
            f"{first['msg']} (at {where}); a message is 1 to {MAX_MESSAGE_CHARS} characters of text.",
            kind="invalid-message",
            pointer=where,
        ) from None
    text = message.text.strip()
    if not text:
        raise Problem(422, "The message is empty.", kind="invalid-message", pointer="/text")
    message_id = uuid.uuid4()
    accepted = MessageAccepted(id=message_id, status="sent", notice=hours.patient_notice(datetime.now(UTC))).model_dump(
        mode="json"
    )
    sent_at = datetime.now(UTC)
    event = make_event(
        "message.sent",
        MessageSentV1(
            message_id=message_id,
            patient_id=device.patient_id,
            sent_at=sent_at,
            answered_by=message.answered_by,
            text=text,
        ),
        source=platform.source,
        subject=str(message_id),
    )
    row = repository.MessageRow(message_id, device.patient_id, message.answered_by, text, sent_at)
    replay = await writers.messages.write(
        IngressRequest(f"messages:{device.patient_id}", key, idempotency.request_hash(body), 202, accepted, row, event)
    )
    if replay is not None:
        return json_response(replay.body, replay.status)
    return json_response(accepted, 202)
