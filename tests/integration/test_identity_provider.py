"""A service process with production settings takes the staff tokens of the hospital's identity provider
(fetching its keys over HTTPS from its discovery document) and no staff token signed with AUTH_SECRET."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.auth import TokenService
from shared.devservers import EmbeddedNats
from shared.testing.oidc import FakeIdentityProvider, SigningKey
from shared.testing.services import ServiceProcess, in_process

pytestmark = pytest.mark.integration

AUDIENCE = "oncofollow-api"
SECRET = "a-production-secret-for-this-test-0123456789"


async def test_production_takes_the_provider_s_staff_tokens_and_refuses_development_ones(
    service_env: dict[str, str], nats: tuple[str, EmbeddedNats | None], tmp_path: Path
) -> None:
    server = nats[1]
    if server is None:
        pytest.skip("production settings check the NATS server's fsync on its monitoring port: embedded NATS only")
    key = SigningKey.rsa("ward-key-1")
    with FakeIdentityProvider(tls_dir=tmp_path / "tls") as idp:
        idp.publish(key.jwk)
        assert idp.ca_file is not None
        env = {
            **service_env,
            "ENVIRONMENT": "production",
            "AUTH_SECRET": SECRET,
            "REQUIRE_NATS_SYNC_ALWAYS": "true",
            "NATS_MONITOR_URL": server.monitor_url,
            "STAFF_TOKEN_ISSUER": idp.issuer,  # the keys' URL found from its discovery document
            "STAFF_TOKEN_AUDIENCE": AUDIENCE,
            "STAFF_TOKEN_ROLES_CLAIM": "realm_access.roles",
            "SSL_CERT_FILE": str(idp.ca_file),  # the provider's self-signed certificate, trusted by this process
        }
        alerting = ServiceProcess("alerting", env, tmp_path).start()
        try:
            now = int(time.time())
            nurse = key.sign(
                {
                    "iss": idp.issuer,
                    "aud": ["account", AUDIENCE],
                    "sub": "7d1f4c8e-keycloak-user",
                    "exp": now + 600,
                    "iat": now,
                    "preferred_username": "claire.martin",
                    "realm_access": {"roles": ["nurse", "offline_access"]},
                }
            )
            bearer = {"Authorization": f"Bearer {nurse}"}
            async with httpx.AsyncClient(base_url=alerting.url, timeout=10) as client:
                listed = await client.get("/v1/alerts", headers=bearer)
                assert listed.status_code == 200, listed.text
                me = (await client.get("/v1/me", headers=bearer)).json()
                assert (me["staff_id"], me["roles"]) == ("7d1f4c8e-keycloak-user", ["nurse"])
                assert 590 <= me["session_expires_in"] <= 600
                stream = await client.post("/v1/alerts/stream-token", headers=bearer)
                assert stream.status_code == 200, stream.text

                # Signed with the platform's own secret: a staff token is refused, a tablet's is still taken.
                platform = TokenService(SECRET, "oncofollow-dev", "oncofollow")
                staff = platform.issue_staff_token("dev-nurse", {"nurse", "admin"})
                refused = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {staff}"})
                assert refused.status_code == 401 and refused.json()["type"].endswith("/invalid-token")
                device = platform.issue_device_token(uuid.uuid4(), "tab-1")
                wrong = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {device}"})
                assert wrong.status_code == 403 and wrong.json()["type"].endswith("/wrong-token")
                config = (await client.get("/v1/dashboard/config")).json()
                assert config["dev_login"] is False
        finally:
            alerting.stop()
        assert [p for p in idp.requests] == [
            "/realms/ward/.well-known/openid-configuration",
            "/realms/ward/protocol/openid-connect/certs",
        ]
    conn = await asyncpg.connect(service_env["DATABASE_URL"], server_settings={"search_path": "alerting"})
    try:
        audit = await conn.fetch("SELECT actor, roles FROM audit_log WHERE action = 'alerts.list'")
    finally:
        await conn.close()
    assert [(row["actor"], list(row["roles"])) for row in audit] == [("7d1f4c8e-keycloak-user", ["nurse"])]


# The dashboard's client id at the provider, and the audience its access tokens are checked for: the same, as where
# the API is registered as the dashboard's own application (Entra ID), or a Keycloak client mapping its own id.
CLIENT_ID = "5f0c9d3e-oncofollow-dashboard"


def _signed_in(idp: FakeIdentityProvider, **claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": idp.issuer,
        "aud": CLIENT_ID,
        "sub": "7d1f4c8e-user",
        "exp": now + 600,
        "iat": now,
        "auth_time": now,
        "roles": ["nurse"],
        "name": "Claire Martin",
        **claims,
    }


# What the providers hospitals run send to the dashboard for a sign-in that sent a nonce.
NONCE = "b1fe5c0a7d"
ACCESS_TOKENS = {
    "Keycloak before 25 (the nonce copied in)": {
        "typ": "Bearer",
        "azp": CLIENT_ID,
        "scope": "openid profile",
        "nonce": NONCE,
        "sid": "s1",
    },
    "Keycloak 25": {"typ": "Bearer", "azp": CLIENT_ID, "scope": "openid profile", "sid": "s1"},
    "Entra ID v2": {"scp": "access_as_user", "ver": "2.0", "azp": CLIENT_ID, "tid": "t1", "oid": "o1"},
    "RFC 9068 (at+jwt), a nonce and no scope": {"nonce": NONCE, "client_id": CLIENT_ID},
}
ID_TOKENS = {
    "Keycloak": {"typ": "ID", "azp": CLIENT_ID, "nonce": NONCE, "at_hash": "x4Gz0dE3", "sid": "s1"},
    "Keycloak, refreshed (no nonce, no hash)": {"typ": "ID", "azp": CLIENT_ID, "sid": "s1"},
    "Entra ID v2 (code flow: a nonce, no hash)": {"nonce": NONCE, "ver": "2.0", "tid": "t1", "oid": "o1"},
    "any provider, bound to its access token": {"at_hash": "x4Gz0dE3"},
    "any provider, bound to its code": {"c_hash": "Lk2Pq9Rw"},
}


@pytest.fixture
async def provider_alerting(service_env: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, Any, SigningKey]]:
    key = SigningKey.rsa("ward-key-1")
    with FakeIdentityProvider() as idp:
        idp.publish(key.jwk)
        settings = AlertingSettings(
            NATS_URL=service_env["NATS_URL"],
            DATABASE_URL=service_env["DATABASE_URL"],
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE=CLIENT_ID,
            DASHBOARD_OIDC_CLIENT_ID=CLIENT_ID,
        )
        async with in_process(build_alerting(settings)) as (client, _):
            yield client, idp, key


async def test_an_id_token_is_refused_where_an_access_token_goes_and_real_access_tokens_are_not(
    provider_alerting: tuple[httpx.AsyncClient, Any, SigningKey], service_env: dict[str, str]
) -> None:
    # The audience being the client's id, an ID token passed every check an access token does: a page that sent
    # it (or anyone holding one from a sign-in's logs) read the alerts with it.
    client, idp, key = provider_alerting
    for provider, claims in ACCESS_TOKENS.items():
        header = {"typ": "at+jwt"} if provider.startswith("RFC 9068") else {"typ": "JWT"}
        token = key.sign(_signed_in(idp, **claims), **header)
        listed = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, (provider, listed.text)
    for provider, claims in ID_TOKENS.items():
        token = key.sign(_signed_in(idp, **claims), typ="JWT")
        refused = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, (provider, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        problem = refused.json()
        assert problem["type"].endswith("/id-token"), provider
        assert "ID token" in problem["detail"] and "access_token" in problem["detail"], problem
        assert "STAFF_TOKEN_AUDIENCE" in problem["detail"], problem
        # Nor does it get a stream token, nor is it known to the service as anyone.
        stream = await client.post("/v1/alerts/stream-token", headers={"Authorization": f"Bearer {token}"})
        assert stream.status_code == 401, provider
    conn = await asyncpg.connect(service_env["DATABASE_URL"], server_settings={"search_path": "alerting"})
    try:
        lists = await conn.fetch("SELECT actor FROM audit_log WHERE action = 'alerts.list'")
    finally:
        await conn.close()
    assert [row["actor"] for row in lists] == ["7d1f4c8e-user"] * len(ACCESS_TOKENS)  # the refusals wrote none
