"""Apps for the Jinja2 tests: one set of templates on Starlette, FastAPI and Flask."""

from __future__ import annotations

from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, Request
from flask import Flask, render_template
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from kratos_aal import AsyncKratosClient, KratosClient, PageAccess
from kratos_aal.integrations import fastapi as kratos_fastapi
from kratos_aal.integrations.flask import KratosAAL
from kratos_aal.integrations.flask import require_aal as flask_require_aal
from kratos_aal.integrations.jinja import LoadPage, install_flask, install_starlette, load_page
from kratos_aal.integrations.starlette import KratosAALMiddleware, require_aal

#: Every helper once; the tests read the ``[name:value]`` pairs.
PAGE = """\
[session:{{ kratos_session.aal.value if kratos_session else "none" }}]
[reveal:{% if allows("aal2", max_age=300) %}IBAN{% else %}masked{% endif %}]
[link:{{ step_up_url("aal2", max_age=300) }}]
[aal1:{{ "yes" if allows("aal1") else "no" }}]
[default:{{ "aal2" if allows() else "" }}]
[outcome:{{ aal_decision("aal2", max_age=300).outcome.value }}]
[methods:{{ "key" if allows("aal2", methods="webauthn,passkey") else "nokey" }}]
[login:{{ login_url() }}]
[settings:{{ settings_url() }}]
"""
LOGOUT = "[logout:{{ logout_url() }}][home:{{ logout_url('http://testserver/') }}]"
FIVE = "".join(
    f'[s{i}:{{% if allows("aal2", max_age={100 * i}) %}}shown{{% else %}}'
    f'{{{{ step_up_url("aal2", max_age={100 * i}) }}}}{{% endif %}}]'
    for i in range(1, 6)
)
#: A template that asks nothing of Kratos: it renders without load_page.
PLAIN = "[plain:{{ 'ok' }}]"
#: FastAPI: the page, loaded by a dependency (at module level: annotations are strings).
Page = Annotated[PageAccess, Depends(load_page)]
PageWithLogout = Annotated[PageAccess, Depends(LoadPage(logout=True))]
TEMPLATES = {"page.html": PAGE, "logout.html": LOGOUT, "five.html": FIVE, "plain.html": PLAIN}


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True)
    return install_starlette(Jinja2Templates(env=env))


def starlette_app(client: AsyncKratosClient) -> Starlette:
    templates = _templates()
    load_with_logout = LoadPage(logout=True)

    def show(name: str) -> Any:
        async def endpoint(request: StarletteRequest) -> Response:
            await load_page(request)
            return templates.TemplateResponse(request, name)

        return endpoint

    async def logout(request: StarletteRequest) -> Response:
        await load_with_logout(request)
        return templates.TemplateResponse(request, "logout.html")

    async def logout_not_loaded(request: StarletteRequest) -> Response:
        await load_page(request)
        return templates.TemplateResponse(request, "logout.html")

    async def unloaded(request: StarletteRequest) -> Response:
        return templates.TemplateResponse(request, "page.html")

    async def plain(request: StarletteRequest) -> Response:
        return templates.TemplateResponse(request, "plain.html")

    return Starlette(
        routes=[
            Route("/page", require_aal("aal1")(show("page.html"))),
            Route("/apage", require_aal("aal1")(show("page.html"))),
            Route("/public", show("page.html")),
            Route("/apublic", show("page.html")),
            Route("/five", show("five.html")),
            Route("/afive", show("five.html")),
            Route("/logout", logout),
            Route("/alogout", logout),
            Route("/logout-not-loaded", logout_not_loaded),
            Route("/unloaded", unloaded),
            Route("/plain", plain),
        ],
        middleware=[Middleware(KratosAALMiddleware, client=client)],
    )


def fastapi_app(client: AsyncKratosClient) -> FastAPI:
    templates = _templates()
    app = FastAPI()
    app.add_middleware(kratos_fastapi.KratosAALMiddleware, client=client)
    require_aal1 = kratos_fastapi.require_aal1

    @app.get("/page", dependencies=[Depends(require_aal1)])
    def sync_page(request: Request, page: Page) -> Any:  # a sync endpoint: in a thread
        return templates.TemplateResponse(request, "page.html")

    @app.get("/apage", dependencies=[Depends(require_aal1)])
    async def async_page(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "page.html")

    @app.get("/public")
    def public(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "page.html")

    @app.get("/apublic")
    async def apublic(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "page.html")

    @app.get("/five", dependencies=[Depends(require_aal1)])
    def five(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "five.html")

    @app.get("/afive", dependencies=[Depends(require_aal1)])
    async def afive(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "five.html")

    @app.get("/logout")
    def logout(request: Request, page: PageWithLogout) -> Any:
        return templates.TemplateResponse(request, "logout.html")

    @app.get("/alogout")
    async def alogout(request: Request, page: PageWithLogout) -> Any:
        return templates.TemplateResponse(request, "logout.html")

    @app.get("/logout-not-loaded")
    async def logout_not_loaded(request: Request, page: Page) -> Any:
        return templates.TemplateResponse(request, "logout.html")

    @app.get("/unloaded")
    async def unloaded(request: Request) -> Any:
        return templates.TemplateResponse(request, "page.html")

    @app.get("/plain")
    async def plain(request: Request) -> Any:
        return templates.TemplateResponse(request, "plain.html")

    return app


def flask_app(client: KratosClient) -> Flask:
    app = Flask(__name__)
    app.jinja_loader = jinja2.DictLoader(TEMPLATES)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": client.config.public_url}
    KratosAAL(app, client=client)
    install_flask(app)

    @app.get("/page")
    @flask_require_aal("aal1")
    def page() -> str:
        return render_template("page.html")

    @app.get("/apage")
    @flask_require_aal("aal1")
    async def apage() -> str:
        return render_template("page.html")

    @app.get("/public")
    def public() -> str:
        return render_template("page.html")

    @app.get("/apublic")
    async def apublic() -> str:
        return render_template("page.html")

    @app.get("/five")
    @flask_require_aal("aal1")
    def five() -> str:
        return render_template("five.html")

    @app.get("/afive")
    @flask_require_aal("aal1")
    async def afive() -> str:
        return render_template("five.html")

    @app.get("/logout")
    def logout() -> str:
        return render_template("logout.html")

    @app.get("/alogout")
    async def alogout() -> str:
        return render_template("logout.html")

    @app.get("/plain")
    def plain() -> str:
        return render_template("plain.html")

    return app
