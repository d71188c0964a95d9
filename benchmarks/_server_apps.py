"""The trivial apps the real-server table serves, bare and guarded (``make bench-servers``).

Each factory reads ``KRATOS_URL`` (a FakeKratos the benchmark runs). The guarded ones
protect ``/`` with aal2; every measured request carries a cached aal2 session.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.
import gc
import os
from typing import Annotated, Any

from kratos_aal import KratosConfig


def _config() -> KratosConfig:
    return KratosConfig(public_url=os.environ["KRATOS_URL"])


def _gc(app: Any) -> Any:
    """Apply ``BENCH_GC`` to the server process once *app* is built, and return *app*.

    ``freeze`` moves everything alive after start-up out of the collector's sight, so a
    full collection no longer walks the imported modules; ``disable`` turns the
    collector off (probe runs only: reference cycles would pile up). Unset: as shipped.
    """
    mode = os.environ.get("BENCH_GC", "")
    if mode == "freeze":
        gc.collect()
        gc.freeze()
    elif mode == "disable":
        gc.disable()
    elif mode:
        raise SystemExit(f"BENCH_GC must be freeze, disable or empty, got {mode!r}")
    return app


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
    return _gc(Starlette(routes=[Route("/", home)], middleware=middleware))


def starlette_bare() -> Any:
    return _starlette(False)


def starlette_guarded() -> Any:
    return _starlette(True)


def _fastapi(side: str) -> Any:
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse

    from kratos_aal import Session
    from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2

    app = FastAPI()
    # Mounted without rules on every side: its pass-through is in all three, so the
    # differences are the dependency's alone.
    app.add_middleware(KratosAALMiddleware, config=_config())

    async def nothing() -> None:
        return None

    if side == "guarded":

        @app.get("/", response_class=PlainTextResponse)
        async def home(session: Annotated[Session, Depends(require_aal2)]) -> str:
            return "ok"

    elif side == "empty":

        @app.get("/", response_class=PlainTextResponse)
        async def home_empty(_: Annotated[None, Depends(nothing)]) -> str:
            return "ok"

    else:

        @app.get("/", response_class=PlainTextResponse)
        async def home_bare() -> str:
            return "ok"

    return _gc(app)


def fastapi_bare() -> Any:
    return _fastapi("bare")


def fastapi_empty_depends() -> Any:
    return _fastapi("empty")


def fastapi_guarded() -> Any:
    return _fastapi("guarded")


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
    return _gc(get_wsgi_application())


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
    return _gc(app)


def flask_bare() -> Any:
    return _flask(False)


def flask_guarded() -> Any:
    return _flask(True)
