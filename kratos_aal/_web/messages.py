"""Requests and responses as kratos-aal reads and writes them, framework-free.

ASGI, WSGI and Django adapters turn their request into a :class:`WebRequest`, and a
:class:`WebResponse` back into their own response type.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class WebRequest:
    """One HTTP request, as much of it as kratos-aal reads.

    Args:
        method: Upper-case method.
        scheme: ``http`` or ``https`` as the app sees it.
        host: The ``Host`` header as the app sees it (behind a proxy, the framework's
            proxy support decides what that is).
        path: The path as sent, with any mount prefix (``root_path``/``SCRIPT_NAME``).
        query: The raw query string, without ``?``.
        headers: Header names in lower case; repeated headers may be joined with ``,``.
    """

    method: str
    scheme: str
    host: str | None
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        """Return a header value, or ``""``."""
        return self.headers.get(name, "")

    @property
    def is_htmx(self) -> bool:
        return self.header("hx-request").lower() == "true"


@dataclass(frozen=True, slots=True)
class WebResponse:
    """A response for the framework adapter to send as it is."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def asgi_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Return raw ASGI headers as :attr:`WebRequest.headers`: lower-case names, latin-1.

    A repeated header is joined with ``", "``, a repeated ``Cookie`` with ``"; "``.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    return headers


# Kratos writes Go's http.StatusText; Python 3.13 renamed two of these phrases.
_GO_STATUS_TEXT = {413: "Request Entity Too Large", 422: "Unprocessable Entity"}


def status_text(code: int) -> str:
    """Return the status text Kratos (Go's ``http.StatusText``) writes for *code*."""
    return _GO_STATUS_TEXT.get(code) or HTTPStatus(code).phrase


class BadRequest(Exception):
    """The request cannot be answered safely (e.g. a malformed ``Host``)."""


_NO_STORE = ("Cache-Control", "no-store")


def _page(
    status: int, title: str, paragraphs: Iterable[str], extra: list[tuple[str, str]]
) -> WebResponse:
    text = "".join(f"<p>{p}</p>" for p in paragraphs)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        # No icon: browsers would otherwise ask the app for /favicon.ico, which may 404.
        '<link rel=icon href="data:,">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:system-ui,sans-serif;max-width:40rem;'
        'margin:3rem auto;padding:0 1rem">'
        f"<h1>{html.escape(title)}</h1>{text}</body></html>"
    )
    headers = [("Content-Type", "text/html; charset=utf-8"), _NO_STORE, *extra]
    return WebResponse(status, headers, body.encode())


def bad_request(reason: str) -> WebResponse:
    """Return a plain 400 for a request that cannot be answered safely."""
    return WebResponse(
        400,
        [("Content-Type", "text/plain; charset=utf-8"), _NO_STORE],
        f"Bad Request: {reason}\n".encode(),
    )
