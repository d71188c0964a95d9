"""The apps the bounded-cost suite serves under real servers (tests/integrations/test_bounded_cost.py).

Each factory reads ``KRATOS_URL``, ``KRATOS_TIMEOUT`` and ``KRATOS_MAX_CHECKS`` from the
environment. Every adapter protects two paths with aal2 and leaves ``/public`` open.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.
import os
from typing import Annotated, Any

from kratos_aal import KratosConfig, Session


def settings() -> dict[str, Any]:
    """Return the ``KRATOS_AAL`` keys every adapter here runs with."""
    return {
        "PUBLIC_URL": os.environ["KRATOS_URL"],
        "TIMEOUT": float(os.environ.get("KRATOS_TIMEOUT", "3")),
        "MAX_CONCURRENT_CHECKS": int(os.environ.get("KRATOS_MAX_CHECKS", "64")),
    }


def _config() -> KratosConfig:
    values = settings()
    return KratosConfig(
        public_url=values["PUBLIC_URL"],
        timeout=values["TIMEOUT"],
        max_concurrent_checks=values["MAX_CONCURRENT_CHECKS"],
    )


def asgi() -> Any:
    """FastAPI: the Starlette middleware's rule (``/rule/x``) and the dependency (``/dep``)."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse

    from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2

    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, config=_config(), rules={"/rule/*": "aal2"})

    @app.get("/rule/x", response_class=PlainTextResponse)
    async def rule() -> str:
        return "rule"

    @app.get("/dep", response_class=PlainTextResponse)
    async def dep(session: Annotated[Session, Depends(require_aal2)]) -> str:
        return "dep"

    @app.get("/public", response_class=PlainTextResponse)
    async def public() -> str:
        return "public"

    return app


def wsgi() -> Any:
    """Flask's extension (``/flask/x``) and the plain WSGI middleware (``/wsgi/x``)."""
    from flask import Flask

    from kratos_aal.integrations.flask import KratosAAL, require_aal2
    from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware

    flask_app = Flask(__name__)
    flask_app.config["KRATOS_AAL"] = settings()
    KratosAAL(flask_app)

    @flask_app.get("/flask/x")
    @require_aal2
    def flask_view() -> str:
        return "flask"

    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"plain"]

    guarded = KratosAALWSGIMiddleware(plain, config=_config(), rules={"/wsgi/*": "aal2"})

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/flask/"):
            return flask_app(environ, start_response)
        return guarded(environ, start_response)

    return app
