"""Between Django requests and the framework-free core: one helper pair, sync and async."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix
from django.utils.encoding import escape_uri_path

from ... import _observe
from ..._cached_session import CachedSession
from ..._credentials import Credentials
from ..._decision import Decision, Outcome, Requirement
from ..._hit_key import environ_hit_key
from ..._page import inline_denial
from ..._runners import adrive, drive
from ..._web import (
    HOP_COOKIE,
    HOP_MARK,
    SAFE_METHODS,
    BadRequest,
    CrossOriginRefusal,
    WebRequest,
    WebResponse,
    bad_request,
    conclude,
    refuse_cross_origin,
    return_to,
    sets_hops,
)
from ...exceptions import KratosAALError
from .._loop import Call, linking, perform_on
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


def _prefix() -> str:
    # Where the project is mounted (SCRIPT_NAME or FORCE_SCRIPT_NAME): its home is there.
    prefix: str = get_script_prefix()
    return prefix


def hop_secret() -> str:
    """Return what signs the loop breaker's hop cookie: one secret for every worker."""
    secret: str = conf.get().config.cache_key_secret or settings.SECRET_KEY
    return secret


def _return_to(request: HttpRequest) -> str:
    return return_to(web_request(request), conf.get().config)


def _finish(
    request: HttpRequest, credentials: Credentials, decision: Decision, inline: bool = False
) -> WebResponse | None:
    _observe.decided(decision, "django", request, web_request)
    if decision.outcome is Outcome.ALLOW:
        request.kratos_session = decision.session
        # A substring test: parsing request.COOKIES costs more than the whole check.
        request._kratos_aal_clear_hops = HOP_MARK in request.META.get("HTTP_COOKIE", "")
        return None
    web = web_request(request)
    fragment = inline_denial(decision, web) if inline else None
    return fragment or conclude(decision, web, credentials, secret=hop_secret())


def cached_hit(request: HttpRequest, requirement: Requirement, client: Any) -> CachedSession | None:
    """Return the cached session that alone allows *requirement*, read from ``request.META``.

    ``None`` sends the request the whole way. Nothing is attached or recorded (see
    :func:`hit`).
    """
    meta = request.META
    cookie = meta.get("HTTP_COOKIE")
    if cookie is not None and HOP_MARK in cookie:
        return None  # the hop cookie is cleared on the full path
    key = environ_hit_key(meta.get("HTTP_X_SESSION_TOKEN"), cookie, client.config.cookie_name)
    return client.cached_allow(key, requirement)  # type: ignore[no-any-return]  # None key: a miss


def hit(request: HttpRequest, requirement: Requirement, client: Any) -> CachedSession | None:
    """Allow a cache hit straight from ``request.META``; ``None`` sends it the whole way.

    On a hit the session is attached. ``_kratos_aal_clear_hops`` is left as it is: the hit
    path runs only without the hop cookie, so nothing can have set it.
    """
    # cached_hit, inlined: Django's hit path makes as few calls as it can.
    meta = request.META
    cookie = meta.get("HTTP_COOKIE")
    if cookie is not None and HOP_MARK in cookie:
        return None
    key = environ_hit_key(meta.get("HTTP_X_SESSION_TOKEN"), cookie, client.config.cookie_name)
    found: CachedSession | None = client.cached_allow(key, requirement)
    if found is not None:
        request.kratos_session = found.session
        if not _observe.STATE.quiet:
            _observe.decided(found.allowed(requirement), "django", request, web_request)
    return found


def refusal_of(request: HttpRequest, requirement: Requirement) -> CrossOriginRefusal | None:
    """Return the 403 for a cross-origin request on the cookie (SPEC §4a), else ``None``.

    For unsafe methods and WebSocket handshakes (a ``GET`` with ``Upgrade``, as uWSGI or
    gevent-websocket hand one to a view), before the session is looked up; audited like a
    denial. DRF's permissions ask it too: DRF views are exempt from ``CsrfViewMiddleware``.
    """
    if request.method in SAFE_METHODS and "HTTP_UPGRADE" not in request.META:
        return None
    config = conf.get().config
    if not config.cross_origin_protection:
        return None
    credentials = credentials_of(request)
    if credentials.cookie is None:
        return None  # a token never rides along; without a credential: LOGIN as usual
    web = web_request(request)
    refusal = refuse_cross_origin(web, credentials, config)
    if refusal is None:
        return None
    _observe.refused(web, "django", requirement, refusal.reason)
    return refusal


def refuse(request: HttpRequest, requirement: Requirement) -> HttpResponse | None:
    """:func:`refusal_of` as Django's response."""
    refusal = refusal_of(request, requirement)
    return None if refusal is None else as_response(refusal)


#: What the plan is told of: a bad request, and Kratos's trouble with a sign-out link.
_PLAN_ERRORS = (BadRequest, KratosAALError)


def _denying(
    request: HttpRequest, requirement: Requirement, inline: bool, client: Any
) -> Generator[Call, Any, HttpResponse | None]:
    """The plan of :func:`deny` and :func:`adeny` past the hit path: check, then answer."""
    credentials = credentials_of(request)
    try:
        decision = yield ("check", credentials, requirement, lambda: _return_to(request))
    except BadRequest as error:
        return as_response(bad_request(str(error)))
    denial = _finish(request, credentials, decision, inline)
    if denial is None:
        return None
    plan = linking(denial, web_request(request), credentials, client, _prefix())
    return as_response((yield from plan))


def deny(
    request: HttpRequest, requirement: Requirement, *, inline: bool = False
) -> HttpResponse | None:
    """Return the denial for *request*, or ``None`` (and attach the session) when allowed.

    *inline*: an HTMX request is answered with a link to follow instead (``inline_denial``).
    """
    refusal = refuse(request, requirement)
    if refusal is not None:
        return refusal
    client, _ = conf.clients()
    if hit(request, requirement, client) is not None:
        return None
    plan = _denying(request, requirement, inline, client)
    return drive(plan, perform_on(client), _PLAN_ERRORS)


async def adeny(
    request: HttpRequest, requirement: Requirement, *, inline: bool = False
) -> HttpResponse | None:
    """:func:`deny` for async views, on the awaitable client."""
    refusal = refuse(request, requirement)
    if refusal is not None:
        return refusal
    _, client = conf.clients()
    if hit(request, requirement, client) is not None:
        return None
    plan = _denying(request, requirement, inline, client)
    return await adrive(plan, perform_on(client), _PLAN_ERRORS)


def after(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Reset the loop breaker's counter on a response to an allowed request."""
    # Not on a decorator's denial that counts a hop itself (a rule allowed, the decorator
    # did not): clearing after it would restart the count on every bounce.
    if getattr(request, "_kratos_aal_clear_hops", False) and not sets_hops(response.items()):
        response.delete_cookie(HOP_COOKIE, path="/", samesite="Lax")
    return response
