"""A Starlette app with a public page, an aal1 page, an aal2 page and a fresh-aal2 page.

The aal1 page's bank details need more, inside the page: a Jinja2 template asks what the
session allows (``kratos_aal.integrations.jinja``; the ``jinja2`` extra).

Run it against ``kratos-aal fake`` (FakeKratos with its demo users), in two terminals:

    kratos-aal fake --port 4433 --app-url http://127.0.0.1:8000
    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 uvicorn examples.starlette_app:app --port 8000

or against your own Kratos, with KRATOS_PUBLIC_URL pointing at its public API.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from kratos_aal import AsyncKratosClient, Credentials, KratosConfig, Session
from kratos_aal.exceptions import KratosUnavailable
from kratos_aal.integrations.jinja import install_starlette, load_page
from kratos_aal.integrations.starlette import (
    KratosAALMiddleware,
    get_session,
    load_session,
    require_aal,
    require_aal2,
)

from . import _pages

# Every template gets kratos-aal's globals: allows(), step_up_url(), ... (one call).
templates = install_starlette(Jinja2Templates(directory=Path(__file__).parent / "templates"))


def page(
    request: Request, name: str, title: str, text: str, session: Session | None, extra: str = ""
) -> Response:
    """Answer a page in HTML, or in JSON for a client that asks for JSON."""
    if _pages.wants_json(request.headers.get("accept", "")):
        return JSONResponse(_pages.as_json(name, session))
    return HTMLResponse(_pages.render(title, text, session, extra=extra))


def section(request: Request, name: str) -> str:
    """Render a template of the page through ``TemplateResponse``, which runs kratos-aal's."""
    return bytes(templates.TemplateResponse(request, name, _pages.bank()).body).decode()


async def home(request: Request) -> Response:
    checked = True
    try:
        session = await load_session(request)  # a public page may still show who is signed in
    except KratosUnavailable:
        # Still a public page: it renders, and says it could not check. (Left uncaught,
        # the middleware would answer 503 with Retry-After, as for a protected page.)
        session, checked = None, False
    if _pages.wants_json(request.headers.get("accept", "")):
        return JSONResponse(_pages.as_json("home", session, checked=checked))
    extra = _pages.story(str(request.base_url).rstrip("/"), live=True)
    clock = request.app.state.demo_clock_url
    if clock:  # only the demo can move Kratos's clock
        extra += _pages.clock_form(clock, f"{request.url_for('home')}?clock=moved")
    extra = _pages.clock_note(request.query_params.get("clock")) + extra
    extra = _pages.settings_note(request.query_params.get("settings")) + extra
    text = _pages.home_text("starlette")
    page = _pages.render("kratos-aal example", text, session, extra=extra, checked=checked)
    return HTMLResponse(page)


async def account(request: Request) -> Response:  # guarded by the "/account/*" rule
    text = "A password is enough here (<code>aal1</code>)."
    extra = ""
    if not _pages.wants_json(request.headers.get("accept", "")):
        # The template cannot await Kratos: what it will ask is loaded first.
        await load_page(request)
        extra = section(request, "bank_details.html")
    return page(request, "account", "Account", text, get_session(request), extra)


async def live(request: Request) -> Response:  # guarded by the "/account/*" rule
    extra = _pages.live(str(request.url_for("live_feed").path))
    return page(request, "live", "Live", _pages.LIVE_TEXT, get_session(request), extra)


async def live_feed(request: Request) -> StreamingResponse:
    # An event stream on a guarded route: kratos-aal checks its session again while it is
    # open, and ends it with a "kratos-aal" event when the session no longer allows it.
    return StreamingResponse(_pages.feed(), media_type="text/event-stream")


@require_aal2
async def billing(request: Request) -> Response:
    text = "<span class=ok>You used a second factor (aal2).</span>"
    return page(request, "billing", "Billing", text, get_session(request))


@require_aal("aal2", max_age=300)
async def transfer(request: Request) -> Response:
    text = "<span class=ok>Second factor used in the last 5 minutes.</span>"
    return page(request, "transfer", "Transfer", text, get_session(request))


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


async def settings(request: Request) -> RedirectResponse:
    client: AsyncKratosClient = request.app.state.kratos
    home_url = str(request.url_for("home"))
    return RedirectResponse(_pages.settings_url(client.config.browser_url, home_url), 303)


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
            Route("/account/live", live),
            Route("/account/live/feed", live_feed, name="live_feed"),
            Route("/billing", billing, methods=["GET", "POST"]),
            Route("/billing/transfer", transfer, methods=["GET", "POST"]),
            Route("/api/balance", balance),
            Route("/logout", logout),
            Route("/settings", settings),
        ],
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/account/*": "aal1"})],
    )
    app.state.kratos = client
    app.state.demo_clock_url = demo_clock_url
    return app


app = create_app()
