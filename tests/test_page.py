"""Step-up inside a page (SPEC §5d): the core question over the whole decision table.

``page_decision`` and ``PageAccess`` must answer what the middleware would: each outcome
with its URL, under ``browser_url``, coming back to the page. Beside the table written
out, every pairing of session and requirement is checked against ``client.check`` itself,
on the blocking and the awaitable client.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosConfig,
    Outcome,
    PageAccess,
    Requirement,
    Session,
    page_decision,
)
from kratos_aal._web import WebRequest
from kratos_aal.exceptions import ConfigurationError, StepUpRequired
from kratos_aal.integrations._access import aload_page, load_page
from kratos_aal.testing import FakeKratos, FakeSession

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
# The app reaches Kratos inside its network; browsers reach it at browser_url.
CONFIG = KratosConfig(public_url="http://kratos:4433", browser_url="https://id.example/kratos")
BROWSER = "https://id.example/kratos/self-service/"
PAGE = "https://app.example/account?tab=bank"


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def session(aal: str, *methods: tuple[str, str, float], expires_in: float = 3600) -> Session:
    return Session.from_json(
        {
            "id": "s",
            "active": True,
            "authenticator_assurance_level": aal,
            "expires_at": (NOW + timedelta(seconds=expires_in)).isoformat(),
            "authentication_methods": [
                {"method": m, "aal": a, "completed_at": at(ago)} for m, a, ago in methods
            ],
            "identity": {"id": "i", "state": "active", "traits": {}},
        }
    )


PASSWORD = ("password", "aal1", 60)
AAL1 = session("aal1", PASSWORD)
AAL2_FRESH = session("aal2", PASSWORD, ("totp", "aal2", 60))
AAL2_OLD = session("aal2", PASSWORD, ("totp", "aal2", 900))
AAL1_OLD = session("aal1", ("password", "aal1", 900))
AAL0 = session("aal0", ("identifier_first", "aal0", 60))
EXPIRED = session("aal2", PASSWORD, ("totp", "aal2", 60), expires_in=-1)

FIVE_MINUTES = 300
LOGIN = f"{BROWSER}login/browser?return_to="
STEP_UP = f"{BROWSER}login/browser?aal=aal2&return_to="
ENROLL = f"{BROWSER}settings/browser?return_to="

# (session, requirement, has a second factor, outcome, the URL up to its return_to)
TABLE = [
    pytest.param(None, "aal1", True, Outcome.LOGIN, LOGIN, id="none-aal1-login"),
    pytest.param(None, "aal2", True, Outcome.LOGIN, LOGIN, id="none-aal2-login-never-aal2"),
    pytest.param(
        None,
        Requirement("aal2", max_age=FIVE_MINUTES),
        True,
        Outcome.LOGIN,
        LOGIN,
        id="none-max-age",
    ),
    pytest.param(EXPIRED, "aal1", True, Outcome.LOGIN, LOGIN, id="expired-login"),
    pytest.param(
        AAL0,
        "aal1",
        True,
        Outcome.LOGIN,
        f"{BROWSER}login/browser?refresh=true&return_to=",
        id="aal0-login-afresh",
    ),
    pytest.param(AAL1, "aal1", True, Outcome.ALLOW, None, id="aal1-aal1-allow"),
    pytest.param(AAL1, "aal1", False, Outcome.ALLOW, None, id="aal1-aal1-no-factor-allow"),
    pytest.param(
        AAL1, Requirement("aal1", max_age=FIVE_MINUTES), True, Outcome.ALLOW, None, id="aal1-fresh"
    ),
    pytest.param(
        AAL1_OLD,
        Requirement("aal1", max_age=FIVE_MINUTES),
        True,
        Outcome.REAUTHENTICATE,
        f"{BROWSER}login/browser?aal=aal1&refresh=true&return_to=",
        id="aal1-old-reauthenticate",
    ),
    pytest.param(AAL1, "aal2", True, Outcome.STEP_UP, STEP_UP, id="aal1-aal2-factor-step-up"),
    pytest.param(AAL1, "aal2", False, Outcome.ENROLL, ENROLL, id="aal1-aal2-no-factor-enroll"),
    pytest.param(
        AAL1,
        Requirement("aal2", max_age=FIVE_MINUTES),
        True,
        Outcome.STEP_UP,
        STEP_UP,
        id="aal1-aal2-max-age-step-up",
    ),
    pytest.param(
        AAL1,
        Requirement("aal2", max_age=FIVE_MINUTES),
        False,
        Outcome.ENROLL,
        ENROLL,
        id="aal1-aal2-max-age-no-factor-enroll",
    ),
    pytest.param(AAL2_FRESH, "aal1", True, Outcome.ALLOW, None, id="aal2-aal1-allow"),
    pytest.param(AAL2_FRESH, "aal2", True, Outcome.ALLOW, None, id="aal2-aal2-allow"),
    pytest.param(AAL2_OLD, "aal2", True, Outcome.ALLOW, None, id="aal2-old-no-max-age-allow"),
    pytest.param(
        AAL2_FRESH,
        Requirement("aal2", max_age=FIVE_MINUTES),
        True,
        Outcome.ALLOW,
        None,
        id="aal2-fresh-allow",
    ),
    pytest.param(
        AAL2_OLD,
        Requirement("aal2", max_age=FIVE_MINUTES),
        True,
        Outcome.REAUTHENTICATE,
        f"{BROWSER}login/browser?aal=aal2&refresh=true&return_to=",
        id="aal2-old-reauthenticate",
    ),
    pytest.param(
        AAL2_FRESH,
        Requirement("aal2", methods={"webauthn"}),
        True,
        Outcome.REAUTHENTICATE,
        f"{BROWSER}login/browser?aal=aal2&refresh=true&return_to=",
        id="aal2-missing-method-reauthenticate",
    ),
]


def split(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


@pytest.mark.parametrize(("session", "requirement", "factor", "outcome", "url"), TABLE)
def test_page_decision_row(
    session: Session | None, requirement: Any, factor: bool, outcome: Outcome, url: str | None
) -> None:
    decision = page_decision(
        session, requirement, config=CONFIG, return_to=PAGE, now=NOW, has_second_factor=factor
    )
    assert decision.outcome is outcome
    assert decision.requirement == Requirement.parse(requirement)
    if url is None:
        assert decision.redirect_to is None
    else:
        assert decision.redirect_to == url + _quoted(PAGE)


@pytest.mark.parametrize(("session", "requirement", "factor", "outcome", "url"), TABLE)
def test_page_access_row(
    session: Session | None, requirement: Any, factor: bool, outcome: Outcome, url: str | None
) -> None:
    asked: list[bool] = []

    def second_factor() -> bool:
        asked.append(True)
        return factor

    page = PageAccess(
        session, config=CONFIG, return_to=PAGE, now=lambda: NOW, second_factor=second_factor
    )
    decision = page.decision(requirement)
    assert decision.outcome is outcome
    assert page.allows(requirement) is (outcome is Outcome.ALLOW)
    # Links for what is allowed lead back to the page itself.
    assert page.step_up_url(requirement) == (PAGE if url is None else url + _quoted(PAGE))
    # Kratos is asked about second factors only to tell a step-up from an enrollment.
    assert asked == ([True] if outcome in (Outcome.STEP_UP, Outcome.ENROLL) else [])
    page.decision(requirement)
    assert len(asked) <= 1, "the answer is asked once per page"


def _quoted(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")


def test_a_withheld_session_is_a_step_up_for_every_requirement() -> None:
    # Kratos under highest_available: whoami 403 session_aal2_required, its URL internal.
    withheld = "http://kratos:4433/self-service/login/browser?aal=aal2"
    for requirement in ("aal1", "aal2", Requirement("aal2", max_age=60)):
        decision = page_decision(
            None, requirement, config=CONFIG, return_to=PAGE, step_up_to=withheld
        )
        assert decision.outcome is Outcome.STEP_UP
        assert split(decision.redirect_to or "") == (
            f"{BROWSER}login/browser",
            {"aal": ["aal2"], "return_to": [PAGE]},
        )
    page = PageAccess(None, config=CONFIG, return_to=PAGE, step_up_to=withheld)
    assert not page.allows("aal1")
    assert page.step_up_url("aal1").startswith(f"{BROWSER}login/browser?aal=aal2&")


def test_the_links_of_a_page() -> None:
    page = PageAccess(AAL1, config=CONFIG, return_to=PAGE, now=lambda: NOW)
    assert split(page.login_url()) == (f"{BROWSER}login/browser", {"return_to": [PAGE]})
    assert split(page.settings_url()) == (f"{BROWSER}settings/browser", {"return_to": [PAGE]})
    assert page.page_url() == PAGE
    assert page.logout_url() is None  # nothing to ask it of
    assert page.session is AAL1 and "aal1" in repr(page)


def counted_logout() -> tuple[list[str], Callable[[], str]]:
    """Return a logout URL source that records each time it is asked, and its record."""
    asked: list[str] = []

    def logout() -> str:
        asked.append("logout")
        return "http://kratos:4433/self-service/logout?token=t"

    return asked, logout


def test_the_logout_url_is_asked_once_and_rebased() -> None:
    asked, logout = counted_logout()
    page = PageAccess(AAL1, config=CONFIG, return_to=PAGE, logout=logout)
    assert page.logout_url() == f"{BROWSER}logout?token=t"
    assert page.logout_url("https://app.example/") == (
        f"{BROWSER}logout?token=t&return_to=https%3A%2F%2Fapp.example%2F"
    )
    assert asked == ["logout"]


def test_return_to_is_built_once_and_only_when_a_url_needs_it() -> None:
    built: list[str] = []

    def back() -> str:
        built.append(PAGE)
        return PAGE

    page = PageAccess(AAL2_FRESH, config=CONFIG, return_to=back, now=lambda: NOW)
    assert page.allows("aal2") and built == []
    page.step_up_url("aal2", max_age=1)
    page.login_url()
    page.settings_url()
    assert built == [PAGE]


def test_without_a_way_to_ask_a_step_up_is_the_guess() -> None:
    page = PageAccess(AAL1, config=CONFIG, return_to=PAGE, now=lambda: NOW)
    assert page.decision("aal2").outcome is Outcome.STEP_UP


def test_requirements_as_templates_write_them() -> None:
    page = PageAccess(AAL2_FRESH, config=CONFIG, return_to=PAGE, now=lambda: NOW)
    assert page.allows("aal2", max_age=120)
    assert not page.allows("aal2", max_age=30)
    assert page.allows("aal2", max_age=timedelta(minutes=2))
    assert page.allows("aal2", methods="webauthn, totp")
    assert not page.allows("aal2", methods="webauthn passkey")
    assert page.allows(Requirement("aal2"), max_age=120)
    assert not page.allows(Requirement("aal2", methods={"webauthn"}))
    for bad in ("aal3", "nonsense"):
        with pytest.raises(ConfigurationError):
            page.allows(bad)
    with pytest.raises(ConfigurationError):
        page.allows("aal2", methods="")
    with pytest.raises(ConfigurationError):
        page.allows("aal2", max_age=-1)


def test_a_requirement_given_with_max_age_keeps_its_methods() -> None:
    # A template passes a named requirement and tightens its age: the methods it names still
    # hold (a password-and-TOTP session is no hardware key, however fresh).
    keys_only = Requirement("aal2", methods={"webauthn", "passkey"})
    page = PageAccess(AAL2_FRESH, config=CONFIG, return_to=PAGE, now=lambda: NOW)
    assert not page.allows(keys_only)
    assert not page.allows(keys_only, max_age=300)
    assert page.decision(keys_only, max_age=300).outcome is Outcome.REAUTHENTICATE
    # What is given replaces the requirement's own; what is not is kept.
    totp_recent = Requirement("aal2", max_age=30, methods={"totp"})
    assert not page.allows(totp_recent)
    assert page.allows(totp_recent, max_age=120)
    assert not page.allows(totp_recent, methods="webauthn")
    with pytest.raises(ConfigurationError, match="max_age"):
        page.allows(keys_only, max_age=0)


def test_methods_that_are_not_names_are_a_configuration_error() -> None:
    page = PageAccess(AAL2_FRESH, config=CONFIG, return_to=PAGE, now=lambda: NOW)
    for bad in (5, 2.5, object()):
        with pytest.raises(ConfigurationError, match="methods"):
            page.allows("aal2", methods=bad)  # type: ignore[arg-type]


def test_no_session_has_no_logout_url_and_asks_nothing() -> None:
    asked, source = counted_logout()
    page = PageAccess(None, config=CONFIG, return_to=PAGE, logout=source)
    assert page.logout_url() is None and page.logout_url(PAGE) is None
    assert asked == []
    # A session Kratos withheld (a step-up owed) has one: it is asked for.
    withheld = PageAccess(
        None, config=CONFIG, return_to=PAGE, logout=source, step_up_to=BROWSER + "login/browser"
    )
    assert withheld.logout_url() == "https://id.example/kratos/self-service/logout?token=t"
    assert asked == ["logout"]


# ------------------------------------------------------- the same as the middleware


KINDS = ["none", "aal1-factor", "aal1-no-factor", "aal2", "aal2-old", "aal1-old"]
REQUIREMENTS = [
    pytest.param("aal1", id="aal1"),
    pytest.param("aal2", id="aal2"),
    pytest.param(Requirement("aal1", max_age=FIVE_MINUTES), id="aal1-max-age"),
    pytest.param(Requirement("aal2", max_age=FIVE_MINUTES), id="aal2-max-age"),
    pytest.param(Requirement("aal2", methods={"webauthn"}), id="aal2-webauthn"),
]


def make(fake: FakeKratos, kind: str) -> FakeSession | None:
    if kind == "none":
        return None
    if kind == "aal1-factor":
        return fake.session("aal1", totp=True)
    if kind == "aal1-no-factor":
        return fake.session("aal1")
    if kind == "aal1-old":
        return fake.session("aal1", authenticated_at=900)
    if kind == "aal2-old":
        return fake.session("aal2", authenticated_at=900)
    return fake.session("aal2")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("requirement", REQUIREMENTS)
async def test_the_page_decides_as_the_middleware(kind: str, requirement: Any, mode: str) -> None:
    fake = FakeKratos(public_url="http://kratos:4433", whoami_required_aal="aal1")
    config = {"browser_url": "https://id.example/kratos"}
    handle = make(fake, kind)
    credentials = Credentials(cookie=handle.cookie if handle else None)
    if mode == "sync":
        client = fake.client(**config)
        with client:
            expected = client.check(credentials, requirement, PAGE)
            session = client.whoami(credentials)
            page = load_page(client, credentials, session, return_to=lambda: PAGE)
            decision = page.decision(requirement)
    else:
        aclient: AsyncKratosClient = fake.async_client(**config)
        async with aclient:
            expected = await aclient.check(credentials, requirement, PAGE)
            session = await aclient.whoami(credentials)
            page = await aload_page(
                aclient, credentials, session, return_to=lambda: PAGE, how="test"
            )
            decision = page.decision(requirement)
    assert (decision.outcome, decision.redirect_to) == (expected.outcome, expected.redirect_to)
    if decision.redirect_to:
        assert decision.redirect_to.startswith(BROWSER)
        assert "kratos:4433" not in decision.redirect_to


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_withheld_session_decides_as_the_middleware(mode: str) -> None:
    fake = FakeKratos(public_url="http://kratos:4433")  # Kratos's default: highest_available
    handle = fake.session("aal1", totp=True)
    credentials = Credentials(cookie=handle.cookie)
    config = {"browser_url": "https://id.example/kratos"}
    if mode == "sync":
        with fake.client(**config) as client:
            expected = client.check(credentials, "aal1", PAGE)
            with pytest.raises(StepUpRequired) as raised:
                client.whoami(credentials)
    else:
        async with fake.async_client(**config) as aclient:
            expected = await aclient.check(credentials, "aal1", PAGE)
            with pytest.raises(StepUpRequired) as raised:
                await aclient.whoami(credentials)
    page = PageAccess(None, config=CONFIG, return_to=PAGE, step_up_to=raised.value.redirect_to)
    decision = page.decision("aal1")
    assert (decision.outcome, decision.redirect_to) == (expected.outcome, expected.redirect_to)


async def test_the_probe_is_cached_by_identity(mode: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    handle = fake.session("aal1")
    credentials = Credentials(cookie=handle.cookie)
    for _ in range(3):
        if mode == "sync":
            with fake.client() as client:
                session = client.whoami(credentials)
                first = load_page(client, credentials, session, return_to=lambda: PAGE)
                assert first.decision("aal2").outcome is Outcome.ENROLL
                second = load_page(client, credentials, session, return_to=lambda: PAGE)
                assert second.decision("aal2").outcome is Outcome.ENROLL
        else:
            async with fake.async_client() as aclient:
                session = await aclient.whoami(credentials)
                for _ in range(2):
                    page = await aload_page(
                        aclient, credentials, session, return_to=lambda: PAGE, how="test"
                    )
                    assert page.decision("aal2").outcome is Outcome.ENROLL
    # A new client each round has a cache of its own: one probe each, never one per page.
    assert fake.calls["/self-service/login/browser"] == 3


def test_inline_denial_only_for_htmx_and_only_with_a_way_forward() -> None:
    from kratos_aal._page import inline_denial

    htmx = WebRequest("GET", "https", "app.example", "/frag", headers={"hx-request": "true"})
    plain = WebRequest("GET", "https", "app.example", "/frag")
    step_up = page_decision(AAL1, "aal2", config=CONFIG, return_to=PAGE, now=NOW)
    fragment = inline_denial(step_up, htmx)
    assert fragment is not None and fragment.status == 200
    body = fragment.body.decode()
    assert "Verify to see this" in body and 'hx-boost="false"' in body
    assert 'data-kratos-aal-outcome="step_up"' in body
    assert f'href="{STEP_UP}{_quoted(PAGE)}"' in body.replace("&amp;", "&")
    assert inline_denial(step_up, plain) is None
    allow = page_decision(AAL2_FRESH, "aal2", config=CONFIG, return_to=PAGE, now=NOW)
    assert inline_denial(allow, htmx) is None
    enroll = page_decision(
        AAL1, "aal2", config=CONFIG, return_to=PAGE, now=NOW, has_second_factor=False
    )
    assert "Set up a second factor" in (inline_denial(enroll, htmx) or fragment).body.decode()
    login = page_decision(None, "aal2", config=CONFIG, return_to=PAGE, now=NOW)
    assert "Sign in to see this" in (inline_denial(login, htmx) or fragment).body.decode()
