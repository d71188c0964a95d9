"""``load_session`` on a public page when Kratos cannot answer: 503 or "could not check".

Never a 500, never "not signed in" by accident: left uncaught, the middleware answers the
503 with ``Retry-After`` that a rule would get; caught as ``KratosUnavailable``, the page
renders and says it could not check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from kratos_aal.exceptions import KratosAALError, KratosUnavailable
from kratos_aal.integrations.starlette import KratosAALMiddleware, load_session
from kratos_aal.testing import FakeKratos

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


async def uncaught(request: Request) -> PlainTextResponse:
    session = await load_session(request)
    return PlainTextResponse(f"signed in: {session.id}" if session else "nobody")


async def caught(request: Request) -> PlainTextResponse:
    try:
        session = await load_session(request)
    except KratosUnavailable as error:
        return PlainTextResponse(f"could not check (retry after {error.retry_after})")
    return PlainTextResponse(f"signed in: {session.id}" if session else "nobody")


def starlette_app(fake: FakeKratos) -> Any:
    return Starlette(
        routes=[Route("/", uncaught), Route("/caught", caught)],
        middleware=[Middleware(KratosAALMiddleware, client=fake.async_client())],
    )


def fastapi_app(fake: FakeKratos) -> Any:
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())
    app.add_api_route("/", uncaught)
    app.add_api_route("/caught", caught)
    return app


@pytest.fixture(params=[starlette_app, fastapi_app], ids=["starlette", "fastapi"])
async def http(
    request: pytest.FixtureRequest, fake: FakeKratos
) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: a 500 must show as a 500 here, not as an exception.
    transport = httpx.ASGITransport(app=request.param(fake), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_kratos_up_reads_the_session(http: httpx.AsyncClient, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    assert (await http.get("/", headers={"Cookie": session.cookie_header})).text == (
        f"signed in: {session.id}"
    )
    assert (await http.get("/")).text == "nobody"


async def test_uncaught_is_the_503_page_with_retry_after(
    http: httpx.AsyncClient, fake: FakeKratos
) -> None:
    session = fake.session("aal1")
    fake.fail("status", status=502, times=None)
    reply = await http.get("/", headers={**HTML, "Cookie": session.cookie_header})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"].isdigit()
    assert "Please try again in a moment" in reply.text
    assert session.id not in reply.text


async def test_uncaught_json_is_kratos_envelope(http: httpx.AsyncClient, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    fake.fail("status", status=429, retry_after=17, times=None)
    reply = await http.get("/", headers={**JSON, "Cookie": session.cookie_header})
    assert (reply.status_code, reply.headers["Retry-After"]) == (503, "17")
    assert reply.json()["error"]["id"] == "kratos_unavailable"
    token = await http.get("/", headers={"X-Session-Token": session.token})
    assert token.status_code == 503 and token.json()["error"]["id"] == "kratos_unavailable"


async def test_caught_renders_could_not_check(http: httpx.AsyncClient, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    fake.fail("status", status=429, retry_after=17, times=None)
    reply = await http.get("/caught", headers={**HTML, "Cookie": session.cookie_header})
    assert (reply.status_code, reply.text) == (200, "could not check (retry after 17)")


async def test_no_credentials_asks_nothing_even_when_kratos_is_down(
    http: httpx.AsyncClient, fake: FakeKratos
) -> None:
    fake.fail("status", status=502, times=None)
    assert (await http.get("/", headers=HTML)).text == "nobody"


@pytest.mark.parametrize("caught_as", [KratosUnavailable, KratosAALError])
async def test_an_apps_own_unavailable_handler_keeps_answering_after_a_denial(
    fake: FakeKratos, caught_as: type[Exception]
) -> None:
    # A dependency's denial makes the app answer KratosDenied itself (deny_in_scope); the
    # app's own handler of KratosUnavailable must still answer load_session's trouble after
    # that, as it did before the first denial.
    from fastapi import Depends

    from kratos_aal.integrations.fastapi import require_aal2

    app = fastapi_app(fake)

    async def own(request: Request, error: Exception) -> PlainTextResponse:
        return PlainTextResponse("own could-not-check page", status_code=503)

    app.add_exception_handler(caught_as, own)
    app.add_api_route("/billing", uncaught, dependencies=[Depends(require_aal2)])
    session = fake.session("aal1")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for _ in range(2):  # before and after a dependency's denial
            fake.fail("status", status=502)
            reply = await http.get("/", headers={**HTML, "Cookie": session.cookie_header})
            assert (reply.status_code, reply.text) == (503, "own could-not-check page")
            denied = await http.get("/billing", headers=JSON)
            assert denied.json()["error"]["id"] == "session_inactive"


def mounted_starlette(fake: FakeKratos) -> Any:
    inner = Starlette(routes=[Route("/", uncaught), Route("/caught", caught)])
    return Starlette(
        routes=[Mount("/inner", app=inner)],
        middleware=[Middleware(KratosAALMiddleware, client=fake.async_client())],
    )


def mounted_fastapi(fake: FakeKratos) -> Any:
    inner = FastAPI()
    inner.add_api_route("/", uncaught)
    inner.add_api_route("/caught", caught)
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())
    app.mount("/inner", inner)
    return app


@pytest.mark.parametrize("build", [mounted_starlette, mounted_fastapi])
async def test_a_mounted_apps_uncaught_trouble_is_the_503_not_its_500(
    fake: FakeKratos, build: Callable[[FakeKratos], Any]
) -> None:
    # The mounted app's own error middleware would answer the uncaught exception with a
    # 500 before the middleware above could: the app that runs load_session answers it.
    session = fake.session("aal1")
    fake.fail("status", status=429, retry_after=17, times=None)
    transport = httpx.ASGITransport(app=build(fake), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        reply = await http.get("/inner/", headers={**JSON, "Cookie": session.cookie_header})
        assert (reply.status_code, reply.headers.get("Retry-After")) == (503, "17"), reply.text
        assert reply.json()["error"]["id"] == "kratos_unavailable"
        page = await http.get("/inner/", headers={**HTML, "Cookie": session.cookie_header})
        assert page.status_code == 503 and "Please try again in a moment" in page.text
        caught_page = await http.get("/inner/caught", headers={"Cookie": session.cookie_header})
        assert (caught_page.status_code, caught_page.text) == (
            200,
            "could not check (retry after 17)",
        )
