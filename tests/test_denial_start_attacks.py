"""A KratosDenied that reaches KratosAALMiddleware: answered once, only while nothing started.

An attacker's pass on how a cache hit's watch knows the app has started: kept first in
the scope (a53265f), which other layers and calls share, so a start the server never got
swallowed a later denial; now kept per call, as the whole way's relay keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from kratos_aal._web import WebResponse
from kratos_aal._web.hops import HOP_MARK
from kratos_aal.integrations._starlette_denial import KratosDenied
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos

Sent = list[tuple[str, Any]]


def _cookie_get(path: str, session: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "scheme": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"cookie", session.cookie_header.encode()), (b"host", b"127.0.0.1:8000")],
    }


async def _request() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def _recorder() -> tuple[Sent, Any]:
    sent: Sent = []

    async def send(message: Any) -> None:
        sent.append((message["type"], message.get("status", message.get("body"))))

    return sent, send


def _starts(sent: Sent) -> list[Any]:
    return [status for kind, status in sent if kind == "http.response.start"]


def _denial() -> KratosDenied:
    return KratosDenied(WebResponse(403, [("Content-Type", "text/plain")], b"no"))


@pytest.fixture
def aal2_session(fake: FakeKratos) -> Any:
    return fake.session("aal2")


async def test_a_scope_reused_by_a_fallback_above_still_gets_the_denial(
    fake: FakeKratos, aal2_session: Any
) -> None:
    # An SPA-style fallback above the middleware holds the first answer, and on a 404
    # rewrites the path in place and calls again with the same scope dict. The first
    # (held, never sent) 404 must not stop the second call's denial from being answered.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/billing/index":
            raise _denial()  # before any start of this call
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"missing"})

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/billing/*": "aal2"})

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        held: list[Any] = []

        async def hold(message: Any) -> None:
            held.append(message)

        await guarded(scope, receive, hold)
        if held and held[0].get("status") == 404:
            scope["path"] = "/billing/index"
            await guarded(scope, receive, send)
        else:
            for message in held:
                await send(message)

    for _ in range(3):  # the whole way, then cache hits (the watch)
        sent, send = _recorder()
        await fallback(_cookie_get("/billing/x", aal2_session), _request, send)
        assert _starts(sent) == [403], sent


async def test_an_inner_start_that_never_reached_the_server_does_not_swallow_a_denial(
    fake: FakeKratos, aal2_session: Any
) -> None:
    # The outer middleware's app holds a mounted app's answer (the mounted app has its
    # own middleware) and, on a 404, hands over to a raw app that raises a denial. The
    # inner middleware's watch saw a start; the server did not: the outer must answer.
    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"missing"})

    async def strict(scope: Any, receive: Any, send: Any) -> None:
        raise _denial()

    client = fake.async_client()
    inner = KratosAALMiddleware(mounted, client=client, rules={"/billing": "aal2"})

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        held: list[Any] = []

        async def hold(message: Any) -> None:
            held.append(message)

        await inner(scope, receive, hold)
        if held and held[0].get("status") == 404:
            await strict(scope, receive, send)
        else:
            for message in held:
                await send(message)

    outer = KratosAALMiddleware(fallback, client=client, rules={"/billing": "aal2"})
    for _ in range(3):
        sent, send = _recorder()
        await outer(_cookie_get("/billing", aal2_session), _request, send)
        assert _starts(sent) == [403], sent


@pytest.mark.parametrize("hops", [False, True], ids=["hit-watched", "hit-relayed"])
@pytest.mark.parametrize("after_start", [True, False], ids=["after-start", "before-start"])
async def test_a_denial_raised_below_is_answered_only_before_a_start(
    fake: FakeKratos, aal2_session: Any, hops: bool, after_start: bool
) -> None:
    # A raw ASGI app (no Starlette app to answer it) raises KratosDenied. Before it has
    # started a response the middleware answers with the denial; after, it must not send
    # a second http.response.start (a cache hit without the hop cookie did, before a53265f:
    # its watch kept no "started" as the relay of the whole way does).
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["deny"] and not after_start:
            raise _denial()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["deny"]:
            raise _denial()
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/billing": "aal2"})
    scope = _cookie_get("/billing", aal2_session)
    if hops:
        scope["headers"] = [(b"cookie", scope["headers"][0][1] + f"; {HOP_MARK}x.1.1".encode())]
    for deny in (False, True, True):  # the whole way allows, then hits deny below
        sent, send = _recorder()
        await guarded({**scope, "deny": deny}, _request, send)
        assert _starts(sent) == ([403] if deny and not after_start else [200]), sent


@pytest.mark.parametrize("same_client", [True, False], ids=["same-client", "other-client"])
@pytest.mark.parametrize("after_start", [True, False], ids=["after-start", "before-start"])
async def test_nested_middlewares_answer_a_raw_apps_denial_once(
    fake: FakeKratos, aal2_session: Any, same_client: bool, after_start: bool
) -> None:
    # A mounted app's own middleware under the app's (one scope dict, as Mount shares it).
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not after_start:
            raise _denial()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise _denial()

    client = fake.async_client()
    other = client if same_client else fake.async_client()
    inner = KratosAALMiddleware(app, client=other, rules={"/billing": "aal2"})
    outer = KratosAALMiddleware(inner, client=client, rules={"/billing": "aal2"})
    for _ in range(3):
        sent, send = _recorder()
        await outer(_cookie_get("/billing", aal2_session), _request, send)
        assert _starts(sent) == ([200] if after_start else [403]), sent
        assert ("http.response.body", b"no") not in sent or not after_start, sent


async def test_a_mounted_starlette_apps_500_is_not_followed_by_a_second_start(
    fake: FakeKratos, aal2_session: Any
) -> None:
    # An endpoint of a mounted Starlette app raises KratosDenied itself (not through
    # deny_in_scope): the mounted app's ServerErrorMiddleware sends its 500 and re-raises.
    # The middleware above must not start a second response on a cache hit.
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.routing import Mount, Route

    async def endpoint(request: Request) -> Any:
        raise _denial()

    sub = Starlette(routes=[Route("/billing", endpoint)])
    app = Starlette(
        routes=[Mount("/sub", sub)],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                client=fake.async_client(),
                rules={"/sub/billing": "aal2"},
            )
        ],
    )
    for _ in range(3):
        sent, send = _recorder()
        await app(_cookie_get("/sub/billing", aal2_session), _request, send)
        assert _starts(sent) == [500], sent


async def test_an_event_stream_that_raises_a_denial_after_its_start_gets_no_second_start(
    fake: FakeKratos, aal2_session: Any
) -> None:
    from kratos_aal.integrations._asgi_live import GUARD_KEY, Guard

    guards: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        stream = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": stream})
        guards.append(type(scope.get(GUARD_KEY)) is Guard)
        raise _denial()

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/events": "aal2"})
    for _ in range(3):
        sent, send = _recorder()
        await asyncio.wait_for(guarded(_cookie_get("/events", aal2_session), _request, send), 10)
        assert _starts(sent) == [200], sent
    assert guards == [True, True, True]


async def test_a_dependency_denial_on_a_hit_is_answered_once_by_fastapi(fake: FakeKratos) -> None:
    # The rule (aal1) allows from the cache; require_aal2 below denies: deny_in_scope makes
    # the FastAPI app answer it, once, and the route's output never goes out.
    from fastapi import Depends, FastAPI
    from starlette.middleware import Middleware

    from kratos_aal.integrations.fastapi import require_aal2

    api = FastAPI(
        middleware=[
            Middleware(
                KratosAALMiddleware,
                client=fake.async_client(),
                rules={"/x": "aal1"},
            )
        ]
    )

    @api.get("/x", dependencies=[Depends(require_aal2)])
    async def x() -> str:
        return "secret"

    session = fake.session("aal1")
    for _ in range(3):
        sent, send = _recorder()
        await api(_cookie_get("/x", session), _request, send)
        starts = _starts(sent)
        assert len(starts) == 1 and starts[0] != 200, sent
        assert not any(b"secret" in (body or b"") for kind, body in sent if "body" in kind)


async def test_a_raw_apps_dependency_denial_before_a_start_is_answered_by_the_middleware(
    fake: FakeKratos,
) -> None:
    # No Starlette app runs it: deny_in_scope finds no handlers, the middleware answers.
    from starlette.requests import Request

    from kratos_aal.integrations.fastapi import RequireAAL

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await RequireAAL("aal2")(Request(scope, receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"secret"})

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/x": "aal1"})
    session = fake.session("aal1")
    for _ in range(3):
        sent, send = _recorder()
        await guarded(_cookie_get("/x", session), _request, send)
        starts = _starts(sent)
        assert len(starts) == 1 and starts[0] != 200, sent
        assert ("http.response.body", b"secret") not in sent, sent


class Broken(Exception):
    """What an app's headers generator raises."""


def _raising() -> Any:
    yield (b"x-a", b"1")
    raise Broken


@pytest.mark.parametrize("hops", [False, True], ids=["hit-watched", "hit-relayed"])
async def test_a_denial_after_a_start_whose_headers_raised_is_answered(
    fake: FakeKratos, hops: bool
) -> None:
    # A start whose headers raised never reached the server: it is no start, and a denial
    # after it is answered, on a hit as the whole way (an outside review of 39b5694).
    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Nothing reaches the server: the app denies instead.
        with contextlib.suppress(Broken):
            await send({"type": "http.response.start", "status": 200, "headers": _raising()})
        raise KratosDenied(WebResponse(403, [("Content-Type", "text/plain")], b"no"))

    guarded = KratosAALMiddleware(app, client=fake.async_client(), rules={"/p": "aal2"})
    cookie = fake.session("aal2").cookie_header
    if hops:
        cookie += f"; {HOP_MARK}x.1.1"
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "headers": [(b"cookie", cookie.encode())],
    }
    for run in range(3):  # the whole way, then cache hits
        sent: list[Any] = []

        async def send(message: Any, sent: list[Any] = sent) -> None:
            sent.append((message["type"], message.get("status")))

        await asyncio.wait_for(guarded(dict(scope), _request, send), 10)
        assert ("http.response.start", 403) in sent, (run, sent)
