"""This app's origin, the request's URL, and where Kratos sends the browser back to."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from .._config import KratosConfig
from .messages import SAFE_METHODS, BadRequest, WebRequest

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{{1,5}})?")
# Everything a URL may hold unescaped; the rest (spaces, CR/LF, non-ASCII) is %-encoded.
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"
_MAX_URL = 4096


def _quoted(text: str) -> str:
    return quote(text, safe=_URL_SAFE)


def origin_of(request: WebRequest, config: KratosConfig) -> str:
    """Return this app's origin: ``app_url`` when set, else the request's own.

    Raises:
        BadRequest: there is no ``app_url`` and the ``Host`` header is not a host.
    """
    if config.app_url:
        parts = urlsplit(config.app_url)
        return f"{parts.scheme}://{parts.netloc}"
    host = request.host or ""
    if len(host) > 260 or not _HOST.fullmatch(host) or request.scheme not in ("http", "https"):
        raise BadRequest("the Host header is not a valid host")
    return f"{request.scheme}://{host.lower()}"


def _same_origin(url: str, origin: str) -> str | None:
    if not url or len(url) > _MAX_URL or any(ord(c) < 0x21 or ord(c) > 0x7E for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if f"{parts.scheme.lower()}://{parts.netloc.lower()}" != origin.lower() or parts.username:
        return None
    return url


def request_url(request: WebRequest, config: KratosConfig) -> str:
    """Return the absolute URL of *request* (on ``app_url`` when set), safely encoded."""
    url = origin_of(request, config) + _quoted(request.path or "/")
    if request.query:
        url += "?" + _quoted(request.query)
    return url


def return_to(request: WebRequest, config: KratosConfig) -> str:
    """Return where Kratos should send the browser back to (SPEC §3's X).

    The current URL for safe methods; for unsafe methods (the request is not run) the
    same-origin ``Referer`` (the page with the form), else ``app_url`` or ``/``. For HTMX,
    the same-origin ``HX-Current-URL`` (the page, not the fragment).

    Raises:
        BadRequest: the ``Host`` header is not a host and no ``app_url`` is set.
    """
    origin = origin_of(request, config)
    if request.is_htmx:
        current = _same_origin(request.header("hx-current-url"), origin)
        if current:
            return current
    if request.method in SAFE_METHODS:
        url = request_url(request, config)
        # An oversized URL would not survive the trip through Kratos: come back to the root.
        return url if len(url) <= _MAX_URL else origin + "/"
    referer = _same_origin(request.header("referer"), origin)
    if referer:
        return referer
    return config.app_url or origin + "/"


def page_of(request: WebRequest, config: KratosConfig) -> str:
    """Return the page a long-lived connection belongs to, for its ``return_to``.

    The same-origin ``Referer`` (the page that opened the event stream), else
    ``app_url`` or ``/``: the stream's own URL is no page to come back to.

    Raises:
        BadRequest: the ``Host`` header is not a host and no ``app_url`` is set.
    """
    origin = origin_of(request, config)
    return _same_origin(request.header("referer"), origin) or config.app_url or origin + "/"
