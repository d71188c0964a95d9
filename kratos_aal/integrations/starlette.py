"""Starlette (and any ASGI app): ``KratosAALMiddleware`` and endpoint decorators.

.. code-block:: python

    app = Starlette(routes=[...], middleware=[
        Middleware(KratosAALMiddleware, config=KratosConfig.from_env(),
                   rules={"/account/*": "aal1", "/billing/*": Requirement("aal2", max_age=300)}),
    ])
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload
from urllib.parse import quote_from_bytes

from starlette.authentication import AuthCredentials, BaseUser
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from .. import _observe
from .._client import AsyncKratosClient, client_for
from .._config import KratosConfig
from .._core import Outcome, Requirement, RequirementLike, unavailable
from .._models import AAL, AALLike, Session, asgi_credentials, asgi_hit_key
from .._page import inline_denial
from .._web import (
    CLEAR_HOPS,
    HOP_MARK,
    SAFE_METHODS,
    UNKNOWN,
    BadRequest,
    CrossOriginRefusal,
    PathRules,
    WebRequest,
    WebResponse,
    bad_request,
    conclude,
    page_of,
    refuse_cross_origin,
    return_to,
    sets_hops,
)
from ..exceptions import KratosUnavailable, StepUpRequired
from ._asgi_live import GUARD_KEY, Guard
from ._loop import alinked

__all__ = [
    "KratosAALMiddleware",
    "KratosDenied",
    "KratosUser",
    "get_session",
    "load_session",
    "require_aal",
    "require_aal2",
]

SCOPE_KEY = "kratos_aal.middleware"
STEP_UP_KEY = "kratos_aal.step_up"
_HOP_MARK = HOP_MARK.encode()
#: What resets the loop counter, by whether the request came on https.
_CLEAR_HOPS = {s: (b"set-cookie", v.encode("latin-1")) for s, (_, v) in CLEAR_HOPS.items()}
_SESSION_KEY = "kratos_session"
_URL_SAFE = "/%:@!$&'()*+,;=-._~"
F = TypeVar("F", bound=Callable[..., Any])


class KratosUser(BaseUser):
    """``request.user`` for a request with a Kratos session (shared, so immutable)."""

    session: Session

    def __init__(self, session: Session) -> None:
        object.__setattr__(self, "session", session)

    def __setattr__(self, name: str, value: object) -> None:
        # One KratosUser serves every request of a cached session: none may change it.
        raise AttributeError("KratosUser is shared by requests: it cannot be changed")

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        identity = self.session.identity
        if identity is None:
            return ""
        for trait in ("email", "username", "name"):
            value = identity.traits.get(trait)
            if isinstance(value, str):
                return value
        return identity.id

    @property
    def identity(self) -> str:
        return self.session.identity.id if self.session.identity else ""


class KratosDenied(Exception):
    """Raised by a FastAPI dependency; the middleware answers with :attr:`response`."""

    def __init__(self, response: WebResponse) -> None:
        super().__init__(response.status)
        self.response = response


class _SessionUnavailable(KratosUnavailable, KratosDenied):
    """Kratos could not say who is signed in, while a page asked (:func:`load_session`).

    A :class:`KratosUnavailable`, so a page can catch it and render "could not check";
    uncaught, it is answered as a :class:`KratosDenied` (by the app that runs the page, or
    the middleware): the 503 with ``Retry-After`` every adapter gives, never a 500.
    ``KratosUnavailable`` comes first in the MRO: an app's own handler of it (or of
    ``KratosAALError``) must win over the ``KratosDenied`` handler that answers denials.
    """

    def __init__(self, response: WebResponse, error: KratosUnavailable) -> None:
        KratosDenied.__init__(self, response)
        self.retry_after = error.retry_after
        self.status_code = error.status_code


def _web_request(scope: Scope) -> WebRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    raw_path = scope.get("raw_path")
    path = (
        quote_from_bytes(raw_path, safe=_URL_SAFE)
        if raw_path
        else quote_from_bytes(scope["path"].encode("utf-8", "surrogateescape"), safe=_URL_SAFE)
    )
    root = scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    scheme = str(scope.get("scheme") or "http")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return WebRequest(
        method=scope.get("method", "GET"),
        scheme=scheme,
        host=headers.get("host") or _server_host(scope),
        path=path,
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
    )


def _server_host(scope: Scope) -> str | None:
    server = scope.get("server")
    if not server or server[1] is None:
        return None
    return f"{server[0]}:{server[1]}"


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


class _SharedAuth(AuthCredentials):
    """``request.auth``: made once per AAL and shared by every request, so immutable."""

    def __init__(self, scopes: tuple[str, ...]) -> None:
        # A tuple where Starlette has a list: no request can change what later ones see.
        object.__setattr__(self, "scopes", scopes)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("request.auth is shared by requests: it cannot be changed")


_AUTH = {
    level: _SharedAuth(
        ("authenticated", *(other.value for other in AAL if AAL.AAL1 <= other <= level))
    )
    for level in AAL
}


def _attach(scope: Scope, session: Session | None) -> None:
    scope.setdefault("state", {})[_SESSION_KEY] = session
    if session is not None:
        scope["auth"] = _AUTH[session.aal]
        scope["user"] = KratosUser(session)


async def _send(send: Send, response: WebResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class KratosAALMiddleware:
    """Pure ASGI middleware: enforce AAL rules by path, and serve the decorators' client.

    Args:
        app: The ASGI app to protect.
        config: Where Kratos is; a new :class:`AsyncKratosClient` is made from it.
        client: An :class:`AsyncKratosClient` to use instead of *config*.
        rules: Path globs mapped to requirements (``"aal1"``, ``"aal2"`` or a
            :class:`Requirement`); first match wins; unmatched paths are public. Each
            path is matched as the framework may route it (``//x``, ``/./x``): the strictest
            rule applies.

    Raises:
        ConfigurationError: neither or both of *config* and *client*, or a bad rule.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: KratosConfig | None = None,
        client: AsyncKratosClient | None = None,
        rules: Mapping[str, RequirementLike] | None = None,
    ) -> None:
        self.app = app
        self.client, self._owns_client = client_for(
            "KratosAALMiddleware", AsyncKratosClient, config, client
        )
        self.config = self.client.config
        self.rules = PathRules(rules)
        self._known = self.rules.known
        self._cookie = self.config.cookie_name.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        scope[SCOPE_KEY] = self
        path = _route_path(scope) if scope.get("root_path") else scope["path"]
        requirement = self._known.get(path, UNKNOWN)
        if requirement is UNKNOWN:
            requirement = self.rules.requirement(path)
        if requirement is not None:
            # Unsafe methods only: a GET pays for a set look-up, no call.
            if scope["method"] not in SAFE_METHODS:
                refusal = self.refuse_cross_origin(scope, requirement)
                if refusal is not None:
                    await _send(send, refusal)
                    return
            if self._hit(scope, requirement) is None:
                response = await self._decide(scope, requirement)
                if response is not None:
                    await _send(send, response)
                    return
            elif not scope[_HOPS_KEY]:
                # Allowed from the cache and no hop cookie to clear: nothing to relay (a
                # denial a dependency raises below is answered by its app: deny_in_scope),
                # but an event stream is watched while open (SPEC §5c).
                watch = functools.partial(_watch, scope, send)
                try:
                    await self.app(scope, receive, watch)
                except KratosDenied as denied:
                    await _send(send, denied.response)
                except (Exception, asyncio.CancelledError) as error:
                    if not _stopped(scope, error):
                        raise
                finally:
                    if type(scope.get(GUARD_KEY)) is Guard:
                        await scope[GUARD_KEY].end()
                return
        relay = _Relay(scope, send)
        try:
            await self.app(scope, receive, relay)
        except KratosDenied as denied:
            # A mounted app's own error middleware may already have answered for it.
            if not relay.started:
                await _send(send, denied.response)
        except (Exception, asyncio.CancelledError) as error:
            if not _stopped(scope, error):
                raise
        finally:
            if type(scope.get(GUARD_KEY)) is Guard:
                await scope[GUARD_KEY].end()

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = self
            # Watched for whatever allows it below (this rule, a decorator, a dependency).
            guard = scope[GUARD_KEY] = self._guard(scope, send, asyncio.current_task())
            try:
                requirement = self.rules.requirement(_route_path(scope))
                denial = None if requirement is None else await self.enforce(scope, requirement)
                if denial is not None:
                    await receive()  # websocket.connect
                    await send({"type": "websocket.close", "code": 1008, "reason": _reason(denial)})
                    return
                try:
                    await self.app(scope, receive, guard.relay)
                except (Exception, asyncio.CancelledError) as error:
                    if not guard.stopped(error):
                        raise
            finally:
                await guard.end()
            return
        if scope["type"] == "lifespan" and self._owns_client:
            send = functools.partial(self._close_on_shutdown, send)
        await self.app(scope, receive, send)

    def _guard(self, scope: Scope, send: Send, task: asyncio.Task[Any] | None) -> Guard:
        """Return the guard of a WebSocket or event stream in *scope* (SPEC §5c)."""
        config = self.config
        return Guard(
            self.client,
            scope,
            send,
            task,
            asgi_credentials(scope.get("headers", ()), config.cookie_name),
            _observe.asgi_framework(scope),
            _web_request,
            _session_of,
            lambda: page_of(_web_request(scope), config),
        )

    async def enforce(
        self, scope: Scope, requirement: Requirement, *, inline: bool = False
    ) -> WebResponse | None:
        """Decide the request in *scope*; attach the session when allowed.

        Returns the denial response (a 400 for a request that cannot be answered safely,
        a 403 for a cross-origin request on the cookie), or ``None`` when it may run.
        *inline*: an HTMX request gets a link to follow instead (``inline_denial``).
        """
        if scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS:
            refusal = self.refuse_cross_origin(scope, requirement)
            if refusal is not None:
                return refusal
        if self._hit(scope, requirement) is not None:
            return None
        return await self._decide(scope, requirement, inline=inline)

    def refuse_cross_origin(
        self, scope: Scope, requirement: Requirement
    ) -> CrossOriginRefusal | None:
        """Return the 403 for a cross-origin request (or WebSocket) on the cookie, else ``None``.

        Asked before the session is looked up, for unsafe methods and WebSocket handshakes
        (SPEC §4a); audited like a denial.
        """
        if not self.config.cross_origin_protection:
            return None
        credentials = asgi_credentials(scope.get("headers", ()), self.config.cookie_name)
        if credentials.cookie is None:
            return None  # a token never rides along; without a credential: LOGIN as usual
        web = _web_request(scope)
        websocket = scope["type"] == "websocket"
        refusal = refuse_cross_origin(web, credentials, self.config, websocket=websocket)
        if refusal is not None:
            _observe.refused(web, _observe.asgi_framework(scope), requirement, refusal.reason)
        return refusal

    async def _decide(
        self, scope: Scope, requirement: Requirement, *, inline: bool = False
    ) -> WebResponse | None:
        # The whole way, after the hit path missed: validate, ask Kratos (cached), conclude.
        credentials = asgi_credentials(scope.get("headers", ()), self.config.cookie_name)
        # Built only for a denial: an allowed request never pays for URLs.
        back = functools.partial(self._return_to, scope)
        try:
            decision = await self.client.check(credentials, requirement, back)
        except BadRequest as error:
            return bad_request(str(error))
        _observe.decided_asgi(decision, scope, _web_request)
        if decision.outcome is Outcome.ALLOW:
            _attach(scope, decision.session)
            scope["kratos_aal.allowed"] = True
            _allowed(scope, requirement)
            return None
        web = _web_request(scope)
        fragment = inline_denial(decision, web) if inline else None
        if fragment is not None:
            return fragment
        denial = conclude(decision, web, credentials, secret=self.config.cache_key_secret)
        assert denial is not None
        return await alinked(denial, web, credentials, self.client, scope.get("root_path", ""))

    def _hit(self, scope: Scope, requirement: Requirement) -> Session | None:
        """Allow a cache hit straight from the raw headers: attach and return its session.

        ``None`` sends the request the whole way (:meth:`_decide`).
        """
        key, hops = asgi_hit_key(scope.get("headers", ()), self._cookie, _HOP_MARK)
        hit = self.client.cached_allow(key, requirement)  # a None key is a miss
        if hit is None:
            return None
        session = hit.session
        state = scope.get("state")
        if state is None:
            scope["state"] = {_SESSION_KEY: session}
        else:
            state[_SESSION_KEY] = session
        extra = hit.extra
        if extra is None:
            # Made once per cached session and shared by its requests: both are immutable.
            extra = hit.extra = (_AUTH[session.aal], KratosUser(session))
        scope["auth"], scope["user"] = extra
        scope[_HOPS_KEY] = hops  # also says "allowed" to the relay
        live = scope.get(GUARD_KEY)  # what allowed it, for a stream's watch (SPEC §5c)
        if live is None:
            scope[GUARD_KEY] = [requirement]
        else:
            live.append(requirement)
        if not _observe.STATE.quiet:
            _observe.decided_asgi(hit.allowed(requirement), scope, _web_request)
        return session

    def _return_to(self, scope: Scope) -> str:
        return return_to(_web_request(scope), self.config)

    async def _close_on_shutdown(self, send: Send, message: Message) -> None:
        # The client made from config= is ours: close its connections with the app.
        if message["type"] == "lifespan.shutdown.complete":
            await self.client.aclose()
        await send(message)


def _allowed(scope: Scope, requirement: Requirement) -> None:
    """Note that *requirement* allowed the request: a stream is watched for it (SPEC §5c)."""
    live = scope.get(GUARD_KEY)
    if live is None:
        scope[GUARD_KEY] = [requirement]
    else:
        live.append(requirement)  # a WebSocket's guard starts watching here


def _session_of(scope: Scope) -> Session | None:
    session = scope.get("state", {}).get(_SESSION_KEY)
    return session if isinstance(session, Session) else None


def _stream(scope: Scope, send: Send) -> Guard | None:
    """Make the guard of an event stream that a rule, decorator or dependency allowed.

    Its stop cancels the task that sends the stream: the app's own, or a task of its (as
    Starlette's ``StreamingResponse`` runs one), whose end ends the response too.
    """
    allowed = scope.get(GUARD_KEY)
    middleware = scope.get(SCOPE_KEY)
    if not isinstance(allowed, list) or not isinstance(middleware, KratosAALMiddleware):
        return None
    guard = scope[GUARD_KEY] = middleware._guard(scope, send, asyncio.current_task())
    for requirement in allowed:
        guard.append(requirement)
    return guard


def _watch(scope: Scope, send: Send, message: Message) -> Awaitable[None]:
    """Send a message of an allowed request, watching it if it starts an event stream.

    A plain callable (as :class:`_Relay`): one call per message on the hit path.
    """
    guard = scope.get(GUARD_KEY)
    if type(guard) is Guard:
        return guard.relay(message)
    if message["type"] == "http.response.start":
        for name, value in message.get("headers", ()):
            if name.lower() == b"content-type" and value.lower().startswith(_EVENT_STREAM):
                guard = _stream(scope, send)
                if guard is not None:
                    return guard.relay(message)
    return send(message)


def _stopped(scope: Scope, error: BaseException) -> bool:
    """Return whether the app's *error* is its stop by the stream's guard (then swallowed)."""
    guard = scope.get(GUARD_KEY)
    return type(guard) is Guard and guard.stopped(error)


_EVENT_STREAM = b"text/event-stream"
_HOPS_KEY = "kratos_aal.hops"  # set by an allowing hit: whether it saw the hop cookie


class _Relay:
    """Pass an app's messages on: reset the loop counter on an allowed request, watch a stream.

    A Starlette or FastAPI app answers a dependency's denial itself (see
    :func:`deny_in_scope`), or with its own handler of :class:`KratosDenied`; a denial
    that reaches the middleware instead is answered there, while nothing has started.

    A plain callable that returns what the app then awaits: on every request, relaying
    costs one function call per message, not a coroutine of its own.
    """

    __slots__ = ("guard", "scope", "send", "started")

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.send = send
        self.started = False
        self.guard: Guard | None = None

    def __call__(self, message: Message) -> Awaitable[None]:
        if self.guard is not None:
            return self.guard.relay(message)
        if self.started or message["type"] != "http.response.start":
            return self.send(message)
        self.started = True
        scope = self.scope
        if scope.get(_HOPS_KEY) or (
            _HOPS_KEY not in scope and scope.get("kratos_aal.allowed") and self._hops()
        ):
            # The request carries the hop cookie (its Cookie header holds _HOP_MARK): reset
            # it, unless a denial from below (a stricter dependency or decorator) counted one.
            headers = message.get("headers", [])
            if not sets_hops(headers):
                clear = _CLEAR_HOPS[scope.get("scheme") in ("https", "wss")]
                message = {**message, "headers": [*headers, clear]}
        if GUARD_KEY in scope:
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type" and value.lower().startswith(_EVENT_STREAM):
                    self.guard = _stream(scope, self.send)
                    if self.guard is not None:
                        return self.guard.relay(message)
        return self.send(message)

    def _hops(self) -> bool:
        # Only when the hit path did not look already.
        return any(k == b"cookie" and _HOP_MARK in v for k, v in self.scope.get("headers", ()))


def deny_in_scope(scope: Scope, response: WebResponse) -> KratosDenied:
    """Return the exception a dependency raises for *response*, for the app in *scope* to answer.

    The Starlette or FastAPI app that runs the dependency answers it itself: the denial
    becomes that app's handler of :class:`KratosDenied` (unless it has one of its own), as
    if it had been registered with ``add_exception_handler``. An app mounted below the
    middleware would otherwise answer with a 500 from its own error middleware first; and
    the app's own middleware (CORS, say) sees the denial as it sees any response. Where
    no such app runs it, the middleware's own ``except`` answers a denial that reaches it.
    """
    _answer_here(scope)
    return KratosDenied(response)


def _answer_here(scope: Scope) -> bool:
    """Make the app now running answer a :class:`KratosDenied`; ``False``: there is none.

    The Starlette or FastAPI app (the innermost one, when mounted) answers it unless it
    has a handler of its own.
    """
    handlers = scope.get("starlette.exception_handlers")
    if handlers is None:
        return False
    handlers[0].setdefault(KratosDenied, _answer_denied)
    return True


async def _answer_denied(request: Request, error: Exception) -> Response:
    """Answer a :class:`KratosDenied` inside the app that raised it (an exception handler)."""
    assert isinstance(error, KratosDenied)
    return _as_response(error.response)


def middleware_of(connection: HTTPConnection, what: str) -> KratosAALMiddleware:
    """Return the KratosAALMiddleware that wraps this app.

    Raises:
        RuntimeError: there is none.
    """
    middleware = connection.scope.get(SCOPE_KEY)
    if not isinstance(middleware, KratosAALMiddleware):
        raise RuntimeError(
            f"{what} needs KratosAALMiddleware: add "
            "Middleware(KratosAALMiddleware, config=KratosConfig(...)) to the app"
        )
    return middleware


def get_session(connection: HTTPConnection) -> Session | None:
    """Return the session a rule, decorator or dependency attached, else ``None``."""
    session = connection.scope.get("state", {}).get(_SESSION_KEY)
    return session if isinstance(session, Session) else None


async def load_session(connection: HTTPConnection) -> Session | None:
    """Return the session of this request, asking Kratos (cached) if none is attached yet.

    For public pages that show who is signed in. ``None`` when there is no session or
    Kratos withholds it. Kratos trouble raises :class:`KratosUnavailable`: catch it to
    render the page with "could not check who is signed in"; left uncaught, it is answered
    with 503 and ``Retry-After`` (a page, or Kratos's JSON), as a rule is, in a mounted app
    too; an app's own handler of ``KratosUnavailable`` answers it instead.
    """
    session = get_session(connection)
    if session is None:
        middleware = middleware_of(connection, "load_session")
        credentials = asgi_credentials(
            connection.scope.get("headers", ()), middleware.config.cookie_name
        )
        try:
            session = await middleware.client.whoami(credentials)
        except StepUpRequired as error:
            # Kept for templates: every requirement is a step-up there (load_page).
            connection.scope[STEP_UP_KEY] = error.redirect_to
            return None
        except KratosUnavailable as error:
            response = conclude(
                unavailable(error, None), _web_request(connection.scope), credentials
            )
            assert response is not None
            # Answered by the app that runs the page, as a dependency's denial is: a
            # mounted app's error middleware would send a 500 first. Not put in the scope
            # as those are: a page that catches this and renders "could not check" must
            # be sent as it is.
            _answer_here(connection.scope)
            raise _SessionUnavailable(response, error) from error
    return session


def _as_response(response: WebResponse) -> Response:
    answer = Response(response.body, status_code=response.status)
    # Raw, so that a header sent twice (Set-Cookie) is sent twice.
    answer.raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
    ]
    return answer


def _reason(denial: WebResponse) -> str:
    """Return the close reason of a WebSocket the route refuses (code 1008)."""
    if isinstance(denial, CrossOriginRefusal):
        return "Cross-origin WebSocket refused"
    return "Kratos session required"


def _find_connection(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> HTTPConnection:
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise TypeError(f"{name} decorates Starlette endpoints: none of the arguments is a Request")


def _decorate(requirement: Requirement, endpoint: F, name: str, inline: bool = False) -> F:
    is_async = inspect.iscoroutinefunction(endpoint)

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        connection = _find_connection(args, kwargs, name)
        middleware = middleware_of(connection, name)
        denial = await middleware.enforce(connection.scope, requirement, inline=inline)
        if denial is not None:
            if isinstance(connection, WebSocket):
                await connection.close(code=1008, reason=_reason(denial))
                return None
            return _as_response(denial)
        if is_async:
            return await endpoint(*args, **kwargs)
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@overload
def require_aal(aal: F, /) -> F: ...
@overload
def require_aal(
    aal: AALLike = ...,
    /,
    *,
    max_age: float | None = ...,
    methods: set[str] | None = ...,
    htmx_inline: bool = ...,
) -> Callable[[F], F]: ...
def require_aal(
    aal: AALLike | F = AAL.AAL2,
    /,
    *,
    max_age: float | None = None,
    methods: set[str] | None = None,
    htmx_inline: bool = False,
) -> Callable[[F], F] | F:
    """Require *aal* (and optionally freshness and methods) of an endpoint's session.

    Works on sync and async function endpoints and on ``HTTPEndpoint`` methods, with or
    without parentheses. Uses the client of the wrapping :class:`KratosAALMiddleware`.
    With *htmx_inline*, an HTMX request the session does not meet is answered ``200`` with
    a "Verify to see this" link that htmx swaps in, instead of ``HX-Redirect``.

    .. versionadded:: 0.2 *htmx_inline*
    """
    if callable(aal) and not isinstance(aal, str):
        return _decorate(Requirement(AAL.AAL2), aal, "require_aal")
    requirement = Requirement(aal, max_age=max_age, methods=methods)
    return lambda endpoint: _decorate(requirement, endpoint, "require_aal", htmx_inline)


@overload
def require_aal2(endpoint: F, /) -> F: ...
@overload
def require_aal2(
    *, max_age: float | None = ..., methods: set[str] | None = ..., htmx_inline: bool = ...
) -> Callable[[F], F]: ...
def require_aal2(
    endpoint: F | None = None,
    /,
    *,
    max_age: float | None = None,
    methods: set[str] | None = None,
    htmx_inline: bool = False,
) -> Callable[[F], F] | F:
    """Require an aal2 session: :func:`require_aal` with ``"aal2"`` bound."""
    requirement = Requirement(AAL.AAL2, max_age=max_age, methods=methods)
    if endpoint is not None:
        return _decorate(requirement, endpoint, "require_aal2")
    return lambda func: _decorate(requirement, func, "require_aal2", htmx_inline)
