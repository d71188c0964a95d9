"""What only the ASGI adapter does: decorators, scopes, websockets, lifespan, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from kratos_aal import ConfigurationError, KratosClient, KratosConfig, Requirement
from kratos_aal.integrations.starlette import (
    KratosAALMiddleware,
    KratosUser,
    get_session,
    load_session,
    require_aal,
    require_aal2,
)
from kratos_aal.testing import FakeKratos

from .websocket import websocket

RAN: list[str] = []


@require_aal2
def sync_endpoint(request: Request) -> PlainTextResponse:
    RAN.append("sync")
    session = get_session(request)
    assert session is request.state.kratos_session
    return PlainTextResponse(f"sync {session.aal.value if session else None}")


@require_aal("aal1", max_age=60)
async def fresh_aal1(request: Request) -> PlainTextResponse:
    return PlainTextResponse("fresh")


@require_aal
async def bare_require_aal(request: Request) -> PlainTextResponse:
    return PlainTextResponse("bare")


@require_aal2(methods={"webauthn"})
async def webauthn_only(request: Request) -> PlainTextResponse:
    return PlainTextResponse("webauthn")


class Transfers(HTTPEndpoint):
    @require_aal2
    async def get(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("list")

    @require_aal2
    async def post(self, request: Request) -> PlainTextResponse:
        RAN.append("post")
        return PlainTextResponse("sent")


@requires("aal2")
async def scoped(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, KratosUser)
    return JSONResponse(
        {"scopes": request.auth.scopes, "user": user.display_name, "id": user.identity}
    )


async def whoami_page(request: Request) -> PlainTextResponse:
    session = await load_session(request)
    return PlainTextResponse(session.id if session else "anonymous")


async def ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    session = get_session(websocket)
    await websocket.send_text(session.aal.value if session else "none")
    await websocket.close()


@require_aal2
async def ws_decorated(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("decorated")
    await websocket.close()


def build(fake: FakeKratos, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/sync", sync_endpoint),
            Route("/fresh", fresh_aal1),
            Route("/bare", bare_require_aal),
            Route("/webauthn", webauthn_only),
            Route("/transfers", Transfers),
            Route("/scoped", scoped),
            Route("/rule/{rest:path}", lambda r: PlainTextResponse("rule")),
            Route("/whoami", whoami_page),
            WebSocketRoute("/ws/live", ws_endpoint),
            WebSocketRoute("/open/ws", ws_endpoint),
            WebSocketRoute("/decorated/ws", ws_decorated),
        ],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                client=fake.async_client(),
                rules={"/rule/*": "aal2", "/ws/*": "aal2"},
                **options,
            )
        ],
    )


@pytest.fixture
async def client(fake: FakeKratos) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(fake))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def cookie(session: Any) -> dict[str, str]:
    return {"Cookie": session.cookie_header}


async def test_sync_endpoint_and_session_attached(
    client: httpx.AsyncClient, fake: FakeKratos
) -> None:
    RAN.clear()
    assert (
        await client.get("/sync", headers=cookie(fake.session("aal1", totp=True)))
    ).status_code == 303
    assert RAN == []
    reply = await client.get("/sync", headers=cookie(fake.session("aal2")))
    assert (reply.status_code, reply.text, RAN) == (200, "sync aal2", ["sync"])
    assert sync_endpoint.__name__ == "sync_endpoint"  # functools.wraps kept


async def test_decorator_variants(client: httpx.AsyncClient, fake: FakeKratos) -> None:
    fresh, old = fake.session("aal1"), fake.session("aal1", authenticated_at=120)
    assert (await client.get("/fresh", headers=cookie(fresh))).status_code == 200
    stale = await client.get("/fresh", headers=cookie(old))
    assert "refresh=true" in stale.headers["location"]
    assert (await client.get("/bare", headers=cookie(fake.session("aal2")))).text == "bare"
    webauthn = await client.get("/webauthn", headers=cookie(fake.session("aal2")))
    assert webauthn.status_code == 303 and "refresh=true" in webauthn.headers["location"]
    keyed = fake.session("aal2", methods=["password", "webauthn"])
    assert (await client.get("/webauthn", headers=cookie(keyed))).text == "webauthn"


async def test_http_endpoint_methods(client: httpx.AsyncClient, fake: FakeKratos) -> None:
    RAN.clear()
    aal1 = fake.session("aal1", totp=True)
    assert (await client.get("/transfers", headers=cookie(fake.session("aal2")))).text == "list"
    denied = await client.post(
        "/transfers", headers={**cookie(aal1), "Referer": "http://testserver/transfers"}
    )
    assert denied.status_code == 303 and RAN == []
    assert "return_to=http%3A%2F%2Ftestserver%2Ftransfers" in denied.headers["location"]


async def test_starlette_auth_scopes(client: httpx.AsyncClient, fake: FakeKratos) -> None:
    # Scopes are set where a rule or decorator checked the session; here a rule does.
    app = Starlette(
        routes=[Route("/scoped", scoped)],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/scoped": "aal1"})
        ],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        aal2 = fake.session("aal2")
        reply = await http.get("/scoped", headers=cookie(aal2))
        assert reply.json() == {
            "scopes": ["authenticated", "aal1", "aal2"],
            "user": aal2.identity.email,
            "id": aal2.identity.id,
        }
        assert (await http.get("/scoped", headers=cookie(fake.session("aal1")))).status_code == 403


async def test_rules_glob(client: httpx.AsyncClient, fake: FakeKratos) -> None:
    assert (
        await client.get("/rule/a/b/c", headers=cookie(fake.session("aal1")))
    ).status_code == 303
    assert (await client.get("/rule/a", headers=cookie(fake.session("aal2")))).text == "rule"


async def test_load_session_for_public_pages(client: httpx.AsyncClient, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    assert (await client.get("/whoami", headers=cookie(session))).text == session.id
    assert (await client.get("/whoami")).text == "anonymous"
    strict = FakeKratos()
    app = build(strict)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        hidden = strict.session("aal1", totp=True)  # whoami 403: withheld
        assert (await http.get("/whoami", headers=cookie(hidden))).text == "anonymous"


def test_websockets(fake: FakeKratos) -> None:
    app = build(fake)
    assert websocket(app, "/ws/live", cookie(fake.session("aal2"))) == "aal2"
    for headers in ({}, cookie(fake.session("aal1", totp=True))):
        assert websocket(app, "/ws/live", headers).startswith("1008 "), headers
    assert websocket(app, "/open/ws") == "none"  # no rule: no Kratos call
    assert websocket(app, "/decorated/ws").startswith("1008 ")
    assert websocket(app, "/decorated/ws", cookie(fake.session("aal2"))) == "decorated"


def test_lifespan_passes_through(fake: FakeKratos) -> None:
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    from contextlib import asynccontextmanager

    app = Starlette(
        routes=[],
        lifespan=asynccontextmanager(lifespan),
        middleware=[Middleware(KratosAALMiddleware, client=fake.async_client())],
    )
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


async def test_decorator_without_middleware_names_it() -> None:
    app = Starlette(routes=[Route("/x", fresh_aal1)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        with pytest.raises(RuntimeError, match="require_aal needs KratosAALMiddleware"):
            await http.get("/x")


async def test_decorator_needs_a_request_argument() -> None:
    @require_aal2
    async def not_an_endpoint(value: int) -> int:
        return value

    with pytest.raises(TypeError, match="Request"):
        await not_an_endpoint(1)


def test_middleware_configuration_errors(fake: FakeKratos) -> None:
    app = Starlette()
    with pytest.raises(ConfigurationError, match="config= or client="):
        KratosAALMiddleware(app)
    with pytest.raises(ConfigurationError, match="config= or client="):
        KratosAALMiddleware(app, config=fake.config(), client=fake.async_client())
    with pytest.raises(ConfigurationError, match="AsyncKratosClient"):
        KratosAALMiddleware(app, client=KratosClient(fake.config()))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"rules\['/x'\]"):
        KratosAALMiddleware(app, config=fake.config(), rules={"/x": "aal9"})
    with pytest.raises(ConfigurationError, match="must be a path"):
        KratosAALMiddleware(app, config=fake.config(), rules={"x/*": "aal1"})
    with pytest.raises(ConfigurationError, match="map path globs"):
        KratosAALMiddleware(app, config=fake.config(), rules=["/x"])  # type: ignore[arg-type]
    made = KratosAALMiddleware(
        app, config=KratosConfig(public_url="http://k"), rules={"/a": Requirement("aal1")}
    )
    assert made.rules.match("/a") == Requirement("aal1") and made.rules.match("/b") is None


async def test_trusted_host_middleware_refuses_foreign_hosts(fake: FakeKratos) -> None:
    app = Starlette(
        routes=[Route("/rule/x", lambda r: PlainTextResponse("x"))],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=["testserver"]),
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/rule/*": "aal2"}),
        ],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        assert (await http.get("/rule/x", headers={"Host": "evil.example"})).status_code == 400
        assert (await http.get("/rule/x")).status_code == 303


def test_lifespan_closes_the_client_the_middleware_made(fake: FakeKratos) -> None:
    app = Starlette(routes=[], middleware=[Middleware(KratosAALMiddleware, config=fake.config())])
    with TestClient(app):
        stack: Any = app.middleware_stack
        middleware = stack.app  # ServerErrorMiddleware wraps ours
        assert isinstance(middleware, KratosAALMiddleware)
    assert len(middleware.client._loops) == 0


async def test_hop_cookie_stays_on_pages_that_did_not_check(client: httpx.AsyncClient) -> None:
    # A public page never checked the session: the loop counter is not its to reset.
    reply = await client.get("/whoami", headers={"Cookie": "kratos_aal_hops=abc.1.1"})
    assert reply.status_code == 200 and "set-cookie" not in reply.headers


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_the_relay_reads_bytes_like_header_values(fake: FakeKratos, kind: Any) -> None:
    # r27 finding: an app below that sends bytearray header values (the relay read them
    # before issue 27) got a 500 on an allowed request that carried the hop cookie.
    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(kind(b"content-type"), kind(b"text/plain"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    app = KratosAALMiddleware(raw_app, client=fake.async_client(), rules={"/x": "aal1"})
    session = fake.session("aal1")
    headers = {"Cookie": f"{session.cookie_header}; kratos_aal_hops=abc.1.1"}
    # Starlette's TestClient: httpx's ASGITransport itself takes no bytearray.
    http = TestClient(app, raise_server_exceptions=False)
    for _ in range(2):  # the whole way, then the hit path
        reply = http.get("/x", headers=headers)
        assert (reply.status_code, reply.text) == (200, "ok")
        assert reply.headers["set-cookie"].startswith("kratos_aal_hops=; ")


async def test_load_session_reuses_what_a_rule_attached(fake: FakeKratos) -> None:
    async def page(request: Request) -> PlainTextResponse:
        first = await load_session(request)
        return PlainTextResponse(f"{first.id if first else None} {fake.calls['/sessions/whoami']}")

    app = Starlette(
        routes=[Route("/p", page)],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/p": "aal1"})
        ],
    )
    session = fake.session("aal1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        assert (await http.get("/p", headers=cookie(session))).text == f"{session.id} 1"
