"""The fleet manager's page (``fleet/``, no build step, served at /fleet/) and what it needs besides the fleet API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from shared.http import sign_in
from shared.http.app import PlatformDep
from shared.http.page_security import SELF, PageSecurity
from shared.http.sign_in import PageSignIn

PAGES = Path(__file__).parent / "fleet"

page_router = APIRouter()


class FleetConfig(PageSignIn):
    """How the page signs people in: its sign-in with the provider (FLEET_OIDC_CLIENT_ID), as every staff page's."""

    development: bool = Field(description="Whether the page may say how to get a development token")
    enrolment_codes: bool = Field(
        default=False, description="Whether loans' enrolment links carry one-time codes (TABLET_ORIGINS set)"
    )


def _client(settings: Any) -> tuple[str | None, str]:
    """The fleet page's client id at the provider (FLEET_OIDC_CLIENT_ID) and the scopes it asks for."""
    return getattr(settings, "fleet_oidc_client_id", None), getattr(
        settings, "fleet_oidc_scopes", sign_in.DEFAULT_SCOPES
    )


@page_router.get("/fleet/config.json", include_in_schema=False)
async def fleet_config(platform: PlatformDep) -> FleetConfig:
    """How the page signs people in: the development hint (never where a token from it would be worth something)
    and the hospital's identity provider, as the dashboard's config says it (shared.http.sign_in)."""
    return FleetConfig(
        **dict(await sign_in.page_sign_in(platform, *_client(platform.settings))),
        development=platform.settings.environment != "production",
        # Codes need the tablet's page to call this service (CORS): without, no « Nouveau code d'enrôlement ».
        enrolment_codes=bool(getattr(platform.settings, "tablet_origins", ())),
    )


# The page runs its own files only and calls this service only: a script injected somehow could neither load code
# from elsewhere nor send a device token away. Images from data: are the enrolment QR codes, which this service draws
# as SVG documents: an <img> renders them without their markup ever joining the page.
FLEET_PAGE = PageSecurity(img_src=(SELF, "data:"), features_denied=("camera", "microphone", "geolocation"))


async def page_headers(platform: Any) -> dict[str, str]:
    """The fleet page also calls the identity provider's token endpoint when it signs in there (the code exchange
    and the silent refresh); going to the provider's sign-in and end-session pages are top-level navigations, which
    no directive here restricts."""
    page = await sign_in.allowing_sign_in(FLEET_PAGE, platform, *_client(platform.settings))
    return {**page.headers(), "Cache-Control": "no-cache"}
