"""What a staff page needs to sign people in with the hospital's identity provider, on the server's side.

Each staff page (the nurse dashboard, the fleet page) is its own public client at the provider (authorization code
with PKCE, no secret: a page cannot keep one), named by a ``<PAGE>_OIDC_CLIENT_ID`` setting and asking for the
``<PAGE>_OIDC_SCOPES``. This module checks those settings at start-up, makes the ``provider_sign_in`` a page reads
from its service (the provider's endpoints come from its discovery document, read by the server, so the page does
not depend on the provider letting it read that document), and names the origin the page's Content-Security-Policy
must let it ``POST`` to (the token endpoint's; the configured issuer's while the provider is out of reach). The
browser side is ``shared/web/oidc.js``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, Field

from shared.http.page_security import PageSecurity, origin_of

log = logging.getLogger(__name__)

# A client id or a scope (RFC 6749 appendix A): printable ASCII, no space, quote or backslash.
_OAUTH_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}")
DEFAULT_SCOPES = "openid profile"
# While the provider is out of reach, how often a sign-in screen asks its service again (STAFF_SIGN_IN_RECHECK_S).
DEFAULT_RECHECK_S = 30.0


def client_id(value: str | None, variable: str, page: str) -> str | None:
    """A page's client id at the provider, or ValueError naming ``variable`` (``page``: "the dashboard's")."""
    if value is not None and not _OAUTH_TOKEN.fullmatch(value):
        raise ValueError(
            f"{variable} must be {page} client id at the identity provider (printable characters, no spaces, at "
            f"most 255), got {value!r}"
        )
    return value


def scopes(value: str, variable: str) -> str:
    """Space-separated scopes, ``openid`` among them (without it there is no ID token, hence no sign-out hint)."""
    listed = value.split()
    if "openid" not in listed or not all(_OAUTH_TOKEN.fullmatch(scope) for scope in listed):
        raise ValueError(
            f"{variable} must be space-separated scopes including openid (such as 'openid profile'), got {value!r}"
        )
    return " ".join(listed)


def needs_provider(client: str | None, issuer: str | None, variable: str, page: str) -> None:
    """A client id is worth nothing without the provider that knows it: refused at start-up, not at the click."""
    if client is not None and issuer is None:
        raise ValueError(
            f"{variable} needs STAFF_TOKEN_ISSUER and STAFF_TOKEN_AUDIENCE: {page} signs in with that identity provider"
        )


class ProviderSignIn(BaseModel):
    """What the page needs to sign a staff member in at the hospital's identity provider (authorization code with
    PKCE, as a public client), read from the provider's discovery document by this server: the page does not
    depend on the provider allowing it to read that document."""

    issuer: str
    client_id: str
    scopes: str = Field(description="Space-separated, openid among them")
    authorization_endpoint: str
    token_endpoint: str = Field(description="The page exchanges its code there: the provider must allow its origin")
    end_session_endpoint: str | None = Field(description="Where signing out ends the provider's session too")


async def provider_sign_in(platform: Any, client: str | None, scopes: str) -> tuple[ProviderSignIn | None, bool]:
    """The identity provider's sign-in for the page whose client id is ``client``, and whether it is configured but
    out of reach just now (the page then greys its button and says so)."""
    provider = platform.tokens.provider
    if client is None or provider is None:
        return None, False
    endpoints = await provider.sign_in_endpoints()
    if endpoints is None:
        return None, True
    return (
        ProviderSignIn(
            issuer=provider.issuer,
            client_id=client,
            scopes=scopes,
            authorization_endpoint=endpoints.authorization_endpoint,
            token_endpoint=endpoints.token_endpoint,
            end_session_endpoint=endpoints.end_session_endpoint,
        ),
        False,
    )


def provider_origin(provider: ProviderSignIn | None, unavailable: bool, issuer: str | None) -> str | None:
    """The provider's origin a page may ``fetch`` (its ``connect-src``): its token endpoint's when the discovery
    document names one; while that document cannot be had, the origin of the configured issuer
    (``STAFF_TOKEN_ISSUER``), where token endpoints almost always are (Keycloak's, Entra ID's). Allowing it is safe:
    it is the provider the operator configured and every service already trusts to sign staff tokens, the one the
    page sends people to for signing in; nothing new may be reached from the page. None without a provider, or when
    that address has no origin a page may be allowed (the page is then as strict as without it)."""
    url = provider.token_endpoint if provider is not None else issuer if unavailable else None
    try:
        return origin_of(url)
    except ValueError:
        log.warning("identity provider: its token endpoint has no origin a page may reach; left out of the policy")
        return None


class PageSignIn(BaseModel):
    """What a staff page's config says of its sign-in with the hospital's identity provider (each page's config
    adds its own fields to these)."""

    provider_sign_in: ProviderSignIn | None = Field(
        default=None,
        description="Sign-in with the hospital's identity provider (the page's <PAGE>_OIDC_CLIENT_ID), when "
        "configured and its endpoints are known",
    )
    provider_unavailable: bool = Field(
        default=False,
        description="That sign-in is configured but the provider's discovery document cannot be had just now",
    )
    provider_origin: str | None = Field(
        default=None,
        description="The provider's origin the page, served now, may call (its Content-Security-Policy's "
        "connect-src): the token endpoint's, or the configured issuer's while the provider is out of reach",
    )
    provider_recheck_s: float = Field(
        default=DEFAULT_RECHECK_S,
        description="While the provider is out of reach, how often the sign-in screen asks again, in seconds",
    )


async def page_sign_in(platform: Any, client: str | None, scopes: str) -> PageSignIn:
    """The sign-in part of the config of the page whose client id is ``client``."""
    provider, unavailable = await provider_sign_in(platform, client, scopes)
    return PageSignIn(
        provider_sign_in=provider,
        provider_unavailable=unavailable,
        provider_origin=provider_origin(provider, unavailable, _issuer(platform)),
        provider_recheck_s=getattr(platform.settings, "staff_sign_in_recheck_s", DEFAULT_RECHECK_S),
    )


def _issuer(platform: Any) -> str | None:
    provider = platform.tokens.provider
    return provider.issuer if provider is not None else None


async def allowing_sign_in(page: PageSecurity, platform: Any, client: str | None, scopes: str) -> PageSecurity:
    """``page`` also allowed to call the provider's token endpoint, when it signs in there: the code exchange and
    the silent refresh are the page's own ``fetch``es. The authorization and end-session endpoints are top-level
    navigations, which ``connect-src`` does not restrict. While the provider is out of reach, the configured
    issuer's origin instead (``provider_origin``): a page loaded then, whose policy is fixed at its load, can still
    renew a session silently once the provider is back. Unchanged when the provider's discovery document names a
    token endpoint no page may reach: the page is still served (a pasted token still signs in), as strict as without
    it."""
    provider, unavailable = await provider_sign_in(platform, client, scopes)
    return page.connecting_to(provider_origin(provider, unavailable, _issuer(platform)))
