"""Settings that fail fast, tokens, opening hours."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import jwt
import orjson
import pytest
from pydantic import ValidationError

from shared.auth import DevicePrincipal, InvalidToken, StaffPrincipal, TokenService, verify_hs256
from shared.opening_hours import IN_HOURS_NOTICE, OUT_OF_HOURS_NOTICE, ClosedDays, OpeningHours
from shared.settings import DEV_AUTH_SECRET, ServiceSettings

IDP = {
    "STAFF_TOKEN_ISSUER": "https://sso.hospital.example/realms/oncology",
    "STAFF_TOKEN_AUDIENCE": "oncofollow-api",
}
PRODUCTION = {"ENVIRONMENT": "production", "AUTH_SECRET": "s" * 40, "REQUIRE_NATS_SYNC_ALWAYS": True, **IDP}


def _settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(**values)


class TestSettings:
    def test_the_database_timeouts_default_to_a_lock_timeout_and_no_statement_timeout(self) -> None:
        settings = _settings()
        assert (settings.db_lock_timeout_ms, settings.db_statement_timeout_ms) == (2000, 0)
        settings = _settings(DB_LOCK_TIMEOUT_MS="0", DB_STATEMENT_TIMEOUT_MS="30000")
        assert (settings.db_lock_timeout_ms, settings.db_statement_timeout_ms) == (0, 30000)

    @pytest.mark.parametrize("name", ["DB_LOCK_TIMEOUT_MS", "DB_STATEMENT_TIMEOUT_MS"])
    @pytest.mark.parametrize("value", ["-1", "3600001"])
    def test_a_database_timeout_out_of_range_stops_the_service_saying_what_it_takes(
        self, name: str, value: str
    ) -> None:
        with pytest.raises(ValidationError, match=f"{name} is in milliseconds, from 0 \\(no limit\\) to 3600000"):
            _settings(**{name: value})

    def test_production_refuses_the_development_secret(self) -> None:
        with pytest.raises(ValidationError, match="AUTH_SECRET"):
            _settings(**{**PRODUCTION, "AUTH_SECRET": DEV_AUTH_SECRET})

    def test_production_requires_the_nats_durability_check(self) -> None:
        with pytest.raises(ValidationError, match="REQUIRE_NATS_SYNC_ALWAYS"):
            _settings(**{**PRODUCTION, "REQUIRE_NATS_SYNC_ALWAYS": False})

    def test_production_with_all(self) -> None:
        settings = _settings(**PRODUCTION)
        assert settings.environment == "production"
        assert not settings.dev_staff_tokens  # staff tokens come from the identity provider only

    @pytest.mark.parametrize("missing", ["STAFF_TOKEN_ISSUER", "STAFF_TOKEN_AUDIENCE"])
    def test_production_requires_the_identity_provider(self, missing: str) -> None:
        with pytest.raises(ValidationError, match="STAFF_TOKEN_ISSUER"):
            _settings(**{k: v for k, v in PRODUCTION.items() if k != missing})

    @pytest.mark.parametrize(
        "values",
        [
            {"STAFF_TOKEN_ISSUER": "http://sso.hospital.example/realms/oncology"},
            {"STAFF_TOKEN_JWKS_URL": "http://sso.hospital.example/certs"},
        ],
        ids=["issuer", "jwks"],
    )
    def test_production_fetches_keys_over_https_only(self, values: dict[str, str]) -> None:
        with pytest.raises(ValidationError, match="https"):
            _settings(**{**PRODUCTION, **values})

    def test_development_keeps_its_staff_tokens_beside_the_provider(self) -> None:
        settings = _settings(**{**IDP, "STAFF_TOKEN_ISSUER": "http://127.0.0.1:8080/realms/dev"})
        assert settings.dev_staff_tokens and settings.staff_token_algorithm_list == ("RS256", "ES256")
        assert settings.staff_token_roles_claim == "roles" and settings.staff_token_jwks_url is None

    @pytest.mark.parametrize(
        ("values", "says"),
        [
            ({"STAFF_TOKEN_ALGORITHMS": "RS256,none"}, "none"),
            ({"STAFF_TOKEN_ALGORITHMS": "HS256"}, "HS256"),
            ({"STAFF_TOKEN_ALGORITHMS": "hs512"}, "HS512"),
            ({"STAFF_TOKEN_ALGORITHMS": "RS257"}, "RS257"),
            ({"STAFF_TOKEN_ALGORITHMS": " , "}, "STAFF_TOKEN_ALGORITHMS"),
            ({"STAFF_TOKEN_ROLES_CLAIM": "realm_access..roles"}, "STAFF_TOKEN_ROLES_CLAIM"),
            ({"STAFF_TOKEN_ISSUER": "sso.hospital.example"}, "STAFF_TOKEN_ISSUER"),
            ({"STAFF_TOKEN_ISSUER": "https://sso.hospital.example/realms/x#frag"}, "STAFF_TOKEN_ISSUER"),
            ({"STAFF_TOKEN_JWKS_URL": "ftp://sso.hospital.example/certs"}, "STAFF_TOKEN_JWKS_URL"),
            ({"STAFF_TOKEN_FETCH_TIMEOUT_S": "0"}, "STAFF_TOKEN_FETCH_TIMEOUT_S"),
            ({"STAFF_TOKEN_FETCH_TIMEOUT_S": "120"}, "STAFF_TOKEN_FETCH_TIMEOUT_S"),
            ({"STAFF_TOKEN_AUDIENCE": None}, "STAFF_TOKEN_AUDIENCE"),
            ({"STAFF_TOKEN_ISSUER": None, "STAFF_TOKEN_JWKS_URL": "https://x.example/certs"}, "STAFF_TOKEN_ISSUER"),
            ({"AUTH_ISSUER": "https://sso.hospital.example/realms/oncology"}, "AUTH_ISSUER"),
        ],
        ids=repr,
    )
    def test_identity_provider_settings_that_stop_the_start(self, values: dict[str, object], says: str) -> None:
        merged = {**IDP, "AUTH_ISSUER": "oncofollow-dev", **values}
        with pytest.raises(ValidationError, match=says):
            _settings(**{k: v for k, v in merged.items() if v is not None})

    def test_development_defaults_and_lists(self) -> None:
        settings = ServiceSettings(NATS_URL="nats://a:4222, nats://b:4222", CONSUMER_BACKOFF_S="1,2.5")
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


def _forge(claims: dict[str, object], *, key: str = DEV_AUTH_SECRET, **header: object) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers=header or None)


def _pyjwt_decode(token: str) -> object:
    return jwt.decode(token, DEV_AUTH_SECRET, algorithms=["HS256"], audience="oncofollow")


def _accepted(verify: Callable[[str], object], token: str) -> bool:
    try:
        verify(token)
    except (InvalidToken, jwt.PyJWTError):
        return False
    return True


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


NOW = float(int(time.time()))  # whole seconds, so that "exp == now" can be tested
DAY = 86_400
GOOD_CLAIMS: dict[str, object] = {
    "iss": "oncofollow-dev",
    "aud": "oncofollow",
    "sub": "n-1",
    "jti": "j",
    "iat": int(NOW),
    "exp": int(NOW) + DAY,  # days, not seconds: PyJWT checks against the clock, and a session can be long
}


class TestHs256Verifier:
    """``verify_hs256`` against PyJWT, the library that issues the tokens and that it replaces for checking."""

    now = NOW
    good = GOOD_CLAIMS

    def verify(self, token: str, key: str = DEV_AUTH_SECRET) -> dict[str, object]:
        return verify_hs256(token, key.encode(), issuer="oncofollow-dev", audience="oncofollow", now=self.now)

    def test_it_reads_what_pyjwt_reads(self) -> None:
        for claims in (self.good, {**self.good, "aud": ["other", "oncofollow"], "roles": ["nurse"], "nbf": 1}):
            token = _forge(claims)
            reference = jwt.decode(token, DEV_AUTH_SECRET, algorithms=["HS256"], audience="oncofollow")
            assert self.verify(token) == reference == claims

    @pytest.mark.parametrize(
        "claims",
        [
            {"exp": int(NOW)},  # expiry is exclusive, as in PyJWT
            {"exp": int(NOW) - 1},
            {"iat": int(NOW) + DAY},
            {"nbf": int(NOW) + DAY},
            {"exp": "tomorrow"},
            {"exp": True},
            {"iss": "elsewhere"},
            {"aud": "other-app"},
            {"aud": ["other-app"]},
            {"aud": None},
            {"sub": 5},
            {"jti": ["x"]},
        ],
        # Named, not repr'd: an id holding the time differs between the test workers that collect it.
        ids=[
            "exp-now",
            "exp-past",
            "iat-future",
            "nbf-future",
            "exp-text",
            "exp-boolean",
            "iss-other",
            "aud-other",
            "aud-others",
            "aud-null",
            "sub-number",
            "jti-list",
        ],
    )
    def test_claims_pyjwt_also_refuses(self, claims: dict[str, object]) -> None:
        token = _forge({**self.good, **claims})
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(
                token, DEV_AUTH_SECRET, algorithms=["HS256"], audience="oncofollow", issuer="oncofollow-dev", leeway=-1
            )
        with pytest.raises(InvalidToken):
            self.verify(token)

    @pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti"])
    def test_each_required_claim(self, claim: str) -> None:
        with pytest.raises(InvalidToken, match=f"missing claims: {claim}"):
            self.verify(_forge({k: v for k, v in self.good.items() if k != claim}))

    @pytest.mark.parametrize(
        "claims",
        [
            {"exp": 10**12},
            {"exp": 1e300},
            {"iat": -1},
            {"sub": "nurse\x00-1"},
            {"jti": "\x00"},
            {"sub": "n" * 256},
            {"jti": "j" * 256},
        ],
        ids=repr,
    )
    def test_claims_no_date_or_column_can_hold_are_refused(self, claims: dict[str, object]) -> None:
        # PyJWT takes them; here an expiry past year 9999 could not be shown (/v1/me), nor a NUL stored, nor a
        # subject longer than OIDC allows indexed (the audit trail).
        with pytest.raises(InvalidToken):
            self.verify(_forge({**self.good, **claims}))

    def test_a_little_clock_skew_is_tolerated_on_issue_not_on_expiry(self) -> None:
        assert self.verify(_forge({**self.good, "iat": int(self.now) + 10, "nbf": int(self.now) + 10}))

    def test_the_signature_must_be_exactly_the_one_for_this_content(self) -> None:
        token = _forge(self.good)
        header, payload, signature = token.split(".")
        other_payload = _b64(orjson.dumps({**self.good, "sub": "admin"}))
        cases = {
            "other key": _forge(self.good, key="another-secret-0123456789abcdef0123"),
            "other payload": f"{header}.{other_payload}.{signature}",
            "padded signature": f"{token}=",
            "signature with a trailing character": f"{token}A",
            "no signature": f"{header}.{payload}.",
            "two segments": f"{header}.{payload}",
            "four segments": f"{token}.{signature}",
            "non-ASCII": f"{header}.{payload}.{signature[:-1]}é",
        }
        # PyJWT accepts the padded signature (some issuers pad); nothing else here does.
        assert [name for name, forged in cases.items() if _accepted(self.verify, forged)] == []
        assert [name for name, forged in cases.items() if _accepted(_pyjwt_decode, forged)] in (
            [],
            ["padded signature"],
        )

    def test_only_hs256_whatever_the_header_says(self) -> None:
        for header in ({"alg": "none"}, {"alg": "HS512"}, {"alg": "HS256", "crit": ["exp"]}):
            raw_header = _b64(orjson.dumps(header))
            signing_input = f"{raw_header}.{_b64(orjson.dumps(self.good))}"
            signature = _b64(hmac.new(DEV_AUTH_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())
            with pytest.raises(InvalidToken, match="HS256"):
                self.verify(f"{signing_input}.{signature}")

    def test_a_signed_payload_that_is_not_an_object(self) -> None:
        signing_input = _b64(orjson.dumps({"alg": "HS256"})) + "." + _b64(b"[1,2]")
        signature = _b64(hmac.new(DEV_AUTH_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())
        with pytest.raises(InvalidToken, match="not a JSON object"):
            self.verify(f"{signing_input}.{signature}")


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
            # French public holidays on weekdays: the team is away, and the patient is told so.
            (datetime(2026, 7, 14, 8, 0, tzinfo=UTC), False),  # Tuesday 14 July, 10:00 in Paris
            (datetime(2026, 5, 14, 8, 0, tzinfo=UTC), False),  # Ascension Thursday (Easter + 39 days)
            (datetime(2027, 5, 6, 8, 0, tzinfo=UTC), False),  # Ascension the next year: 6 May 2027
            (datetime(2026, 5, 25, 8, 0, tzinfo=UTC), False),  # Whit Monday
            (datetime(2026, 11, 11, 9, 0, tzinfo=UTC), False),  # Wednesday 11 November
            (datetime(2026, 12, 24, 9, 0, tzinfo=UTC), True),  # Christmas Eve is worked unless the ward closes it
        ],
    )
    def test_open_in_the_clinic_timezone(self, at: datetime, is_open: bool) -> None:
        assert self.hours.is_open(at) is is_open
        assert self.hours.patient_notice(at) == (IN_HOURS_NOTICE if is_open else OUT_OF_HOURS_NOTICE)

    def test_a_ward_s_own_closures_and_a_region_s_holidays(self) -> None:
        good_friday, st_stephen = datetime(2026, 4, 3, 9, tzinfo=UTC), datetime(2026, 12, 26, 9, tzinfo=UTC)
        christmas_eve = datetime(2026, 12, 24, 9, tzinfo=UTC)
        moselle = OpeningHours.parse("08:00-18:00", closed="FR-57,2026-12-24")
        assert not moselle.is_open(good_friday) and not moselle.is_open(christmas_eve)
        assert moselle.is_open(st_stephen) is False  # a Saturday anyway; the 26th is a holiday there too
        assert datetime(2026, 12, 26).date() in moselle.closed
        assert self.hours.is_open(good_friday)  # not a holiday in the rest of France
        staffed = OpeningHours.parse("08:00-18:00", closed="none")
        assert staffed.is_open(datetime(2026, 7, 14, 8, 0, tzinfo=UTC))

    @pytest.mark.parametrize(
        ("spec", "calendar", "dates"),
        [
            ("FR", "FR", set()),
            ("", "FR", set()),
            (" fr-57 ", "FR-57", set()),
            ("none", None, set()),
            ("FR,2026-12-24, 2026-12-31", "FR", {date(2026, 12, 24), date(2026, 12, 31)}),
            ("none,2026-08-14", None, {date(2026, 8, 14)}),
            ("2026-08-14", "FR", {date(2026, 8, 14)}),
        ],
    )
    def test_closed_days_are_written_as_a_calendar_and_dates(
        self, spec: str, calendar: str | None, dates: set[date]
    ) -> None:
        closed = ClosedDays.parse(spec)
        assert (closed.calendar, set(closed.dates)) == (calendar, dates)

    @pytest.mark.parametrize(
        ("spec", "says"),
        [
            ("FR,BE", "one calendar"),
            ("none,FR", "one calendar"),
            ("XX", "no public holidays known for 'XX'"),
            ("FR-99", "no public holidays known for 'FR-99'"),
            ("FR,2026-02-30", "'2026-02-30' is not a day written YYYY-MM-DD"),
        ],
    )
    def test_a_closed_days_setting_that_cannot_be_read_stops_the_start(self, spec: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            ClosedDays.parse(spec)
        with pytest.raises(ValidationError, match=says):
            ServiceSettings(CLINIC_CLOSED_DAYS=spec)

    @pytest.mark.parametrize(
        ("env", "says"),
        [
            # Each of these used to start, then fail every submission (500) or every service-level computation.
            ({"CLINIC_TIMEZONE": "Europe/Pari"}, "'Europe/Pari' is not a time zone name"),
            ({"CLINIC_TIMEZONE": "../etc/passwd"}, "is not a time zone name"),
            ({"OPENING_HOURS": "18:00-08:00"}, "open before they close on the same day, not 18:00-08:00"),
            ({"OPENING_HOURS": "09:00-09:00"}, "open before they close"),
            ({"OPENING_HOURS": "8h-18h"}, "'8h-18h' is not opening hours written HH:MM-HH:MM"),
            ({"OPENING_HOURS": "08:00"}, "is not opening hours written HH:MM-HH:MM"),
            ({"CONSUMER_BACKOFF_S": "30,1m"}, "'30,1m' is not a list of delays in seconds"),
            ({"CONSUMER_BACKOFF_S": "30,0"}, "is not a list of delays in seconds"),
        ],
    )
    def test_hours_a_zone_or_delays_that_cannot_be_used_stop_the_start(self, env: dict[str, Any], says: str) -> None:
        with pytest.raises(ValidationError, match=says):
            ServiceSettings(**env)

    def test_hours_must_leave_the_team_a_weekday(self) -> None:
        with pytest.raises(ValueError, match="at least one weekday"):
            OpeningHours(weekdays=frozenset())
        assert ServiceSettings(OPENING_HOURS="07:30-19:00", CLINIC_TIMEZONE="America/Cayenne").opening_hours


def test_both_services_count_the_closed_days_their_settings_name() -> None:
    from services.alerting.main import AlertingSettings
    from services.alerting.main import build_service as alerting_service
    from services.questionnaire.main import QuestionnaireSettings
    from services.questionnaire.main import build_service as questionnaire_service

    # The tablet's notice (questionnaire) and the service levels (alerting) must agree on when the team is away.
    questionnaire = questionnaire_service(QuestionnaireSettings(CLINIC_CLOSED_DAYS="FR-57,2026-12-24"))
    alerting = alerting_service(AlertingSettings(CLINIC_CLOSED_DAYS="FR-57,2026-12-24"))
    for hours in (questionnaire.extras["opening_hours"], alerting.extras["service_levels"].hours):
        assert hours.closed == ClosedDays("FR-57", frozenset({date(2026, 12, 24)}))
