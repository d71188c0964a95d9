"""Django Channels: ``KratosAuthMiddleware`` for the ASGI router, ``require_aal`` for consumers.

.. code-block:: python

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(KratosAuthMiddleware(URLRouter([
            path("ws/ticker/", require_aal("aal2", max_age=300)(TickerConsumer).as_asgi()),
        ]))),
    })

The middleware puts the Kratos session in ``scope["kratos_session"]`` and the Django user
linked to it in ``scope["user"]``, by ``KratosUserMiddleware``'s rules. ``require_aal``
refuses a connection whose session does not meet the requirement (WebSocket close code
1008, the reason naming the outcome) and keeps watching the ones it allows: a logout, a
revoked or expired session, or a lapsed ``max_age`` closes them (SPEC §5c).

.. versionadded:: 0.2
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes

from channels.db import database_sync_to_async
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser

from .. import _observe
from .._credentials import Credentials, asgi_credentials
from .._decision import Outcome, Requirement, unavailable
from .._models import AAL, AALLike, Session
from .._web import (
    BadRequest,
    WebRequest,
    asgi_headers,
    conclude,
    page_of,
    refuse_cross_origin,
    return_to,
)
from ..exceptions import KratosUnavailable, StepUpRequired
from ._asgi_live import GUARD_KEY, Guard, event_stream
from .django import conf
from .django.users import BACKEND, _same_user, user_for_session

__all__ = ["KratosAuthMiddleware", "require_aal", "require_aal2"]

T = TypeVar("T")
SESSION_KEY = "kratos_session"
_MIDDLEWARE_KEY = "kratos_aal.channels"
_CREDENTIALS_KEY = "kratos_aal.credentials"
_FRAMEWORK = "channels"
_URL_SAFE = "/%:@!$&'()*+,;=-._~"


def web_request(scope: Any) -> WebRequest:
    """Return the :class:`WebRequest` of a Channels *scope* (HTTP or WebSocket)."""
    headers = asgi_headers(scope.get("headers", ()))
    raw = scope.get("raw_path") or scope.get("path", "/").encode("utf-8", "surrogateescape")
    scheme = str(scope.get("scheme") or "http")
    server = scope.get("server")
    fallback = f"{server[0]}:{server[1]}" if server and server[1] is not None else None
    return WebRequest(
        method=scope.get("method", "GET"),
        scheme={"ws": "http", "wss": "https"}.get(scheme, scheme),
        host=headers.get("host") or fallback,
        path=quote_from_bytes(raw, safe=_URL_SAFE),
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
    )


def _session_of(scope: Any) -> Session | None:
    session = scope.get(SESSION_KEY)
    return session if isinstance(session, Session) else None


async def _user(scope: dict[str, Any], session: Session | None) -> Any:
    """Return ``scope["user"]`` by ``KratosUserMiddleware``'s rules, or ``None`` to keep it."""
    user = (
        None if session is None else await database_sync_to_async(user_for_session)(None, session)
    )
    django_session = scope.get("session")
    backend = django_session.get(auth.BACKEND_SESSION_KEY) if django_session else None
    user_key = django_session.get(auth.SESSION_KEY) if django_session else None
    # A login made through KratosBackend lasts only while the Kratos session is its user's.
    ours = backend == BACKEND or (backend or "").endswith(".KratosBackend")
    logged_out = ours and user_key is not None and not _same_user(user, user_key)
    if user is None and (logged_out or session is not None):
        return AnonymousUser()
    return user


class KratosAuthMiddleware:
    """Attach the Kratos session and its Django user to a Channels scope.

    Put it around the ``URLRouter`` (inside ``AuthMiddlewareStack`` where Django's own
    logins are wanted too). ``scope["kratos_session"]`` is the session or ``None``;
    ``scope["user"]`` is the linked user, ``AnonymousUser`` for a session the app refuses,
    and otherwise what was there. Kratos unreachable refuses the connection (WebSocket
    close 1008 ``kratos-aal: unavailable``; HTTP 503), never lets it in unchecked.

    Args:
        inner: The ASGI app (the router).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] not in ("http", "websocket"):
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        config = conf.get().config
        client = conf.clients()[1]
        credentials = asgi_credentials(scope.get("headers", ()), config.cookie_name)
        scope[_MIDDLEWARE_KEY] = client
        scope[_CREDENTIALS_KEY] = credentials
        session: Session | None = None
        try:
            session = await client.whoami(credentials)
        except StepUpRequired:
            session = None
        except KratosUnavailable as error:
            decision = unavailable(error, None)
            _observe.decided(decision, _FRAMEWORK, scope, web_request)
            await _refuse(scope, receive, send, decision.outcome.value, conclude_of(scope, error))
            return None
        scope[SESSION_KEY] = session
        user = await _user(scope, session)
        if user is not None:
            scope["user"] = user
        task = asyncio.current_task()
        guard = scope[GUARD_KEY] = Guard(
            client,
            scope,
            send,
            task,
            credentials,
            _FRAMEWORK,
            web_request,
            _session_of,
            lambda: page_of(web_request(scope), config),
        )
        relay = guard.relay if scope["type"] == "websocket" else functools.partial(_watch, scope)
        try:
            return await self.inner(scope, receive, relay)
        except (Exception, asyncio.CancelledError) as error:
            if not guard.stopped(error):
                raise
            return None
        finally:
            await guard.end()


def conclude_of(scope: Any, error: KratosUnavailable) -> Any:
    """Return the 503 answer of an HTTP scope when Kratos could not be asked."""
    return conclude(unavailable(error, None), web_request(scope), Credentials())


def _watch(scope: Any, message: Any) -> Any:
    # HTTP: an event stream a requirement allowed is watched; anything else goes by.
    guard: Guard = scope[GUARD_KEY]
    if message["type"] == "http.response.start":
        if type(message.get("headers", [])) is not list:  # any iterable: read once, here
            message = {**message, "headers": list(message["headers"])}
        if event_stream(message):
            guard.started = True
            for requirement in scope.get(_ALLOWED_KEY, ()):
                guard.append(requirement)
    if guard.connections or guard.verdict is not None:
        return guard.relay(message)
    return guard.send(message)


_ALLOWED_KEY = "kratos_aal.allowed_by"


async def _refuse(scope: Any, receive: Any, send: Any, outcome: str, response: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": f"kratos-aal: {outcome}"})
        return
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _enforce(scope: Any, receive: Any, send: Any, requirement: Requirement) -> bool:
    """Decide a connection for *requirement*; refuse it and return ``False``, or ``True``."""
    client = scope.get(_MIDDLEWARE_KEY)
    if client is None:
        raise RuntimeError("require_aal needs KratosAuthMiddleware around the router")
    config = client.config
    credentials: Credentials = scope[_CREDENTIALS_KEY]
    web = web_request(scope)
    websocket = scope["type"] == "websocket"
    if credentials.cookie is not None and (websocket or web.method not in ("GET", "HEAD")):
        refusal = (
            refuse_cross_origin(web, credentials, config, websocket=websocket)
            if config.cross_origin_protection
            else None
        )
        if refusal is not None:
            _observe.refused(web, _FRAMEWORK, requirement, refusal.reason)
            if websocket:
                await receive()
                await send(
                    {
                        "type": "websocket.close",
                        "code": 1008,
                        "reason": "Cross-origin WebSocket refused",
                    }
                )
            else:
                await _refuse(scope, receive, send, "cross_origin", refusal)
            return False
    try:
        back = return_to(web, config)
    except BadRequest:
        back = None
    decision = await client.check(credentials, requirement, back)
    _observe.decided(decision, _FRAMEWORK, web)
    if decision.outcome is Outcome.ALLOW:
        if decision.session is not None:
            scope[SESSION_KEY] = decision.session
        guard = scope.get(GUARD_KEY)
        scope.setdefault(_ALLOWED_KEY, []).append(requirement)
        if websocket and isinstance(guard, Guard):
            guard.append(requirement)
        return True
    await _refuse(
        scope, receive, send, decision.outcome.value, conclude(decision, web, credentials)
    )
    return False


def _guarded(app: Callable[..., Any], requirement: Requirement) -> Callable[..., Any]:
    @functools.wraps(app)
    async def guarded(scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] in ("http", "websocket") and not await _enforce(
            scope, receive, send, requirement
        ):
            return None
        return await app(scope, receive, send)

    return guarded


def require_aal(
    aal: AALLike = AAL.AAL2,
    /,
    *,
    max_age: float | timedelta | None = None,
    methods: Collection[str] | None = None,
) -> Callable[[T], T]:
    """Require *aal* (and optionally freshness and methods) of a consumer's session.

    Decorates a consumer class (``require_aal("aal2")(ChatConsumer).as_asgi()``) or any
    ASGI app under :class:`KratosAuthMiddleware`. A refused WebSocket is closed with code
    1008 and a reason naming the outcome (``kratos-aal: step_up``); an allowed one is
    closed the same way once its session no longer meets the requirement (SPEC §5c).

    .. versionadded:: 0.2
    """
    requirement = Requirement(aal, max_age=max_age, methods=methods)

    def decorate(consumer: T) -> T:
        if isinstance(consumer, type):
            original: Any = consumer.__call__

            async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> Any:
                run = functools.partial(original, self)
                return await _guarded(run, requirement)(scope, receive, send)

            guarded: Any = type(consumer.__name__, (consumer,), {"__call__": __call__})
            return guarded  # type: ignore[no-any-return]
        wrapped: Any = _guarded(consumer, requirement)  # type: ignore[arg-type]
        return wrapped  # type: ignore[no-any-return]

    return decorate


def require_aal2(
    *, max_age: float | timedelta | None = None, methods: Collection[str] | None = None
) -> Callable[[T], T]:
    """Require an aal2 session: :func:`require_aal` with ``"aal2"`` bound."""
    return require_aal(AAL.AAL2, max_age=max_age, methods=methods)
