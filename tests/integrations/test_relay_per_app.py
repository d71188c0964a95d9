"""Issue 27 item 5: whether the middleware relays a hit is decided per app, never per process.

A FastAPI app in the process (its RequireAAL, its middleware) changes nothing for a plain
Starlette app beside it: a cache hit there with no hop cookie still reaches the app with
the hit path's own send (no relay), on sync and async endpoints alike.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kratos_aal import Session
from kratos_aal.integrations._starlette_middleware import _Relay
from kratos_aal.integrations.fastapi import require_aal2
from kratos_aal.integrations.starlette import KratosAALMiddleware, get_session
from kratos_aal.testing import FakeKratos


class SendRecorder:
    """Raw ASGI middleware below KratosAALMiddleware: notes the send it is handed."""

    def __init__(self, app: Any, seen: list[Any]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(send)
        await self.app(scope, receive, send)


def starlette_app(fake: FakeKratos, seen: list[Any], *, sync: bool) -> Starlette:
    if sync:

        def endpoint(request: Request) -> PlainTextResponse:
            session = get_session(request)
            return PlainTextResponse(session.id if session else "none")

    else:

        async def endpoint(request: Request) -> PlainTextResponse:  # type: ignore[misc]
            session = get_session(request)
            return PlainTextResponse(session.id if session else "none")

    return Starlette(
        routes=[Route("/billing", endpoint)],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/billing": "aal2"}),
            Middleware(SendRecorder, seen=seen),
        ],
    )


def fastapi_app(fake: FakeKratos, seen: list[Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/billing")
    async def billing(session: Annotated[Session, Depends(require_aal2)]) -> str:
        return session.id

    app.add_middleware(SendRecorder, seen=seen)
    app.add_middleware(KratosAALMiddleware, client=fake.async_client())
    return app


def is_hit_path(send: Any) -> bool:
    """Whether *send* is the hit path's (no relay): the stream watch ``_watching`` makes."""
    return getattr(send, "__qualname__", "") == "_watching.<locals>.watch"


@pytest.mark.parametrize("sync", [False, True], ids=["async endpoint", "sync endpoint"])
def test_a_starlette_app_beside_a_fastapi_app_keeps_its_own_hit_path(sync: bool) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    cookie = {"Cookie": session.cookie_header}
    seen_fastapi: list[Any] = []
    seen_starlette: list[Any] = []
    api = fastapi_app(fake, seen_fastapi)
    plain = starlette_app(fake, seen_starlette, sync=sync)
    with TestClient(api) as fastapi_client, TestClient(plain) as starlette_client:
        for _ in range(2):  # the whole way, then a cache hit, on both apps in turn
            assert fastapi_client.get("/billing", headers=cookie).json() == session.id
            assert starlette_client.get("/billing", headers=cookie).text == session.id
    # FastAPI's dependency (no rule) is relayed every time, so that a denial it raises
    # below is answered: that is this app's middleware, not the process's.
    assert [type(send) for send in seen_fastapi] == [_Relay, _Relay]
    # The Starlette app: relayed the whole way (its hop cookie may need clearing), then
    # the hit path's own send, FastAPI's import and requests notwithstanding.
    assert isinstance(seen_starlette[0], _Relay)
    assert is_hit_path(seen_starlette[1]), seen_starlette[1]
    assert fake.calls["/sessions/whoami"] == 2  # one per app: the second requests were hits
