"""Bearer tokens: device tokens for loaned tablets, staff tokens with roles.

Tokens are JWTs with OIDC-compatible claims (``iss``, ``aud``, ``sub``, ``exp``, ``iat``, ``jti``), signed
locally (HS256) in development; a hospital identity provider can issue the staff tokens in production.
A device token names one patient (pseudonymous id) and stops working when the tablet is returned.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import jwt

Role = Literal["nurse", "arc", "partner_patient", "social_worker", "fleet", "admin"]
ROLES: frozenset[str] = frozenset({"nurse", "arc", "partner_patient", "social_worker", "fleet", "admin"})


class InvalidToken(Exception):
    """The token is missing, malformed, expired, revoked or signed by someone else."""


@dataclass(frozen=True)
class DevicePrincipal:
    patient_id: UUID
    device_id: str
    token_id: str


@dataclass(frozen=True)
class StaffPrincipal:
    staff_id: str
    roles: frozenset[str]
    token_id: str

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


Principal = DevicePrincipal | StaffPrincipal


class TokenService:
    def __init__(self, secret: str, issuer: str, audience: str, *, cache_size: int = 20_000) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        # A tablet sends the same token with every request: its signature is checked once, its expiry
        # every time. (Revocation is checked by the caller, never cached here.) The cache must hold more
        # tokens than the fleet has tablets, or tablets in turn evict each other (~0.7 KB a token).
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()
        self._cache_size = cache_size

    def _sign(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def issue_device_token(
        self,
        patient_id: UUID,
        device_id: str,
        ttl_s: int = 400 * 86_400,
        *,
        token_id: str | None = None,
        expires_at: int | None = None,
    ) -> str:
        """A tablet's token. ``token_id`` and ``expires_at`` re-issue the token of an existing loan (same
        identity, same revocation), so that a stored response never needs to hold the token itself."""
        claims: dict[str, Any] = {"sub": f"device:{device_id}", "typ": "device", "patient_id": str(patient_id)}
        if token_id is not None:
            claims["jti"] = token_id
        if expires_at is not None:
            claims["exp"] = expires_at
        return self._sign(claims, ttl_s)

    def issue_staff_token(self, staff_id: str, roles: set[str], ttl_s: int = 12 * 3600) -> str:
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown roles: {sorted(unknown)}")
        return self._sign({"sub": staff_id, "typ": "staff", "roles": sorted(roles)}, ttl_s)

    def issue_stream_token(self, staff: StaffPrincipal, ttl_s: int = 60) -> str:
        """A short-lived token good only to open a live stream: a browser's EventSource cannot send an
        Authorization header, and the long-lived staff token must not travel in a URL (logs, history)."""
        return self._sign({"sub": staff.staff_id, "typ": "stream", "roles": sorted(staff.roles)}, ttl_s)

    def verify_stream(self, token: str) -> StaffPrincipal:
        claims = self._claims(token)
        if claims.get("typ") != "stream":
            raise InvalidToken("not a stream token")
        roles = claims.get("roles")
        if not isinstance(roles, list):
            raise InvalidToken("stream token without roles")
        return StaffPrincipal(str(claims["sub"]), frozenset(map(str, roles)) & ROLES, str(claims["jti"]))

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return claims

    def _decode(self, token: str) -> tuple[Principal, int]:
        claims = self._claims(token)
        kind = claims.get("typ")
        if kind == "device":
            try:
                patient = UUID(str(claims["patient_id"]))
            except (KeyError, ValueError):
                raise InvalidToken("device token without a valid patient_id") from None
            device = DevicePrincipal(patient, str(claims["sub"]).removeprefix("device:"), str(claims["jti"]))
            return device, int(claims["exp"])
        if kind == "staff":
            roles = claims.get("roles")
            if not isinstance(roles, list):
                raise InvalidToken("staff token without roles")
            staff = StaffPrincipal(str(claims["sub"]), frozenset(map(str, roles)) & ROLES, str(claims["jti"]))
            return staff, int(claims["exp"])
        raise InvalidToken("unknown token type")
