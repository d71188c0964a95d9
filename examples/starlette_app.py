"""A Starlette app with a public page, an aal1 page, an aal2 page and a fresh-aal2 page.

Run it against Kratos (or `kratos-aal demo`'s FakeKratos) on 127.0.0.1:4433:

    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 uvicorn examples.starlette_app:app --port 8000
"""

from __future__ import annotations

import html
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from kratos_aal import AsyncKratosClient, KratosConfig
from kratos_aal.integrations.starlette import (
    KratosAALMiddleware,
    get_session,
    load_session,
    require_aal,
    require_aal2,
)


def page(title: str, request: Request, text: str) -> HTMLResponse:
    session = get_session(request)
    who = f"Signed in at {session.aal.value}" if session else "Not signed in (or not checked here)"
    return HTMLResponse(
        f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p><p><small>{html.escape(who)}</small></p>"
        '<nav><a href="/">Home</a> · <a href="/account">Account (aal1)</a> · '
        '<a href="/billing">Billing (aal2)</a> · '
        '<a href="/billing/transfer">Transfer (aal2, 5 min)</a></nav>'
    )


async def home(request: Request) -> HTMLResponse:
    session = await load_session(request)
    text = "Anyone may see this page."
    if session and session.identity:
        text += f" You are {session.identity.traits.get('email', session.identity.id)}."
    return page("Home", request, text)


async def account(request: Request) -> HTMLResponse:  # protected by the /account rule
    return page("Account", request, "A password is enough here (aal1).")


@require_aal2
async def billing(request: Request) -> HTMLResponse:
    return page("Billing", request, "This page needs a second factor (aal2).")


@require_aal("aal2", max_age=300)
async def transfer(request: Request) -> HTMLResponse:
    return page("Transfer", request, "This page needs a second factor used in the last 5 minutes.")


@require_aal2
async def balance(request: Request) -> JSONResponse:
    session = get_session(request)
    return JSONResponse({"balance": 42, "aal": session.aal.value if session else None})


def create_app(
    *, config: KratosConfig | None = None, client: AsyncKratosClient | None = None
) -> Starlette:
    """Build the app; tests pass a client wired to FakeKratos."""
    if client is None and config is None:
        config = KratosConfig.from_env({"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ})
    kratos = {"client": client} if client is not None else {"config": config}
    return Starlette(
        routes=[
            Route("/", home),
            Route("/account", account),
            Route("/billing", billing, methods=["GET", "POST"]),
            Route("/billing/transfer", transfer, methods=["GET", "POST"]),
            Route("/api/balance", balance),
        ],
        middleware=[Middleware(KratosAALMiddleware, rules={"/account/*": "aal1"}, **kratos)],
    )


app = create_app()
