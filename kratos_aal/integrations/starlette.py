"""Starlette (and any ASGI app): ``KratosAALMiddleware`` and endpoint decorators.

.. code-block:: python

    app = Starlette(routes=[...], middleware=[
        Middleware(KratosAALMiddleware, config=KratosConfig.from_env(),
                   rules={"/account/*": "aal1", "/billing/*": Requirement("aal2", max_age=300)}),
    ])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from .._credentials import asgi_credentials
from .._decision import Requirement, unavailable
from .._models import AAL, AALLike, Session
from .._web import conclude
from ..exceptions import KratosUnavailable, StepUpRequired
from ._asgi import _SESSION_KEY, SCOPE_KEY, STEP_UP_KEY, _web_request
from ._starlette_denial import (
    KratosDenied,
    _answer_here,
    _as_response,
    _reason,
    _SessionUnavailable,
)
from ._starlette_middleware import KratosAALMiddleware
from ._starlette_user import KratosUser

__all__ = [
    "KratosAALMiddleware",
    "KratosDenied",
    "KratosUser",
    "get_session",
    "load_session",
    "require_aal",
    "require_aal2",
]

F = TypeVar("F", bound=Callable[..., Any])


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
