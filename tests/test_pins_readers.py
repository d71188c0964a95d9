"""Pins on the adapters' request reading (issue 10): what an ASGI scope or a WSGI environ
turns into. Each test fails under a mutation of the reading code that once survived.
"""

from __future__ import annotations

from typing import Any

import pytest

from kratos_aal.integrations._asgi import _web_request as asgi_request
from kratos_aal.integrations.wsgi import _web_request as wsgi_request
from kratos_aal.integrations.wsgi import _wsgi_text


def scope(**items: Any) -> dict[str, Any]:
    return {"type": "http", "path": "/x", **items}


# ------------------------------------------------------------------------------- ASGI


def test_asgi_defaults_for_a_minimal_scope() -> None:
    request = asgi_request(scope())
    assert (request.method, request.scheme, request.host) == ("GET", "http", None)
    assert (request.path, request.query, dict(request.headers)) == ("/x", "", {})


def test_asgi_reads_what_the_scope_says() -> None:
    request = asgi_request(
        scope(
            method="POST",
            scheme="https",
            query_string=b"q=caf\xe9",
            headers=[(b"Host", b"app.test"), (b"X-Name", b"caf\xe9")],
        )
    )
    assert (request.method, request.scheme, request.host) == ("POST", "https", "app.test")
    assert request.query == "q=café"
    assert request.headers["x-name"] == "café"


@pytest.mark.parametrize(("given", "expected"), [("ws", "http"), ("wss", "https"), (None, "http")])
def test_asgi_websocket_schemes(given: str | None, expected: str) -> None:
    assert asgi_request(scope(type="websocket", scheme=given)).scheme == expected


def test_asgi_server_when_no_host_header() -> None:
    assert asgi_request(scope(server=("10.0.0.1", 8000))).host == "10.0.0.1:8000"
    assert asgi_request(scope(server=("app.sock", None))).host is None


def test_asgi_raw_path_wins_and_keeps_its_escapes() -> None:
    request = asgi_request(scope(path="/a/b", raw_path=b"/a%2Fb:c;d"))
    assert request.path == "/a%2Fb:c;d"


def test_asgi_path_without_raw_path() -> None:
    assert asgi_request(scope(path="/a:b;c@d")).path == "/a:b;c@d"
    assert asgi_request(scope(path="/caf\udce9")).path == "/caf%E9"  # surrogate-escaped byte
    assert asgi_request(scope(path="/café", raw_path=b"")).path == "/caf%C3%A9"


@pytest.mark.parametrize(
    ("root", "path", "expected"),
    [
        ("/app", "/app/x", "/app/x"),  # Starlette's Mount: path already has the prefix
        ("/app", "/x", "/app/x"),  # an ASGI server's root_path: the prefix is added
        ("", "/x", "/x"),
    ],
)
def test_asgi_root_path(root: str, path: str, expected: str) -> None:
    assert asgi_request(scope(root_path=root, path=path)).path == expected


# ------------------------------------------------------------------------------- WSGI


def environ(**items: Any) -> dict[str, Any]:
    return {"PATH_INFO": "/x", **items}


def test_wsgi_defaults_for_a_minimal_environ() -> None:
    request, raw = wsgi_request({})
    assert (request.method, request.scheme, request.host) == ("GET", "http", None)
    assert (request.path, request.query, dict(request.headers), raw) == ("/", "", {}, [])


def test_wsgi_reads_what_the_environ_says() -> None:
    request, raw = wsgi_request(
        environ(
            REQUEST_METHOD="post",
            QUERY_STRING="q=1",
            HTTP_HOST="app.test",
            HTTP_X_NAME="v",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH="5",
            SERVER_NAME="ignored",
            HTTP_X_BYTES=b"not a str",
        )
        | {"wsgi.url_scheme": "https"}
    )
    assert (request.method, request.scheme, request.host) == ("POST", "https", "app.test")
    assert request.query == "q=1"
    assert dict(request.headers) == {
        "host": "app.test",
        "x-name": "v",
        "content-type": "application/json",
        "content-length": "5",
    }
    assert raw == [("host", "app.test"), ("x-name", "v")]


def test_wsgi_server_when_no_host_header() -> None:
    assert wsgi_request(environ(SERVER_NAME="srv", SERVER_PORT="8080"))[0].host == "srv:8080"
    assert wsgi_request(environ(SERVER_NAME="srv"))[0].host is None
    assert wsgi_request(environ(SERVER_PORT="8080"))[0].host is None


@pytest.mark.parametrize(
    ("script", "path", "expected"),
    [
        ("/app", "/x", "/app/x"),
        (None, "/x", "/x"),
        ("/app", None, "/app"),
        (None, None, "/"),
        (None, "/a:b;c@d", "/a:b;c@d"),
        (None, "/caf\xc3\xa9", "/caf%C3%A9"),  # PEP 3333: UTF-8 bytes as latin-1
        (None, "/snow\u2603", "/snow%3F"),  # not latin-1 at all: replaced
    ],
)
def test_wsgi_path(script: str | None, path: str | None, expected: str) -> None:
    given = {k: v for k, v in {"SCRIPT_NAME": script, "PATH_INFO": path}.items() if v is not None}
    assert wsgi_request(given)[0].path == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/caf\xc3\xa9", "/café"),
        ("/bad\xff", "/bad\ufffd"),  # not UTF-8: replaced, not an error
        ("/snow\u2603", "/snow?"),  # not latin-1: replaced, not an error
    ],
)
def test_wsgi_text(given: str, expected: str) -> None:
    assert _wsgi_text(given) == expected
