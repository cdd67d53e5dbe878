"""Auth dependencies: who is calling, and may they call this endpoint.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, a hop per request.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from shared.auth import DevicePrincipal, IdTokenPresented, InvalidToken, Principal, ProviderToken, StaffPrincipal
from shared.http.app import PlatformDep
from shared.http.openapi import raises
from shared.http.problems import Problem
from shared.oidc import ProviderUnavailable

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="oncofollow"'}


@raises(401, 503)
async def bearer_principal(request: Request, platform: PlatformDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Send a bearer token in the Authorization header (see README: make token).",
            kind="missing-token",
            headers=_CHALLENGE,
        )
    token = token.strip()
    try:
        try:
            principal = platform.tokens.verify(token)  # the platform's own tokens (the tablets'): no lookup, no wait
        except ProviderToken:
            principal = await platform.tokens.authenticate(token)  # the identity provider's: checked with its keys
        if isinstance(principal, DevicePrincipal) and platform.revoked.is_revoked(principal.token_id):
            raise InvalidToken("revoked")
        return principal
    except IdTokenPresented:
        raise Problem(
            401,
            "This bearer token is an OpenID Connect ID token of the identity provider: it says who signed in, and "
            "grants no access. Send the access token the provider issued with it (access_token, not id_token, in "
            "its token endpoint's answer); if the client gets no access token for this API, have it registered "
            "for the audience STAFF_TOKEN_AUDIENCE names.",
            kind="id-token",
            headers=_CHALLENGE,
        ) from None
    except InvalidToken:
        raise Problem(
            401,
            "The bearer token is invalid, expired or revoked; ask for a new one.",
            kind="invalid-token",
            headers=_CHALLENGE,
        ) from None
    except ProviderUnavailable as exc:
        raise Problem(
            503,
            "The hospital's identity provider cannot be reached to check this staff token; send the request again "
            "in a few seconds (the token may well be valid).",
            kind="identity-provider-unavailable",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None


PrincipalDep = Annotated[Principal, Depends(bearer_principal)]


def _device_only(principal: Principal) -> DevicePrincipal:
    if not isinstance(principal, DevicePrincipal):
        raise Problem(403, "This endpoint is for a patient's tablet: use a device token.", kind="wrong-token")
    return principal


@raises(403)
async def require_device(principal: PrincipalDep) -> DevicePrincipal:
    return _device_only(principal)


async def device_principal(request: Request) -> DevicePrincipal:
    """The tablet behind a request, for the high-volume tablet routes.

    Those routes take only the ``Request``: resolving FastAPI dependencies cost more CPU per request than
    the work they did there (measured on submissions and heartbeats).
    """
    return _device_only(await bearer_principal(request, request.state.platform))


DeviceDep = Annotated[DevicePrincipal, Depends(require_device)]


def require_staff(*roles: str) -> Callable[[Principal], Coroutine[Any, Any, StaffPrincipal]]:
    allowed = frozenset(roles)

    @raises(403)
    async def dependency(principal: PrincipalDep) -> StaffPrincipal:
        if not isinstance(principal, StaffPrincipal):
            raise Problem(403, "This endpoint is for staff: use a staff token.", kind="wrong-token")
        if not principal.has_any(allowed):
            raise Problem(
                403,
                f"Your role does not allow this; it needs one of: {', '.join(sorted(allowed))}.",
                kind="missing-role",
            )
        return principal

    return dependency
