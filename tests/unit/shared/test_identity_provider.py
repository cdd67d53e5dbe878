"""Staff tokens from the hospital's identity provider (OpenID Connect): signed with its keys (RS256, ES256…),
which it publishes at a JWKS URL. The keys here are made by the test and served by a real HTTP server on
loopback; nothing of the verification is mocked."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Request

from shared.auth import DevicePrincipal, InvalidToken, StaffPrincipal, TokenService
from shared.http.problems import install_problem_handlers
from shared.http.security import PrincipalDep, require_staff
from shared.oidc import IdentityProvider, ProviderUnavailable, token_service
from shared.revocation import RevocationList
from shared.settings import DEV_AUTH_SECRET, ServiceSettings
from shared.testing.oidc import DISCOVERY_PATH, JWKS_PATH, FakeIdentityProvider, SigningKey

AUDIENCE = "oncofollow-api"


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-1")


@pytest.fixture
def idp(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[FakeIdentityProvider]:
    with FakeIdentityProvider() as provider:
        provider.publish(rsa_key.jwk, ec_key.jwk)
        yield provider


def _claims(idp: FakeIdentityProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "aud": ["account", AUDIENCE],
        "sub": "f3c1d7e2-5b7a-4c1e-9f0e-1a2b3c4d5e6f",
        "exp": now + 300,
        "iat": now,
        "realm_access": {"roles": ["default-roles-ward", "nurse", "offline_access"]},
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _provider(idp: FakeIdentityProvider, **options: Any) -> IdentityProvider:
    settings: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "jwks_url": idp.jwks_url,
        "roles_claim": "realm_access.roles",
        "algorithms": ("RS256", "ES256"),
        # Generous: a loaded test machine once took over a second to answer a key set (the time-out's own test sets
        # a short one); a provider out of reach refuses at once.
        "timeout_s": 5.0,
        "refresh_interval_s": 0.0,
        **options,
    }
    return IdentityProvider(**settings)


def _tokens(provider: IdentityProvider | None, *, dev_staff_tokens: bool = True) -> TokenService:
    return TokenService(
        DEV_AUTH_SECRET, "oncofollow-dev", "oncofollow", provider=provider, dev_staff_tokens=dev_staff_tokens
    )


async def _verify(tokens: TokenService, token: str) -> Any:
    """As the auth dependency does: the platform's own tokens at once, the provider's with its keys."""
    return await tokens.authenticate(token)


class TestProviderTokens:
    async def test_a_token_of_the_provider_is_a_staff_member_with_the_roles_of_a_nested_claim(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp))
        for key in (rsa_key, ec_key):
            claims = _claims(idp, realm_access={"roles": ["nurse", "admin", "default-roles-ward"]})
            principal = await _verify(tokens, key.sign(claims))
            assert isinstance(principal, StaffPrincipal)
            assert principal.staff_id == claims["sub"]  # the audit trail's actor
            assert principal.roles == {"nurse", "admin"}  # the provider's other roles are not the platform's
            assert principal.session_ends_at == claims["exp"]

    async def test_the_verified_token_is_then_known_without_the_provider(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp))
        token = rsa_key.sign(_claims(idp))
        first = await _verify(tokens, token)
        idp.documents.clear()  # the provider is gone: the token is in the cache until it expires
        assert tokens.verify(token) == first

    async def test_the_keys_are_fetched_once_for_many_tokens(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp, refresh_interval_s=5.0))
        for staff in range(5):
            await _verify(tokens, rsa_key.sign(_claims(idp, sub=f"staff-{staff}")))
        assert len(idp.requests) == 1

    async def test_roles_at_the_top_level_and_as_a_string(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        tokens = _tokens(_provider(idp, roles_claim="roles"))
        listed = await _verify(tokens, rsa_key.sign(_claims(idp, roles=["arc", "fleet"])))
        spaced = await _verify(tokens, rsa_key.sign(_claims(idp, roles="social_worker partner_patient")))
        assert listed.roles == {"arc", "fleet"} and spaced.roles == {"social_worker", "partner_patient"}

    async def test_a_claim_whose_name_holds_dots(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        claim = "https://oncofollow.example/roles"  # namespaced claims, as Auth0 wants them
        tokens = _tokens(_provider(idp, roles_claim=claim))
        principal = await _verify(tokens, rsa_key.sign(_claims(idp, **{claim: ["nurse"]})))
        assert principal.roles == {"nurse"}

    async def test_a_token_without_a_platform_role_has_none(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp))
        for roles in ({"roles": ["surgeon"]}, {}, {"roles": 3}):
            principal = await _verify(tokens, rsa_key.sign(_claims(idp, realm_access=roles or None)))
            assert principal.roles == frozenset()

    @pytest.mark.parametrize(
        "claims",
        [
            {"iss": "https://elsewhere.example/realms/ward"},
            {"aud": "account"},
            {"aud": None},
            {"exp": int(time.time()) - 5},
            {"exp": None},
            {"sub": None},
            {"iss": None},
            {"sub": "n" * 256},
            {"nbf": int(time.time()) + 3600},
            {"exp": 10**12},
        ],
        # Named, not repr'd: an id holding the time differs between the test workers that collect it.
        ids=[
            "iss-other",
            "aud-other",
            "aud-null",
            "exp-past",
            "exp-null",
            "sub-null",
            "iss-null",
            "sub-too-long",
            "nbf-future",
            "exp-far-future",
        ],
    )
    async def test_claims_that_are_refused(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey, claims: dict[str, Any]
    ) -> None:
        tokens = _tokens(_provider(idp))
        with pytest.raises(InvalidToken):
            await _verify(tokens, rsa_key.sign(_claims(idp, **claims)))

    async def test_a_key_the_provider_does_not_publish_is_refused_after_one_refresh(
        self, idp: FakeIdentityProvider
    ) -> None:
        tokens = _tokens(_provider(idp))
        stranger = SigningKey("rsa-9", "RS256", _RSA_OTHER)
        with pytest.raises(InvalidToken, match="key"):
            await _verify(tokens, stranger.sign(_claims(idp)))
        assert len(idp.requests) == 1
        with pytest.raises(InvalidToken, match="key"):
            await _verify(tokens, stranger.sign(_claims(idp, sub="other")))
        assert len(idp.requests) == 2  # the keys were fetched again (the refresh interval is 0 here): still unknown

    async def test_an_unknown_key_fetches_at_most_once_per_interval(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp, refresh_interval_s=60.0))
        await _verify(tokens, rsa_key.sign(_claims(idp)))
        for attempt in range(5):
            with pytest.raises(InvalidToken):
                await _verify(tokens, SigningKey(f"forged-{attempt}", "RS256", _RSA_OTHER).sign(_claims(idp)))
        assert len(idp.requests) == 1

    async def test_a_signature_by_another_key_under_a_published_kid(self, idp: FakeIdentityProvider) -> None:
        tokens = _tokens(_provider(idp))
        with pytest.raises(InvalidToken):
            await _verify(tokens, SigningKey("rsa-1", "RS256", _RSA_OTHER).sign(_claims(idp)))

    async def test_a_key_rotation_is_followed(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        tokens = _tokens(_provider(idp))
        await _verify(tokens, rsa_key.sign(_claims(idp)))
        rotated = SigningKey("rsa-2", "RS256", _RSA_OTHER)
        idp.publish(rotated.jwk)  # the provider's new key; the old one withdrawn
        principal = await _verify(tokens, rotated.sign(_claims(idp, sub="after-rotation")))
        assert principal.staff_id == "after-rotation"

    async def test_a_provider_gone_after_its_keys_were_fetched(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp))
        await _verify(tokens, rsa_key.sign(_claims(idp)))
        idp.documents.clear()  # answers 404 from now on
        # A key it may have published since cannot be checked: neither accepted nor refused.
        with pytest.raises(ProviderUnavailable):
            await _verify(tokens, SigningKey("rsa-2", "RS256", _RSA_OTHER).sign(_claims(idp)))
        # The keys already fetched keep serving.
        assert (await _verify(tokens, rsa_key.sign(_claims(idp, sub="another-nurse")))).staff_id == "another-nurse"

    async def test_a_key_the_provider_withdrew_stops_being_trusted(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp, max_age_s=0.2))
        await _verify(tokens, rsa_key.sign(_claims(idp)))
        idp.publish(ec_key.jwk)  # the RSA key withdrawn
        await asyncio.sleep(0.3)
        with pytest.raises(InvalidToken, match="does not publish"):
            await _verify(tokens, rsa_key.sign(_claims(idp, sub="later")))

    async def test_an_hs256_token_claiming_the_provider_s_issuer(self, idp: FakeIdentityProvider) -> None:
        tokens = _tokens(_provider(idp))
        for secret in (DEV_AUTH_SECRET, "the-provider-s-client-secret-0123456789"):
            forged = jwt.encode({**_claims(idp), "typ": "staff", "jti": "j", "roles": ["admin"]}, secret, "HS256")
            with pytest.raises(InvalidToken):
                await _verify(tokens, forged)
        assert idp.requests == []  # never the provider's to judge

    @pytest.mark.parametrize("alg", ["none", "HS384", "HS512", "RS512", "PS256"])
    async def test_algorithms_not_allowed(self, idp: FakeIdentityProvider, rsa_key: SigningKey, alg: str) -> None:
        tokens = _tokens(_provider(idp))
        header = _b64json({"alg": alg, "kid": rsa_key.kid, "typ": "JWT"})
        payload = _b64json(_claims(idp))
        signing_input = f"{header}.{payload}"
        if alg.startswith(("RS", "PS")):
            signature = _b64(jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), rsa_key.private))
        elif alg == "none":
            signature = ""
        else:
            signature = _b64(jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), b"secret"))
        with pytest.raises(InvalidToken):
            await _verify(tokens, f"{signing_input}.{signature}")

    async def test_a_key_of_another_type_than_the_algorithm(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp))
        # An ES256 signature presented under the RSA key's kid, and an RS256 one under the EC key's.
        for mislabelled in (ec_key.sign(_claims(idp), kid="rsa-1"), rsa_key.sign(_claims(idp), kid="ec-1")):
            with pytest.raises(InvalidToken, match="does not publish"):
                await _verify(tokens, mislabelled)

    async def test_the_provider_unreachable_is_not_the_token_s_fault(self, rsa_key: SigningKey) -> None:
        gone = FakeIdentityProvider()  # nothing listens there
        tokens = _tokens(_provider(gone))
        with pytest.raises(ProviderUnavailable):
            await _verify(tokens, rsa_key.sign(_claims(gone)))
        # The tablets' tokens are the platform's own: they never wait for the provider.
        device = tokens.issue_device_token(uuid.uuid4(), "tab-1")
        assert isinstance(tokens.verify(device), DevicePrincipal)

    async def test_a_provider_too_slow_to_answer(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        idp.delay_s = 2.0
        tokens = _tokens(_provider(idp, timeout_s=0.3))
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await _verify(tokens, rsa_key.sign(_claims(idp)))
        assert time.monotonic() - started < 1.5

    async def test_an_answer_that_is_no_key_set(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        for status, body in ((500, {"error": "down"}), (200, ["not", "a", "set"]), (200, {"keys": "x"})):
            idp.documents[JWKS_PATH] = (status, body)
            with pytest.raises(ProviderUnavailable):
                await _verify(_tokens(_provider(idp)), rsa_key.sign(_claims(idp)))

    async def test_keys_found_through_the_discovery_document(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp, jwks_url=None))
        principal = await _verify(tokens, rsa_key.sign(_claims(idp)))
        assert principal.roles == {"nurse"}
        assert idp.requests == [
            "/realms/ward/.well-known/openid-configuration",
            "/realms/ward/protocol/openid-connect/certs",
        ]

    async def test_a_discovery_document_of_another_issuer_is_not_followed(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        idp.documents[DISCOVERY_PATH] = (
            200,
            {"issuer": "https://elsewhere.example", "jwks_uri": idp.jwks_url},
        )
        with pytest.raises(ProviderUnavailable):
            await _verify(_tokens(_provider(idp, jwks_url=None)), rsa_key.sign(_claims(idp)))


class TestDevelopmentAndProductionStaffTokens:
    async def test_development_staff_tokens_beside_the_provider(self, idp: FakeIdentityProvider) -> None:
        tokens = _tokens(_provider(idp))
        principal = tokens.verify(tokens.issue_staff_token("dev-nurse", {"nurse"}))
        assert isinstance(principal, StaffPrincipal) and principal.roles == {"nurse"}
        assert idp.requests == []

    async def test_production_refuses_development_staff_tokens_not_the_platform_s_others(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        tokens = _tokens(_provider(idp), dev_staff_tokens=False)
        with pytest.raises(InvalidToken, match="identity provider"):
            tokens.verify(tokens.issue_staff_token("dev-nurse", {"nurse"}))
        nurse = await _verify(tokens, rsa_key.sign(_claims(idp)))
        assert isinstance(nurse, StaffPrincipal)
        assert tokens.verify_stream(tokens.issue_stream_token(nurse)).staff_id == nurse.staff_id
        assert isinstance(tokens.verify(tokens.issue_device_token(uuid.uuid4(), "tab-1")), DevicePrincipal)

    def test_without_a_provider_only_the_platform_s_tokens(self, rsa_key: SigningKey) -> None:
        tokens = _tokens(None)
        with pytest.raises(InvalidToken):
            tokens.verify(rsa_key.sign({"sub": "x", "exp": int(time.time()) + 60, "iss": "i", "aud": "a"}))


class TestFromSettings:
    async def test_the_settings_make_the_provider(self, idp: FakeIdentityProvider, ec_key: SigningKey) -> None:
        settings = ServiceSettings(
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE=AUDIENCE,
            STAFF_TOKEN_JWKS_URL=idp.jwks_url,
            STAFF_TOKEN_ROLES_CLAIM="realm_access.roles",
        )
        tokens = token_service(settings)
        assert (await _verify(tokens, ec_key.sign(_claims(idp)))).roles == {"nurse"}
        arc = tokens.verify(tokens.issue_staff_token("dev-arc", {"arc"}))
        assert isinstance(arc, StaffPrincipal)
        assert arc.roles == {"arc"}

    async def test_without_provider_settings_none(self, idp: FakeIdentityProvider, ec_key: SigningKey) -> None:
        tokens = token_service(ServiceSettings())
        with pytest.raises(InvalidToken):
            await _verify(tokens, ec_key.sign(_claims(idp)))


def _app(tokens: TokenService) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    platform = SimpleNamespace(tokens=tokens, revoked=RevocationList())

    @app.middleware("http")
    async def with_platform(request: Request, call_next: Any) -> Any:
        request.state.platform = platform
        return await call_next(request)

    @app.get("/v1/alerts")
    async def nurse_route(
        staff: Annotated[StaffPrincipal, Depends(require_staff("nurse"))],
    ) -> dict[str, Any]:
        return {"staff_id": staff.staff_id, "roles": sorted(staff.roles)}

    @app.get("/v1/any")
    async def any_token(principal: PrincipalDep) -> dict[str, str]:
        return {"kind": type(principal).__name__}

    return app


async def _get(app: FastAPI, path: str, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


class TestOverHttp:
    async def test_a_nurse_of_the_provider_on_a_nurse_route(
        self, idp: FakeIdentityProvider, rsa_key: SigningKey
    ) -> None:
        response = await _get(_app(_tokens(_provider(idp))), "/v1/alerts", rsa_key.sign(_claims(idp)))
        assert response.status_code == 200, response.text
        assert response.json() == {"staff_id": _claims(idp)["sub"], "roles": ["nurse"]}

    async def test_without_the_role_403(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        token = rsa_key.sign(_claims(idp, realm_access={"roles": ["offline_access"]}))
        response = await _get(_app(_tokens(_provider(idp))), "/v1/alerts", token)
        assert response.status_code == 403 and response.json()["type"].endswith("/missing-role")

    async def test_refused_tokens_are_401_problems(self, idp: FakeIdentityProvider, rsa_key: SigningKey) -> None:
        app = _app(_tokens(_provider(idp)))
        refused = {
            "wrong issuer": rsa_key.sign(_claims(idp, iss="https://elsewhere.example")),
            "wrong audience": rsa_key.sign(_claims(idp, aud="account")),
            "expired": rsa_key.sign(_claims(idp, exp=int(time.time()) - 1)),
            "unknown kid": SigningKey("rsa-9", "RS256", _RSA_OTHER).sign(_claims(idp)),
            "HS256 for the provider": jwt.encode(
                {**_claims(idp), "typ": "staff", "jti": "j", "roles": ["nurse"]}, DEV_AUTH_SECRET, "HS256"
            ),
            "alg none": f"{_b64json({'alg': 'none'})}.{_b64json(_claims(idp))}.",
        }
        for name, token in refused.items():
            response = await _get(app, "/v1/alerts", token)
            assert response.status_code == 401, name
            assert response.headers["content-type"].startswith("application/problem+json"), name
            assert response.json()["type"].endswith("/invalid-token"), name
            assert response.headers["www-authenticate"].startswith("Bearer"), name

    async def test_the_provider_unreachable_is_a_503_problem_and_tablets_go_on(self, rsa_key: SigningKey) -> None:
        gone = FakeIdentityProvider()
        tokens = _tokens(_provider(gone, refresh_interval_s=5.0))
        app = _app(tokens)
        response = await _get(app, "/v1/alerts", rsa_key.sign(_claims(gone)))
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/identity-provider-unavailable")
        assert 1 <= int(response.headers["retry-after"]) <= 5
        device = await _get(app, "/v1/any", tokens.issue_device_token(uuid.uuid4(), "tab-1"))
        assert device.json() == {"kind": "DevicePrincipal"}


_RSA_OTHER = SigningKey.rsa("other").private


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64json(value: Any) -> str:
    return _b64(json.dumps(value).encode())
