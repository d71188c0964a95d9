"""Cross-origin requests on the cookie (SPEC §4a) on Starlette, FastAPI, WSGI and Flask.

Each app counts the runs of its protected view. Every case first warms the cache with a
GET, so that a refusal is shown to come before the cache-hit path too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from kratos_aal import Session
from kratos_aal.integrations import fastapi as kfastapi
from kratos_aal.integrations import flask as kflask
from kratos_aal.integrations import starlette as kstarlette
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

from .websocket import websocket

HERE = "http://testserver"
SPA = "https://spa.example"
JSON = {"Accept": "application/json"}


@dataclass
class App:
    """One protected ``/transfer`` (any method) and how many times its view ran."""

    send: Callable[..., Any]
    ran: list[str]
    framework: str


def _counting(ran: list[str]) -> Callable[[], None]:
    return lambda: ran.append("ran")


# ------------------------------------------------------------------------------- builders

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _asgi_sender(app: Any) -> Callable[..., Any]:
    client = TestClient(app, base_url=HERE, follow_redirects=False)
    return lambda method, headers: client.request(method, "/transfer", headers=headers)


def starlette_rule(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []
    count = _counting(ran)

    def sync_view(request: Request) -> PlainTextResponse:
        count()
        return PlainTextResponse("done")

    async def async_view(request: Request) -> PlainTextResponse:
        count()
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/transfer", sync_view if sync else async_view, methods=METHODS)],
        middleware=[
            Middleware(
                kstarlette.KratosAALMiddleware,
                client=fake.async_client(**config),
                rules={"/transfer": "aal2"},
            )
        ],
    )
    return App(_asgi_sender(app), ran, "starlette")


def starlette_decorator(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []
    count = _counting(ran)

    @kstarlette.require_aal2
    def sync_view(request: Request) -> PlainTextResponse:
        count()
        return PlainTextResponse("done")

    @kstarlette.require_aal("aal1")
    async def async_view(request: Request) -> PlainTextResponse:
        count()
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/transfer", sync_view if sync else async_view, methods=METHODS)],
        middleware=[Middleware(kstarlette.KratosAALMiddleware, client=fake.async_client(**config))],
    )
    return App(_asgi_sender(app), ran, "starlette")


Aal2 = Annotated[Session, Depends(kfastapi.require_aal2)]
Aal1 = Annotated[Session, Depends(kfastapi.require_aal1)]


def fastapi_dependency(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []
    count = _counting(ran)
    app = FastAPI()
    app.add_middleware(kfastapi.KratosAALMiddleware, client=fake.async_client(**config))
    if sync:

        @app.api_route("/transfer", methods=METHODS)
        def transfer_sync(session: Aal2) -> str:
            count()
            return "done"

    else:

        @app.api_route("/transfer", methods=METHODS)
        async def transfer(session: Aal1) -> str:
            count()
            return "done"

    return App(_asgi_sender(app), ran, "fastapi")


def _wsgi_sender(app: Any) -> Callable[..., Any]:
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=HERE)
    return lambda method, headers: client.request(method, "/transfer", headers=headers)


def wsgi_rule(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append("ran")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    app = KratosAALWSGIMiddleware(view, client=fake.client(**config), rules={"/transfer": "aal2"})
    return App(_wsgi_sender(app), ran, "wsgi")


def _flask(fake: FakeKratos, rules: dict[str, str] | None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {
        "PUBLIC_URL": fake.public_url,
        **({"RULES": rules} if rules else {}),
    }
    kflask.KratosAAL(app, client=fake.client(**config))
    return app


def flask_rule(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []
    app = _flask(fake, {"/transfer": "aal2"}, **config)

    if sync:

        @app.route("/transfer", methods=METHODS)
        def transfer() -> str:
            ran.append("ran")
            return "done"

    else:

        @app.route("/transfer", methods=METHODS)
        async def transfer_async() -> str:
            ran.append("ran")
            return "done"

    return App(_wsgi_sender(app), ran, "wsgi")


def flask_decorator(fake: FakeKratos, sync: bool, **config: Any) -> App:
    ran: list[str] = []
    app = _flask(fake, None, **config)

    if sync:

        @app.route("/transfer", methods=METHODS)
        @kflask.require_aal2
        def transfer() -> str:
            ran.append("ran")
            return "done"

    else:

        @app.route("/transfer", methods=METHODS)
        @kflask.require_aal("aal1")
        async def transfer_async() -> str:
            ran.append("ran")
            return "done"

    return App(_wsgi_sender(app), ran, "wsgi")


BUILDERS: dict[str, Callable[..., App]] = {
    "starlette-rule": starlette_rule,
    "starlette-decorator": starlette_decorator,
    "fastapi-dependency": fastapi_dependency,
    "wsgi-rule": wsgi_rule,
    "flask-rule": flask_rule,
    "flask-decorator": flask_decorator,
}
KINDS = [
    pytest.param((name, sync), id=f"{name}-{'sync' if sync else 'async'}")
    for name in BUILDERS
    for sync in ((True,) if name == "wsgi-rule" else (True, False))
]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def build(kind: tuple[str, bool]) -> Callable[..., tuple[App, Any]]:
    def make(**config: Any) -> tuple[App, Any]:
        fake = FakeKratos(whoami_required_aal="aal1")
        session = fake.session("aal2")
        app = BUILDERS[kind[0]](fake, kind[1], **config)
        warm = app.send("GET", {"Cookie": session.cookie_header, **JSON})
        assert warm.status_code == 200 and app.ran == ["ran"]  # cached from here on
        app.ran.clear()
        return app, (fake, session)

    return make


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_cross_site_request_on_the_cookie_is_refused(
    build: Callable[..., tuple[App, Any]], method: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, (fake, session) = build()
    calls = fake.calls["/sessions/whoami"]
    headers = {
        "Cookie": session.cookie_header,
        "Sec-Fetch-Site": "cross-site",
        "Origin": "https://attacker.example",
        **JSON,
    }
    with caplog.at_level(logging.INFO, logger="kratos_aal.audit"):
        reply = app.send(method, headers)
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["id"] == "security_csrf_violation"
    assert app.ran == []
    assert fake.calls["/sessions/whoami"] == calls  # refused before Kratos is asked
    [record] = [r for r in caplog.records if r.name == "kratos_aal.audit"]
    audited: Any = record
    assert audited.outcome == "cross_origin" and audited.method == method
    assert audited.framework == app.framework and audited.path == "/transfer"
    assert session.cookie not in record.getMessage() + str(record.__dict__)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:8001"}, id="sfs"),
        pytest.param({"Origin": "http://other.testserver"}, id="old-browser-origin"),
        pytest.param({"Origin": "null"}, id="origin-null"),
    ],
)
def test_a_browser_form_from_another_origin_gets_a_page(
    build: Callable[..., tuple[App, Any]], headers: dict[str, str]
) -> None:
    app, (_, session) = build()
    reply = app.send(
        "POST",
        {
            "Cookie": session.cookie_header,
            "Accept": "text/html",
            "Content-Type": "application/x-www-form-urlencoded",
            **headers,
        },
    )
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("text/html")
    assert "Request refused" in reply.text and "location" not in reply.headers
    assert app.ran == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": HERE}, id="same-origin"),
        pytest.param({"Origin": HERE}, id="old-browser-same-origin"),
        pytest.param({"Sec-Fetch-Site": "none"}, id="user-initiated"),
        pytest.param({}, id="not-a-browser"),
    ],
)
def test_a_same_origin_request_runs(
    build: Callable[..., tuple[App, Any]], headers: dict[str, str]
) -> None:
    app, (_, session) = build()
    reply = app.send("POST", {"Cookie": session.cookie_header, **JSON, **headers})
    assert reply.status_code == 200 and app.ran == ["ran"]


def test_a_trusted_origin_runs(build: Callable[..., tuple[App, Any]]) -> None:
    app, (_, session) = build(trusted_origins=[SPA])
    headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site", **JSON}
    assert app.send("POST", {**headers, "Origin": SPA}).status_code == 200
    assert app.send("POST", {**headers, "Origin": "https://evil.example"}).status_code == 403
    assert app.ran == ["ran"]


@pytest.mark.parametrize("bearer", [False, True], ids=["x-session-token", "bearer"])
def test_a_token_client_is_untouched(build: Callable[..., tuple[App, Any]], bearer: bool) -> None:
    app, (_, session) = build()
    token = (
        {"Authorization": f"Bearer {session.token}"}
        if bearer
        else {"X-Session-Token": session.token, "Cookie": session.cookie_header}
    )
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://attacker.example", **token}
    assert app.send("POST", headers).status_code == 200 and app.ran == ["ran"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_safe_method_is_untouched(build: Callable[..., tuple[App, Any]], method: str) -> None:
    app, (_, session) = build()
    headers = {
        "Cookie": session.cookie_header,
        "Sec-Fetch-Site": "cross-site",
        "Origin": "https://attacker.example",
    }
    reply = app.send(method, headers)
    if method == "GET":
        assert reply.status_code == 200 and app.ran == ["ran"]
    else:  # the framework's own answer (405, its automatic OPTIONS), never the refusal
        assert reply.status_code != 403, reply.text


def test_protection_off_lets_it_run(build: Callable[..., tuple[App, Any]]) -> None:
    app, (_, session) = build(cross_origin_protection=False)
    headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site", **JSON}
    assert app.send("POST", headers).status_code == 200 and app.ran == ["ran"]


def test_without_a_session_the_answer_is_login_as_before(
    build: Callable[..., tuple[App, Any]],
) -> None:
    app, _ = build()
    reply = app.send("POST", {"Sec-Fetch-Site": "cross-site", **JSON})
    assert reply.status_code == 401 and reply.json()["error"]["id"] == "session_inactive"
    assert app.ran == []


# ----------------------------------------------------------------------------- websockets


def _ws_endpoint(opened: list[str]) -> Callable[[WebSocket], Any]:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        opened.append("open")
        await websocket.send_text("hello")
        await websocket.close()

    return endpoint


def _ws_apps(fake: FakeKratos, **config: Any) -> Iterator[tuple[str, Any, list[str]]]:
    """A WebSocket under a rule (Starlette and FastAPI) and under the decorator."""
    for name in ("starlette-rule", "starlette-decorator", "fastapi-rule"):
        opened: list[str] = []
        endpoint = _ws_endpoint(opened)
        client = fake.async_client(**config)
        if name == "fastapi-rule":
            app: Any = FastAPI()
            app.add_api_websocket_route("/ws", endpoint)
            app.add_middleware(kfastapi.KratosAALMiddleware, client=client, rules={"/ws": "aal1"})
        else:
            rules = {"/ws": "aal1"} if name == "starlette-rule" else None
            route = endpoint if rules else kstarlette.require_aal("aal1")(endpoint)
            app = Starlette(
                routes=[WebSocketRoute("/ws", route)],
                middleware=[Middleware(kstarlette.KratosAALMiddleware, client=client, rules=rules)],
            )
        yield name, app, opened


def _connect(app: Any, headers: dict[str, str]) -> str:
    return websocket(app, "/ws", headers)


def test_a_websocket_from_a_foreign_origin_is_closed_before_accept() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal1")
    cookie = {"Cookie": session.cookie_header}
    for name, app, opened in _ws_apps(fake):
        calls = fake.calls["/sessions/whoami"]
        for origin in ("https://attacker.example", "null", "http://testserver:8001"):
            closed = _connect(app, {**cookie, "Origin": origin})
            assert closed == "1008 Cross-origin WebSocket refused", (name, origin)
        assert opened == [] and fake.calls["/sessions/whoami"] == calls, name
        # The same origin, a token, or no Origin at all (not a browser): it opens.
        assert _connect(app, {**cookie, "Origin": HERE}) == "hello", name
        token = {"X-Session-Token": session.token, "Origin": "https://attacker.example"}
        assert _connect(app, token) == "hello", name
        assert _connect(app, cookie) == "hello", name
        # No session at all: closed as before.
        assert _connect(app, {"Origin": HERE}) == "1008 Kratos session required", name
        assert opened == ["open"] * 3, name


def test_a_websocket_from_a_trusted_origin_opens_and_protection_off_opens_any() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    cookie = {"Cookie": fake.session("aal1").cookie_header}
    for name, app, _ in _ws_apps(fake, trusted_origins=[SPA]):
        assert _connect(app, {**cookie, "Origin": SPA}) == "hello", name
        assert _connect(app, {**cookie, "Origin": "https://x.example"}).startswith("1008"), name
    for name, app, _ in _ws_apps(fake, cross_origin_protection=False):
        assert _connect(app, {**cookie, "Origin": "https://x.example"}) == "hello", name


# A WSGI server that upgrades (gunicorn with gevent or eventlet, Werkzeug's own) hands the
# handshake to the app as a GET, with Upgrade: websocket; flask-sock routes it as a Flask
# rule with websocket=True. Refused before the app runs it: a 403 fails the handshake.
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def _wsgi_ws_apps(fake: FakeKratos, **config: Any) -> Iterator[tuple[str, Any, list[str]]]:
    """A handshake path under the WSGI middleware's rule, a Flask rule and the decorator."""
    opened: list[str] = []

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        opened.append("open")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    rules = {"/ws": "aal1"}
    yield (
        "wsgi-rule",
        KratosAALWSGIMiddleware(view, client=fake.client(**config), rules=rules),
        opened,
    )
    for name in ("flask-rule", "flask-decorator"):
        opened = []
        app = _flask(fake, rules if name == "flask-rule" else None, **config)

        def endpoint(opened: list[str] = opened) -> str:
            opened.append("open")
            return "hello"

        guarded = endpoint if name == "flask-rule" else kflask.require_aal("aal1")(endpoint)
        app.add_url_rule("/ws", "ws", guarded, websocket=True)
        yield name, app, opened


def _handshake(app: Any, headers: dict[str, str]) -> httpx.Response:
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=HERE)
    return client.get("/ws", headers={**HANDSHAKE, **headers})


def test_a_wsgi_websocket_handshake_from_a_foreign_origin_is_refused() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal1")
    cookie = {"Cookie": session.cookie_header}
    for name, app, opened in _wsgi_ws_apps(fake):
        calls = fake.calls["/sessions/whoami"]
        for origin in ("https://attacker.example", "null", "http://testserver:8001"):
            reply = _handshake(app, {**cookie, "Origin": origin, **JSON})
            assert reply.status_code == 403, (name, origin, reply.status_code)
            assert reply.json()["error"]["id"] == "security_csrf_violation", name
        assert opened == [] and fake.calls["/sessions/whoami"] == calls, name
        # The same origin, a token, or no Origin at all (not a browser): it runs.
        assert _handshake(app, {**cookie, "Origin": HERE}).text == "hello", name
        token = {"X-Session-Token": session.token, "Origin": "https://attacker.example"}
        assert _handshake(app, token).text == "hello", name
        assert _handshake(app, cookie).text == "hello", name
        assert opened == ["open"] * 3, name


def test_a_wsgi_websocket_from_a_trusted_origin_runs_and_protection_off_runs_any() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    cookie = {"Cookie": fake.session("aal1").cookie_header}
    for name, app, _ in _wsgi_ws_apps(fake, trusted_origins=[SPA]):
        assert _handshake(app, {**cookie, "Origin": SPA}).status_code == 200, name
        assert _handshake(app, {**cookie, "Origin": "https://x.example"}).status_code == 403, name
    for name, app, _ in _wsgi_ws_apps(fake, cross_origin_protection=False):
        assert _handshake(app, {**cookie, "Origin": "https://x.example"}).status_code == 200, name
