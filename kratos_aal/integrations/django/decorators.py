"""``@require_aal2`` and ``@require_aal(...)`` for function views, sync and async."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction

from ..._decision import Requirement
from ..._models import AAL, AALLike
from ..._web import SAFE_METHODS
from ._glue import adeny, after, deny, hit
from .conf import clients

__all__ = ["require_aal", "require_aal2"]

V = TypeVar("V", bound=Callable[..., Any])


def _decorate(view: V, requirement: Requirement, inline: bool = False) -> V:
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def _aview(request: Any, *args: Any, **kwargs: Any) -> Any:
            # Unsafe methods and WebSocket handshakes go the whole way: deny() refuses
            # cross-origin ones first.
            if (
                request.method in SAFE_METHODS
                and "HTTP_UPGRADE" not in request.META
                and hit(request, requirement, clients()[1]) is not None
            ):
                return await view(request, *args, **kwargs)  # no hop cookie to clear
            denial = await adeny(request, requirement, inline=inline)
            if denial is not None:
                return denial
            return after(request, await view(request, *args, **kwargs))

        wrapped: Any = _aview
    else:

        @functools.wraps(view)
        def _view(request: Any, *args: Any, **kwargs: Any) -> Any:
            if (
                request.method in SAFE_METHODS
                and "HTTP_UPGRADE" not in request.META
                and hit(request, requirement, clients()[0]) is not None
            ):
                return view(request, *args, **kwargs)  # no hop cookie to clear
            denial = deny(request, requirement, inline=inline)
            if denial is not None:
                return denial
            return after(request, view(request, *args, **kwargs))

        wrapped = _view
    # Kratos decides who may see this view: Django's LoginRequiredMiddleware stands aside.
    wrapped.login_required = False
    return wrapped  # type: ignore[no-any-return]


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
    """Require *aal* of the view's Kratos session (and optionally freshness and methods).

    Use it with or without parentheses: ``@require_aal``, ``@require_aal("aal1")``,
    ``@require_aal("aal2", max_age=300, methods={"webauthn"})``. Sync and async views.

    With *htmx_inline*, an HTMX request the session does not meet is answered ``200`` with
    a "Verify to see this" link (to the step-up, enrollment or login that would allow it,
    coming back to the page) that htmx swaps in, instead of ``HX-Redirect``.

    .. versionadded:: 0.2 *htmx_inline*
    """
    if callable(aal) and not isinstance(aal, str):
        return _decorate(aal, Requirement(AAL.AAL2))
    requirement = Requirement(aal, max_age=max_age, methods=methods)
    return lambda view: _decorate(view, requirement, htmx_inline)


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
        return _decorate(view, requirement)
    return lambda func: _decorate(func, requirement, htmx_inline)
