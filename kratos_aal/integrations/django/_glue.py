"""Between Django requests and the framework-free core: one helper pair, sync and async."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path

from ..._core import Requirement
from ..._models import Credentials
from ..._web import (
    BadRequest,
    Prepared,
    WebRequest,
    WebResponse,
    bad_request,
    clear_hops,
    conclude,
    prepare,
)
from . import conf

_CREDENTIAL_HEADERS = (
    ("HTTP_X_SESSION_TOKEN", "x-session-token"),
    ("HTTP_COOKIE", "cookie"),
    ("HTTP_AUTHORIZATION", "authorization"),
)


def web_request(request: HttpRequest) -> WebRequest:
    """Read *request* as the core needs it; the host is ``request.get_host()`` (ALLOWED_HOSTS)."""
    return WebRequest(
        method=(request.method or "GET").upper(),
        scheme=request.scheme or "http",
        host=request.get_host(),
        path=escape_uri_path(request.path),
        query=request.META.get("QUERY_STRING", ""),
        headers={name.lower(): value for name, value in request.headers.items()},
    )


def _credential_pairs(request: HttpRequest) -> list[tuple[str, str]]:
    return [(name, request.META[key]) for key, name in _CREDENTIAL_HEADERS if key in request.META]


def credentials_of(request: HttpRequest) -> Credentials:
    """Return the Kratos credentials the request presents."""
    return Credentials.from_headers(
        _credential_pairs(request), cookie_name=conf.get().config.cookie_name
    )


def as_response(response: WebResponse) -> HttpResponse:
    """Turn a core response into Django's (it never has more than one Set-Cookie)."""
    result = HttpResponse(response.body, status=response.status)
    for name, value in response.headers:
        result[name] = value
    return result


def _prepare(request: HttpRequest) -> tuple[WebRequest, Prepared] | HttpResponse:
    web = web_request(request)
    try:
        return web, prepare(web, conf.get().config, _credential_pairs(request))
    except BadRequest as error:
        return as_response(bad_request(str(error)))


def _finish(
    request: HttpRequest, web: WebRequest, prepared: Prepared, decision: Any
) -> HttpResponse | None:
    denial = conclude(decision, web, prepared.credentials)
    if denial is not None:
        return as_response(denial)
    request.kratos_session = decision.session
    request._kratos_aal_clear_hops = clear_hops(web) is not None
    return None


def deny(request: HttpRequest, requirement: Requirement) -> HttpResponse | None:
    """Return the denial for *request*, or ``None`` (and attach the session) when allowed."""
    ready = _prepare(request)
    if isinstance(ready, HttpResponse):
        return ready
    web, prepared = ready
    client, _ = conf.clients()
    decision = client.check(prepared.credentials, requirement, prepared.return_to)
    return _finish(request, web, prepared, decision)


async def adeny(request: HttpRequest, requirement: Requirement) -> HttpResponse | None:
    """:func:`deny` for async views, on the awaitable client."""
    ready = _prepare(request)
    if isinstance(ready, HttpResponse):
        return ready
    web, prepared = ready
    _, client = conf.clients()
    decision = await client.check(prepared.credentials, requirement, prepared.return_to)
    return _finish(request, web, prepared, decision)


def after(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Reset the loop breaker's counter on a response to an allowed request."""
    if getattr(request, "_kratos_aal_clear_hops", False):
        from ..._web import HOP_COOKIE

        response.delete_cookie(HOP_COOKIE, path="/", samesite="Lax")
    return response
