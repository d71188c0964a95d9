"""Issue 9 item 1: no spelling of a protected path reaches its handler without a session.

Real servers pass the path through as sent (gunicorn keeps ``//``), and each framework
routes it its own way. Requests go out on raw sockets so that no client normalises them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos
from kratos_aal.testing._serve import reserve_port, serve

ROOT = Path(__file__).resolve().parents[2]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HTML = "text/html,application/xhtml+xml,*/*;q=0.8"

# Each spelling reaches /billing, /billing/x or /api/balance in some framework's reading.
BATTERY = [
    "/billing",
    "//billing",
    "///billing/x",
    "/billing//x",
    "/./billing",
    "/billing/../billing/x",
    "/%2fbilling",
    "/%2Fbilling/x",
    "/billing/%2e%2e/billing",
    "/%2e/billing",
    "//api/balance",
    "/api//balance",
    "/api/./balance",
    "///api/balance",
    "/x/../api/balance",
]


def raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send *target* exactly as written and return the status and body."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in {"Accept": HTML, **(headers or {})}.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# ---------------------------------------------------------------- Flask under gunicorn


@contextmanager
def gunicorn(kratos_url: str) -> Iterator[str]:
    """Serve ``examples.flask_app:app`` with a real gunicorn sync worker."""
    sock = reserve_port()
    url = "http://{}:{}".format(*sock.getsockname())
    env = {**os.environ, "KRATOS_PUBLIC_URL": kratos_url, "PYTHONPATH": str(ROOT)}
    fd = sock.fileno()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1"]
    command += ["--worker-class", "sync", "--log-level", "warning", "examples.flask_app:app"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=[fd])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                raw_get(url, "/")
                break
            except (ConnectionError, IndexError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        sock.close()


@pytest.fixture(scope="module")
def served_kratos() -> Iterator[tuple[FakeKratos, str]]:
    fake = FakeKratos(whoami_required_aal="aal1")
    with serve(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def flask_under_gunicorn(served_kratos: tuple[FakeKratos, str]) -> Iterator[str]:
    with gunicorn(served_kratos[1]) as url:
        yield url


@pytest.mark.parametrize("target", BATTERY)
def test_gunicorn_flask_battery(flask_under_gunicorn: str, target: str) -> None:
    status, body = raw_get(flask_under_gunicorn, target)
    assert status == 303, (target, status, body)
    json_status, json_body = raw_get(flask_under_gunicorn, target, {"Accept": "application/json"})
    assert json_status == 401
    assert b'"balance"' not in json_body and b'"page"' not in json_body


def test_gunicorn_flask_session_still_passes(
    flask_under_gunicorn: str, served_kratos: tuple[FakeKratos, str]
) -> None:
    # The same spellings with the session the rule demands reach the handler.
    cookie = {
        "Cookie": served_kratos[0].session("aal2").cookie_header,
        "Accept": "application/json",
    }
    status, body = raw_get(flask_under_gunicorn, "//billing", cookie)
    assert status == 200 and b'"page":"billing"' in body.replace(b" ", b"")
    status, body = raw_get(flask_under_gunicorn, "//api/balance", cookie)
    assert status == 200 and b'"balance":42' in body.replace(b" ", b"")


# ---------------------------------------------------------------- WSGI, raw PATH_INFO


def wsgi_call(app: Any, path_info: str, script_name: str = "", **extra: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "PATH_INFO": path_info,
        "SCRIPT_NAME": script_name,
        "HTTP_ACCEPT": HTML,
        "wsgi.input": BytesIO(),
        **extra,
    }
    setup_testing_defaults(environ)
    captured: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        captured.append(status)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return captured[0], body


def decoded(target: str) -> str:
    """Return *target* as a WSGI server puts it in PATH_INFO (percent-decoded, latin-1)."""
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(target).decode("latin-1")


@pytest.mark.parametrize("script_name", ["", "/app", "/app/"])
@pytest.mark.parametrize("target", BATTERY)
def test_wsgi_raw_path_info(script_name: str, target: str) -> None:
    from examples.flask_app import create_app

    fake = FakeKratos(whoami_required_aal="aal1")
    app = create_app(client=fake.client())
    status, body = wsgi_call(app, decoded(target), script_name)
    assert status.startswith("303"), (target, status, body)
    options, _ = wsgi_call(
        app,
        decoded(target),
        script_name,
        REQUEST_METHOD="OPTIONS",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ORIGIN="http://spa.example",
    )
    assert options.startswith("303")


# ------------------------------------------------------- Starlette Mount, FastAPI routers


async def secret(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"SECRET {request.url.path}")


def starlette_app(fake: FakeKratos) -> Any:
    shop = [
        Route("/billing", secret, methods=ALL_METHODS),
        Route("/billing/{rest:path}", secret, methods=ALL_METHODS),
        Route("/api/balance", secret, methods=ALL_METHODS),
    ]
    return Starlette(
        routes=[Route("/", secret), Mount("/shop", routes=shop)],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                client=fake.async_client(),
                rules={"/shop/billing/*": "aal2", "/shop/api/*": "aal2"},
            )
        ],
    )


def fastapi_app(fake: FakeKratos) -> Any:
    billing = APIRouter(prefix="/billing")
    billing.add_api_route("", secret, methods=ALL_METHODS)
    billing.add_api_route("/{rest:path}", secret, methods=ALL_METHODS)
    api = APIRouter(prefix="/api")
    api.add_api_route("/balance", secret, methods=ALL_METHODS)
    app = FastAPI()
    app.include_router(billing, prefix="/shop")
    app.include_router(api, prefix="/shop")
    app.add_api_route("/", secret)
    app.add_middleware(
        KratosAALMiddleware,
        client=fake.async_client(),
        rules={"/shop/billing/*": "aal2", "/shop/api/*": "aal2"},
    )
    return app


ASGI_APPS: dict[str, Callable[[FakeKratos], Any]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


@pytest.fixture(scope="module", params=sorted(ASGI_APPS))
def asgi_served(request: pytest.FixtureRequest) -> Iterator[tuple[FakeKratos, str]]:
    fake = FakeKratos(whoami_required_aal="aal1")
    with serve(ASGI_APPS[request.param](fake)) as url:
        yield fake, url


def spellings_under_shop(target: str) -> list[str]:
    """Return *target* under the /shop mount, with the odd part before and after it."""
    inner = target.replace("billing", "shop/billing", 1).replace("api/", "shop/api/", 1)
    return [inner, "/shop" + target, "//shop" + target, "/./shop" + target]


@pytest.mark.parametrize("target", BATTERY)
def test_asgi_mount_and_routers_battery(asgi_served: tuple[FakeKratos, str], target: str) -> None:
    _, url = asgi_served
    for spelling in spellings_under_shop(target):
        status, body = raw_get(url, spelling)
        assert b"SECRET" not in body, spelling
        # The strictest reading is protected: no spelling passes as a public path.
        assert status == 303, (spelling, status)


def test_asgi_session_reaches_the_handler(asgi_served: tuple[FakeKratos, str]) -> None:
    fake, url = asgi_served
    cookie = {"Cookie": fake.session("aal2").cookie_header}
    status, body = raw_get(url, "/shop/billing/x", cookie)
    assert (status, body) == (200, b"SECRET /shop/billing/x")


@pytest.mark.parametrize("target", ["/shop//billing", "//shop/billing/x", "/shop/./api/balance"])
def test_asgi_root_path(target: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    with serve(starlette_app(fake), root_path="/prefix") as url:
        # A proxy strips /prefix; uvicorn puts it back in front of the path as root_path.
        status, body = raw_get(url, target)
        assert status == 303 and b"SECRET" not in body
        ok, text = raw_get(url, "/shop/billing", {"Cookie": fake.session("aal2").cookie_header})
        assert (ok, text) == (200, b"SECRET /prefix/shop/billing")


# ------------------------------------------------- Starlette rules in front of mounted Flask


def plain_flask() -> Any:
    """A Flask app with no protection of its own: only the Starlette rules guard it."""
    from flask import Flask

    app = Flask(__name__)
    app.add_url_rule("/billing", "billing", lambda: "SECRET billing")
    app.add_url_rule("/billing/<path:rest>", "rest", lambda rest: "SECRET " + rest)
    app.add_url_rule("/api/balance", "balance", lambda: "SECRET balance")
    return app


@pytest.fixture(scope="module")
def flask_behind_starlette() -> Iterator[tuple[FakeKratos, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StarletteDeprecationWarning: the module still works
        from starlette.middleware.wsgi import WSGIMiddleware
    fake = FakeKratos(whoami_required_aal="aal1")
    app = Starlette(
        routes=[Mount("/legacy", app=WSGIMiddleware(plain_flask()))],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                client=fake.async_client(),
                rules={"/legacy/billing/*": "aal2", "/legacy/api/*": "aal2"},
            )
        ],
    )
    with serve(app) as url:
        yield fake, url


@pytest.mark.parametrize("target", BATTERY)
def test_starlette_rules_guard_a_mounted_flask_app(
    flask_behind_starlette: tuple[FakeKratos, str], target: str
) -> None:
    fake, url = flask_behind_starlette
    status, body = raw_get(url, "/legacy" + target)
    assert status == 303 and b"SECRET" not in body, (target, status, body)
    cookie = {"Cookie": fake.session("aal2").cookie_header}
    assert raw_get(url, "/legacy//billing", cookie) == (200, b"SECRET billing")
