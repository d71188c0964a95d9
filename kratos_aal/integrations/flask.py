"""Flask: the ``KratosAAL`` extension, ``require_aal2``, ``require_aal(...)``, ``current_session``.

.. code-block:: python

    app.config["KRATOS_AAL"] = {"PUBLIC_URL": "http://kratos:4433",
                                "RULES": {"/billing/*": "aal2"}}
    kratos = KratosAAL(app)

    @app.get("/transfer")
    @require_aal("aal2", max_age=300)
    def transfer(): ...

The keys of ``app.config["KRATOS_AAL"]`` are Django's (one per ``KratosConfig`` field, and
``RULES``). Rules are matched against what Flask routed, the rule of the view that will
run (``/billing/<int:id>``) as well as its path with repeated slashes and dot segments
resolved, never the raw path alone: ``//billing`` cannot slip past ``/billing/*``.
Views without a rule or a decorator cost no Kratos call.

.. versionadded:: 0.1
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar, overload

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.local import LocalProxy

from .._client import KratosClient
from .._credentials import Credentials
from .._decision import Outcome, Requirement, unavailable
from .._hit_key import environ_hit_key
from .._models import AAL, AALLike, Session
from .._page import inline_denial
from .._settings import read
from .._web import (
    HOP_MARK,
    SAFE_METHODS,
    BadRequest,
    WebResponse,
    bad_request,
    clear_hops,
    conclude,
    return_to,
    route_readings,
    sets_hops,
    strictest,
)
from ..exceptions import KratosUnavailable, StepUpRequired
from ._loop import linked
from .wsgi import _web_request, refuse_environ

__all__ = ["KratosAAL", "current_session", "get_session", "require_aal", "require_aal2"]

EXTENSION = "kratos_aal"
SETTING = "KRATOS_AAL"
# This request's own state, in its WSGI environ: `g` belongs to the app context, which an
# app that pushes one at import shares between every request of a thread.
_MINE = "kratos_aal.flask"

#: A view function or a blueprint.
V = TypeVar("V", bound="Callable[..., Any] | Blueprint")


class KratosAAL:
    """The Flask extension: settings, the Kratos client, ``RULES``, and 503 on Kratos trouble.

    Args:
        app: The app to set up now; or call :meth:`init_app` later.
        client: A :class:`~kratos_aal.KratosClient` to use instead of the settings' own
            (tests pass ``fake_kratos.client()``).

    Raises:
        ConfigurationError: ``app.config["KRATOS_AAL"]`` is missing or wrong; the message
            names the key.
    """

    def __init__(self, app: Flask | None = None, *, client: KratosClient | None = None) -> None:
        self._client = client
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the settings of *app* and enforce its ``RULES`` before every request."""
        settings = read(app.config.get(SETTING), setting=f"app.config[{SETTING!r}]")
        state = _State(settings.rules, self._client or KratosClient(settings.config))
        app.extensions[EXTENSION] = state
        app.before_request(_enforce_rules)
        app.after_request(_clear_hops)
        app.register_error_handler(KratosUnavailable, _unavailable)


class _State:
    def __init__(self, rules: Any, client: KratosClient) -> None:
        self.rules = rules
        self.client = client
        self.config = client.config


def _mine() -> dict[str, Any]:
    """Return the current request's own kratos-aal state (session, step-up, page, hops)."""
    mine: dict[str, Any] = request.environ.setdefault(_MINE, {})
    return mine


def _keep(session: Session | None, environ: dict[str, Any] | None = None) -> None:
    """Attach *session* to the current request (and to ``g.kratos_session`` for the app).

    *environ*: the request's, where the caller has it (one read of ``request`` less).
    """
    mine = _mine() if environ is None else environ.setdefault(_MINE, {})
    mine["session"] = session
    g.kratos_session = session


def _state() -> _State:
    state = current_app.extensions.get(EXTENSION)
    if not isinstance(state, _State):
        raise RuntimeError(
            "kratos_aal: this Flask app has no KratosAAL extension; call KratosAAL(app) "
            "(or KratosAAL().init_app(app)) before using require_aal or current_session"
        )
    return state


def _routed_paths() -> set[str]:
    """Return every reading of the request path that Flask may have routed, and its rule."""
    readings = set(route_readings(request.path or "/"))
    if request.url_rule is not None:
        readings.add(request.url_rule.rule)
    return readings


def _enforce_rules() -> Response | None:
    state = _state()
    if not state.rules:
        return None
    # Where readings differ, the strictest rule any of them matches holds (SPEC §4).
    found = [r for r in map(state.rules.match, _routed_paths()) if r is not None]
    return _deny(strictest(found)) if found else None


def _as_response(response: WebResponse) -> Response:
    return Response(response.body, status=response.status, headers=response.headers)


def _deny(requirement: Requirement, inline: bool = False) -> Response | None:
    """Return the denial for the current request, or ``None`` (and set the session).

    *inline*: an HTMX request is answered with a link to follow instead (``inline_denial``).
    """
    state = _state()
    environ = request.environ
    # request.method, without a second read through Flask's request proxy.
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method not in SAFE_METHODS or "HTTP_UPGRADE" in environ:  # or a WebSocket
        refusal = refuse_environ(environ, state.config, requirement)
        if refusal is not None:
            return _as_response(refusal)
    cookie = environ.get("HTTP_COOKIE")
    if cookie is None or HOP_MARK not in cookie:  # clearing the hop cookie: full path
        key = environ_hit_key(
            environ.get("HTTP_X_SESSION_TOKEN"), cookie, state.client.config.cookie_name
        )
        hit = state.client.cached_allow(key, requirement)  # a None key is a miss
        if hit is not None:
            _keep(hit.session, environ)
            return None
    web, raw = _web_request(environ)
    credentials = Credentials.from_headers(raw, cookie_name=state.config.cookie_name)
    try:
        # Blocking even in async views: Flask runs each one on a short-lived event loop of
        # its own, where a pooled async connection could not outlive the request.
        decision = state.client.check(
            credentials, requirement, lambda: return_to(web, state.config)
        )
    except BadRequest as error:
        return _as_response(bad_request(str(error)))
    if decision.outcome is Outcome.ALLOW:
        _keep(decision.session)
        _mine()["clear"] = clear_hops(web)
        return None
    fragment = inline_denial(decision, web) if inline else None
    if fragment is not None:
        return _as_response(fragment)
    # The hop cookie's key: shared by every worker (Flask's SECRET_KEY as a fallback).
    secret = state.config.cache_key_secret or current_app.secret_key
    denial = conclude(decision, web, credentials, secret=secret)
    assert denial is not None
    return _as_response(linked(denial, web, credentials, state.client, request.script_root))


def _clear_hops(response: Response) -> Response:
    mine = request.environ.get(_MINE)  # none on a request nothing guarded: none made
    clear = None if mine is None else mine.get("clear")
    # Not on a decorator's denial that counts a hop itself (a rule allowed, the decorator
    # did not).
    if clear is not None and not sets_hops(response.headers):
        response.headers.add(*clear)
    return response


def _unavailable(error: KratosUnavailable) -> Response:
    web, raw = _web_request(request.environ)
    credentials = Credentials.from_headers(raw, cookie_name=_state().config.cookie_name)
    response = conclude(unavailable(error, None), web, credentials)
    assert response is not None
    return _as_response(response)


def get_session() -> Session | None:
    """Return the Kratos session of the current request, or ``None``.

    Set by a rule or decorator that allowed the request; otherwise asked of Kratos (through
    the client's cache) the first time, and kept in ``g.kratos_session``.

    Raises:
        KratosUnavailable: Kratos could not answer (the extension makes it a 503).
    """
    mine = _mine()
    if "session" in mine:
        session: Session | None = mine["session"]
        return session
    state = _state()
    _, raw = _web_request(request.environ)
    credentials = Credentials.from_headers(raw, cookie_name=state.config.cookie_name)
    found: Session | None = None
    if credentials:
        try:
            found = state.client.whoami(credentials)
        except StepUpRequired as error:
            mine["step_up"] = error.redirect_to  # for templates (install_flask)
            found = None
    _keep(found)
    return found


#: The current request's Kratos session (or ``None``), read on first use.
current_session: Session | None = LocalProxy(get_session)  # type: ignore[assignment]


def _decorate(target: Any, requirement: Requirement, inline: bool = False) -> Any:
    if isinstance(target, Blueprint):

        def _guard() -> Response | None:
            return _deny(requirement, inline)

        target.before_request(_guard)
        return target
    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def _aview(*args: Any, **kwargs: Any) -> Any:
            denial = _deny(requirement, inline)
            if denial is not None:
                return denial
            return await target(*args, **kwargs)

        return _aview

    @functools.wraps(target)
    def _view(*args: Any, **kwargs: Any) -> Any:
        denial = _deny(requirement, inline)
        if denial is not None:
            return denial
        return target(*args, **kwargs)

    return _view


@overload
def require_aal(aal: V, /) -> V: ...
@overload
def require_aal(
    aal: AALLike = ...,
    /,
    *,
    max_age: float | timedelta | None = ...,
    methods: Collection[str] | None = ...,
    htmx_inline: bool = ...,
) -> Callable[[V], V]: ...
def require_aal(
    aal: AALLike | V = AAL.AAL2,
    /,
    *,
    max_age: float | timedelta | None = None,
    methods: Collection[str] | None = None,
    htmx_inline: bool = False,
) -> Callable[[V], V] | V:
    """Require *aal* of the Kratos session (and optionally freshness and methods).

    Decorates a view (sync or async) or a :class:`~flask.Blueprint` (every view of it):
    ``@require_aal``, ``@require_aal("aal1")``,
    ``@require_aal("aal2", max_age=300, methods={"webauthn"})``, ``require_aal2(blueprint)``.
    With *htmx_inline*, an HTMX request the session does not meet is answered ``200`` with
    a "Verify to see this" link that htmx swaps in, instead of ``HX-Redirect``.

    .. versionadded:: 0.2 *htmx_inline*
    """
    if not isinstance(aal, str):
        decorated: V = _decorate(aal, Requirement(AAL.AAL2))
        return decorated
    requirement = Requirement(aal, max_age=max_age, methods=methods)
    return lambda target: _decorate(target, requirement, htmx_inline)


@overload
def require_aal2(view: V, /) -> V: ...
@overload
def require_aal2(
    *,
    max_age: float | timedelta | None = ...,
    methods: Collection[str] | None = ...,
    htmx_inline: bool = ...,
) -> Callable[[V], V]: ...
def require_aal2(
    view: V | None = None,
    /,
    *,
    max_age: float | timedelta | None = None,
    methods: Collection[str] | None = None,
    htmx_inline: bool = False,
) -> Callable[[V], V] | V:
    """Require an aal2 session: :func:`require_aal` with ``"aal2"`` bound."""
    requirement = Requirement(AAL.AAL2, max_age=max_age, methods=methods)
    if view is not None:
        decorated: V = _decorate(view, requirement)
        return decorated
    return lambda target: _decorate(target, requirement, htmx_inline)
