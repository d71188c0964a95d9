"""The pure decision (SPEC §3), row by row, and the URLs it builds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kratos_aal import KratosConfig, Outcome, Requirement, Session
from kratos_aal._decision import decide
from kratos_aal._kratos_api import login_url, rebase, settings_url

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
CONFIG = KratosConfig(public_url="http://kratos:4433", browser_url="https://example.com/kratos")
BACK = "https://app.example/billing?tab=2"


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def session(
    aal: str,
    *methods: tuple[str, str, float],
    active: bool = True,
    expires_in: float = 3600,
    identity_state: str = "active",
) -> Session:
    return Session.from_json(
        {
            "id": "s",
            "active": active,
            "authenticator_assurance_level": aal,
            "expires_at": (NOW + timedelta(seconds=expires_in)).isoformat(),
            "authentication_methods": [
                {"method": m, "aal": a, "completed_at": at(ago)} for m, a, ago in methods
            ],
            "identity": {"id": "i", "state": identity_state, "traits": {}},
        }
    )


PASSWORD = ("password", "aal1", 10)
TOTP = ("totp", "aal2", 10)
AAL1 = session("aal1", PASSWORD)
AAL2 = session("aal2", PASSWORD, TOTP)

ROWS = [
    pytest.param(None, "aal1", True, Outcome.LOGIN, id="no-session-login"),
    pytest.param(AAL2, "aal2", True, Outcome.ALLOW, id="aal2-meets-aal2"),
    pytest.param(AAL2, "aal1", True, Outcome.ALLOW, id="aal2-meets-aal1"),
    pytest.param(AAL1, "aal1", True, Outcome.ALLOW, id="aal1-meets-aal1"),
    pytest.param(AAL1, "aal2", True, Outcome.STEP_UP, id="aal1-needs-aal2-has-factor"),
    pytest.param(AAL1, "aal2", False, Outcome.ENROLL, id="aal1-needs-aal2-no-factor"),
    pytest.param(AAL2, Requirement("aal2", max_age=11), True, Outcome.ALLOW, id="fresh-enough"),
    pytest.param(AAL2, Requirement("aal2", max_age=9), True, Outcome.REAUTHENTICATE, id="too-old"),
    pytest.param(
        session("aal2", PASSWORD, ("totp", "aal2", 700)),
        Requirement("aal2", max_age=600),
        True,
        Outcome.REAUTHENTICATE,
        id="old-second-factor-fresh-password",
    ),
    pytest.param(
        session("aal2", ("password", "aal1", 700), ("totp", "aal2", 5)),
        Requirement("aal1", max_age=600),
        True,
        Outcome.ALLOW,
        id="aal1-age-counts-totp",
    ),
    pytest.param(
        session("aal2", ("password", "aal1", 5), ("totp", "aal2", 7)),
        Requirement("aal2", max_age=6),
        True,
        Outcome.REAUTHENTICATE,
        id="newest-of-the-level",
    ),
    pytest.param(
        session("aal1", PASSWORD),
        Requirement("aal2", max_age=60),
        True,
        Outcome.STEP_UP,
        id="step-up-before-age",
    ),
    pytest.param(
        AAL2,
        Requirement("aal2", methods={"webauthn"}),
        True,
        Outcome.REAUTHENTICATE,
        id="method-missing",
    ),
    pytest.param(
        AAL2,
        Requirement("aal2", methods={"totp", "webauthn"}),
        True,
        Outcome.ALLOW,
        id="method-present",
    ),
    pytest.param(
        AAL2,
        Requirement("aal2", methods={"password"}),
        True,
        Outcome.REAUTHENTICATE,
        id="method-below-level-does-not-count",
    ),
    pytest.param(
        session("aal2", ("password", "aal1", 5), ("webauthn", "aal2", 500)),
        Requirement("aal2", max_age=60, methods={"webauthn"}),
        True,
        Outcome.REAUTHENTICATE,
        id="method-and-age",
    ),
    pytest.param(
        session("aal2", ("password", "aal1", 5)),
        Requirement("aal2", max_age=60),
        True,
        Outcome.REAUTHENTICATE,
        id="aal2-claimed-no-aal2-method",
    ),
    pytest.param(
        session("aal2", ("password", "aal1", 5), ("totp", "aal2", 5), active=False),
        "aal1",
        True,
        Outcome.LOGIN,
        id="inactive",
    ),
    pytest.param(
        session("aal2", PASSWORD, TOTP, expires_in=-1), "aal1", True, Outcome.LOGIN, id="expired"
    ),
    pytest.param(
        session("aal2", PASSWORD, TOTP, identity_state="inactive"),
        "aal1",
        True,
        Outcome.LOGIN,
        id="identity-disabled",
    ),
]


@pytest.mark.parametrize(("current", "requirement", "second_factor", "outcome"), ROWS)
def test_decide(
    current: Session | None, requirement: Any, second_factor: bool, outcome: Outcome
) -> None:
    rule = Requirement.parse(requirement)
    decision = decide(
        current, rule, now=NOW, return_to=BACK, config=CONFIG, has_second_factor=second_factor
    )
    assert decision.outcome is outcome
    assert decision.requirement == rule
    if outcome is Outcome.ALLOW:
        assert decision.redirect_to is None and decision.session is current
        return
    assert decision.redirect_to is not None
    url = urlsplit(decision.redirect_to)
    assert (url.scheme, url.netloc) == ("https", "example.com")
    params = parse_qs(url.query)
    assert params["return_to"] == [BACK]
    expected = {
        Outcome.LOGIN: ("/kratos/self-service/login/browser", {}),
        Outcome.STEP_UP: ("/kratos/self-service/login/browser", {"aal": [rule.aal.value]}),
        Outcome.ENROLL: ("/kratos/self-service/settings/browser", {}),
        Outcome.REAUTHENTICATE: (
            "/kratos/self-service/login/browser",
            {"aal": [rule.aal.value], "refresh": ["true"]},
        ),
    }[outcome]
    assert url.path == expected[0]
    assert {k: v for k, v in params.items() if k != "return_to"} == expected[1]


def test_urls_without_return_to() -> None:
    assert login_url(CONFIG, None) == "https://example.com/kratos/self-service/login/browser"
    assert settings_url(CONFIG, None) == "https://example.com/kratos/self-service/settings/browser"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "http://kratos:4433/self-service/login/browser?aal=aal2",
            "https://example.com/kratos/self-service/login/browser?aal=aal2&return_to=R",
        ),
        (
            "http://127.0.0.1:4433/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fevil",
            "https://example.com/kratos/self-service/login/browser?aal=aal2&return_to=R",
        ),
        (
            "https://proxy/prefix/self-service/settings?flow=1",
            "https://example.com/kratos/self-service/settings?flow=1&return_to=R",
        ),
        ("http://kratos:4433/elsewhere", None),
        ("http://[::1", None),
        (None, None),
        (42, None),
    ],
)
def test_rebase_keeps_only_path_and_query(given: Any, expected: str | None) -> None:
    assert rebase(CONFIG, given, "R") == expected


@pytest.mark.parametrize("required", ["aal1", "aal2"])
def test_aal0_session_logs_in_afresh(required: str) -> None:
    decision = decide(
        session("aal0", ("identifier_first", "aal0", 1)),
        Requirement(required),
        now=NOW,
        return_to=BACK,
        config=CONFIG,
    )
    assert decision.outcome is Outcome.LOGIN
    assert decision.redirect_to is not None
    assert parse_qs(urlsplit(decision.redirect_to).query) == {
        "refresh": ["true"],
        "return_to": [BACK],
    }
