"""Bearer tokens: device tokens for loaned tablets, staff tokens with roles.

Tokens are JWTs with OIDC-compatible claims (``iss``, ``aud``, ``sub``, ``exp``, ``iat``, ``jti``). The platform
signs its own with ``AUTH_SECRET`` (HS256): device tokens, stream tokens, and the development staff tokens. In
production staff tokens come from the hospital's identity provider, signed with its private key (RS256, ES256…)
and checked against the keys it publishes (``shared.oidc``); the provider never holds ``AUTH_SECRET``.
A device token names one patient (pseudonymous id) and stops working when the tablet is returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import jwt
import orjson

if TYPE_CHECKING:
    from shared.oidc import IdentityProvider

Role = Literal["nurse", "arc", "partner_patient", "social_worker", "fleet", "admin"]
ROLES: frozenset[str] = frozenset({"nurse", "arc", "partner_patient", "social_worker", "fleet", "admin"})


class InvalidToken(Exception):
    """The token is missing, malformed, expired, revoked or signed by someone else."""


class ProviderToken(InvalidToken):
    """Not signed by the platform (its header names another algorithm than HS256): only the identity provider's
    keys can tell whether it is valid (``TokenService.authenticate``). Invalid to whoever cannot wait for them."""


class IdTokenPresented(InvalidToken):
    """An OpenID Connect ID token of the identity provider, sent where an access token goes: it says who signed in
    to a client, and grants nothing (``shared.oidc.is_id_token``)."""


# A token issued a moment ago on a host whose clock runs a little ahead is still valid here.
CLOCK_SKEW_S = 30
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti")
# OpenID Connect's limit on a subject identifier (Core 1.0, section 2), and ours on a token id: longer, one no longer
# fits an index entry of PostgreSQL's (2,704 bytes), and every audited request of its holder failed.
MAX_ID_CHARS = 255
# The last second a datetime holds (9999-12-31T23:59:59Z): a time claim past it can be neither shown nor stored.
MAX_TIMESTAMP = 253_402_300_799


def segment_json(segment: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidToken("a token segment is not base64url JSON") from None


# A display name longer than this is cut: it is shown on a line of the dashboard, and stored.
MAX_NAME_CHARS = 120


def display_name(claims: dict[str, Any], claim: str = "name") -> str | None:
    """The person's display name at ``claim``, else at ``preferred_username`` (what Keycloak always sends);
    control characters are dropped and blanks collapsed, so that a name shows on one line."""
    for key in (claim, "preferred_username"):
        value = claims.get(key)
        if isinstance(value, str):
            cleaned = " ".join("".join(c for c in value if c.isprintable() or c.isspace()).split())
            if cleaned:
                return cleaned[:MAX_NAME_CHARS]
    return None


def time_claim(claims: dict[str, Any], name: str) -> float:
    """A time claim (seconds since the epoch), within what a datetime holds: /v1/me shows when the session
    ends, and a live stream waits until then."""
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the {name} claim is not a number")
    if not 0 <= value <= MAX_TIMESTAMP:
        raise InvalidToken(f"the {name} claim is out of range")
    return float(value)


def verify_hs256(token: str, key: bytes, *, issuer: str, audience: str, now: float) -> dict[str, Any]:
    """The claims of an HS256 JWT signed with ``key`` for this issuer and audience, valid at ``now``.

    Written here rather than left to PyJWT's ``decode``, which took 76 µs a token against 8 µs here, a tenth of
    the questionnaire's CPU per submission at 1,000/s (a new tablet a request). Only HS256 is accepted, whatever
    the header says, so no algorithm confusion is possible; the signature is compared, in constant time, as the
    exact base64url text it must be, before any part of the token is decoded. PyJWT still issues the tokens,
    and the unit tests check this verifier against it.
    """
    signing_input, _, signature = token.rpartition(".")
    header_segment, dot, payload_segment = signing_input.partition(".")
    if not dot or "." in payload_segment:
        raise InvalidToken("not a compact JWS: it needs three dot-separated segments")
    try:
        signed = signing_input.encode("ascii")
        sent = signature.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidToken("a token is ASCII") from None
    expected = base64.urlsafe_b64encode(hmac.new(key, signed, hashlib.sha256).digest()).rstrip(b"=")
    if not hmac.compare_digest(expected, sent):
        raise InvalidToken("signature verification failed")
    header = segment_json(header_segment)
    if not isinstance(header, dict) or header.get("alg") != "HS256" or "crit" in header:
        raise InvalidToken("the header must name HS256 and no critical extension")
    claims = segment_json(payload_segment)
    if not isinstance(claims, dict):
        raise InvalidToken("the payload is not a JSON object")
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise InvalidToken(f"missing claims: {', '.join(missing)}")
    for name in ("sub", "jti"):  # both are stored, in indexed columns (the audit trail's actor, revocations)
        value = claims[name]
        if not isinstance(value, str) or len(value) > MAX_ID_CHARS or "\x00" in value:
            raise InvalidToken(f"{name} must be a string of at most {MAX_ID_CHARS} characters, without NUL")
    if time_claim(claims, "exp") <= now:
        raise InvalidToken("expired")
    if time_claim(claims, "iat") > now + CLOCK_SKEW_S or (
        "nbf" in claims and time_claim(claims, "nbf") > now + CLOCK_SKEW_S
    ):
        raise InvalidToken("not yet valid")
    if claims.get("iss") != issuer:
        raise InvalidToken("issued by someone else")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise InvalidToken("meant for another audience")
    return claims


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
    # When the staff member's sign-in ends (the staff token's expiry): what a live stream opened with it, or
    # with a stream token it obtained, may last.
    session_ends_at: int | None = None
    # How colleagues see this person ("Claire Martin"): from the token (STAFF_TOKEN_NAME_CLAIM). Staff names are
    # not patient data, but they stay out of events and logs all the same (events carry ids).
    name: str | None = None

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)

    def session_seconds_left(self) -> int | None:
        """Seconds until the sign-in ends, by the real time and not by a service's clock: it counts down to the
        expiry the token checks enforce by the real time, so that a page signs out when its token is refused,
        neither before nor after."""
        return None if self.session_ends_at is None else max(0, self.session_ends_at - int(time.time()))


Principal = DevicePrincipal | StaffPrincipal


# The header PyJWT writes for the platform's own tokens: a token that starts with it is routed to the HS256 verifier
# without decoding its header.
_OWN_HEADER = base64.urlsafe_b64encode(orjson.dumps({"alg": "HS256", "typ": "JWT"})).rstrip(b"=").decode() + "."


def _algorithm(token: str) -> object:
    header = segment_json(token.partition(".")[0])
    return header.get("alg") if isinstance(header, dict) else None


class TokenService:
    """Issues the platform's tokens and verifies every token presented.

    ``provider``: the hospital's identity provider, whose tokens (any algorithm but HS256) are staff tokens.
    ``dev_staff_tokens``: whether staff tokens signed with the platform's secret are accepted (never in
    production: ``ServiceSettings.dev_staff_tokens``).
    """

    def __init__(
        self,
        secret: str,
        issuer: str,
        audience: str,
        *,
        cache_size: int = 20_000,
        provider: IdentityProvider | None = None,
        dev_staff_tokens: bool = True,
    ) -> None:
        self._secret = secret
        self._key = secret.encode()
        self._issuer = issuer
        self._audience = audience
        self._provider = provider
        self._dev_staff_tokens = dev_staff_tokens
        # A tablet sends the same token with every request: its signature is checked once, its expiry
        # every time. (Revocation is checked by the caller, never cached here.) The cache must hold more
        # tokens than the fleet has tablets, or tablets in turn evict each other (~0.7 KB a token).
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()
        self._cache_size = cache_size

    @property
    def provider(self) -> IdentityProvider | None:
        """The hospital's identity provider, when one is configured."""
        return self._provider

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
        issued_at: int | None = None,
    ) -> str:
        """A tablet's token. ``token_id``, ``expires_at`` and ``issued_at`` re-issue the token of an existing loan
        (same identity, same revocation; with all three, the very same token, so the same enrolment link and QR
        code), so that a stored response never needs to hold the token itself."""
        claims: dict[str, Any] = {"sub": f"device:{device_id}", "typ": "device", "patient_id": str(patient_id)}
        if token_id is not None:
            claims["jti"] = token_id
        if expires_at is not None:
            claims["exp"] = expires_at
        if issued_at is not None:
            claims["iat"] = issued_at
        return self._sign(claims, ttl_s)

    def issue_staff_token(
        self, staff_id: str, roles: set[str], ttl_s: int = 12 * 3600, *, name: str | None = None
    ) -> str:
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown roles: {sorted(unknown)}")
        claims: dict[str, Any] = {"sub": staff_id, "typ": "staff", "roles": sorted(roles)}
        if name:
            claims["name"] = name
        return self._sign(claims, ttl_s)

    def issue_stream_token(self, staff: StaffPrincipal, ttl_s: int = 60) -> str:
        """A short-lived token good only to open a live stream, once (the alerting service records its use): a
        browser's EventSource cannot send an Authorization header, and the long-lived staff token must not travel in
        a URL (logs, history)."""
        claims: dict[str, Any] = {"sub": staff.staff_id, "typ": "stream", "roles": sorted(staff.roles)}
        if staff.session_ends_at is not None:
            claims["session_exp"] = staff.session_ends_at
        return self._sign(claims, ttl_s)

    def verify_stream(self, token: str) -> StaffPrincipal:
        claims = self._claims(token)
        if claims.get("typ") != "stream":
            raise InvalidToken("not a stream token")
        roles = claims.get("roles")
        if not isinstance(roles, list):
            raise InvalidToken("stream token without roles")
        session_exp = claims.get("session_exp")
        ends = int(claims["exp"])
        if isinstance(session_exp, int) and not isinstance(session_exp, bool) and session_exp <= MAX_TIMESTAMP:
            ends = session_exp
        return StaffPrincipal(str(claims["sub"]), frozenset(map(str, roles)) & ROLES, str(claims["jti"]), ends)

    def verify(self, token: str) -> Principal:
        """The caller of a token the platform signed, or of a provider's token verified before (and not expired).

        Synchronous and without any lookup: the tablets' path. Raises ``ProviderToken`` for a token of the
        identity provider not seen yet: ``authenticate`` checks it."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        self._remember(token, principal, expires)
        return principal

    async def authenticate(self, token: str) -> Principal:
        """``verify``, and a token of the identity provider checked against its keys (fetched when unknown).

        Raises ``InvalidToken``, or ``shared.oidc.ProviderUnavailable`` when the provider's keys cannot be had."""
        try:
            return self.verify(token)
        except ProviderToken:
            assert self._provider is not None
            staff, expires = await self._provider.verify(token)
            self._remember(token, staff, expires)
            return staff

    def _remember(self, token: str, principal: Principal, expires: int) -> None:
        self._verified[token] = (principal, expires)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    def _claims(self, token: str) -> dict[str, Any]:
        return verify_hs256(token, self._key, issuer=self._issuer, audience=self._audience, now=time.time())

    def _decode(self, token: str) -> tuple[Principal, int]:
        if self._provider is not None and not token.startswith(_OWN_HEADER) and _algorithm(token) != "HS256":
            raise ProviderToken("not signed by the platform: the identity provider's keys are needed")
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
            if not self._dev_staff_tokens:
                raise InvalidToken("staff tokens come from the hospital's identity provider here")
            roles = claims.get("roles")
            if not isinstance(roles, list):
                raise InvalidToken("staff token without roles")
            expires = int(claims["exp"])
            staff = StaffPrincipal(
                str(claims["sub"]),
                frozenset(map(str, roles)) & ROLES,
                str(claims["jti"]),
                expires,
                name=display_name(claims),
            )
            return staff, expires
        raise InvalidToken("unknown token type")
