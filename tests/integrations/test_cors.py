"""Issue 9 item 2: CORS middleware outside kratos-aal; forged preflights reach no handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos

SPA = "http://spa.example"
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
PREFLIGHT = {"Origin": SPA, "Access-Control-Request-Method": "PUT"}
FORGED = {"Access-Control-Request-Method": "GET"}  # no Origin, no cookie: curl, not a browser
RULES = {"/billing/*": "aal2"}


async def secret(request: Request) -> PlainTextResponse:
    return PlainTextResponse("SECRET")


def add_cors(app: Any) -> None:
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[SPA],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=True,
    )


def cors() -> Middleware:
    return Middleware(
        CORSMiddleware,
        allow_origins=[SPA],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=True,
    )


def spa_client(fake: FakeKratos) -> Any:
    # The SPA posts with the cookie from its own origin: kratos-aal must trust it (§4a).
    return fake.async_client(trusted_origins=[SPA])


def starlette_app(fake: FakeKratos, cors_outside: bool) -> Any:
    kratos = Middleware(KratosAALMiddleware, client=spa_client(fake), rules=RULES)
    # Starlette's first middleware is the outermost.
    stack = [cors(), kratos] if cors_outside else [kratos, cors()]
    return Starlette(routes=[Route("/billing", secret, methods=ALL_METHODS)], middleware=stack)


def fastapi_app(fake: FakeKratos, cors_outside: bool) -> Any:
    app = FastAPI()
    app.add_api_route("/billing", secret, methods=ALL_METHODS)
    # add_middleware puts each new middleware outside the ones added before.
    if cors_outside:
        app.add_middleware(KratosAALMiddleware, client=spa_client(fake), rules=RULES)
        add_cors(app)
    else:
        add_cors(app)
        app.add_middleware(KratosAALMiddleware, client=spa_client(fake), rules=RULES)
    return app


APPS: dict[str, Callable[[FakeKratos, bool], Any]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


@pytest.mark.parametrize("framework", sorted(APPS))
def test_spa_preflight_and_request_succeed_with_cors_outside(framework: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    with TestClient(APPS[framework](fake, True)) as client:
        preflight = client.options("/billing", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == SPA
        assert preflight.text != "SECRET"
        assert fake.calls["/sessions/whoami"] == 0
        cookie = fake.session("aal2").cookie_header
        actual = client.put("/billing", headers={"Origin": SPA, "Cookie": cookie})
        assert (actual.status_code, actual.text) == (200, "SECRET")
        assert actual.headers["access-control-allow-origin"] == SPA
        # Another origin, allowed by no one: refused before the handler, CORS or not.
        other = client.put("/billing", headers={"Origin": "http://evil.example", "Cookie": cookie})
        assert other.status_code == 403 and "SECRET" not in other.text


@pytest.mark.parametrize("framework", sorted(APPS))
@pytest.mark.parametrize("cors_outside", [True, False], ids=["cors-outside", "cors-inside"])
@pytest.mark.parametrize(
    "headers", [PREFLIGHT, FORGED, {"Origin": "http://evil.example", **FORGED}]
)
def test_forged_preflight_reaches_no_handler(
    framework: str, cors_outside: bool, headers: dict[str, str]
) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    with TestClient(APPS[framework](fake, cors_outside), follow_redirects=False) as client:
        reply = client.options("/billing", headers={"Accept": "text/html", **headers})
        assert "SECRET" not in reply.text
        assert reply.status_code in (200, 303, 400)
        if not cors_outside or "Origin" not in headers:
            # Nothing answered it before kratos-aal: it is denied like any request.
            assert reply.status_code == 303


@pytest.mark.parametrize("framework", sorted(APPS))
@pytest.mark.parametrize("cors_outside", [True, False], ids=["cors-outside", "cors-inside"])
def test_get_with_preflight_headers_is_denied(framework: str, cors_outside: bool) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    with TestClient(APPS[framework](fake, cors_outside), follow_redirects=False) as client:
        reply = client.get("/billing", headers={"Accept": "text/html", **PREFLIGHT})
        assert reply.status_code == 303
        assert "SECRET" not in reply.text
