"""The questionnaire service: uvicorn services.questionnaire.main:app (port 8001)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Response
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from services.questionnaire import handlers, repository
from services.questionnaire.api import ingress_writers, photo_decoding, router, submission_router
from services.questionnaire.catalogue import DEFAULT_DEFINITIONS_DIR, QuestionnaireCatalogue
from services.questionnaire.tablet_files import VERSION_HEADER, TabletFiles
from shared.http.app import WEB_MODULES, Platform, PlatformDep, ServiceDefinition, create_service_app
from shared.http.page_security import SELF, PageSecurity
from shared.messaging.consumer import Subscription
from shared.messaging.topology import UNLIMITED, ConsumerSpec
from shared.periodic import Clock, system_clock
from shared.settings import ServiceSettings, from_environment, web_address, web_origins

NAME = "questionnaire"

TABLET_PAGES = Path(__file__).parent / "tablet"
TEAM_PHONE_PATTERN = re.compile(r"\+?[0-9]+(?:[ .\-]+[0-9]+)*")


# The tablet's pages run nothing but their own files and talk to nothing but this service (and the devices service,
# for heartbeats, when it is set): a script injected somehow could neither load code from elsewhere nor send the
# patient's answers (or the device token) away. Images from data: are the photo's preview and thumbnail; the
# manifest (and its icons, images of this origin) make the page a home-screen app without the browser's bars; the
# microphone is for the message's dictation, on this origin only; its service worker (tablet/sw.js, which keeps the
# page's own files so that it opens offline) is one of its own files too.
TABLET_PAGE = PageSecurity(
    img_src=(SELF, "data:"),
    manifest_src=SELF,
    worker_src=SELF,
    features_allowed=("microphone",),
    features_denied=("camera", "geolocation"),
)


def tablet_headers(devices_url: str | None) -> dict[str, str]:
    # A page updated on the server is the one the tablet runs next (revalidated, still cached when unchanged).
    return {**TABLET_PAGE.connecting_to(devices_url).headers(), "Cache-Control": "no-cache"}


tablet_router = APIRouter()


def _tablet_config(platform: Platform) -> dict[str, Any]:
    return {
        "devices_url": getattr(platform.settings, "devices_public_url", None),
        "team_phone": getattr(platform.settings, "team_phone", None),
    }


def tablet_version(platform: Platform) -> str:
    """The version of the tablet's page this service serves now (tablet_files.py)."""
    files: TabletFiles = platform.extras["tablet_files"]
    return files.version(_tablet_config(platform))


@tablet_router.get("/tablet/config.json", include_in_schema=False)
async def tablet_config(platform: PlatformDep, response: Response) -> dict[str, Any]:
    """What the tablet's page needs to know of the deployment: where it sends its heartbeats (none: it sends none),
    and the team's number the patient may call (none: the page shows no number)."""
    # Kept by the worker with the page's files, so it says which version it belongs to as they do.
    response.headers[VERSION_HEADER] = tablet_version(platform)
    return _tablet_config(platform)


@tablet_router.api_route("/tablet/sw.js", methods=["GET", "HEAD"], include_in_schema=False)
async def tablet_worker(platform: PlatformDep) -> Response:
    """The page's service worker with the page's version in its bytes: a page changed on the server is a new worker,
    which the browser's update check (the worker is never taken from the HTTP cache) installs."""
    files: TabletFiles = platform.extras["tablet_files"]
    version = tablet_version(platform)
    headers = {**tablet_headers(getattr(platform.settings, "devices_public_url", None)), VERSION_HEADER: version}
    return Response(files.worker(version), media_type="text/javascript", headers=headers)


SUBSCRIPTIONS = (
    # Off the alert path: the tablet's "scored" may show a fifth of a second later, in fewer transactions
    # (measured at 500 submissions/s: 18 → 4 a second; README, Benchmark).
    Subscription(
        ConsumerSpec(NAME, "ALERTS", "submission.scored", fetch_batch=500, linger_s=0.2),
        handlers.on_submission_scored,
        batch=True,
    ),
    Subscription(ConsumerSpec(NAME, "ALERTS", "alert.acknowledged"), handlers.on_alert_acknowledged, batch=True),
    Subscription(ConsumerSpec(NAME, "ALERTS", "alert.resolved"), handlers.on_alert_resolved, batch=True),
    # A revocation lost would leave a returned or stolen tablet's token working here until it expires, months
    # later: these are retried until applied, never dead-lettered after a run of failures.
    Subscription(
        ConsumerSpec(NAME, "TABLETS", "tablet.returned", max_deliver=UNLIMITED), handlers.on_tablet_returned, batch=True
    ),
    Subscription(
        ConsumerSpec(NAME, "TABLETS", "tablet.lost", max_deliver=UNLIMITED), handlers.on_tablet_lost, batch=True
    ),
)


class QuestionnaireSettings(ServiceSettings):
    definitions_dir: Path = Field(default=DEFAULT_DEFINITIONS_DIR, alias="QUESTIONNAIRE_DEFINITIONS_DIR")
    # The web origins of the nurse dashboard (the alerting service as browsers reach it), allowed to call this
    # service from their pages (CORS: bearer tokens, never cookies). None by default: no page of another origin may.
    dashboard_origins: Annotated[tuple[str, ...], NoDecode] = Field(default=(), alias="DASHBOARD_ORIGINS")

    # Where the tablets reach the devices service, for the page's heartbeats (its TABLET_ORIGINS must name this
    # service's origin); none by default: the page sends no heartbeat.
    devices_public_url: str | None = Field(default=None, alias="DEVICES_PUBLIC_URL")
    # The largest photo a tablet may upload (POST /v1/photos), before it is re-encoded; every other request keeps
    # MAX_BODY_BYTES. The page downscales a photo to about 1 MB before sending it.
    max_photo_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024, alias="MAX_PHOTO_BYTES")
    # Days after its upload when a photo no message names is deleted (health data no one will see): a tablet
    # offline for a few days still sends the message naming its photo, hence at least a day. A photo a message
    # names is kept with the patient's record.
    orphan_photo_days: int = Field(default=7, ge=1, le=3650, alias="ORPHAN_PHOTO_DAYS")
    # The coordinating nurses' number as patients dial it ("01 49 81 21 11"): the tablet shows it as a link to call
    # on its home, after a send, and when it is not ready. None by default: the page shows no number.
    team_phone: str | None = Field(default=None, alias="TEAM_PHONE")

    @field_validator("dashboard_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> tuple[str, ...]:
        return web_origins(value, "DASHBOARD_ORIGINS")

    @field_validator("devices_public_url", mode="before")
    @classmethod
    def _devices_url(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return web_address(value, "DEVICES_PUBLIC_URL")

    @field_validator("team_phone", mode="before")
    @classmethod
    def _team_phone(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return team_phone(value)


def team_phone(value: Any) -> str:
    """A number a patient can dial as written: digits grouped by spaces, dots or dashes, a leading + for an
    international one. Checked at start-up: a typo would otherwise reach every tablet as a link that calls no one."""
    text = " ".join(str(value).split())
    digits = sum(c.isdigit() for c in text)
    if not TEAM_PHONE_PATTERN.fullmatch(text) or not 4 <= digits <= 20:
        raise ValueError(
            f"TEAM_PHONE must be a phone number as patients dial it, such as '01 49 81 21 11' or '+33 1 49 81 21 11' "
            f"(4 to 20 digits; spaces, dots and dashes between them; + only first); got {value!r}"
        )
    return text


def build_service(
    settings: QuestionnaireSettings | None = None, *, tablet_pages: Path = TABLET_PAGES, clock: Clock = system_clock
) -> ServiceDefinition:
    """``tablet_pages``: where the tablet's page is served from (a test's copy, which it may change); ``clock``: what
    the service calls "now" (when answers and messages arrive, the team's hours a patient is told)."""
    settings = settings or from_environment(QuestionnaireSettings, NAME)
    writers = ingress_writers(NAME)
    return ServiceDefinition(
        name=NAME,
        settings=settings,
        routers=(submission_router, router, tablet_router),
        migrations=Path(__file__).parent / "migrations",
        subscriptions=SUBSCRIPTIONS,
        background=(writers.submissions.run, writers.messages.run),
        extras={
            "writers": writers,
            "photo_decoding": photo_decoding(),
            "catalogue": QuestionnaireCatalogue.from_directory(settings.definitions_dir),
            "opening_hours": settings.clinic_hours(),
            "orphan_photo_days": settings.orphan_photo_days,
            "tablet_files": TabletFiles(tablet_pages, WEB_MODULES),
            "clock": clock,
        },
        description="Tablet-facing: questionnaires (FHIR R4), submissions, and patient messages and photos.",
        cors_origins=settings.dashboard_origins,
        raw_bodies={"/v1/photos": settings.max_photo_bytes},
        static={"/tablet": tablet_pages, "/web": WEB_MODULES},
        static_headers=_versioned(tablet_headers(settings.devices_public_url)),
        purges=(repository.orphan_photos_purge(settings.orphan_photo_days),),
    )


def _versioned(headers: dict[str, str]) -> Callable[[Platform], Awaitable[dict[str, str]]]:
    async def headers_of(platform: Platform) -> dict[str, str]:
        # Which version of the page each file is: the worker keeps a file only of its own version, and opens a file
        # of the kept copy for a page of the network only when both are the same version (tablet/sw.js).
        return {**headers, VERSION_HEADER: tablet_version(platform)}

    return headers_of


def create_app(settings: QuestionnaireSettings | None = None) -> FastAPI:
    return create_service_app(build_service(settings))


app = create_app()
