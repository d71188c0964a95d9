"""Apps for the HTMX tests: a guarded fragment, inline or not, and a fragment's template."""

from __future__ import annotations

from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, Request
from flask import Flask, render_template_string
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from kratos_aal import AsyncKratosClient, KratosClient, PageAccess, Session
from kratos_aal.integrations import fastapi as kratos_fastapi
from kratos_aal.integrations.flask import KratosAAL
from kratos_aal.integrations.flask import require_aal as flask_require_aal
from kratos_aal.integrations.jinja import install_flask, install_starlette, load_page
from kratos_aal.integrations.starlette import KratosAALMiddleware, require_aal

SHOWN = "[fragment:IBAN]"
#: The fragment's template: what it links comes back to the page (HX-Current-URL).
FRAGMENT = '[fragment:{% if allows("aal2") %}IBAN{% else %}{{ step_up_url("aal2") }}{% endif %}]'

Page = Annotated[PageAccess, Depends(load_page)]
Aal2 = Annotated[Session, Depends(kratos_fastapi.RequireAAL("aal2"))]
Aal2Inline = Annotated[Session, Depends(kratos_fastapi.RequireAAL("aal2", htmx_inline=True))]


def starlette_app(client: AsyncKratosClient) -> Starlette:
    env = jinja2.Environment(loader=jinja2.DictLoader({"f.html": FRAGMENT}), autoescape=True)
    templates = install_starlette(Jinja2Templates(env=env))

    async def shown(request: StarletteRequest) -> Response:
        return HTMLResponse(SHOWN)

    async def fragment(request: StarletteRequest) -> Response:
        await load_page(request)
        return templates.TemplateResponse(request, "f.html")

    routes = [
        Route("/frag", require_aal("aal2")(shown)),
        Route("/frag-inline", require_aal("aal2", htmx_inline=True)(shown)),
        Route("/afrag", require_aal("aal2")(shown)),
        Route("/afrag-inline", require_aal("aal2", htmx_inline=True)(shown)),
        Route("/frag-template", fragment),
        Route("/afrag-template", fragment),
    ]
    return Starlette(routes=routes, middleware=[Middleware(KratosAALMiddleware, client=client)])


def fastapi_app(client: AsyncKratosClient) -> FastAPI:
    env = jinja2.Environment(loader=jinja2.DictLoader({"f.html": FRAGMENT}), autoescape=True)
    templates = install_starlette(Jinja2Templates(env=env))
    app = FastAPI()
    app.add_middleware(kratos_fastapi.KratosAALMiddleware, client=client)

    @app.get("/frag")
    def frag(session: Aal2) -> HTMLResponse:
        return HTMLResponse(SHOWN)

    @app.get("/frag-inline")
    def frag_inline(session: Aal2Inline) -> HTMLResponse:
        return HTMLResponse(SHOWN)

    @app.get("/afrag")
    async def afrag(session: Aal2) -> HTMLResponse:
        return HTMLResponse(SHOWN)

    @app.get("/afrag-inline")
    async def afrag_inline(session: Aal2Inline) -> HTMLResponse:
        return HTMLResponse(SHOWN)

    @app.get("/frag-template")
    def frag_template(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "f.html")

    @app.get("/afrag-template")
    async def afrag_template(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "f.html")

    return app


def flask_app(client: KratosClient) -> Flask:
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": client.config.public_url}
    KratosAAL(app, client=client)
    install_flask(app)

    @app.get("/frag")
    @flask_require_aal("aal2")
    def frag() -> str:
        return SHOWN

    @app.get("/frag-inline")
    @flask_require_aal("aal2", htmx_inline=True)
    def frag_inline() -> str:
        return SHOWN

    @app.get("/afrag")
    @flask_require_aal("aal2")
    async def afrag() -> str:
        return SHOWN

    @app.get("/afrag-inline")
    @flask_require_aal("aal2", htmx_inline=True)
    async def afrag_inline() -> str:
        return SHOWN

    @app.get("/frag-template")
    def frag_template() -> str:
        return render_template_string(FRAGMENT)

    @app.get("/afrag-template")
    async def afrag_template() -> str:
        return render_template_string(FRAGMENT)

    return app
