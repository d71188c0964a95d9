"""FastAPI: dependencies that demand an AAL and return the :class:`~kratos_aal.Session`.

.. code-block:: python

    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, config=KratosConfig.from_env())

    @app.get("/billing")
    async def billing(session: Session = Depends(require_aal2)): ...

Denials answer with Kratos's own error envelope (``{"error": {...}, "redirect_browser_to"}``)
or a 303 for browsers, not FastAPI's ``{"detail": ...}``: the dependency raises
:class:`KratosDenied`, which the app answers with that response (the dependency makes it
the app's handler of :class:`KratosDenied`, unless the app has its own).

OpenAPI: :class:`RequireAAL` declares the session cookie (``KratosSessionCookie``). To
declare the session token header too, add ``Security(session_token)`` where it applies
(``APIRouter(dependencies=[Security(session_token)])``); each dependency FastAPI solves
costs about as much as a whole cache hit, so RequireAAL does not solve a second one.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import get_type_hints

from fastapi import Request
from fastapi.security import APIKeyCookie, APIKeyHeader
from fastapi.security.base import SecurityBase
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection

from .._decision import Requirement
from .._models import AAL, AALLike, Session
from .._web import SAFE_METHODS
from ._starlette_denial import _reason, deny_in_scope
from .starlette import KratosAALMiddleware, KratosDenied, get_session, middleware_of

__all__ = [
    "KratosAALMiddleware",
    "KratosDenied",
    "RequireAAL",
    "require_aal1",
    "require_aal2",
    "session_token",
]


class _DeclaredCookie(APIKeyCookie):
    """The cookie as OpenAPI shows it; at run time it reads nothing (kratos-aal does)."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        # FastAPI's own would parse every cookie of every request, for a value no one uses.
        return None


class _DeclaredHeader(APIKeyHeader):
    """The token header as OpenAPI shows it; at run time it reads nothing (kratos-aal does)."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return None


# Declared so that the OpenAPI document shows which routes need a Kratos session;
# kratos-aal reads the credentials itself (with the configured cookie name).
session_cookie = _DeclaredCookie(
    name="ory_kratos_session",
    scheme_name="KratosSessionCookie",
    description=(
        "The Ory Kratos session cookie (its name is set by KratosConfig.cookie_name). "
        "Token clients send `X-Session-Token` or `Authorization: Bearer` instead."
    ),
    auto_error=False,
)
session_token = _DeclaredHeader(
    name="X-Session-Token",
    scheme_name="KratosSessionToken",
    description="An Ory Kratos session token (`Authorization: Bearer` works too).",
    auto_error=False,
)


class RequireAAL(SecurityBase):
    """A dependency that demands *aal* and returns the request's :class:`Session`.

    Args:
        aal: ``"aal1"`` or ``"aal2"``.
        max_age: Seconds since the newest method of at least *aal* was completed.
        methods: Method names of which one must have been used, e.g. ``{"webauthn"}``.
        htmx_inline: Answer an HTMX request the session does not meet with ``200`` and a
            "Verify to see this" link that htmx swaps in, instead of ``HX-Redirect``.

    Overriding it in tests works as usual: ``app.dependency_overrides[require_aal2] = ...``.

    It declares the session cookie to OpenAPI itself (a security scheme, as FastAPI's
    ``APIKeyCookie`` is), with no sub-dependency: FastAPI solves every dependency on every
    request, and each one costs as much as an empty ``Depends``. The token header is
    declared with ``Security(session_token)`` where wanted.

    .. versionadded:: 0.2 *htmx_inline*
    """

    def __init__(
        self,
        aal: AALLike = AAL.AAL2,
        *,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | None = None,
        htmx_inline: bool = False,
    ) -> None:
        self.requirement = Requirement(aal, max_age=max_age, methods=methods)
        self.htmx_inline = htmx_inline
        self.model = session_cookie.model
        self.scheme_name = session_cookie.scheme_name

    def __repr__(self) -> str:
        return f"RequireAAL({self.requirement.aal.value!r})"

    async def __call__(self, request: HTTPConnection) -> Session:
        # HTTPConnection: FastAPI hands it to WebSocket endpoints' dependencies too.
        middleware = middleware_of(request, "RequireAAL")
        scope = request.scope
        if scope.get("method") not in SAFE_METHODS:  # a GET pays for a set look-up, no call
            refusal = middleware.refuse_cross_origin(scope, self.requirement)
            if refusal is not None:
                if scope["type"] == "websocket":
                    raise WebSocketException(1008, _reason(refusal))
                raise deny_in_scope(scope, refusal)
        session = middleware._hit(scope, self.requirement)
        if session is not None:
            return session
        denial = await middleware._decide(scope, self.requirement, inline=self.htmx_inline)
        if denial is not None:
            if scope["type"] == "websocket":  # refused at the handshake, as a rule does
                raise WebSocketException(1008, _reason(denial))
            raise deny_in_scope(scope, denial)
        session = get_session(request)
        assert session is not None  # _decide() attached it
        return session


# FastAPI before 0.124 reads the annotations of a dependency *instance*'s __call__ as the
# strings this module's `from __future__ import annotations` leaves, without the module's
# names: `request: Request` became a required query parameter (a 422 on every request).
# Hand it the objects.
for _dependency in (_DeclaredCookie, _DeclaredHeader, RequireAAL):
    _dependency.__call__.__annotations__.update(get_type_hints(_dependency.__call__))

require_aal1 = RequireAAL(AAL.AAL1)
require_aal2 = RequireAAL(AAL.AAL2)
