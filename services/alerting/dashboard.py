"""The nurse dashboard: static pages (``dashboard/``, no build step) and the few endpoints they need
besides the alert API: sign-in help, who am I, and the French labels of the codes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.alerting.labels import reference as label_reference
from shared.auth import StaffPrincipal
from shared.db.staff import remember_staff
from shared.http import sign_in
from shared.http.app import NowDep, PlatformDep
from shared.http.openapi import problem_responses
from shared.http.page_security import SELF, PageSecurity
from shared.http.problems import Problem
from shared.http.security import require_staff
from shared.http.sign_in import PageSignIn, ProviderSignIn
from shared.settings import DEV_AUTH_SECRET

PAGES = Path(__file__).parent / "dashboard"

router = APIRouter(prefix="/v1", tags=["dashboard"])

Staff = Annotated[
    StaffPrincipal, Depends(require_staff("nurse", "arc", "partner_patient", "social_worker", "fleet", "admin"))
]


class DevUser(BaseModel):
    staff_id: str
    display_name: str
    roles: list[str]


DEV_USERS = (
    DevUser(staff_id="ide-claire", display_name="Claire Martin (IDE coordinatrice)", roles=["nurse"]),
    DevUser(staff_id="ide-karim", display_name="Karim Benali (IDE coordinateur)", roles=["nurse"]),
    DevUser(staff_id="cadre-sophie", display_name="Sophie Leroy (cadre de santé, admin)", roles=["nurse", "admin"]),
)
# The name their tokens carry: the display name without the job title in brackets.
DEV_NAMES = {user.staff_id: user.display_name.partition(" (")[0] for user in DEV_USERS}


def _dev_login(platform: Any) -> bool:
    """Only with the development secret, which is public: the tokens it signs are worth nothing where a real
    secret is set, whatever ENVIRONMENT says (a deployment that forgot to set it is not handed admin tokens)."""
    settings = platform.settings
    return (
        settings.environment != "production"
        and settings.auth_secret == DEV_AUTH_SECRET
        and bool(getattr(settings, "dashboard_dev_login", False))
    )


class DashboardConfig(PageSignIn):
    """How to sign in here (the sign-in with the provider as every staff page's config says it, the client id being
    DASHBOARD_OIDC_CLIENT_ID) and where the page reaches the questionnaire service."""

    environment: str
    dev_login: bool
    dev_users: list[DevUser]
    questionnaire_url: str = Field(
        description="Where the page reaches the questionnaire service (QUESTIONNAIRE_PUBLIC_URL): the questionnaire "
        "it shows and the answers a nurse takes by phone"
    )


async def provider_sign_in(platform: Any) -> tuple[ProviderSignIn | None, bool]:
    """The dashboard's sign-in with the identity provider, and whether it is configured but out of reach."""
    return await sign_in.provider_sign_in(platform, *_client(platform.settings))


def _client(settings: Any) -> tuple[str | None, str]:
    """The dashboard's client id at the provider (DASHBOARD_OIDC_CLIENT_ID) and the scopes it asks for."""
    return (
        getattr(settings, "dashboard_oidc_client_id", None),
        getattr(settings, "dashboard_oidc_scopes", sign_in.DEFAULT_SCOPES),
    )


@router.get("/dashboard/config", response_model=DashboardConfig, summary="How to sign in here (no token needed)")
async def dashboard_config(platform: PlatformDep) -> Any:
    dev = _dev_login(platform)
    return DashboardConfig(
        **dict(await sign_in.page_sign_in(platform, *_client(platform.settings))),
        environment=platform.settings.environment,
        dev_login=dev,
        dev_users=list(DEV_USERS) if dev else [],
        questionnaire_url=str(getattr(platform.settings, "questionnaire_public_url", "")),
    )


# The dashboard runs its own scripts and styles only, nothing inline, in no frame. blob: images are the patients'
# photos, fetched with the nurse's token and shown through object URLs (photos.js). The provider's pages and any link
# followed learn nothing of where the nurse was.
DASHBOARD_PAGE = PageSecurity(
    default_src=SELF,
    img_src=(SELF, "data:", "blob:"),
    form_action=SELF,
    referrer_policy="same-origin",
    # A nurse's screen asks for none of these: a script injected somehow could not either.
    features_denied=("camera", "microphone", "geolocation"),
)


async def page_headers(platform: Any) -> dict[str, str]:
    """The dashboard calls this service, the questionnaire service (answers taken by phone) and, when it signs in
    with the hospital's identity provider, that provider's token endpoint (the code exchange and the silent
    refresh). The authorization and end-session endpoints are top-level navigations, which no directive restricts
    here."""
    page = DASHBOARD_PAGE.connecting_to(getattr(platform.settings, "questionnaire_public_url", None))
    page = await sign_in.allowing_sign_in(page, platform, *_client(platform.settings))
    return page.headers()


class DevTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: str = Field(max_length=80)


class DevToken(BaseModel):
    token: str


@router.post(
    "/dashboard/dev-token",
    response_model=DevToken,
    summary="Development only: sign in as a dev user",
    responses=problem_responses(404, 422),
)
async def dev_token(body: DevTokenRequest, platform: PlatformDep) -> Any:
    if not _dev_login(platform):
        raise Problem(404, "Development sign-in is off here: paste a staff token from your identity provider.")
    user = next((u for u in DEV_USERS if u.staff_id == body.staff_id), None)
    if user is None:
        raise Problem(422, f"There is no development user {body.staff_id!r}.", pointer="/staff_id")
    token = platform.tokens.issue_staff_token(
        user.staff_id, set(user.roles), ttl_s=12 * 3600, name=DEV_NAMES[user.staff_id]
    )
    return DevToken(token=token)


class Me(BaseModel):
    staff_id: str
    name: str | None = Field(default=None, description="The display name the token carries (STAFF_TOKEN_NAME_CLAIM)")
    roles: list[str]
    session_ends_at: datetime | None = Field(default=None, description="When this staff token expires")
    session_expires_in: int | None = Field(
        default=None, description="Seconds until then: what a client with a wrong clock can still count on"
    )


@router.get("/me", response_model=Me, summary="Who this staff token is, and until when")
async def me(staff: Staff, platform: PlatformDep, now: NowDep) -> Any:
    # Signing in is being seen: her colleagues see her name beside what she does from now on.
    async with platform.pool.acquire() as conn:
        await remember_staff(conn, staff.staff_id, staff.name, now)
    ends = staff.session_ends_at
    return Me(
        staff_id=staff.staff_id,
        name=staff.name,
        roles=sorted(staff.roles),
        session_ends_at=None if ends is None else datetime.fromtimestamp(ends, UTC),
        session_expires_in=staff.session_seconds_left(),
    )


@router.get("/reference", summary="French labels of the codes the API returns (terms, rules, outcomes, sources)")
async def reference() -> dict[str, dict[str, str]]:
    return label_reference()
