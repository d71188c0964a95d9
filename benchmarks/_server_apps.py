"""The trivial apps the real-server table serves, bare and guarded (``make bench-servers``).

Each factory reads ``KRATOS_URL`` (a FakeKratos the benchmark runs). The guarded ones
protect ``/`` with aal2; every measured request carries a cached aal2 session.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.
import os
from typing import Annotated, Any

from kratos_aal import KratosConfig


def _config() -> KratosConfig:
    return KratosConfig(public_url=os.environ["KRATOS_URL"])


def _starlette(guarded: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    middleware = (
        [Middleware(KratosAALMiddleware, config=_config(), rules={"/": "aal2"})] if guarded else []
    )
    return Starlette(routes=[Route("/", home)], middleware=middleware)


def starlette_bare() -> Any:
    return _starlette(False)


def starlette_guarded() -> Any:
    return _starlette(True)


def _fastapi(guarded: bool) -> Any:
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse

    from kratos_aal import Session
    from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2

    app = FastAPI()
    if guarded:
        app.add_middleware(KratosAALMiddleware, config=_config())

        @app.get("/", response_class=PlainTextResponse)
        async def home(session: Annotated[Session, Depends(require_aal2)]) -> str:
            return "ok"

    else:

        async def nothing() -> None:
            return None

        @app.get("/", response_class=PlainTextResponse)
        async def home_bare(_: Annotated[None, Depends(nothing)]) -> str:
            return "ok"

    return app


def fastapi_empty_depends() -> Any:
    return _fastapi(False)


def fastapi_guarded() -> Any:
    return _fastapi(True)


def _django(guarded: bool) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="benchmarks._server_apps",
        INSTALLED_APPS=["kratos_aal.integrations.django"],
        MIDDLEWARE=[],
        KRATOS_AAL={"PUBLIC_URL": os.environ["KRATOS_URL"]},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpResponse
    from django.urls import path

    from kratos_aal.integrations.django import require_aal2

    def home(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    global urlpatterns
    urlpatterns = [path("", require_aal2(home) if guarded else home)]
    return get_wsgi_application()


urlpatterns: list[Any] = []


def django_bare() -> Any:
    return _django(False)


def django_guarded() -> Any:
    return _django(True)


def _flask(guarded: bool) -> Any:
    from flask import Flask

    from kratos_aal.integrations.flask import KratosAAL, require_aal2

    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": os.environ["KRATOS_URL"]}
    KratosAAL(app)

    def home() -> str:
        return "ok"

    app.add_url_rule("/", "home", require_aal2(home) if guarded else home)
    return app


def flask_bare() -> Any:
    return _flask(False)


def flask_guarded() -> Any:
    return _flask(True)
