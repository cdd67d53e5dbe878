"""A service process with production settings takes the staff tokens of the hospital's identity provider
(fetching its keys over HTTPS from its discovery document) and no staff token signed with AUTH_SECRET."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.auth import TokenService
from shared.devservers import EmbeddedNats
from shared.testing.oidc import FakeIdentityProvider, SigningKey
from shared.testing.services import ServiceProcess

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
