"""Issue 21 item 10: an exact rule covers its route's trailing-slash twin on every adapter.

Django (APPEND_SLASH) and Werkzeug send ``/x`` to a view at ``/x/`` with a redirect, so a
rule ``"/x"`` seemed to protect it; but ``GET /x/`` reaches the view at once. Starlette's
``redirect_slashes`` is the mirror case: rule ``"/x/"``, route ``/x``. Each adapter below
has both, and a neighbour (``/xy``) that must stay public.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kratos_aal import Requirement
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

HTML = {"Accept": "text/html"}
#: The rule each route is given: ``/slash/`` is routed with a slash and ruled without one,
#: ``/bare`` the other way round.
RULES = {"/slash": "aal1", "/bare/": "aal1"}
#: What each request path must meet: a 303 to Kratos without a session, the page with one.
PROTECTED = ["/slash/", "/bare"]
#: Neighbours of the rules' paths that no rule names: they stay public.
PUBLIC = ["/slashy/", "/barely"]


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"SECRET {request.url.path}")


def starlette_app(fake: FakeKratos) -> Any:
    routes = [Route(path, page) for path in (*PROTECTED, *PUBLIC)]
    return Starlette(
        routes=routes,
        middleware=[Middleware(KratosAALMiddleware, client=fake.async_client(), rules=RULES)],
    )


def fastapi_app(fake: FakeKratos) -> Any:
    app = FastAPI()
    for path in (*PROTECTED, *PUBLIC):
        app.add_api_route(path, page)
    app.add_middleware(KratosAALMiddleware, client=fake.async_client(), rules=RULES)
    return app


@pytest.mark.parametrize("build", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_asgi(build: Callable[[FakeKratos], Any]) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    with TestClient(build(fake), follow_redirects=False) as client:
        for path in PROTECTED:
            response = client.get(path, headers=HTML)
            assert response.status_code == 303, path
            assert "/self-service/login/browser" in response.headers["location"]
            assert "SECRET" not in response.text
            # The twin the router would redirect to is protected too.
            twin = path.rstrip("/") if path.endswith("/") else path + "/"
            assert client.get(twin, headers=HTML).status_code == 303, twin
            client.cookies.set("ory_kratos_session", fake.session("aal1").cookie)
            assert client.get(path).text == f"SECRET {path}"
            client.cookies.clear()
        for path in PUBLIC:
            assert client.get(path).text == f"SECRET {path}", path


def wsgi_get(app: Any, path: str, **extra: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "HTTP_ACCEPT": "text/html", **extra}
    environ["wsgi.input"] = BytesIO()
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        statuses.append(status)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return statuses[0], body


def plain_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"SECRET {environ['PATH_INFO']}".encode()]


def flask_app(fake: FakeKratos) -> Any:
    from flask import Flask, request

    from kratos_aal.integrations.flask import KratosAAL

    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": fake.public_url, "RULES": RULES}
    for path in (*PROTECTED, *PUBLIC):
        app.add_url_rule(path, path, lambda: f"SECRET {request.path}")
    KratosAAL(app, client=fake.client())
    return app


def wsgi_app(fake: FakeKratos) -> Any:
    return KratosAALWSGIMiddleware(plain_wsgi, client=fake.client(), rules=RULES)


@pytest.mark.parametrize("build", [wsgi_app, flask_app], ids=["wsgi", "flask"])
def test_wsgi(build: Callable[[FakeKratos], Any]) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    app = build(fake)
    cookie = fake.session("aal1").cookie_header
    for path in PROTECTED:
        status, body = wsgi_get(app, path)
        assert status.startswith("303"), (path, status)
        assert b"SECRET" not in body
        status, body = wsgi_get(app, path, HTTP_COOKIE=cookie)
        assert (status, body) == ("200 OK", f"SECRET {path}".encode())
    for path in PUBLIC:
        assert wsgi_get(app, path) == ("200 OK", f"SECRET {path}".encode()), path


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        pytest.param("/x", ["/x", "/x/"], ["/xy", "/xy/", "/x/y", "/x//", "/"], id="bare"),
        pytest.param("/x/", ["/x", "/x/"], ["/xy", "/x/y", "/"], id="slash"),
        pytest.param("/x/*", ["/x", "/x/", "/x/y"], ["/xy"], id="subtree"),
        pytest.param("/x*", ["/x", "/x/", "/xy"], ["/y"], id="prefix"),
        pytest.param("/", ["/"], ["/x", "//x"], id="root"),
        pytest.param("/a/*/b", ["/a/1/b", "/a/1/b/"], ["/a/1/bc"], id="inner-star"),
    ],
)
def test_path_rules_cover_the_twin(glob: str, matches: list[str], misses: list[str]) -> None:
    from kratos_aal._web import PathRules

    rules = PathRules({glob: "aal1"})
    for path in matches:
        assert rules.requirement(path) is not None, path
    for path in misses:
        assert rules.match(path) is None, path


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param({"/x/": "aal1", "/x": "aal2"}, id="slash-first"),
        pytest.param({"/x": "aal1", "/x/": "aal2"}, id="bare-first"),
    ],
)
def test_a_twin_never_weakens_the_rule_written_for_a_path(rules: dict[str, str]) -> None:
    # Before twins, each path got its own rule; a rule listed first for the twin must not
    # now hand the path its weaker requirement.
    from kratos_aal._web import PathRules

    strict = next(glob for glob, aal in rules.items() if aal == "aal2")
    assert PathRules(rules).requirement(strict) == Requirement("aal2")
    assert PathRules(rules).match(strict) == Requirement("aal2")
