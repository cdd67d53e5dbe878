"""Settings that fail fast, tokens, opening hours."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from pydantic import ValidationError

from shared.auth import DevicePrincipal, InvalidToken, StaffPrincipal, TokenService
from shared.opening_hours import IN_HOURS_NOTICE, OUT_OF_HOURS_NOTICE, OpeningHours
from shared.settings import DEV_AUTH_SECRET, ServiceSettings


class TestSettings:
    def test_production_refuses_the_development_secret(self) -> None:
        with pytest.raises(ValidationError, match="AUTH_SECRET"):
            ServiceSettings(ENVIRONMENT="production", REQUIRE_NATS_SYNC_ALWAYS=True)  # type: ignore[call-arg]

    def test_production_requires_the_nats_durability_check(self) -> None:
        with pytest.raises(ValidationError, match="REQUIRE_NATS_SYNC_ALWAYS"):
            ServiceSettings(ENVIRONMENT="production", AUTH_SECRET="s" * 40)  # type: ignore[call-arg]

    def test_production_with_both(self) -> None:
        settings = ServiceSettings(  # type: ignore[call-arg]
            ENVIRONMENT="production", AUTH_SECRET="s" * 40, REQUIRE_NATS_SYNC_ALWAYS=True
        )
        assert settings.environment == "production"

    def test_development_defaults_and_lists(self) -> None:
        settings = ServiceSettings(NATS_URL="nats://a:4222, nats://b:4222", CONSUMER_BACKOFF_S="1,2.5")  # type: ignore[call-arg]
        assert settings.auth_secret == DEV_AUTH_SECRET
        assert settings.nats_servers == ["nats://a:4222", "nats://b:4222"]
        assert settings.consumer_backoff == (1.0, 2.5)


class TestTokens:
    tokens = TokenService(DEV_AUTH_SECRET, "oncofollow-dev", "oncofollow")

    def test_device_token_names_one_patient(self) -> None:
        patient = uuid.uuid4()
        principal = self.tokens.verify(self.tokens.issue_device_token(patient, "tab-12"))
        assert isinstance(principal, DevicePrincipal)
        assert principal.patient_id == patient and principal.device_id == "tab-12"

    def test_staff_token_carries_roles(self) -> None:
        principal = self.tokens.verify(self.tokens.issue_staff_token("n-1", {"nurse", "admin"}))
        assert isinstance(principal, StaffPrincipal)
        assert principal.roles == {"nurse", "admin"} and principal.has_any(frozenset({"admin"}))

    def test_a_verified_token_still_expires(self) -> None:
        tokens = TokenService(DEV_AUTH_SECRET, "oncofollow-dev", "oncofollow")
        token = tokens.issue_staff_token("n-1", {"nurse"}, ttl_s=1)
        assert tokens.verify(token) == tokens.verify(token)  # the second answer comes from the cache
        time.sleep(1.1)
        with pytest.raises(InvalidToken):
            tokens.verify(token)

    def test_unknown_role_is_refused_at_issue(self) -> None:
        with pytest.raises(ValueError, match="unknown roles"):
            self.tokens.issue_staff_token("x", {"surgeon"})

    @pytest.mark.parametrize(
        "token",
        [
            TokenService("another-secret-0123456789abcdef0123", "oncofollow-dev", "oncofollow").issue_staff_token(
                "n", {"nurse"}
            ),
            TokenService(DEV_AUTH_SECRET, "elsewhere", "oncofollow").issue_staff_token("n", {"nurse"}),
            TokenService(DEV_AUTH_SECRET, "oncofollow-dev", "other-app").issue_staff_token("n", {"nurse"}),
            TokenService(DEV_AUTH_SECRET, "oncofollow-dev", "oncofollow").issue_staff_token("n", {"nurse"}, ttl_s=-5),
            jwt.encode({"sub": "x"}, DEV_AUTH_SECRET, algorithm="HS256"),
            "not.a.token",
        ],
        ids=["other-signer", "other-issuer", "other-audience", "expired", "missing-claims", "garbage"],
    )
    def test_invalid_tokens(self, token: str) -> None:
        with pytest.raises(InvalidToken):
            self.tokens.verify(token)


class TestOpeningHours:
    hours = OpeningHours.parse("08:00-18:00")

    @pytest.mark.parametrize(
        ("at", "is_open"),
        [
            (datetime(2026, 11, 23, 7, 30, tzinfo=UTC), True),  # Monday 08:30 in Paris (UTC+1)
            (datetime(2026, 11, 23, 6, 59, tzinfo=UTC), False),  # Monday 07:59 in Paris
            (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), False),  # Monday 18:00 in Paris: closed
            (datetime(2026, 11, 22, 10, 0, tzinfo=UTC), False),  # Sunday
            (datetime(2026, 7, 6, 15, 30, tzinfo=UTC), True),  # Monday 17:30 in summer (UTC+2)
        ],
    )
    def test_open_in_the_clinic_timezone(self, at: datetime, is_open: bool) -> None:
        assert self.hours.is_open(at) is is_open
        assert self.hours.patient_notice(at) == (IN_HOURS_NOTICE if is_open else OUT_OF_HOURS_NOTICE)
