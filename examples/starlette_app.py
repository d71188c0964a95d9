"""A Starlette app with a public page, an aal1 page, an aal2 page and a fresh-aal2 page.

Run it against Kratos (or `kratos-aal demo`'s FakeKratos) on 127.0.0.1:4433:

    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 uvicorn examples.starlette_app:app --port 8000
"""

from __future__ import annotations

import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from kratos_aal import AsyncKratosClient, Credentials, KratosConfig
from kratos_aal.integrations.starlette import (
    KratosAALMiddleware,
    get_session,
    load_session,
    require_aal,
    require_aal2,
)

STYLE = """
body { font: 16px/1.55 system-ui, sans-serif; max-width: 44rem; margin: 0 auto; padding: 1.5rem;
       color: #1d1d27; }
nav { display: flex; gap: 1rem; flex-wrap: wrap; padding: .75rem 0; border-bottom: 1px solid #ddd; }
.who { background: #f1f1f6; border-radius: 8px; padding: .6rem .9rem; font-size: .95rem; }
li { margin: .4rem 0; } code { background: #f1f1f6; padding: 0 .25rem; border-radius: 4px; }
button { padding: .45rem .9rem; border-radius: 6px; border: 1px solid #888; cursor: pointer; }
.ok { color: #1d6b3a; font-weight: 600; }
"""
STORY = """
<ol>
<li><a href="/account">Account</a> needs a password (<code>aal1</code>).</li>
<li><a href="/billing">Billing</a> needs a second factor (<code>aal2</code>): users with an
authenticator app are asked for a code (step-up); users without one are sent to set one up
(enrollment), and land back here either way.</li>
<li><a href="/billing/transfer">Transfer</a> needs a second factor used in the last 5 minutes
(<code>max_age</code>): after that, Kratos asks again (re-authentication).</li>
<li><a href="/api/balance">/api/balance</a> answers JSON clients with Kratos's own error body.</li>
</ol>
"""


def page(request: Request, title: str, text: str, extra: str = "") -> HTMLResponse:
    session = get_session(request)
    if session is not None:
        who = f"Signed in at <b>{session.aal.value}</b> with {', '.join(session.method_names)}"
        if session.identity:
            email = session.identity.traits.get("email", session.identity.id)
            who = f"{html.escape(str(email))}: {who}"
        who += ' · <a href="/logout">Sign out</a>'
    else:
        who = "Not signed in (or not checked on this page)"
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><nav><a href='/'>Home</a><a href='/account'>Account (aal1)</a>"
        "<a href='/billing'>Billing (aal2)</a>"
        "<a href='/billing/transfer'>Transfer (aal2, 5 min)</a>"
        f"</nav><h1>{html.escape(title)}</h1><p>{text}</p><p class=who>{who}</p>{extra}"
    )


async def home(request: Request) -> HTMLResponse:
    await load_session(request)  # a public page may still show who is signed in
    clock = request.app.state.demo_clock_url
    extra = STORY
    if clock:
        extra += (
            f'<form method="post" action="{html.escape(clock)}">'
            '<input type="hidden" name="seconds" value="600">'
            f'<input type="hidden" name="return_to" value="{html.escape(str(request.url))}">'
            "<button>Demo: move Kratos's clock 10 minutes on</button></form>"
        )
    return page(request, "kratos-aal example", "Anyone may see this page.", extra)


async def account(request: Request) -> HTMLResponse:  # guarded by the "/account/*" rule
    return page(request, "Account", "A password is enough here (<code>aal1</code>).")


@require_aal2
async def billing(request: Request) -> HTMLResponse:
    return page(request, "Billing", "<span class=ok>You used a second factor (aal2).</span>")


@require_aal("aal2", max_age=300)
async def transfer(request: Request) -> HTMLResponse:
    text = "<span class=ok>Second factor used in the last 5 minutes.</span>"
    return page(request, "Transfer", text)


@require_aal2
async def balance(request: Request) -> JSONResponse:
    session = get_session(request)
    return JSONResponse({"balance": 42, "aal": session.aal.value if session else None})


async def logout(request: Request) -> RedirectResponse:
    client: AsyncKratosClient = request.app.state.kratos
    cookie_name = client.config.cookie_name
    credentials = Credentials.from_headers(request.headers.raw, cookie_name=cookie_name)
    home_url = str(request.url_for("home"))
    target = await client.logout_url(credentials, return_to=home_url)
    return RedirectResponse(target or home_url, status_code=303)


def create_app(
    *,
    config: KratosConfig | None = None,
    client: AsyncKratosClient | None = None,
    demo_clock_url: str | None = None,
) -> Starlette:
    """Build the app; tests and the demo pass a client wired to FakeKratos."""
    owned = client is None
    if client is None:
        config = config or KratosConfig.from_env(
            {"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ}
        )
        client = AsyncKratosClient(config)
    kratos = client

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            await kratos.aclose()  # the client made here is ours to close

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/", home, name="home"),
            Route("/account", account),
            Route("/billing", billing, methods=["GET", "POST"]),
            Route("/billing/transfer", transfer, methods=["GET", "POST"]),
            Route("/api/balance", balance),
            Route("/logout", logout),
        ],
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/account/*": "aal1"})],
    )
    app.state.kratos = client
    app.state.demo_clock_url = demo_clock_url
    return app


app = create_app()
