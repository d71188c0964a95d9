"""Property tests: whatever Kratos (or an attacker) sends, only typed errors, and never a wrong ALLOW."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosAALError,
    KratosClient,
    KratosConfig,
    Outcome,
    Requirement,
    Session,
)
from kratos_aal._decision import decide
from kratos_aal._kratos_api import parse_whoami

CONFIG = KratosConfig(public_url="http://kratos:4433", cache_ttl=0)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
aal_texts = st.sampled_from(["aal0", "aal1", "aal2", "aal3", "AAL2", "", "aal9"]) | st.text(
    max_size=5
)
moments = st.integers(min_value=-400 * 86400, max_value=400 * 86400).map(
    lambda seconds: (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
)
method_entries = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["password", "totp", "webauthn", "oidc", "lookup_secret"])
        | st.text(max_size=8),
        "aal": aal_texts | st.none(),
        "completed_at": moments | st.text(max_size=12) | st.none(),
        "provider": st.text(max_size=8) | st.none(),
    },
)
sessions = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=12)},
    optional={
        "active": st.booleans() | json_values,
        "authenticator_assurance_level": aal_texts | st.none(),
        "expires_at": moments | st.none() | st.text(max_size=10),
        "authenticated_at": moments | st.none(),
        "authentication_methods": st.lists(method_entries, max_size=4) | json_values,
        "identity": st.none()
        | st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=8)},
            optional={
                "state": st.sampled_from(["active", "inactive"]) | st.none(),
                "traits": json_values,
            },
        ),
    },
)
requirements = st.builds(
    Requirement,
    aal=st.sampled_from(["aal1", "aal2"]),
    max_age=st.none() | st.integers(min_value=1, max_value=10**6),
    methods=st.none()
    | st.sets(st.sampled_from(["password", "totp", "webauthn", "passkey"]), min_size=1),
)


@EXAMPLES
@given(status=st.integers(min_value=100, max_value=599), body=json_values | sessions)
def test_parse_whoami_raises_only_typed_errors(status: int, body: Any) -> None:
    response = httpx.Response(status, json=body)
    try:
        result, ttl = parse_whoami(CONFIG, response, NOW.timestamp())
    except KratosAALError:
        return
    assert ttl >= 0
    if result.session is not None:
        assert status == 200 and result.session.active is True


@EXAMPLES
@given(raw=st.binary(max_size=200))
def test_parse_whoami_on_any_bytes(raw: bytes) -> None:
    try:
        result, _ = parse_whoami(CONFIG, httpx.Response(200, content=raw), NOW.timestamp())
    except KratosAALError:
        return
    assert result.session is not None and result.session.active


@EXAMPLES
@given(body=sessions, requirement=requirements, second_factor=st.booleans())
def test_allow_only_for_an_active_session_that_meets_the_requirement(
    body: dict[str, Any], requirement: Requirement, second_factor: bool
) -> None:
    try:
        session = Session.from_json(body)
    except KratosAALError:
        return
    decision = decide(
        session,
        requirement,
        now=NOW,
        return_to="http://app/x",
        config=CONFIG,
        has_second_factor=second_factor,
    )
    if decision.outcome is not Outcome.ALLOW:
        assert decision.redirect_to is not None
        assert decision.redirect_to.startswith("http://kratos:4433/self-service/")
        return
    assert session.is_active(NOW)
    assert session.aal >= requirement.aal
    used = [m for m in session.authentication_methods if m.aal >= requirement.aal]
    if requirement.max_age is not None:
        newest = max(m.completed_at for m in used if m.completed_at is not None)
        assert (NOW - newest).total_seconds() <= requirement.max_age
    if requirement.methods is not None:
        assert {m.method for m in used} & requirement.methods


header_names = st.sampled_from(
    ["Cookie", "cookie", "X-Session-Token", "Authorization", "authorization", "Accept"]
) | st.text(max_size=10)
header_values = st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1"))


@EXAMPLES
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=6), as_bytes=st.booleans())
def test_any_headers_give_credentials_and_never_show_them(
    headers: list[tuple[str, str]], as_bytes: bool
) -> None:
    pairs: Any = [(n.encode(), v.encode()) for n, v in headers] if as_bytes else headers
    credentials = Credentials.from_headers(pairs)
    # The repr is one of three fixed texts: it cannot show a value.
    assert repr(credentials) in (
        "Credentials()",
        "Credentials(cookie=<redacted>)",
        "Credentials(token=<redacted>)",
    )
    for value in (credentials.cookie, credentials.token):
        if value:
            assert (
                value.isascii() and value.isprintable() and " " not in value and len(value) <= 4096
            )


@EXAMPLES
@given(
    body=json_values | sessions,
    status=st.sampled_from([200, 401, 403, 404, 429, 500, 503]),
    requirement=requirements,
)
def test_clients_never_allow_what_kratos_did_not_vouch_for(
    body: Any, status: int, requirement: Requirement
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(handler)
    with KratosClient(
        CONFIG, http_client=httpx.Client(transport=transport), timer=NOW.timestamp
    ) as client:
        decision = client.check(Credentials(cookie="abc"), requirement, "http://app/x")

    async def async_check() -> Any:
        async with httpx.AsyncClient(transport=transport) as http:
            aclient = AsyncKratosClient(CONFIG, http_client=http, timer=NOW.timestamp)
            return await aclient.check(Credentials(cookie="abc"), requirement, "http://app/x")

    async_decision = asyncio.run(async_check())
    assert decision.outcome is async_decision.outcome
    if decision.outcome is Outcome.ALLOW:
        assert status == 200
        session = Session.from_json(body)
        assert session.is_active(NOW) and session.aal >= requirement.aal
    if decision.outcome is Outcome.UNAVAILABLE:
        assert decision.retry_after and decision.redirect_to is None


# Header values as a server may send them: any byte but CR, LF and NUL, non-ASCII digits
# (``¹``, ``٣``) included, which ``str.isdigit`` takes and ``int`` refuses.
raw_header_values = st.binary(max_size=12).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
) | st.text(alphabet="0123456789\u00b9\u00b2\u00b3\u0663\U0001d7d7 -.e", max_size=6).map(
    lambda text: text.encode()
)


@EXAMPLES
@given(
    status=st.sampled_from([200, 401, 403, 429, 500, 503]),
    retry_after=raw_header_values,
    cache_for=raw_header_values,
    depth=st.integers(min_value=0, max_value=3000),
)
def test_any_headers_and_nesting_end_in_a_decision(
    status: int, retry_after: bytes, cache_for: bytes, depth: int
) -> None:
    body = b"[" * depth + b"]" * depth if depth else b'{"error": {"id": "x"}}'

    def answer(request: httpx.Request) -> httpx.Response:
        headers = [(b"Retry-After", retry_after), (b"Ory-Session-Cache-For", cache_for)]
        return httpx.Response(status, headers=headers, content=body)

    transport = httpx.MockTransport(answer)
    credentials = Credentials(cookie="abc")
    blocking = KratosClient(CONFIG, http_client=httpx.Client(transport=transport))
    awaitable = AsyncKratosClient(CONFIG, http_client=httpx.AsyncClient(transport=transport))
    decisions = [
        blocking.check(credentials, "aal1", "http://app/"),
        asyncio.run(awaitable.check(credentials, "aal1", "http://app/")),
    ]
    for decision in decisions:
        assert decision.outcome is not Outcome.ALLOW
        if decision.outcome is Outcome.UNAVAILABLE:
            assert decision.retry_after is not None and decision.retry_after >= 0
