"""Tablet-facing HTTP API: questionnaires (FHIR R4), submissions, messages."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from services.questionnaire import photos, repository
from services.questionnaire.answers import InvalidSubmission
from services.questionnaire.catalogue import QuestionnaireCatalogue, UnknownQuestionnaire
from services.questionnaire.domain import NormalisedSubmission, normalise_response
from shared.audit import audit_staff, record_access
from shared.auth import DevicePrincipal, Principal, StaffPrincipal
from shared.db.outbox import add_event
from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.questionnaire import MessageSentV1, QuestionnaireSubmittedV1
from shared.http import idempotency
from shared.http.app import NowDep, Platform, PlatformDep
from shared.http.bodies import parse_json, storable_json
from shared.http.ingress import IngressRequest, IngressWriter
from shared.http.openapi import problem_responses
from shared.http.problems import Problem
from shared.http.responses import json_response
from shared.http.routes import RequestOnlyRoute
from shared.http.security import DeviceDep, PrincipalDep, device_principal, require_staff
from shared.opening_hours import OpeningHours
from shared.repeating import place, validation_message

router = APIRouter(prefix="/v1", tags=["questionnaire"])
# The tablets' submissions, the hottest endpoint, on a route FastAPI hands the request to directly.
submission_router = APIRouter(prefix="/v1", tags=["questionnaire"], route_class=RequestOnlyRoute)

FHIR_JSON = "application/fhir+json"
MAX_MESSAGE_CHARS = 2000
MAX_PHOTOS_PER_MESSAGE = 4

STATUS_LABELS = {
    "received": "Vos réponses ont bien été reçues.",
    "scored": "Vos réponses ont été analysées. L'équipe soignante les a reçues.",
    "seen": "L'équipe soignante a vu vos réponses.",
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
NurseDep = Annotated[StaffPrincipal, Depends(require_staff("nurse"))]


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
    now = platform.clock()
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    body = await request.body()
    response = parse_json(body)
    stored = storable_json(response)  # before any walk of it: at most 254 levels deep
    answers = _normalised(questionnaires, response, now)
    if answers.answered_by == "nurse_phone":
        raise Problem(
            422,
            "A tablet answers for its patient (source Patient/<uuid>, or no source) or for a relative "
            "(RelatedPerson/<id>), not as a practitioner: a nurse who takes the answers by phone posts them to "
            "POST /v1/patients/{patient_id}/submissions with her staff token.",
            kind="practitioner-source-on-tablet",
            pointer="/source/reference",
        )
    if answers.subject_patient_id is not None and answers.subject_patient_id != device.patient_id:
        raise Problem(403, "A tablet can only submit answers for its own patient.", kind="wrong-patient")
    accepted, event, row = _submission(platform, hours, now, answers, device.patient_id, stored)
    replay = await writers.submissions.write(
        IngressRequest(
            f"submissions:{device.patient_id}", key, idempotency.request_hash(body), 202, accepted, row, event
        )
    )
    if replay is not None:
        return json_response(replay.body, replay.status, headers=_location(replay.body))
    return json_response(accepted, 202, headers=_location(accepted))


def _normalised(questionnaires: QuestionnaireCatalogue, response: Any, now: datetime) -> NormalisedSubmission:
    try:
        return normalise_response(questionnaires, response, now=now)
    except InvalidSubmission as exc:
        kind = exc.kind or "invalid-questionnaire-response"
        raise Problem(422, exc.detail, kind=kind, pointer=exc.pointer) from None
    except UnknownQuestionnaire as exc:
        raise Problem(422, str(exc), kind="unknown-questionnaire", pointer="/questionnaire") from None


def _submission(
    platform: Platform,
    hours: OpeningHours,
    now: datetime,
    answers: NormalisedSubmission,
    patient_id: UUID,
    stored: Any,
    recorded_by: str | None = None,
) -> tuple[dict[str, Any], CloudEvent[Any], repository.SubmissionRow]:
    """What a submission accepted is answered, announces and stores, whoever posted it (a tablet, or a nurse by
    phone: ``recorded_by``), received ``now``."""
    submission_id = uuid.uuid4()
    # SubmissionAccepted's shape, built as the dict it is stored and sent as (a model costs more here).
    accepted = {
        "id": str(submission_id),
        "status": "received",
        "status_label": STATUS_LABELS["received"],
        "notice": hours.patient_notice(now),
    }
    event = make_event(
        "questionnaire.submitted",
        QuestionnaireSubmittedV1(
            submission_id=submission_id,
            patient_id=patient_id,
            questionnaire_id=answers.questionnaire_id,
            questionnaire_version=answers.questionnaire_version,
            authored=answers.authored,
            answered_by=answers.answered_by,
            terms=answers.terms,
            red_flags=answers.red_flags,
            ecog=answers.ecog,
            recorded_by=recorded_by,
        ),
        source=platform.source,
        time=now,
        subject=str(submission_id),
    )
    row = repository.SubmissionRow(
        id=submission_id,
        patient_id=patient_id,
        questionnaire_id=answers.questionnaire_id,
        questionnaire_version=answers.questionnaire_version,
        answered_by=answers.answered_by,
        authored=answers.authored,
        response=stored,
        received_at=now,
        recorded_by=recorded_by,
    )
    return accepted, event, row


@router.post(
    "/patients/{patient_id}/submissions",
    status_code=202,
    response_model=SubmissionAccepted,
    summary="A nurse enters a patient's answers taken by phone (staff token: nurse; Idempotency-Key)",
    description="The same FHIR R4 QuestionnaireResponse as a tablet posts, for a patient who cannot use the "
    "tablet (COPACOM): the submission is recorded as answered by `nurse_phone`, with the nurse's staff id "
    "(`recorded_by`). `source` may be left out (the server sets `Practitioner/<your staff id>`); if sent, it "
    "must be that reference. `subject`, if sent, must be the patient of the path. Audited.",
    responses=problem_responses(400, 422),
    openapi_extra={
        "parameters": [idempotency.IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": _RESPONSE_SCHEMA}}},
    },
)
async def submit_by_phone(
    patient_id: UUID,
    request: Request,
    nurse: NurseDep,
    platform: PlatformDep,
    hours: OpeningHoursDep,
    questionnaires: CatalogueDep,
    now: NowDep,
) -> Any:
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    body = await request.body()
    response = parse_json(body)
    if isinstance(response, dict):
        response["source"] = _phone_source(response.get("source"), nurse)
    stored = storable_json(response)
    answers = _normalised(questionnaires, response, now)
    if answers.subject_patient_id is not None and answers.subject_patient_id != patient_id:
        raise Problem(
            422,
            f"subject names another patient than the one in the address ({patient_id}); leave subject out or "
            "send the same patient.",
            kind="wrong-patient",
            pointer="/subject/reference",
        )
    accepted, event, row = _submission(platform, hours, now, answers, patient_id, stored, recorded_by=nurse.staff_id)
    # A nurse enters a handful of these a day: one transaction of its own, which also holds its audit row, rather
    # than the tablets' group commit (whose one statement writes no audit row).
    scope = f"phone-submissions:{patient_id}:{nurse.staff_id}"
    async with platform.pool.acquire() as conn, conn.transaction():
        replay = await idempotency.claim_key(conn, scope=scope, key=key, body_hash=idempotency.request_hash(body))
        if replay is not None:
            await audit_staff(conn, nurse, "response.replay", f"POST {request.url.path}", patient_id)
            return json_response(replay.body, replay.status, headers=_location(replay.body))
        await repository.insert_submission(conn, row)
        await add_event(conn, event, schema=platform.schema)
        await audit_staff(conn, nurse, "submission.create", f"submission/{row.id}", patient_id)
        await idempotency.remember_response(conn, scope=scope, key=key, status=202, body=accepted)
    return json_response(accepted, 202, headers=_location(accepted))


def _phone_source(source: Any, nurse: StaffPrincipal) -> dict[str, str]:
    """The nurse on the phone is who answered: a ``source`` sent must name her; one left out is set to her."""
    yours = f"Practitioner/{nurse.staff_id}"
    if source is None:
        return {"reference": yours}
    reference = source.get("reference") if isinstance(source, dict) else None
    if reference != yours:
        raise Problem(
            422,
            f"On this route the nurse taking the answers by phone is who answered: leave source out (it is set to "
            f'{yours}) or send {{"reference": "{yours}"}}. A patient or a relative answers on the tablet.',
            kind="invalid-source",
            pointer="/source",
        )
    return {"reference": yours}


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


_EXPORT_ROLES = frozenset({"nurse", "admin"})


@router.get(
    "/submissions/{submission_id}",
    response_model=SubmissionStatus,
    summary="Where a submission is (status view), or, to staff asking for application/fhir+json, the stored FHIR "
    "R4 QuestionnaireResponse",
    description="With `Accept: application/fhir+json` (nurse, admin; audited per patient): the QuestionnaireResponse "
    "as stored, with `id` the submission's id, `subject` its patient and `source` who answered (`Patient/<uuid>`, "
    "the relative's `RelatedPerson/<id>`, or `Practitioner/<staff id>` of the nurse who took it by phone). "
    "Otherwise the status view (the patient's tablet, or a nurse).",
    responses={
        200: {"content": {FHIR_JSON: {"schema": _RESPONSE_SCHEMA}}},
        **problem_responses(403, 404),
    },
)
async def submission_status(
    submission_id: UUID,
    request: Request,
    principal: PrincipalDep,
    platform: PlatformDep,
    hours: OpeningHoursDep,
    now: NowDep,
) -> Any:
    if _wants_fhir(request.headers.get("accept")):
        return await _export(submission_id, principal, platform)
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
    status = SubmissionStatus(
        id=row["id"],
        questionnaire_id=row["questionnaire_id"],
        answered_by=row["answered_by"],
        authored=row["authored"],
        received_at=row["received_at"],
        status=row["status"],
        status_label=STATUS_LABELS[row["status"]],
        scored_at=row["scored_at"],
        seen_at=row["seen_at"],
        notice=hours.patient_notice(now),
    )
    return json_response(status.model_dump(mode="json"), 200, headers=_VARY)


_VARY = {"Vary": "Accept"}


def _wants_fhir(accept: str | None) -> bool:
    """Whether the client prefers application/fhir+json to every other type it names (RFC 9110 quality values)."""
    if not accept or FHIR_JSON not in accept.lower():
        return False
    best_other, fhir = 0.0, 0.0
    for media_range in accept.lower().split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type == FHIR_JSON:
            fhir = max(fhir, quality)
        elif media_type in ("application/json", "application/*", "*/*"):
            best_other = max(best_other, quality if media_type == "application/json" else quality - 0.001)
    return fhir > 0 and fhir >= best_other


async def _export(submission_id: UUID, principal: Principal, platform: Platform) -> Response:
    if not isinstance(principal, StaffPrincipal):
        raise Problem(
            403,
            "The FHIR export is for staff (nurse, admin) with a staff token; a tablet reads the status view "
            "(Accept: application/json).",
            kind="wrong-token",
        )
    if not principal.has_any(_EXPORT_ROLES):
        raise Problem(403, "Your role does not allow this; it needs one of: admin, nurse.", kind="missing-role")
    async with platform.pool.acquire() as conn:
        row = await repository.get_stored_response(conn, submission_id)
        if row is None:
            # As every read by a record's id (the status view, an alert, a photo): a 404 shows no patient's data,
            # and a refused request stores nothing. A read by a patient's id (the timeline) is audited even empty.
            raise Problem(404, "There is no submission with this id.")
        await record_access(
            conn,
            actor=principal.staff_id,
            roles=principal.roles,
            action="submission.export",
            resource=f"submission/{submission_id}",
            patient_id=row["patient_id"],
        )
    return json_response(exported_response(row), 200, media_type=FHIR_JSON, headers=_VARY)


def exported_response(row: Any) -> dict[str, Any]:
    """The stored QuestionnaireResponse with its ``id`` (the submission's), ``subject`` (its patient) and ``source``
    normalised to who answered."""
    resource = dict(row["response"])
    patient = f"Patient/{row['patient_id']}"
    stored_source = resource.get("source")
    stored_reference = stored_source.get("reference") if isinstance(stored_source, dict) else None
    source: str | None
    if row["answered_by"] == "patient":
        source = patient  # a tablet's answers with no source, or the patient's own reference
    elif row["answered_by"] == "nurse_phone" and row["recorded_by"] is not None:
        source = f"Practitioner/{row['recorded_by']}"
    else:  # a relative, or a practitioner a tablet named before nurses had their own route: as it was sent
        source = stored_reference
    exported: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "id": str(row["id"])}
    exported.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "subject", "source"))
    exported["subject"] = {"reference": patient}
    if source is not None:
        exported["source"] = {"reference": source}
    return exported


async def _audit_staff_read(conn: Any, platform: Platform, staff: StaffPrincipal, row: Any) -> None:
    await record_access(
        conn,
        actor=staff.staff_id,
        roles=staff.roles,
        action="submission.read",
        resource=f"submission/{row['id']}",
        patient_id=row["patient_id"],
    )


MESSAGE_STATUS_LABELS = {
    "sent": "Votre message a bien été envoyé à l'équipe soignante.",
    "seen": "L'équipe soignante a lu votre message.",
}


class MessageStatus(BaseModel):
    id: UUID
    sent_at: datetime
    status: str = Field(description="`sent`, then `seen` once a nurse took or closed the alert the message raised.")
    status_label: str
    seen_at: datetime | None
    notice: str
    photo_ids: list[UUID] = Field(description="The photos the message shows (GET /v1/photos/{id})")


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    summary="Where the patient's message is: sent, then read by a nurse",
    responses=problem_responses(404),
)
async def message_status(
    message_id: UUID, device: DeviceDep, platform: PlatformDep, hours: OpeningHoursDep, now: NowDep
) -> Any:
    async with platform.pool.acquire() as conn:
        row = await repository.get_message(conn, message_id)
    if row is None or row["patient_id"] != device.patient_id:
        # Same answer for "absent" and "another patient's": a tablet learns nothing about other patients.
        raise Problem(404, "There is no message with this id for you.")
    status = "seen" if row["seen_at"] is not None else "sent"
    return MessageStatus(
        id=row["id"],
        sent_at=row["sent_at"],
        status=status,
        status_label=MESSAGE_STATUS_LABELS[status],
        seen_at=row["seen_at"],
        notice=hours.patient_notice(now),
        photo_ids=row["photo_ids"],
    )


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        default="", max_length=MAX_MESSAGE_CHARS, description="May be left out or empty when a photo is sent."
    )
    answered_by: str = Field(default="patient", pattern="^(patient|relative)$")
    photo_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_PHOTOS_PER_MESSAGE,
        description="Photos this tablet uploaded (POST /v1/photos), each once.",
    )


class MessageAccepted(BaseModel):
    id: UUID
    status: str
    notice: str


@router.post(
    "/messages",
    status_code=202,
    response_model=MessageAccepted,
    summary="Write to the care team: text, photos (uploaded first with POST /v1/photos), or both",
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
    now: NowDep,
) -> Any:
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    body = await request.body()
    try:
        message = MessageIn.model_validate(parse_json(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where, hidden_key = place(first["loc"])
        at = where if hidden_key is None else f"{where}: {hidden_key}"
        raise Problem(
            422,
            f"{validation_message(first)} (at {at}); a message is up to {MAX_MESSAGE_CHARS} characters of text and "
            f"up to {MAX_PHOTOS_PER_MESSAGE} photo ids.",
            kind="invalid-message",
            pointer=where,
        ) from None
    text = message.text.strip()
    if not text and not message.photo_ids:
        raise Problem(
            422, "The message is empty: write a few words or add a photo.", kind="invalid-message", pointer="/text"
        )
    await _check_photos(platform, device.patient_id, message.photo_ids)
    message_id = uuid.uuid4()
    accepted = MessageAccepted(id=message_id, status="sent", notice=hours.patient_notice(now)).model_dump(mode="json")
    event = make_event(
        "message.sent",
        MessageSentV1(
            message_id=message_id,
            patient_id=device.patient_id,
            sent_at=now,
            answered_by=message.answered_by,
            text=text,
            photo_ids=tuple(message.photo_ids),
        ),
        source=platform.source,
        time=now,
        subject=str(message_id),
    )
    photos = orjson.Fragment(orjson.dumps([str(p) for p in message.photo_ids]))
    row = repository.MessageRow(message_id, device.patient_id, message.answered_by, text, now, photos)
    replay = await writers.messages.write(
        IngressRequest(f"messages:{device.patient_id}", key, idempotency.request_hash(body), 202, accepted, row, event)
    )
    if replay is not None:
        return json_response(replay.body, replay.status)
    return json_response(accepted, 202)


async def _check_photos(platform: Platform, patient_id: UUID, photo_ids: list[UUID]) -> None:
    """A message shows photos its own tablet uploaded, each once: anything else is refused before it is stored."""
    for i, photo_id in enumerate(photo_ids):
        if photo_id in photo_ids[:i]:
            raise Problem(
                422,
                f"The photo {photo_id} is named twice in this message; name each photo once.",
                kind="invalid-message",
                pointer=f"/photo_ids/{i}",
            )
    if not photo_ids:
        return
    days: int = platform.extras["orphan_photo_days"]
    async with platform.pool.acquire() as conn:
        own = await repository.own_photos(conn, patient_id, photo_ids, days)
    for i, photo_id in enumerate(photo_ids):
        if photo_id not in own:
            # Same answer for "absent", "another patient's" and "deleted, no message having named it in time": a
            # tablet learns nothing about other patients, and its queue gives the message back instead of looping.
            raise Problem(
                422,
                f"There is no photo {photo_id} uploaded for this patient; upload the photo first (POST /v1/photos) and "
                f"name the id it answered within {days} days: a photo no message names by then is deleted.",
                kind="unknown-photo",
                pointer=f"/photo_ids/{i}",
            )


class PhotoAccepted(BaseModel):
    id: UUID
    width: int = Field(description="In pixels, as stored (upright, at most 2048 on the long side)")
    height: int
    bytes: int = Field(description="The size of the re-encoded JPEG")
    received_at: datetime


# Pillow decodes in C, releasing the GIL, in a worker thread: the event loop keeps answering meanwhile. Two at a time
# per process (a 13 Mpx photo takes a few hundred ms): more would only queue for the same cores.
PHOTO_DECODERS = 2
# And no more at once than this much memory (photos.Opened.peak_bytes): a process runs in 512 MiB (deploy/), about
# 100 MB of it its own, and one 40 Mpx PNG with transparency takes about 350 MB to decode where a tablet's 13 Mpx
# JPEG takes 20. Two such PNGs at once would have the process killed, every request in it lost.
PHOTO_MEMORY_BYTES = 300 * 2**20


class PhotoDecoding:
    """The process's photo decoders: at most ``decoders`` at once, holding at most ``memory_bytes`` between them. A
    photo that alone needs more than the whole budget waits until it has the budget to itself. One per app: the
    condition belongs to the event loop that first waits on it."""

    def __init__(self, decoders: int = PHOTO_DECODERS, memory_bytes: int = PHOTO_MEMORY_BYTES) -> None:
        self._decoders = decoders
        self._memory = memory_bytes
        self._budget = memory_bytes
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self, peak_bytes: int) -> AsyncIterator[None]:
        need = min(peak_bytes, self._budget)
        async with self._changed:
            await self._changed.wait_for(lambda: self._decoders > 0 and self._memory >= need)
            self._decoders -= 1
            self._memory -= need
        try:
            yield
        finally:
            async with self._changed:
                self._decoders += 1
                self._memory += need
                self._changed.notify_all()


def photo_decoding() -> PhotoDecoding:
    return PhotoDecoding()


_PHOTO_BODY = {
    "required": True,
    "description": f"The photo file itself, as the raw body (not a form), up to MAX_PHOTO_BYTES (10 MB by default) "
    f"and {photos.MAX_PIXELS} pixels. It is decoded, turned upright and re-encoded as a JPEG without any metadata "
    "(no position, device or date).",
    "content": {
        media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in photos.ACCEPTED_MEDIA_TYPES
    },
}


@router.post(
    "/photos",
    status_code=201,
    response_model=PhotoAccepted,
    summary="Upload a photo for a message to the team (device token, Idempotency-Key)",
    description="Answers the photo's id, which `POST /v1/messages` then names in `photo_ids`. A photo no message "
    "names is never shown to the team, and is deleted ORPHAN_PHOTO_DAYS (7 by default) after its upload.",
    responses=problem_responses(413, 415, 422),
    openapi_extra={"parameters": [idempotency.IDEMPOTENCY_KEY_PARAMETER], "requestBody": _PHOTO_BODY},
)
async def upload_photo(request: Request, device: DeviceDep, platform: PlatformDep) -> Any:
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    media_type = photos.media_type_of(request.headers.get("content-type"))
    body = await request.body()
    if not body:
        raise Problem(422, "The request holds no photo: send the image file as the body.", kind="not-a-photo")
    try:
        opened = photos.opened(body, media_type)  # the header alone: what it is, and what decoding it will take
        async with platform.extras["photo_decoding"].slot(opened.peak_bytes):
            photo = await asyncio.to_thread(photos.finish, opened)
    except photos.PhotoRefused as exc:
        headers = {"Accept-Post": ", ".join(photos.ACCEPTED_MEDIA_TYPES)} if exc.status == 415 else None
        raise Problem(exc.status, exc.detail, kind=exc.kind, headers=headers) from None
    row = repository.PhotoRow(uuid.uuid4(), device.patient_id, photo.width, photo.height, photo.jpeg)
    scope = f"photos:{device.patient_id}"
    body_hash = idempotency.request_hash((media_type or "").encode() + b"\n" + body)
    async with platform.pool.acquire() as conn, conn.transaction():
        replay = await idempotency.claim_key(conn, scope=scope, key=key, body_hash=body_hash)
        if replay is not None:
            return json_response(replay.body, replay.status, headers=_photo_location(replay.body))
        received_at = await repository.insert_photo(conn, row)
        accepted = PhotoAccepted(
            id=row.id, width=row.width, height=row.height, bytes=len(row.jpeg), received_at=received_at
        ).model_dump(mode="json")
        await idempotency.remember_response(conn, scope=scope, key=key, status=201, body=accepted)
    return json_response(accepted, 201, headers=_photo_location(accepted))


def _photo_location(body: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"/v1/photos/{body['id']}"} if "id" in body else {}


class Jpeg(Response):
    media_type = "image/jpeg"


_PHOTO_READERS = frozenset({"nurse", "admin"})
# Health data: kept by no cache (a shared workstation's browser, a proxy), and never run as anything but an image.
_PHOTO_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


@router.get(
    "/photos/{photo_id}",
    response_class=Jpeg,
    summary="A photo a patient sent, as the re-encoded JPEG (staff: nurse, admin, audited; or the patient's tablet)",
    responses={
        200: {
            "description": "The photo",
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(403, 404),
    },
)
async def get_photo(photo_id: UUID, principal: PrincipalDep, platform: PlatformDep) -> Response:
    if isinstance(principal, StaffPrincipal) and not principal.has_any(_PHOTO_READERS):
        raise Problem(403, "Your role does not allow this; it needs one of: admin, nurse.", kind="missing-role")
    async with platform.pool.acquire() as conn, conn.transaction():
        row = await repository.get_photo(conn, photo_id)
        if row is not None and isinstance(principal, StaffPrincipal):
            # In the transaction that reads it: no photo is shown without its row. A 404 shows nothing: no row.
            await audit_staff(conn, principal, "photo.read", f"photo/{photo_id}", row["patient_id"])
    if row is None or (isinstance(principal, DevicePrincipal) and row["patient_id"] != principal.patient_id):
        # Same answer for "absent" and "another patient's": a tablet learns nothing about other patients.
        raise Problem(404, "There is no photo with this id for you.")
    return Response(bytes(row["jpeg"]), 200, media_type="image/jpeg", headers=_PHOTO_HEADERS)
