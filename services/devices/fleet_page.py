"""The fleet manager's page (``fleet/``, no build step, served at /fleet/) and what it needs besides the fleet API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from shared.http.app import PlatformDep
from shared.http.page_security import SELF, PageSecurity

PAGES = Path(__file__).parent / "fleet"

page_router = APIRouter()


@page_router.get("/fleet/config.json", include_in_schema=False)
async def fleet_config(platform: PlatformDep) -> dict[str, Any]:
    """Whether the page may say how to get a development token (never where it would be worth something)."""
    return {"development": platform.settings.environment != "production"}


# The page runs its own files only and calls this service only: a script injected somehow could neither load code
# from elsewhere nor send a device token away. Images from data: are the enrolment QR codes, which this service draws
# as SVG documents: an <img> renders them without their markup ever joining the page.
FLEET_PAGE = PageSecurity(img_src=(SELF, "data:"))


async def page_headers(platform: Any) -> dict[str, str]:
    return {**FLEET_PAGE.headers(), "Cache-Control": "no-cache"}
