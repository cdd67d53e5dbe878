"""Staff tokens of the hospital's identity provider (OpenID Connect): Keycloak, Entra ID, …

The provider signs with its private key (RS256, ES256…; never HS*, never ``none``) and publishes the public keys
at its JWKS URL, named in its discovery document (``<issuer>/.well-known/openid-configuration``) or set
outright. A token is a staff member's when its signature checks with the key its header names (``kid``) and it
holds ``exp``, ``iss`` (this issuer), ``aud`` (holding this audience) and ``sub`` (the audit trail's actor); its
roles are read at a configurable claim (``roles``, ``groups``, Keycloak's ``realm_access.roles``…), and those
that are not the platform's are ignored.

Keys are fetched when first needed, then again when a token names an unknown ``kid`` (the provider rotated its
keys) or when they are older than ``max_age_s`` (a withdrawn key stops being trusted), at most once every
``refresh_interval_s``, with httpx (never blocking the event loop) and within ``timeout_s``. A provider out of
reach is ``ProviderUnavailable`` (a 503 for that token, never a 401: the token may well be valid); the
platform's own tokens, the tablets' among them, never wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import orjson

from shared.auth import (
    CLOCK_SKEW_S,
    MAX_ID_CHARS,
    ROLES,
    IdTokenPresented,
    InvalidToken,
    StaffPrincipal,
    TokenService,
    display_name,
    segment_json,
    time_claim,
)
from shared.settings import STAFF_TOKEN_ALGORITHMS, ServiceSettings

log = logging.getLogger(__name__)

# An unknown kid fetches the keys again at most this often: a stream of forged kids cannot flood the provider.
REFRESH_INTERVAL_S = 5.0
# Keys older than this are fetched again at the next token that needs them: a key the provider withdrew stops
# being trusted within this time (a provider out of reach then leaves the keys in use as they were).
KEYS_MAX_AGE_S = 900.0
# A discovery document or a key set is a few kilobytes.
MAX_DOCUMENT_BYTES = 512 * 1024
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


# The header types of a JWT access token (RFC 9068, section 2.1): a token that says so is one, whatever it carries.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Claims only an ID token carries (OpenID Connect Core 1.0, sections 3.1.3.6, 3.3.2.11; FAPI's s_hash): the hashes
# binding it to the access token, code or state it came with.
_ID_TOKEN_HASHES = ("at_hash", "c_hash", "s_hash")


def is_id_token(header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """Whether a token of the provider is certainly an ID token, which says who signed in and grants nothing.

    Its audience alone cannot tell: it is the client's id, and where the API's audience is that id too (Entra ID's
    v2 tokens for an API registered as the same application), an ID token would pass for an access token. Nor can
    the header's ``typ`` alone: most providers (Keycloak, Entra ID) send ``JWT`` on both. What can: Keycloak's own
    ``typ`` claim (``ID``; ``Bearer`` on its access tokens), the hashes only ID tokens hold, and a ``nonce`` without
    any scope (Keycloak before 25 copied the sign-in's nonce into its access tokens, which always carry ``scope``,
    as Entra ID's carry ``scp``)."""
    typ = header.get("typ")
    if isinstance(typ, str) and typ.lower() in _ACCESS_TOKEN_TYPES:
        return False
    if claims.get("typ") == "ID" or any(name in claims for name in _ID_TOKEN_HASHES):
        return True
    return "nonce" in claims and "scope" not in claims and "scp" not in claims


class ProviderUnavailable(Exception):
    """The identity provider's keys cannot be fetched just now: the token can be neither accepted nor refused."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the identity provider's keys cannot be fetched; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SignInEndpoints:
    """Where a browser signs a staff member in (the provider's discovery document): it asks for a code at the
    authorization endpoint, exchanges it at the token endpoint, and signs out at the end-session one, if any."""

    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


class IdentityProvider:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        roles_claim: str = "roles",
        name_claim: str = "name",
        algorithms: Sequence[str] = ("RS256", "ES256"),
        timeout_s: float = 3.0,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
        max_age_s: float = KEYS_MAX_AGE_S,
        https_only: bool = False,
    ) -> None:
        refused = [a for a in algorithms if a not in STAFF_TOKEN_ALGORITHMS]
        if refused:  # none, HS*: ServiceSettings refuses them first
            raise ValueError(f"not public-key algorithms: {refused}")
        self.issuer = issuer
        self.audience = audience
        self._jwks_url = jwks_url
        self._roles_claim = roles_claim
        self._name_claim = name_claim
        self._algorithms = frozenset(algorithms)
        self._timeout_s = timeout_s
        self._refresh_interval_s = refresh_interval_s
        self._max_age_s = max_age_s
        self._https_only = https_only
        self._keys: list[dict[str, Any]] | None = None
        self._prepared: dict[tuple[str | None, str], Any] = {}
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._failed = False
        self._lock = asyncio.Lock()
        self._jws = jwt.PyJWS(algorithms=sorted(self._algorithms))
        self._endpoints: SignInEndpoints | None = None
        self._endpoints_at = -math.inf
        self._endpoints_tried_at = -math.inf
        self._endpoints_lock = asyncio.Lock()

    async def verify(self, token: str) -> tuple[StaffPrincipal, int]:
        """The staff member a token of the provider names, and when the token expires."""
        header = segment_json(token.partition(".")[0])
        if not isinstance(header, dict):
            raise InvalidToken("the header is not a JSON object")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken(f"signed with {alg!r}: the identity provider's tokens are {sorted(self._algorithms)}")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the kid header is not a string")
        if "crit" in header:
            raise InvalidToken("a critical header extension is not understood here")
        key = await self._key(kid, alg)
        try:
            payload = self._jws.decode_complete(token, key=key, algorithms=[alg])["payload"]
            claims = orjson.loads(payload)
        except (jwt.PyJWTError, ValueError):
            raise InvalidToken("signature verification failed") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the payload is not a JSON object")
        if claims.get("iss") == self.issuer and is_id_token(header, claims):
            raise IdTokenPresented("an ID token, not an access token")
        return self._principal(token, claims, time.time())

    def _principal(self, token: str, claims: dict[str, Any], now: float) -> tuple[StaffPrincipal, int]:
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise InvalidToken(f"missing claims: {', '.join(missing)}")
        if claims["iss"] != self.issuer:
            raise InvalidToken("issued by someone else")
        aud = claims["aud"]
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("meant for another audience")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > MAX_ID_CHARS or "\x00" in sub:
            raise InvalidToken(f"sub must be a string of 1 to {MAX_ID_CHARS} characters, without NUL")
        expires = time_claim(claims, "exp")
        if expires <= now:
            raise InvalidToken("expired")
        for name in ("iat", "nbf"):
            if name in claims and time_claim(claims, name) > now + CLOCK_SKEW_S:
                raise InvalidToken("not yet valid")
        jti = claims.get("jti")
        if isinstance(jti, str) and 0 < len(jti) <= MAX_ID_CHARS and "\x00" not in jti:
            token_id = jti
        else:  # jti is optional in OpenID Connect
            token_id = hashlib.sha256(token.encode()).hexdigest()[:32]
        staff = StaffPrincipal(
            sub, self.roles(claims), token_id, int(expires), name=display_name(claims, self._name_claim)
        )
        return staff, int(expires)

    def roles(self, claims: dict[str, Any]) -> frozenset[str]:
        """The platform roles a token grants: a list (or a space-separated string) at the roles claim, a
        top-level claim of that name (``https://…/roles``) or else a dotted path; others are ignored."""
        value: Any = claims
        if self._roles_claim in claims:
            value = claims[self._roles_claim]
        else:
            for part in self._roles_claim.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            names = value.split()
        elif isinstance(value, list):
            names = [name for name in value if isinstance(name, str)]
        else:
            names = []
        return frozenset(names) & ROLES

    async def _key(self, kid: str | None, alg: str) -> Any:
        fetched = False
        if self._keys is None or time.monotonic() - self._fetched_at > self._max_age_s:
            await self._refresh()
            fetched = True
        key = self._find(kid, alg)
        if key is None and not fetched:  # a key the provider has published since?
            await self._refresh()
            key = self._find(kid, alg)
        if key is None:
            if self._failed:  # perhaps a new key, which cannot be fetched: the token may be valid
                raise ProviderUnavailable(self._retry_after())
            raise InvalidToken("signed with a key the identity provider does not publish")
        return key

    def _find(self, kid: str | None, alg: str) -> Any:
        if self._keys is None:
            return None
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        kty = _KEY_TYPES.get(alg[:2])
        candidates = [
            jwk
            for jwk in self._keys
            if (kid is None or jwk.get("kid") == kid)
            and jwk.get("kty") == kty
            and jwk.get("alg", alg) == alg
            and jwk.get("use", "sig") == "sig"
        ]
        if len(candidates) != 1:  # none, or a token without kid and several keys it could be checked with
            return None
        try:
            prepared = jwt.get_algorithm_by_name(alg).from_jwk(candidates[0])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None  # a key of another curve, or malformed
        self._prepared[(kid, alg)] = prepared
        return prepared

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._refresh_interval_s - (time.monotonic() - self._attempted_at)))

    async def _refresh(self) -> None:
        """Fetch the keys, unless a fetch was tried less than ``refresh_interval_s`` ago (by another request
        meanwhile, say). A failed fetch keeps the keys there were; with none, ``ProviderUnavailable``."""
        async with self._lock:
            if time.monotonic() - self._attempted_at >= self._refresh_interval_s:
                self._attempted_at = time.monotonic()
                try:
                    async with asyncio.timeout(self._timeout_s):
                        keys = await self._fetch()
                except (httpx.HTTPError, ValueError, TimeoutError) as exc:
                    self._failed = True
                    log.warning("identity provider: its keys could not be fetched (%s)", type(exc).__name__)
                else:
                    self._keys, self._prepared, self._failed = keys, {}, False
                    self._fetched_at = time.monotonic()
            if self._keys is None:
                raise ProviderUnavailable(self._retry_after())

    async def _fetch(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=self._timeout_s, headers={"Accept": "application/json"}) as client:
            url = self._jwks_url or await self._discover(client)
            document = await self._document(client, url)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ValueError(f"{url} is not a JWK set")
        return [key for key in keys if isinstance(key, dict)]

    async def _discover(self, client: httpx.AsyncClient) -> str:
        document = await self._discovery(client)
        url = document.get("jwks_uri")
        if not self._usable(url):
            raise ValueError("the discovery document names no usable jwks_uri")
        assert isinstance(url, str)
        self._jwks_url = url
        return url

    async def _discovery(self, client: httpx.AsyncClient) -> dict[str, Any]:
        document = await self._document(client, self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document is not this issuer's")
        return document

    def _usable(self, url: object) -> bool:
        schemes = ("https",) if self._https_only else ("http", "https")
        if not isinstance(url, str):
            return False
        parts = urlsplit(url)
        # No user name or password in it: a browser refuses to fetch such an address, and a page's policy cannot
        # name it.
        return parts.scheme in schemes and bool(parts.hostname) and not parts.fragment and "@" not in parts.netloc

    async def sign_in_endpoints(self) -> SignInEndpoints | None:
        """The provider's sign-in endpoints from its discovery document, fetched when first asked for and again
        once older than ``max_age_s`` (at most once every ``refresh_interval_s`` after a failure); None while
        they cannot be had (the provider is out of reach, or its document names no usable endpoints)."""
        if self._endpoints is not None and time.monotonic() - self._endpoints_at <= self._max_age_s:
            return self._endpoints
        # One fetch at a time: the requests that come meanwhile (the page, its config) wait for its outcome rather
        # than answer "unavailable" while it is under way.
        async with self._endpoints_lock:
            now = time.monotonic()
            stale = self._endpoints is None or now - self._endpoints_at > self._max_age_s
            if stale and now - self._endpoints_tried_at >= self._refresh_interval_s:
                self._endpoints_tried_at = now
                await self._fetch_endpoints()
        return self._endpoints

    async def _fetch_endpoints(self) -> None:
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                httpx.AsyncClient(timeout=self._timeout_s, headers={"Accept": "application/json"}) as client,
            ):
                document = await self._discovery(client)
            authorize, token, end_session = (
                document.get(name) for name in ("authorization_endpoint", "token_endpoint", "end_session_endpoint")
            )
            if not (isinstance(authorize, str) and isinstance(token, str)) or not (
                self._usable(authorize) and self._usable(token)
            ):
                raise ValueError("the discovery document names no usable authorization or token endpoint")
            usable_end = isinstance(end_session, str) and self._usable(end_session)
            self._endpoints = SignInEndpoints(authorize, token, end_session if usable_end else None)
            self._endpoints_at = time.monotonic()
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:  # the endpoints there were, if any, are kept
            log.warning("identity provider: its sign-in endpoints could not be fetched (%s)", type(exc).__name__)

    @staticmethod
    async def _document(client: httpx.AsyncClient, url: str) -> Any:
        response = await client.get(url)
        if response.status_code != 200:
            raise ValueError(f"{url} answered {response.status_code}")
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        return orjson.loads(response.content)


def token_service(settings: ServiceSettings) -> TokenService:
    """The process's tokens: the platform's own, and the identity provider's when one is configured."""
    provider = None
    if settings.staff_token_issuer and settings.staff_token_audience:
        provider = IdentityProvider(
            issuer=settings.staff_token_issuer,
            audience=settings.staff_token_audience,
            jwks_url=settings.staff_token_jwks_url,
            roles_claim=settings.staff_token_roles_claim,
            name_claim=settings.staff_token_name_claim,
            algorithms=settings.staff_token_algorithm_list,
            timeout_s=settings.staff_token_fetch_timeout_s,
            https_only=settings.environment == "production",
        )
    return TokenService(
        settings.auth_secret,
        settings.auth_issuer,
        settings.auth_audience,
        provider=provider,
        dev_staff_tokens=settings.dev_staff_tokens,
    )
