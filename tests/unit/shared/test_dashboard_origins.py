"""Where the dashboard runs and where it finds the questionnaire service, and where the tablet's page sends its
heartbeats: settings checked at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.alerting.main import AlertingSettings
from services.devices.main import DevicesSettings
from services.questionnaire.main import QuestionnaireSettings, tablet_headers


def test_no_dashboard_origin_by_default_and_a_list_is_read_normalised() -> None:
    assert QuestionnaireSettings().dashboard_origins == ()
    settings = QuestionnaireSettings(DASHBOARD_ORIGINS=" http://127.0.0.1:8002, HTTPS://Soins.Example.org ")
    assert settings.dashboard_origins == ("http://127.0.0.1:8002", "https://soins.example.org")


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "127.0.0.1:8002",
        "ftp://soins.example.org",
        "https://soins.example.org/dashboard/",
        "https://soins.example.org?x=1",
        "https://user@soins.example.org",
        "https://soins.example.org:99999",
        "http://127.0.0.1:8002,,",
        "null",
    ],
)
def test_a_dashboard_origin_that_is_not_one_stops_the_service(value: str) -> None:
    with pytest.raises(ValidationError, match="DASHBOARD_ORIGINS"):
        QuestionnaireSettings(DASHBOARD_ORIGINS=value)


def test_the_questionnaire_service_s_public_url() -> None:
    assert AlertingSettings().questionnaire_public_url == "http://127.0.0.1:8001"
    given = AlertingSettings(QUESTIONNAIRE_PUBLIC_URL="https://soins.example.org/questionnaire/")
    assert given.questionnaire_public_url == "https://soins.example.org/questionnaire"
    for wrong in ("soins.example.org", "javascript:alert(1)", "https://soins.example.org/?a=1", "https://u@x.org"):
        with pytest.raises(ValidationError, match="QUESTIONNAIRE_PUBLIC_URL"):
            AlertingSettings(QUESTIONNAIRE_PUBLIC_URL=wrong)


def test_the_tablet_page_s_heartbeats_are_off_unless_both_ends_are_set() -> None:
    assert QuestionnaireSettings().devices_public_url is None
    assert DevicesSettings().tablet_origins == ()
    given = QuestionnaireSettings(DEVICES_PUBLIC_URL="https://devices.example.org/")
    assert given.devices_public_url == "https://devices.example.org"
    # The page may then reach that origin, and no other.
    policy = tablet_headers(given.devices_public_url)["Content-Security-Policy"]
    assert "connect-src 'self' https://devices.example.org;" in policy
    assert "connect-src 'self';" in tablet_headers(None)["Content-Security-Policy"]
    allowed = DevicesSettings(TABLET_ORIGINS="https://Questionnaire.example.org")
    assert allowed.tablet_origins == ("https://questionnaire.example.org",)


@pytest.mark.parametrize("value", ["*", "https://questionnaire.example.org/tablet/", "questionnaire.example.org"])
def test_a_tablet_origin_that_is_not_one_stops_the_devices_service(value: str) -> None:
    with pytest.raises(ValidationError, match="TABLET_ORIGINS"):
        DevicesSettings(TABLET_ORIGINS=value)


def test_a_devices_address_that_is_not_one_stops_the_questionnaire_service() -> None:
    for wrong in ("devices.example.org", "javascript:alert(1)", "https://u@devices.example.org"):
        with pytest.raises(ValidationError, match="DEVICES_PUBLIC_URL"):
            QuestionnaireSettings(DEVICES_PUBLIC_URL=wrong)
