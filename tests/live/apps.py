"""The apps the long-lived connection tests serve: each has a counter over a WebSocket and
over an event stream, plain and with ``max_age``, and a logout that invalidates.

Configured from ``KRATOS_*`` variables (``KratosConfig.from_env``) and ``LIVE_MAX_AGE``.
Served by uvicorn (``--factory tests.live.apps:starlette_app`` or ``fastapi_app``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from kratos_aal import KratosConfig, Requirement, Session
from kratos_aal._credentials import asgi_credentials
from kratos_aal.integrations.fastapi import RequireAAL
from kratos_aal.integrations.starlette import KratosAALMiddleware, middleware_of

#: Seconds between two counter messages.
TICK = 0.1


def max_age() -> float:
    return float(os.environ.get("LIVE_MAX_AGE", "3600"))


async def counter(websocket: Any) -> None:
    await websocket.accept()
    number = 0
    while True:
        await websocket.send_text(str(number))
        number += 1
        await asyncio.sleep(TICK)


async def events() -> AsyncIterator[str]:
    number = 0
    while True:
        yield f"data: {number}\n\n"
        number += 1
        await asyncio.sleep(TICK)


def stream() -> StreamingResponse:
    return StreamingResponse(events(), media_type="text/event-stream")


async def sse(request: Request) -> Response:
    return stream()


async def logout(request: Request) -> Response:
    # The app's logout view: invalidate(), here and (cache_url) on every instance.
    middleware = middleware_of(request, "logout")
    credentials = asgi_credentials(request.scope["headers"], middleware.config.cookie_name)
    middleware.client.invalidate(credentials)
    return PlainTextResponse("bye")


async def public(request: Request) -> Response:
    return PlainTextResponse("ok")


def _middleware(rules: dict[str, Any]) -> list[Middleware]:
    return [Middleware(KratosAALMiddleware, config=KratosConfig.from_env(), rules=rules)]


def starlette_app() -> Starlette:
    """Rules protect the routes."""
    rules = {
        "/live/*-fresh": Requirement("aal1", max_age=max_age()),
        "/live/*": "aal1",
    }
    return Starlette(
        routes=[
            WebSocketRoute("/live/ws", counter),
            WebSocketRoute("/live/ws-fresh", counter),
            Route("/live/sse", sse),
            Route("/live/sse-fresh", sse),
            Route("/logout", logout),
            Route("/public", public),
        ],
        middleware=_middleware(rules),
    )


# Module level: the endpoints' annotations are strings (``from __future__``), resolved here.
plain = RequireAAL("aal1")
fresh = RequireAAL("aal1", max_age=max_age())


def fastapi_app() -> FastAPI:
    """Dependencies protect the endpoints (no rules)."""
    app = FastAPI(middleware=_middleware({}))

    @app.websocket("/live/ws")
    async def ws(websocket: WebSocket, session: Annotated[Session, Depends(plain)]) -> None:
        await counter(websocket)

    @app.websocket("/live/ws-fresh")
    async def ws_fresh(websocket: WebSocket, session: Annotated[Session, Depends(fresh)]) -> None:
        await counter(websocket)

    @app.get("/live/sse")
    async def sse_plain(session: Annotated[Session, Depends(plain)]) -> StreamingResponse:
        return stream()

    @app.get("/live/sse-fresh")
    async def sse_fresh(session: Annotated[Session, Depends(fresh)]) -> StreamingResponse:
        return stream()

    app.add_route("/logout", logout)
    app.add_route("/public", public)
    return app
