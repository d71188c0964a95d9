"""A rule that allows above a stricter check below: the loop guard still counts.

A path rule allows the request (aal1) and a stricter dependency, decorator or inner
middleware below sends the browser to Kratos (aal2). The denial's ``Set-Cookie`` counts
the hop; the rule's clearing of the counter (for an allowed request that carried one) must
not be added to that denial, or the counter would restart on every bounce and the loop
page would never come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kratos_aal import Session
from kratos_aal._web import HOP_COOKIE, MAX_HOPS
from kratos_aal.integrations import fastapi as fastapi_aal
from kratos_aal.integrations import flask as flask_aal
from kratos_aal.integrations import starlette as starlette_aal
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos
from kratos_aal.testing._serve import serve

RULE = {"/pay": "aal1"}


def fastapi_app(fake: FakeKratos) -> Any:
    app = FastAPI()
    app.add_middleware(fastapi_aal.KratosAALMiddleware, client=fake.async_client(), rules=RULE)

    @app.get("/pay")
    async def pay(session: Annotated[Session, Depends(fastapi_aal.require_aal2)]) -> str:
        return "paid"

    return app


def starlette_app(fake: FakeKratos) -> Any:
    @starlette_aal.require_aal2
    async def pay(request: Request) -> PlainTextResponse:
        return PlainTextResponse("paid")

    middleware = [
        Middleware(starlette_aal.KratosAALMiddleware, client=fake.async_client(), rules=RULE)
    ]
    return Starlette(routes=[Route("/pay", pay)], middleware=middleware)


def flask_app(fake: FakeKratos) -> Any:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": fake.public_url, "RULES": RULE}
    flask_aal.KratosAAL(app, client=fake.client())

    @app.get("/pay")
    @flask_aal.require_aal2
    def pay() -> str:
        return "paid"

    return app


def wsgi_app(fake: FakeKratos) -> Any:
    def paid(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"paid"]

    inner = KratosAALWSGIMiddleware(paid, client=fake.client(), rules={"/pay": "aal2"})
    return KratosAALWSGIMiddleware(inner, client=fake.client(), rules=RULE)


@contextmanager
def in_process(app: Any, asgi: bool) -> Iterator[httpx.Client]:
    if asgi:
        # A thread of its own with uvicorn: the ASGI apps on a real port.
        with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield client
    else:
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            yield client


APPS: dict[str, tuple[Callable[[FakeKratos], Any], bool]] = {
    "fastapi": (fastapi_app, True),
    "starlette": (starlette_app, True),
    "flask": (flask_app, False),
    "wsgi": (wsgi_app, False),
}


def hop_cookie(reply: httpx.Response, before: str | None) -> str | None:
    """Return the hop cookie a browser keeps after *reply*: its Set-Cookies, in order."""
    kept = before
    for line in reply.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        if name == HOP_COOKIE:
            value = rest.split(";")[0]
            kept = None if "Max-Age=0" in rest or not value else value
    return kept


@pytest.mark.parametrize("name", sorted(APPS))
def test_the_loop_page_comes_though_a_rule_above_allows(name: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, asgi = APPS[name]
    session = fake.session("aal1", totp=True)  # aal1 allowed above, aal2 denied below
    hops: str | None = None
    statuses = []
    with in_process(build(fake), asgi) as http:
        for _ in range(MAX_HOPS + 1):
            cookie = session.cookie_header + (f"; {HOP_COOKIE}={hops}" if hops else "")
            reply = http.get("/pay", headers={"Accept": "text/html", "Cookie": cookie})
            statuses.append(reply.status_code)
            hops = hop_cookie(reply, hops)
    assert statuses == [303] * MAX_HOPS + [409]
