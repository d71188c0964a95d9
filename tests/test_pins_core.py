"""Pins on the core (issue 10): each test fails under a mutation the suite once let live."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosClient,
    KratosConfig,
    KratosUnavailable,
    MalformedResponse,
    Outcome,
    Requirement,
    Session,
)
from kratos_aal._decision import decide
from kratos_aal._kratos_api import (
    NO_SESSION_TTL,
    parse_logout,
    parse_second_factor,
    parse_whoami,
    rebase,
)

from .pins import APP, PUBLIC, T0, Scripted, flow_json, session_json

WHOAMI = "/sessions/whoami"
PROBE = "/self-service/login/browser"
CONFIG = KratosConfig(public_url=PUBLIC, cache_ttl=30)
NOW = datetime.fromtimestamp(T0, timezone.utc)
COOKIE = Credentials(cookie="a-session")

modes = pytest.mark.parametrize("mode", ["sync", "async"])


def query(url: str | None) -> dict[str, list[str]]:
    assert url is not None
    return parse_qs(urlsplit(url).query)


def whoami(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# ------------------------------------------------------ item 3: 403 without redirect_browser_to


def test_aal2_required_without_redirect_is_a_step_up() -> None:
    body = {"error": {"id": "session_aal2_required", "code": 403}}
    result, ttl = parse_whoami(CONFIG, whoami(403, body), T0)
    assert result.session is None
    assert result.step_up_to == f"{PUBLIC}/self-service/login/browser?aal=aal2"
    assert ttl == 0.0


def test_aal2_required_with_redirect_is_rebased_keeping_kratos_return_to() -> None:
    # Kratos checks a flow's return_to against its allowed_return_urls itself; with no
    # return_to of ours, its own stays (issue 10, item 12).
    body = {
        "error": {"id": "session_aal2_required"},
        "redirect_browser_to": "http://kratos:4433/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fevil",
    }
    result, _ = parse_whoami(CONFIG, whoami(403, body), T0)
    assert result.step_up_to == (
        f"{PUBLIC}/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fevil"
    )


@modes
async def test_aal2_required_without_redirect_steps_up_through_the_client(mode: str) -> None:
    kratos = Scripted()
    kratos.answer(WHOAMI, 403, {"error": {"id": "session_aal2_required"}})
    decision = await kratos.client(mode).check(COOKIE, "aal1", APP)
    assert decision.outcome is Outcome.STEP_UP
    assert decision.redirect_to.startswith(f"{PUBLIC}/self-service/login/browser?")
    assert query(decision.redirect_to) == {"aal": ["aal2"], "return_to": [APP]}


# ------------------------------------------------------- item 4: cache lifetime and expires_at


@pytest.mark.parametrize(
    ("expires_in", "headers", "ttl"),
    [
        pytest.param(5.0, {}, 5.0, id="expires-before-cache-ttl"),
        pytest.param(29.5, {}, 29.5, id="expires-just-before-cache-ttl"),
        pytest.param(100.0, {}, 30.0, id="expires-after-cache-ttl"),
        pytest.param(None, {}, 30.0, id="no-expires-at"),
        pytest.param(-5.0, {}, 0.0, id="already-expired"),
        pytest.param(100.0, {"Ory-Session-Cache-For": "10"}, 10.0, id="cache-for"),
        pytest.param(100.0, {"Ory-Session-Cache-For": " 12 "}, 12.0, id="cache-for-spaces"),
        pytest.param(100.0, {"Ory-Session-Cache-For": "45"}, 30.0, id="cache-for-above-ttl"),
        pytest.param(100.0, {"Ory-Session-Cache-For": "1.5"}, 30.0, id="cache-for-not-digits"),
        pytest.param(3.0, {"Ory-Session-Cache-For": "10"}, 3.0, id="expires-before-cache-for"),
    ],
)
def test_whoami_cache_lifetime(
    expires_in: float | None, headers: dict[str, str], ttl: float
) -> None:
    expires_at = None if expires_in is None else T0 + expires_in
    response = whoami(200, session_json(expires_at=expires_at), **headers)
    result, cache_for = parse_whoami(CONFIG, response, T0)
    assert result.session is not None
    assert cache_for == ttl


def test_whoami_401_is_remembered_for_a_few_seconds() -> None:
    result, ttl = parse_whoami(CONFIG, whoami(401, {"error": {"id": "no_active_session"}}), T0)
    assert result.session is None and result.step_up_to is None
    assert ttl == NO_SESSION_TTL
    short = KratosConfig(public_url=PUBLIC, cache_ttl=2)
    assert parse_whoami(short, whoami(401, {"error": {}}), T0)[1] == 2.0


@modes
async def test_unknown_session_is_asked_once_within_the_401_memory(mode: str) -> None:
    kratos = Scripted()
    kratos.answer(WHOAMI, 401, {"error": {"id": "session_inactive"}})
    client = kratos.client(mode)
    for _ in range(2):
        assert (await client.check(COOKIE, "aal1", APP)).outcome is Outcome.LOGIN
    assert kratos.calls[WHOAMI] == 1


# ------------------------------------------------------- item 5: no denial from the cache alone


@modes
async def test_cached_login_is_asked_again_before_denying(mode: str) -> None:
    kratos = Scripted()
    kratos.answer(WHOAMI, 200, session_json("aal0"))
    client = kratos.client(mode)
    assert (await client.check(COOKIE, "aal1", APP)).outcome is Outcome.LOGIN
    kratos.answer(WHOAMI, 200, session_json("aal1"))
    assert (await client.check(COOKIE, "aal1", APP)).outcome is Outcome.ALLOW
    assert kratos.calls[WHOAMI] == 2
    # The fresh answer replaced the cached one: the next check costs nothing.
    assert (await client.check(COOKIE, "aal1", APP)).outcome is Outcome.ALLOW
    assert kratos.calls[WHOAMI] == 2


@modes
async def test_session_upgraded_in_place_is_allowed_after_one_more_call(mode: str) -> None:
    kratos = Scripted()
    kratos.answer(WHOAMI, 200, session_json("aal1"))
    client = kratos.client(mode)
    assert (await client.check(COOKIE, "aal1", APP)).outcome is Outcome.ALLOW
    kratos.answer(WHOAMI, 200, session_json("aal2"))
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.ALLOW
    assert kratos.calls[WHOAMI] == 2
    assert kratos.calls[PROBE] == 0


# ------------------------------------------------------------------ item 7: mixed WebAuthn keys


def identity_with_keys(*passwordless: Any) -> dict[str, Any]:
    keys = [k if isinstance(k, str) else {"is_passwordless": k} for k in passwordless]
    return {
        "id": "i",
        "schema_id": "default",
        "credentials": {"webauthn": {"config": {"credentials": keys}}},
    }


@pytest.mark.parametrize(
    ("keys", "found"),
    [
        pytest.param((True, False), True, id="passkey-then-security-key"),
        pytest.param((False, True), True, id="security-key-then-passkey"),
        pytest.param((True, True), False, id="two-passkeys"),
        pytest.param(("junk", False), True, id="junk-then-security-key"),
        pytest.param(("junk",), False, id="junk-only"),
        pytest.param((), False, id="no-keys"),
    ],
)
def test_webauthn_keys(keys: tuple[Any, ...], found: bool) -> None:
    response = httpx.Response(200, json=identity_with_keys(*keys))
    assert parse_second_factor(response) is found


def test_webauthn_key_without_flag_is_a_second_factor() -> None:
    body = identity_with_keys(True)
    body["credentials"]["webauthn"]["config"]["credentials"].append({})
    assert parse_second_factor(httpx.Response(200, json=body)) is True


@modes
async def test_passkey_plus_security_key_steps_up_not_enrolls(mode: str) -> None:
    kratos = Scripted(admin_url="http://kratos.test:4434")
    kratos.answer(WHOAMI, 200, session_json("aal1"))
    kratos.answer("/admin/identities/", 200, identity_with_keys(True, False))
    decision = await kratos.client(mode).check(COOKIE, "aal2", APP)
    assert decision.outcome is Outcome.STEP_UP
    assert kratos.calls["/admin/identities/identity-1"] == 1


# ------------------------------------------------ item 11: the second-factor cache and its cap


@modes
@pytest.mark.parametrize(("cache_ttl", "cap"), [(300.0, 60.0), (20.0, 20.0)])
async def test_second_factor_yes_is_cached_up_to_the_cap(
    mode: str, cache_ttl: float, cap: float
) -> None:
    kratos = Scripted(cache_ttl=cache_ttl)
    kratos.answer(WHOAMI, 200, session_json("aal1", expires_at=T0 + 3600))
    kratos.answer(PROBE, 200, flow_json("default", "totp"))
    client = kratos.client(mode)
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.STEP_UP
    kratos.now = T0 + cap - 0.5
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.STEP_UP
    assert kratos.calls[PROBE] == 1
    kratos.now = T0 + cap
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.STEP_UP
    assert kratos.calls[PROBE] == 2


@modes
@pytest.mark.parametrize(("cache_ttl", "cap"), [(300.0, 60.0), (20.0, 20.0)])
async def test_second_factor_no_is_cached_up_to_the_cap(
    mode: str, cache_ttl: float, cap: float
) -> None:
    kratos = Scripted(cache_ttl=cache_ttl)
    kratos.answer(WHOAMI, 200, session_json("aal1", expires_at=T0 + 3600))
    kratos.answer(PROBE, 200, flow_json("default", "password"))
    client = kratos.client(mode)
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.ENROLL
    kratos.now = T0 + cap - 0.5
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.ENROLL
    assert kratos.calls[PROBE] == 1
    kratos.now = T0 + cap
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.ENROLL
    assert kratos.calls[PROBE] == 2


@modes
@pytest.mark.parametrize(("cache_ttl", "cap"), [(300.0, 60.0), (20.0, 20.0)])
async def test_an_aal2_session_teaches_the_second_factor_up_to_the_cap(
    mode: str, cache_ttl: float, cap: float
) -> None:
    kratos = Scripted(cache_ttl=cache_ttl)
    kratos.answer(WHOAMI, 200, session_json("aal2"))
    kratos.answer(PROBE, 200, flow_json("default"))  # the probe would say "none"
    client = kratos.client(mode)
    assert (await client.check(COOKIE, "aal2", APP)).outcome is Outcome.ALLOW
    # Another session of the same identity, still at aal1: stepped up without a probe.
    kratos.answer(WHOAMI, 200, session_json("aal1"))
    other = Credentials(cookie="another-session")
    kratos.now = T0 + cap - 0.5
    assert (await client.check(other, "aal2", APP)).outcome is Outcome.STEP_UP
    assert kratos.calls[PROBE] == 0
    kratos.now = T0 + cap
    assert (await client.check(other, "aal2", APP)).outcome is Outcome.ENROLL
    assert kratos.calls[PROBE] == 1


# --------------------------------------------------------------- item 11: max_age at the limit


def session_completed(seconds_ago: float, aal: str = "aal2") -> Session:
    return Session.from_json(session_json(aal, completed_at=T0 - seconds_ago))


@pytest.mark.parametrize(
    ("seconds_ago", "outcome"),
    [
        (299.0, Outcome.ALLOW),
        (300.0, Outcome.ALLOW),
        (300.000001, Outcome.REAUTHENTICATE),
        (301.0, Outcome.REAUTHENTICATE),
    ],
)
@pytest.mark.parametrize("max_age", [300, 300.0, timedelta(minutes=5)])
def test_max_age_boundary(seconds_ago: float, outcome: Outcome, max_age: Any) -> None:
    # Microseconds: RFC 3339 keeps them, so 300.000001 s ago is one tick past the limit.
    session = Session.from_json(
        session_json("aal2", completed_at=T0 - seconds_ago)
        | {
            "authentication_methods": [
                {
                    "method": "totp",
                    "aal": "aal2",
                    "completed_at": (NOW - timedelta(seconds=seconds_ago)).isoformat(),
                }
            ]
        }
    )
    decision = decide(
        session, Requirement("aal2", max_age=max_age), now=NOW, return_to=APP, config=CONFIG
    )
    assert decision.outcome is outcome


def test_max_age_counts_only_methods_of_the_level() -> None:
    # A fresh password does not refresh a stale second factor for an aal2 route.
    session = Session.from_json(
        session_json("aal2")
        | {
            "authentication_methods": [
                {
                    "method": "totp",
                    "aal": "aal2",
                    "completed_at": (NOW - timedelta(seconds=900)).isoformat(),
                },
                {"method": "password", "aal": "aal1", "completed_at": NOW.isoformat()},
            ]
        }
    )
    rule = Requirement("aal2", max_age=300)
    assert (
        decide(session, rule, now=NOW, return_to=APP, config=CONFIG).outcome
        is Outcome.REAUTHENTICATE
    )
    aal1 = Requirement("aal1", max_age=300)
    assert decide(session, aal1, now=NOW, return_to=APP, config=CONFIG).outcome is Outcome.ALLOW


def test_max_age_reauthenticate_url() -> None:
    decision = decide(
        session_completed(600),
        Requirement("aal2", max_age=300),
        now=NOW,
        return_to=APP,
        config=CONFIG,
    )
    assert query(decision.redirect_to) == {"aal": ["aal2"], "refresh": ["true"], "return_to": [APP]}


# ------------------------------------------------------------------------ item 10: Requirement


@pytest.mark.parametrize(
    "methods",
    [{"webauthn", ""}, {""}, ["totp", ""], ("webauthn", 5), "webauthn", set()],
)
def test_requirement_methods_rejects_empty_and_odd_names(methods: Any) -> None:
    from kratos_aal import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"Requirement\.methods"):
        Requirement("aal2", methods=methods)


def test_requirement_is_frozen_and_hashable() -> None:
    rule = Requirement("aal2", max_age=60, methods=["totp", "webauthn"])
    with pytest.raises(AttributeError):
        rule.aal = "aal1"  # type: ignore[misc, assignment]
    same = Requirement("aal2", max_age=60.0, methods={"webauthn", "totp"})
    assert rule == same and hash(rule) == hash(same)
    assert len({rule, same, Requirement("aal1")}) == 2
    assert rule.methods == frozenset({"totp", "webauthn"}) and rule.max_age == 60.0


# ----------------------------------------------------------- item 12: rebase and token logout


def test_rebase_without_return_to_keeps_kratos_return_to() -> None:
    url = "http://kratos:4433/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fkratos-own"
    kept = f"{PUBLIC}/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fkratos-own"
    assert rebase(CONFIG, url, None) == kept
    assert rebase(CONFIG, url, "") == kept
    assert rebase(CONFIG, url, APP) == (
        f"{PUBLIC}/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Fapp.test%2Fbilling"
    )


@modes
@pytest.mark.parametrize(
    "credentials",
    [Credentials(token="ory_st_abc"), Credentials(token="ory_st_abc", bearer=True)],
    ids=["x-session-token", "bearer"],
)
async def test_logout_for_token_credentials_makes_no_call(
    mode: str, credentials: Credentials
) -> None:
    kratos = Scripted()
    kratos.answer(
        "/self-service/logout/browser", 200, {"logout_url": f"{PUBLIC}/self-service/logout?token=t"}
    )
    client = kratos.client(mode)
    assert await client.call("logout_url", credentials, APP) is None
    assert sum(kratos.calls.values()) == 0
    # A cookie does get a logout flow: the test above can fail.
    url = await client.call("logout_url", COOKIE, APP)
    assert url == f"{PUBLIC}/self-service/logout?token=t&return_to=http%3A%2F%2Fapp.test%2Fbilling"
    assert kratos.calls["/self-service/logout/browser"] == 1


# ------------------------------------------------------------- error ids, logout, rebase


@pytest.mark.parametrize("error", [{"id": 5}, {"id": None}, {"code": 403}, "forbidden", None])
def test_403_with_an_odd_error_id_is_unavailable(error: Any) -> None:
    with pytest.raises(KratosUnavailable) as raised:
        parse_whoami(CONFIG, whoami(403, {"error": error}), T0)
    assert str(raised.value) == "Kratos answered 403"
    assert raised.value.status_code == 403


def test_403_with_another_error_id_names_it() -> None:
    with pytest.raises(KratosUnavailable, match=r"^Kratos answered 403 security_csrf_violation$"):
        parse_whoami(CONFIG, whoami(403, {"error": {"id": "security_csrf_violation"}}), T0)


def test_parse_logout_answers() -> None:
    with pytest.raises(KratosUnavailable) as raised:
        parse_logout(CONFIG, whoami(404, {}), None)
    assert str(raised.value) == "Kratos answered 404 to logout"
    assert raised.value.status_code == 404
    bodies: list[Any] = [[], {"logout_url": 5}, {}]
    for body in bodies:
        with pytest.raises(MalformedResponse, match=r"^Kratos sent no logout_url$"):
            parse_logout(CONFIG, whoami(200, body), None)
    for status in (401, 403):
        assert parse_logout(CONFIG, whoami(status, {}), None) is None


@modes
async def test_logout_urls_are_never_cached(mode: str) -> None:
    kratos = Scripted()
    logout = f"{PUBLIC}/self-service/logout?token=t"
    kratos.answer("/self-service/logout/browser", 200, {"logout_url": logout})
    client = kratos.client(mode)
    for calls in (1, 2):
        assert await client.call("logout_url", COOKIE) == logout
        assert kratos.calls["/self-service/logout/browser"] == calls


def logout_for(request: httpx.Request) -> httpx.Response:
    token = request.headers["cookie"].partition("=")[2]
    return httpx.Response(200, json={"logout_url": f"{PUBLIC}/self-service/logout?token={token}"})


def test_concurrent_logouts_of_two_users_are_not_shared_threads() -> None:
    both = threading.Barrier(2, timeout=2)

    def handle(request: httpx.Request) -> httpx.Response:
        with contextlib.suppress(threading.BrokenBarrierError):
            both.wait()  # both requests in flight at once (or one alone, after 2 s)
        return logout_for(request)

    client = KratosClient(
        KratosConfig(public_url=PUBLIC),
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
    )
    users = [Credentials(cookie="user-a"), Credentials(cookie="user-b")]
    with ThreadPoolExecutor(2) as pool:
        urls = list(pool.map(client.logout_url, users))
    assert urls == [
        f"{PUBLIC}/self-service/logout?token=user-a",
        f"{PUBLIC}/self-service/logout?token=user-b",
    ]


async def test_concurrent_logouts_of_two_users_are_not_shared_asyncio() -> None:
    arrived: list[httpx.Request] = []
    both = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        arrived.append(request)
        if len(arrived) == 2:
            both.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(both.wait(), 2)
        return logout_for(request)

    client = AsyncKratosClient(
        KratosConfig(public_url=PUBLIC),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
    )
    urls = list(
        await asyncio.gather(
            client.logout_url(Credentials(cookie="user-a")),
            client.logout_url(Credentials(cookie="user-b")),
        )
    )
    assert urls == [
        f"{PUBLIC}/self-service/logout?token=user-a",
        f"{PUBLIC}/self-service/logout?token=user-b",
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            "http://kratos:4433/self-service/login/browser?flow=&aal=aal2",
            f"{PUBLIC}/self-service/login/browser?flow=&aal=aal2",
            id="blank-values-kept",
        ),
        pytest.param(
            "http://kratos:4433/prefix/self-service/a/self-service/b",
            f"{PUBLIC}/self-service/a/self-service/b",
            id="first-self-service",
        ),
    ],
)
def test_rebase_keeps_the_query_and_the_path_from_the_first_self_service(
    given: str, expected: str
) -> None:
    assert rebase(CONFIG, given, None) == expected
