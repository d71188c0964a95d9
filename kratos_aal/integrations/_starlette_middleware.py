"""``KratosAALMiddleware``: the rules by path, the hit path, and the relay of an app's messages."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _observe
from .._client import AsyncKratosClient, client_for
from .._config import KratosConfig
from .._credentials import asgi_credentials
from .._decision import Outcome, Requirement, RequirementLike
from .._hit_key import asgi_hit_key
from .._models import Session
from .._page import inline_denial
from .._web import (
    CLEAR_HOPS,
    HOP_MARK,
    SAFE_METHODS,
    UNKNOWN,
    BadRequest,
    CrossOriginRefusal,
    PathRules,
    WebResponse,
    bad_request,
    conclude,
    page_of,
    refuse_cross_origin,
    return_to,
    sets_hops,
)
from ._asgi import (
    _EVENT_STREAM,
    _HOPS_KEY,
    _SESSION_KEY,
    SCOPE_KEY,
    _route_path,
    _send,
    _session_of,
    _stopped,
    _web_request,
)
from ._asgi_live import GUARD_KEY, Guard
from ._loop import alinked
from ._starlette_denial import KratosDenied, _reason
from ._starlette_user import _AUTH, KratosUser, _attach

_HOP_MARK = HOP_MARK.encode()
#: The headers of a start that has none: read, never changed (a list: not copied).
_NO_HEADERS: list[tuple[bytes, bytes]] = []
#: What resets the loop counter, by whether the request came on https.
_CLEAR_HOPS = {s: (b"set-cookie", v.encode("latin-1")) for s, (_, v) in CLEAR_HOPS.items()}


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
        pass_on: Send | None = None
        relay: _Relay | None = None
        began: list[bool] | None = None  # the hit path's: has the app started?
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
                began = [False]
                pass_on = _watching(scope, send, began)
        if pass_on is None:
            pass_on = relay = _Relay(scope, send)
        try:
            await self.app(scope, receive, pass_on)
        except KratosDenied as denied:
            # Answered only while nothing has started: a mounted app's own error
            # middleware may already have answered for it, or the app began its own.
            if not (relay.started if relay is not None else began is not None and began[0]):
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
        # What allowed it, for a stream's watch (SPEC §5c): _allowed, inlined.
        live = scope.get(GUARD_KEY)
        if live is None:
            scope[GUARD_KEY] = requirement
        elif type(live) is list or type(live) is Guard:
            live.append(requirement)
        else:  # one requirement (of any class: Requirement is public), now two
            scope[GUARD_KEY] = [live, requirement]
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
    """Note that *requirement* allowed the request: a stream is watched for it (SPEC §5c).

    The first is kept alone, not in a list: most requests are allowed once, and nothing
    is made for them.
    """
    live = scope.get(GUARD_KEY)
    if live is None:
        scope[GUARD_KEY] = requirement
    elif type(live) is list or type(live) is Guard:
        live.append(requirement)  # a WebSocket's guard starts watching here
    else:  # one requirement (of any class: Requirement is public), now two
        scope[GUARD_KEY] = [live, requirement]


def _stream(scope: Scope, send: Send) -> Guard | None:
    """Make the guard of an event stream that a rule, decorator or dependency allowed.

    Its stop cancels the task that sends the stream: the app's own, or a task of its (as
    Starlette's ``StreamingResponse`` runs one), whose end ends the response too.
    """
    allowed = scope.get(GUARD_KEY)
    if isinstance(allowed, Requirement):
        allowed = [allowed]
    middleware = scope.get(SCOPE_KEY)
    if not isinstance(allowed, list) or not isinstance(middleware, KratosAALMiddleware):
        return None
    guard = scope[GUARD_KEY] = middleware._guard(scope, send, asyncio.current_task())
    for requirement in allowed:
        guard.append(requirement)
    return guard


def _watching(scope: Scope, send: Send, began: list[bool]) -> Send:
    """Return the ``send`` of a request allowed from the cache: it watches an event stream.

    ``began[0]`` says whether the app has started its response through it: kept per call,
    not in the scope, which other layers and calls share.

    A plain function (as :class:`_Relay` is a plain callable): one call per message on the
    hit path, a closure the cheapest of them. Only the guard it made itself is relayed
    through: a guard an inner middleware made (a mounted app's own) sends through this
    one, and passing its messages back to it would loop.
    """
    guard: Guard | None = None

    def watch(message: Message) -> Awaitable[None]:
        nonlocal guard
        if guard is not None:
            return guard.relay(message)
        if message["type"] == "http.response.start":
            headers = message.get("headers", _NO_HEADERS)
            if type(headers) is not list:  # any iterable: a generator is read once, here
                message = {**message, "headers": (headers := list(headers))}
            began[0] = True  # once read: no denial may start another (__call__'s except)
            for name, value in headers:
                # The length first: most names are not "content-type", and lower() makes one.
                # Anywhere in the value (a comma list): find, as "in" takes the buffer path.
                if (
                    len(name) == 12
                    and name.lower() == b"content-type"
                    and value.lower().find(_EVENT_STREAM) >= 0
                ):
                    guard = _stream(scope, send)
                    if guard is not None:
                        return guard.relay(message)
        return send(message)

    return watch


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
        scope = self.scope
        headers = message.get("headers", _NO_HEADERS)
        if type(headers) is not list:  # any iterable: a generator is read once, here
            message = {**message, "headers": (headers := list(headers))}
        self.started = True  # once read: a start whose headers raised is not one
        # The request carries the hop cookie (its Cookie header holds _HOP_MARK): reset it,
        # unless a denial from below (a stricter dependency or decorator) counted one.
        if (
            scope.get(_HOPS_KEY)
            or (_HOPS_KEY not in scope and scope.get("kratos_aal.allowed") and self._hops())
        ) and not sets_hops(headers):
            clear = _CLEAR_HOPS[scope.get("scheme") in ("https", "wss")]
            message = {**message, "headers": [*headers, clear]}
        if GUARD_KEY in scope:
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type" and value.lower().find(_EVENT_STREAM) >= 0:
                    self.guard = _stream(scope, self.send)
                    if self.guard is not None:
                        return self.guard.relay(message)
        return self.send(message)

    def _hops(self) -> bool:
        # Only when the hit path did not look already.
        return any(k == b"cookie" and _HOP_MARK in v for k, v in self.scope.get("headers", ()))
