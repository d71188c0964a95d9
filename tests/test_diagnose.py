"""Runtime diagnosis: what keeps requests from a verdict is said at WARNING, once per cause."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosClient,
    KratosConfig,
    Outcome,
    _diagnose,
)
from kratos_aal._web import error_body
from kratos_aal.testing import FakeKratos

from .conftest import Driver

APP = "http://testserver/billing"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    _diagnose.reset()
    yield
    _diagnose.reset()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kratos_aal" and r.levelno == logging.WARNING
    ]


class Switch:
    """A transport that fails as told until switched to answer as FakeKratos."""

    def __init__(self, fake: FakeKratos, error: Exception) -> None:
        self.inner = fake.transport()
        self.error: Exception | None = error

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            raise self.error
        return self.inner.handle_request(request)


def refused() -> httpx.ConnectError:
    error = httpx.ConnectError("[Errno 111] Connection refused")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


def make(fake: FakeKratos, switch: Switch, mode: str) -> Driver:
    config = KratosConfig(public_url="http://kratos.test:4433", cache_ttl=0)
    if mode == "sync":
        return Driver(
            KratosClient(config, http_client=httpx.Client(transport=httpx.MockTransport(switch))),
            mode,
        )

    async def answer(request: httpx.Request) -> httpx.Response:
        return switch(request)

    client = AsyncKratosClient(
        config, http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )
    return Driver(client, mode)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unreachable_kratos_is_said_once_until_it_answers_again(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeKratos(public_url="http://kratos.test:4433", whoami_required_aal="aal1")
    session = fake.session("aal2")
    credentials = Credentials(cookie=session.cookie)
    switch = Switch(fake, refused())
    driver = make(fake, switch, mode)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        for _ in range(3):
            decision = await driver.check(credentials, "aal1", APP)
            assert (decision.outcome, decision.cause) == (Outcome.UNAVAILABLE, "connect")
        assert warnings(caplog) == [
            "Kratos at http://kratos.test:4433 could not be reached: the connection was "
            "refused. Requests that carry a session get 503 until it answers (check "
            "public_url / KRATOS_PUBLIC_URL)."
        ]
        switch.error = None  # Kratos is back
        assert (await driver.check(credentials, "aal1", APP)).allowed
        switch.error = httpx.ReadTimeout("timed out")  # and gone again: said again
        decision = await driver.check(credentials, "aal1", APP)
        assert (decision.outcome, decision.cause) == (Outcome.UNAVAILABLE, "timeout")
    said = warnings(caplog)
    assert len(said) == 2 and "could not be reached: timed out" in said[1]
    assert session.cookie not in caplog.text
    await driver.close()


def test_a_timeout_said_two_ways_is_one_cause(caplog: pytest.LogCaptureFixture) -> None:
    # A dripping Kratos fails one request on a read's timeout and the next on the
    # exchange's deadline: said in turn, the two made a WARNING line per request.
    url = "http://kratos.test:4433"
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        for _ in range(3):
            _diagnose.unreachable(url, _diagnose.TIMEOUT, "timed out")
            _diagnose.unreachable(url, _diagnose.TIMEOUT, "it did not answer within 0.1 s")
        assert len(warnings(caplog)) == 1
        _diagnose.unreachable(url, _diagnose.CONNECT, "the connection was refused")
    said = warnings(caplog)
    assert len(said) == 2 and "the connection was refused" in said[1]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        pytest.param(refused(), "the connection was refused", id="refused"),
        pytest.param(httpx.ConnectError("x"), "the connection failed", id="other"),
        pytest.param(httpx.ConnectTimeout("x"), "timed out", id="connect-timeout"),
    ],
)
def test_each_kind_of_trouble_is_named(error: Exception, words: str) -> None:
    assert words in _diagnose.cause_of(error)[1]


def test_dns_and_tls_are_named() -> None:
    dns = httpx.ConnectError("x")
    dns.__context__ = socket.gaierror(-2, "Name or service not known")
    assert _diagnose.cause_of(dns) == ("connect", "its host name does not resolve (DNS)")
    tls = httpx.ConnectError("x")
    tls.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert _diagnose.cause_of(tls) == ("connect", "the TLS handshake failed")
    worded = httpx.ConnectError("[Errno -2] Name or service not known")
    assert _diagnose.cause_of(worded)[1] == "its host name does not resolve (DNS)"


async def test_a_closed_port_is_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = KratosConfig(public_url=url, timeout=5)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        with KratosClient(config) as client:
            decision = client.check(Credentials(cookie="abc"), "aal1", APP)
        async with AsyncKratosClient(config) as aclient:
            adecision = await aclient.check(Credentials(cookie="abc"), "aal1", APP)
    for made in (decision, adecision):
        assert (made.outcome, made.cause) == (Outcome.UNAVAILABLE, "connect")
    assert warnings(caplog) == [
        f"Kratos at {url} could not be reached: the connection was refused. Requests that "
        "carry a session get 503 until it answers (check public_url / KRATOS_PUBLIC_URL)."
    ]


def test_the_503_says_what_happened() -> None:
    from kratos_aal._decision import Decision

    def reason(cause: str | None) -> str:
        body = error_body(Decision(Outcome.UNAVAILABLE, retry_after=5, cause=cause))
        return str(json.loads(json.dumps(body))["error"]["reason"])

    assert "could not connect to Ory Kratos" in reason("connect")
    assert "did not answer in time" in reason("timeout")
    assert "could not answer properly" in reason(None)


async def test_highest_available_is_named_once(
    make_driver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    strict = FakeKratos(whoami_required_aal="highest_available")
    driver = make_driver(strict)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        for _ in range(2):
            session = strict.session("aal1", totp=True)
            decision = await driver.check(Credentials(cookie=session.cookie), "aal1", APP)
            assert decision.outcome is Outcome.STEP_UP
        # An aal2 route's step-up is what the route asks for: nothing to say there.
        await driver.check(
            Credentials(cookie=strict.session("aal1", totp=True).cookie), "aal2", APP
        )
    assert warnings(caplog) == [
        "Kratos answered session_aal2_required to a whoami made for an aal1 route: Kratos's "
        "session.whoami.required_aal is highest_available; set it to aal1 (docs/kratos.md), "
        "or users with a second factor are sent through step-up on every aal1 route."
    ]


async def test_an_aal2_route_alone_says_nothing(
    make_driver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    strict = FakeKratos(whoami_required_aal="highest_available")
    driver = make_driver(strict)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        session = strict.session("aal1", totp=True)
        decision = await driver.check(Credentials(cookie=session.cookie), "aal2", APP)
    assert decision.outcome is Outcome.STEP_UP
    assert warnings(caplog) == []
