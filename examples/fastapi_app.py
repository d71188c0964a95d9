"""A FastAPI app with a public route, an aal1 route, an aal2 route and a fresh-aal2 route.

The aal1 page's bank details need more, inside the page: a Jinja2 template asks what the
session allows (``kratos_aal.integrations.jinja``; the ``jinja2`` extra).

Run it against ``kratos-aal fake`` (FakeKratos with its demo users), in two terminals:

    kratos-aal fake --port 4433 --app-url http://127.0.0.1:8000
    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 uvicorn examples.fastapi_app:app --port 8000

or against your own Kratos, with KRATOS_PUBLIC_URL pointing at its public API.
Browsers get pages; JSON clients (``Accept: application/json``) get the same content as JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates

from kratos_aal import AsyncKratosClient, Credentials, KratosConfig, PageAccess, Session
from kratos_aal.exceptions import KratosUnavailable
from kratos_aal.integrations.fastapi import (
    KratosAALMiddleware,
    RequireAAL,
    require_aal1,
    require_aal2,
    session_token,
)
from kratos_aal.integrations.jinja import install_starlette, load_page
from kratos_aal.integrations.starlette import load_session

from . import _pages

require_fresh_aal2 = RequireAAL("aal2", max_age=300)
# Every template gets kratos-aal's globals: allows(), step_up_url(), ... (one call).
templates = install_starlette(Jinja2Templates(directory=Path(__file__).parent / "templates"))


def page(
    request: Request, name: str, title: str, text: str, session: Session | None, extra: str = ""
) -> Response:
    """Answer a page in HTML, or in JSON for a client that asks for JSON."""
    if _pages.wants_json(request.headers.get("accept", ""), default=True):
        return JSONResponse(_pages.as_json(name, session))
    return HTMLResponse(_pages.render(title, text, session, extra=extra))


def create_app(
    *,
    config: KratosConfig | None = None,
    client: AsyncKratosClient | None = None,
    demo_clock_url: str | None = None,
) -> FastAPI:
    """Build the app; tests and the demo pass a client wired to FakeKratos."""
    if client is None:
        config = config or KratosConfig.from_env(
            {"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ}
        )
        client = AsyncKratosClient(config)
    kratos = client
    app = FastAPI(title="kratos-aal FastAPI example")
    app.add_middleware(KratosAALMiddleware, client=kratos)

    @app.get("/", response_class=HTMLResponse, name="home")
    async def home(
        request: Request, clock: str | None = None, settings: str | None = None
    ) -> Response:
        checked = True
        try:
            session = await load_session(request)  # a public page may show who is signed in
        except KratosUnavailable:
            # Still a public page: it renders, and says it could not check. (Left uncaught,
            # the middleware would answer 503 with Retry-After, as for a protected page.)
            session, checked = None, False
        if _pages.wants_json(request.headers.get("accept", ""), default=True):
            return JSONResponse(_pages.as_json("home", session, checked=checked))
        extra = _pages.story(str(request.base_url).rstrip("/"), live=True)
        if demo_clock_url:  # only the demo can move Kratos's clock
            extra += _pages.clock_form(demo_clock_url, f"{request.url_for('home')}?clock=moved")
        extra = _pages.clock_note(clock) + extra
        extra = _pages.settings_note(settings) + extra
        text = _pages.home_text("fastapi")
        page = _pages.render("kratos-aal example", text, session, extra=extra, checked=checked)
        return HTMLResponse(page)

    @app.get("/account")
    async def account(
        request: Request,
        session: Annotated[Session, Depends(require_aal1)],
        # What the bank details template will ask, loaded first: a template cannot await.
        _page: Annotated[PageAccess, Depends(load_page)],
    ) -> Response:
        text = "A password is enough here (<code>aal1</code>)."
        extra = ""
        if not _pages.wants_json(request.headers.get("accept", ""), default=True):
            # Through TemplateResponse, which runs kratos-aal's context processor.
            response = templates.TemplateResponse(request, "bank_details.html", _pages.bank())
            extra = bytes(response.body).decode()
        return page(request, "account", "Account", text, session, extra)

    @app.get("/account/live")
    async def live(
        request: Request, session: Annotated[Session, Depends(require_aal1)]
    ) -> Response:
        extra = _pages.live(app.url_path_for("live_feed"))
        return page(request, "live", "Live", _pages.LIVE_TEXT, session, extra)

    @app.get("/account/live/feed", name="live_feed")
    async def live_feed(_session: Annotated[Session, Depends(require_aal1)]) -> StreamingResponse:
        # An event stream behind a dependency: kratos-aal checks its session again while it
        # is open, and ends it with a "kratos-aal" event when the session no longer allows it.
        return StreamingResponse(_pages.feed(), media_type="text/event-stream")

    # The JSON API takes session tokens too: declared for the OpenAPI document (Swagger's
    # "Authorize" can send a header, never a cookie); it reads nothing at run time.
    @app.get("/api/balance", dependencies=[Security(session_token)])
    async def balance(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, object]:
        return {"balance": 42, "aal": session.aal.value}

    @app.get("/billing")
    async def billing(
        request: Request, session: Annotated[Session, Depends(require_aal2)]
    ) -> Response:
        text = "<span class=ok>You used a second factor (aal2).</span>"
        return page(request, "billing", "Billing", text, session)

    @app.post("/billing")
    async def update_billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"page": "billing", "aal": session.aal.value, "status": "saved"}

    @app.get("/billing/transfer")
    async def transfer_form(
        request: Request, session: Annotated[Session, Depends(require_fresh_aal2)]
    ) -> Response:
        text = "<span class=ok>Second factor used in the last 5 minutes.</span>"
        return page(request, "transfer", "Transfer", text, session)

    @app.post("/billing/transfer")
    async def transfer(session: Annotated[Session, Depends(require_fresh_aal2)]) -> dict[str, str]:
        return {"page": "transfer", "aal": session.aal.value, "status": "sent"}

    @app.get("/settings")
    async def settings_page(request: Request) -> RedirectResponse:
        home_url = str(request.url_for("home"))
        return RedirectResponse(_pages.settings_url(kratos.config.browser_url, home_url), 303)

    @app.get("/logout")
    async def logout(request: Request) -> RedirectResponse:
        credentials = Credentials.from_headers(
            request.headers.raw, cookie_name=kratos.config.cookie_name
        )
        home_url = str(request.url_for("home"))
        target = await kratos.logout_url(credentials, return_to=home_url)
        return RedirectResponse(target or home_url, status_code=303)

    return app


app = create_app()
